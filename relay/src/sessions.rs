//! The live agent sessions on this node, by workspace.
//!
//! At most one session per workspace: a newer connection for the same workspace replaces the
//! older one, which is told to close. Revoking a token closes every session that used it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use fulcrum_protocol::tools::{ToolCall, ToolCatalog, ToolOutput};
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::store::Workspace;

/// An instruction to a running session.
#[derive(Debug)]
pub enum Control {
    /// A newer session for the same workspace took over.
    Replaced,
    /// The token the session authenticated with was revoked.
    TokenRevoked,
    /// Send the agent a task to run.
    Run(Box<crate::tasks::Dispatch>),
    /// Tell the agent to cancel a task.
    Cancel(Uuid),
    /// Answer the agent's request `id` (a run from its terminal) with the task's id or why not.
    Answer {
        /// The request.
        id: u64,
        /// The task's id, or the reason it was not started.
        result: Result<Uuid, String>,
    },
    /// Run a tool in the workspace and answer on `reply`. Dropping `reply` unanswered (the
    /// session ended) tells the caller the agent went away.
    Tool {
        /// The call.
        call: ToolCall,
        /// Where the answer goes.
        reply: oneshot::Sender<ToolOutput>,
    },
}

/// What a session knows about its agent's tools.
#[derive(Debug, Clone, Default)]
pub struct SessionTools {
    /// Whether the agent's protocol version carries tool calls.
    pub supported: bool,
    /// The agent's latest catalog (hosted servers, writable).
    pub catalog: ToolCatalog,
}

/// Why a tool call got no answer from the workspace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolCallError {
    /// No agent of the workspace is connected.
    #[error("the workspace is offline: its agent is not connected")]
    Offline,
    /// The agent's version has no remote tools.
    #[error("the workspace's agent is too old for remote tools; upgrade it")]
    Unsupported,
    /// The connection ended before the answer came.
    #[error("the workspace's agent disconnected during the call; try again once it is back")]
    Disconnected,
    /// No answer in time.
    #[error("the workspace's agent did not answer within {0} s")]
    TimedOut(u64),
}

/// A running session, as the registry knows it.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    /// The session's id.
    pub session_id: Uuid,
    /// The token it authenticated with.
    pub token_id: Uuid,
    /// Where to send it instructions.
    pub control: mpsc::Sender<Control>,
    /// The workspace as the session knows it: everything accepted from the agent, committed or
    /// about to be.
    pub view: Arc<Mutex<Workspace>>,
    /// The agent's tools.
    pub tools: Arc<Mutex<SessionTools>>,
}

/// Live sessions by workspace id.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<Uuid, SessionEntry>>,
    emptied: Notify,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the session for `workspace`, telling any previous one it was replaced.
    pub fn register(&self, workspace: Uuid, entry: SessionEntry) {
        if let Some(old) = self.lock().insert(workspace, entry) {
            let _ = old.control.try_send(Control::Replaced);
        }
    }

    /// Removes the session if it is still the current one for `workspace`; true if it was.
    pub fn remove(&self, workspace: Uuid, session_id: Uuid) -> bool {
        let mut sessions = self.lock();
        if sessions
            .get(&workspace)
            .is_some_and(|e| e.session_id == session_id)
        {
            sessions.remove(&workspace);
            if sessions.is_empty() {
                self.emptied.notify_waiters();
            }
            true
        } else {
            false
        }
    }

    /// Tells every session that authenticated with `token_id` to close; returns how many.
    pub fn kick_token(&self, token_id: Uuid) -> usize {
        let sessions = self.lock();
        let mut kicked = 0;
        for entry in sessions.values().filter(|e| e.token_id == token_id) {
            let _ = entry.control.try_send(Control::TokenRevoked);
            kicked += 1;
        }
        kicked
    }

    /// Replaces each workspace that has a live session with the session's view, which may be a
    /// few milliseconds ahead of what is committed. Callers pass only workspaces they may see.
    pub fn overlay(&self, workspaces: &mut [Workspace]) {
        let sessions = self.lock();
        for w in workspaces.iter_mut() {
            if let Some(entry) = sessions.get(&w.id) {
                *w = entry.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
            }
        }
    }

    /// Hands `control` to the live session of `workspace`; false when there is none (or it
    /// does not take it in time).
    pub async fn send(&self, workspace: Uuid, control: Control) -> bool {
        let sender = self.lock().get(&workspace).map(|e| e.control.clone());
        match sender {
            Some(tx) => matches!(
                tokio::time::timeout(crate::state::SEND_TIMEOUT, tx.send(control)).await,
                Ok(Ok(()))
            ),
            None => false,
        }
    }

    /// The live workspaces of `owner` on this node named `wanted` (or with that id), as
    /// `(id, name)`: found without the database, for the MCP tools' hot path.
    pub fn find_live(&self, owner: Uuid, wanted: &str) -> Vec<(Uuid, String)> {
        let sessions = self.lock();
        let view = |e: &SessionEntry| {
            let v = e.view.lock().unwrap_or_else(|e| e.into_inner());
            (v.owner_id == owner).then(|| (v.id, v.name.clone()))
        };
        if let Ok(id) = Uuid::parse_str(wanted)
            && let Some(found) = sessions.get(&id).and_then(view)
        {
            return vec![found];
        }
        sessions
            .values()
            .filter_map(view)
            .filter(|(_, name)| name == wanted)
            .collect()
    }

    /// The tools of `workspace`'s live session, if it has one.
    pub fn tools(&self, workspace: Uuid) -> Option<SessionTools> {
        let sessions = self.lock();
        let entry = sessions.get(&workspace)?;
        let tools = entry
            .tools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(tools)
    }

    /// Runs `call` in `workspace` through its live session and waits up to `timeout` in all
    /// for the answer.
    pub async fn call_tool(
        &self,
        workspace: Uuid,
        call: ToolCall,
        timeout: std::time::Duration,
    ) -> Result<ToolOutput, ToolCallError> {
        // The session itself refuses a call its agent cannot read (ToolCallError::Unsupported).
        let deadline = tokio::time::Instant::now() + timeout;
        let (reply, answer) = oneshot::channel();
        let sent = tokio::time::timeout_at(deadline, async {
            let sender = self.lock().get(&workspace).map(|e| e.control.clone());
            match sender {
                Some(tx) => tx.send(Control::Tool { call, reply }).await.is_ok(),
                None => false,
            }
        })
        .await;
        match sent {
            Err(_) => return Err(ToolCallError::TimedOut(timeout.as_secs())),
            Ok(false) => return Err(ToolCallError::Offline),
            Ok(true) => {}
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(ToolCallError::TimedOut(timeout.as_secs())),
            Ok(Err(_)) => Err(ToolCallError::Disconnected),
            Ok(Ok(output)) => Ok(output),
        }
    }

    /// The policy of the workspace's agent (what it allows callers: `write`, `run`), when it is
    /// connected here.
    pub fn policy(&self, workspace: Uuid) -> Option<crate::store::Scopes> {
        self.tools(workspace).map(|t| t.catalog.policy())
    }

    /// True when `workspace` has a live session on this node.
    pub fn is_online(&self, workspace: Uuid) -> bool {
        self.lock().contains_key(&workspace)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Waits until no session is live.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
