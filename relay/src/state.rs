//! What every handler and session shares.

use std::sync::Arc;

use tokio::sync::watch;

use crate::{auth::Signer, bus::DynBus, config::Config, sessions::Registry, store::DynStore};

/// How long a write to an agent or a browser may take before its socket is given up: a peer
/// that stops reading must not hold a task (and its memory) forever.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Shared relay state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Durable state.
    pub store: DynStore,
    /// Event fan-out.
    pub bus: DynBus,
    /// Signs access tokens and event tickets.
    pub signer: Signer,
    /// The resolved configuration.
    pub config: Arc<Config>,
    /// Live agent sessions on this node.
    pub sessions: Arc<Registry>,
    /// Becomes `true` when the relay is shutting down; long-lived sockets watch it.
    pub shutdown: watch::Receiver<bool>,
    /// Task changes going out, log followers, and task states ahead of their commit.
    pub feed: Arc<crate::tasks::TaskFeed>,
    /// What users can do, whatever the door.
    pub domain: Arc<crate::domain::Domain>,
    /// Request limits per user and per agent token.
    pub limits: Arc<crate::ratelimit::Limits>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Checksums of the agent downloads.
    pub checksums: Arc<crate::install::Checksums>,
    /// The MCP endpoint's checked tokens and session owners.
    pub mcp: Arc<crate::mcp::access::McpState>,
    /// Who just lost access to what, for every open stream.
    pub access: Arc<crate::access::AccessChanges>,
    /// Event tickets already used.
    pub used_tickets: Arc<crate::auth::UsedTickets>,
    /// This node's pipeline engine.
    pub engine: Arc<crate::domain::pipelines::engine::Engine>,
    /// This node's outgoing webhook delivery loop.
    pub webhook_dispatcher: Arc<crate::domain::webhooks::deliver::Dispatcher>,
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here rather than in a caller's select.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

impl AppState {
    /// The tools the assistant may call: `/mcp`'s catalog, called through the same path.
    pub fn assistant_tools(&self) -> crate::mcp::assistant_tools::CatalogTools {
        crate::mcp::assistant_tools::CatalogTools::new(self.clone())
    }
}
