//! `notifications/tools/list_changed`: tells a user's open MCP sessions when the tools they may
//! call changed: a workspace's hosted servers came, went or listed other tools, or a workspace
//! with hosted tools connected or left.
//!
//! Agent sessions publish the owner's id; every MCP session watches for its own user's id and
//! sends the notification on its stream. A watcher ends within [`WATCH_RECHECK`] of its session
//! closing.

use std::time::Duration;

use rmcp::{RoleServer, service::Peer};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Changes that may queue before a slow watcher just sends one notification for all.
const BUFFER: usize = 256;
/// How often an idle watcher checks whether its session is gone.
const WATCH_RECHECK: Duration = Duration::from_secs(30);

/// The users whose tool lists changed, as they change.
pub struct ToolChanges(broadcast::Sender<Uuid>);

impl Default for ToolChanges {
    fn default() -> Self {
        Self(broadcast::channel(BUFFER).0)
    }
}

impl ToolChanges {
    /// Says that `owner`'s tool list changed.
    pub fn publish(&self, owner: Uuid) {
        let _ = self.0.send(owner);
    }

    /// Sends `peer` a `tools/list_changed` notification whenever `owner`'s tools change, until
    /// its session closes.
    pub fn watch(&self, peer: Peer<RoleServer>, owner: Uuid) {
        let mut changes = self.0.subscribe();
        tokio::spawn(async move {
            while !peer.is_transport_closed() {
                let changed = match tokio::time::timeout(WATCH_RECHECK, changes.recv()).await {
                    Err(_) => false,
                    Ok(Ok(user)) => user == owner,
                    // Missed some: one notification covers them, whoever they were for.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => true,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return,
                };
                if changed && peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }
}
