//! Workspaces as their owner sees them now.

use uuid::Uuid;

use crate::{
    state::AppState,
    store::{StoreError, Workspace},
};

/// The owner's workspaces as they are now: stored rows, with live sessions' views on top.
pub async fn current(app: &AppState, owner: Uuid) -> Result<Vec<Workspace>, StoreError> {
    let mut all = app.store.list_workspaces(owner).await?;
    app.sessions.overlay(&mut all);
    Ok(all)
}
