//! Tokens: creating the agent and MCP tokens of a user (the API, `fulcrum-relay token create`
//! and `dev` all go through [`create_token`]). Revoking one tells every open stream
//! (`crate::access::token_revoked`).

use serde::Serialize;
use uuid::Uuid;

use super::{DomainError, DomainResult};
use crate::{
    auth::{self, AGENT_TOKEN_PREFIX, MCP_TOKEN_PREFIX},
    store::{AgentToken, DynStore, NewToken, TokenKind},
};

/// Longest token name.
const MAX_NAME: usize = 100;
/// Most tokens a user may hold, revoked ones included.
const MAX_TOKENS_PER_USER: usize = 200;

/// A token just created: its metadata and, this once, the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The stored metadata.
    #[serde(flatten)]
    pub token: AgentToken,
    /// The secret, shown once.
    #[serde(rename = "token")]
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Creates an agent token for `owner`.
pub async fn create_agent_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
) -> DomainResult<CreatedToken> {
    create_token(store, owner, name, TokenKind::Agent, false).await
}

/// Creates a token for `owner`: the one path used by the API and the CLI.
pub async fn create_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
    kind: TokenKind,
    read_only: bool,
) -> DomainResult<CreatedToken> {
    if read_only && kind != TokenKind::Mcp {
        return Err(DomainError::Invalid(
            "only MCP tokens can be read-only; an agent token acts for its own workspace".into(),
        ));
    }
    // The limit applies to the name as sent (the schema's maxLength), the emptiness check to
    // what is left after trimming.
    let too_long = name.chars().count() > MAX_NAME;
    let name = name.trim();
    if name.is_empty() || too_long {
        return Err(DomainError::Invalid(format!(
            "a token name of 1 to {MAX_NAME} characters is required"
        )));
    }
    if store.list_agent_tokens(owner).await?.len() >= MAX_TOKENS_PER_USER {
        return Err(DomainError::conflict(
            "too_many_tokens",
            format!("at most {MAX_TOKENS_PER_USER} tokens per user"),
        ));
    }
    let new = auth::new_token(match kind {
        TokenKind::Agent => AGENT_TOKEN_PREFIX,
        TokenKind::Mcp => MCP_TOKEN_PREFIX,
    });
    let token = store
        .create_token(&NewToken {
            owner,
            name,
            token_hash: &new.hash,
            prefix: &new.shown_prefix,
            kind,
            read_only,
        })
        .await?;
    Ok(CreatedToken {
        token,
        secret: new.secret,
    })
}
