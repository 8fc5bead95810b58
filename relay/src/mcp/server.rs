//! The MCP handler behind `/mcp`: lists tools and resources for the caller and runs calls,
//! on the relay or in a workspace through its agent.

use std::sync::{Arc, OnceLock};

use fulcrum_protocol::tools::{ToolCall, ToolOutput, ToolTarget};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourcesResult,
        ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
        ReadResourceResult, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    McpCaller,
    catalog::{self, BUILTINS, Builtin, Runs},
    relay_tools, take_workspace, workspaces,
};
use crate::{state::AppState, store::Scope};

/// One MCP session's handler (rmcp makes one per session).
#[derive(Clone)]
pub struct FulcrumMcp {
    app: AppState,
    /// The user who opened the session; requests of anyone else on it are refused.
    owner: Arc<OnceLock<Uuid>>,
}

impl FulcrumMcp {
    /// A handler for a new session.
    pub fn new(app: AppState) -> Self {
        Self {
            app,
            owner: Arc::new(OnceLock::new()),
        }
    }

    /// The caller of this request, checked against the session's owner.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<McpCaller, ErrorData> {
        let caller = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>().copied())
            .ok_or_else(|| ErrorData::invalid_request("unauthenticated", None))?;
        let owner = *self.owner.get_or_init(|| caller.user_id);
        if owner != caller.user_id {
            return Err(ErrorData::invalid_request(
                "this MCP session belongs to another user",
                None,
            ));
        }
        Ok(caller)
    }
}

/// A tool from JSON, the way MCP spells it.
fn tool(
    name: &str,
    description: &str,
    schema: Value,
    output: Option<Value>,
    read_only: bool,
) -> Option<Tool> {
    let mut tool = json!({
        "name": name,
        "description": description,
        "inputSchema": schema,
        "annotations": { "readOnlyHint": read_only },
    });
    if let Some(output) = output {
        tool["outputSchema"] = output;
    }
    serde_json::from_value(tool).ok()
}

/// Calls tool `name` for `caller`: a built-in one (answered by the relay, or by the workspace
/// its `workspace` argument names) or one an agent hosts (`server__tool`). The one path every
/// door that calls tools takes (`/mcp`, the assistant).
pub async fn call_tool(
    app: &AppState,
    caller: McpCaller,
    name: &str,
    args: Map<String, Value>,
) -> Result<ToolOutput, String> {
    if let Some(builtin) = Builtin::find(name) {
        if !caller.grant.scopes.contains(builtin.needs()) {
            return Err(format!(
                "{name} needs the `{}` scope, which this token lacks",
                builtin.needs()
            ));
        }
        return match builtin.runs {
            Runs::Relay => relay_tools::call(app, caller, name, args).await,
            Runs::Agent => {
                in_workspace(app, caller, ToolTarget::Builtin(name.to_owned()), args).await
            }
        };
    }
    if let Some((server, tool)) = catalog::split_hosted(name) {
        let target = ToolTarget::Hosted {
            server: server.to_owned(),
            tool: tool.to_owned(),
        };
        return in_workspace(app, caller, target, args).await;
    }
    Err(format!("no tool named {name:?}; see tools/list"))
}

/// Runs a tool in a workspace through its agent.
async fn in_workspace(
    app: &AppState,
    caller: McpCaller,
    target: ToolTarget,
    mut args: Map<String, Value>,
) -> Result<ToolOutput, String> {
    let workspace = take_workspace(app, caller, &mut args).await?;
    // The agent checks a hosted tool exists and may be called with this token.
    let call = ToolCall {
        target,
        args_json: Value::Object(args).to_string(),
        may_write: caller.grant.scopes.contains(Scope::Write),
    };
    call.check().map_err(|e| e.to_string())?;
    let timeout = std::time::Duration::from_secs(app.config.agents.tool_call_timeout_secs.max(1));
    app.domain
        .workspaces
        .call_tool(caller.caller(), workspace.id, call, timeout)
        .await
        .map_err(|e| format!("{} ({})", relay_tools::tool_error(e), workspace.name))
}

fn result(outcome: Result<ToolOutput, String>) -> CallToolResponse {
    match outcome {
        Ok(out) => {
            let mut r = if out.is_error {
                CallToolResult::error(vec![ContentBlock::text(out.text)])
            } else {
                CallToolResult::success(vec![ContentBlock::text(out.text)])
            };
            r.structured_content = out
                .structured_json
                .and_then(|s| serde_json::from_str(&s).ok());
            r
        }
        Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
    }
    .into()
}

impl ServerHandler for FulcrumMcp {
    #[allow(deprecated)] // logging: see `set_level`.
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_prompts()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(
            "fulcrum-relay",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Fulcrum reaches your remote development workspaces. Call list_workspaces first; \
             every workspace tool takes a `workspace` argument (its id or name). Tools named \
             server__tool come from MCP servers hosted inside a workspace.",
        )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        // The session belongs to whoever opened it.
        let caller = self.caller(&ctx)?;
        ctx.peer.set_peer_info(request.clone());
        let answer = self.negotiate_initialize(&request)?;
        self.app.mcp.changes.watch(ctx.peer.clone(), caller.user_id);
        Ok(answer)
    }

    /// `logging/setLevel`: accepted. The relay sends no log notifications of its own yet, so
    /// every level is already respected. (Deprecated by SEP-2577, but part of the 2025-11-25
    /// protocol that clients speak today.)
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.caller(&ctx)?;
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&ctx)?;
        let mut tools: Vec<Tool> = BUILTINS
            .iter()
            .filter(|b| caller.grant.scopes.contains(b.needs()))
            .filter_map(|b| {
                tool(
                    b.name,
                    b.description,
                    b.input_schema(),
                    b.output_schema(),
                    b.read_only,
                )
            })
            .collect();
        let online = workspaces(&self.app, caller)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let mut hosted = Vec::new();
        for w in online.iter().filter(|w| w.online) {
            if let Some(t) = self.app.sessions.tools(w.id) {
                for server in t.catalog.servers {
                    hosted.push((w.name.clone(), server));
                }
            }
        }
        tools.extend(
            catalog::hosted_listings(&hosted)
                .into_iter()
                .filter(|h| caller.grant.scopes.contains(h.needs()))
                .filter_map(|h| tool(&h.name, &h.description, h.input_schema, None, h.read_only)),
        );
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let args = request.arguments.unwrap_or_default();
        let name = request.name.as_ref();
        if Builtin::find(name).is_none() && catalog::split_hosted(name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("no tool named {name:?}; see tools/list"),
                None,
            ));
        }
        Ok(result(call_tool(&self.app, caller, name, args).await))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let caller = self.caller(&ctx)?;
        let all = self
            .app
            .domain
            .prompts
            .everywhere(caller.caller())
            .await
            .map_err(|e| ErrorData::internal_error(relay_tools::tool_error(e), None))?;
        let prompts: Vec<Value> = all
            .into_iter()
            .map(|(project, v)| {
                json!({
                    "name": format!("{}/{}", project.name, v.prompt.name),
                    "title": v.prompt.name,
                    "description": if v.prompt.description.is_empty() {
                        format!("Prompt {} of project {} (version {})", v.prompt.name, project.name, v.prompt.version)
                    } else {
                        format!("{} (project {}, version {})", v.prompt.description, project.name, v.prompt.version)
                    },
                    "arguments": v.arguments.iter().map(|a| json!({"name": a, "required": true})).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::from_value(json!({ "prompts": prompts }))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let by = caller.caller();
        let Some((project, name)) = request.name.rsplit_once('/') else {
            return Err(ErrorData::invalid_params(
                format!(
                    "no prompt {:?}; names are project/prompt (see prompts/list)",
                    request.name
                ),
                None,
            ));
        };
        let project = relay_tools::project_named(&self.app, by, project)
            .await
            .map_err(|e| ErrorData::invalid_params(e, None))?;
        let args: std::collections::BTreeMap<String, String> = request
            .arguments
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        let rendered = self
            .app
            .domain
            .prompts
            .render(by, project, name, None, &args)
            .await
            .map_err(|e| ErrorData::invalid_params(relay_tools::tool_error(e), None))?;
        let result: GetPromptResult = serde_json::from_value(json!({
            "description": format!("{} version {}", rendered.name, rendered.version),
            "messages": [{"role": "user", "content": {"type": "text", "text": rendered.text}}],
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&ctx)?;
        let all = workspaces(&self.app, caller)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let mut resources = Vec::new();
        for w in &all {
            resources.push(json!({
                "uri": format!("fulcrum://workspaces/{}", w.id),
                "name": w.name,
                "description": format!("Workspace {} on {} ({})", w.name, w.hostname, if w.online { "online" } else { "offline" }),
                "mimeType": "application/json",
            }));
            for r in &w.repos {
                resources.push(json!({
                    "uri": format!("fulcrum://workspaces/{}/repos/{}", w.id, r.status.path),
                    "name": format!("{}:{}", w.name, r.status.path),
                    "description": format!("Git status of {} in workspace {}", r.status.path, w.name),
                    "mimeType": "application/json",
                }));
            }
        }
        serde_json::from_value(json!({ "resources": resources }))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let uri = request.uri.clone();
        let not_found = || ErrorData::resource_not_found(format!("no resource {uri}"), None);
        let rest = uri
            .strip_prefix("fulcrum://workspaces/")
            .ok_or_else(not_found)?;
        let (id, repo) = match rest.split_once("/repos/") {
            Some((id, repo)) => (id, Some(repo)),
            None => (rest, None),
        };
        let id = Uuid::parse_str(id).map_err(|_| not_found())?;
        let all = workspaces(&self.app, caller)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let w = all.iter().find(|w| w.id == id).ok_or_else(not_found)?;
        let body = match repo {
            None => serde_json::to_string_pretty(w),
            Some(path) => {
                let r = w
                    .repos
                    .iter()
                    .find(|r| r.status.path == path)
                    .ok_or_else(not_found)?;
                serde_json::to_string_pretty(r)
            }
        }
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let read: ReadResourceResult = serde_json::from_value(json!({
            "contents": [{ "uri": uri, "mimeType": "application/json", "text": body }]
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(read.into())
    }
}
