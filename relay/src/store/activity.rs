//! What AI activity tracking keeps: activities (one row per AI interaction, with the GenAI
//! facts of its call) and their daily rollups, written in the same transaction, so that a
//! report never reads the activities themselves.
//!
//! Activities are reached by their owner, or through the projects the caller may see (the
//! domain passes that list); nothing here decides who may see what.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{ActivityCategory, ActivitySource, CommitLinkReason};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreResult;

/// One file an activity changed, and the commit, where known.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct CodeChange {
    /// The path, relative to the repository.
    pub path: String,
    /// The commit that holds the change (a full or abbreviated SHA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The files an activity changed, stored as JSON.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct CodeChanges(pub Vec<CodeChange>);

impl TryFrom<String> for CodeChanges {
    type Error = serde_json::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Ok(Self(serde_json::from_str(&text)?))
    }
}

/// An activity to store.
#[derive(Debug, Clone)]
pub struct NewActivity {
    /// Its id.
    pub id: Uuid,
    /// The user it belongs to.
    pub owner_id: Uuid,
    /// The project it was for.
    pub project_id: Option<Uuid>,
    /// The reporting client's id for it (idempotency, per user).
    pub client_id: Option<String>,
    /// How it reached Fulcrum.
    pub source: ActivitySource,
    /// The tool that made it (`cursor`, `claude-code`, `fulcrum-pipeline`, …).
    pub tool: String,
    /// What it was for.
    pub category: Option<ActivityCategory>,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// `gen_ai.operation.name`.
    pub operation: Option<String>,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input tokens served from the provider's cache.
    pub cached_tokens: i64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
    /// Total latency, milliseconds.
    pub latency_ms: Option<i64>,
    /// Time to the first token, milliseconds.
    pub ttft_ms: Option<i64>,
    /// Why the answer ended.
    pub finish_reason: Option<String>,
    /// The conversation or session it belongs to.
    pub conversation_id: Option<String>,
    /// The prompt text (capped; absent where the project keeps no text).
    pub prompt: Option<String>,
    /// The response text (capped; absent where the project keeps no text).
    pub response: Option<String>,
    /// Files it changed.
    pub code_changes: CodeChanges,
    /// The relay's journaled call, for calls made through Fulcrum.
    pub call_id: Option<Uuid>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When Fulcrum stored it.
    pub created_at: DateTime<Utc>,
}

/// A stored activity.
#[derive(
    Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct Activity {
    /// Its id.
    pub id: Uuid,
    /// The user it belongs to.
    pub user_id: Uuid,
    /// The project it was for.
    pub project_id: Option<Uuid>,
    /// The reporting client's id for it.
    pub client_id: Option<String>,
    /// How it reached Fulcrum.
    #[sqlx(try_from = "String")]
    pub source: ActivitySource,
    /// The tool that made it.
    pub tool: String,
    /// What it was for.
    #[schema(value_type = Option<ActivityCategory>)]
    pub category: Option<String>,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// `gen_ai.operation.name`.
    pub operation: Option<String>,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input tokens served from the provider's cache.
    pub cached_tokens: i64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
    /// Total latency, milliseconds.
    pub latency_ms: Option<i64>,
    /// Time to the first token, milliseconds.
    pub ttft_ms: Option<i64>,
    /// Why the answer ended.
    pub finish_reason: Option<String>,
    /// The conversation or session it belongs to.
    pub conversation_id: Option<String>,
    /// The prompt text, where kept.
    pub prompt: Option<String>,
    /// The response text, where kept.
    pub response: Option<String>,
    /// Files it changed, and their commits where known.
    #[sqlx(try_from = "String")]
    pub code_changes: CodeChanges,
    /// The relay's journaled call, for calls made through Fulcrum.
    pub call_id: Option<Uuid>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When Fulcrum stored it.
    pub created_at: DateTime<Utc>,
}

/// A dimension a report groups by.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The day (UTC).
    Day,
    /// The project.
    Project,
    /// The user.
    User,
    /// The tool.
    Tool,
    /// The model.
    Model,
    /// The category.
    Category,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: &'static [Self] = &[
        Self::Day,
        Self::Project,
        Self::User,
        Self::Tool,
        Self::Model,
        Self::Category,
    ];

    /// Its rollup column.
    pub fn column(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Project => "project_id",
            Self::User => "owner_id",
            Self::Tool => "tool",
            Self::Model => "model",
            Self::Category => "category",
        }
    }

    /// Its name in a report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Project => "project",
            Self::User => "user",
            Self::Tool => "tool",
            Self::Model => "model",
            Self::Category => "category",
        }
    }

    /// The dimension of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.as_str() == name)
    }
}

/// Activities, as a tool's structured result.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActivityList {
    /// The activities, newest first.
    pub activities: Vec<Activity>,
}

/// Which rollups a report reads.
#[derive(Debug, Clone, Default)]
pub struct RollupFilter {
    /// First day, `YYYY-MM-DD`, inclusive.
    pub from_day: String,
    /// Last day, inclusive.
    pub to_day: String,
    /// Whose: rows of this user, or of one of these projects.
    pub user: Uuid,
    /// The projects the caller may see.
    pub projects: Vec<Uuid>,
    /// Only this project.
    pub project: Option<Uuid>,
    /// Only this user's.
    pub only_user: Option<Uuid>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Grouped by these.
    pub group_by: Vec<Dimension>,
}

/// One group of a report.
#[derive(Debug, Clone, Default)]
pub struct RollupRow {
    /// The group's values, in the order of [`RollupFilter::group_by`] (ids as text; the nil id
    /// for "no project").
    pub key: Vec<String>,
    /// Activities per latency bucket ([`latency_bucket`]).
    pub latency: [i64; LATENCY_BUCKETS],
    /// Activities.
    pub activities: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cached input tokens.
    pub cached_tokens: i64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
}

/// Which activities a list returns.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Whose: this user's, or of one of these projects.
    pub user: Uuid,
    /// The projects the caller may see.
    pub projects: Vec<Uuid>,
    /// Only this project.
    pub project: Option<Uuid>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only those that changed code.
    pub with_changes: bool,
    /// Only those before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only those at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// Latency buckets kept per rollup row (its columns `lat00` to `lat31`).
pub const LATENCY_BUCKETS: usize = 32;
/// Buckets per doubling of latency: each bucket is about 41% wide, so a percentile read from
/// the middle of its bucket is within about 20%.
const BUCKETS_PER_DOUBLING: f64 = 2.0;
/// The highest bucket (46 s and over).
const MAX_BUCKET: i32 = LATENCY_BUCKETS as i32 - 1;

/// The latency bucket of `ms`: -1 for none.
pub fn latency_bucket(ms: Option<i64>) -> i32 {
    match ms {
        None => -1,
        Some(ms) => {
            let b = ((ms.max(0) as f64 + 1.0).log2() * BUCKETS_PER_DOUBLING).floor() as i32;
            b.clamp(0, MAX_BUCKET)
        }
    }
}

/// The latency a bucket stands for: the middle of its range, milliseconds.
pub fn bucket_latency(bucket: i32) -> f64 {
    ((f64::from(bucket) + 0.5) / BUCKETS_PER_DOUBLING).exp2() - 1.0
}

/// The day an activity counts on.
pub fn day_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The key of the rollup row an activity adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollupKey {
    /// The day.
    pub day: String,
    /// The user.
    pub owner_id: Uuid,
    /// The project (the nil id for none).
    pub project_id: Uuid,
    /// The tool.
    pub tool: String,
    /// The model (empty when unknown).
    pub model: String,
    /// The category (empty for none).
    pub category: String,
}

/// What activities add to one rollup row.
#[derive(Debug, Clone, Copy, Default)]
pub struct RollupSums {
    /// Activities per latency bucket.
    pub latency: [i64; LATENCY_BUCKETS],
    /// Activities.
    pub activities: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cached input tokens.
    pub cached_tokens: i64,
    /// Cost, micro-dollars.
    pub cost_micros: i64,
}

/// The rollup rows `activities` add to, with what each adds.
pub fn rollups<'a>(
    activities: impl Iterator<Item = &'a NewActivity>,
) -> Vec<(RollupKey, RollupSums)> {
    let mut out: std::collections::HashMap<RollupKey, RollupSums> = Default::default();
    for a in activities {
        let key = RollupKey {
            day: day_of(a.occurred_at),
            owner_id: a.owner_id,
            project_id: a.project_id.unwrap_or(Uuid::nil()),
            tool: a.tool.clone(),
            model: a.model.clone().unwrap_or_default(),
            category: a
                .category
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
        };
        let s = out.entry(key).or_default();
        if let Ok(b) = usize::try_from(latency_bucket(a.latency_ms)) {
            s.latency[b] += 1;
        }
        s.activities += 1;
        s.input_tokens = s.input_tokens.saturating_add(a.input_tokens);
        s.output_tokens = s.output_tokens.saturating_add(a.output_tokens);
        s.cached_tokens = s.cached_tokens.saturating_add(a.cached_tokens);
        s.cost_micros = s.cost_micros.saturating_add(a.cost_micros);
    }
    // In key order: concurrent batches then take the rows' locks in the same order (PostgreSQL
    // would otherwise find them deadlocked).
    let mut rows: Vec<(RollupKey, RollupSums)> = out.into_iter().collect();
    rows.sort_by(|(a, _), (b, _)| {
        (
            a.owner_id,
            &a.day,
            a.project_id,
            &a.tool,
            &a.model,
            &a.category,
        )
            .cmp(&(
                b.owner_id,
                &b.day,
                b.project_id,
                &b.tool,
                &b.model,
                &b.category,
            ))
    });
    rows
}

/// A usage counter to store.
#[derive(Debug, Clone)]
pub struct NewCounter {
    /// Its series.
    pub series: String,
    /// The user.
    pub owner_id: Uuid,
    /// The project (the nil id for none).
    pub project_id: Uuid,
    /// The tool.
    pub tool: String,
    /// The model.
    pub model: String,
    /// The metric.
    pub metric: String,
    /// What it counts.
    pub kind: String,
    /// The value.
    pub value: f64,
    /// Whether the value adds to the series (else replaces it).
    pub delta: bool,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Usage counters summed per tool, model, metric and kind.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UsageCounter {
    /// The tool.
    pub tool: String,
    /// The model (empty when the metric named none).
    pub model: String,
    /// The metric.
    pub metric: String,
    /// What it counts (`input`, `output`, … or empty).
    pub kind: String,
    /// The sum over the series.
    pub value: f64,
    /// Series summed.
    pub series: i64,
}

/// A commit linked to an activity.
#[derive(Debug, Clone)]
pub struct CommitLink {
    /// The activity.
    pub activity_id: Uuid,
    /// The commit.
    pub commit_sha: String,
    /// The project.
    pub project_id: Uuid,
    /// The repository, relative to the workspace root.
    pub repo: String,
    /// The commit's first line.
    pub summary: String,
    /// Why.
    pub reason: CommitLinkReason,
    /// When.
    pub linked_at: DateTime<Utc>,
}

/// A commit of a project, with the AI activities linked to it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AiCommit {
    /// The commit.
    pub sha: String,
    /// The repository, relative to the workspace root.
    pub repo: String,
    /// Its first line.
    pub summary: String,
    /// When it was linked (about when it was made).
    pub linked_at: DateTime<Utc>,
    /// The activities.
    pub activities: Vec<LinkedActivity>,
}

/// An activity linked to a commit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkedActivity {
    /// The activity.
    pub id: Uuid,
    /// Its tool.
    pub tool: String,
    /// Its model.
    pub model: Option<String>,
    /// Why it is linked.
    pub reason: CommitLinkReason,
}

/// Activities and their rollups, for both databases.
#[async_trait]
pub trait ActivityStore: Send + Sync {
    /// Stores `activities` and adds them to the rollups in one transaction: all or none. An
    /// activity whose client id its user already used is skipped; the answer says, for each,
    /// whether it was stored.
    async fn insert_activities(&self, activities: &[NewActivity]) -> StoreResult<Vec<bool>>;
    /// Rollup rows matching `filter`, summed per group and latency bucket.
    async fn rollup_report(&self, filter: &RollupFilter) -> StoreResult<Vec<RollupRow>>;
    /// Activities matching `filter`, newest first.
    async fn list_activities(&self, filter: &ActivityFilter) -> StoreResult<Vec<Activity>>;
    /// Stores counter points in one transaction.
    async fn add_counters(&self, points: &[NewCounter]) -> StoreResult<()>;
    /// Counters of `user` or of `projects` (only `project`'s when given), summed.
    async fn usage_counters(
        &self,
        user: Uuid,
        projects: &[Uuid],
        project: Option<Uuid>,
    ) -> StoreResult<Vec<UsageCounter>>;
    /// The owner's activities in `projects` since `since` linked to no commit yet (at most 200).
    async fn unlinked_activities(
        &self,
        owner: Uuid,
        projects: &[Uuid],
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<Activity>>;
    /// The owner's activities with these ids or client ids.
    async fn activities_named(&self, owner: Uuid, names: &[String]) -> StoreResult<Vec<Activity>>;
    /// Stores links (one already there is kept) and the activities' new code changes, in one
    /// transaction.
    async fn link_commits(
        &self,
        links: &[CommitLink],
        changes: &[(Uuid, CodeChanges)],
    ) -> StoreResult<()>;
    /// A project's commits linked to activities, newest first.
    async fn ai_commits(&self, project: Uuid, limit: u32) -> StoreResult<Vec<AiCommit>>;
    /// The projects a workspace belongs to.
    async fn workspace_project_ids(&self, workspace: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Those of `projects` that keep no prompt and response text.
    async fn projects_without_text(&self, projects: &[Uuid]) -> StoreResult<Vec<Uuid>>;
    /// Whether a project keeps the prompt and response text of its activities.
    async fn project_captures_text(&self, project: Uuid) -> StoreResult<bool>;
    /// Sets whether a project keeps the text of its activities.
    async fn set_project_captures_text(&self, project: Uuid, keep: bool) -> StoreResult<()>;
    /// Records that budget `id` raised `level` (80 or 100) in `period`, with its webhook
    /// event `event` in the same transaction (when an endpoint may want it); false, and
    /// nothing written, when it already had (so the alert is raised once).
    async fn raise_budget_alert(
        &self,
        id: Uuid,
        level: i32,
        period: &str,
        event: &super::webhooks::WebhookEvent,
    ) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_their_middles_are_close() {
        let mut last = -1;
        for ms in [0, 1, 2, 5, 10, 99, 100, 1000, 12_345, 600_000] {
            let b = latency_bucket(Some(ms));
            assert!(b >= last, "{ms}");
            last = b;
            let mid = bucket_latency(b);
            let err = (mid - ms as f64).abs() / (ms as f64 + 1.0);
            assert!(err < 0.21 || ms >= 46_000, "{ms} → {b} → {mid}");
        }
        assert_eq!(latency_bucket(None), -1);
        assert_eq!(latency_bucket(Some(i64::MAX)), MAX_BUCKET);
        assert_eq!(latency_bucket(Some(-5)), 0);
    }
}
