//! The dashboard's live feed: `GET /api/v1/events?ticket=…`, a WebSocket of JSON messages.
//!
//! Browsers cannot set an `Authorization` header on a WebSocket, so the dashboard first asks
//! `POST /api/v1/events/ticket` (with its bearer token) for a ticket: a signed token that is good
//! for 30 seconds, names the user, and is accepted only here (an access token is not a ticket and
//! a ticket is not an access token). Query strings can end up in logs, hence the short life.
//!
//! Messages, all `{"type": …}`:
//! - `snapshot` — `{"workspaces": [Workspace…]}`, first, and again whenever the socket fell
//!   behind the event stream;
//! - `workspace` — `{"workspace": Workspace}`, a workspace came online, went offline or changed;
//! - `ping` — every 25 seconds, so the page can tell a live socket from a dead one.

use axum::{
    body::Bytes,
    extract::{
        Query, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    response::{IntoResponse, Response},
};
use chrono::{Duration, Utc};
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use crate::{
    api::{
        auth::AuthUser,
        envelope::ok,
        error::{ApiError, ApiResult},
    },
    auth::TokenUse,
    state::{AppState, SEND_TIMEOUT},
    store::Workspace,
};

/// The JSON text of a `workspace` event.
pub fn workspace(w: &Workspace) -> Bytes {
    Bytes::from(json!({ "type": "workspace", "workspace": w }).to_string())
}

fn snapshot(workspaces: &[Workspace]) -> String {
    json!({ "type": "snapshot", "workspaces": workspaces }).to_string()
}

/// Events are buffered up to this size and flushed once per burst: one write for everything that
/// queued up while the socket was busy, instead of one per event.
const WRITE_BUFFER: usize = 64 * 1024;

/// How often the feed sends `{"type":"ping"}`.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(25);

/// Runs a write to the browser with [`SEND_TIMEOUT`]: one that stopped reading ends its socket.
async fn within(
    write: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> anyhow::Result<()> {
    match tokio::time::timeout(SEND_TIMEOUT, write).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("the browser stopped reading"),
    }
}

/// The owner's workspaces as they are now: stored rows, with live sessions' views on top.
pub async fn current(
    app: &AppState,
    owner: Uuid,
) -> Result<Vec<Workspace>, crate::store::StoreError> {
    let mut all = app.store.list_workspaces(owner).await?;
    app.sessions.overlay(&mut all);
    Ok(all)
}

#[derive(Serialize)]
struct Ticket {
    ticket: String,
    expires_in: u64,
}

/// `POST /api/v1/events/ticket`.
pub async fn ticket(State(app): State<AppState>, user: AuthUser) -> Response {
    let ttl = app.config.auth.events_ticket_ttl_secs;
    let ticket = app.signer.issue(
        user.id,
        TokenUse::Events,
        Utc::now(),
        Duration::seconds(ttl as i64),
    );
    ok(Ticket {
        ticket,
        expires_in: ttl,
    })
}

/// Query of `GET /api/v1/events`.
#[derive(Deserialize)]
pub struct EventsQuery {
    ticket: Option<String>,
}

/// `GET /api/v1/events`.
pub async fn socket(
    State(app): State<AppState>,
    Query(q): Query<EventsQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let owner = q
        .ticket
        .as_deref()
        .and_then(|t| app.signer.verify(t, TokenUse::Events))
        .ok_or_else(|| ApiError::unauthorized("missing, expired or invalid events ticket"))?;
    Ok(upgrade
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            if let Err(e) = feed(app, owner, socket).await {
                tracing::debug!(error = %e, "events socket ended");
            }
        })
        .into_response())
}

async fn feed(app: AppState, owner: Uuid, mut socket: WebSocket) -> anyhow::Result<()> {
    // Subscribe before the snapshot so nothing falls between them.
    let mut events = app.bus.subscribe(owner);
    tracing::debug!(%owner, "events socket open");
    let mut shutdown = app.shutdown.clone();
    // Browsers cannot see WebSocket pings, so a JSON ping lets the page notice a dead socket.
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let first = snapshot(&current(&app, owner).await?);
    within(socket.send(Message::Text(first.into()))).await?;
    loop {
        tokio::select! {
            event = events.recv() => {
                let mut next = event;
                loop {
                    match next {
                        Ok(bytes) => {
                            let text = axum::extract::ws::Utf8Bytes::try_from(bytes)?;
                            within(socket.feed(Message::Text(text))).await?;
                        }
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "events socket lagged; resending snapshot");
                            let all = current(&app, owner).await?;
                            within(socket.feed(Message::Text(snapshot(&all).into()))).await?;
                        }
                        Err(RecvError::Closed) => return Ok(()),
                    }
                    // Take whatever else is already queued before writing.
                    next = match events.try_recv() {
                        Ok(bytes) => Ok(bytes),
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(TryRecvError::Closed) => Err(RecvError::Closed),
                        Err(TryRecvError::Empty) => break,
                    };
                }
                within(socket.flush()).await?;
            }
            _ = keepalive.tick() => {
                within(socket.send(Message::Text(r#"{"type":"ping"}"#.into()))).await?;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
            _ = crate::state::stopping(&mut shutdown) => {
                let _ = within(socket.send(Message::Close(None))).await;
                return Ok(());
            }
        }
    }
}
