//! One agent session: handshake, heartbeats, durable messages, and the workspace's live view.
//!
//! A durable message is published to the live feed as soon as it arrives, from the workspace
//! view the session keeps in memory, and handed to the session's writer task. The writer commits
//! whatever has queued up in one transaction (group commit) and only then is the agent sent an
//! acknowledgement. So the feed never waits for the disk, and durability is unchanged: whatever
//! was not committed is not acknowledged, and the agent replays it after a reconnect.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::extract::ws::{Message, WebSocket};
use chrono::Utc;
use fulcrum_protocol::{
    AgentFrame, AgentMessage, Durable, Hello, PROTOCOL_VERSION, Reject, RejectReason, RelayFrame,
    SUPPORTED_VERSIONS, Welcome,
    reliable::{Accept, Inbox},
};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use tokio::{
    sync::{mpsc, watch},
    time::MissedTickBehavior,
};
use uuid::Uuid;

use super::{Control, SessionEntry};
use crate::{
    events,
    state::AppState,
    store::{AgentConnect, AgentToken, Applied, DynStore, RepoRecord, Workspace},
};

/// Messages accepted but not yet handed to the writer, at most.
const PERSIST_QUEUE: usize = 1024;
/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;

/// What the writer has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persisted {
    /// Everything up to and including this sequence number is committed.
    UpTo(u64),
    /// Another session advanced the workspace's stream: this one is stale.
    Superseded,
    /// The database failed; the session must end so the agent replays later.
    Failed,
}

type Sink = SplitSink<WebSocket, Message>;

/// Why a session ended, for the log.
#[derive(Debug)]
enum End {
    AgentClosed,
    Silent,
    Replaced,
    TokenRevoked,
    Shutdown,
    Rejected,
    SendFailed,
}

/// Runs a session on an upgraded socket until it ends.
pub async fn run(app: AppState, token: AgentToken, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let hello_timeout = Duration::from_millis(app.config.agents.hello_timeout_ms);
    let hello = match tokio::time::timeout(hello_timeout, stream.next()).await {
        Ok(Some(Ok(Message::Binary(bytes)))) => fulcrum_protocol::decode::<AgentFrame>(&bytes),
        Ok(Some(Ok(_))) => {
            let _ = reject(
                &mut sink,
                RejectReason::ProtocolViolation,
                "expected a binary hello frame",
            )
            .await;
            return;
        }
        Ok(_) => return,
        Err(_) => {
            let _ = reject(
                &mut sink,
                RejectReason::ProtocolViolation,
                "no hello in time",
            )
            .await;
            return;
        }
    };
    let hello = match hello {
        Ok(AgentFrame::Hello(hello)) => hello,
        Ok(_) => {
            let _ = reject(
                &mut sink,
                RejectReason::ProtocolViolation,
                "the first frame must be a hello",
            )
            .await;
            return;
        }
        Err(e) => {
            let _ = reject(
                &mut sink,
                RejectReason::ProtocolViolation,
                &format!("bad hello: {e}"),
            )
            .await;
            return;
        }
    };
    if !SUPPORTED_VERSIONS.contains(&hello.protocol_version) {
        let message = format!(
            "agent speaks protocol {} but this relay speaks {:?}; upgrade the agent",
            hello.protocol_version, SUPPORTED_VERSIONS
        );
        let reason = RejectReason::VersionMismatch {
            supported: SUPPORTED_VERSIONS.to_vec(),
        };
        let _ = reject(&mut sink, reason, &message).await;
        return;
    }
    if let Err(message) = validate_hello(&hello) {
        let _ = reject(&mut sink, RejectReason::ProtocolViolation, &message).await;
        return;
    }

    let now = Utc::now();
    let connected = app
        .store
        .agent_connected(&AgentConnect {
            owner_id: token.owner_id,
            token_id: token.id,
            identity: &hello.workspace,
            agent_version: &hello.agent_version,
            agent_stream: hello.agent_stream,
            now,
        })
        .await;
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot record agent session");
            let _ = reject(
                &mut sink,
                RejectReason::Unavailable,
                "the relay cannot reach its database",
            )
            .await;
            return;
        }
    };
    let view = Arc::new(Mutex::new(connected.workspace));
    let ws_id = lock(&view).id;
    let session_id = Uuid::now_v7();
    let heartbeat = app.config.agents.heartbeat();
    let welcome = RelayFrame::Welcome(Welcome {
        session_id,
        workspace_id: ws_id,
        heartbeat_interval_ms: heartbeat.as_millis() as u64,
        agent_stream_acked: connected.agent_seq,
        relay_stream: Uuid::nil(),
        relay_version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let (control_tx, mut control) = mpsc::channel(4);
    app.sessions.register(
        ws_id,
        SessionEntry {
            session_id,
            token_id: token.id,
            control: control_tx,
            view: view.clone(),
        },
    );
    tracing::info!(
        workspace = %ws_id, session = %session_id, name = %lock(&view).name,
        agent_version = %hello.agent_version, "agent connected"
    );

    let inbox = Inbox::new(hello.agent_stream, connected.agent_seq);
    let (persist_tx, persist_rx) = mpsc::channel(PERSIST_QUEUE);
    let (persisted_tx, persisted_rx) = watch::channel(Persisted::UpTo(connected.agent_seq));
    let writer = tokio::spawn(write_behind(
        app.store.clone(),
        (token.owner_id, ws_id, hello.agent_stream),
        persist_rx,
        persisted_tx,
    ));
    let end = if send(&mut sink, &welcome).await {
        app.bus
            .publish(token.owner_id, events::workspace(&lock(&view)));
        let mut session = Session {
            app: &app,
            token: &token,
            view: view.clone(),
            inbox,
            sink: &mut sink,
            persist: persist_tx,
            persisted: persisted_rx,
        };
        session.drive(&mut stream, &mut control, heartbeat).await
    } else {
        drop(persist_tx);
        End::SendFailed
    };
    // Let the writer finish what was accepted before recording the end of the session.
    if tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .is_err()
    {
        tracing::warn!(workspace = %ws_id, "writer did not finish in time");
    }
    tracing::info!(workspace = %ws_id, session = %session_id, ?end, "agent session ended");
    if app.sessions.remove(ws_id, session_id) {
        let now = Utc::now();
        if let Err(e) = app
            .store
            .agent_disconnected(token.owner_id, ws_id, now)
            .await
        {
            tracing::error!(error = %e, "cannot record agent disconnect");
        }
        let event = {
            let mut view = lock(&view);
            view.online = false;
            view.last_seen_at = Some(now);
            events::workspace(&view)
        };
        app.bus.publish(token.owner_id, event);
    }
}

/// The parts of a running session its loop works on.
struct Session<'a> {
    app: &'a AppState,
    token: &'a AgentToken,
    view: Arc<Mutex<Workspace>>,
    inbox: Inbox,
    sink: &'a mut Sink,
    persist: mpsc::Sender<Durable<AgentMessage>>,
    persisted: watch::Receiver<Persisted>,
}

impl Session<'_> {
    /// The session's main loop, after the welcome.
    async fn drive(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        control: &mut mpsc::Receiver<Control>,
        heartbeat: Duration,
    ) -> End {
        let mut shutdown = self.app.shutdown.clone();
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut nonce = 0u64;
        let mut ping_sent: Option<(u64, Instant)> = None;
        let mut rtt_us: Option<u64> = None;
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let bytes = match frame {
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => { last_heard = Instant::now(); continue }
                        Some(Ok(Message::Text(_))) => {
                            return refuse(self.sink, RejectReason::ProtocolViolation, "text frames are not part of the protocol").await;
                        }
                        Some(Ok(Message::Close(_))) | None => return End::AgentClosed,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "agent socket error");
                            return End::AgentClosed;
                        }
                    };
                    last_heard = Instant::now();
                    let frame = match fulcrum_protocol::decode::<AgentFrame>(&bytes) {
                        Ok(f) => f,
                        Err(e) => return refuse(self.sink, RejectReason::ProtocolViolation, &format!("bad frame: {e}")).await,
                    };
                    match frame {
                        AgentFrame::Pong { nonce: n } => {
                            if let Some((sent_nonce, at)) = ping_sent
                                && sent_nonce == n
                            {
                                rtt_us = Some(at.elapsed().as_micros() as u64);
                                ping_sent = None;
                            }
                        }
                        AgentFrame::Ack { .. } => {}
                        AgentFrame::Hello(_) => {
                            return refuse(self.sink, RejectReason::ProtocolViolation, "hello sent twice").await;
                        }
                        AgentFrame::Durable(d) => {
                            if let Some(end) = self.accept(d).await {
                                return end;
                            }
                        }
                    }
                }
                changed = self.persisted.changed() => {
                    let persisted = *self.persisted.borrow_and_update();
                    match (changed, persisted) {
                        (Ok(()), Persisted::UpTo(seq)) => {
                            if !send(self.sink, &RelayFrame::Ack { seq }).await {
                                return End::SendFailed;
                            }
                        }
                        (_, Persisted::Superseded) => {
                            return refuse(self.sink, RejectReason::Replaced, "another session advanced this workspace").await;
                        }
                        _ => {
                            return refuse(self.sink, RejectReason::Unavailable, "the relay cannot store messages right now").await;
                        }
                    }
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > heartbeat * 2 {
                        return End::Silent;
                    }
                    nonce += 1;
                    ping_sent = Some((nonce, Instant::now()));
                    if !send(self.sink, &RelayFrame::Ping { nonce, rtt_us }).await {
                        return End::SendFailed;
                    }
                }
                cmd = control.recv() => match cmd {
                    Some(Control::Replaced) | None => {
                        refuse(self.sink, RejectReason::Replaced, "a newer connection for this workspace took over").await;
                        return End::Replaced;
                    }
                    Some(Control::TokenRevoked) => {
                        refuse(self.sink, RejectReason::Unauthorized, "the agent token was revoked").await;
                        return End::TokenRevoked;
                    }
                },
                _ = crate::state::stopping(&mut shutdown) => {
                    let after_ms = 100 + rand::random::<u64>() % 900;
                    let _ = send(self.sink, &RelayFrame::Reconnect { after_ms }).await;
                    let _ = self.sink.close().await;
                    return End::Shutdown;
                }
            }
        }
    }

    /// Takes a durable message: publishes it live and queues it for the writer, or answers a
    /// replay with the committed position. `Some` ends the session.
    async fn accept(&mut self, d: Durable<AgentMessage>) -> Option<End> {
        match self.inbox.check(d.seq) {
            Accept::Apply => {
                self.inbox.mark_applied(d.seq);
                let event = {
                    let mut view = lock(&self.view);
                    apply_to_view(&mut view, d.body.clone(), Utc::now());
                    events::workspace(&view)
                };
                self.app.bus.publish(self.token.owner_id, event);
                if self.persist.send(d).await.is_err() {
                    return Some(
                        refuse(
                            self.sink,
                            RejectReason::Unavailable,
                            "the relay cannot store messages right now",
                        )
                        .await,
                    );
                }
            }
            Accept::Duplicate => {
                // Acknowledge only what is committed, never more.
                let persisted = *self.persisted.borrow();
                if let Persisted::UpTo(seq) = persisted
                    && !send(self.sink, &RelayFrame::Ack { seq }).await
                {
                    return Some(End::SendFailed);
                }
            }
            Accept::Gap { expected } => {
                tracing::warn!(
                    got = d.seq,
                    expected,
                    "gap in agent stream; waiting for replay"
                );
            }
        }
        None
    }
}

/// The session's writer: commits queued messages in batches and reports how far it got.
async fn write_behind(
    store: DynStore,
    (owner, workspace, stream): (Uuid, Uuid, Uuid),
    mut queue: mpsc::Receiver<Durable<AgentMessage>>,
    persisted: watch::Sender<Persisted>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let last = batch.last().map_or(0, |m| m.seq);
        let outcome = match store
            .apply_agent_messages(owner, workspace, stream, &batch, Utc::now())
            .await
        {
            Ok(Applied::Applied | Applied::Duplicate) => Persisted::UpTo(last),
            Ok(Applied::OutOfOrder) => Persisted::Superseded,
            Err(e) => {
                tracing::error!(%workspace, error = %e, "cannot store agent messages");
                Persisted::Failed
            }
        };
        persisted.send_replace(outcome);
        if outcome != Persisted::UpTo(last) {
            return;
        }
        batch.clear();
    }
}

/// Checks the sizes and shapes the relay stores, so bad input is refused rather than stored.
fn validate_hello(hello: &Hello) -> Result<(), String> {
    let w = &hello.workspace;
    let fields = [
        ("key", &w.key, 128),
        ("name", &w.name, 255),
        ("hostname", &w.hostname, 255),
    ];
    for (what, value, max) in fields {
        if value.is_empty() || value.len() > max {
            return Err(format!("workspace {what} must be 1 to {max} bytes"));
        }
    }
    if w.root.len() > 4096 || hello.agent_version.len() > 64 {
        return Err("workspace root or agent version too long".into());
    }
    debug_assert!(SUPPORTED_VERSIONS.contains(&PROTOCOL_VERSION));
    Ok(())
}

fn lock(view: &Mutex<Workspace>) -> std::sync::MutexGuard<'_, Workspace> {
    view.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply_to_view(view: &mut Workspace, message: AgentMessage, now: chrono::DateTime<Utc>) {
    view.last_seen_at = Some(now);
    match message {
        AgentMessage::RepoState(status) => {
            match view
                .repos
                .binary_search_by(|r| r.status.path.cmp(&status.path))
            {
                Ok(i) => {
                    view.repos[i] = RepoRecord {
                        status,
                        updated_at: now,
                    }
                }
                Err(i) => view.repos.insert(
                    i,
                    RepoRecord {
                        status,
                        updated_at: now,
                    },
                ),
            }
        }
        AgentMessage::RepoSet { paths } => view.repos.retain(|r| paths.contains(&r.status.path)),
    }
}

async fn send(sink: &mut Sink, frame: &RelayFrame) -> bool {
    match fulcrum_protocol::encode(frame) {
        Ok(bytes) => sink.send(Message::Binary(bytes.into())).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode relay frame");
            false
        }
    }
}

async fn reject(sink: &mut Sink, reason: RejectReason, message: &str) -> bool {
    tracing::info!(?reason, message, "rejecting agent");
    let sent = send(
        sink,
        &RelayFrame::Reject(Reject {
            reason,
            message: message.into(),
        }),
    )
    .await;
    let _ = sink.close().await;
    sent
}

async fn refuse(sink: &mut Sink, reason: RejectReason, message: &str) -> End {
    reject(sink, reason, message).await;
    End::Rejected
}
