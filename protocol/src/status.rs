//! Workspace identity and repository state, as the agent reports them.

use serde::{Deserialize, Serialize};

/// Most changed paths reported per repository; the rest are counted but not listed.
pub const MAX_CHANGED_PATHS: usize = 200;
/// Most repositories one workspace reports.
pub const MAX_REPOS: usize = 256;
/// Longest path (a repository's or a changed file's), in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest short text (branch, upstream, commit summary), in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChangedPath {
    /// Path relative to the repository's work tree.
    pub path: String,
    /// Porcelain v1 code: index state then work-tree state, e.g. `" M"`, `"A "`, `"??"`, `"UU"`.
    pub code: String,
}

impl RepoStatus {
    /// Brings the status within the protocol's limits by shortening text and dropping paths
    /// that are too long (marking the list truncated). The agent calls it before sending.
    pub fn clamp(&mut self) {
        for text in [&mut self.branch, &mut self.upstream, &mut self.head_summary]
            .into_iter()
            .flatten()
        {
            truncate_at_char(text, MAX_TEXT_BYTES);
        }
        let before = self.changed_paths.len();
        self.changed_paths
            .retain(|c| c.path.len() <= MAX_PATH_BYTES);
        self.changed_paths.truncate(MAX_CHANGED_PATHS);
        if self.changed_paths.len() < before {
            self.changed_paths_truncated = true;
        }
    }

    /// Checks the status is within the protocol's limits; the relay refuses one that is not.
    pub fn check(&self) -> crate::check::Checked {
        let path_ok = |p: &str| !p.is_empty() && p.len() <= MAX_PATH_BYTES;
        if !path_ok(&self.path) {
            return Err(crate::check::Invalid::new(
                "repo_status",
                format!("repository path must be 1 to {MAX_PATH_BYTES} bytes"),
            ));
        }
        let texts = [&self.branch, &self.upstream, &self.head_summary];
        if texts
            .iter()
            .any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_TEXT_BYTES))
            || self.head_sha.as_ref().is_some_and(|s| s.len() > 64)
        {
            return Err(crate::check::Invalid::new(
                "repo_status",
                format!("branch, upstream and summary are limited to {MAX_TEXT_BYTES} bytes"),
            ));
        }
        if self.changed_paths.len() > MAX_CHANGED_PATHS
            || self
                .changed_paths
                .iter()
                .any(|c| !path_ok(&c.path) || c.code.len() != 2)
        {
            return Err(crate::check::Invalid::new(
                "repo_status",
                format!(
                    "at most {MAX_CHANGED_PATHS} changed paths, each 1 to {MAX_PATH_BYTES} bytes with a two-letter code"
                ),
            ));
        }
        Ok(())
    }
}

fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_statuses_pass_the_check() {
        let mut s = RepoStatus {
            path: ".".into(),
            head_summary: Some("é".repeat(2000)),
            changed_paths: (0..500)
                .map(|i| ChangedPath {
                    path: if i == 3 {
                        "x".repeat(5000)
                    } else {
                        format!("f{i}")
                    },
                    code: " M".into(),
                })
                .collect(),
            ..Default::default()
        };
        assert!(s.check().is_err());
        s.clamp();
        assert!(s.check().is_ok());
        assert!(s.changed_paths_truncated);
        assert_eq!(s.changed_paths.len(), MAX_CHANGED_PATHS);
        assert!(s.head_summary.as_ref().unwrap().len() <= MAX_TEXT_BYTES);
    }
}
