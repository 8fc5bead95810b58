//! Access changes: the moment someone loses access to something, every open stream on this
//! node hears of it and checks again, instead of finding out the next time it happens to look.
//!
//! The events socket (and its log follows) subscribes to [`AccessChanges`]; MCP sessions hold
//! no stream of tenant data beyond one call, and a revoked token's sessions are closed
//! directly (by the hook the composition root gives `crate::domain::tokens::Tokens`). What publishes here:
//! - a member removed from a project, or a project archived: [`AccessChange::User`] for each
//!   user concerned, who re-check what they follow;
//! - a logout or a replayed refresh token: [`AccessChange::Login`], whose sockets close.
//!
//! Every change goes out through [`AccessChanges::publish`], which also counts it for
//! `/metrics`.
//!
//! Task events are addressed when they are published, not when the task was queued: each
//! project has a membership epoch here, bumped with every change of its members, and an
//! audience captured under an older epoch is looked up again before it is used.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::metrics::Metrics;

/// How many changes a slow stream may miss before it is told it lagged (and re-checks all).
const BUFFER: usize = 4096;

/// Something that may have taken access away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// What this user may see shrank: their streams check again.
    User(Uuid),
    /// This login (refresh-token family) ended: its streams close.
    Login(Uuid),
    /// This user's account was deactivated: all their streams close.
    Account(Uuid),
}

/// The access changes of this node, and each project's membership epoch.
pub struct AccessChanges {
    tx: broadcast::Sender<AccessChange>,
    epochs: Mutex<HashMap<Uuid, u64>>,
    deactivated: Mutex<std::collections::HashSet<Uuid>>,
    /// Logins ended on this node, with when: their access tokens are refused until they
    /// would have expired anyway.
    ended_logins: Mutex<HashMap<Uuid, std::time::Instant>>,
    metrics: Arc<Metrics>,
}

/// How long an ended login is remembered: the longest an access token lives.
const ENDED_LOGIN_MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Most ended logins remembered (beyond it the oldest are forgotten first).
const MAX_ENDED_LOGINS: usize = 100_000;

impl AccessChanges {
    /// No changes yet; each one published is counted in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            tx: broadcast::channel(BUFFER).0,
            epochs: Mutex::default(),
            deactivated: Mutex::default(),
            ended_logins: Mutex::default(),
            metrics,
        }
    }

    /// Tells every open stream on this node of `change`, and counts it. An ended login is
    /// also remembered, so its access tokens are refused from now on.
    pub fn publish(&self, change: AccessChange) {
        if let AccessChange::Login(login) = change {
            let mut ended = self.ended_logins.lock().unwrap_or_else(|e| e.into_inner());
            if ended.len() >= MAX_ENDED_LOGINS {
                ended.retain(|_, at| at.elapsed() < ENDED_LOGIN_MEMORY);
                if ended.len() >= MAX_ENDED_LOGINS
                    && let Some(oldest) = ended.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k)
                {
                    ended.remove(&oldest);
                }
            }
            ended.insert(login, std::time::Instant::now());
        }
        self.metrics.access_changed();
        let _ = self.tx.send(change);
    }

    /// Whether `login` ended on this node (logout, password change or reset, replay).
    pub fn login_ended(&self, login: Option<Uuid>) -> bool {
        login.is_some_and(|l| {
            self.ended_logins
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&l)
                .is_some_and(|at| at.elapsed() < ENDED_LOGIN_MEMORY)
        })
    }

    /// `project`'s members changed and `users` may have lost access to it: audiences captured
    /// before are stale, and those users' streams check again.
    pub fn lost_access(&self, project: Uuid, users: &[Uuid]) {
        self.members_changed(project);
        for user in users {
            self.publish(AccessChange::User(*user));
        }
    }

    /// Changes from now on. A receiver that lagged must re-check everything.
    pub fn subscribe(&self) -> broadcast::Receiver<AccessChange> {
        self.tx.subscribe()
    }

    /// Records that `user` is deactivated (`false`) or active (`true`); a deactivation tells
    /// every open stream of theirs to close.
    pub fn set_active(&self, user: Uuid, active: bool) {
        let changed = {
            let mut set = self.deactivated.lock().unwrap_or_else(|e| e.into_inner());
            if active {
                set.remove(&user)
            } else {
                set.insert(user)
            }
        };
        if changed && !active {
            self.publish(AccessChange::Account(user));
        }
    }

    /// The users this node holds deactivated.
    pub fn deactivated_users(&self) -> Vec<Uuid> {
        self.deactivated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Whether `user` is deactivated, as this node knows it (at most a sweep behind).
    pub fn is_deactivated(&self, user: Uuid) -> bool {
        self.deactivated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&user)
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

/// A token was revoked (here or, seen by the revocation sweep, elsewhere): its agents are
/// disconnected and its MCP sessions closed.
pub fn token_revoked(
    sessions: &crate::sessions::Registry,
    mcp: &crate::mcp::access::McpState,
    metrics: &Metrics,
    token: Uuid,
) {
    let kicked = sessions.kick_token(token);
    let closed = mcp.forget_token(token);
    for _ in 0..closed {
        metrics.stream_cut("mcp");
    }
    metrics.access_changed();
    tracing::info!(%token, kicked, mcp_sessions_closed = closed, "token revoked");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_hear_changes_and_epochs_move() {
        let access = AccessChanges::new(Default::default());
        let mut rx = access.subscribe();
        let (user, project) = (Uuid::new_v4(), Uuid::new_v4());
        access.publish(AccessChange::User(user));
        assert_eq!(rx.recv().await.unwrap(), AccessChange::User(user));
        assert_eq!(access.epoch(Some(project)), 0);
        access.members_changed(project);
        assert_eq!(access.epoch(Some(project)), 1);
        assert_eq!(access.epoch(None), 0);
        let other = Uuid::new_v4();
        access.lost_access(project, &[other]);
        assert_eq!(access.epoch(Some(project)), 2);
        assert_eq!(rx.recv().await.unwrap(), AccessChange::User(other));
    }
}
