//! The Fulcrum relay: the thin, multi-tenant server between workspace agents and their users.
//!
//! Layout (`docs/architecture.md` tells the whole story):
//! - Doors, which translate and hold no rules: [`api`] (REST under `/api/v1`, health),
//!   [`events`] (the dashboard's live WebSocket), [`mcp`] (`/mcp`), [`gateway`] (the agents'
//!   WebSocket and QUIC doors; terminal runs come in here), [`cli`] (admin commands). No door
//!   imports another; [`routes`] mounts them all.
//! - [`domain`]: each operation a user can do, with its permission check, typed input and
//!   errors, and the audit hook, in services built with the narrow dependencies they use
//!   ([`server`] composes them). It imports no door and not [`state::AppState`].
//! - Services the doors and the domain share: [`secrets`] (sealing under the master keys),
//!   [`tasks`] (the task feed, log reads, leases), [`sessions`] (live agent sessions on this node), [`access`] (access changes for
//!   open streams), [`bus`] (fan-out per owner), [`auth`] (passwords, tokens, signed tokens),
//!   [`ratelimit`], [`http`] (errors, envelope, headers and CORS of every HTTP answer).
//! - [`store`]: durable state behind one trait, SQLite and PostgreSQL, its SQL named in one
//!   module; the closed sets are `fulcrum_protocol::kinds`.
//! - Plumbing: [`state`], [`server`] (start and graceful stop), [`config`], [`tls`],
//!   [`metrics`], [`install`], [`dashboard`], [`dev`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod a2a_door;
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
pub mod llm;
pub mod llm_door;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod otlp_door;
pub mod ratelimit;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tasks;
pub mod tls;

pub use config::Config;
pub use server::Relay;
