//! AI activity: every AI interaction, one model whatever produced it. Outside tools report
//! theirs ([`Activities::ingest`], the REST batch door with an `ingest` token); calls made
//! through the relay (the LLM gateway, pipelines, the assistant) are recorded by the budget
//! module as they settle ([`relay_activity`]). Reports read the daily rollups kept beside the
//! activities ([`report`]).
//!
//! Who sees what: a user sees their own activities and those of the projects they are a
//! member of (and their token reaches). Prompt and response text are kept unless the project
//! turned them off, each capped at [`MAX_TEXT`] bytes.

pub mod commits;
pub mod otlp;
pub mod report;

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{ActivityCategory, ActivitySource, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, DomainError, DomainResult, projects::Projects};
use crate::{
    llm::{Usage, prices::Prices},
    metrics::Metrics,
    store::{
        DynStore, Scope,
        activity::{Activity, ActivityFilter, CodeChange, CodeChanges, NewActivity},
    },
};

/// Most bytes of a prompt or a response kept. Ingestion refuses more; the relay's own calls
/// keep the first this many.
pub const MAX_TEXT: usize = 64 << 10;
/// Most activities in one batch.
pub const MAX_BATCH: usize = 1000;
/// Largest batch body.
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Most files one activity names.
const MAX_CHANGES: usize = 1000;
/// Longest short text (tool, model, ids).
const MAX_SHORT: usize = 200;
/// Most tokens of one kind in one activity.
const MAX_TOKENS: u64 = 1 << 40;
/// Largest cost of one activity, dollars.
const MAX_COST_USD: f64 = 100_000.0;
/// Longest latency, milliseconds (a week).
const MAX_LATENCY_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most activities a list returns.
pub const MAX_LIST: u32 = 500;

/// An activity as a tool reports it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    /// The tool's own id for it: a second report with the same id (by the same user) is a
    /// duplicate and changes nothing.
    #[serde(default)]
    pub id: Option<String>,
    /// The project it was for [default: the token's project, if it is limited to one].
    #[serde(default)]
    pub project_id: Option<Uuid>,
    /// The tool: `chatgpt`, `claude`, `copilot`, `cursor`, `claude-code`, `codex`, …
    pub tool: String,
    /// What it was for.
    #[serde(default)]
    pub category: Option<ActivityCategory>,
    /// The prompt (at most 64 KiB).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The response (at most 64 KiB).
    #[serde(default)]
    pub response: Option<String>,
    /// Files it changed, with their commits where known.
    #[serde(default)]
    pub code_changes: Vec<CodeChange>,
    /// The provider (`openai`, `anthropic`, …).
    #[serde(default)]
    pub provider: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// The operation (`chat`, `text_completion`, `embeddings`, …).
    #[serde(default)]
    pub operation: Option<String>,
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Input tokens served from the provider's cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    /// What it cost, US dollars [default: from the relay's price table, by model].
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Total latency, milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Time to the first token, milliseconds.
    #[serde(default)]
    pub ttft_ms: Option<u64>,
    /// Why the answer ended.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The conversation or session it belongs to.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// When it happened [default: now].
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// A batch of activities.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    /// At most 1000 activities, each an `ActivityInput` (see the schemas), checked on its own:
    /// one that does not fit is rejected in the answer, the others are stored.
    #[schema(value_type = Vec<Object>)]
    pub activities: Vec<serde_json::Value>,
}

/// What became of one reported activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Stored.
    Created,
    /// Its id was reported before: nothing changed.
    Duplicate,
    /// Refused (see its error): nothing stored.
    Rejected,
}

/// One item of a batch's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestItem {
    /// Its place in the batch, from 0.
    pub index: usize,
    /// The tool's id for it, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What became of it.
    pub status: ItemStatus,
    /// The stored activity's id (created only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<Uuid>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A batch's answer, item by item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResult {
    /// Stored.
    pub created: usize,
    /// Already reported.
    pub duplicates: usize,
    /// Refused.
    pub rejected: usize,
    /// Every item, in order.
    pub items: Vec<IngestItem>,
}

/// Which activities to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only this project's.
    #[serde(default)]
    pub project: Option<Uuid>,
    /// Only this tool's.
    #[serde(default)]
    pub tool: Option<String>,
    /// Only those that changed code.
    #[serde(default)]
    pub with_changes: Option<bool>,
    /// Only those before this time (for the next page).
    #[serde(default)]
    pub before: Option<DateTime<Utc>>,
    /// At most this many (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// What became of an OTLP export.
#[derive(Debug, Default, Serialize)]
pub struct OtlpOutcome {
    /// Records stored (activities, or counter points).
    pub accepted: usize,
    /// Records stored before (an exporter's retry).
    pub duplicates: usize,
    /// Records refused.
    pub rejected: usize,
    /// The first refusal's reason.
    pub error: Option<String>,
}

impl OtlpOutcome {
    fn reject(&mut self, e: String) {
        self.rejected += 1;
        self.error.get_or_insert(e);
    }
}

/// A project's AI settings.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AiSettings {
    /// Whether activities in the project keep their prompt and response text.
    pub capture_text: bool,
}

/// What every item of a batch is checked against, read once per batch.
#[derive(Clone, Copy)]
struct Batch<'a> {
    projects: &'a HashSet<Uuid>,
    text_off: &'a HashSet<Uuid>,
    now: DateTime<Utc>,
    prices: &'a crate::llm::PriceTable,
}

/// AI activities.
pub struct Activities {
    store: DynStore,
    prices: Arc<Prices>,
    projects: Arc<Projects>,
    metrics: Arc<Metrics>,
    workspaces: super::workspaces::Workspaces,
    bus: crate::bus::DynBus,
}

fn short(what: &str, v: Option<String>) -> Result<Option<String>, String> {
    match v {
        Some(s) if s.len() > MAX_SHORT || s.chars().any(char::is_control) => Err(format!(
            "{what} is at most {MAX_SHORT} bytes without control characters"
        )),
        Some(s) if s.is_empty() => Ok(None),
        v => Ok(v),
    }
}

fn tokens(what: &str, v: Option<u64>) -> Result<i64, String> {
    match v {
        Some(n) if n > MAX_TOKENS => Err(format!("{what} is at most {MAX_TOKENS}")),
        Some(n) => Ok(n as i64),
        None => Ok(0),
    }
}

fn millis(what: &str, v: Option<u64>) -> Result<Option<i64>, String> {
    match v {
        Some(n) if n > MAX_LATENCY_MS => Err(format!("{what} is at most {MAX_LATENCY_MS}")),
        v => Ok(v.map(|n| n as i64)),
    }
}

fn text(what: &str, v: Option<String>) -> Result<Option<String>, String> {
    match v {
        Some(s) if s.len() > MAX_TEXT => Err(format!(
            "{what} is {} bytes, over the cap of {MAX_TEXT}",
            s.len()
        )),
        v => Ok(v),
    }
}

/// A tool's name, normalised: lower case, 1 to 64 of `a-z 0-9 . _ - /`.
pub fn tool_name(tool: &str) -> Result<String, String> {
    let t = tool.trim().to_ascii_lowercase();
    if t.is_empty()
        || t.len() > 64
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    {
        return Err("tool is 1 to 64 of a-z, 0-9, '.', '_', '-' and '/'".into());
    }
    Ok(t)
}

fn changes(list: Vec<CodeChange>) -> Result<CodeChanges, String> {
    if list.len() > MAX_CHANGES {
        return Err(format!("code_changes holds at most {MAX_CHANGES} files"));
    }
    for c in &list {
        if c.path.is_empty() || c.path.len() > 4096 || c.path.chars().any(char::is_control) {
            return Err(
                "a code change's path is 1 to 4096 bytes without control characters".into(),
            );
        }
        if let Some(sha) = &c.commit
            && !(4..=64).contains(&sha.len())
        {
            return Err("a code change's commit is 4 to 64 hexadecimal digits".into());
        }
        if let Some(sha) = &c.commit
            && !sha.chars().all(|ch| ch.is_ascii_hexdigit())
        {
            return Err("a code change's commit is 4 to 64 hexadecimal digits".into());
        }
    }
    Ok(CodeChanges(list))
}

/// Text kept for a relay call: the first [`MAX_TEXT`] bytes (at a character boundary).
pub fn capped(text: &str) -> String {
    fulcrum_protocol::tools::prefix_within(text, MAX_TEXT).to_owned()
}

/// What the relay knows of one of its own calls, for its activity.
#[derive(Debug, Clone)]
pub struct RelayCall {
    /// The journaled call.
    pub call_id: Uuid,
    /// The user it was for.
    pub user: Uuid,
    /// Its project.
    pub project: Option<Uuid>,
    /// Which door made it.
    pub source: ActivitySource,
    /// The tool (`fulcrum-pipeline`, `fulcrum-assistant`, or the gateway's caller).
    pub tool: String,
    /// What it was for.
    pub category: Option<ActivityCategory>,
    /// `gen_ai.provider.name`.
    pub provider: String,
    /// The model asked for.
    pub model: String,
    /// The prompt's text (capped when kept).
    pub prompt: Option<String>,
    /// The conversation it belongs to.
    pub conversation_id: Option<String>,
}

/// How a relay call ended, for its activity.
#[derive(Debug, Clone, Default)]
pub struct RelayOutcome {
    /// The model that answered.
    pub model: Option<String>,
    /// Tokens.
    pub usage: Usage,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
    /// Total latency.
    pub latency_ms: Option<i64>,
    /// Time to the first token.
    pub ttft_ms: Option<i64>,
    /// Why the answer ended.
    pub finish_reason: Option<String>,
    /// The answer's text.
    pub response: Option<String>,
}

/// The activity of one of the relay's own calls; its text kept only where the project keeps
/// text.
pub async fn relay_activity(
    store: &DynStore,
    call: &RelayCall,
    outcome: &RelayOutcome,
) -> DomainResult<NewActivity> {
    let keep = match call.project {
        Some(p) => store.project_captures_text(p).await?,
        None => true,
    };
    let now = Utc::now();
    Ok(NewActivity {
        id: Uuid::now_v7(),
        owner_id: call.user,
        project_id: call.project,
        client_id: None,
        source: call.source,
        tool: call.tool.clone(),
        category: call.category,
        provider: Some(call.provider.clone()),
        model: outcome.model.clone().or_else(|| Some(call.model.clone())),
        operation: Some("chat".into()),
        input_tokens: outcome.usage.input_tokens as i64,
        output_tokens: outcome.usage.output_tokens as i64,
        cached_tokens: outcome.usage.cached_tokens as i64,
        cost_micros: outcome.cost_micros,
        latency_ms: outcome.latency_ms,
        ttft_ms: outcome.ttft_ms,
        finish_reason: outcome.finish_reason.clone(),
        conversation_id: call.conversation_id.clone(),
        prompt: keep.then(|| call.prompt.as_deref().map(capped)).flatten(),
        response: keep
            .then(|| outcome.response.as_deref().map(capped))
            .flatten(),
        code_changes: CodeChanges::default(),
        call_id: Some(call.call_id),
        occurred_at: now,
        created_at: now,
    })
}

impl Activities {
    /// Activities in `store`, priced by `prices`, visible through `projects`; commits read
    /// through `workspaces`.
    pub fn new(
        store: DynStore,
        prices: Arc<Prices>,
        projects: Arc<Projects>,
        metrics: Arc<Metrics>,
        workspaces: super::workspaces::Workspaces,
        bus: crate::bus::DynBus,
    ) -> Self {
        Self {
            store,
            prices,
            projects,
            metrics,
            workspaces,
            bus,
        }
    }

    /// The ids of the projects the caller may see (whatever its scopes).
    async fn project_ids(&self, caller: Caller) -> DomainResult<Vec<Uuid>> {
        Ok(self
            .projects
            .reachable(caller)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect())
    }

    /// Checks one reported activity and makes it ready to store.
    fn checked(
        &self,
        caller: Caller,
        input: ActivityInput,
        batch: &Batch<'_>,
        source: ActivitySource,
    ) -> Result<NewActivity, String> {
        let Batch {
            projects,
            text_off,
            now,
            prices,
        } = *batch;
        let project = match (input.project_id, caller.grant.limit) {
            (None, super::Limit::Project(p)) => Some(p),
            (Some(p), super::Limit::Project(l)) if p != l => {
                return Err("this token is limited to another project".into());
            }
            (p, _) => p,
        };
        if let Some(p) = project
            && !projects.contains(&p)
        {
            return Err("project not found".into());
        }
        let client_id = short("id", input.id)?;
        let model = short("model", input.model)?;
        let usage = Usage {
            input_tokens: tokens("input_tokens", input.input_tokens)? as u64,
            output_tokens: tokens("output_tokens", input.output_tokens)? as u64,
            cached_tokens: tokens("cached_tokens", input.cached_tokens)? as u64,
            estimated: false,
        };
        let cost_micros = match input.cost_usd {
            Some(c) if !(c.is_finite() && (0.0..=MAX_COST_USD).contains(&c)) => {
                return Err(format!("cost_usd is 0 to {MAX_COST_USD}"));
            }
            Some(c) => super::budgets::usd_to_micros(c),
            None => model
                .as_deref()
                .map_or(0, |m| prices.cost_micros(m, &usage)),
        };
        let occurred_at = input.timestamp.unwrap_or(now);
        if occurred_at > now + chrono::Duration::days(1)
            || occurred_at < now - chrono::Duration::days(3660)
        {
            return Err("timestamp is within the last ten years and not in the future".into());
        }
        let keep = project.is_none_or(|p| !text_off.contains(&p));
        let prompt = text("prompt", input.prompt)?;
        let response = text("response", input.response)?;
        Ok(NewActivity {
            id: Uuid::now_v7(),
            owner_id: caller.user,
            project_id: project,
            client_id,
            source,
            tool: tool_name(&input.tool)?,
            category: input.category,
            provider: short("provider", input.provider)?,
            model,
            operation: short("operation", input.operation)?,
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cost_micros,
            latency_ms: millis("latency_ms", input.latency_ms)?,
            ttft_ms: millis("ttft_ms", input.ttft_ms)?,
            finish_reason: short("finish_reason", input.finish_reason)?,
            conversation_id: short("conversation_id", input.conversation_id)?,
            prompt: prompt.filter(|_| keep),
            response: response.filter(|_| keep),
            code_changes: changes(input.code_changes)?,
            call_id: None,
            occurred_at,
            created_at: now,
        })
    }

    /// Stores a batch a tool reported, item by item: each is checked on its own and the valid
    /// ones are stored together (all of them or, if the database fails, none); one already
    /// reported (by its id) is a duplicate.
    pub async fn ingest(&self, caller: Caller, batch: IngestBatch) -> DomainResult<IngestResult> {
        caller.need(Scope::Ingest)?;
        if batch.activities.len() > MAX_BATCH {
            return Err(DomainError::Invalid(format!(
                "a batch holds at most {MAX_BATCH} activities; send {} in several",
                batch.activities.len()
            )));
        }
        if let Some(i) = batch.activities.iter().position(|v| !v.is_object()) {
            return Err(DomainError::Invalid(format!(
                "activities[{i}] is not a JSON object"
            )));
        }
        let (named, text_off) = self.ingest_scope(caller).await?;
        let projects: HashSet<Uuid> = named.iter().map(|(id, _)| *id).collect();
        let now = Utc::now();
        let prices = self.prices.table();
        let batch_scope = Batch {
            projects: &projects,
            text_off: &text_off,
            now,
            prices: &prices,
        };
        let mut items = Vec::with_capacity(batch.activities.len());
        let mut ready = Vec::new();
        for (index, value) in batch.activities.into_iter().enumerate() {
            let id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            let checked = serde_json::from_value::<ActivityInput>(value)
                .map_err(|e| e.to_string())
                .and_then(|input| self.checked(caller, input, &batch_scope, ActivitySource::Api));
            match checked {
                Ok(a) => {
                    items.push(IngestItem {
                        index,
                        id,
                        status: ItemStatus::Created,
                        activity_id: Some(a.id),
                        error: None,
                    });
                    ready.push(a);
                }
                Err(error) => items.push(IngestItem {
                    index,
                    id,
                    status: ItemStatus::Rejected,
                    activity_id: None,
                    error: Some(error),
                }),
            }
        }
        let created = if ready.is_empty() {
            Vec::new()
        } else {
            self.store.insert_activities(&ready).await?
        };
        let mut stored = HashSet::new();
        for (a, new) in ready.iter().zip(&created) {
            if *new {
                stored.insert(a.id);
            }
        }
        for item in &mut items {
            if let Some(id) = item.activity_id
                && !stored.contains(&id)
            {
                item.status = ItemStatus::Duplicate;
                item.activity_id = None;
            }
        }
        let count = |s| items.iter().filter(|i| i.status == s).count();
        let result = IngestResult {
            created: count(ItemStatus::Created),
            duplicates: count(ItemStatus::Duplicate),
            rejected: count(ItemStatus::Rejected),
            items,
        };
        self.metrics
            .activities("api", "created", result.created as u64);
        self.metrics
            .activities("api", "duplicate", result.duplicates as u64);
        self.metrics
            .activities("api", "rejected", result.rejected as u64);
        Ok(result)
    }

    /// The projects an ingesting caller reaches (by id and name) and those keeping no text.
    async fn ingest_scope(
        &self,
        caller: Caller,
    ) -> DomainResult<(Vec<(Uuid, String)>, HashSet<Uuid>)> {
        let reachable = self.projects.reachable(caller).await?;
        let ids: Vec<Uuid> = reachable.iter().map(|p| p.id).collect();
        let text_off = self
            .store
            .projects_without_text(&ids)
            .await?
            .into_iter()
            .collect();
        Ok((
            reachable.into_iter().map(|p| (p.id, p.name)).collect(),
            text_off,
        ))
    }

    /// Takes an OTLP export: GenAI spans and log records become activities (their text capped
    /// at [`MAX_TEXT`], not refused: an exporter cannot shorten it), metrics usage counters.
    /// Records that cannot be stored are counted as rejected, with the first reason.
    pub async fn ingest_otlp(
        &self,
        caller: Caller,
        signal: otlp::Signal,
        encoding: otlp::Encoding,
        body: &[u8],
    ) -> DomainResult<OtlpOutcome> {
        caller.need(Scope::Ingest)?;
        if body.len() > otlp::MAX_BODY {
            return Err(DomainError::Invalid(format!(
                "an OTLP request is at most {} bytes",
                otlp::MAX_BODY
            )));
        }
        let (named, text_off) = self.ingest_scope(caller).await?;
        let projects: HashSet<Uuid> = named.iter().map(|(id, _)| *id).collect();
        // `fulcrum.project` names a project by id or name; unknown ones are refused.
        let project = |asked: Option<&str>| -> Result<Option<Uuid>, String> {
            match asked {
                None => Ok(None),
                Some(a) => named
                    .iter()
                    .find(|(id, name)| id.to_string() == a || name == a)
                    .map(|(id, _)| Some(*id))
                    .ok_or_else(|| format!("project {a:?} not found")),
            }
        };
        let now = Utc::now();
        let mut out = OtlpOutcome::default();
        let invalid = |e: otlp::OtlpError| DomainError::Invalid(e.to_string());
        if signal == otlp::Signal::Metrics {
            let points = otlp::metrics(encoding, body).map_err(invalid)?;
            let mut keep = Vec::with_capacity(points.len());
            for p in points {
                let pid = match project(p.project.as_deref()) {
                    Ok(pid) => pid,
                    Err(e) => {
                        out.reject(e);
                        continue;
                    }
                };
                let pid = match (pid, caller.grant.limit) {
                    (None, super::Limit::Project(l)) => Some(l),
                    (Some(p), super::Limit::Project(l)) if p != l => {
                        out.reject("this token is limited to another project".into());
                        continue;
                    }
                    (p, _) => p,
                };
                keep.push(crate::store::activity::NewCounter {
                    series: p.series,
                    owner_id: caller.user,
                    project_id: pid.unwrap_or(Uuid::nil()),
                    tool: tool_name(&p.tool).unwrap_or_else(|_| "otlp".into()),
                    model: p.model.chars().take(MAX_SHORT).collect(),
                    metric: p.metric.chars().take(MAX_SHORT).collect(),
                    kind: p.kind.chars().take(MAX_SHORT).collect(),
                    value: p.value,
                    delta: p.delta,
                    now,
                });
            }
            out.accepted = keep.len();
            self.store.add_counters(&keep).await?;
            self.metrics
                .activities("otlp", "counter", keep.len() as u64);
            return Ok(out);
        }
        let records = match signal {
            otlp::Signal::Traces => otlp::traces(encoding, body),
            _ => otlp::logs(encoding, body),
        }
        .map_err(invalid)?;
        let prices = self.prices.table();
        let batch_scope = Batch {
            projects: &projects,
            text_off: &text_off,
            now,
            prices: &prices,
        };
        let mut ready = Vec::with_capacity(records.len());
        for r in records {
            let checked = project(r.project.as_deref()).and_then(|project_id| {
                let category = match r.category.as_deref() {
                    None => None,
                    Some(c) => Some(ActivityCategory::parse(c).ok_or_else(|| {
                        format!(
                            "fulcrum.category {c:?} is not feature, bugfix, refactor, docs or test"
                        )
                    })?),
                };
                let input = ActivityInput {
                    id: Some(r.client_id.chars().take(MAX_SHORT).collect()),
                    project_id,
                    tool: tool_name(&r.tool).unwrap_or_else(|_| "otlp".into()),
                    category,
                    prompt: r.prompt.as_deref().map(capped),
                    response: r.response.as_deref().map(capped),
                    code_changes: Vec::new(),
                    provider: r.provider.map(|p| p.chars().take(MAX_SHORT).collect()),
                    model: r.model.map(|p| p.chars().take(MAX_SHORT).collect()),
                    operation: r.operation.map(|p| p.chars().take(MAX_SHORT).collect()),
                    input_tokens: Some(r.input_tokens),
                    output_tokens: Some(r.output_tokens),
                    cached_tokens: Some(r.cached_tokens),
                    cost_usd: r.cost_usd,
                    latency_ms: r.latency_ms,
                    ttft_ms: None,
                    finish_reason: r.finish_reason.map(|p| p.chars().take(MAX_SHORT).collect()),
                    conversation_id: r
                        .conversation_id
                        .map(|p| p.chars().take(MAX_SHORT).collect()),
                    timestamp: r.occurred_at,
                };
                self.checked(caller, input, &batch_scope, ActivitySource::Otlp)
            });
            match checked {
                Ok(a) => ready.push(a),
                Err(e) => out.reject(e),
            }
        }
        let created = if ready.is_empty() {
            Vec::new()
        } else {
            self.store.insert_activities(&ready).await?
        };
        out.accepted = created.iter().filter(|c| **c).count();
        out.duplicates = created.len() - out.accepted;
        self.metrics
            .activities("otlp", "created", out.accepted as u64);
        self.metrics
            .activities("otlp", "duplicate", out.duplicates as u64);
        self.metrics
            .activities("otlp", "rejected", out.rejected as u64);
        Ok(out)
    }

    /// Usage counters from OTLP metrics the caller may see, summed per tool, model, metric and
    /// kind.
    pub async fn usage(
        &self,
        caller: Caller,
        project: Option<Uuid>,
    ) -> DomainResult<Vec<crate::store::activity::UsageCounter>> {
        caller.need(Scope::Read)?;
        let projects = self.project_ids(caller).await?;
        if let Some(p) = project
            && !projects.contains(&p)
        {
            return Err(DomainError::NotFound("project"));
        }
        let project = match caller.grant.limit {
            super::Limit::Project(p) => Some(p),
            _ => project,
        };
        let user = if caller.grant.limit == super::Limit::None {
            caller.user
        } else {
            Uuid::nil()
        };
        Ok(self.store.usage_counters(user, &projects, project).await?)
    }

    /// Activities the caller may see, newest first.
    pub async fn list(&self, caller: Caller, q: ActivityQuery) -> DomainResult<Vec<Activity>> {
        caller.need(Scope::Read)?;
        if q.limit.is_some_and(|l| !(1..=MAX_LIST).contains(&l)) {
            return Err(DomainError::Invalid(format!("limit is 1 to {MAX_LIST}")));
        }
        let projects = self.project_ids(caller).await?;
        if let Some(p) = q.project
            && !projects.contains(&p)
        {
            return Err(DomainError::NotFound("project"));
        }
        let mut filter = ActivityFilter {
            user: caller.user,
            projects,
            project: q.project,
            tool: q.tool.map(|t| t.trim().to_ascii_lowercase()),
            with_changes: q.with_changes.unwrap_or(false),
            before: q.before,
            since: None,
            limit: q.limit.unwrap_or(50),
        };
        // A token limited to one project sees that project's activities only.
        if let super::Limit::Project(p) = caller.grant.limit {
            filter.project = Some(p);
        }
        if caller.grant.limit != super::Limit::None && filter.project.is_none() {
            filter.user = Uuid::nil();
        }
        Ok(self.store.list_activities(&filter).await?)
    }

    /// A project's AI settings.
    pub async fn settings(&self, caller: Caller, project: Uuid) -> DomainResult<AiSettings> {
        let p = self.projects.visible(caller, project).await?;
        Ok(AiSettings {
            capture_text: self.store.project_captures_text(p.id).await?,
        })
    }

    /// Changes a project's AI settings (its owners and maintainers).
    pub async fn set_settings(
        &self,
        caller: Caller,
        project: Uuid,
        settings: AiSettings,
    ) -> DomainResult<AiSettings> {
        caller.need(Scope::Write)?;
        let p = self
            .projects
            .managed(
                caller,
                project,
                &[Role::Owner, Role::Maintainer],
                "change its AI settings",
            )
            .await?;
        self.store
            .set_project_captures_text(p.id, settings.capture_text)
            .await?;
        super::audit::record(super::audit::Record {
            caller,
            action: "project.ai_settings",
            subject: p.id,
        });
        Ok(settings)
    }
}
