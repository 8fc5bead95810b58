//! One agent session: handshake, heartbeats, durable messages, and the workspace's live view.
//!
//! A durable message is published to the live feed as soon as it arrives, from the workspace
//! view the session keeps in memory, and queued for writing. One commit is in flight per session
//! at a time; whatever queued up meanwhile goes into the next one (group commit), and the agent is
//! acknowledged only once a commit is done. So the feed never waits for the disk, and durability
//! is unchanged: whatever was not committed is not acknowledged, and the agent replays it after a
//! reconnect. An idle session holds no writer and no queue.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use fulcrum_protocol::{
    AgentFrame, AgentMessage, Durable, Hello, Reject, RejectReason, RelayFrame, RelayMessage,
    RunRequest, SUPPORTED_VERSIONS, Welcome,
    reliable::{Accept, Inbox},
    tools::ToolOutput,
};
use futures_util::future::OptionFuture;
use tokio::{sync::mpsc, task::JoinHandle, time::MissedTickBehavior};
use uuid::Uuid;

use super::{
    Control, SessionEntry,
    transport::{Incoming, Outgoing, Source},
};
use crate::{
    state::AppState,
    store::{AgentConnect, Applied, RepoRecord, StoreResult, Token, Workspace},
};

/// Instructions that may queue for a session (task dispatches among them).
const CONTROL_QUEUE: usize = 256;
/// Most tool calls waiting for the agent's answer at once.
const MAX_TOOL_CALLS: usize = 64;
/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;
/// Most bytes of messages accepted but not yet committed; past it the session stops reading from
/// the agent until a commit finishes (backpressure, never unbounded memory).
const MAX_UNCOMMITTED_BYTES: usize = 8 * 1024 * 1024;

/// A commit in flight: the store's answer, the last sequence number it covers, and what it did
/// to tasks.
type Commit = JoinHandle<CommitOutcome>;
/// What a finished commit hands back.
type CommitOutcome = (StoreResult<Applied>, u64, TaskEffects);

/// What a committed batch changed about tasks: whose state to publish, whose log grew, and
/// whether one finished (its webhook event is in the outbox).
#[derive(Debug, Default)]
struct TaskEffects {
    changed: Vec<Uuid>,
    logs: Vec<(Uuid, u64)>,
    finished: bool,
}

impl TaskEffects {
    fn of(batch: &[Durable<AgentMessage>]) -> Self {
        let mut effects = Self::default();
        for m in batch {
            match &m.body {
                AgentMessage::TaskStarted { task_id, .. } => effects.changed.push(*task_id),
                AgentMessage::TaskFinished(r) => {
                    effects.changed.push(r.task_id);
                    effects.finished = true;
                }
                AgentMessage::TaskOutput {
                    task_id,
                    offset,
                    data,
                } => {
                    effects.logs.push((*task_id, offset + data.len() as u64));
                }
                AgentMessage::RepoSet { .. } | AgentMessage::RepoState(_) => {}
            }
        }
        effects
    }
}

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

/// Runs a session on an open connection (WebSocket or QUIC) until it ends.
pub async fn run(app: AppState, token: Token, mut sink: Outgoing, mut stream: Source) {
    let hello_timeout = Duration::from_millis(app.config.agents.hello_timeout_ms);
    let hello = match read_hello(&mut stream, hello_timeout).await {
        Ok(hello) => hello,
        Err(Some(refusal)) => {
            let _ = reject(&mut sink, refusal.reason, &refusal.message).await;
            return;
        }
        Err(None) => return,
    };

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
        Err(crate::store::StoreError::TokenRevoked) => {
            let _ = reject(
                &mut sink,
                RejectReason::Unauthorized,
                "the agent token was revoked",
            )
            .await;
            return;
        }
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
    let session_start = connected.workspace.connected_at.unwrap_or(now);
    let mut workspace = connected.workspace;
    workspace.agent = Some(crate::store::AgentFacts {
        transport: stream.name().to_owned(),
        policy: fulcrum_protocol::tools::ToolCatalog::default().policy(),
        ..Default::default()
    });
    let view = Arc::new(Mutex::new(workspace));
    let ws_id = lock(&view).id;
    let session_id = Uuid::now_v7();
    let heartbeat = app.config.agents.heartbeat();
    let welcome = RelayFrame::Welcome(Welcome {
        session_id,
        workspace_id: ws_id,
        heartbeat_interval_ms: heartbeat.as_millis() as u64,
        agent_stream_acked: connected.agent_seq,
        // Relay messages are numbered per session; what must survive a session (tasks) is
        // resent from the store by the next one.
        relay_stream: session_id,
        relay_version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let (control_tx, mut control) = mpsc::channel(CONTROL_QUEUE);
    let tools = Arc::new(Mutex::new(super::SessionTools {
        supported: hello.protocol_version >= fulcrum_protocol::tools::TOOLS_SINCE_VERSION,
        catalog: Default::default(),
    }));
    let session_tools = tools.clone();
    app.sessions.register(
        ws_id,
        SessionEntry {
            session_id,
            token_id: token.id,
            control: control_tx,
            view: view.clone(),
            tools: tools.clone(),
        },
    );
    tracing::info!(
        workspace = %ws_id, session = %session_id, name = %lock(&view).name,
        agent_version = %hello.agent_version, transport = stream.name(), "agent connected"
    );
    stream.expect(connected.agent_seq + 1);

    let mut session = Session {
        app: &app,
        token: &token,
        workspace: ws_id,
        view: view.clone(),
        inbox: Inbox::new(hello.agent_stream, connected.agent_seq),
        committed: connected.agent_seq,
        uncommitted: Vec::new(),
        uncommitted_bytes: 0,
        in_flight: None,
        in_flight_bytes: 0,
        relay_seq: 0,
        dispatched: Default::default(),
        publishing: None,
        tools,
        tool_calls: Default::default(),
        last_tool_call: 0,
        runs: tokio::task::JoinSet::new(),
        sink: &mut sink,
    };
    let end = if session.send(&welcome).await && session.resume_tasks().await {
        app.bus
            .publish(token.owner_id, crate::bus::workspace_event(&lock(&view)));
        session.drive(&mut stream, &mut control, heartbeat).await
    } else {
        End::SendFailed
    };
    // Commit what was accepted before recording the end of the session.
    session.finish_writes().await;
    tracing::info!(workspace = %ws_id, session = %session_id, ?end, "agent session ended");
    let had_hosted_tools = session_tools
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .catalog
        .servers
        .iter()
        .any(|s| !s.tools.is_empty());
    if app.sessions.remove(ws_id, session_id) {
        // The workspace's hosted tools leave with it.
        if had_hosted_tools {
            app.mcp.changes.publish(token.owner_id);
        }
        let now = Utc::now();
        if let Err(e) = app
            .store
            .agent_disconnected(token.owner_id, ws_id, session_start, now)
            .await
        {
            tracing::error!(error = %e, "cannot record agent disconnect");
        }
        let event = {
            let mut view = lock(&view);
            view.online = false;
            view.last_seen_at = Some(now);
            crate::bus::workspace_event(&view)
        };
        app.bus.publish(token.owner_id, event);
    }
}

/// The parts of a running session its loop works on.
struct Session<'a> {
    app: &'a AppState,
    token: &'a Token,
    workspace: Uuid,
    view: Arc<Mutex<Workspace>>,
    /// Everything accepted from the agent's stream (committed or not).
    inbox: Inbox,
    /// The highest sequence number committed.
    committed: u64,
    /// Accepted, not yet committed, not in flight, with each message's size on the wire.
    uncommitted: Vec<(Durable<AgentMessage>, usize)>,
    uncommitted_bytes: usize,
    in_flight: Option<Commit>,
    in_flight_bytes: usize,
    /// Last sequence number on this session's relay stream.
    relay_seq: u64,
    /// The latest task publication after a commit; the next one waits for it.
    publishing: Option<JoinHandle<()>>,
    /// Tasks sent in this session and not yet reported started, with who may see them.
    dispatched: std::collections::HashMap<Uuid, (crate::store::Task, Vec<Uuid>, u64, Instant)>,
    /// The agent's tools, as the registry shows them.
    tools: Arc<Mutex<super::SessionTools>>,
    /// Tool calls sent to the agent and not answered yet, by id.
    tool_calls: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<ToolOutput>>,
    last_tool_call: u64,
    /// Runs asked for by the agent's terminal and not answered yet; aborted with the session.
    runs: tokio::task::JoinSet<()>,
    sink: &'a mut Outgoing,
}

/// Most terminal runs being started at once per session; more are refused until they are.
const MAX_RUN_REQUESTS: usize = 8;

impl Session<'_> {
    /// Whether the session stops taking durable messages until a commit finishes (backpressure).
    fn holding_back(&self) -> bool {
        self.uncommitted_bytes + self.in_flight_bytes >= MAX_UNCOMMITTED_BYTES
    }

    /// Sends the agent a relay message on this session's stream.
    async fn send_message(&mut self, body: RelayMessage) -> bool {
        self.relay_seq += 1;
        let frame = RelayFrame::Durable(Durable {
            seq: self.relay_seq,
            body,
        });
        self.send(&frame).await
    }

    /// Sends a frame to the agent, counting it.
    async fn send(&mut self, frame: &RelayFrame) -> bool {
        match self.sink.send(frame).await {
            Some(len) => {
                self.app.metrics.frame_out(len);
                true
            }
            None => false,
        }
    }

    /// Sends again every task of this workspace the agent has not reported starting, and the
    /// cancels it has not acted on. False if the agent cannot be written to.
    async fn resume_tasks(&mut self) -> bool {
        let tasks = match self
            .app
            .store
            .tasks_to_resume(self.token.owner_id, self.workspace)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the workspace's pending tasks");
                return true;
            }
        };
        for task in tasks {
            let message = if task.cancel_requested {
                RelayMessage::CancelTask { task_id: task.id }
            } else {
                RelayMessage::RunTask(crate::tasks::spec(
                    &task,
                    self.app.domain.tasks.limits().grace_s,
                ))
            };
            if !self.send_message(message).await {
                return false;
            }
        }
        true
    }

    /// A run asked for by the agent's terminal: started like any other run (the domain's
    /// `tasks::start`, for the token's owner, in this workspace), off the session's loop (at
    /// most [`MAX_RUN_REQUESTS`] at once, aborted if the session ends); the task comes back
    /// through the control channel to run, then the answer with its id. False if the agent
    /// cannot be written to.
    async fn run_request(&mut self, id: u64, run: RunRequest) -> bool {
        while self.runs.try_join_next().is_some() {}
        if self.runs.len() >= MAX_RUN_REQUESTS {
            let busy = format!("at most {MAX_RUN_REQUESTS} runs start at once; try again");
            return self
                .send(&RelayFrame::Response {
                    id,
                    result: Err(busy),
                })
                .await;
        }
        let app = self.app.clone();
        let (user, workspace) = (self.token.owner_id, self.workspace);
        let grant = crate::domain::Grant::of(self.token);
        self.runs.spawn(async move {
            let input = crate::domain::tasks::RunInput {
                workspace: Some(workspace),
                project: None,
                repo: Some(run.repo),
                run: run.run,
                env: run.env,
                timeout_s: run.timeout_s.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            };
            let caller =
                crate::domain::Caller::with_grant(user, crate::domain::Door::Terminal, grant);
            let result = match app.domain.tasks.start(caller, input).await {
                Ok(task) => Ok(task.id),
                Err(crate::domain::DomainError::Store(e)) => {
                    tracing::error!(error = %e, "cannot record a run from the terminal");
                    Err("the relay cannot record the run right now".to_owned())
                }
                Err(e) => Err(e.to_string()),
            };
            app.sessions
                .send(workspace, Control::Answer { id, result })
                .await;
        });
        true
    }

    /// Sends a tool call to the agent, remembering where its answer goes. At most
    /// [`MAX_TOOL_CALLS`] wait at once; calls whose callers gave up are forgotten first.
    async fn tool_call(
        &mut self,
        call: fulcrum_protocol::tools::ToolCall,
        reply: tokio::sync::oneshot::Sender<ToolOutput>,
    ) -> bool {
        // A version 1 agent that replaced the session since the caller looked cannot read it.
        if !self
            .tools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .supported
        {
            let _ = reply.send(ToolOutput::error(
                super::ToolCallError::Unsupported.to_string(),
            ));
            return true;
        }
        self.tool_calls.retain(|_, r| !r.is_closed());
        if self.tool_calls.len() >= MAX_TOOL_CALLS {
            let _ = reply.send(ToolOutput::error(format!(
                "the workspace already has {MAX_TOOL_CALLS} tool calls in flight; try again shortly"
            )));
            return true;
        }
        self.last_tool_call += 1;
        let id = self.last_tool_call;
        self.tool_calls.insert(id, reply);
        self.send(&RelayFrame::ToolCall { id, call }).await
    }

    /// The session's main loop, after the welcome.
    async fn drive(
        &mut self,
        stream: &mut Source,
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
                incoming = stream.next(!self.holding_back()) => {
                    let (frame, size) = match incoming {
                        Incoming::Frame(frame, size) => (frame, size),
                        Incoming::KeepAlive => { last_heard = Instant::now(); continue }
                        Incoming::Violation(problem) => {
                            return refuse(self.sink, RejectReason::ProtocolViolation, &problem).await;
                        }
                        Incoming::Closed => return End::AgentClosed,
                    };
                    last_heard = Instant::now();
                    self.app.metrics.frame_in(size);
                    match frame {
                        AgentFrame::Pong { nonce: n } => {
                            if let Some((sent_nonce, at)) = ping_sent
                                && sent_nonce == n
                            {
                                rtt_us = Some(at.elapsed().as_micros() as u64);
                                ping_sent = None;
                                if let Some(agent) = lock(&self.view).agent.as_mut() {
                                    agent.rtt_ms = rtt_us.map(|us| (us as f64 / 1000.0 * 100.0).round() / 100.0);
                                }
                            }
                        }
                        AgentFrame::Ack { .. } => {}
                        AgentFrame::Request { id, run } => {
                            if !self.run_request(id, run).await {
                                return End::SendFailed;
                            }
                        }
                        AgentFrame::ToolReply { id, output } => {
                            if let Err(problem) = output.check() {
                                return refuse(self.sink, RejectReason::ProtocolViolation, &problem.message).await;
                            }
                            // An answer to a call whose caller gave up is dropped.
                            if let Some(reply) = self.tool_calls.remove(&id) {
                                let _ = reply.send(output);
                            }
                        }
                        AgentFrame::Tools(catalog) => {
                            if let Err(problem) = catalog.check() {
                                return refuse(self.sink, RejectReason::ProtocolViolation, &problem.message).await;
                            }
                            // Only what a client lists counts: the tools, not a server's state.
                            let facts_changed = {
                                let mut view = lock(&self.view);
                                let before = view.agent.clone();
                                if let Some(agent) = view.agent.as_mut() {
                                    agent.policy = catalog.policy();
                                    agent.hosted_servers = catalog.servers.len();
                                    agent.hosted_running = catalog.servers.iter().filter(|s| s.running).count();
                                }
                                (before != view.agent).then(|| crate::bus::workspace_event(&view))
                            };
                            // Dashboards see what the workspace now allows.
                            if let Some(event) = facts_changed {
                                self.app.bus.publish(self.token.owner_id, event);
                            }
                            let changed = {
                                let mut tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
                                let old = std::mem::replace(&mut tools.catalog, catalog);
                                old.listed_tools().ne(tools.catalog.listed_tools())
                            };
                            if changed {
                                self.app.mcp.changes.publish(self.token.owner_id);
                            }
                        }
                        AgentFrame::Hello(_) => {
                            return refuse(self.sink, RejectReason::ProtocolViolation, "hello sent twice").await;
                        }
                        AgentFrame::Durable(d) => {
                            if let Some(end) = self.accept(d, size).await {
                                return end;
                            }
                        }
                    }
                }
                done = OptionFuture::from(self.in_flight.as_mut()), if self.in_flight.is_some() => {
                    self.in_flight = None;
                    if let Some(end) = self.committed_batch(done).await {
                        return end;
                    }
                }
                _ = ticker.tick() => {
                    // While the session holds back reading (waiting on the database), the agent
                    // cannot be heard on a WebSocket: that is not its silence.
                    if self.holding_back() {
                        last_heard = Instant::now();
                    } else if last_heard.elapsed() > heartbeat * 2 {
                        return End::Silent;
                    }
                    nonce += 1;
                    // One ping is timed at a time: a pong later than the next ping still counts.
                    if ping_sent.is_none() {
                        ping_sent = Some((nonce, Instant::now()));
                    }
                    if !self.send(&RelayFrame::Ping { nonce, rtt_us }).await {
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
                    Some(Control::Run(dispatch)) => {
                        let crate::tasks::Dispatch { spec, task, audience, epoch } = *dispatch;
                        self.dispatched.insert(task.id, (task, audience, epoch, Instant::now()));
                        if !self.send_message(RelayMessage::RunTask(spec)).await {
                            return End::SendFailed;
                        }
                    }
                    Some(Control::Answer { id, result }) => {
                        if !self.send(&RelayFrame::Response { id, result }).await {
                            return End::SendFailed;
                        }
                    }
                    Some(Control::Cancel(task_id)) => {
                        if !self.send_message(RelayMessage::CancelTask { task_id }).await {
                            return End::SendFailed;
                        }
                    }
                    Some(Control::Tool { call, reply }) => {
                        if !self.tool_call(call, reply).await {
                            return End::SendFailed;
                        }
                    }
                },
                _ = crate::state::stopping(&mut shutdown) => {
                    let after_ms = 100 + rand::random::<u64>() % 900;
                    let _ = self.send(&RelayFrame::Reconnect { after_ms }).await;
                    self.sink.close().await;
                    return End::Shutdown;
                }
            }
        }
    }

    /// Takes a durable message: publishes it live and queues it for the writer, or answers a
    /// replay with the committed position. `Some` ends the session.
    async fn accept(&mut self, d: Durable<AgentMessage>, size: usize) -> Option<End> {
        if let Err(problem) = d.body.check() {
            return Some(
                refuse(self.sink, RejectReason::ProtocolViolation, &problem.message).await,
            );
        }
        if let AgentMessage::RepoState(status) = &d.body {
            let full = {
                let view = lock(&self.view);
                view.repos.len() >= fulcrum_protocol::MAX_REPOS
                    && view
                        .repos
                        .binary_search_by(|r| r.status.path.cmp(&status.path))
                        .is_err()
            };
            if full {
                let problem = format!(
                    "at most {} repositories per workspace",
                    fulcrum_protocol::MAX_REPOS
                );
                return Some(refuse(self.sink, RejectReason::ProtocolViolation, &problem).await);
            }
        }
        let verdict = self.inbox.check(d.seq);
        tracing::debug!(
            seq = d.seq,
            ?verdict,
            committed = self.committed,
            "agent message"
        );
        match verdict {
            Accept::Apply => {
                self.inbox.mark_applied(d.seq);
                if let AgentMessage::TaskStarted {
                    task_id,
                    commit,
                    branch,
                } = &d.body
                    && let Some((mut task, audience, epoch, sent)) = self.dispatched.remove(task_id)
                {
                    self.app.metrics.dispatched(sent.elapsed().as_secs_f64());
                    // Shown at once; the stored state follows with the commit.
                    task.state = fulcrum_protocol::TaskState::Running;
                    task.started_at = Some(Utc::now());
                    task.commit_sha.clone_from(commit);
                    task.branch.clone_from(branch);
                    self.app.feed.publish_live(&task, &audience, epoch).await;
                    self.app.feed.live.ahead(task);
                }
                if matches!(
                    d.body,
                    AgentMessage::RepoSet { .. } | AgentMessage::RepoState(_)
                ) {
                    let (event, moved) = {
                        let mut view = lock(&self.view);
                        // A repository whose HEAD moved to a new commit (not its first report).
                        let moved = match &d.body {
                            AgentMessage::RepoState(new) => view
                                .repos
                                .iter()
                                .find(|r| r.status.path == new.path)
                                .and_then(|old| old.status.head_sha.clone())
                                .zip(new.head_sha.clone())
                                .filter(|(old, new)| old != new)
                                .map(|(_, sha)| {
                                    (
                                        view.id,
                                        new.path.clone(),
                                        sha,
                                        new.head_summary.clone().unwrap_or_default(),
                                    )
                                }),
                            _ => None,
                        };
                        apply_to_view(&mut view, d.body.clone(), Utc::now());
                        (crate::bus::workspace_event(&view), moved)
                    };
                    self.app.bus.publish(self.token.owner_id, event);
                    if let Some((workspace, repo, sha, summary)) = moved {
                        let (app, owner) = (self.app.clone(), self.token.owner_id);
                        tokio::spawn(async move {
                            if let Err(e) = app
                                .domain
                                .activities
                                .link_commit(owner, workspace, &repo, &sha, &summary)
                                .await
                            {
                                tracing::warn!(error = %e, "cannot link a commit to AI activity");
                            }
                        });
                    }
                }
                self.uncommitted.push((d, size));
                self.uncommitted_bytes += size;
                self.start_commit();
            }
            Accept::Duplicate => {
                // Acknowledge only what is committed, never more.
                if !self
                    .send(&RelayFrame::Ack {
                        seq: self.committed,
                    })
                    .await
                {
                    return Some(End::SendFailed);
                }
            }
            Accept::Gap { expected } => {
                let problem = format!(
                    "message {} arrived before message {expected}; reconnect and replay",
                    d.seq
                );
                return Some(refuse(self.sink, RejectReason::ProtocolViolation, &problem).await);
            }
        }
        None
    }

    /// Starts committing what has queued up, unless a commit is already in flight.
    fn start_commit(&mut self) {
        if self.in_flight.is_some() || self.uncommitted.is_empty() {
            return;
        }
        let take = self.uncommitted.len().min(MAX_BATCH);
        let (batch, sizes): (Vec<_>, Vec<_>) = self.uncommitted.drain(..take).unzip();
        self.in_flight_bytes = sizes.iter().sum();
        self.uncommitted_bytes -= self.in_flight_bytes;
        let last = batch.last().map_or(self.committed, |m| m.seq);
        let (store, owner, workspace, stream) = (
            self.app.store.clone(),
            self.token.owner_id,
            self.workspace,
            self.inbox.stream,
        );
        self.in_flight = Some(tokio::spawn(async move {
            let effects = TaskEffects::of(&batch);
            (
                store
                    .apply_agent_messages(owner, workspace, stream, &batch, Utc::now())
                    .await,
                last,
                effects,
            )
        }));
    }

    /// A commit finished: acknowledge it and start the next, or end the session if it failed.
    async fn committed_batch(
        &mut self,
        done: Option<Result<CommitOutcome, tokio::task::JoinError>>,
    ) -> Option<End> {
        self.in_flight_bytes = 0;
        match done {
            Some(Ok((Ok(Applied::Applied | Applied::Duplicate), last, effects))) => {
                tracing::debug!(last, "committed");
                self.committed = last;
                self.start_commit();
                if !self.send(&RelayFrame::Ack { seq: last }).await {
                    return Some(End::SendFailed);
                }
                self.announce(effects);
                None
            }
            Some(Ok((Ok(Applied::OutOfOrder), _, _))) => Some(
                refuse(
                    self.sink,
                    RejectReason::Replaced,
                    "another session advanced this workspace",
                )
                .await,
            ),
            other => {
                if let Some(Ok((Err(e), _, _))) = &other {
                    tracing::error!(error = %e, "cannot store agent messages");
                }
                Some(
                    refuse(
                        self.sink,
                        RejectReason::Unavailable,
                        "the relay cannot store messages right now",
                    )
                    .await,
                )
            }
        }
    }

    /// Wakes log followers and publishes task changes after a commit, off the session's loop
    /// but in commit order (each publication waits for the one before it).
    fn announce(&mut self, effects: TaskEffects) {
        for (task, stored) in effects.logs {
            self.app.feed.logs.grew(task, stored);
        }
        if effects.finished {
            self.app.webhook_dispatcher.wake();
        }
        if !effects.changed.is_empty() {
            let app = self.app.clone();
            let before = self.publishing.take();
            self.publishing = Some(tokio::spawn(async move {
                if let Some(before) = before {
                    let _ = before.await;
                }
                for task in effects.changed {
                    // The store has caught up with what the feed showed ahead of it.
                    app.feed.live.committed(task);
                    app.feed.publish(task).await;
                }
            }));
        }
    }

    /// Commits everything accepted, after the session ended (no acknowledgements are sent: the
    /// agent learns the position from the next welcome).
    async fn finish_writes(&mut self) {
        loop {
            self.start_commit();
            let Some(commit) = self.in_flight.take() else {
                return;
            };
            match commit.await {
                Ok((Ok(Applied::Applied | Applied::Duplicate), last, effects)) => {
                    self.committed = last;
                    self.announce(effects);
                }
                _ => return,
            }
        }
    }
}

/// Waits for the agent's hello and checks it. The error is what to refuse it with, or `None`
/// when the agent went away without a word.
async fn read_hello(stream: &mut Source, wait: Duration) -> Result<Hello, Option<Reject>> {
    let violation = |message: String| {
        Some(Reject {
            reason: RejectReason::ProtocolViolation,
            message,
        })
    };
    let hello = match tokio::time::timeout(wait, stream.next(true)).await {
        Ok(Incoming::Frame(AgentFrame::Hello(hello), _)) => hello,
        Ok(Incoming::Frame(..)) => {
            return Err(violation("the first frame must be a hello".into()));
        }
        Ok(Incoming::Violation(problem)) => return Err(violation(format!("bad hello: {problem}"))),
        Ok(Incoming::KeepAlive) => return Err(violation("expected a binary hello frame".into())),
        Ok(Incoming::Closed) => return Err(None),
        Err(_) => return Err(violation("no hello in time".into())),
    };
    if !SUPPORTED_VERSIONS.contains(&hello.protocol_version) {
        return Err(Some(Reject {
            reason: RejectReason::VersionMismatch {
                supported: SUPPORTED_VERSIONS.to_vec(),
            },
            message: format!(
                "agent speaks protocol {} but this relay speaks {:?}; upgrade the agent",
                hello.protocol_version, SUPPORTED_VERSIONS
            ),
        }));
    }
    hello.check().map_err(|e| violation(e.to_string()))?;
    Ok(hello)
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
        AgentMessage::RepoSet { paths } => {
            let keep: std::collections::HashSet<&String> = paths.iter().collect();
            view.repos.retain(|r| keep.contains(&r.status.path));
        }
        AgentMessage::TaskStarted { .. }
        | AgentMessage::TaskOutput { .. }
        | AgentMessage::TaskFinished(_) => {}
    }
}

/// Sends a refusal and closes the connection.
pub(super) async fn reject(sink: &mut Outgoing, reason: RejectReason, message: &str) -> bool {
    tracing::info!(?reason, message, "rejecting agent");
    let sent = sink
        .send(&RelayFrame::Reject(Reject {
            reason,
            message: message.into(),
        }))
        .await
        .is_some();
    sink.close().await;
    sent
}

async fn refuse(sink: &mut Outgoing, reason: RejectReason, message: &str) -> End {
    reject(sink, reason, message).await;
    End::Rejected
}
