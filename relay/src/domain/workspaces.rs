//! Workspaces as their owner sees them now: stored rows with the live sessions' views on top.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    sessions::Registry,
    store::{DynStore, StoreError, Workspace},
};

/// A user's workspaces, with what reading them uses.
#[derive(Clone)]
pub struct Workspaces {
    store: DynStore,
    sessions: Arc<Registry>,
}

impl Workspaces {
    /// Workspaces stored in `store`, with `sessions`' live views.
    pub fn new(store: DynStore, sessions: Arc<Registry>) -> Self {
        Self { store, sessions }
    }

    /// The owner's workspaces as they are now.
    pub async fn current(&self, owner: Uuid) -> Result<Vec<Workspace>, StoreError> {
        let mut all = self.store.list_workspaces(owner).await?;
        self.sessions.overlay(&mut all);
        Ok(all)
    }
}
