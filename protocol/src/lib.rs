//! The wire contract between `fulcrum agent` and `fulcrum-relay`.
//!
//! Everything that crosses the connection is defined here and nowhere else; this crate knows
//! nothing about sockets or databases.
//!
//! - [`messages`]: every frame, in both directions, each variant documented.
//! - [`status`]: the workspace and repository state the agent reports.
//! - [`tasks`]: jobs the relay dispatches and what the agent reports about them.
//! - [`tools`]: tool calls the relay's MCP endpoint forwards to an agent, and their answers.
//! - [`codec`]: MessagePack framing with a hard size cap.
//! - [`quic`]: how the same frames travel on QUIC streams.
//! - [`reliable`]: sequence numbers, cumulative acks, replay and duplicate suppression for
//!   durable messages, as plain state machines that both sides share.
//!
//! Compatibility: [`PROTOCOL_VERSION`] is bumped on any change that an older peer would
//! misread. The relay refuses a `Hello` whose version it does not speak, with
//! [`RejectReason::VersionMismatch`], and the agent shows that reason in `fulcrum status`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod codec;
pub mod kinds;
pub mod messages;
pub mod quic;
pub mod reliable;
pub mod status;
pub mod tasks;
pub mod tool_args;
pub mod tool_results;
pub mod tools;

pub use codec::{CodecError, MAX_FRAME_BYTES, decode, encode};
pub use messages::*;
pub use status::*;
pub use tasks::{
    RunRequest, TaskOutcome, TaskResult, TaskRun, TaskSpec, TaskState, TestFailure, TestSummary,
};

/// The protocol version this build speaks. The relay accepts exactly the versions in
/// [`SUPPORTED_VERSIONS`].
pub const PROTOCOL_VERSION: u16 = 2;

/// Protocol versions a relay of this build accepts from agents.
/// Version 1 agents work but have no remote tools ([`tools::TOOLS_SINCE_VERSION`]).
pub const SUPPORTED_VERSIONS: &[u16] = &[1, PROTOCOL_VERSION];

/// The path on the relay where agents open their WebSocket.
pub const AGENT_CONNECT_PATH: &str = "/api/v1/agent/connect";
