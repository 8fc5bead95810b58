//! The dashboard's live feed: `GET /api/v1/events?ticket=…`, a WebSocket of JSON messages.
//!
//! Browsers cannot set an `Authorization` header on a WebSocket, so the dashboard first asks
//! `POST /api/v1/events/ticket` (with its bearer token; `api::tickets`) for a ticket: a signed token that is good
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

use std::collections::HashMap;

use axum::{
    extract::{
        Query, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    response::{IntoResponse, Response},
};
use chrono::Utc;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use crate::{
    auth::TokenUse,
    http::error::{ApiError, ApiResult},
    state::{AppState, SEND_TIMEOUT},
    store::{Task, Workspace},
};

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
    // Subscribed before the check: a logout after it is heard by the socket.
    let access = app.access.subscribe();
    if app.access.is_deactivated(owner) || !app.domain.accounts.login_active(login).await? {
        return Err(ApiError::unauthorized("this login has ended; log in again"));
    }
    Ok(upgrade
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            if let Err(e) = feed(app, owner, login, access, socket).await {
                tracing::debug!(error = %e, "events socket ended");
            }
        })
        .into_response())
}

/// A message of a log follow: which follow wrote it, and whether it is the last.
pub struct FollowMessage {
    task: Uuid,
    generation: u64,
    text: String,
    last: bool,
    /// The follow ends because access went away (counted once, when it goes out).
    cut: bool,
}

/// The logs one socket follows. Every follow has a generation; only the current follow of a
/// task may have its messages sent, so bytes read by a follow that was replaced, stopped or cut
/// (access went away) never go out, whatever was still queued.
#[derive(Default)]
struct Follows {
    running: HashMap<Uuid, tokio::task::JoinHandle<()>>,
    current: HashMap<Uuid, u64>,
    next: u64,
}

impl Follows {
    /// Stops `task`'s follow; its queued messages are dropped.
    fn stop(&mut self, task: Uuid) {
        if let Some(h) = self.running.remove(&task) {
            h.abort();
        }
        self.current.remove(&task);
    }

    /// Whether a message may go out; forgets the follow after its last message.
    fn admit(&mut self, m: &FollowMessage) -> bool {
        let ok = self.current.get(&m.task) == Some(&m.generation);
        if ok && m.last {
            self.current.remove(&m.task);
        }
        ok
    }
}

impl Drop for Follows {
    fn drop(&mut self) {
        for (_, h) in self.running.drain() {
            h.abort();
        }
    }
}

/// Serves a `follow` or `unfollow`; the answer, if any, is an `error` message.
async fn handle_request(
    app: &AppState,
    owner: Uuid,
    text: &str,
    follows: &mut Follows,
    log_tx: &tokio::sync::mpsc::Sender<FollowMessage>,
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
            follows.stop(task);
            None
        }
        ClientMessage::Follow { task, offset } => {
            if offset > crate::tasks::MAX_LOG_OFFSET {
                return error(
                    Some(task),
                    &format!("offset must be at most {}", crate::tasks::MAX_LOG_OFFSET),
                );
            }
            let seen = match app.store.get_task(owner, task).await {
                Ok(Some(seen)) => seen,
                Ok(None) => return error(Some(task), "task not found"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look a task up");
                    return error(Some(task), "the relay cannot read tasks right now");
                }
            };
            follows.stop(task);
            follows.running.retain(|_, h| !h.is_finished());
            if follows.running.len() >= MAX_FOLLOWS {
                return error(
                    Some(task),
                    &format!("at most {MAX_FOLLOWS} logs followed at once"),
                );
            }
            follows.next += 1;
            let generation = follows.next;
            let handle = tokio::spawn(follow(
                app.clone(),
                owner,
                (seen, generation),
                offset,
                log_tx.clone(),
            ));
            follows.running.insert(task, handle);
            follows.current.insert(task, generation);
            None
        }
    }
}

/// Bytes a follow sends between checks that its reader may still see the task, besides the
/// checks made the moment access changes on this node (a backstop for changes made elsewhere).
const RECHECK_BYTES: u64 = 4 * 1024 * 1024;

/// Sends `task`'s log from `offset` as it is stored, until the task ended and all was sent.
/// Reads come from the store, so a follower never misses bytes, however late it starts.
async fn follow(
    app: AppState,
    owner: Uuid,
    (seen, generation): (Task, u64),
    mut offset: u64,
    out: tokio::sync::mpsc::Sender<FollowMessage>,
) {
    use base64::Engine;
    let task = seen.id;
    let message = |text: String, last: bool| FollowMessage {
        task,
        generation,
        text,
        last,
        cut: false,
    };
    let failed = |why: &str| {
        let text = json!({ "type": "error", "task": task, "message": why });
        message(text.to_string(), true)
    };
    // Counted when it goes out, so a follow also cut by an access change counts once.
    let lost = || FollowMessage {
        cut: true,
        ..failed("you no longer have access to this task")
    };
    let mut progress = app.feed.logs.subscribe(task);
    let mut checked_at = offset;
    // Whether the task was seen finished before the last read: only a read that started after
    // that can be trusted to hold the end of the log.
    let mut seen_finished = false;
    loop {
        progress.borrow_and_update();
        let slice =
            match crate::tasks::read_log(&*app.store, &seen, offset, LOG_MESSAGE_BYTES).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a task log");
                    let _ = out
                        .send(failed("the relay cannot read this log right now"))
                        .await;
                    return;
                }
            };
        if offset - checked_at >= RECHECK_BYTES {
            if !matches!(app.store.get_task(owner, task).await, Ok(Some(_))) {
                let _ = out.send(lost()).await;
                return;
            }
            checked_at = offset;
        }
        if !slice.data.is_empty() {
            let text = json!({
                "type": "log",
                "task": task,
                "offset": offset,
                "data": base64::engine::general_purpose::STANDARD.encode(&slice.data),
            });
            offset += slice.data.len() as u64;
            if out.send(message(text.to_string(), false)).await.is_err() {
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
                let _ = out.send(message(end.to_string(), true)).await;
                return;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let _ = out.send(lost()).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look a task up");
                let _ = out
                    .send(failed("the relay cannot read tasks right now"))
                    .await;
                return;
            }
        }
        // Woken when the log grows or the task ends; the timeout covers changes committed by
        // another relay node.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), progress.changed()).await;
    }
}

/// Checks each followed task again after `owner`'s access changed; stops (and reports) the
/// follows of tasks they may no longer see.
async fn recheck_follows(app: &AppState, owner: Uuid, follows: &mut Follows) -> Vec<Uuid> {
    let mut lost = Vec::new();
    for task in follows.current.keys().copied().collect::<Vec<_>>() {
        // A failed lookup counts as no access: better to stop a follow than leak a log.
        if !matches!(app.store.get_task(owner, task).await, Ok(Some(_))) {
            follows.stop(task);
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
    mut access: tokio::sync::broadcast::Receiver<crate::access::AccessChange>,
    mut socket: WebSocket,
) -> anyhow::Result<()> {
    use crate::access::AccessChange;
    // Subscribe before the snapshot so nothing falls between them.
    let mut events = app.bus.subscribe(owner);
    tracing::debug!(%owner, "events socket open");
    let mut shutdown = app.shutdown.clone();
    // Browsers cannot see WebSocket pings, so a JSON ping lets the page notice a dead socket.
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let first = snapshot(&app.domain.workspaces.current(owner).await?);
    within(socket.send(Message::Text(first.into()))).await?;
    let (log_tx, mut log_rx) = tokio::sync::mpsc::channel::<FollowMessage>(4);
    let mut follows = Follows::default();
    loop {
        tokio::select! {
            // Access changes first: nothing queued is sent before they are acted on.
            biased;
            change = access.recv() => {
                let (recheck, ended) = match change {
                    Ok(AccessChange::Login(ended)) => (false, login == Some(ended)),
                    Ok(AccessChange::User(user)) => (user == owner, false),
                    Ok(AccessChange::Account(user)) => (false, user == owner),
                    // Missed some: check everything, the login included.
                    Err(RecvError::Lagged(_)) => {
                        let gone = app.access.is_deactivated(owner)
                            || !app.domain.accounts.login_active(login).await.unwrap_or(false);
                        (true, gone)
                    }
                    Err(RecvError::Closed) => (false, false),
                };
                if ended {
                    app.metrics.stream_cut("events");
                    let _ = within(socket.send(Message::Close(None))).await;
                    return Ok(());
                }
                if recheck {
                    for task in recheck_follows(&app, owner, &mut follows).await {
                        let message = json!({
                            "type": "error",
                            "task": task,
                            "message": "you no longer have access to this task",
                        });
                        within(socket.send(Message::Text(message.to_string().into()))).await?;
                    }
                }
            }
            Some(message) = log_rx.recv() => {
                // From a follow since replaced, stopped or cut: its bytes stay here.
                if follows.admit(&message) {
                    if message.cut {
                        app.metrics.stream_cut("follow");
                    }
                    within(socket.send(Message::Text(message.text.into()))).await?;
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
                            let all = app.domain.workspaces.current(owner).await?;
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
                    let reply = handle_request(&app, owner, &text, &mut follows, &log_tx).await;
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
