//! The MCP endpoint: `/mcp`, MCP over Streamable HTTP (built with `rmcp`), reaching every
//! workspace of the caller through its agent's existing connection.
//!
//! - Authentication: an MCP token (`fulcrum-relay token create --kind mcp`, or the dashboard) as
//!   `Authorization: Bearer …` on every request. Without one, or with a bad one, the answer is
//!   401 with `WWW-Authenticate: Bearer resource_metadata="…/.well-known/oauth-protected-resource/mcp"`,
//!   and that document (RFC 9728) is served without authentication, as the MCP authorization
//!   spec asks. A token acts for its owner only; a read-only token may not write or run.
//! - An MCP session belongs to the user who opened it: a request on it with another user's
//!   token is refused.
//! - [`catalog`]: the tools listed; [`server`]: the MCP handler; [`relay_tools`]: the tools the
//!   relay answers itself (workspaces, projects, tasks).
//!
//! The `Host` header is not restricted (rmcp's DNS-rebinding guard allows only localhost by
//! default): every request must carry a bearer token, which a browser never adds on its own.

pub mod catalog;
pub mod relay_tools;
pub mod server;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use uuid::Uuid;

use crate::{
    auth::token_hash,
    state::AppState,
    store::{StoreResult, TokenKind},
};

/// Largest MCP request body (a `write_file` of 512 KiB fits, JSON-escaped).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Who is calling: set by the bearer check on every request.
#[derive(Debug, Clone, Copy)]
pub struct McpCaller {
    /// The token's owner.
    pub user_id: Uuid,
    /// The token.
    pub token_id: Uuid,
    /// Whether the token may only read.
    pub read_only: bool,
}

/// `/mcp` and the protected-resource metadata, to merge into the relay's router.
pub fn router(app: AppState) -> Router<AppState> {
    let factory_app = app.clone();
    let service = StreamableHttpService::new(
        move || Ok(server::FulcrumMcp::new(factory_app.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_max_request_body_bytes(MAX_BODY_BYTES),
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(app, authenticate))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
}

/// How long a checked MCP token is trusted without asking the database again. A revocation
/// on this node takes effect at once; one made elsewhere (another node, the CLI) within the
/// revocation sweep's interval (5 s), and at the latest after this.
const TOKEN_TTL: Duration = Duration::from_secs(30);
/// Most tokens remembered.
const MAX_CACHED_TOKENS: usize = 10_000;

/// MCP tokens recently checked against the database, by hash: every `/mcp` request carries
/// its token, and a call should not cost a database round trip for it.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, (McpCaller, Instant)>>);

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (McpCaller, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller behind `secret`, from memory or from the store.
    async fn check(&self, app: &AppState, secret: &str) -> StoreResult<Option<McpCaller>> {
        let hash = token_hash(secret);
        if let Some((caller, at)) = self.lock().get(&hash)
            && at.elapsed() < TOKEN_TTL
        {
            return Ok(Some(*caller));
        }
        let Some(token) = app.store.active_token(&hash, TokenKind::Mcp).await? else {
            self.lock().remove(&hash);
            return Ok(None);
        };
        let caller = McpCaller {
            user_id: token.owner_id,
            token_id: token.id,
            read_only: token.read_only,
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED_TOKENS {
            cache.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
        }
        cache.insert(hash, (caller, Instant::now()));
        Ok(Some(caller))
    }

    /// Forgets a revoked token.
    pub fn forget(&self, token_id: Uuid) {
        self.lock()
            .retain(|_, (caller, _)| caller.token_id != token_id);
    }
}

/// Checks the bearer token of every `/mcp` request.
async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let bearer = crate::gateway::bearer(req.headers())
        .filter(|t| t.len() <= 256)
        .map(str::to_owned);
    let Some(secret) = bearer else {
        return unauthorized(&app, req.headers(), None);
    };
    match app.mcp_tokens.check(&app, &secret).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Ok(None) => unauthorized(&app, req.headers(), Some("invalid_token")),
        Err(e) => {
            tracing::error!(error = %e, "cannot check an MCP token");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": "unavailable", "message": "the relay cannot reach its database" })),
            )
                .into_response()
        }
    }
}

/// 401 pointing at the protected-resource metadata (RFC 9728 §5.1, RFC 6750 §3).
fn unauthorized(app: &AppState, headers: &HeaderMap, error: Option<&str>) -> Response {
    let base = crate::install::public_url(app, headers);
    let mut challenge =
        format!(r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#);
    if let Some(e) = error {
        challenge.push_str(&format!(
            r#", error="{e}", error_description="the token is unknown, revoked, or not an MCP token""#
        ));
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Json(serde_json::json!({
            "error": "unauthorized",
            "message": "send an MCP token as `Authorization: Bearer …` (create one with `fulcrum-relay token create --kind mcp` or in the dashboard)"
        })),
    )
        .into_response()
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the protected-resource metadata.
async fn resource_metadata(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = crate::install::public_url(&app, &headers);
    Json(serde_json::json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "bearer_methods_supported": ["header"],
        "resource_name": "Fulcrum",
        "resource_documentation": format!("{base}/"),
    }))
    .into_response()
}
