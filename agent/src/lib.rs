//! The Fulcrum workspace agent: the library behind the `fulcrum` binary.
//!
//! - [`agent`]: starts and stops the agent's tasks.
//! - [`link`]: the connection to the relay (dial, handshake, heartbeats, durable delivery,
//!   reconnect with backoff); [`transport`]: WebSocket or QUIC; [`proxy`]: tunnelling the
//!   WebSocket through `HTTPS_PROXY`.
//! - [`monitor`]: keeps repository state current from [`repos`] and the file watcher.
//! - [`repos`]: finding git repositories, reading their state, watching them.
//! - [`control`]: the Unix socket `fulcrum status` talks to; [`status`]: what it reports.
//! - [`jobs`]: the job runner (tasks from the relay, process groups, output, results);
//!   [`outbox`]: the durable outbox on disk; [`qa`]: QA steps and test reports.
//! - [`paths`]: paths that remote tools name, kept inside the workspace root; [`files`]:
//!   reading, listing and writing files for them, capped; [`tools`]: the tools the relay's MCP
//!   endpoint runs here; [`hosted`]: MCP servers the agent runs in the workspace.
//! - [`identity`]: the workspace's stable key, host name and Coder facts.
//! - [`cli`]: the `fulcrum` command line.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod cli;
pub mod control;
pub mod files;
pub mod hosted;
pub mod identity;
pub mod jobs;
pub mod link;
mod memory;
pub mod monitor;
pub mod outbox;
pub mod paths;
pub mod proxy;
pub mod qa;
pub mod repos;
pub mod status;
pub mod tools;
pub mod transport;

pub use agent::{AgentOptions, RunningAgent};
