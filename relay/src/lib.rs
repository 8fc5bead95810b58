//! The Fulcrum relay: the thin, multi-tenant server between workspace agents and their users.
//!
//! Layout:
//! - [`gateway`]: the agents' WebSocket — handshake, heartbeats, durable status messages.
//! - [`api`]: REST under `/api/v1` (auth, agent tokens, workspaces), health, and the router.
//! - [`events`]: the dashboard's live WebSocket feed.
//! - [`mcp`]: the MCP endpoint `/mcp`, reaching every workspace through its agent.
//! - [`tasks`]: dispatching tasks, task events, live logs, the lease on running tasks.
//! - [`bus`]: fan-out of events to subscribers, per owner.
//! - [`store`]: durable state behind one trait; SQLite and PostgreSQL.
//! - [`auth`]: passwords, opaque tokens, signed access tokens; [`ratelimit`]: per-user and
//!   per-token request limits.
//! - [`dashboard`]: the embedded web UI; [`metrics`]: `/metrics` and request ids;
//!   [`install`]: `/install.sh` and the agent downloads.
//! - [`server`]: start and graceful stop; [`tls`]: HTTPS termination; [`cli`]: the command.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod dev;
pub mod domain;
pub mod events;
pub mod gateway;
pub mod http;
pub mod install;
pub mod mcp;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tasks;
pub mod tls;

pub use config::Config;
pub use server::Relay;
