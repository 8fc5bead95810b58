//! The dashboard's live feed: `GET /api/v1/events?ticket=…`, a WebSocket of JSON messages.
//!
//! Browsers cannot set an `Authorization` header on a WebSocket, so the dashboard first asks
//! `POST /api/v1/events/ticket` (with its bearer token) for a ticket: a signed token that is good
//! for 30 seconds, opens one socket, names the user and the login, and is accepted only here (an
//! access token is not a ticket and a ticket is not an access token). Query strings can end up
//! in logs, hence the short life and the single use.
//!
//! Access is checked again the moment it changes ([`crate::access`]): when the user loses access
//! to a project, each log they follow is checked and stopped if it is no longer theirs, before
//! another byte of it is sent; when their login ends (logout, a replayed refresh token), the
//! socket closes.
//!
//! Messages, all `{"type": …}`:
//! - `snapshot` — `{"workspaces": [Workspace…]}`, first, and again whenever the socket fell
//!   behind the event stream;
//! - `workspace` — `{"workspace": Workspace}`, a workspace came online, went offline or changed;
//! - `ping` — every 25 seconds, so the page can tell a live socket from a dead one;
//! - `task` — `{"task": Task}`, a task the user may see was created or changed;
//! - `log` — `{"task", "offset", "data"}` (base64), the next bytes of a followed task's log, in
//!   order; `log_end` — `{"task", "offset"}`, the followed task ended and all its log was sent;
//! - `error` — `{"task"?, "message"}`, a request that could not be served.
//!
//! The client asks to follow a log with `{"type": "follow", "task": ID, "offset": N}` and stops
//! with `{"type": "unfollow", "task": ID}`; at most [`MAX_FOLLOWS`] at once per socket.

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
        envelope::{AuthErrors, Envelope, ok},
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

/// Most logs one socket follows at once.
pub const MAX_FOLLOWS: usize = 16;
/// Most bytes in one `log` message.
const LOG_MESSAGE_BYTES: usize = 1024 * 1024;

/// A request from the browser.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Follow {
        task: Uuid,
        #[serde(default)]
        offset: u64,
    },
    Unfollow {
        task: Uuid,
    },
}

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

/// A short-lived ticket to open the events socket with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ticket {
    ticket: String,
    expires_in: u64,
}

/// `POST /api/v1/events/ticket`.
#[utoipa::path(
    post,
    path = "/api/v1/events/ticket",
    operation_id = "events_ticket",
    tag = "events",
    responses(
        (status = 200, description = "A ticket for `GET /api/v1/events?ticket=…`", body = Envelope<Ticket>),
        AuthErrors
    )
)]
pub async fn ticket(State(app): State<AppState>, user: AuthUser) -> Response {
    let ttl = app.config.auth.events_ticket_ttl_secs;
    let ticket = app.signer.issue_in(
        user.id,
        user.login,
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
    let ticket = q
        .ticket
        .as_deref()
        .and_then(|t| app.signer.check(t, TokenUse::Events))
        .ok_or_else(|| ApiError::unauthorized("missing, expired or invalid events ticket"))?;
    if !app.used_tickets.take(&ticket, Utc::now()) {
        return Err(ApiError::unauthorized(
            "this events ticket was already used; ask for a new one",
        ));
    }
    let (owner, login) = (ticket.user, ticket.login);
    Ok(upgrade
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            if let Err(e) = feed(app, owner, login, socket).await {
                tracing::debug!(error = %e, "events socket ended");
            }
        })
        .into_response())
}

/// Aborts the socket's log followers when the socket ends.
struct AbortAll<'a>(&'a mut std::collections::HashMap<Uuid, tokio::task::JoinHandle<()>>);

impl Drop for AbortAll<'_> {
    fn drop(&mut self) {
        for (_, h) in self.0.drain() {
            h.abort();
        }
    }
}

/// Serves a `follow` or `unfollow`; the answer, if any, is an `error` message.
async fn handle_request(
    app: &AppState,
    owner: Uuid,
    text: &str,
    follows: &mut std::collections::HashMap<Uuid, tokio::task::JoinHandle<()>>,
    log_tx: &tokio::sync::mpsc::Sender<(Uuid, String)>,
) -> Option<String> {
    let error = |task: Option<Uuid>, message: &str| {
        Some(json!({ "type": "error", "task": task, "message": message }).to_string())
    };
    let request = match serde_json::from_str::<ClientMessage>(text) {
        Ok(r) => r,
        Err(e) => return error(None, &format!("bad request: {e}")),
    };
    match request {
        ClientMessage::Unfollow { task } => {
            if let Some(h) = follows.remove(&task) {
                h.abort();
            }
            None
        }
        ClientMessage::Follow { task, offset } => {
            if offset > crate::tasks::MAX_LOG_OFFSET {
                return error(
                    Some(task),
                    &format!("offset must be at most {}", crate::tasks::MAX_LOG_OFFSET),
                );
            }
            match app.store.get_task(owner, task).await {
                Ok(Some(_)) => {}
                Ok(None) => return error(Some(task), "task not found"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look a task up");
                    return error(Some(task), "the relay cannot read tasks right now");
                }
            }
            if let Some(h) = follows.remove(&task) {
                h.abort();
            }
            if follows.len() >= MAX_FOLLOWS {
                return error(
                    Some(task),
                    &format!("at most {MAX_FOLLOWS} logs followed at once"),
                );
            }
            let handle = tokio::spawn(follow(app.clone(), owner, task, offset, log_tx.clone()));
            follows.insert(task, handle);
            None
        }
    }
}

/// Sends `task`'s log from `offset` as it is stored, until the task ended and all was sent.
/// Reads come from the store, so a follower never misses bytes, however late it starts.
pub async fn follow(
    app: AppState,
    owner: Uuid,
    task: Uuid,
    mut offset: u64,
    out: tokio::sync::mpsc::Sender<(Uuid, String)>,
) {
    use base64::Engine;
    let mut progress = app.logs.subscribe(task);
    // Whether the task was seen finished before the last read: only a read that started after
    // that can be trusted to hold the end of the log.
    let mut seen_finished = false;
    loop {
        progress.borrow_and_update();
        let slice = match crate::tasks::read_log(&app, task, offset, LOG_MESSAGE_BYTES).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a task log");
                return;
            }
        };
        if !slice.data.is_empty() {
            let message = json!({
                "type": "log",
                "task": task,
                "offset": offset,
                "data": base64::engine::general_purpose::STANDARD.encode(&slice.data),
            });
            offset += slice.data.len() as u64;
            if out.send((task, message.to_string())).await.is_err() {
                return;
            }
            continue;
        }
        match app.store.get_task(owner, task).await {
            // The result may have been committed, with the last output, after the read above:
            // read once more before calling it the end.
            Ok(Some(t)) if t.is_finished() && !seen_finished => {
                seen_finished = true;
                continue;
            }
            // Finished before the read, and nothing more to read: its result is committed after
            // all its output, so this is the end (also if the log has a gap from a restored
            // database).
            Ok(Some(t)) if t.is_finished() => {
                let end = json!({ "type": "log_end", "task": task, "offset": offset });
                let _ = out.send((task, end.to_string())).await;
                return;
            }
            Ok(Some(_)) => {}
            _ => return,
        }
        // Woken when the log grows or the task ends; the timeout covers changes committed by
        // another relay node.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), progress.changed()).await;
    }
}

/// Checks each followed task again after `owner`'s access changed; stops (and reports) the
/// follows of tasks they may no longer see.
async fn recheck_follows(
    app: &AppState,
    owner: Uuid,
    follows: &mut std::collections::HashMap<Uuid, tokio::task::JoinHandle<()>>,
) -> Vec<Uuid> {
    let mut lost = Vec::new();
    for task in follows.keys().copied().collect::<Vec<_>>() {
        // A failed lookup counts as no access: better to stop a follow than leak a log.
        if !matches!(app.store.get_task(owner, task).await, Ok(Some(_))) {
            if let Some(h) = follows.remove(&task) {
                h.abort();
            }
            app.metrics.stream_cut("follow");
            lost.push(task);
        }
    }
    lost
}

async fn feed(
    app: AppState,
    owner: Uuid,
    login: Option<Uuid>,
    mut socket: WebSocket,
) -> anyhow::Result<()> {
    use crate::access::AccessChange;
    // Subscribe before the snapshot so nothing falls between them.
    let mut access = app.access.subscribe();
    let mut events = app.bus.subscribe(owner);
    tracing::debug!(%owner, "events socket open");
    let mut shutdown = app.shutdown.clone();
    // Browsers cannot see WebSocket pings, so a JSON ping lets the page notice a dead socket.
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let first = snapshot(&current(&app, owner).await?);
    within(socket.send(Message::Text(first.into()))).await?;
    let (log_tx, mut log_rx) = tokio::sync::mpsc::channel::<(Uuid, String)>(4);
    let mut follows: std::collections::HashMap<Uuid, tokio::task::JoinHandle<()>> =
        Default::default();
    let _abort_on_exit = AbortAll(&mut follows);
    // Tasks whose follow was stopped because access went away.
    let mut cut: std::collections::HashSet<Uuid> = Default::default();
    loop {
        let follows = &mut *_abort_on_exit.0;
        tokio::select! {
            // Access changes first: nothing queued is sent before they are acted on.
            biased;
            change = access.recv() => {
                let recheck = match change {
                    Ok(AccessChange::Login(ended)) if login == Some(ended) => {
                        app.metrics.stream_cut("events");
                        let _ = within(socket.send(Message::Close(None))).await;
                        return Ok(());
                    }
                    Ok(AccessChange::User(user)) => user == owner,
                    Ok(_) => false,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => false,
                };
                if recheck {
                    for task in recheck_follows(&app, owner, follows).await {
                        cut.insert(task);
                        let message = json!({
                            "type": "error",
                            "task": task,
                            "message": "you no longer have access to this task",
                        });
                        within(socket.send(Message::Text(message.to_string().into()))).await?;
                    }
                }
            }
            Some((task, text)) = log_rx.recv() => {
                // Read before its follow was cut: its bytes stay here.
                if !cut.contains(&task) {
                    within(socket.send(Message::Text(text.into()))).await?;
                    app.metrics.events_sent(1);
                }
            }
            event = events.recv() => {
                let mut next = event;
                loop {
                    match next {
                        Ok(bytes) => {
                            let text = axum::extract::ws::Utf8Bytes::try_from(bytes)?;
                            within(socket.feed(Message::Text(text))).await?;
                            app.metrics.events_sent(1);
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
                Some(Ok(Message::Text(text))) => {
                    follows.retain(|_, h| !h.is_finished());
                    let reply = handle_request(&app, owner, &text, follows, &log_tx).await;
                    // Followed again (access came back): its new follow's bytes go out.
                    cut.retain(|t| !follows.contains_key(t));
                    if let Some(reply) = reply {
                        within(socket.send(Message::Text(reply.into()))).await?;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = crate::state::stopping(&mut shutdown) => {
                let _ = within(socket.send(Message::Close(None))).await;
                return Ok(());
            }
        }
    }
}
