//! The agents' doors: `GET /api/v1/agent/connect`, a WebSocket carrying protocol frames, and
//! the [`quic`] endpoint carrying the same frames on QUIC streams.
//!
//! The HTTP upgrade is refused with 401 unless it carries a valid agent token; after it, the
//! [`session`] runs the protocol. WebSocket buffers are kept small on purpose: an idle agent
//! costs the relay a few KiB, not tungstenite's default 128 KiB each way.

pub mod quic;
mod session;
mod transport;

use axum::{
    extract::{State, WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use fulcrum_protocol::MAX_FRAME_BYTES;

pub use crate::sessions::{Control, Registry, SessionEntry, SessionTools, ToolCallError};

use crate::{
    http::error::{ApiError, ApiResult},
    state::AppState,
    store::Token,
};

/// Initial read buffer per agent socket; it grows for large frames and that is rare.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// `GET /api/v1/agent/connect`.
pub async fn connect(
    State(app): State<AppState>,
    crate::http::client::ClientAddr(client): crate::http::client::ClientAddr,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The token first: a refused token is a 401 whether or not the request is an upgrade (the
    // install script checks a token with a plain GET).
    let token = match authenticate_secret(&app, crate::auth::bearer(&headers), client).await {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            use futures_util::StreamExt;
            let (sink, stream) = socket.split();
            session::run(
                app,
                token,
                transport::Outgoing::Ws(sink),
                transport::Source::Ws(stream),
            )
        })
}

/// Checks an agent token (whichever door it came through) and its rate limit.
async fn authenticate_secret(
    app: &AppState,
    secret: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> ApiResult<Token> {
    let secret = secret.ok_or_else(|| ApiError::unauthorized("missing agent token"))?;
    Ok(app
        .domain
        .tokens
        .authenticate(secret, crate::store::TokenKind::Agent, client)
        .await?)
}

/// How often the relay looks for revoked tokens.
const REVOCATION_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes sessions whose token was revoked, however it was revoked: through this node's API
/// (which also closes them at once), the CLI, or another node. One query per sweep, whatever the
/// number of sessions.
pub async fn revocation_sweep(app: AppState) {
    let mut shutdown = app.shutdown.clone();
    let mut since = chrono::Utc::now();
    let mut tick = tokio::time::interval(REVOCATION_SWEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                app.limits.forget_idle();
                let now = chrono::Utc::now();
                // A second of overlap covers clock steps between nodes; kicking twice is harmless.
                // Tokens that expired since the last sweep end their sessions too.
                let expired_checked = match app.store.tokens_expired_between(since - chrono::Duration::seconds(1), now).await {
                    Ok(ids) => {
                        for id in ids {
                            app.domain.tokens.ended(id);
                        }
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot check for expired tokens");
                        false
                    }
                };
                match app.store.tokens_revoked_since(since - chrono::Duration::seconds(1)).await {
                    Ok(ids) => {
                        for id in ids {
                            app.domain.tokens.ended(id);
                        }
                        // Moved on only when both looks worked, so a failed one is retried.
                        if expired_checked {
                            since = now;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot check for revoked tokens"),
                }
            }
            _ = crate::state::stopping(&mut shutdown) => return,
        }
    }
}
