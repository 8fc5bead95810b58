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
            let mut env = match stage_env(ctx, stage) {
                Ok(env) => env,
                Err(e) => return (StageResult::failed("template", e, false), None),
            };
            env.insert("FULCRUM_PIPELINE_RUN".into(), ctx.run.handle.clone());
            env.insert("FULCRUM_PIPELINE_STAGE".into(), stage.name.clone());
            let input = RunInput {
                workspace: ctx.run.workspace_id,
                project: Some(ctx.run.project_id),
                repo: Some(super::workspace::repo(ctx)),
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
    if let Some(spec) = &stage.deploy {
        record_deployment(ctx, stage, spec, &done).await;
    }
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
        let mut error = format!(
            "task #{} `{}` {how}",
            done.number.unwrap_or_default(),
            stage.command.as_deref().unwrap_or("")
        );
        if let Some(t) = done.test_summary.as_ref().filter(|t| t.failed > 0) {
            let names: Vec<&str> = t.failures.iter().map(|f| f.name.as_str()).collect();
            error.push_str(&format!(
                "; {} tests failed: {}",
                t.failed,
                names.join(", ")
            ));
        } else {
            // No test names: the last line of its output says what went wrong.
            let tail = tail(ctx, &done, 2048).await;
            if let Some(last) = tail.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
                error.push_str(&format!(
                    "; last output: {}",
                    last.chars().take(300).collect::<String>()
                ));
            }
        }
        StageResult::failed("task_failed", error, false)
    };
    (result, workspace)
}

/// A `run` stage's environment, its templates rendered over the run.
fn stage_env(
    ctx: &StageCtx,
    stage: &Stage,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let context = super::llm_stage::context(ctx, None);
    stage
        .env
        .iter()
        .map(|(k, t)| {
            super::llm_stage::render(t, &context)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("env {k}: {e}"))
        })
        .collect()
}

/// Records the deployment a deploying stage's task made (or failed to make).
async fn record_deployment(
    ctx: &StageCtx,
    stage: &Stage,
    spec: &super::definition::DeploySpec,
    task: &Task,
) {
    let mut context = super::llm_stage::context(ctx, None);
    context["env"] = serde_json::to_value(&task.env).unwrap_or_default();
    let url = super::llm_stage::render(&spec.url, &context)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let state = if task.state == fulcrum_protocol::TaskState::Succeeded {
        fulcrum_protocol::kinds::DeploymentState::Succeeded
    } else {
        fulcrum_protocol::kinds::DeploymentState::Failed
    };
    let d = crate::store::pipelines::Deployment {
        id: Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("fulcrum:deployment:{}", task.id).as_bytes(),
        ),
        project_id: ctx.run.project_id,
        run_id: Some(ctx.run.id),
        task_id: Some(task.id),
        source: fulcrum_protocol::kinds::DeploymentSource::Pipeline,
        environment: stage.name.clone(),
        url: (!url.is_empty()).then_some(url),
        commit_sha: task.commit_sha.clone(),
        state,
        created_by: ctx.run.started_by,
        created_at: task.finished_at.unwrap_or_else(chrono::Utc::now),
    };
    if let Err(e) = ctx.store.record_deployment(&d).await {
        tracing::warn!(error = %e, run = %ctx.run.id, "cannot record a deployment");
    }
}

/// The last `bytes` of a task's log, as text.
pub(super) async fn tail(ctx: &StageCtx, task: &Task, bytes: usize) -> String {
    let caller = Caller::new(ctx.run.started_by, Door::Pipeline);
    let from = (task.log_bytes.max(0) as u64).saturating_sub(bytes as u64);
    match ctx.tasks.log(caller, task.id, from, bytes).await {
        Ok((_, slice)) => String::from_utf8_lossy(&slice.data).into_owned(),
        Err(_) => String::new(),
    }
}

/// Waits until `task` has finished: on its events, and a look at the store now and then.
pub(super) async fn wait(ctx: &StageCtx, caller: Caller, task: Task) -> Result<Task, DomainError> {
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
