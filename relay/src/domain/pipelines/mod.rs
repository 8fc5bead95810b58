//! AI generation pipelines: what people do with them (start, watch, cancel, approve, reject,
//! resume, read artifacts), whatever the door. The [`engine`] drives the runs; a definition is
//! data ([`definition`]), and the built-in pipelines are definitions shipped with the relay
//! ([`builtin`]).
//!
//! A run belongs to a project and is seen by its members. Starting, canceling and resuming
//! need the `run` scope and the owner's or a maintainer's role; deciding an approval gate
//! needs at least the role the gate names. A run acts with the role of the user who started
//! it, checked again each time the engine picks it up.

pub mod agent_stage;
pub mod builtin;
mod checks;
pub mod definition;
pub mod engine;
mod feed;
mod llm_stage;
mod mcp_stage;
mod recovery;
mod repo_defs;
mod run_stage;
mod workspace;

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{Role, RunState, StageKind, StageState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use definition::{Definition, DefinitionError};
pub use feed::RunFeed;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
    budgets::{micros_to_usd, usd_to_micros},
    projects::Projects,
    providers::Providers,
};
use crate::store::{
    DynStore, Project, Scope,
    pipelines::{Artifact, ArtifactMeta, CallTotals, NewRun, PipelineRun, RunAction, StageRow},
};

/// Most bytes of a run's inputs (JSON).
const MAX_INPUTS: usize = 64 << 10;
/// Most runs listed at once.
const MAX_LIST: u32 = 200;
/// Longest reviewer comment.
const MAX_COMMENT: usize = 8 << 10;

/// What to start.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// A pipeline by name: one the project's repository defines in its `fulcrum.toml`, or a
    /// built-in one (`systemcrafter`, `feature`) [default: systemcrafter]. Prompts in the
    /// repository's `.fulcrum/prompts/<stage>.md` replace those of the stages of that name.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// A pipeline definition (TOML) to run instead of a built-in one.
    #[serde(default)]
    pub definition: Option<String>,
    /// Inputs the prompts read as `inputs.*` [default: the project's name and description].
    #[serde(default)]
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub inputs: Option<serde_json::Map<String, serde_json::Value>>,
    /// The provider to call [default: the caller's for this project, then theirs for all].
    #[serde(default)]
    pub provider_id: Option<Uuid>,
    /// The run's own budget, US dollars [default: the definition's].
    #[serde(default)]
    pub budget_usd: Option<f64>,
}

/// A decision on an approval gate.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// For a rejection: what to change; fed to the stages that run again.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Where to start again.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRun {
    /// Run this stage and every stage after it again, with the earlier stages' outputs
    /// [default: only the stages that failed or wait].
    #[serde(default)]
    pub from_stage: Option<String>,
    /// A new budget for the run itself, US dollars (to go on after its budget stopped it).
    #[serde(default)]
    pub budget_usd: Option<f64>,
}

/// Tokens and cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct RunUsage {
    /// LLM calls made.
    pub calls: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cached input tokens.
    pub cached_tokens: i64,
    /// Cost, US dollars.
    pub cost_usd: f64,
}

impl From<&CallTotals> for RunUsage {
    fn from(t: &CallTotals) -> Self {
        Self {
            calls: t.calls,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            cost_usd: micros_to_usd(t.cost_micros),
        }
    }
}

/// A stage as people see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct StageView {
    /// Its name.
    pub name: String,
    /// What it does.
    pub kind: StageKind,
    /// Where it is.
    pub state: StageState,
    /// The stages it needs.
    pub needs: Vec<String>,
    /// Attempts begun.
    pub attempt: i32,
    /// A stable code for why it waits or failed.
    pub reason: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// A reviewer's comment for its next attempt.
    pub feedback: Option<String>,
    /// Who approved or rejected it, for an approval gate.
    pub decided_by: Option<Uuid>,
    /// The task it started, for a `run` stage (its log is the task's).
    pub task_id: Option<Uuid>,
    /// When its current attempt began.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its LLM calls' tokens and cost.
    pub usage: RunUsage,
    /// The commit it made on the run's branch (stages that write in the workspace).
    pub commit: Option<String>,
    /// For a recovery stage: the failures it was asked to fix, in order.
    pub rounds: Vec<RecoveryRound>,
}

/// One round of a recovery stage: the failure it was asked to fix.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct RecoveryRound {
    /// The stage that failed.
    pub stage: String,
    /// Its attempt that failed.
    pub attempt: i32,
    /// Its reason.
    pub reason: String,
    /// Its error.
    pub error: String,
    /// The failure's fingerprint: a round that fails like an earlier one ends recovery.
    pub fingerprint: String,
}

/// The parts of a stage's stored output a view shows.
#[derive(Default, Deserialize)]
struct OutputShown {
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    rounds: Vec<RecoveryRound>,
}

fn shown(output: Option<&str>) -> OutputShown {
    output
        .filter(|o| o.starts_with('{') && (o.contains("\"commit\"") || o.contains("\"rounds\"")))
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default()
}

/// A pipeline run as people see it (the REST answer and the MCP tools' result).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct RunView {
    /// Its id.
    pub id: Uuid,
    /// A short name (in branch names: `fulcrum/run-<handle>`).
    pub handle: String,
    /// Its project.
    pub project_id: Uuid,
    /// The workspace it works in, once chosen.
    pub workspace_id: Option<Uuid>,
    /// Who started it.
    pub started_by: Uuid,
    /// The provider it calls.
    pub provider_id: Option<Uuid>,
    /// The pipeline's name.
    pub pipeline: String,
    /// SHA-256 of the definition and prompts it runs.
    pub definition_hash: String,
    /// Where it is.
    pub state: RunState,
    /// A stable code for why it paused or failed.
    pub reason: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Its own budget, US dollars.
    pub budget_usd: Option<f64>,
    /// Tokens and cost so far.
    pub usage: RunUsage,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the engine first picked it up.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When it last changed (orders an answer against the events about it).
    pub updated_at: DateTime<Utc>,
    /// Its stages, in definition order.
    pub stages: Vec<StageView>,
}

/// A project's runs (the result of the MCP tool `list_pipeline_runs`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunView>,
}

/// A project's deployments (the result of the MCP tool `list_deployments`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeploymentList {
    /// Newest first.
    pub deployments: Vec<crate::store::pipelines::Deployment>,
}

/// One artifact with its content (the result of the MCP tool `get_pipeline_artifact`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactContent {
    /// Its path in the run.
    pub path: String,
    /// The stage that wrote it.
    pub stage: String,
    /// Its media type.
    pub media_type: String,
    /// Its content.
    pub content: String,
}

impl From<Artifact> for ArtifactContent {
    fn from(a: Artifact) -> Self {
        Self {
            path: a.meta.path,
            stage: a.meta.stage,
            media_type: a.meta.media_type,
            content: a.content,
        }
    }
}

/// Builds the view of `run` from its rows.
pub(crate) fn view(run: &PipelineRun, stages: &[StageRow], totals: &[CallTotals]) -> RunView {
    // Only the stages' needs, read without the checks (a run's definition passed them when
    // it started): this runs at every event.
    let needs = definition::needs_of(&run.definition);
    let mut all = RunUsage::default();
    for t in totals {
        all.calls += t.calls;
        all.input_tokens += t.input_tokens;
        all.output_tokens += t.output_tokens;
        all.cached_tokens += t.cached_tokens;
        all.cost_usd += micros_to_usd(t.cost_micros);
    }
    RunView {
        id: run.id,
        handle: run.handle.clone(),
        project_id: run.project_id,
        workspace_id: run.workspace_id,
        started_by: run.started_by,
        provider_id: run.provider_id,
        pipeline: run.pipeline.clone(),
        definition_hash: run.definition_hash.clone(),
        state: run.state,
        reason: run.reason.clone(),
        error: run.error.clone(),
        budget_usd: run.budget_micros.map(micros_to_usd),
        usage: all,
        created_at: run.created_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        updated_at: run.updated_at,
        stages: stages
            .iter()
            .map(|s| {
                let shown = shown(s.output.as_deref());
                StageView {
                    commit: shown.commit,
                    rounds: shown.rounds,
                    name: s.name.clone(),
                    kind: s.kind,
                    state: s.state,
                    needs: needs.get(&s.name).cloned().unwrap_or_default(),
                    attempt: s.attempt,
                    reason: s.reason.clone(),
                    error: s.error.clone(),
                    feedback: s.feedback.clone(),
                    decided_by: s.decided_by,
                    task_id: s.task_id,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    usage: totals
                        .iter()
                        .find(|t| t.stage == s.name)
                        .map(RunUsage::from)
                        .unwrap_or_default(),
                }
            })
            .collect(),
    }
}

/// A random handle: eight characters of a-z and 0-9.
fn new_handle() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Pipelines, for the doors.
pub struct Pipelines {
    store: DynStore,
    projects: Arc<Projects>,
    workspace_side: (Arc<super::tasks::Tasks>, super::workspaces::Workspaces),
    providers: Arc<Providers>,
    feed: Arc<RunFeed>,
    wake: Arc<tokio::sync::Notify>,
    local: Arc<engine::LocalRuns>,
}

impl Pipelines {
    /// Pipelines in `store`; runs told on `feed`; `wake` rouses the engine; `local` are the
    /// runs this node's engine drives.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: DynStore,
        projects: Arc<Projects>,
        workspace_side: (Arc<super::tasks::Tasks>, super::workspaces::Workspaces),
        providers: Arc<Providers>,
        feed: Arc<RunFeed>,
        wake: Arc<tokio::sync::Notify>,
        local: Arc<engine::LocalRuns>,
    ) -> Self {
        Self {
            store,
            projects,
            workspace_side,
            providers,
            feed,
            wake,
            local,
        }
    }

    /// Starts a run of a pipeline on a project.
    pub async fn start(
        &self,
        caller: Caller,
        project_id: Uuid,
        input: StartRun,
    ) -> DomainResult<RunView> {
        caller.need(Scope::Run)?;
        // A run acts in the project's workspaces: a token limited to one workspace may not.
        if let super::Limit::Workspace(_) = caller.grant.limit {
            return Err(DomainError::Denied {
                code: "token_limited",
                message: "this token is limited to one workspace, so it cannot start a pipeline \
                          (a run works in its project's workspaces)"
                    .into(),
            });
        }
        let project = self.projects.visible(caller, project_id).await?;
        require_role(&project, Role::Maintainer, "start pipelines")?;
        let mut repo_of_definition: Option<String> = None;
        let (text, prompts) = match (&input.definition, &input.pipeline) {
            (Some(_), Some(_)) => {
                return Err(DomainError::Invalid(
                    "give a pipeline name or a definition, not both".into(),
                ));
            }
            (Some(text), None) => (text.clone(), BTreeMap::new()),
            (None, name) => {
                let name = name.as_deref().unwrap_or(builtin::DEFAULT);
                // The repository the run will work in: named in the inputs, else the built-in
                // pipeline's, else the project's checkout.
                let given = input
                    .inputs
                    .as_ref()
                    .and_then(|i| i.get("repo"))
                    .and_then(|r| r.as_str())
                    .map(str::to_owned);
                let builtin_def = builtin::get(name).map(|(t, _)| t);
                let from_builtin = builtin_def
                    .as_deref()
                    .and_then(|t| Definition::parse(t).ok())
                    .and_then(|d| d.repo)
                    .and_then(|t| {
                        llm_stage::render(
                            &t,
                            &serde_json::json!({ "project": project_context(&project) }),
                        )
                        .ok()
                    });
                let repo = given.or(from_builtin).unwrap_or_else(|| {
                    project_context(&project)["checkout"]
                        .as_str()
                        .unwrap_or(".")
                        .to_owned()
                });
                let (tasks, workspaces) = &self.workspace_side;
                let found =
                    repo_defs::read_repo(workspaces, tasks, caller, project.id, repo.trim()).await;
                // A built-in name always means the built-in pipeline: a repository cannot put
                // its own stages under a name people trust.
                let text = match (builtin_def, found.pipelines.get(name)) {
                    (Some(t), _) => t,
                    (None, Some(t)) => {
                        // It works in the repository that defines it, unless it says otherwise.
                        repo_of_definition = Some(repo.trim().to_owned());
                        t.clone()
                    }
                    (None, None) => {
                        let mut names: Vec<&str> = builtin::NAMES.to_vec();
                        names.extend(found.pipelines.keys().map(String::as_str));
                        return Err(DomainError::Invalid(format!(
                            "no pipeline is named `{name}` (there are: {}{})",
                            names.join(", "),
                            found
                                .unreadable
                                .as_deref()
                                .map(|w| format!(
                                    "; the repository's fulcrum.toml could not be read: {w}"
                                ))
                                .unwrap_or_default()
                        )));
                    }
                };
                repo_defs::with_prompts(&text, &found.prompts)?
            }
        };
        let definition = Definition::parse(&text).map_err(|e| {
            DomainError::Invalid(format!("the pipeline definition is invalid: {e}"))
        })?;
        if let Some(b) = input.budget_usd
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(DomainError::Invalid("budget_usd must be ≥ 0".into()));
        }
        let mut inputs = serde_json::Map::new();
        inputs.insert("name".into(), project.name.clone().into());
        inputs.insert("description".into(), project.description.clone().into());
        inputs.extend(input.inputs.unwrap_or_default());
        // The repository the run works in, relative to the workspace root.
        let repo = match inputs.get("repo") {
            Some(serde_json::Value::String(r)) => r.clone(),
            Some(_) => return Err(DomainError::Invalid("inputs.repo is a path".into())),
            None => match &definition.repo {
                Some(t) => llm_stage::render(
                    t,
                    &serde_json::json!({ "project": project_context(&project) }),
                )
                .map_err(|e| DomainError::Invalid(format!("the pipeline's `repo`: {e}")))?
                .trim()
                .to_owned(),
                None => repo_of_definition.unwrap_or_else(|| ".".into()),
            },
        };
        if repo != "." {
            definition::check_artifact_path(&repo).map_err(|e| {
                DomainError::Invalid(format!("the run's repository directory: {e}"))
            })?;
        }
        inputs.insert("repo".into(), repo.into());
        let inputs = serde_json::Value::Object(inputs).to_string();
        if inputs.len() > MAX_INPUTS {
            return Err(DomainError::Invalid(format!(
                "a run's inputs are at most {MAX_INPUTS} bytes of JSON"
            )));
        }
        let provider = self
            .providers
            .choose(caller.user, &project, input.provider_id)
            .await?;
        let now = Utc::now();
        let run = PipelineRun {
            id: Uuid::now_v7(),
            handle: new_handle(),
            project_id: project.id,
            workspace_id: None,
            started_by: caller.user,
            provider_id: Some(provider.id),
            pipeline: definition.name.clone(),
            definition: text.clone(),
            definition_hash: definition::definition_hash(&text, &prompts),
            inputs,
            state: RunState::Queued,
            reason: None,
            error: None,
            budget_micros: input
                .budget_usd
                .or(definition.defaults.budget_usd)
                .map(usd_to_micros),
            cancel_requested: false,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        };
        self.store
            .create_run(&NewRun {
                run: run.clone(),
                stages: definition
                    .stages
                    .iter()
                    .map(|s| (s.name.clone(), s.kind))
                    .collect(),
            })
            .await?;
        audit::record(Record {
            caller,
            action: "pipeline_run.start",
            subject: run.id,
        });
        self.wake.notify_one();
        let view = self.view_of(&run).await?;
        self.feed.publish(&view).await;
        Ok(view)
    }

    /// A project's runs, newest first.
    pub async fn list(&self, caller: Caller, project_id: Uuid) -> DomainResult<Vec<RunView>> {
        caller.need(Scope::Read)?;
        let project = self.projects.visible(caller, project_id).await?;
        let runs = self.store.list_runs(&project, MAX_LIST).await?;
        let mut out = Vec::with_capacity(runs.len());
        for r in &runs {
            out.push(self.view_of(r).await?);
        }
        Ok(out)
    }

    /// A project's deployments, newest first (at most 100).
    pub async fn deployments(
        &self,
        caller: Caller,
        project_id: Uuid,
    ) -> DomainResult<Vec<crate::store::pipelines::Deployment>> {
        caller.need(Scope::Read)?;
        let project = self.projects.visible(caller, project_id).await?;
        Ok(self.store.list_deployments(project.id, 100).await?)
    }

    /// One run, if the caller may see its project.
    pub async fn get(&self, caller: Caller, id: Uuid) -> DomainResult<RunView> {
        let (_, run) = self.visible(caller, id).await?;
        self.view_of(&run).await
    }

    /// Cancels a run: one that waits ends at once; one being driven ends at its next step.
    pub async fn cancel(&self, caller: Caller, id: Uuid) -> DomainResult<RunView> {
        caller.need(Scope::Run)?;
        let (project, run) = self.visible(caller, id).await?;
        require_role(&project, Role::Maintainer, "cancel pipeline runs")?;
        self.act(
            caller,
            &run,
            RunAction::Cancel,
            "pipeline_run.cancel",
            "it has ended",
        )
        .await
    }

    /// Approves a gate that waits.
    pub async fn approve(&self, caller: Caller, id: Uuid, stage: &str) -> DomainResult<RunView> {
        let (run, _) = self.gate(caller, id, stage).await?;
        self.act(
            caller,
            &run,
            RunAction::Approve {
                stage: stage.to_owned(),
                by: caller.user,
            },
            "pipeline_run.approve",
            "the stage is not waiting for approval",
        )
        .await
    }

    /// Rejects a gate that waits: the stages it gates run again with the comment.
    pub async fn reject(
        &self,
        caller: Caller,
        id: Uuid,
        stage: &str,
        decision: Decision,
    ) -> DomainResult<RunView> {
        let comment = decision.comment.unwrap_or_default();
        if comment.trim().is_empty() || comment.len() > MAX_COMMENT {
            return Err(DomainError::Invalid(format!(
                "a rejection needs a comment of 1 to {MAX_COMMENT} bytes saying what to change"
            )));
        }
        let (run, definition) = self.gate(caller, id, stage).await?;
        let gate = definition
            .stage(stage)
            .ok_or(DomainError::NotFound("stage"))?;
        let mut redo = Vec::new();
        for need in &gate.needs {
            for s in definition.downstream(need) {
                if s != stage && !redo.contains(&s) {
                    redo.push(s);
                }
            }
        }
        self.act(
            caller,
            &run,
            RunAction::Reject {
                stage: stage.to_owned(),
                redo,
                by: caller.user,
                comment,
            },
            "pipeline_run.reject",
            "the stage is not waiting for approval",
        )
        .await
    }

    /// Puts a paused, failed or ended run back in line: failed and waiting stages run again,
    /// and with `from_stage`, that stage and every stage after it.
    pub async fn resume(
        &self,
        caller: Caller,
        id: Uuid,
        input: ResumeRun,
    ) -> DomainResult<RunView> {
        caller.need(Scope::Run)?;
        let (project, run) = self.visible(caller, id).await?;
        require_role(&project, Role::Maintainer, "resume pipeline runs")?;
        let reset = match &input.from_stage {
            None => Vec::new(),
            Some(from) => {
                let definition = Definition::parse(&run.definition)
                    .map_err(|e| DomainError::Internal(e.to_string()))?;
                if definition.stage(from).is_none() {
                    return Err(DomainError::NotFound("stage"));
                }
                definition.downstream(from)
            }
        };
        let budget_micros = match input.budget_usd {
            Some(b) if b.is_finite() && b >= 0.0 => Some(usd_to_micros(b)),
            Some(_) => return Err(DomainError::Invalid("budget_usd must be ≥ 0".into())),
            None => None,
        };
        self.act(
            caller,
            &run,
            RunAction::Resume {
                reset,
                budget_micros,
            },
            "pipeline_run.resume",
            "a run that is queued or running cannot be resumed",
        )
        .await
    }

    /// A run's artifacts.
    pub async fn artifacts(&self, caller: Caller, id: Uuid) -> DomainResult<Vec<ArtifactMeta>> {
        let (_, run) = self.visible(caller, id).await?;
        Ok(self.store.artifacts(run.id).await?)
    }

    /// One artifact of a run.
    pub async fn artifact(&self, caller: Caller, id: Uuid, path: &str) -> DomainResult<Artifact> {
        let (_, run) = self.visible(caller, id).await?;
        self.store
            .artifact(run.id, path)
            .await?
            .ok_or(DomainError::NotFound("artifact"))
    }

    /// Every artifact of a run, with content (for the zip), and the run's handle.
    pub async fn all_artifacts(
        &self,
        caller: Caller,
        id: Uuid,
    ) -> DomainResult<(String, Vec<Artifact>)> {
        let (_, run) = self.visible(caller, id).await?;
        Ok((run.handle, self.store.artifacts_with_content(run.id).await?))
    }

    /// The run's LLM calls, oldest first (no raw answers).
    pub async fn calls(&self, caller: Caller, id: Uuid) -> DomainResult<Vec<CallView>> {
        let (_, run) = self.visible(caller, id).await?;
        Ok(self
            .store
            .run_calls(run.id)
            .await?
            .into_iter()
            .map(CallView::from)
            .collect())
    }

    /// The project and run, if the caller may see the run's project.
    async fn visible(&self, caller: Caller, id: Uuid) -> DomainResult<(Project, PipelineRun)> {
        caller.need(Scope::Read)?;
        let run = self
            .store
            .run_unscoped(id)
            .await?
            .ok_or(DomainError::NotFound("pipeline run"))?;
        let project = self
            .projects
            .visible(caller, run.project_id)
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => DomainError::NotFound("pipeline run"),
                e => e,
            })?;
        Ok((project, run))
    }

    /// The run and its definition, if the caller may decide gate `stage` of it.
    async fn gate(
        &self,
        caller: Caller,
        id: Uuid,
        stage: &str,
    ) -> DomainResult<(PipelineRun, Definition)> {
        caller.need(Scope::Run)?;
        let (project, run) = self.visible(caller, id).await?;
        let definition =
            Definition::parse(&run.definition).map_err(|e| DomainError::Internal(e.to_string()))?;
        let gate = definition
            .stage(stage)
            .filter(|s| s.kind == StageKind::Approval)
            .ok_or(DomainError::NotFound("approval stage"))?;
        require_role(&project, gate.approver, "decide this gate")?;
        Ok((run, definition))
    }

    async fn act(
        &self,
        caller: Caller,
        run: &PipelineRun,
        action: RunAction,
        audit_action: &'static str,
        refused: &str,
    ) -> DomainResult<RunView> {
        if !self.store.act_on_run(run.id, &action, Utc::now()).await? {
            return Err(DomainError::conflict("run_state", refused.to_owned()));
        }
        if let RunAction::Cancel = action {
            self.local.cancel(run.id);
        }
        audit::record(Record {
            caller,
            action: audit_action,
            subject: run.id,
        });
        self.wake.notify_one();
        let now = self
            .store
            .run_unscoped(run.id)
            .await?
            .ok_or(DomainError::NotFound("pipeline run"))?;
        // A run the engine does not drive (queued, paused) ends or goes back in line here: the
        // project's generation status follows it as the engine would make it.
        if definition::sets_project_status(&now.definition) {
            let g = match now.state {
                RunState::Canceled => Some(fulcrum_protocol::kinds::ProjectGeneration::Draft),
                RunState::Queued => Some(fulcrum_protocol::kinds::ProjectGeneration::Generating),
                _ => None,
            };
            if let Some(g) = g {
                self.store.set_run_project_generation(now.id, g).await?;
            }
        }
        let view = self.view_of(&now).await?;
        self.feed.publish(&view).await;
        Ok(view)
    }

    async fn view_of(&self, run: &PipelineRun) -> DomainResult<RunView> {
        let stages = self.store.stages(run.id).await?;
        let totals = self.store.run_totals(run.id).await?;
        Ok(view(run, &stages, &totals))
    }
}

/// Refuses unless the caller's role in `project` is at least `least`.
fn require_role(project: &Project, least: Role, what: &str) -> DomainResult<()> {
    let rank = |r: Role| match r {
        Role::Owner => 2,
        Role::Maintainer => 1,
        Role::Viewer => 0,
    };
    if rank(project.role) >= rank(least) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "a {} of this project cannot {what}",
            project.role.as_str()
        )))
    }
}

/// One LLM call of a run, with its OpenTelemetry GenAI facts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallView {
    /// Its id.
    pub id: Uuid,
    /// The stage.
    pub stage: Option<String>,
    /// The stage's attempt.
    pub attempt: Option<i32>,
    /// Its number in the attempt.
    pub seq: Option<i32>,
    /// `gen_ai.operation.name`.
    pub operation: String,
    /// `gen_ai.provider.name`.
    pub provider: fulcrum_protocol::kinds::ProviderKind,
    /// `gen_ai.request.model`.
    pub request_model: String,
    /// `gen_ai.response.model`.
    pub response_model: Option<String>,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// `gen_ai.response.finish_reasons`.
    pub finish_reasons: Vec<String>,
    /// `gen_ai.usage.input_tokens`.
    pub input_tokens: i64,
    /// `gen_ai.usage.output_tokens`.
    pub output_tokens: i64,
    /// Cached input tokens.
    pub cached_tokens: i64,
    /// Whether the provider reported no usage and the counts are estimates.
    pub usage_estimated: bool,
    /// Cost, US dollars.
    pub cost_usd: f64,
    /// Milliseconds to the end of the answer.
    pub latency_ms: Option<i64>,
    /// Milliseconds to the first token.
    pub ttft_ms: Option<i64>,
    /// What became of it.
    pub state: fulcrum_protocol::kinds::LlmCallState,
    /// Its failure's code.
    pub error_code: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<crate::store::pipelines::LlmCall> for CallView {
    fn from(c: crate::store::pipelines::LlmCall) -> Self {
        Self {
            id: c.id,
            stage: c.stage,
            attempt: c.attempt,
            seq: c.seq,
            operation: c.operation,
            provider: c.provider,
            request_model: c.request_model,
            response_model: c.response_model,
            response_id: c.response_id,
            finish_reasons: c.finish_reason.into_iter().collect(),
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            cached_tokens: c.cached_tokens,
            usage_estimated: c.usage_estimated,
            cost_usd: micros_to_usd(c.cost_micros),
            latency_ms: c.latency_ms,
            ttft_ms: c.ttft_ms,
            state: c.state,
            error_code: c.error_code,
            created_at: c.created_at,
        }
    }
}

/// A project as templates see it: its fields, a `slug` made from its name, and `checkout`,
/// the directory a clone of its repository gets (`.` without one).
pub(super) fn project_context(project: &crate::store::Project) -> serde_json::Value {
    let mut slug = String::new();
    for c in project.name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() {
        "project"
    } else {
        &slug[..slug.len().min(64)]
    };
    let checkout = project
        .repository_url
        .as_deref()
        .and_then(|u| u.trim_end_matches('/').rsplit(['/', ':']).next())
        .map(|n| n.trim_end_matches(".git"))
        .filter(|n| !n.is_empty() && definition::check_artifact_path(n).is_ok())
        .unwrap_or(".");
    serde_json::json!({
        "name": project.name,
        "description": project.description,
        "tech_stack": project.tech_stack,
        "repository_url": project.repository_url,
        "slug": slug,
        "checkout": checkout,
    })
}
