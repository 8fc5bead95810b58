//! Linking commits to the AI activities that made them. When a workspace's repository gets a
//! new HEAD, the commit is read through the workspace's agent (`git_log`, as the workspace's
//! owner) and linked to:
//! - the activities its message names in an `AI-Activity: <id>` trailer (an activity's id, or
//!   the id the reporting tool gave it), and
//! - the owner's other activities in the workspace's projects from the last
//!   [`WINDOW_MINUTES`] minutes not yet linked to a commit (pipeline calls excepted: a run's
//!   commits are its own).
//!
//! A linked activity's `code_changes` get the commit: on the files it named without one, or,
//! when it named none, on the repository itself. Any move of HEAD counts (a pull or a checkout
//! too): the window links what the user did just before, which is what a reviewer asks about.

use chrono::Utc;
use fulcrum_protocol::{
    kinds::CommitLinkReason,
    tools::{ToolCall, ToolTarget},
};
use uuid::Uuid;

use super::Activities;
use crate::{
    domain::{Caller, DomainResult, Door},
    store::{
        Scope,
        activity::{AiCommit, CodeChange, CommitLink},
    },
};

/// How long before a commit an activity counts as its origin.
pub const WINDOW_MINUTES: i64 = 30;
/// Most trailers read from one commit.
const MAX_TRAILERS: usize = 20;

/// The activity names in a commit message's `AI-Activity:` trailers.
pub fn trailers(message: &str) -> Vec<String> {
    message
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (key, value) = l.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("AI-Activity")
                .then(|| value.trim().to_owned())
        })
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .take(MAX_TRAILERS)
        .collect()
}

impl Activities {
    /// Links a new commit of `repo` in `workspace` (of `owner`) to the activities that made
    /// it. Called by the agents' door when a repository's HEAD moves.
    pub async fn link_commit(
        &self,
        owner: Uuid,
        workspace: Uuid,
        repo: &str,
        sha: &str,
        summary: &str,
    ) -> DomainResult<usize> {
        let projects = self.store.workspace_project_ids(workspace).await?;
        if projects.is_empty() {
            return Ok(0);
        }
        let caller = Caller::new(owner, Door::Api);
        // The commit's message, for its trailers; a workspace that cannot answer just means
        // none are read.
        let log = self
            .workspaces
            .call_tool(
                caller,
                workspace,
                ToolCall {
                    target: ToolTarget::Builtin("git_log".into()),
                    args_json: serde_json::json!({"repo_path": repo, "max_count": 1}).to_string(),
                    may_write: false,
                },
                std::time::Duration::from_secs(10),
            )
            .await
            .ok()
            .filter(|out| !out.is_error && out.text.contains(sha))
            .map(|out| out.text)
            .unwrap_or_default();
        let named = self.store.activities_named(owner, &trailers(&log)).await?;
        let since = Utc::now() - chrono::Duration::minutes(WINDOW_MINUTES);
        let recent = self
            .store
            .unlinked_activities(owner, &projects, since)
            .await?;
        let now = Utc::now();
        let mut links = Vec::new();
        let mut changes = Vec::new();
        let summary: String = summary.chars().take(300).collect();
        for (activity, reason) in named
            .into_iter()
            .map(|a| (a, CommitLinkReason::Trailer))
            .chain(recent.into_iter().map(|a| (a, CommitLinkReason::Window)))
        {
            if links
                .iter()
                .any(|l: &CommitLink| l.activity_id == activity.id)
            {
                continue;
            }
            // An activity of another project stays unlinked; one without a project, named by a
            // trailer, counts for the workspace's first project.
            let project = match activity.project_id {
                Some(p) if projects.contains(&p) => p,
                None if reason == CommitLinkReason::Trailer => projects[0],
                _ => continue,
            };
            let mut code = activity.code_changes.clone();
            let mut touched = false;
            for c in code.0.iter_mut().filter(|c| c.commit.is_none()) {
                c.commit = Some(sha.to_owned());
                touched = true;
            }
            if code.0.is_empty() {
                code.0.push(CodeChange {
                    path: repo.to_owned(),
                    commit: Some(sha.to_owned()),
                });
                touched = true;
            }
            if touched {
                changes.push((activity.id, code));
            }
            links.push(CommitLink {
                activity_id: activity.id,
                commit_sha: sha.to_owned(),
                project_id: project,
                repo: repo.to_owned(),
                summary: summary.clone(),
                reason,
                linked_at: now,
            });
        }
        if !links.is_empty() {
            self.store.link_commits(&links, &changes).await?;
            self.metrics
                .activities("commit", "linked", links.len() as u64);
            // Live: the project page's AI-assisted commits, for everyone who sees the project.
            let event = axum::body::Bytes::from(
                serde_json::json!({
                    "type": "ai_commit",
                    "commit": {"sha": sha, "repo": repo, "summary": summary,
                               "projects": links.iter().map(|l| l.project_id).collect::<Vec<_>>(),
                               "activities": links.iter().map(|l| l.activity_id).collect::<Vec<_>>()},
                })
                .to_string(),
            );
            let mut audience = std::collections::BTreeSet::new();
            for l in &links {
                audience.extend(self.store.project_audience(l.project_id).await?);
            }
            for user in audience {
                self.bus.publish(user, event.clone());
            }
        }
        Ok(links.len())
    }

    /// A project's AI-assisted commits, newest first.
    pub async fn ai_commits(&self, caller: Caller, project: Uuid) -> DomainResult<Vec<AiCommit>> {
        caller.need(Scope::Read)?;
        let p = self.projects.visible(caller, project).await?;
        Ok(self.store.ai_commits(p.id, 100).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_name_activities() {
        let msg = "commit abc\n\n    Fix the cart\n\n    AI-Activity: cur-1\n    ai-activity:  01a2\n    Signed-off-by: x\n";
        assert_eq!(trailers(msg), vec!["cur-1".to_owned(), "01a2".to_owned()]);
        assert!(trailers("no trailers").is_empty());
    }
}
