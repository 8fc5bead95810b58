//! The MCP tools the relay answers from its own state: workspaces, projects and tasks. They go
//! through the same domain functions as the REST API, scoped to the token's owner, and answer
//! with the result types of `fulcrum_protocol::tool_results` (as structured content, and as
//! the same JSON in text).

use std::time::Duration;

use fulcrum_protocol::{
    tool_args::{
        ActivityReportArgs, CostByModelArgs, DecideGateArgs, GetPromptArgs, GetTaskArgs,
        ListTasksArgs, NoArgs, PipelineArtifactArgs, PipelineRunArgs, ProjectArgs,
        RecentAiChangesArgs, ResumePipelineArgs, RunTaskArgs, StartPipelineArgs,
    },
    tool_results::{
        HostedServerInfo, ProjectInfo, ProjectList, RepoInfo, TaskDetail, TaskList, TaskSummary,
        WorkspaceInfo, WorkspaceList, WorkspaceStatus,
    },
    tools::ToolOutput,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{McpCaller, take_workspace, workspaces};
use crate::{
    domain::{
        self, Caller, DomainError,
        tasks::{RunInput, bad_state},
    },
    state::AppState,
    store::{Project, Task, TaskFilter, Workspace},
};

/// Longest `wait_s` of `run_task`.
const MAX_WAIT_S: u64 = 300;
/// Log tail included by default.
const DEFAULT_TAIL: u64 = 8 * 1024;
/// Longest log tail included.
const MAX_TAIL: u64 = 256 * 1024;

/// A domain error as a tool error: its message, or a plain one for a store failure (whose
/// details go to the log only).
pub fn tool_error(e: DomainError) -> String {
    match e {
        DomainError::Store(e) => {
            tracing::error!(error = %e, "MCP call failed on the store");
            "the relay cannot reach its database right now".into()
        }
        DomainError::Internal(cause) => {
            tracing::error!(%cause, "MCP call failed");
            "internal error".into()
        }
        other => other.to_string(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(tool: &str, args: Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| format!("invalid arguments for {tool}: {e}"))
}

/// A structured result: the value as structured content, and the same JSON as text.
fn structured(v: &impl serde::Serialize) -> Result<ToolOutput, String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    let json = serde_json::to_string(v).map_err(|e| e.to_string())?;
    Ok(ToolOutput {
        structured_json: Some(json),
        ..ToolOutput::text(text)
    })
}

/// A day argument, `YYYY-MM-DD`.
fn day(text: Option<&str>) -> Result<Option<chrono::NaiveDate>, String> {
    text.map(|t| {
        chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{t:?} is not a day (YYYY-MM-DD)"))
    })
    .transpose()
}

fn workspace_info(w: Workspace) -> WorkspaceInfo {
    WorkspaceInfo {
        id: w.id,
        name: w.name,
        hostname: w.hostname,
        root: w.root,
        online: w.online,
        connected_at: w.connected_at,
        last_seen_at: w.last_seen_at,
        agent_version: w.agent_version,
        coder: w.coder,
        repos: w
            .repos
            .into_iter()
            .map(|r| RepoInfo {
                status: r.status,
                updated_at: r.updated_at,
            })
            .collect(),
    }
}

fn project_info(p: Project) -> ProjectInfo {
    ProjectInfo {
        id: p.id,
        name: p.name,
        description: p.description,
        repository_url: p.repository_url,
        tech_stack: p.tech_stack,
        status: p.status,
        role: p.role,
        workspace_ids: p.workspace_ids,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// Runs relay tool `name` for `caller`.
pub async fn call(
    app: &AppState,
    caller: McpCaller,
    name: &str,
    mut args: Map<String, Value>,
) -> Result<ToolOutput, String> {
    let by = caller.caller();
    match name {
        "list_workspaces" => {
            let _: NoArgs = parse(name, args)?;
            let all = workspaces(app, caller).await?;
            structured(&WorkspaceList {
                workspaces: all.into_iter().map(workspace_info).collect(),
            })
        }
        "workspace_status" => {
            let named = take_workspace(app, caller, &mut args).await?;
            let _: NoArgs = parse(name, args)?;
            let w = workspaces(app, caller)
                .await?
                .into_iter()
                .find(|w| w.id == named.id)
                .ok_or_else(|| format!("the workspace {} is gone", named.name))?;
            let tools = app.sessions.tools(w.id);
            structured(&WorkspaceStatus {
                workspace: workspace_info(w),
                writable: tools.as_ref().map(|t| t.catalog.writable),
                hosted_mcp_servers: tools.map(|t| {
                    t.catalog
                        .servers
                        .into_iter()
                        .map(|s| HostedServerInfo {
                            tools: s.tools.iter().map(|t| t.name.clone()).collect(),
                            name: s.name,
                            running: s.running,
                            problem: s.problem,
                        })
                        .collect()
                }),
            })
        }
        "list_projects" => {
            let _: NoArgs = parse(name, args)?;
            let projects = app.domain.projects.list(by).await.map_err(tool_error)?;
            structured(&ProjectList {
                projects: projects.into_iter().map(project_info).collect(),
            })
        }
        "run_task" => {
            let w = take_workspace(app, caller, &mut args).await?;
            let a: RunTaskArgs = parse(name, args)?;
            let wait = Duration::from_secs(a.wait_s.unwrap_or(0).min(MAX_WAIT_S));
            let input = RunInput {
                workspace: Some(w.id),
                project: None,
                repo: a.repo,
                run: domain::tasks::run_of(a.command, a.step).map_err(tool_error)?,
                env: Default::default(),
                timeout_s: a.timeout_s,
            };
            let task = app
                .domain
                .tasks
                .start(by, input)
                .await
                .map_err(tool_error)?;
            if !wait.is_zero() {
                // Watch first, then look: an end before the watch began shows in the look.
                let mut progress = app.feed.logs.subscribe(task.id);
                let ended = task_now(app, by, task.id)
                    .await
                    .is_some_and(|t| t.is_finished());
                if !ended {
                    let _ = tokio::time::timeout(wait, progress.wait_for(|p| p.finished)).await;
                }
            }
            let task = task_now(app, by, task.id).await.unwrap_or(task);
            describe(app, &task, DEFAULT_TAIL).await
        }
        "get_task" => {
            // A number names a task of the `workspace` given with it.
            let workspace = match args.contains_key("workspace") {
                true => Some(take_workspace(app, caller, &mut args).await?.id),
                false => None,
            };
            let a: GetTaskArgs = parse(name, args)?;
            let task = match (Uuid::parse_str(&a.task_id), workspace) {
                (Ok(id), _) => app.domain.tasks.visible(by, id).await,
                (Err(_), Some(ws)) => {
                    let number = a
                        .task_id
                        .trim_start_matches('#')
                        .parse::<i64>()
                        .map_err(|_| "task_id is a task's id, or its number (#17)".to_owned())?;
                    app.domain.tasks.by_number(by, ws, number).await
                }
                (Err(_), None) => {
                    return Err(
                        "task_id is a task's id; a number (#17) needs `workspace` too".into(),
                    );
                }
            }
            .map_err(tool_error)?;
            describe(
                app,
                &task,
                a.log_tail_bytes.unwrap_or(DEFAULT_TAIL).min(MAX_TAIL),
            )
            .await
        }
        "list_tasks" => {
            let workspace = match args.contains_key("workspace") {
                true => Some(take_workspace(app, caller, &mut args).await?.id),
                false => None,
            };
            let a: ListTasksArgs = parse(name, args)?;
            let state = a
                .state
                .as_deref()
                .map(|s| fulcrum_protocol::TaskState::parse(s).ok_or_else(bad_state))
                .transpose()?;
            let filter = TaskFilter {
                project: None,
                workspace,
                state,
                source: None,
                page: 1,
                per_page: a.limit.unwrap_or(20).clamp(1, 200),
            };
            let (tasks, total) = app
                .domain
                .tasks
                .list(by, &filter)
                .await
                .map_err(tool_error)?;
            structured(&TaskList {
                total,
                tasks: tasks.iter().map(summary).collect(),
            })
        }
        "start_pipeline" => {
            let a: StartPipelineArgs = parse(name, args)?;
            let project = project_named(app, by, &a.project).await?;
            let inputs = a.request.map(|r| {
                let mut m = serde_json::Map::new();
                m.insert("request".into(), Value::String(r));
                m
            });
            let input = domain::pipelines::StartRun {
                pipeline: a.pipeline,
                definition: a.definition,
                inputs,
                provider_id: None,
                budget_usd: a.budget_usd,
            };
            let run = app
                .domain
                .pipelines
                .start(by, project, input)
                .await
                .map_err(tool_error)?;
            structured(&run)
        }
        "list_pipeline_runs" => {
            let a: ProjectArgs = parse(name, args)?;
            let project = project_named(app, by, &a.project).await?;
            let runs = app
                .domain
                .pipelines
                .list(by, project)
                .await
                .map_err(tool_error)?;
            structured(&domain::pipelines::RunList { runs })
        }
        "activity_report" | "cost_by_model" => {
            let (project, from, to, group_by) = if name == "activity_report" {
                let a: ActivityReportArgs = parse(name, args)?;
                (a.project, a.from, a.to, a.group_by)
            } else {
                let a: CostByModelArgs = parse(name, args)?;
                (a.project, a.from, a.to, Some("model".into()))
            };
            let project = match project {
                Some(p) => Some(project_named(app, by, &p).await?),
                None => None,
            };
            let query = domain::activity::report::ReportQuery {
                project,
                from: day(from.as_deref())?,
                to: day(to.as_deref())?,
                group_by,
                ..Default::default()
            };
            let report = app
                .domain
                .activities
                .report(by, query)
                .await
                .map_err(tool_error)?;
            structured(&report)
        }
        "recent_ai_changes" => {
            let a: RecentAiChangesArgs = parse(name, args)?;
            let project = match a.project {
                Some(p) => Some(project_named(app, by, &p).await?),
                None => None,
            };
            let list = app
                .domain
                .activities
                .recent_changes(by, project, a.limit.unwrap_or(20).clamp(1, 200))
                .await
                .map_err(tool_error)?;
            structured(&crate::store::activity::ActivityList { activities: list })
        }
        "list_prompts" => {
            let a: ProjectArgs = parse(name, args)?;
            let project = project_named(app, by, &a.project).await?;
            let prompts = app
                .domain
                .prompts
                .list(by, project)
                .await
                .map_err(tool_error)?;
            structured(&domain::prompts::PromptList {
                prompts: prompts.into_iter().map(Into::into).collect(),
            })
        }
        "get_prompt" => {
            let a: GetPromptArgs = parse(name, args)?;
            let project = project_named(app, by, &a.project).await?;
            let rendered = app
                .domain
                .prompts
                .render(
                    by,
                    project,
                    &a.name,
                    a.version,
                    &a.arguments.unwrap_or_default(),
                )
                .await
                .map_err(tool_error)?;
            structured(&rendered)
        }
        "list_deployments" => {
            let a: ProjectArgs = parse(name, args)?;
            let project = project_named(app, by, &a.project).await?;
            let deployments = app
                .domain
                .pipelines
                .deployments(by, project)
                .await
                .map_err(tool_error)?;
            structured(&domain::pipelines::DeploymentList { deployments })
        }
        "get_pipeline_run" | "cancel_pipeline_run" => {
            let a: PipelineRunArgs = parse(name, args)?;
            let id = run_id(&a.run_id)?;
            let run = if name == "get_pipeline_run" {
                app.domain.pipelines.get(by, id).await
            } else {
                app.domain.pipelines.cancel(by, id).await
            };
            structured(&run.map_err(tool_error)?)
        }
        "resume_pipeline_run" => {
            let a: ResumePipelineArgs = parse(name, args)?;
            let id = run_id(&a.run_id)?;
            let input = domain::pipelines::ResumeRun {
                from_stage: a.from_stage,
                budget_usd: a.budget_usd,
            };
            let run = app.domain.pipelines.resume(by, id, input).await;
            structured(&run.map_err(tool_error)?)
        }
        "decide_pipeline_gate" => {
            let a: DecideGateArgs = parse(name, args)?;
            let id = run_id(&a.run_id)?;
            let run = if a.approve {
                app.domain.pipelines.approve(by, id, &a.stage).await
            } else {
                let decision = domain::pipelines::Decision { comment: a.comment };
                app.domain
                    .pipelines
                    .reject(by, id, &a.stage, decision)
                    .await
            };
            structured(&run.map_err(tool_error)?)
        }
        "get_pipeline_artifact" => {
            let a: PipelineArtifactArgs = parse(name, args)?;
            let id = run_id(&a.run_id)?;
            let artifact = app
                .domain
                .pipelines
                .artifact(by, id, &a.path)
                .await
                .map_err(tool_error)?;
            structured(&domain::pipelines::ArtifactContent::from(artifact))
        }
        other => Err(format!("no relay tool {other:?}")),
    }
}

/// The task as the caller may see it now.
fn run_id(id: &str) -> Result<Uuid, String> {
    Uuid::parse_str(id.trim()).map_err(|_| tool_error(DomainError::NotFound("pipeline run")))
}

/// The project the caller may see with this id, or else this name (case-insensitive).
pub(crate) async fn project_named(
    app: &AppState,
    by: Caller,
    project: &str,
) -> Result<Uuid, String> {
    if let Ok(id) = Uuid::parse_str(project.trim()) {
        return Ok(id);
    }
    let all = app.domain.projects.list(by).await.map_err(tool_error)?;
    let mut named = all
        .iter()
        .filter(|p| p.name.eq_ignore_ascii_case(project.trim()));
    match (named.next(), named.next()) {
        (Some(p), None) => Ok(p.id),
        (Some(_), Some(_)) => Err(format!(
            "more than one of your projects is named {project:?}; give its id"
        )),
        (None, _) => Err(tool_error(DomainError::NotFound("project"))),
    }
}

async fn task_now(app: &AppState, by: Caller, id: Uuid) -> Option<Task> {
    app.domain.tasks.visible(by, id).await.ok()
}

/// A task in a list.
fn summary(t: &Task) -> TaskSummary {
    TaskSummary {
        id: t.id,
        number: t.number,
        workspace_id: t.workspace_id,
        repo: t.repo.clone(),
        command: t.command.clone(),
        step: t.step.clone(),
        state: t.state,
        exit_code: t.exit_code,
        source: t.source,
        created_at: t.created_at,
        finished_at: t.finished_at,
    }
}

/// A task with its test summary and the last `tail` bytes of its log.
async fn describe(app: &AppState, t: &Task, tail: u64) -> Result<ToolOutput, String> {
    let mut detail = TaskDetail {
        task: summary(t),
        signal: t.signal,
        error: t.error.clone(),
        started_at: t.started_at,
        duration_ms: t.duration_ms,
        commit: t.commit_sha.clone(),
        branch: t.branch.clone(),
        test_summary: t.test_summary.clone(),
        log_bytes: t.log_bytes,
        log_truncated: t.log_truncated,
        log: None,
        log_offset: None,
    };
    if tail > 0 && t.log_bytes > 0 {
        let end = t.log_bytes as u64;
        let from = end.saturating_sub(tail);
        let slice = crate::tasks::read_log(&*app.store, t, from, (end - from) as usize)
            .await
            .map_err(|e| e.to_string())?;
        detail.log = Some(String::from_utf8_lossy(&slice.data).into_owned());
        detail.log_offset = Some(from);
    }
    structured(&detail)
}
