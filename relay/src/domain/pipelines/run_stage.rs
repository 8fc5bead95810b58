//! A `run` stage: a task in the run's workspace (source `pipeline`), started for the user who
//! started the run through the same domain function as every other task, with its log and test
//! summary as usual. Its id comes from the run, stage and attempt, so a run that resumes finds
//! the task it started instead of starting another.

use std::time::Duration;

use fulcrum_protocol::TaskRun;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{definition::Stage, engine::StageCtx, engine::StageResult};
use crate::{
    domain::{Caller, DomainError, Door, tasks::RunInput},
    store::Task,
};

/// How often a wait on a task looks at the store besides listening for its events.
const RECHECK: Duration = Duration::from_secs(5);

/// The id of the task a stage's attempt starts.
pub(super) fn task_id(run: Uuid, stage: &str, attempt: i32) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("fulcrum:pipeline-run:{run}/{stage}/{attempt}").as_bytes(),
    )
}

/// Runs one attempt of a `run` stage; the workspace it ran in comes back with the result.
pub(super) async fn run(
    ctx: &StageCtx,
    stage: &Stage,
    attempt: i32,
) -> (StageResult, Option<Uuid>) {
    let caller = Caller::new(ctx.run.started_by, Door::Pipeline);
    let id = task_id(ctx.run.id, &stage.name, attempt);
    let command = stage.command.clone().unwrap_or_default();
    let task = match ctx.tasks.visible(caller, id).await {
        Ok(task) => task,
        Err(DomainError::NotFound(_)) => {
            let mut env = std::collections::BTreeMap::new();
            env.insert("FULCRUM_PIPELINE_RUN".into(), ctx.run.handle.clone());
            env.insert("FULCRUM_PIPELINE_STAGE".into(), stage.name.clone());
            let input = RunInput {
                workspace: ctx.run.workspace_id,
                project: Some(ctx.run.project_id),
                repo: None,
                run: TaskRun::Command { command },
                env,
                timeout_s: Some(stage.timeout_secs as i64),
            };
            match ctx.tasks.start_as(caller, input, id).await {
                Ok(task) => task,
                Err(e) => {
                    // No online workspace, or one that does not allow runs: the stage fails
                    // clearly; an offline workspace may come back, so that one is retried.
                    let retry = matches!(&e, DomainError::Conflict { code, .. } if *code == "workspace_offline");
                    let reason = match &e {
                        DomainError::Conflict { code, .. }
                        | DomainError::Denied { code, .. }
                        | DomainError::Refused { code, .. } => code,
                        _ => "task_not_started",
                    };
                    return (StageResult::failed(reason, e.to_string(), retry), None);
                }
            }
        }
        Err(e) => return (StageResult::failed("internal", e.to_string(), true), None),
    };
    let workspace = Some(task.workspace_id);
    let done = match wait(ctx, caller, task).await {
        Ok(t) => t,
        Err(e) => {
            return (
                StageResult::failed("internal", e.to_string(), true),
                workspace,
            );
        }
    };
    let output = json!({
        "task_id": done.id,
        "number": done.number,
        "state": done.state,
        "exit_code": done.exit_code,
        "test_summary": done.test_summary,
    });
    let result = if done.state == fulcrum_protocol::TaskState::Succeeded {
        StageResult::Succeeded {
            output,
            artifacts: Vec::new(),
        }
    } else {
        let how = match (done.exit_code, &done.error) {
            (Some(code), _) => format!("exited {code}"),
            (None, Some(e)) => e.clone(),
            (None, None) => done.state.as_str().to_owned(),
        };
        StageResult::failed(
            "task_failed",
            format!(
                "task #{} `{}` {how}",
                done.number.unwrap_or_default(),
                stage.command.as_deref().unwrap_or("")
            ),
            false,
        )
    };
    (result, workspace)
}

/// Waits until `task` has finished: on its events, and a look at the store now and then.
async fn wait(ctx: &StageCtx, caller: Caller, task: Task) -> Result<Task, DomainError> {
    if task.is_finished() {
        return Ok(task);
    }
    let mut events = ctx.bus.subscribe(caller.user);
    // Between the first look and the subscription it may have finished.
    let now = ctx.tasks.visible(caller, task.id).await?;
    if now.is_finished() {
        return Ok(now);
    }
    let needle = task.id.to_string();
    loop {
        let heard = tokio::time::timeout(RECHECK, events.recv()).await;
        let look = match heard {
            Ok(Ok(bytes)) => {
                let text = String::from_utf8_lossy(&bytes);
                text.contains(&needle)
                    && serde_json::from_str::<Value>(&text).is_ok_and(|v| {
                        v["type"] == "task"
                            && v["task"]["id"] == needle.as_str()
                            && v["task"]["finished_at"].is_string()
                    })
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                // No more events: look at the store now and then.
                tokio::time::sleep(RECHECK).await;
                events = ctx.bus.subscribe(caller.user);
                true
            }
            // Fell behind, or a quiet while: look at the store.
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => true,
        };
        if look {
            let now = ctx.tasks.visible(caller, task.id).await?;
            if now.is_finished() {
                return Ok(now);
            }
        }
    }
}
