//! What the AI half keeps: LLM providers, budgets, pipeline runs with their stages and
//! artifacts, and the journal of LLM calls.
//!
//! Runs are reached through a [`Project`] the caller could see, like tasks. A run is driven by
//! the node that holds its lease; every change the engine makes is fenced by that lease
//! ([`PipelineStore::apply_step`]), and a stage's result is written in the same transaction as
//! the run's advance, so a crash leaves either both or neither.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{
    BudgetPeriod, DeploymentSource, DeploymentState, LlmCallState, ProviderKind, RunState,
    StageKind, StageState,
};
use serde::Serialize;
use uuid::Uuid;

use super::{StoreResult, work::Project};

/// An LLM provider a user set up.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LlmProvider {
    /// Its id.
    pub id: Uuid,
    /// The user it belongs to.
    #[serde(skip)]
    pub owner_id: Uuid,
    /// The one project it is for; `None`: all of its owner's.
    pub project_id: Option<Uuid>,
    /// A name chosen by its owner, unique among theirs.
    pub name: String,
    /// The wire format it speaks.
    #[sqlx(try_from = "String")]
    pub kind: ProviderKind,
    /// The base URL calls go to.
    pub base_url: String,
    /// The model used when a stage names none.
    pub default_model: String,
    /// The key's last characters (the key itself is sealed and never shown).
    pub key_hint: Option<String>,
    /// When it was set up.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A spending limit.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Budget {
    /// Its id.
    pub id: Uuid,
    /// The user who set it (a user budget counts that user's calls).
    #[serde(skip)]
    pub owner_id: Uuid,
    /// The project whose calls it counts; `None`: its owner's calls everywhere.
    pub project_id: Option<Uuid>,
    /// Over what period.
    #[sqlx(try_from = "String")]
    pub period: BudgetPeriod,
    /// The limit, in micro-dollars.
    pub limit_micros: i64,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The highest alert (80 or 100 percent) raised in `alert_period`.
    #[serde(skip)]
    pub alert_level: i32,
    /// The period of the last alert (`2026-12`, or `total`).
    #[serde(skip)]
    pub alert_period: Option<String>,
}

/// A pipeline run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PipelineRun {
    /// Its id.
    pub id: Uuid,
    /// A short name for people and branch names.
    pub handle: String,
    /// Its project.
    pub project_id: Uuid,
    /// The workspace it works in, once chosen.
    pub workspace_id: Option<Uuid>,
    /// Who started it; it acts with their role, and its calls are theirs.
    pub started_by: Uuid,
    /// The provider its calls go to.
    pub provider_id: Option<Uuid>,
    /// The pipeline's name.
    pub pipeline: String,
    /// The definition it runs, exactly as it was when it started (TOML).
    pub definition: String,
    /// SHA-256 of the definition and the prompts it used.
    pub definition_hash: String,
    /// Its inputs (JSON).
    pub inputs: String,
    /// Where it is.
    #[sqlx(try_from = "String")]
    pub state: RunState,
    /// A stable code for why it paused or failed.
    pub reason: Option<String>,
    /// For people: what went wrong.
    pub error: Option<String>,
    /// Its own budget, in micro-dollars.
    pub budget_micros: Option<i64>,
    /// Someone asked to cancel it.
    pub cancel_requested: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the engine first picked it up.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A deployment: what was put where, from which commit, and whether it came up.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    sqlx::FromRow,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
pub struct Deployment {
    /// Its id.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// The pipeline run that made it.
    pub run_id: Option<Uuid>,
    /// The task that made it.
    pub task_id: Option<Uuid>,
    /// Who made it.
    #[sqlx(try_from = "String")]
    pub source: DeploymentSource,
    /// Where: the deploying stage, or the provider's environment.
    pub environment: String,
    /// Where it answers.
    pub url: Option<String>,
    /// The commit deployed.
    pub commit_sha: Option<String>,
    /// Whether it came up.
    #[sqlx(try_from = "String")]
    pub state: DeploymentState,
    /// The user it was made for.
    #[serde(skip)]
    #[schemars(skip)]
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A stage of a run, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageRow {
    /// Its run.
    pub run_id: Uuid,
    /// Its name in the definition.
    pub name: String,
    /// Its place in the definition's order.
    pub position: i32,
    /// What it does.
    #[sqlx(try_from = "String")]
    pub kind: StageKind,
    /// Where it is.
    #[sqlx(try_from = "String")]
    pub state: StageState,
    /// Attempts begun (0 before the first).
    pub attempt: i32,
    /// A stable code for why it waits or failed.
    pub reason: Option<String>,
    /// For people: what went wrong.
    pub error: Option<String>,
    /// Its output (JSON), once it succeeded.
    pub output: Option<String>,
    /// A reviewer's comment, fed to the next attempt.
    pub feedback: Option<String>,
    /// Who approved or rejected it.
    pub decided_by: Option<Uuid>,
    /// The task it started, for a `run` stage.
    pub task_id: Option<Uuid>,
    /// When its current attempt began.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// An artifact's metadata.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArtifactMeta {
    /// Its path in the run, such as `requirements.json` or `api/openapi.yaml`.
    pub path: String,
    /// The stage that wrote it.
    pub stage: String,
    /// The stage's attempt that wrote it.
    pub attempt: i32,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: i64,
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// An artifact with its content.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Artifact {
    /// Its metadata.
    #[sqlx(flatten)]
    pub meta: ArtifactMeta,
    /// Its content (text).
    pub content: String,
}

/// One LLM call as journaled.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LlmCall {
    /// Its id.
    pub id: Uuid,
    /// The user it is billed to.
    pub owner_id: Uuid,
    /// The project it was for.
    pub project_id: Option<Uuid>,
    /// The run, stage, attempt and sequence number it belongs to.
    pub run_id: Option<Uuid>,
    /// The stage.
    pub stage: Option<String>,
    /// The stage's attempt.
    pub attempt: Option<i32>,
    /// Its number within the attempt.
    pub seq: Option<i32>,
    /// The provider it went to.
    pub provider_id: Option<Uuid>,
    /// `gen_ai.provider.name`.
    #[sqlx(try_from = "String")]
    pub provider: ProviderKind,
    /// `gen_ai.operation.name`.
    pub operation: String,
    /// `gen_ai.request.model`.
    pub request_model: String,
    /// `gen_ai.response.model`.
    pub response_model: Option<String>,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// `gen_ai.response.finish_reasons` (the one choice's).
    pub finish_reason: Option<String>,
    /// `gen_ai.usage.input_tokens`.
    pub input_tokens: i64,
    /// `gen_ai.usage.output_tokens`.
    pub output_tokens: i64,
    /// Input tokens read from the provider's cache.
    pub cached_tokens: i64,
    /// The provider reported no usage; the counts are estimates.
    pub usage_estimated: bool,
    /// The worst case held against the budgets while it ran, micro-dollars.
    pub reserved_micros: i64,
    /// What it cost, micro-dollars.
    pub cost_micros: i64,
    /// Milliseconds from request to the end of the answer.
    pub latency_ms: Option<i64>,
    /// Milliseconds to the first token.
    pub ttft_ms: Option<i64>,
    /// HTTP attempts made.
    pub attempts: i32,
    /// What became of it.
    #[sqlx(try_from = "String")]
    pub state: LlmCallState,
    /// A stable code for its failure.
    pub error_code: Option<String>,
    /// Its failure, for people.
    pub error: Option<String>,
    /// The request (JSON of `llm::ChatRequest`).
    pub request: String,
    /// The parsed answer (JSON of `llm::ChatResponse` without the raw text).
    pub response: Option<String>,
    /// The answer as received.
    pub raw_response: Option<String>,
    /// When it was journaled.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A call to journal, with its worst-case cost.
#[derive(Debug, Clone)]
pub struct NewLlmCall {
    /// Its id.
    pub id: Uuid,
    /// Billed to.
    pub owner_id: Uuid,
    /// For this project.
    pub project_id: Option<Uuid>,
    /// For this run, stage, attempt and sequence number.
    pub run: Option<(Uuid, String, i32, i32)>,
    /// The provider.
    pub provider_id: Option<Uuid>,
    /// Its wire format.
    pub provider: ProviderKind,
    /// `chat`.
    pub operation: &'static str,
    /// The model asked for.
    pub request_model: String,
    /// The worst case, micro-dollars.
    pub reserved_micros: i64,
    /// The request (JSON).
    pub request: String,
    /// Now.
    pub now: DateTime<Utc>,
}

/// A limit that applies to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    /// The run's own budget.
    Run(Uuid),
    /// A project's budget.
    Project(Uuid),
    /// A user's budget.
    User(Uuid),
}

/// One limit to check before a call: spending in `scope` since `since` plus the call's
/// reservation must stay within `limit_micros`.
#[derive(Debug, Clone, Copy)]
pub struct BudgetCheck {
    /// What is counted.
    pub scope: BudgetScope,
    /// From when (`None`: all time).
    pub since: Option<DateTime<Utc>>,
    /// The limit.
    pub limit_micros: i64,
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Journaled and reserved.
    Made,
    /// Refused: this limit would be passed; `spent_micros` is what it counts already.
    Refused {
        /// The limit that would be passed.
        check: usize,
        /// What it counts already.
        spent_micros: i64,
    },
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// Succeeded or failed.
    pub state: LlmCallState,
    /// `gen_ai.response.model`.
    pub response_model: Option<String>,
    /// `gen_ai.response.id`.
    pub response_id: Option<String>,
    /// Why it stopped.
    pub finish_reason: Option<String>,
    /// Tokens in.
    pub input_tokens: i64,
    /// Tokens out.
    pub output_tokens: i64,
    /// Cached tokens in.
    pub cached_tokens: i64,
    /// Whether the counts are estimates.
    pub usage_estimated: bool,
    /// Its cost, micro-dollars.
    pub cost_micros: i64,
    /// Latency.
    pub latency_ms: Option<i64>,
    /// Time to first token.
    pub ttft_ms: Option<i64>,
    /// HTTP attempts.
    pub attempts: i32,
    /// Failure code.
    pub error_code: Option<String>,
    /// Failure, for people.
    pub error: Option<String>,
    /// The parsed answer.
    pub response: Option<String>,
    /// The raw answer.
    pub raw_response: Option<String>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Totals of a run's calls, per stage.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CallTotals {
    /// The stage (empty for the run's total).
    pub stage: String,
    /// Calls made.
    pub calls: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cached input tokens.
    pub cached_tokens: i64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
}

/// A run to create, with its stages in definition order.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The run (state `queued`).
    pub run: PipelineRun,
    /// Its stages' names and kinds.
    pub stages: Vec<(String, StageKind)>,
}

/// A stage's new state, written by the engine.
#[derive(Debug, Clone)]
pub struct StageChange {
    /// The stage.
    pub name: String,
    /// Its new state.
    pub state: StageState,
    /// Its attempt.
    pub attempt: i32,
    /// Why it waits or failed.
    pub reason: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Its output, when it succeeded.
    pub output: Option<String>,
    /// The task it started.
    pub task_id: Option<Uuid>,
    /// When the attempt began.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The result of an attempt: written only if the stage is still running at `attempt`
    /// (someone may have reset it meanwhile, a rejection for one); otherwise the whole step is
    /// dropped, and the engine finds the stage as it is now.
    pub result_of: Option<i32>,
}

/// An artifact to write.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    /// Its path.
    pub path: String,
    /// The stage that wrote it.
    pub stage: String,
    /// Its attempt.
    pub attempt: i32,
    /// Its media type.
    pub media_type: String,
    /// Its content.
    pub content: String,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A run's new state, written by the engine.
#[derive(Debug, Clone)]
pub struct RunChange {
    /// The project's generation status follows (for a pipeline that sets it).
    pub generation: Option<fulcrum_protocol::kinds::ProjectGeneration>,
    /// The new state.
    pub state: RunState,
    /// Why it paused or failed.
    pub reason: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// The workspace, once chosen.
    pub workspace_id: Option<Uuid>,
}

/// One step of the engine: a stage's change, the artifacts it wrote, and the run's change,
/// written together or not at all, and only by the lease holder.
#[derive(Debug, Clone)]
pub struct Step {
    /// The run.
    pub run_id: Uuid,
    /// The lease holder.
    pub lease_owner: String,
    /// Stage changes.
    pub stages: Vec<StageChange>,
    /// Artifacts written.
    pub artifacts: Vec<NewArtifact>,
    /// The run's change.
    pub run: Option<RunChange>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// What people do to a run from outside the engine.
#[derive(Debug, Clone)]
pub enum RunAction {
    /// Ask the engine to cancel it (a paused or queued run ends at once).
    Cancel,
    /// Approve a waiting stage.
    Approve {
        /// The stage.
        stage: String,
        /// Who.
        by: Uuid,
    },
    /// Reject a waiting stage: the gate and the stages in `redo` run again, `redo` with the
    /// comment as feedback.
    Reject {
        /// The gate.
        stage: String,
        /// The stages that run again with the comment (the gate's needs and what follows).
        redo: Vec<String>,
        /// Who.
        by: Uuid,
        /// Their comment.
        comment: String,
    },
    /// Put a paused, failed, canceled or finished run back in line: its failed, skipped and
    /// budget-waiting stages, and those in `reset`, run again (earlier outputs kept).
    Resume {
        /// Stages to run again although they succeeded (a chosen stage and what follows it).
        reset: Vec<String>,
        /// A new budget for the run itself, micro-dollars.
        budget_micros: Option<i64>,
    },
}

/// Storage of the AI half.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Adds a provider.
    async fn create_provider(&self, p: &LlmProvider) -> StoreResult<()>;
    /// A user's providers (theirs everywhere and per project).
    async fn list_providers(&self, owner: Uuid) -> StoreResult<Vec<LlmProvider>>;
    /// One of a user's providers.
    async fn provider(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<LlmProvider>>;
    /// Changes a provider's URL, default model and key hint.
    async fn update_provider(&self, p: &LlmProvider) -> StoreResult<bool>;
    /// Removes one of a user's providers.
    async fn delete_provider(&self, owner: Uuid, id: Uuid) -> StoreResult<bool>;

    /// Sets a budget (one per scope and period).
    async fn put_budget(&self, b: &Budget) -> StoreResult<Budget>;
    /// Budgets a user set, and those of the projects given.
    async fn budgets(&self, owner: Uuid, projects: &[Uuid]) -> StoreResult<Vec<Budget>>;
    /// Removes a budget its owner set.
    async fn delete_budget(&self, owner: Uuid, id: Uuid) -> StoreResult<bool>;
    /// What has been spent (settled plus reserved) in `scope` since `since`.
    async fn spent(&self, scope: BudgetScope, since: Option<DateTime<Utc>>) -> StoreResult<i64>;

    /// Journals a call and reserves its worst case, unless a check would be passed; checks
    /// and insert are one transaction, serialized per user and project.
    async fn reserve_call(
        &self,
        call: &NewLlmCall,
        checks: &[BudgetCheck],
    ) -> StoreResult<Reservation>;
    /// Settles a journaled call.
    async fn settle_call(
        &self,
        id: Uuid,
        outcome: &CallOutcome,
        activity: Option<&super::activity::NewActivity>,
    ) -> StoreResult<()>;
    /// Journals a call that held nothing against a budget, already settled, with its activity,
    /// in one transaction.
    async fn record_call(
        &self,
        call: &NewLlmCall,
        outcome: &CallOutcome,
        activity: Option<&super::activity::NewActivity>,
    ) -> StoreResult<()>;
    /// The journaled call of a run's stage attempt with this number, if any.
    async fn run_call(
        &self,
        run: Uuid,
        stage: &str,
        attempt: i32,
        seq: i32,
    ) -> StoreResult<Option<LlmCall>>;
    /// A run's calls, oldest first.
    async fn run_calls(&self, run: Uuid) -> StoreResult<Vec<LlmCall>>;
    /// A run's totals per stage.
    async fn run_totals(&self, run: Uuid) -> StoreResult<Vec<CallTotals>>;

    /// Creates a run and its stages.
    async fn create_run(&self, new: &NewRun) -> StoreResult<()>;
    /// A run of a project the caller could see.
    async fn get_run(&self, project: &Project, id: Uuid) -> StoreResult<Option<PipelineRun>>;
    /// A run by id, for the engine and for telling its audience.
    async fn run_unscoped(&self, id: Uuid) -> StoreResult<Option<PipelineRun>>;
    /// A project's runs, newest first.
    async fn list_runs(&self, project: &Project, limit: u32) -> StoreResult<Vec<PipelineRun>>;
    /// A run's stages in definition order.
    async fn stages(&self, run: Uuid) -> StoreResult<Vec<StageRow>>;
    /// A run's artifacts.
    async fn artifacts(&self, run: Uuid) -> StoreResult<Vec<ArtifactMeta>>;
    /// One artifact with its content.
    async fn artifact(&self, run: Uuid, path: &str) -> StoreResult<Option<Artifact>>;
    /// Every artifact with its content (for the zip).
    async fn artifacts_with_content(&self, run: Uuid) -> StoreResult<Vec<Artifact>>;

    /// Claims up to `limit` runs to drive: queued ones, and running ones whose lease ran out.
    async fn claim_runs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PipelineRun>>;
    /// Extends a lease the owner holds: `None` when it no longer holds it, else whether
    /// someone asked to cancel the run.
    async fn renew_run_lease(
        &self,
        run: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<bool>>;
    /// Who may see a project's runs: its members.
    async fn project_audience(&self, project: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Gives up every lease `owner` holds: a node starting again under its old name takes
    /// back the runs it drove before it stopped.
    async fn release_all_runs(&self, owner: &str) -> StoreResult<u64>;
    /// Gives a lease up (on a clean stop), so another node may take the run at once.
    async fn release_run(&self, run: Uuid, owner: &str) -> StoreResult<()>;
    /// Writes one step of the engine; `false` (and nothing written) when `lease_owner` no
    /// longer holds the run.
    async fn apply_step(&self, step: &Step) -> StoreResult<bool>;
    /// Sets the generation status of a run's project.
    async fn set_run_project_generation(
        &self,
        run: Uuid,
        generation: fulcrum_protocol::kinds::ProjectGeneration,
    ) -> StoreResult<()>;
    /// Records a deployment (again: the same id changes nothing).
    async fn record_deployment(&self, d: &Deployment) -> StoreResult<()>;
    /// A project's newest deployments.
    async fn list_deployments(&self, project: Uuid, limit: u32) -> StoreResult<Vec<Deployment>>;
    /// Applies a person's action; `false` when the run's state does not allow it.
    async fn act_on_run(
        &self,
        run: Uuid,
        action: &RunAction,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}
