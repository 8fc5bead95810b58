//! Every frame that crosses an agent connection, in both directions.
//!
//! A connection goes: the agent sends [`AgentFrame::Hello`]; the relay answers with
//! [`RelayFrame::Welcome`] or [`RelayFrame::Reject`] (and closes). After a welcome, the relay
//! sends [`RelayFrame::Ping`] every heartbeat interval and the agent answers each with
//! [`AgentFrame::Pong`]; a peer that has been silent for two intervals is gone.
//!
//! Durable messages travel inside [`Durable`] envelopes that carry a sequence number on a named
//! *stream*. The receiver acknowledges cumulatively ([`AgentFrame::Ack`], [`RelayFrame::Ack`]);
//! the sender keeps what is unacknowledged and replays it after a reconnect, and the receiver drops
//! any sequence number it has already applied (see [`crate::reliable`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    status::{RepoStatus, WorkspaceIdentity},
    tasks::{RunRequest, TaskResult, TaskSpec},
    tools::{ToolCall, ToolCatalog, ToolOutput},
};

/// A frame sent by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentFrame {
    /// The first frame on every connection: who the agent is and where its streams stand.
    Hello(Hello),
    /// A durable message, kept by the agent until the relay acknowledges its sequence number.
    Durable(Durable<AgentMessage>),
    /// Cumulative acknowledgement: the agent has applied every relay durable message up to and
    /// including `seq` on the relay's current stream.
    Ack {
        /// Highest sequence number applied.
        seq: u64,
    },
    /// The answer to a [`RelayFrame::Ping`], echoing its nonce.
    Pong {
        /// The nonce of the ping being answered.
        nonce: u64,
    },
    /// Asks the relay to record and dispatch a run for this workspace (`fulcrum run` in its
    /// terminal). Not durable: if the connection drops first, the terminal is told and nothing
    /// was recorded. The relay answers with [`RelayFrame::Response`] carrying the same id.
    Request {
        /// Chosen by the agent, echoed in the response.
        id: u64,
        /// What to run.
        run: RunRequest,
    },
    /// The answer to a [`RelayFrame::ToolCall`] with the same id.
    ToolReply {
        /// The call's id.
        id: u64,
        /// What the tool produced.
        output: ToolOutput,
    },
    /// The tools the agent serves besides its built-in ones (its hosted MCP servers), and
    /// whether its workspace allows writes. Sent after every welcome and whenever it changes;
    /// each replaces the last.
    Tools(ToolCatalog),
}

/// The agent's opening frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the agent speaks ([`crate::PROTOCOL_VERSION`] of its build).
    pub protocol_version: u16,
    /// The agent's own version, e.g. `0.1.0`.
    pub agent_version: String,
    /// Which workspace this is.
    pub workspace: WorkspaceIdentity,
    /// The agent's outgoing durable stream. A new id means a new numbering that starts at 1
    /// (the agent lost its outbox, e.g. it restarted without one on disk).
    pub agent_stream: Uuid,
    /// The relay stream the agent has been applying, if any, and the highest sequence number on
    /// it that the agent applied; the relay replays what follows.
    pub relay_stream: Option<StreamPosition>,
}

impl Hello {
    /// Checks the sizes and shapes the relay stores, so a bad hello is refused, never stored.
    pub fn check(&self) -> crate::check::Checked {
        use crate::check::Invalid;
        let w = &self.workspace;
        let fields = [
            ("workspace.key", &w.key, 128),
            ("workspace.name", &w.name, 255),
            ("workspace.hostname", &w.hostname, 255),
        ];
        for (what, value, max) in fields {
            if value.is_empty() || value.len() > max {
                return Err(Invalid::new(
                    what,
                    format!("{what} must be 1 to {max} bytes"),
                ));
            }
        }
        if w.root.len() > crate::MAX_PATH_BYTES {
            return Err(Invalid::new("workspace.root", "workspace root too long"));
        }
        if self.agent_version.len() > 64 {
            return Err(Invalid::new("agent_version", "agent version too long"));
        }
        Ok(())
    }
}

/// A position on a durable stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The stream's id.
    pub stream: Uuid,
    /// The highest sequence number applied on it.
    pub seq: u64,
}

/// A durable message with its sequence number. Sequence numbers start at 1 on each stream and
/// increase by one per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Durable<T> {
    /// Position of this message on the sender's stream.
    pub seq: u64,
    /// The message itself.
    pub body: T,
}

impl AgentMessage {
    /// Checks the message is within the protocol's limits.
    pub fn check(&self) -> crate::check::Checked {
        match self {
            Self::RepoSet { paths } => {
                if paths.len() > crate::MAX_REPOS {
                    return Err(crate::check::Invalid::new(
                        "message",
                        format!("at most {} repositories per workspace", crate::MAX_REPOS),
                    ));
                }
                if paths
                    .iter()
                    .any(|p| p.is_empty() || p.len() > crate::MAX_PATH_BYTES)
                {
                    return Err(crate::check::Invalid::new(
                        "message",
                        "repository paths must be 1 to 4096 bytes",
                    ));
                }
                Ok(())
            }
            Self::RepoState(status) => status.check(),
            Self::TaskStarted { commit, branch, .. } => {
                let long = |v: &Option<String>| {
                    v.as_ref().is_some_and(|v| v.len() > crate::MAX_TEXT_BYTES)
                };
                if long(commit) || long(branch) {
                    return Err(crate::check::Invalid::new(
                        "message",
                        "commit and branch must be at most 1024 bytes",
                    ));
                }
                Ok(())
            }
            Self::TaskOutput { data, offset, .. } => {
                if data.is_empty() || data.len() > crate::tasks::MAX_OUTPUT_CHUNK {
                    return Err(crate::check::Invalid::new(
                        "message",
                        "an output chunk is 1 byte to 256 KiB",
                    ));
                }
                if offset.saturating_add(data.len() as u64) > i64::MAX as u64 {
                    return Err(crate::check::Invalid::new(
                        "message",
                        "an output offset is out of range",
                    ));
                }
                Ok(())
            }
            Self::TaskFinished(result) => {
                let summary_ok = result.test_summary.as_ref().is_none_or(|s| {
                    s.failures.len() <= crate::tasks::MAX_LISTED_FAILURES
                        && s.failures
                            .iter()
                            .all(|f| f.name.len() <= 1024 && f.message.len() <= 8192)
                });
                let message_ok = match &result.outcome {
                    crate::TaskOutcome::FailedToStart { message }
                    | crate::TaskOutcome::Lost { message } => message.len() <= 8192,
                    _ => true,
                };
                let numbers_ok = [result.duration_ms, result.log_bytes, result.output_bytes]
                    .iter()
                    .all(|n| *n <= i64::MAX as u64);
                if !summary_ok || !message_ok || !numbers_ok {
                    return Err(crate::check::Invalid::new(
                        "message",
                        "a task result exceeds its size limits",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Durable messages from the agent to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// The complete set of repositories the agent now watches, as paths relative to the root.
    /// Any repository the relay knows that is not listed is gone.
    RepoSet {
        /// Relative paths of every watched repository.
        paths: Vec<String>,
    },
    /// The current state of one repository; it replaces whatever the relay had for that path.
    RepoState(RepoStatus),
    /// A task's process started (after waiting for a free slot, if it had to).
    TaskStarted {
        /// The task.
        task_id: Uuid,
        /// The commit checked out where it runs, if the directory is a git repository.
        commit: Option<String>,
        /// The branch checked out, if any.
        branch: Option<String>,
    },
    /// A chunk of a task's merged stdout and stderr. Chunks of a task are contiguous: `offset`
    /// is the number of log bytes before this one.
    TaskOutput {
        /// The task.
        task_id: Uuid,
        /// Byte offset of `data` in the task's log.
        offset: u64,
        /// The bytes, at most [`crate::tasks::MAX_OUTPUT_CHUNK`].
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A task ended; the last message about it.
    TaskFinished(TaskResult),
}

/// A frame sent by the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RelayFrame {
    /// The handshake succeeded; the session is open.
    Welcome(Welcome),
    /// The relay refuses or ends the session, and says why. The connection closes after it.
    Reject(Reject),
    /// Heartbeat. The agent answers with [`AgentFrame::Pong`] carrying the same nonce.
    Ping {
        /// Echoed back in the pong.
        nonce: u64,
        /// The round-trip time the relay measured for the previous ping, in microseconds.
        rtt_us: Option<u64>,
    },
    /// Cumulative acknowledgement: the relay has durably stored every agent message up to and
    /// including `seq` on the agent's current stream.
    Ack {
        /// Highest sequence number stored.
        seq: u64,
    },
    /// A durable message from the relay, kept by the relay until the agent acknowledges it.
    Durable(Durable<RelayMessage>),
    /// The relay is going away (shutdown or rebalancing): reconnect after the delay, possibly to
    /// another node behind the same address.
    Reconnect {
        /// How long to wait before reconnecting, in milliseconds.
        after_ms: u64,
    },
    /// The answer to an [`AgentFrame::Request`].
    Response {
        /// The request's id.
        id: u64,
        /// The recorded task's id, or why the run was refused.
        result: Result<Uuid, String>,
    },
    /// Run a tool in the workspace for an MCP client and answer with [`AgentFrame::ToolReply`].
    /// Not durable: a call lost with its connection fails for its caller. Sent only to agents
    /// that speak [`crate::tools::TOOLS_SINCE_VERSION`] or later.
    ToolCall {
        /// Chosen by the relay, echoed in the reply.
        id: u64,
        /// The call.
        call: ToolCall,
    },
}

/// The relay's answer to a good [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Id of this session, for logs and `fulcrum status`.
    pub session_id: Uuid,
    /// The relay's id for this workspace.
    pub workspace_id: Uuid,
    /// How often the relay pings, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// The highest sequence number the relay has stored on the agent's stream named in the
    /// hello (0 when the stream is new to it). The agent drops what is acknowledged and replays
    /// the rest.
    pub agent_stream_acked: u64,
    /// The relay's outgoing durable stream for this workspace.
    pub relay_stream: Uuid,
    /// The relay's version.
    pub relay_version: String,
}

/// Why the relay refused or ended a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The reason, for programs.
    pub reason: RejectReason,
    /// The reason, for people.
    pub message: String,
}

/// Machine-readable reasons for a [`Reject`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The agent token is unknown or revoked.
    Unauthorized,
    /// The agent speaks a protocol version the relay does not.
    VersionMismatch {
        /// The versions the relay accepts.
        supported: Vec<u16>,
    },
    /// The first frame was not a valid hello, or a frame broke the protocol.
    ProtocolViolation,
    /// A newer connection for the same workspace replaced this one.
    Replaced,
    /// The relay could not serve the session (e.g. its database is down); try again later.
    Unavailable,
}

impl RejectReason {
    /// True when reconnecting with the same token and build cannot succeed, so the agent should
    /// back off to its longest delay.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::VersionMismatch { .. })
    }
}

/// Durable messages from the relay to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayMessage {
    /// A message for the people using the workspace, shown by `fulcrum status`.
    Notice {
        /// The text to show.
        text: String,
    },
    /// Run a task. Sent again after every reconnect until the agent reports it started; the
    /// agent runs each task id at most once.
    RunTask(TaskSpec),
    /// Stop a task: SIGTERM to its process group, SIGKILL after the grace period. A task still
    /// waiting for a slot is dropped; one the agent never saw is refused if it arrives later.
    CancelTask {
        /// The task.
        task_id: Uuid,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_out_of_bounds_names_what_is_wrong() {
        let hello = |key: &str, version: &str| Hello {
            protocol_version: crate::PROTOCOL_VERSION,
            agent_version: version.into(),
            workspace: WorkspaceIdentity {
                key: key.into(),
                name: "ws".into(),
                hostname: "host".into(),
                root: "/src".into(),
                coder: None,
            },
            agent_stream: Uuid::nil(),
            relay_stream: None,
        };
        assert_eq!(hello("k", "1.0").check(), Ok(()));
        let e = hello("", "1.0").check().unwrap_err();
        assert_eq!(e.what, "workspace.key");
        assert_eq!(e.to_string(), "workspace.key must be 1 to 128 bytes");
        let e = hello("k", &"9".repeat(65)).check().unwrap_err();
        assert_eq!(e.what, "agent_version");
        let e = crate::tasks::check_repo_path("../x").unwrap_err();
        assert_eq!(e.what, "repo");
    }
}
