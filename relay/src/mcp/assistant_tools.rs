//! The assistant's tools: `/mcp`'s built-in tools, offered to the assistant's model with the
//! same schemas and called through the same path ([`super::server::call_tool`]) as the caller,
//! within their grant.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::{McpCaller, catalog::BUILTINS, server::call_tool};
use crate::{
    domain::{Caller, assistant::AssistantTools},
    llm::ToolSpec,
    state::AppState,
};

/// The catalog's tools, called as the assistant's user.
pub struct CatalogTools {
    app: AppState,
}

impl CatalogTools {
    /// The tools of the relay `app`.
    pub fn new(app: AppState) -> Self {
        Self { app }
    }
}

#[async_trait]
impl AssistantTools for CatalogTools {
    fn specs(&self, caller: Caller) -> Vec<ToolSpec> {
        BUILTINS
            .iter()
            .filter(|b| caller.grant.scopes.contains(b.needs()))
            .map(|b| ToolSpec {
                name: b.name.to_owned(),
                description: b.description.to_owned(),
                parameters: b.input_schema(),
            })
            .collect()
    }

    fn read_only(&self, name: &str) -> Option<bool> {
        BUILTINS
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.read_only)
    }

    async fn call(&self, caller: Caller, name: &str, args: Value) -> Result<String, String> {
        let Value::Object(args) = args else {
            return Err("the arguments are not a JSON object".into());
        };
        let by = McpCaller {
            user_id: caller.user,
            token_id: caller.grant.token.unwrap_or(Uuid::nil()),
            grant: caller.grant,
        };
        let out = call_tool(&self.app, by, name, args).await?;
        if out.is_error {
            return Err(out.text);
        }
        Ok(out.text)
    }
}
