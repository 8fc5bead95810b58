//! Access changes: the moment someone loses access to something, every open stream on this
//! node hears of it and checks again, instead of finding out the next time it happens to look.
//!
//! The events socket (and its log follows) subscribes to [`AccessChanges`]; MCP sessions hold
//! no stream of tenant data beyond one call, and a revoked token's sessions are closed
//! directly ([`token_revoked`]). What publishes here:
//! - a member removed from a project, or a project archived: [`AccessChange::User`] for each
//!   user concerned, who re-check what they follow;
//! - a logout or a replayed refresh token: [`AccessChange::Login`], whose sockets close.
//!
//! Every change goes out through [`publish`], which also counts it for `/metrics`.
//!
//! Task events are addressed when they are published, not when the task was queued: each
//! project has a membership epoch here, bumped with every change of its members, and an
//! audience captured under an older epoch is looked up again before it is used.

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::broadcast;
use uuid::Uuid;

/// How many changes a slow stream may miss before it is told it lagged (and re-checks all).
const BUFFER: usize = 4096;

/// Something that may have taken access away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// What this user may see shrank: their streams check again.
    User(Uuid),
    /// This login (refresh-token family) ended: its streams close.
    Login(Uuid),
}

/// The access changes of this node, and each project's membership epoch.
pub struct AccessChanges {
    tx: broadcast::Sender<AccessChange>,
    epochs: Mutex<HashMap<Uuid, u64>>,
}

impl Default for AccessChanges {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            epochs: Mutex::default(),
        }
    }
}

impl AccessChanges {
    /// Tells every open stream on this node (use [`publish`], which also counts it).
    fn send(&self, change: AccessChange) {
        let _ = self.tx.send(change);
    }

    /// Changes from now on. A receiver that lagged must re-check everything.
    pub fn subscribe(&self) -> broadcast::Receiver<AccessChange> {
        self.tx.subscribe()
    }

    /// `project`'s members changed: audiences captured before are stale.
    pub fn members_changed(&self, project: Uuid) {
        let mut epochs = self.epochs.lock().unwrap_or_else(|e| e.into_inner());
        *epochs.entry(project).or_default() += 1;
    }

    /// The current membership epoch of `project` (0 until its members first change).
    pub fn epoch(&self, project: Option<Uuid>) -> u64 {
        let Some(project) = project else { return 0 };
        let epochs = self.epochs.lock().unwrap_or_else(|e| e.into_inner());
        epochs.get(&project).copied().unwrap_or(0)
    }
}

/// Tells every open stream on this node of `change`, and counts it.
pub fn publish(app: &crate::state::AppState, change: AccessChange) {
    app.metrics.access_changed();
    app.access.send(change);
}

/// A token was revoked (here or, seen by the revocation sweep, elsewhere): its agents are
/// disconnected, its MCP sessions closed, and every stream hears of it.
pub fn token_revoked(app: &crate::state::AppState, token: Uuid) {
    let kicked = app.sessions.kick_token(token);
    let closed = app.mcp.forget_token(token);
    for _ in 0..closed {
        app.metrics.stream_cut("mcp");
    }
    app.metrics.access_changed();
    tracing::info!(%token, kicked, mcp_sessions_closed = closed, "token revoked");
}

/// `project`'s members changed, and `users` may have lost access to it.
pub fn members_changed(app: &crate::state::AppState, project: Uuid, users: &[Uuid]) {
    app.access.members_changed(project);
    for user in users {
        publish(app, AccessChange::User(*user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_hear_changes_and_epochs_move() {
        let access = AccessChanges::default();
        let mut rx = access.subscribe();
        let (user, project) = (Uuid::new_v4(), Uuid::new_v4());
        access.send(AccessChange::User(user));
        assert_eq!(rx.recv().await.unwrap(), AccessChange::User(user));
        assert_eq!(access.epoch(Some(project)), 0);
        access.members_changed(project);
        assert_eq!(access.epoch(Some(project)), 1);
        assert_eq!(access.epoch(None), 0);
    }
}
