//! One agent session: handshake, heartbeats, durable messages, and the workspace's live view.
//!
//! The session keeps the workspace as the dashboard shows it in memory, so that a status change
//! is stored once and published from memory without reading it back.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use chrono::Utc;
use fulcrum_protocol::{
    AgentFrame, AgentMessage, Hello, PROTOCOL_VERSION, Reject, RejectReason, RelayFrame,
    SUPPORTED_VERSIONS, Welcome,
    reliable::{Accept, Inbox},
};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use tokio::{sync::mpsc, time::MissedTickBehavior};
use uuid::Uuid;

use super::{Control, SessionEntry};
use crate::{
    events,
    state::AppState,
    store::{AgentConnect, AgentToken, Applied, RepoRecord, Workspace},
};

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
    let mut view = connected.workspace;
    let session_id = Uuid::now_v7();
    let heartbeat = app.config.agents.heartbeat();
    let welcome = RelayFrame::Welcome(Welcome {
        session_id,
        workspace_id: view.id,
        heartbeat_interval_ms: heartbeat.as_millis() as u64,
        agent_stream_acked: connected.agent_seq,
        relay_stream: Uuid::nil(),
        relay_version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let (control_tx, mut control) = mpsc::channel(4);
    app.sessions.register(
        view.id,
        SessionEntry {
            session_id,
            token_id: token.id,
            control: control_tx,
        },
    );
    tracing::info!(
        workspace = %view.id, session = %session_id, name = %view.name,
        agent_version = %hello.agent_version, "agent connected"
    );

    let mut inbox = Inbox::new(hello.agent_stream, connected.agent_seq);
    let end = if send(&mut sink, &welcome).await {
        app.bus.publish(token.owner_id, events::workspace(&view));
        drive(
            &app,
            &token,
            &mut view,
            &mut inbox,
            &mut sink,
            &mut stream,
            &mut control,
            heartbeat,
        )
        .await
    } else {
        End::SendFailed
    };
    tracing::info!(workspace = %view.id, session = %session_id, ?end, "agent session ended");
    if app.sessions.remove(view.id, session_id) {
        let now = Utc::now();
        if let Err(e) = app
            .store
            .agent_disconnected(token.owner_id, view.id, now)
            .await
        {
            tracing::error!(error = %e, "cannot record agent disconnect");
        }
        view.online = false;
        view.last_seen_at = Some(now);
        app.bus.publish(token.owner_id, events::workspace(&view));
    }
}

/// The session's main loop, after the welcome.
#[allow(clippy::too_many_arguments)]
async fn drive(
    app: &AppState,
    token: &AgentToken,
    view: &mut Workspace,
    inbox: &mut Inbox,
    sink: &mut Sink,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    control: &mut mpsc::Receiver<Control>,
    heartbeat: Duration,
) -> End {
    let mut shutdown = app.shutdown.clone();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
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
                        return refuse(sink, RejectReason::ProtocolViolation, "text frames are not part of the protocol").await;
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
                    Err(e) => return refuse(sink, RejectReason::ProtocolViolation, &format!("bad frame: {e}")).await,
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
                        return refuse(sink, RejectReason::ProtocolViolation, "hello sent twice").await;
                    }
                    AgentFrame::Durable(d) => match inbox.check(d.seq) {
                        Accept::Apply => {
                            let now = Utc::now();
                            match app.store.apply_agent_message(token.owner_id, view.id, inbox.stream, d.seq, &d.body, now).await {
                                Ok(Applied::Applied) => {
                                    inbox.mark_applied(d.seq);
                                    apply_to_view(view, d.body, now);
                                    app.bus.publish(token.owner_id, events::workspace(view));
                                }
                                Ok(Applied::Duplicate) => inbox.applied = inbox.applied.max(d.seq),
                                Ok(Applied::OutOfOrder) => {
                                    return refuse(sink, RejectReason::Replaced, "another session advanced this workspace").await;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot store agent message");
                                    return refuse(sink, RejectReason::Unavailable, "the relay cannot store messages right now").await;
                                }
                            }
                            if !send(sink, &RelayFrame::Ack { seq: inbox.applied }).await {
                                return End::SendFailed;
                            }
                        }
                        Accept::Duplicate => {
                            if !send(sink, &RelayFrame::Ack { seq: inbox.applied }).await {
                                return End::SendFailed;
                            }
                        }
                        Accept::Gap { expected } => {
                            tracing::warn!(got = d.seq, expected, "gap in agent stream; waiting for replay");
                        }
                    },
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() > heartbeat * 2 {
                    return End::Silent;
                }
                nonce += 1;
                ping_sent = Some((nonce, Instant::now()));
                if !send(sink, &RelayFrame::Ping { nonce, rtt_us }).await {
                    return End::SendFailed;
                }
            }
            cmd = control.recv() => match cmd {
                Some(Control::Replaced) | None => {
                    refuse(sink, RejectReason::Replaced, "a newer connection for this workspace took over").await;
                    return End::Replaced;
                }
                Some(Control::TokenRevoked) => {
                    refuse(sink, RejectReason::Unauthorized, "the agent token was revoked").await;
                    return End::TokenRevoked;
                }
            },
            _ = crate::state::stopping(&mut shutdown) => {
                let after_ms = 100 + rand::random::<u64>() % 900;
                let _ = send(sink, &RelayFrame::Reconnect { after_ms }).await;
                let _ = sink.close().await;
                return End::Shutdown;
            }
        }
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
