//! A run's side in its workspace: the repository it works in (`inputs.repo`, a directory
//! under the workspace root), its branch `fulcrum/run-<handle>`, files written there and
//! commits made by the agent with `git_commit`. Every write goes through the same domain
//! function as an MCP client's tool call, acting as the user who started the run, so the
//! workspace's `write` policy applies. A commit carries the key `<run>/<stage>/<attempt>`, so
//! a stage attempt that runs again after a relay restart finds its commit instead of making
//! another.

use std::time::Duration;

use fulcrum_protocol::{
    tool_args::{GitCommitArgs, WriteFileArgs},
    tools::{ToolCall, ToolOutput, ToolTarget},
};
use serde::Serialize;
use uuid::Uuid;

use super::engine::{StageCtx, StageResult};
use crate::domain::{Caller, DomainError, Door};

/// How long one tool call in the workspace may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The run's branch.
pub(super) fn branch(ctx: &StageCtx) -> String {
    format!("fulcrum/run-{}", ctx.run.handle)
}

/// The run's repository directory, relative to the workspace root.
pub(super) fn repo(ctx: &StageCtx) -> String {
    serde_json::from_str::<serde_json::Value>(&ctx.run.inputs)
        .ok()
        .and_then(|v| v["repo"].as_str().map(str::to_owned))
        .unwrap_or_else(|| ".".into())
}

/// The caller a run acts as in its workspace.
pub(super) fn caller(ctx: &StageCtx) -> Caller {
    Caller::new(ctx.run.started_by, Door::Pipeline)
}

/// The workspace the run works in: the one it already uses, or one of the project's online
/// workspaces the starter may run in.
pub(super) async fn choose(ctx: &StageCtx) -> Result<Uuid, StageResult> {
    // The run's workspace, checked again each time (it may have left the project, or the
    // starter lost access to it); else one of the project's online workspaces.
    ctx.tasks
        .workspace_for(caller(ctx), ctx.run.project_id, ctx.run.workspace_id)
        .await
        .map_err(|e| refused(&e))
}

/// A stage result for a workspace the run cannot use; an offline one may come back.
pub(super) fn refused(e: &DomainError) -> StageResult {
    let retry = matches!(e, DomainError::Conflict { code, .. } if *code == "workspace_offline" || *code == "workspace_unavailable");
    let reason = match e {
        DomainError::Conflict { code, .. }
        | DomainError::Denied { code, .. }
        | DomainError::Refused { code, .. } => code,
        _ => "workspace_refused",
    };
    StageResult::failed(reason, e.to_string(), retry)
}

/// Calls a built-in tool of the agent in `workspace`; a tool's own error comes back as text
/// in `Err` with `tool_error`.
pub(super) async fn call(
    ctx: &StageCtx,
    workspace: Uuid,
    tool: &str,
    args: &impl Serialize,
) -> Result<ToolOutput, StageResult> {
    let args_json = serde_json::to_string(args).unwrap_or_else(|_| "{}".into());
    call_json(ctx, workspace, tool, args_json).await
}

/// [`call`] with arguments already as JSON text.
pub(super) async fn call_json(
    ctx: &StageCtx,
    workspace: Uuid,
    tool: &str,
    args_json: String,
) -> Result<ToolOutput, StageResult> {
    call_target(
        ctx,
        workspace,
        ToolTarget::Builtin(tool.to_owned()),
        args_json,
    )
    .await
}

/// Calls any tool in `workspace`: one of its agent's or of a server it hosts.
pub(super) async fn call_target(
    ctx: &StageCtx,
    workspace: Uuid,
    target: ToolTarget,
    args_json: String,
) -> Result<ToolOutput, StageResult> {
    let call = ToolCall {
        target,
        args_json,
        may_write: false,
    };
    ctx.workspaces
        .call_tool(caller(ctx), workspace, call, CALL_TIMEOUT)
        .await
        .map_err(|e| refused(&e))
}

/// Writes `files` (paths relative to the run's repository) into the workspace.
pub(super) async fn write_files(
    ctx: &StageCtx,
    workspace: Uuid,
    files: &[(String, String)],
) -> Result<(), StageResult> {
    let repo = repo(ctx);
    for (path, content) in files {
        let path = if repo == "." {
            path.clone()
        } else {
            format!("{repo}/{path}")
        };
        let out = call(
            ctx,
            workspace,
            "write_file",
            &WriteFileArgs {
                path: path.clone(),
                content: content.clone(),
            },
        )
        .await?;
        if out.is_error {
            return Err(StageResult::failed(
                "workspace_write",
                format!("writing {path}: {}", out.text),
                false,
            ));
        }
    }
    Ok(())
}

/// A commit made (or found) by [`commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Committed {
    /// Its id, or `None` when there was nothing to commit.
    pub sha: Option<String>,
    /// The branch.
    pub branch: String,
}

/// Commits the changes under `paths` (all changes when `None`) on the run's branch, as the
/// stage's attempt: at most one commit per attempt, whatever happens in between.
pub(super) async fn commit(
    ctx: &StageCtx,
    workspace: Uuid,
    stage: &str,
    attempt: i32,
    paths: Option<Vec<String>>,
    summary: &str,
) -> Result<Committed, StageResult> {
    let branch = branch(ctx);
    let message = format!(
        "{stage}: {summary}\n\nMade by the Fulcrum pipeline run {handle} ({pipeline}), stage \
         {stage}, attempt {attempt}.\n\nFulcrum-Run: {handle}\nFulcrum-Stage: {stage}\n\
         Fulcrum-Attempt: {attempt}",
        handle = ctx.run.handle,
        pipeline = ctx.run.pipeline,
    );
    let repo = repo(ctx);
    let args = GitCommitArgs {
        // A run makes its own repository in a directory of the workspace, never at its root.
        init: repo != ".",
        repo_path: repo,
        branch: Some(branch.clone()),
        message,
        paths,
        key: Some(format!("{}/{stage}/{attempt}", ctx.run.id)),
        author_name: Some(format!("Fulcrum run {} ({stage})", ctx.run.handle)),
        author_email: Some(format!("run-{}@fulcrum.invalid", ctx.run.handle)),
    };
    let out = call(ctx, workspace, "git_commit", &args).await?;
    if out.is_error {
        return Err(StageResult::failed(
            "commit_failed",
            format!("committing on {branch}: {}", out.text),
            false,
        ));
    }
    let first = out.text.lines().next().unwrap_or("");
    let sha = first
        .strip_prefix("commit ")
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_owned);
    Ok(Committed { sha, branch })
}

/// After an `llm` stage that commits: its artifacts are written into the run's repository and
/// committed as the attempt's commit; the output gains the commit's id.
pub(super) async fn land(
    ctx: &StageCtx,
    stage: &super::definition::Stage,
    attempt: i32,
    result: StageResult,
) -> (StageResult, Option<Uuid>) {
    let StageResult::Succeeded {
        mut output,
        artifacts,
    } = result
    else {
        return (result, None);
    };
    let ws = match choose(ctx).await {
        Ok(ws) => ws,
        Err(r) => return (r, None),
    };
    let files: Vec<(String, String)> = artifacts
        .iter()
        .map(|a| (a.path.clone(), a.content.clone()))
        .collect();
    if let Err(r) = write_files(ctx, ws, &files).await {
        return (r, Some(ws));
    }
    let paths = files.iter().map(|(p, _)| p.clone()).collect();
    let summary = format!("{} files from the {} stage", files.len(), stage.name);
    match commit(ctx, ws, &stage.name, attempt, Some(paths), &summary).await {
        Ok(c) => {
            if let serde_json::Value::Object(m) = &mut output {
                m.insert("commit".into(), c.sha.into());
            }
            (StageResult::Succeeded { output, artifacts }, Some(ws))
        }
        Err(r) => (r, Some(ws)),
    }
}
