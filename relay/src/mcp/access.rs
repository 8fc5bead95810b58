//! Who may use `/mcp`: the bearer check on every request (with a short-lived cache of checked
//! tokens), and which user each MCP session belongs to.
//!
//! A session id (`Mcp-Session-Id`) is bound to the user whose request created it. Every later
//! request naming it, whatever its method (POST, the GET stream, DELETE), must come from that
//! user; anyone else gets 404, as for a session that does not exist. A user holds at most
//! [`MAX_SESSIONS_PER_USER`] sessions at once.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use uuid::Uuid;

use super::McpCaller;
use crate::{
    domain::{DomainError, Grant},
    http::client::ClientAddr,
    state::AppState,
    store::TokenKind,
};

/// The MCP session header.
const SESSION_HEADER: &str = "mcp-session-id";
/// Most MCP sessions one user holds at once.
pub const MAX_SESSIONS_PER_USER: usize = 64;
/// A session idle this long is forgotten here (rmcp closes it after 5 minutes idle).
const SESSION_IDLE: Duration = Duration::from_secs(10 * 60);
/// Most sessions remembered in all.
const MAX_SESSIONS: usize = 100_000;

/// The MCP endpoint's shared state: checked tokens, the sessions' owners, and who must hear
/// of tool list changes.
#[derive(Default)]
pub struct McpState {
    sessions: Mutex<HashMap<String, SessionEntry>>,
    /// Tool list changes, per user.
    pub changes: super::changes::ToolChanges,
    /// rmcp's sessions, so that a revoked token's can be closed.
    pub(super) manager: std::sync::Arc<LocalSessionManager>,
}

/// Whose an MCP session is.
struct SessionEntry {
    /// The user who opened it.
    user: Uuid,
    /// The token it was opened with.
    token: Uuid,
    /// Last used.
    seen: Instant,
}

impl McpState {
    /// Closes the sessions opened with a revoked token (their open streams end). Returns how
    /// many were closed.
    pub fn forget_token(&self, token_id: Uuid) -> usize {
        let closed: Vec<String> = {
            let mut sessions = self.sessions();
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, e)| e.token == token_id)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &ids {
                sessions.remove(id);
            }
            ids
        };
        let n = closed.len();
        if n > 0 {
            let manager = self.manager.clone();
            tokio::spawn(async move {
                use rmcp::transport::streamable_http_server::session::SessionManager;
                for id in closed {
                    let _ = manager.close_session(&id.into()).await;
                }
            });
        }
        n
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks the bearer token of every `/mcp` request: an MCP token (static, or issued by the
/// relay's OAuth server), through the one token check of `crate::domain::tokens`.
pub(super) async fn authenticate(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = crate::auth::bearer(req.headers()).map(str::to_owned);
    let Some(secret) = bearer else {
        return unauthorized(&app, req.headers(), None);
    };
    match app
        .domain
        .tokens
        .authenticate(&secret, TokenKind::Mcp, client)
        .await
    {
        Ok(token) => {
            let caller = McpCaller {
                user_id: token.owner_id,
                token_id: token.id,
                grant: Grant::of(&token),
            };
            req.extensions_mut().insert(caller);
            within_session(&app, caller, req, next).await
        }
        Err(DomainError::Throttled { retry_after, .. }) => rate_limited(retry_after),
        Err(DomainError::Unauthenticated { code, message }) => {
            unauthorized(&app, req.headers(), Some((code, message)))
        }
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

/// 429: this MCP token made too many requests; retry after `secs` seconds.
fn rate_limited(secs: u64) -> Response {
    let secs = secs.max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        Json(serde_json::json!({
            "error": "rate_limited",
            "message": format!("too many requests with this MCP token; retry after {secs} s"),
        })),
    )
        .into_response()
}

/// 401 pointing at the protected-resource metadata (RFC 9728 §5.1, RFC 6750 §3).
fn unauthorized(
    app: &AppState,
    headers: &HeaderMap,
    error: Option<(&'static str, String)>,
) -> Response {
    let base = app.config.base_url_for(crate::install::host(headers));
    let mut challenge = format!(
        r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp", scope="{}""#,
        crate::store::TokenKind::Mcp.allowed_scopes()
    );
    let (code, message) = match error {
        Some((code, message)) => {
            // RFC 6750 has one code for every refused token; the description says which it
            // was (quotes and backslashes are not allowed in it).
            let description: String = message
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect();
            challenge.push_str(&format!(
                r#", error="invalid_token", error_description="{description}""#
            ));
            (code, message)
        }
        None => (
            "unauthorized",
            "send an MCP token as `Authorization: Bearer …` (create one with `fulcrum-relay \
             token create --kind mcp` or in the dashboard, or sign in with OAuth)"
                .to_owned(),
        ),
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

/// Lets a request through only on a session of its own user, and records the sessions that
/// requests open.
async fn within_session(app: &AppState, caller: McpCaller, req: Request, next: Next) -> Response {
    let named = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().clone();
    match &named {
        Some(id) => {
            let mut sessions = app.mcp.sessions();
            match sessions.get_mut(id) {
                Some(entry) if entry.user == caller.user_id => entry.seen = Instant::now(),
                // Another user's session, or one this node never opened: as if it did not exist.
                _ => {
                    return (
                        StatusCode::NOT_FOUND,
                        Json(serde_json::json!({ "error": "not_found", "message": "no such MCP session" })),
                    )
                        .into_response();
                }
            }
        }
        None if method == Method::POST => {
            let open = app
                .mcp
                .sessions()
                .values()
                .filter(|e| e.user == caller.user_id && e.seen.elapsed() < SESSION_IDLE)
                .count();
            if open >= MAX_SESSIONS_PER_USER {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(serde_json::json!({
                        "error": "too_many_sessions",
                        "message": format!("at most {MAX_SESSIONS_PER_USER} MCP sessions per user; close some (DELETE /mcp) or let them expire"),
                    })),
                )
                    .into_response();
            }
        }
        None => {}
    }
    let mut response = next.run(req).await;
    // A closed session: the SDKs expect 200 or 204 (rmcp answers 202, and the Python SDK logs
    // "Session termination failed: 202").
    if method == Method::DELETE && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    let created = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut sessions = app.mcp.sessions();
    match (named, created) {
        (None, Some(new)) => {
            if sessions.len() >= MAX_SESSIONS {
                sessions.retain(|_, e| e.seen.elapsed() < SESSION_IDLE);
            }
            sessions.insert(
                new,
                SessionEntry {
                    user: caller.user_id,
                    token: caller.token_id,
                    seen: Instant::now(),
                },
            );
        }
        (Some(id), _) if method == Method::DELETE && response.status().is_success() => {
            sessions.remove(&id);
        }
        _ => {}
    }
    response
}
