//! Workspaces as their owner sees them now (stored rows with the live sessions' views on top),
//! and tool calls into them.

use std::{sync::Arc, time::Duration};

use fulcrum_protocol::tools::{ToolCall, ToolOutput, ToolTarget, builtin_writes};
use uuid::Uuid;

use super::{
    Caller,
    audit::{self, Record},
};
use crate::{
    sessions::{Registry, ToolCallError},
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

    /// Calls a tool in one of the caller's workspaces (the caller found it among theirs)
    /// through its agent, which checks the call may write. A call that may change files is
    /// recorded with the audit hook: every hosted tool, and the built-in ones that write.
    pub async fn call_tool(
        &self,
        caller: Caller,
        workspace: Uuid,
        call: ToolCall,
        timeout: Duration,
    ) -> Result<ToolOutput, ToolCallError> {
        // Recorded as `tool.NAME` (`tool.write_file`, `tool.git__git_commit`).
        let writes = match &call.target {
            ToolTarget::Builtin(name) if builtin_writes(name) != Some(false) => {
                Some(format!("tool.{name}"))
            }
            ToolTarget::Builtin(_) => None,
            ToolTarget::Hosted { server, tool } => Some(format!("tool.{server}__{tool}")),
        }
        .filter(|_| call.may_write);
        let out = self.sessions.call_tool(workspace, call, timeout).await?;
        if let Some(action) = writes.filter(|_| !out.is_error) {
            audit::record(Record {
                caller,
                action: &action,
                subject: workspace,
            });
        }
        Ok(out)
    }
}
