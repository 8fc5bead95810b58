//! The agent's link to the relay: dial out, handshake, heartbeats, durable delivery, reconnect.
//!
//! One task owns the link for the agent's lifetime. Repository updates from the monitor arrive
//! on a channel and are coalesced per repository until they can be sent ([`Pending`]); once
//! sent, a message sits in the [`Outbox`] until the relay acknowledges it and is replayed after
//! a reconnect, so a relay restart or a network cut loses nothing, and the relay drops anything
//! it already applied.
//!
//! Reconnects back off exponentially with jitter, 100 ms doubling to a 30 s cap, and reset after
//! a session that got as far as the relay's welcome. A refused token or a protocol version the
//! relay does not speak waits the full cap every time, and `fulcrum status` says why.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::Utc;
use fulcrum_protocol::{
    AGENT_CONNECT_PATH, AgentFrame, AgentMessage, Durable, Hello, PROTOCOL_VERSION, RejectReason,
    RelayFrame, RelayMessage, RepoStatus, RunRequest, StreamPosition, WorkspaceIdentity,
    reliable::{Accept, Inbox},
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    jobs::{JobCommand, JobReport},
    outbox::DiskOutbox,
    status::{ConnectionState, Problem, ProblemKind, SharedStatus},
    transport::{Conn, Dialer, TransportMode},
};

/// How long to wait for the TCP/TLS/WebSocket handshake and for the relay's welcome.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay before jitter; jitter adds up to as much again (a 30 s cap).
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// The delay after a refusal that retrying cannot fix.
const REFUSED_DELAY: Duration = Duration::from_secs(30);
/// A session that lasted this long counts as healthy: the backoff starts again from the shortest
/// delay after it ends. A shorter one (say, a relay that welcomes then drops the agent) does not
/// reset it, so a failure right after the welcome cannot turn into a tight reconnect loop.
const SETTLED: Duration = Duration::from_secs(30);
/// Notices kept for `fulcrum status`.
const MAX_NOTICES: usize = 5;

/// A change the monitor wants the relay to know about.
#[derive(Debug, Clone)]
pub enum Update {
    /// The set of watched repositories changed (relative paths).
    RepoSet(Vec<String>),
    /// One repository's state changed.
    Repo(RepoStatus),
}

/// A run asked for by the workspace's terminal, and where to answer with the task id.
pub type RunCall = (RunRequest, oneshot::Sender<Result<uuid::Uuid, String>>);

/// The link's connections to the agent's other parts.
pub struct LinkChannels {
    /// Repository updates from the monitor.
    pub updates: mpsc::Receiver<Update>,
    /// Reports from the job runner, taken only while the outbox has room.
    pub job_reports: mpsc::Receiver<JobReport>,
    /// Instructions for the job runner.
    pub job_commands: mpsc::UnboundedSender<JobCommand>,
    /// Runs asked for by `fulcrum run`.
    pub run_calls: mpsc::Receiver<RunCall>,
    /// Runs the relay's tool calls.
    pub toolbox: crate::tools::Toolbox,
}

/// A tool call's answer on its way back: the session it belongs to, its id, the output.
type ToolAnswer = (u64, u64, fulcrum_protocol::tools::ToolOutput);

/// Where and how to reach the relay.
#[derive(Clone)]
pub struct RelayTarget {
    /// The relay's base URL (`http(s)://` or `ws(s)://`).
    pub url: String,
    /// The agent token.
    pub token: String,
    /// Extra CA certificates (PEM) to trust besides the system's.
    pub extra_ca: Option<PathBuf>,
    /// QUIC, the WebSocket, or QUIC falling back to the WebSocket.
    pub transport: TransportMode,
    /// The relay's UDP port for QUIC [default: the URL's port].
    pub quic_port: Option<u16>,
}

impl RelayTarget {
    /// A target with the default transport (`auto`).
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            extra_ca: None,
            transport: TransportMode::Auto,
            quic_port: None,
        }
    }
}

impl std::fmt::Debug for RelayTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTarget")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("extra_ca", &self.extra_ca)
            .field("transport", &self.transport)
            .field("quic_port", &self.quic_port)
            .finish()
    }
}

/// The WebSocket URL for a relay base URL.
pub fn connect_url(base: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let (scheme, rest) = base
        .split_once("://")
        .context("the relay URL needs a scheme, e.g. https://relay.example.com")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            anyhow::bail!("unsupported relay URL scheme {other:?} (use http, https, ws or wss)")
        }
    };
    anyhow::ensure!(!rest.is_empty(), "the relay URL has no host");
    Ok(format!("{scheme}://{rest}{AGENT_CONNECT_PATH}"))
}

/// Builds the TLS client configuration: the system's roots plus an optional extra CA file.
pub fn tls_config(extra_ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read CA file {}", path.display()))?;
        for cert in certs {
            let cert = cert.with_context(|| format!("bad certificate in {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("unusable certificate in {}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup failed")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Updates that have not been handed to the outbox yet, coalesced: only the newest state of each
/// repository is kept, so a long disconnection costs one entry per repository.
#[derive(Debug, Default, Clone)]
struct Pending {
    set: Option<Vec<String>>,
    repos: BTreeMap<String, RepoStatus>,
}

impl Pending {
    fn add(&mut self, update: Update) {
        match update {
            Update::RepoSet(paths) => {
                self.repos.retain(|p, _| paths.contains(p));
                self.set = Some(paths);
            }
            Update::Repo(status) => {
                self.repos.insert(status.path.clone(), status);
            }
        }
    }

    fn pop(&mut self) -> Option<AgentMessage> {
        if let Some(paths) = self.set.take() {
            return Some(AgentMessage::RepoSet { paths });
        }
        self.repos
            .pop_first()
            .map(|(_, s)| AgentMessage::RepoState(s))
    }

    fn is_empty(&self) -> bool {
        self.set.is_none() && self.repos.is_empty()
    }
}

/// How a connection attempt or session ended.
enum Ended {
    /// The relay asked us to come back after a delay.
    Reconnect(Duration),
    /// A problem; `settled` tells whether the session had lasted [`SETTLED`], which resets the
    /// backoff (decided in one place, `serve`, once the session is over).
    Problem { problem: Problem, settled: bool },
    /// The agent is shutting down.
    Shutdown,
}

/// The link task's state.
pub struct Link {
    target: RelayTarget,
    dialer: Dialer,
    identity: WorkspaceIdentity,
    status: SharedStatus,
    updates: mpsc::Receiver<Update>,
    job_reports: mpsc::Receiver<JobReport>,
    job_commands: mpsc::UnboundedSender<JobCommand>,
    run_calls: mpsc::Receiver<RunCall>,
    toolbox: crate::tools::Toolbox,
    /// Answers of tool calls, from the tasks running them.
    tool_answers: (mpsc::Sender<ToolAnswer>, mpsc::Receiver<ToolAnswer>),
    /// Counts sessions, so an answer to a call of an earlier session is never sent in a later
    /// one (whose call ids start over).
    session_number: u64,
    /// Run requests sent in this session, awaiting the relay's answer.
    waiting_runs: HashMap<u64, oneshot::Sender<Result<uuid::Uuid, String>>>,
    next_request: u64,
    shutdown: watch::Receiver<bool>,
    outbox: DiskOutbox,
    pending: Pending,
    /// The newest state of everything, to send again in full on a fresh stream.
    latest: Pending,
    relay_inbox: Option<Inbox>,
}

impl Link {
    /// Prepares the link; fails on a malformed URL or CA file.
    pub fn new(
        target: RelayTarget,
        identity: WorkspaceIdentity,
        status: SharedStatus,
        channels: LinkChannels,
        outbox: DiskOutbox,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self> {
        Ok(Self {
            dialer: Dialer::new(target.clone())?,
            target,
            identity,
            status,
            updates: channels.updates,
            job_reports: channels.job_reports,
            job_commands: channels.job_commands,
            run_calls: channels.run_calls,
            toolbox: channels.toolbox,
            tool_answers: mpsc::channel(64),
            session_number: 0,
            waiting_runs: HashMap::new(),
            next_request: 0,
            shutdown,
            outbox,
            pending: Pending::default(),
            latest: Pending::default(),
            relay_inbox: None,
        })
    }

    /// Runs until shutdown: connect, serve the session, back off, repeat.
    pub async fn run(mut self) {
        let mut backoff = new_backoff();
        loop {
            self.status.set_connection(|c| {
                c.state = ConnectionState::Connecting;
                c.retry_at = None;
            });
            let (problem, delay) = match self.connect_and_serve().await {
                Ended::Shutdown => return,
                Ended::Reconnect(after) => {
                    backoff = new_backoff();
                    let problem = Problem {
                        kind: ProblemKind::SessionEnded,
                        message: "the relay asked agents to reconnect".into(),
                    };
                    (problem, after)
                }
                Ended::Problem { problem, settled } => {
                    if settled {
                        backoff = new_backoff();
                    }
                    let refused = matches!(
                        problem.kind,
                        ProblemKind::TokenRefused | ProblemKind::VersionMismatch
                    );
                    tracing::warn!(kind = ?problem.kind, "{}", problem.message);
                    let delay = if refused {
                        REFUSED_DELAY
                    } else {
                        backoff.next().unwrap_or(REFUSED_DELAY)
                    };
                    (problem, delay)
                }
            };
            // One change, so whoever watches sees the problem and the retry time together.
            let retry_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            self.status.set_connection(|c| {
                c.state = ConnectionState::Disconnected;
                c.session_id = None;
                c.transport = None;
                c.problem = Some(problem);
                c.retry_at = Some(retry_at);
            });
            if !self.wait(delay).await {
                return;
            }
        }
    }

    /// Queues an update for sending and remembers it as the newest state.
    fn take_update(&mut self, update: Update) {
        self.latest.add(update.clone());
        self.pending.add(update);
    }

    /// Sleeps for `delay` while still taking updates; false on shutdown.
    async fn wait(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                update = self.updates.recv() => match update {
                    Some(u) => self.take_update(u),
                    None => return false,
                },
                // Kept on disk while disconnected, sent after the reconnect.
                Some(report) = self.job_reports.recv(), if self.outbox.has_room() => {
                    if self.outbox.push(report.message, report.flush).is_ok()
                        && let Some(journaled) = report.journaled
                    {
                        let _ = journaled.send(());
                    }
                }
                Some((_, answer)) = self.run_calls.recv() => {
                    let _ = answer.send(Err(not_connected(&self.status)));
                }
                _ = stopping(&mut self.shutdown) => return false,
            }
        }
    }

    async fn connect_and_serve(&mut self) -> Ended {
        let mut shutdown = self.shutdown.clone();
        let conn = tokio::select! {
            conn = self.dialer.dial(HANDSHAKE_TIMEOUT) => conn,
            _ = stopping(&mut shutdown) => return Ended::Shutdown,
        };
        match conn {
            Ok(conn) => self.serve(conn).await,
            Err(problem) => Ended::Problem {
                problem,
                settled: false,
            },
        }
    }

    /// Handshakes and serves one session.
    async fn serve(&mut self, mut conn: Conn) -> Ended {
        let hello = AgentFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            workspace: self.identity.clone(),
            agent_stream: self.outbox.stream(),
            relay_stream: self.relay_inbox.map(|i| StreamPosition {
                stream: i.stream,
                seq: i.applied,
            }),
        });
        let sent_at = Instant::now();
        if let Err(e) = conn.send(&hello).await {
            return relay_down(&format!("connection lost during the handshake: {e}"));
        }
        let welcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next_frame()).await {
            Err(_) => return relay_down("the relay did not answer the hello"),
            Ok(Err(problem)) => {
                return Ended::Problem {
                    problem,
                    settled: false,
                };
            }
            Ok(Ok(RelayFrame::Welcome(w))) => w,
            Ok(Ok(RelayFrame::Reject(r))) => {
                return Ended::Problem {
                    problem: rejected(r.reason, r.message),
                    settled: false,
                };
            }
            Ok(Ok(other)) => {
                return relay_down(&format!("unexpected first frame from the relay: {other:?}"));
            }
        };
        let heartbeat = Duration::from_millis(welcome.heartbeat_interval_ms.max(10));
        self.status.set_connection(|c| {
            c.state = ConnectionState::Connected;
            c.session_id = Some(welcome.session_id);
            c.workspace_id = Some(welcome.workspace_id);
            c.problem = None;
            c.retry_at = None;
            c.rtt_ms = Some(sent_at.elapsed().as_secs_f64() * 1000.0);
            c.transport = Some(conn.name().into());
        });
        tracing::info!(
            session = %welcome.session_id, relay = %self.target.url, transport = conn.name(),
            "connected to the relay"
        );
        match &mut self.relay_inbox {
            Some(inbox) => inbox.switch_to(welcome.relay_stream),
            None => self.relay_inbox = Some(Inbox::new(welcome.relay_stream, 0)),
        }
        // The relay lost updates it had acknowledged, or acknowledged more than this outbox
        // holds (its journal lost its tail): either way the numbering no longer lines up.
        if welcome.agent_stream_acked < self.outbox.acked_through()
            || welcome.agent_stream_acked >= self.outbox.next_seq()
        {
            // The relay lost updates it had acknowledged (a restore, a failover). Replaying
            // cannot fill that gap: start a new stream and send the whole state again, with the
            // job messages still pending (the relay drops job output it has by offset).
            let is_job = |m: &AgentMessage| {
                !matches!(m, AgentMessage::RepoSet { .. } | AgentMessage::RepoState(_))
            };
            if let Err(e) = self.outbox.restart(is_job) {
                tracing::error!(error = %format!("{e:#}"), "cannot restart the outbox");
            }
            self.pending = self.latest.clone();
            let problem = Problem {
                kind: ProblemKind::SessionEnded,
                message: "the relay lost acknowledged updates; sending the full state again".into(),
            };
            return Ended::Problem {
                problem,
                settled: false,
            };
        }
        let welcomed_at = Instant::now();
        // Drop what the relay already has, replay the rest, then send what piled up.
        self.outbox.ack(welcome.agent_stream_acked);
        let replay: Vec<_> = self.outbox.unacked().cloned().collect();
        tracing::debug!(
            acked = welcome.agent_stream_acked,
            replaying = replay.len(),
            pending = !self.pending.is_empty(),
            "resuming the stream"
        );
        for message in replay {
            if let Err(e) = conn.send(&AgentFrame::Durable(message)).await {
                return relay_down(&format!("connection lost: {e}"));
            }
        }
        self.session_number += 1;
        let catalog = AgentFrame::Tools(self.toolbox.catalog());
        if let Err(e) = conn.send(&catalog).await {
            return relay_down(&format!("connection lost: {e}"));
        }
        let ended = self.session_loop(&mut conn, heartbeat).await;
        for (_, answer) in self.waiting_runs.drain() {
            let _ = answer.send(Err(
                "the connection to the relay dropped before it answered; the run may or may not \
                 have been recorded (see `fulcrum status`)"
                    .into(),
            ));
        }
        match ended {
            Ended::Shutdown => {
                conn.close().await;
                Ended::Shutdown
            }
            // Only here is it known how long the session lasted.
            Ended::Problem { problem, .. } => Ended::Problem {
                problem,
                settled: welcomed_at.elapsed() >= SETTLED,
            },
            other => other,
        }
    }

    async fn session_loop(&mut self, conn: &mut Conn, heartbeat: Duration) -> Ended {
        let mut shutdown = self.shutdown.clone();
        // Two intervals of silence plus a little slack for scheduling.
        let silence = heartbeat * 2 + Duration::from_millis(250);
        let mut deadline = tokio::time::Instant::now() + silence;
        let mut catalog_changes = self.toolbox.subscribe();
        catalog_changes.mark_unchanged();
        loop {
            if let Err(e) = self.flush_pending(conn).await {
                return relay_down(&format!("connection lost: {e}"));
            }
            let unacked = self.outbox.len();
            self.status
                .update(|s| std::mem::replace(&mut s.unacked, unacked) != unacked);
            tokio::select! {
                frame = conn.next_frame() => {
                    deadline = tokio::time::Instant::now() + silence;
                    let frame = match frame {
                        Ok(f) => f,
                        Err(problem) => return Ended::Problem { problem, settled: false },
                    };
                    match frame {
                        RelayFrame::Ping { nonce, rtt_us } => {
                            if let Some(us) = rtt_us {
                                self.status.set_connection(|c| c.rtt_ms = Some(us as f64 / 1000.0));
                            }
                            if let Err(e) = conn.send(&AgentFrame::Pong { nonce }).await {
                                return relay_down(&format!("connection lost: {e}"));
                            }
                        }
                        RelayFrame::Ack { seq } => {
                            self.outbox.ack(seq);
                        }
                        RelayFrame::Durable(d) => {
                            if let Err(e) = self.apply_relay_message(conn, d).await {
                                return relay_down(&format!("connection lost: {e}"));
                            }
                        }
                        RelayFrame::Response { id, result } => {
                            if let Some(answer) = self.waiting_runs.remove(&id) {
                                let _ = answer.send(result);
                            }
                        }
                        RelayFrame::ToolCall { id, call } => {
                            let toolbox = self.toolbox.clone();
                            let answers = self.tool_answers.0.clone();
                            let session = self.session_number;
                            tokio::spawn(async move {
                                let output = toolbox.call(call).await;
                                let _ = answers.send((session, id, output)).await;
                            });
                        }
                        RelayFrame::Reconnect { after_ms } => return Ended::Reconnect(Duration::from_millis(after_ms)),
                        RelayFrame::Reject(r) => return Ended::Problem { problem: rejected(r.reason, r.message), settled: false },
                        RelayFrame::Welcome(_) => return relay_down("the relay sent a second welcome"),
                    }
                }
                update = self.updates.recv() => match update {
                    Some(u) => self.take_update(u),
                    None => return Ended::Shutdown,
                },
                Some(report) = self.job_reports.recv(), if self.outbox.has_room() => {
                    match self.outbox.push(report.message, report.flush) {
                        Ok(durable) => {
                            if let Some(journaled) = report.journaled {
                                let _ = journaled.send(());
                            }
                            if let Err(e) = conn.send(&AgentFrame::Durable(durable)).await {
                                return relay_down(&format!("connection lost: {e}"));
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "job report dropped"),
                    }
                }
                Some((run, answer)) = self.run_calls.recv() => {
                    self.next_request += 1;
                    let id = self.next_request;
                    self.waiting_runs.insert(id, answer);
                    if let Err(e) = conn.send(&AgentFrame::Request { id, run }).await {
                        return relay_down(&format!("connection lost: {e}"));
                    }
                }
                Some((session, id, output)) = self.tool_answers.1.recv() => {
                    if session == self.session_number
                        && let Err(e) = conn.send(&AgentFrame::ToolReply { id, output }).await
                    {
                        return relay_down(&format!("connection lost: {e}"));
                    }
                }
                Ok(()) = catalog_changes.changed() => {
                    if let Err(e) = conn.send(&AgentFrame::Tools(self.toolbox.catalog())).await {
                        return relay_down(&format!("connection lost: {e}"));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return relay_down("the relay went silent");
                }
                _ = stopping(&mut shutdown) => return Ended::Shutdown,
            }
        }
    }

    /// Moves coalesced updates into the outbox and onto the wire while the outbox has room.
    async fn flush_pending(&mut self, conn: &mut Conn) -> std::io::Result<()> {
        while self.outbox.has_room() && !self.pending.is_empty() {
            let Some(message) = self.pending.pop() else {
                break;
            };
            match self.outbox.push(message, false) {
                Ok(durable) => conn.send(&AgentFrame::Durable(durable)).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    async fn apply_relay_message(
        &mut self,
        conn: &mut Conn,
        d: Durable<RelayMessage>,
    ) -> std::io::Result<()> {
        let Some(inbox) = self.relay_inbox.as_mut() else {
            return Ok(());
        };
        if inbox.check(d.seq) == Accept::Apply {
            inbox.mark_applied(d.seq);
            match d.body {
                RelayMessage::Notice { text } => {
                    self.status.update(|s| {
                        s.notices.push(text);
                        let excess = s.notices.len().saturating_sub(MAX_NOTICES);
                        s.notices.drain(..excess);
                        true
                    });
                }
                RelayMessage::RunTask(spec) => {
                    let _ = self.job_commands.send(JobCommand::Run(spec));
                }
                RelayMessage::CancelTask { task_id } => {
                    let _ = self.job_commands.send(JobCommand::Cancel(task_id));
                }
            }
        }
        let Some(inbox) = self.relay_inbox.as_ref() else {
            return Ok(());
        };
        let seq = inbox.applied;
        conn.send(&AgentFrame::Ack { seq }).await
    }
}

/// Why a run cannot be asked for right now.
fn not_connected(status: &SharedStatus) -> String {
    let problem = status
        .snapshot()
        .connection
        .problem
        .map(|p| format!(": {}", p.message))
        .unwrap_or_default();
    format!(
        "the agent is not connected to the relay{problem}; runs go through the relay, try again once `fulcrum status` says connected"
    )
}

fn new_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(BACKOFF_MIN)
        .with_max_delay(BACKOFF_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

fn relay_down(message: &str) -> Ended {
    Ended::Problem {
        problem: Problem {
            kind: ProblemKind::RelayDown,
            message: message.to_owned(),
        },
        settled: false,
    }
}

fn rejected(reason: RejectReason, message: String) -> Problem {
    let kind = match reason {
        RejectReason::Unauthorized => ProblemKind::TokenRefused,
        RejectReason::VersionMismatch { .. } => ProblemKind::VersionMismatch,
        _ => ProblemKind::SessionEnded,
    };
    let message = if kind == ProblemKind::TokenRefused {
        // The same words whether the WebSocket upgrade or the QUIC session said no.
        format!("the relay refused the agent token: {message}")
    } else {
        format!("the relay ended the session: {message}")
    };
    Problem { kind, message }
}

/// Resolves once `shutdown` turns true or its sender is gone.
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_map_to_the_agent_socket() {
        assert_eq!(
            connect_url("http://r:7420").unwrap(),
            "ws://r:7420/api/v1/agent/connect"
        );
        assert_eq!(
            connect_url("https://r.example/").unwrap(),
            "wss://r.example/api/v1/agent/connect"
        );
        assert_eq!(
            connect_url("wss://r").unwrap(),
            "wss://r/api/v1/agent/connect"
        );
        assert!(connect_url("ftp://r").is_err());
        assert!(connect_url("r:7420").is_err());
    }

    #[test]
    fn pending_keeps_only_the_newest_state_per_repo() {
        let mut p = Pending::default();
        let repo = |path: &str, ahead| RepoStatus {
            path: path.into(),
            ahead,
            ..Default::default()
        };
        p.add(Update::Repo(repo("a", 1)));
        p.add(Update::Repo(repo("a", 2)));
        p.add(Update::Repo(repo("b", 1)));
        p.add(Update::RepoSet(vec!["a".into()]));
        assert_eq!(
            p.pop(),
            Some(AgentMessage::RepoSet {
                paths: vec!["a".into()]
            })
        );
        assert_eq!(p.pop(), Some(AgentMessage::RepoState(repo("a", 2))));
        assert_eq!(p.pop(), None);
    }

    #[test]
    fn backoff_grows_with_jitter_to_the_cap() {
        let delays: Vec<_> = new_backoff().take(20).collect();
        assert!(delays[0] >= BACKOFF_MIN && delays[0] < BACKOFF_MIN * 2);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(30)));
        assert!(delays[19] >= BACKOFF_MAX);
    }
}
