//! Workspace identity and repository state, as the agent reports them.

use serde::{Deserialize, Serialize};

/// Most changed paths reported per repository; the rest are counted but not listed.
pub const MAX_CHANGED_PATHS: usize = 200;

/// Who the agent is: sent once per connection in [`crate::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceIdentity {
    /// A stable random key the agent keeps in its state directory. Together with the owner of
    /// the token it names one workspace; another owner's token presenting the same key gets a
    /// workspace of its own, never this one.
    pub key: String,
    /// Human name: the Coder workspace name when there is one, otherwise the host name.
    pub name: String,
    /// The machine's host name.
    pub hostname: String,
    /// The directory the agent watches, as an absolute path on the workspace host.
    pub root: String,
    /// Facts from the workspace's `CODER_*` environment, when it runs in Coder.
    pub coder: Option<CoderFacts>,
}

/// What a Coder workspace says about itself through its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoderFacts {
    /// `CODER_WORKSPACE_NAME`.
    pub workspace_name: Option<String>,
    /// `CODER_WORKSPACE_OWNER_NAME` (or the older `CODER_WORKSPACE_OWNER`).
    pub owner: Option<String>,
    /// `CODER_WORKSPACE_AGENT_NAME`.
    pub agent_name: Option<String>,
    /// `CODER_AGENT_URL`: the deployment's access URL.
    pub access_url: Option<String>,
}

/// The state of one git repository under the workspace root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoStatus {
    /// Path of the repository's work tree relative to the workspace root (`.` for the root).
    pub path: String,
    /// Checked-out branch; `None` when HEAD is detached or the repository has no commit yet.
    pub branch: Option<String>,
    /// Full hex id of the HEAD commit; `None` before the first commit.
    pub head_sha: Option<String>,
    /// First line of the HEAD commit's message.
    pub head_summary: Option<String>,
    /// The branch's upstream, such as `origin/main`.
    pub upstream: Option<String>,
    /// Commits on HEAD not on the upstream.
    pub ahead: u32,
    /// Commits on the upstream not on HEAD.
    pub behind: u32,
    /// Paths with changes in the index.
    pub staged: u32,
    /// Tracked paths with changes in the work tree not yet staged.
    pub unstaged: u32,
    /// Untracked paths (an untracked directory counts once, as `git status` shows it).
    pub untracked: u32,
    /// Paths with merge conflicts.
    pub conflicted: u32,
    /// Changed paths, at most [`MAX_CHANGED_PATHS`] of them.
    pub changed_paths: Vec<ChangedPath>,
    /// True when there were more changed paths than listed.
    pub changed_paths_truncated: bool,
}

/// One changed path, with its two-letter code as in `git status --porcelain` (`XY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedPath {
    /// Path relative to the repository's work tree.
    pub path: String,
    /// Porcelain v1 code: index state then work-tree state, e.g. `" M"`, `"A "`, `"??"`, `"UU"`.
    pub code: String,
}
