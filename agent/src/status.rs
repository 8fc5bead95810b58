//! What the agent knows about itself, shared between its tasks and served to `fulcrum status`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fulcrum_protocol::RepoStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

/// The agent's state as `fulcrum status --json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's version.
    pub agent_version: String,
    /// The agent's process id.
    pub pid: u32,
    /// The relay it dials.
    pub relay_url: String,
    /// The workspace's name as reported to the relay.
    pub workspace_name: String,
    /// The directory it watches.
    pub root: String,
    /// When the agent started.
    pub started_at: DateTime<Utc>,
    /// The connection to the relay.
    pub connection: Connection,
    /// The repositories it watches, with their last read state.
    pub repos: Vec<RepoStatus>,
    /// Durable messages sent but not yet acknowledged by the relay.
    pub unacked: usize,
    /// Notices from the relay, newest last (at most a few are kept).
    pub notices: Vec<String>,
    /// Jobs waiting or running, and the last few that finished.
    #[serde(default)]
    pub jobs: Vec<crate::jobs::JobEntry>,
}

impl AgentStatus {
    /// The status of an agent that has just started and is connecting.
    pub fn starting(relay_url: &str, workspace_name: &str, root: &str) -> Self {
        Self {
            agent_version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            relay_url: relay_url.into(),
            workspace_name: workspace_name.into(),
            root: root.into(),
            started_at: Utc::now(),
            connection: Connection {
                state: ConnectionState::Connecting,
                since: Utc::now(),
                session_id: None,
                workspace_id: None,
                rtt_ms: None,
                problem: None,
                retry_at: None,
                transport: None,
            },
            repos: Vec::new(),
            unacked: 0,
            notices: Vec::new(),
            jobs: Vec::new(),
        }
    }
}

/// The connection's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    /// Connected, connecting, or waiting to retry.
    pub state: ConnectionState,
    /// Since when it is in this state.
    pub since: DateTime<Utc>,
    /// The relay session id, while connected.
    pub session_id: Option<Uuid>,
    /// The relay's id for this workspace, once known.
    pub workspace_id: Option<Uuid>,
    /// Last measured round-trip time to the relay, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Why the last attempt or session failed, while not connected.
    pub problem: Option<Problem>,
    /// When the next attempt is due, while waiting.
    pub retry_at: Option<DateTime<Utc>>,
    /// `quic` or `websocket`, while connected.
    #[serde(default)]
    pub transport: Option<String>,
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Dialling or handshaking.
    Connecting,
    /// In a session.
    Connected,
    /// Waiting before the next attempt.
    Disconnected,
}

/// Why the agent is not connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Machine-readable kind.
    pub kind: ProblemKind,
    /// Details for people.
    pub message: String,
}

/// Kinds of connection problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The relay refused the agent token.
    TokenRefused,
    /// The relay does not speak this agent's protocol version.
    VersionMismatch,
    /// The relay could not be reached or the connection dropped.
    RelayDown,
    /// The relay ended the session (replaced, protocol error, relay trouble).
    SessionEnded,
}

/// The shared status; every change wakes whoever waits on it.
#[derive(Debug, Clone)]
pub struct SharedStatus(Arc<watch::Sender<AgentStatus>>);

impl SharedStatus {
    /// Wraps an initial status.
    pub fn new(status: AgentStatus) -> Self {
        Self(Arc::new(watch::Sender::new(status)))
    }

    /// Changes the status; `f` returns whether it changed anything (only then are waiters woken).
    pub fn update(&self, f: impl FnOnce(&mut AgentStatus) -> bool) {
        self.0.send_if_modified(f);
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> AgentStatus {
        self.0.borrow().clone()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<AgentStatus> {
        self.0.subscribe()
    }

    /// Changes the connection state, stamping `since` when the state itself changes.
    pub fn set_connection(&self, f: impl FnOnce(&mut Connection)) {
        self.update(|s| {
            let before = s.connection.state;
            f(&mut s.connection);
            if s.connection.state != before {
                s.connection.since = Utc::now();
            }
            true
        });
    }
}
