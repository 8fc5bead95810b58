//! Workspaces as their owner sees them now (stored rows with the live sessions' views on top),
//! and tool calls into them.

use std::{sync::Arc, time::Duration};

use fulcrum_protocol::tools::{ToolCall, ToolOutput, ToolTarget, builtin_writes};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult, Limit,
    audit::{self, Record},
};
use crate::{
    sessions::Registry,
    store::{DynStore, Scope, StoreError, Workspace},
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

    /// The owner's workspaces as they are now (the relay's own use, and a login's view).
    pub async fn current(&self, owner: Uuid) -> Result<Vec<Workspace>, StoreError> {
        let mut all = self.store.list_workspaces(owner).await?;
        self.sessions.overlay(&mut all);
        Ok(all)
    }

    /// The caller's workspaces that its token reaches, as they are now.
    pub async fn visible(&self, caller: Caller) -> DomainResult<Vec<Workspace>> {
        caller.need(Scope::Read)?;
        let mut all = self.current(caller.user).await?;
        if let Some(reached) = self.reached(caller).await? {
            all.retain(|w| reached.contains(&w.id));
        }
        Ok(all)
    }

    /// One of the caller's workspaces, as it is now; not found when it is another user's or
    /// the token does not reach it.
    pub async fn get(&self, caller: Caller, id: Uuid) -> DomainResult<Workspace> {
        caller.need(Scope::Read)?;
        let mut found: Vec<_> = self
            .store
            .get_workspace(caller.user, id)
            .await?
            .into_iter()
            .collect();
        if let Some(reached) = self.reached(caller).await? {
            found.retain(|w| reached.contains(&w.id));
        }
        self.sessions.overlay(&mut found);
        found.pop().ok_or(DomainError::NotFound("workspace"))
    }

    /// The workspaces a limited token reaches; `None` when it is not limited.
    async fn reached(&self, caller: Caller) -> DomainResult<Option<Vec<Uuid>>> {
        Ok(match caller.grant.limit {
            Limit::None => None,
            Limit::Workspace(w) => Some(vec![w]),
            Limit::Project(p) => Some(
                self.store
                    .get_project(caller.user, p)
                    .await?
                    .map(|p| p.workspace_ids)
                    .unwrap_or_default(),
            ),
        })
    }

    /// Calls a tool in one of the caller's workspaces (the caller found it among theirs)
    /// through its agent. Every call needs `read`; one that may change the workspace (a
    /// built-in tool that writes, a hosted tool not marked read-only) needs the token's `write`
    /// scope and the workspace's `write` policy, and the error says which refused. The agent
    /// checks both again. A call that may change files is recorded with the audit hook.
    pub async fn call_tool(
        &self,
        caller: Caller,
        workspace: Uuid,
        mut call: ToolCall,
        timeout: Duration,
    ) -> DomainResult<ToolOutput> {
        caller.need(Scope::Read)?;
        if let Some(reached) = self.reached(caller).await?
            && !reached.contains(&workspace)
        {
            return Err(DomainError::NotFound("workspace"));
        }
        let tools = self.sessions.tools(workspace);
        let changes = match &call.target {
            ToolTarget::Builtin(name) => builtin_writes(name) != Some(false),
            ToolTarget::Hosted { server, tool } => tools
                .as_ref()
                .and_then(|t| t.catalog.servers.iter().find(|s| &s.name == server))
                .and_then(|s| s.tools.iter().find(|t| &t.name == tool))
                .is_none_or(|t| !t.read_only),
        };
        if changes {
            caller.need(Scope::Write)?;
            if let Some(t) = &tools
                && !t.catalog.policy().contains(Scope::Write)
            {
                return Err(DomainError::Denied {
                    code: "workspace_policy",
                    message: "the workspace's policy does not allow `write` (its agent runs \
                              without `write` in --allow)"
                        .into(),
                });
            }
        }
        call.may_write = caller.has(Scope::Write);
        // Recorded as `tool.NAME` (`tool.write_file`, `tool.git__git_commit`).
        let writes = match &call.target {
            ToolTarget::Builtin(name) => format!("tool.{name}"),
            ToolTarget::Hosted { server, tool } => format!("tool.{server}__{tool}"),
        };
        let writes = Some(writes).filter(|_| changes);
        let out = self
            .sessions
            .call_tool(workspace, call, timeout)
            .await
            .map_err(|e| DomainError::conflict("workspace_unavailable", e.to_string()))?;
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
