//! The MCP endpoint: `/mcp`, MCP over Streamable HTTP (built with `rmcp`), reaching every
//! workspace of the caller through its agent's existing connection.
//!
//! - Authentication: an MCP token (`fulcrum-relay token create --kind mcp`, or the dashboard) as
//!   `Authorization: Bearer …` on every request. Without one, or with a bad one, the answer is
//!   401 with `WWW-Authenticate: Bearer resource_metadata="…/.well-known/oauth-protected-resource/mcp"`,
//!   and that document (RFC 9728) is served without authentication, as the MCP authorization
//!   spec asks. A token acts for its owner only, within its scopes (`read`, `write`, `run`) and
//!   its limit to one project or workspace; it is offered only the tools it may call.
//! - An MCP session belongs to the user who opened it: a request on it with another user's
//!   token is refused.
//! - [`access`]: the bearer check and the sessions' owners; [`catalog`]: the tools listed;
//!   [`changes`]: telling open sessions that their tool list changed;
//!   [`server`]: the MCP handler; [`relay_tools`]: the tools the relay answers itself
//!   (workspaces, projects, tasks).
//!
//! DNS rebinding: as the transport specification requires, a request whose `Host` is not the
//! public URL's, a loopback name, the relay's own address or one in `[http] allowed_hosts` is
//! refused (403), and so is one whose `Origin`, when it has one, is not the public URL's or one in
//! `[http] cors_origins`. Programs (which send no `Origin`) are not affected.

pub mod access;
pub mod assistant_tools;
pub mod catalog;
pub mod changes;
pub mod relay_tools;
pub mod server;

use axum::{
    Json, Router,
    extract::State,
    http::HeaderMap,
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{state::AppState, store::Workspace};

/// Largest MCP request body (a `write_file` of 512 KiB fits, JSON-escaped).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Who is calling: set by the bearer check on every request.
#[derive(Debug, Clone, Copy)]
pub struct McpCaller {
    /// The token's owner.
    pub user_id: Uuid,
    /// The token.
    pub token_id: Uuid,
    /// What the token allows.
    pub grant: crate::domain::Grant,
}

impl McpCaller {
    /// The domain's caller: the token's owner, through the MCP door, within its grant.
    pub fn caller(self) -> crate::domain::Caller {
        crate::domain::Caller::with_grant(self.user_id, crate::domain::Door::Mcp, self.grant)
    }
}

/// `/mcp` and the protected-resource metadata, to merge into the relay's router.
pub fn router(app: AppState) -> Router<AppState> {
    let factory_app = app.clone();
    let service = StreamableHttpService::new(
        move || Ok(server::FulcrumMcp::new(factory_app.clone())),
        app.mcp.manager.clone(),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(app.config.allowed_hosts())
            .with_allowed_origins(app.config.allowed_origins())
            .enforce_origin_validation()
            .with_max_request_body_bytes(MAX_BODY_BYTES),
    );
    Router::new()
        .nest_service("/mcp", service)
        // On /mcp only: other paths are not this door's to answer.
        .route_layer(middleware::from_fn_with_state(app, access::authenticate))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the protected-resource metadata.
async fn resource_metadata(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = app.config.base_url_for(crate::install::host(&headers));
    Json(serde_json::json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "bearer_methods_supported": ["header"],
        "scopes_supported": crate::store::TokenKind::Mcp
            .allowed_scopes()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        "resource_name": "Fulcrum",
        "resource_documentation": format!("{base}/"),
    }))
    .into_response()
}

/// The caller's workspaces (that its token reaches) as they are now.
pub async fn workspaces(app: &AppState, caller: McpCaller) -> Result<Vec<Workspace>, String> {
    app.domain
        .workspaces
        .visible(caller.caller())
        .await
        .map_err(relay_tools::tool_error)
}

/// A workspace a call names: its id and name, and whether its agent is connected here.
#[derive(Debug, Clone)]
pub struct Named {
    /// The workspace's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Whether its agent is connected to this relay node.
    pub online: bool,
}

/// Takes the `workspace` argument out of a call's arguments and finds that workspace of the
/// caller's by id or name: among the live sessions first (no database round trip; an online
/// workspace wins over an offline one of the same name), then among all of the caller's
/// workspaces.
pub async fn take_workspace(
    app: &AppState,
    caller: McpCaller,
    args: &mut Map<String, Value>,
) -> Result<Named, String> {
    let Some(Value::String(wanted)) = args.remove("workspace") else {
        return Err("the `workspace` argument (a workspace id or name) is required".into());
    };
    let wanted = wanted.as_str();
    let user = caller.user_id;
    // The fast path only for an unlimited token: a limited one's reach is checked below.
    let unlimited = caller.grant.limit == crate::domain::Limit::None;
    if let [(id, name)] = app.sessions.find_live(user, wanted).as_slice()
        && unlimited
    {
        return Ok(Named {
            id: *id,
            name: name.clone(),
            online: true,
        });
    }
    let to_named = |w: &Workspace| Named {
        id: w.id,
        name: w.name.clone(),
        online: w.online,
    };
    let all = workspaces(app, caller).await?;
    let by_id = Uuid::parse_str(wanted)
        .ok()
        .and_then(|id| all.iter().find(|w| w.id == id));
    if let Some(w) = by_id {
        return Ok(to_named(w));
    }
    let named: Vec<&Workspace> = all.iter().filter(|w| w.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok(to_named(one)),
        [] => Err(format!(
            "you have no workspace {wanted:?}; yours are: {}",
            if all.is_empty() {
                "none yet".to_owned()
            } else {
                all.iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
        many => Err(format!(
            "{} workspaces are named {wanted:?}; name one by id: {}",
            many.len(),
            many.iter()
                .map(|w| w.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
