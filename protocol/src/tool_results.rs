//! The results of the built-in tools the relay answers (workspaces, projects, tasks), defined
//! once: the relay builds these types, returns them as a tool's structured content (and as its
//! JSON text), and its MCP catalog publishes the output schemas generated from them (feature
//! `schema`). The tools a workspace's agent answers return text, like the reference git and
//! filesystem servers they follow.
//!
//! MCP wants structured content to be a JSON object, so lists come wrapped (`workspaces`,
//! `projects`, `tasks`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    CoderFacts, RepoStatus, TaskState, TestSummary,
    kinds::{ProjectStatus, Role, TaskSource},
};

/// Declares result structs: serde, and a JSON Schema when the `schema` feature is on.
macro_rules! results {
    ($( $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* } )+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            pub struct $name { $($body)* }
        )+
    };
}

results! {
    /// A repository's last reported state.
    pub struct RepoInfo {
        /// The state, as the agent reported it.
        #[serde(flatten)]
        pub status: RepoStatus,
        /// When the relay stored it.
        pub updated_at: DateTime<Utc>,
    }

    /// A workspace as its owner sees it now.
    pub struct WorkspaceInfo {
        /// Its id (a tool's `workspace` argument takes this or the name).
        pub id: Uuid,
        /// Its name.
        pub name: String,
        /// The machine's host name.
        pub hostname: String,
        /// The directory the agent watches.
        pub root: String,
        /// Whether its agent is connected.
        pub online: bool,
        /// When the current (or last) session opened.
        pub connected_at: Option<DateTime<Utc>>,
        /// When the relay last heard from the agent.
        pub last_seen_at: Option<DateTime<Utc>>,
        /// The agent's version.
        pub agent_version: String,
        /// Coder facts, when it runs in Coder.
        pub coder: Option<CoderFacts>,
        /// The repositories under the root, by path.
        pub repos: Vec<RepoInfo>,
    }

    /// `list_workspaces`.
    pub struct WorkspaceList {
        /// The caller's workspaces, online first.
        pub workspaces: Vec<WorkspaceInfo>,
    }

    /// An MCP server hosted in a workspace.
    pub struct HostedServerInfo {
        /// Its name (its tools are listed as `name__tool`).
        pub name: String,
        /// Whether it runs.
        pub running: bool,
        /// Why it does not, when it does not.
        pub problem: Option<String>,
        /// Its tools.
        pub tools: Vec<String>,
    }

    /// `workspace_status`.
    pub struct WorkspaceStatus {
        /// The workspace.
        pub workspace: WorkspaceInfo,
        /// Whether its agent allows writes (unknown while it is offline).
        pub writable: Option<bool>,
        /// The MCP servers it hosts (unknown while it is offline).
        pub hosted_mcp_servers: Option<Vec<HostedServerInfo>>,
    }

    /// A project, as one of its members sees it.
    pub struct ProjectInfo {
        /// Its id.
        pub id: Uuid,
        /// Its name.
        pub name: String,
        /// Free text.
        pub description: String,
        /// Where its code lives.
        pub repository_url: Option<String>,
        /// Languages and frameworks.
        pub tech_stack: Vec<String>,
        /// Whether it takes new work.
        pub status: ProjectStatus,
        /// The caller's role in it.
        pub role: Role,
        /// The workspaces that check it out.
        pub workspace_ids: Vec<Uuid>,
        /// When it was created.
        pub created_at: DateTime<Utc>,
        /// When it last changed.
        pub updated_at: DateTime<Utc>,
    }

    /// `list_projects`.
    pub struct ProjectList {
        /// The projects the caller is a member of, newest first.
        pub projects: Vec<ProjectInfo>,
    }

    /// A task in a list.
    pub struct TaskSummary {
        /// Its id.
        pub id: Uuid,
        /// Its number in its workspace (`#17`), unique per workspace.
        pub number: Option<i64>,
        /// The workspace it runs in.
        pub workspace_id: Uuid,
        /// The repository, relative to the workspace root.
        pub repo: String,
        /// The shell command, for command tasks.
        pub command: Option<String>,
        /// The QA step, for step tasks.
        pub step: Option<String>,
        /// Where it is in its life.
        pub state: TaskState,
        /// The exit code, when its process exited.
        pub exit_code: Option<i32>,
        /// The door it was started through.
        pub source: TaskSource,
        /// When it was asked for.
        pub created_at: DateTime<Utc>,
        /// When it ended.
        pub finished_at: Option<DateTime<Utc>>,
    }

    /// `list_tasks`.
    pub struct TaskList {
        /// How many tasks match in all.
        pub total: u64,
        /// The newest of them.
        pub tasks: Vec<TaskSummary>,
    }

    /// `run_task` and `get_task`: a task with its test summary and the end of its log.
    pub struct TaskDetail {
        /// The task.
        #[serde(flatten)]
        pub task: TaskSummary,
        /// The signal that ended it, when one did.
        pub signal: Option<i32>,
        /// Why it failed to start or was lost.
        pub error: Option<String>,
        /// When its process started.
        pub started_at: Option<DateTime<Utc>>,
        /// How long it ran, in milliseconds.
        pub duration_ms: Option<i64>,
        /// The commit it ran on.
        pub commit: Option<String>,
        /// The branch it ran on.
        pub branch: Option<String>,
        /// Test results, when it ran tests.
        pub test_summary: Option<TestSummary>,
        /// Log bytes stored.
        pub log_bytes: i64,
        /// True when the log was cut at its limit.
        pub log_truncated: bool,
        /// The end of the log (all of it when `log_offset` is 0), as text.
        pub log: Option<String>,
        /// The byte of the log where `log` starts.
        pub log_offset: Option<u64>,
    }
}
