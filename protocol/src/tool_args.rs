//! The arguments of the built-in tools, defined once: the agent reads its tools' arguments into
//! these types, the relay reads its own tools' into them, and the relay's MCP catalog publishes
//! the JSON Schemas generated from them (feature `schema`). The `workspace` argument that picks
//! the workspace is the relay's, added to the published schemas; it never reaches the agent.
//!
//! Names follow the reference git and filesystem MCP servers where they overlap (`path`,
//! `head`, `tail`, `repo_path`, `edits[].oldText/newText`, `dryRun`).

use serde::{Deserialize, Serialize};

fn dot() -> String {
    ".".into()
}

/// Declares argument structs: serde with unknown fields refused, and a JSON Schema when the
/// `schema` feature is on.
macro_rules! args {
    ($( $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* } )+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
            #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
            #[serde(deny_unknown_fields)]
            pub struct $name { $($body)* }
        )+
    };
}

args! {
    /// No arguments.
    pub struct NoArgs {}

    /// `list_directory`.
    pub struct ListDirectoryArgs {
        /// Path relative to the workspace root (or absolute inside it); default `.`
        #[serde(default = "dot")]
        pub path: String,
    }

    /// `directory_tree`.
    pub struct DirectoryTreeArgs {
        /// Path relative to the workspace root (or absolute inside it); default `.`
        #[serde(default = "dot")]
        pub path: String,
        /// Levels to descend (default 12)
        #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 12)))]
        pub max_depth: Option<usize>,
    }

    /// `read_file`.
    pub struct ReadFileArgs {
        /// Path relative to the workspace root (or absolute inside it)
        pub path: String,
        /// Only the first N lines
        pub head: Option<usize>,
        /// Only the last N lines
        pub tail: Option<usize>,
        /// Start at this byte
        pub offset: Option<u64>,
        /// Read at most this many bytes
        pub length: Option<u64>,
    }

    /// `search_files`.
    pub struct SearchFilesArgs {
        /// The text to find, or a regular expression with regex=true
        pub pattern: String,
        /// Path relative to the workspace root (or absolute inside it); default `.`
        #[serde(default = "dot")]
        pub path: String,
        /// Treat pattern as a regular expression (default false)
        #[serde(default)]
        pub regex: bool,
        /// Match case exactly (default false)
        #[serde(default)]
        pub case_sensitive: bool,
        /// Only files matching this glob, e.g. *.rs
        pub include: Option<String>,
        /// Most matches (default 100)
        #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
        pub max_results: Option<usize>,
    }

    /// `git_status`.
    pub struct GitStatusArgs {
        /// The repository, relative to the workspace root; default `.`
        #[serde(default = "dot")]
        pub repo_path: String,
    }

    /// `git_diff`.
    pub struct GitDiffArgs {
        /// The repository, relative to the workspace root; default `.`
        #[serde(default = "dot")]
        pub repo_path: String,
        /// Compare the working tree with this revision
        pub target: Option<String>,
        /// Show staged changes (index against HEAD)
        #[serde(default)]
        pub staged: bool,
        /// Context lines (default 3)
        #[cfg_attr(feature = "schema", schemars(range(max = 100)))]
        pub context_lines: Option<u32>,
    }

    /// `git_log`.
    pub struct GitLogArgs {
        /// The repository, relative to the workspace root; default `.`
        #[serde(default = "dot")]
        pub repo_path: String,
        /// How many (default 10)
        #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 200)))]
        pub max_count: Option<usize>,
    }

    /// `git_show`.
    pub struct GitShowArgs {
        /// The repository, relative to the workspace root; default `.`
        #[serde(default = "dot")]
        pub repo_path: String,
        /// A commit, branch or tag
        pub revision: String,
    }

    /// `write_file`.
    pub struct WriteFileArgs {
        /// Path relative to the workspace root
        pub path: String,
        /// The file's new content (at most 512 KiB)
        pub content: String,
    }

    /// `git_commit`.
    pub struct GitCommitArgs {
        /// The repository, relative to the workspace root; default `.`
        #[serde(default = "dot")]
        pub repo_path: String,
        /// Create the repository (and its directory) if there is none there (default false)
        #[serde(default)]
        pub init: bool,
        /// Commit on this branch: created at HEAD and switched to if the repository is not on it
        /// (it must be HEAD's commit or unborn); default the current branch
        pub branch: Option<String>,
        /// The commit message
        pub message: String,
        /// Commit only changes under these paths, relative to the repository; default all
        /// changes (ignored files stay out)
        pub paths: Option<Vec<String>>,
        /// An idempotency key: when one of the branch's newest commits carries it (a
        /// `Fulcrum-Key` trailer), nothing is committed and that commit is returned
        pub key: Option<String>,
        /// The author's name [default: the repository's user.name, else `Fulcrum`]
        pub author_name: Option<String>,
        /// The author's email [default: the repository's user.email]
        pub author_email: Option<String>,
    }

    /// One replacement of `edit_file`: `oldText` must occur exactly once.
    pub struct FileEdit {
        /// The text to replace.
        #[serde(rename = "oldText")]
        pub old_text: String,
        /// What replaces it.
        #[serde(rename = "newText")]
        pub new_text: String,
    }

    /// `edit_file`.
    pub struct EditFileArgs {
        /// Path relative to the workspace root
        pub path: String,
        /// The replacements, applied in order
        #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
        pub edits: Vec<FileEdit>,
        /// Only show the diff
        #[serde(default, rename = "dryRun")]
        pub dry_run: bool,
    }

    /// `run_task` (answered by the relay).
    pub struct RunTaskArgs {
        /// A shell command (give this or step)
        pub command: Option<String>,
        /// A QA step from fulcrum.toml or detected, or `qa` for all
        pub step: Option<String>,
        /// The repository directory, relative to the root (default `.`)
        pub repo: Option<String>,
        /// Time limit in seconds
        #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
        pub timeout_s: Option<i64>,
        /// Wait this long for the result (default 0)
        #[cfg_attr(feature = "schema", schemars(range(max = 300)))]
        pub wait_s: Option<u64>,
    }

    /// `get_task` (answered by the relay).
    pub struct GetTaskArgs {
        /// The task's id, or its number in `workspace` (`17` or `#17`)
        pub task_id: String,
        /// How much of the log's end to include (default 8192)
        #[cfg_attr(feature = "schema", schemars(range(max = 262144)))]
        pub log_tail_bytes: Option<u64>,
    }

    /// `list_tasks` (answered by the relay).
    pub struct ListTasksArgs {
        /// queued, dispatched, running, succeeded, failed, canceled, timed_out or lost
        pub state: Option<String>,
        /// How many (default 20)
        #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 200)))]
        pub limit: Option<u32>,
    }
}

args! {
    /// `get_pipeline_run` and `cancel_pipeline_run` (answered by the relay).
    pub struct PipelineRunArgs {
        /// The run's id
        pub run_id: String,
    }

    /// `activity_report` (answered by the relay).
    pub struct ActivityReportArgs {
        /// The project: its id or its name (default: everything you may see)
        pub project: Option<String>,
        /// First day, YYYY-MM-DD (default: the first of this month)
        pub from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today)
        pub to: Option<String>,
        /// Up to three of day, project, user, tool, model, category, comma-separated (default: model)
        pub group_by: Option<String>,
    }

    /// `cost_by_model` (answered by the relay).
    pub struct CostByModelArgs {
        /// The project: its id or its name (default: everything you may see)
        pub project: Option<String>,
        /// First day, YYYY-MM-DD (default: the first of this month)
        pub from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today)
        pub to: Option<String>,
    }

    /// `recent_ai_changes` (answered by the relay).
    pub struct RecentAiChangesArgs {
        /// The project: its id or its name (default: everything you may see)
        pub project: Option<String>,
        /// How many (default 20)
        #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 200)))]
        pub limit: Option<u32>,
    }

    /// `get_prompt` (answered by the relay).
    pub struct GetPromptArgs {
        /// The project: its id or its name
        pub project: String,
        /// The prompt's name
        pub name: String,
        /// A version (default: the latest)
        pub version: Option<i32>,
        /// Values of the prompt's arguments
        pub arguments: Option<std::collections::BTreeMap<String, String>>,
    }

    /// `list_pipeline_runs` and `list_deployments` (answered by the relay).
    pub struct ProjectArgs {
        /// The project: its id or its name
        pub project: String,
    }

    /// `decide_pipeline_gate` (answered by the relay).
    pub struct DecideGateArgs {
        /// The run's id
        pub run_id: String,
        /// The approval stage that waits
        pub stage: String,
        /// true to approve; false to reject (then give a comment)
        pub approve: bool,
        /// For a rejection: what to change; the gated stages run again with it
        pub comment: Option<String>,
    }

    /// `get_pipeline_artifact` (answered by the relay).
    pub struct PipelineArtifactArgs {
        /// The run's id
        pub run_id: String,
        /// The artifact's path, such as `api/openapi.yaml`
        pub path: String,
    }
}

/// `start_pipeline` (answered by the relay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StartPipelineArgs {
    /// The project: its id or its name
    pub project: String,
    /// A pipeline by name: one the project's repository defines in fulcrum.toml, or a built-in
    /// one: `systemcrafter` (the default: a whole service from the project's description) or
    /// `feature` (a change to an existing repository)
    pub pipeline: Option<String>,
    /// A pipeline definition (TOML) to run instead of a built-in one
    pub definition: Option<String>,
    /// For the feature pipeline: the feature request
    pub request: Option<String>,
    /// The run's own budget, in US dollars
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub budget_usd: Option<f64>,
}

/// `resume_pipeline_run` (answered by the relay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResumePipelineArgs {
    /// The run's id
    pub run_id: String,
    /// Run this stage and every stage after it again, with the earlier outputs
    pub from_stage: Option<String>,
    /// A new budget for the run itself, in US dollars
    #[cfg_attr(feature = "schema", schemars(range(min = 0.0)))]
    pub budget_usd: Option<f64>,
}
