//! The SQL behind [`ActivityStore`], written once for SQLite and PostgreSQL. Batches are
//! written as multi-row statements (a round trip per few hundred activities, not per one), and
//! their rollups are summed in memory first, so a batch adds one upsert per rollup row.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreResult,
    activity::{
        Activity, ActivityFilter, ActivityStore, AiCommit, CodeChanges, CommitLink,
        LATENCY_BUCKETS, LinkedActivity, NewActivity, NewCounter, RollupFilter, RollupRow,
        UsageCounter, rollups,
    },
};

/// Activities per INSERT statement (24 parameters each, under both databases' limits).
const INSERT_CHUNK: usize = 400;
/// Rollup rows per upsert statement (43 parameters each).
const ROLLUP_CHUNK: usize = 300;

/// The latency columns of `ai_rollups`, comma-separated.
fn latency_columns() -> String {
    (0..LATENCY_BUCKETS)
        .map(|i| format!("lat{i:02}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const ACTIVITY_COLUMNS: &str = "id, owner_id AS user_id, project_id, client_id, source, tool, \
    category, provider, model, operation, input_tokens, output_tokens, cached_tokens, \
    cost_micros, latency_ms, ttft_ms, finish_reason, conversation_id, prompt, response, \
    code_changes, call_id, occurred_at, created_at";

/// Stamps out an [`ActivityStore`] implementation for one store over database `$db`.
macro_rules! sql_activity_store {
    ($name:ident, $db:ty) => {
        impl $name {
            /// Writes `activities` and their rollups inside `tx`; whether each was new.
            pub(super) async fn write_activities(
                tx: &mut sqlx::Transaction<'_, $db>,
                activities: &[NewActivity],
            ) -> StoreResult<Vec<bool>> {
                let mut created = std::collections::HashSet::new();
                for chunk in activities.chunks(INSERT_CHUNK) {
                    let mut b: QueryBuilder<$db> = QueryBuilder::new(
                        "INSERT INTO ai_activities (id, owner_id, project_id, client_id, source, \
                         tool, category, provider, model, operation, input_tokens, output_tokens, \
                         cached_tokens, cost_micros, latency_ms, ttft_ms, finish_reason, \
                         conversation_id, prompt, response, code_changes, call_id, occurred_at, \
                         created_at) ",
                    );
                    b.push_values(chunk, |mut r, a| {
                        r.push_bind(a.id)
                            .push_bind(a.owner_id)
                            .push_bind(a.project_id)
                            .push_bind(a.client_id.clone())
                            .push_bind(a.source.as_str())
                            .push_bind(a.tool.clone())
                            .push_bind(a.category.map(|c| c.as_str()))
                            .push_bind(a.provider.clone())
                            .push_bind(a.model.clone())
                            .push_bind(a.operation.clone())
                            .push_bind(a.input_tokens)
                            .push_bind(a.output_tokens)
                            .push_bind(a.cached_tokens)
                            .push_bind(a.cost_micros)
                            .push_bind(a.latency_ms)
                            .push_bind(a.ttft_ms)
                            .push_bind(a.finish_reason.clone())
                            .push_bind(a.conversation_id.clone())
                            .push_bind(a.prompt.clone())
                            .push_bind(a.response.clone())
                            .push_bind(
                                serde_json::to_string(&a.code_changes)
                                    .unwrap_or_else(|_| "[]".into()),
                            )
                            .push_bind(a.call_id)
                            .push_bind(a.occurred_at)
                            .push_bind(a.created_at);
                    });
                    b.push(" ON CONFLICT (owner_id, client_id) DO NOTHING RETURNING id");
                    let ids: Vec<Uuid> = b
                        .build_query_scalar()
                        .fetch_all(&mut **tx)
                        .await?;
                    created.extend(ids);
                }
                let sums = rollups(activities.iter().filter(|a| created.contains(&a.id)));
                for chunk in sums.chunks(ROLLUP_CHUNK) {
                    let mut b: QueryBuilder<$db> = QueryBuilder::new(
                        "INSERT INTO ai_rollups (day, owner_id, project_id, tool, model, \
                         category, activities, input_tokens, output_tokens, cached_tokens, \
                         cost_micros, ",
                    );
                    b.push(latency_columns()).push(") ");
                    b.push_values(chunk, |mut r, (k, s)| {
                        r.push_bind(k.day.clone())
                            .push_bind(k.owner_id)
                            .push_bind(k.project_id)
                            .push_bind(k.tool.clone())
                            .push_bind(k.model.clone())
                            .push_bind(k.category.clone())
                            .push_bind(s.activities)
                            .push_bind(s.input_tokens)
                            .push_bind(s.output_tokens)
                            .push_bind(s.cached_tokens)
                            .push_bind(s.cost_micros);
                        for n in s.latency {
                            r.push_bind(n);
                        }
                    });
                    b.push(
                        " ON CONFLICT (owner_id, day, project_id, tool, model, category) \
                         DO UPDATE SET activities = ai_rollups.activities + excluded.activities, \
                         input_tokens = ai_rollups.input_tokens + excluded.input_tokens, \
                         output_tokens = ai_rollups.output_tokens + excluded.output_tokens, \
                         cached_tokens = ai_rollups.cached_tokens + excluded.cached_tokens, \
                         cost_micros = ai_rollups.cost_micros + excluded.cost_micros",
                    );
                    for i in 0..LATENCY_BUCKETS {
                        b.push(format!(", lat{i:02} = ai_rollups.lat{i:02} + excluded.lat{i:02}"));
                    }
                    b.build().execute(&mut **tx).await?;
                }
                Ok(activities.iter().map(|a| created.contains(&a.id)).collect())
            }
        }

        #[async_trait]
        impl ActivityStore for $name {
            async fn insert_activities(
                &self,
                activities: &[NewActivity],
            ) -> StoreResult<Vec<bool>> {
                let mut tx = self.pool.begin().await?;
                let created = Self::write_activities(&mut tx, activities).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn rollup_report(&self, f: &RollupFilter) -> StoreResult<Vec<RollupRow>> {
                let mut b: QueryBuilder<$db> = QueryBuilder::new("SELECT ");
                for d in &f.group_by {
                    b.push(d.column()).push(", ");
                }
                for i in 0..LATENCY_BUCKETS {
                    b.push(format!("CAST(SUM(lat{i:02}) AS BIGINT) AS lat{i:02}, "));
                }
                b.push(
                    "CAST(SUM(activities) AS BIGINT) AS activities, \
                     CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
                     CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
                     CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
                     CAST(SUM(cost_micros) AS BIGINT) AS cost_micros FROM ai_rollups WHERE day >= ",
                );
                b.push_bind(f.from_day.clone())
                    .push(" AND day <= ")
                    .push_bind(f.to_day.clone())
                    .push(" AND (owner_id = ")
                    .push_bind(f.user);
                if !f.projects.is_empty() {
                    b.push(" OR project_id IN (");
                    let mut sep = b.separated(", ");
                    for p in &f.projects {
                        sep.push_bind(*p);
                    }
                    b.push(")");
                }
                b.push(")");
                if let Some(p) = f.project {
                    b.push(" AND project_id = ").push_bind(p);
                }
                if let Some(u) = f.only_user {
                    b.push(" AND owner_id = ").push_bind(u);
                }
                if let Some(t) = &f.tool {
                    b.push(" AND tool = ").push_bind(t.clone());
                }
                if let Some(m) = &f.model {
                    b.push(" AND model = ").push_bind(m.clone());
                }
                if !f.group_by.is_empty() {
                    b.push(" GROUP BY ");
                    let mut sep = b.separated(", ");
                    for d in &f.group_by {
                        sep.push(d.column());
                    }
                }
                let rows = b.build().fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut key = Vec::with_capacity(f.group_by.len());
                    for d in &f.group_by {
                        key.push(match d {
                            super::activity::Dimension::Project
                            | super::activity::Dimension::User => {
                                row.try_get::<Uuid, _>(d.column())?.to_string()
                            }
                            _ => row.try_get::<String, _>(d.column())?,
                        });
                    }
                    out.push(RollupRow {
                        key,
                        latency: {
                            let mut l = [0i64; LATENCY_BUCKETS];
                            for (i, n) in l.iter_mut().enumerate() {
                                *n = row.try_get(format!("lat{i:02}").as_str())?;
                            }
                            l
                        },
                        activities: row.try_get("activities")?,
                        input_tokens: row.try_get("input_tokens")?,
                        output_tokens: row.try_get("output_tokens")?,
                        cached_tokens: row.try_get("cached_tokens")?,
                        cost_micros: row.try_get("cost_micros")?,
                    });
                }
                Ok(out)
            }

            async fn list_activities(&self, f: &ActivityFilter) -> StoreResult<Vec<Activity>> {
                let mut b: QueryBuilder<$db> = QueryBuilder::new("SELECT ");
                b.push(ACTIVITY_COLUMNS)
                    .push(" FROM ai_activities WHERE (owner_id = ")
                    .push_bind(f.user);
                if !f.projects.is_empty() {
                    b.push(" OR project_id IN (");
                    let mut sep = b.separated(", ");
                    for p in &f.projects {
                        sep.push_bind(*p);
                    }
                    b.push(")");
                }
                b.push(")");
                if let Some(p) = f.project {
                    b.push(" AND project_id = ").push_bind(p);
                }
                if let Some(t) = &f.tool {
                    b.push(" AND tool = ").push_bind(t.clone());
                }
                if f.with_changes {
                    b.push(" AND code_changes <> '[]'");
                }
                if let Some(t) = f.before {
                    b.push(" AND occurred_at < ").push_bind(t);
                }
                if let Some(t) = f.since {
                    b.push(" AND occurred_at >= ").push_bind(t);
                }
                b.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
                    .push_bind(i64::from(f.limit));
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn add_counters(&self, points: &[NewCounter]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for p in points {
                    let sql = if p.delta {
                        "INSERT INTO ai_usage_counters (owner_id, series, project_id, tool, model, \
                         metric, kind, value, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (owner_id, series) DO UPDATE SET \
                         value = ai_usage_counters.value + excluded.value, updated_at = excluded.updated_at"
                    } else {
                        "INSERT INTO ai_usage_counters (owner_id, series, project_id, tool, model, \
                         metric, kind, value, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (owner_id, series) DO UPDATE SET \
                         value = excluded.value, updated_at = excluded.updated_at"
                    };
                    sqlx::query(sql)
                        .bind(p.owner_id)
                        .bind(&p.series)
                        .bind(p.project_id)
                        .bind(&p.tool)
                        .bind(&p.model)
                        .bind(&p.metric)
                        .bind(&p.kind)
                        .bind(p.value)
                        .bind(p.now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn usage_counters(
                &self,
                user: Uuid,
                projects: &[Uuid],
                project: Option<Uuid>,
            ) -> StoreResult<Vec<UsageCounter>> {
                let mut b: QueryBuilder<$db> = QueryBuilder::new(
                    "SELECT tool, model, metric, kind, CAST(SUM(value) AS DOUBLE PRECISION) AS value, \
                     CAST(COUNT(*) AS BIGINT) AS series FROM ai_usage_counters WHERE (owner_id = ",
                );
                b.push_bind(user);
                if !projects.is_empty() {
                    b.push(" OR project_id IN (");
                    let mut sep = b.separated(", ");
                    for p in projects {
                        sep.push_bind(*p);
                    }
                    b.push(")");
                }
                b.push(")");
                if let Some(p) = project {
                    b.push(" AND project_id = ").push_bind(p);
                }
                b.push(" GROUP BY tool, model, metric, kind ORDER BY tool, model, metric, kind LIMIT 1000");
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn unlinked_activities(
                &self,
                owner: Uuid,
                projects: &[Uuid],
                since: chrono::DateTime<chrono::Utc>,
            ) -> StoreResult<Vec<Activity>> {
                if projects.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b: QueryBuilder<$db> = QueryBuilder::new("SELECT ");
                b.push(ACTIVITY_COLUMNS)
                    .push(" FROM ai_activities a WHERE owner_id = ")
                    .push_bind(owner)
                    .push(" AND occurred_at >= ")
                    .push_bind(since)
                    .push(" AND source <> 'pipeline' AND project_id IN (");
                let mut sep = b.separated(", ");
                for p in projects {
                    sep.push_bind(*p);
                }
                b.push(
                    ") AND NOT EXISTS (SELECT 1 FROM ai_commit_links l WHERE l.activity_id = a.id) \
                     ORDER BY occurred_at DESC LIMIT 200",
                );
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn activities_named(
                &self,
                owner: Uuid,
                names: &[String],
            ) -> StoreResult<Vec<Activity>> {
                if names.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<Uuid> = names.iter().filter_map(|n| Uuid::parse_str(n).ok()).collect();
                let mut b: QueryBuilder<$db> = QueryBuilder::new("SELECT ");
                b.push(ACTIVITY_COLUMNS)
                    .push(" FROM ai_activities WHERE owner_id = ")
                    .push_bind(owner)
                    .push(" AND (client_id IN (");
                let mut sep = b.separated(", ");
                for n in names {
                    sep.push_bind(n.clone());
                }
                b.push(")");
                if !ids.is_empty() {
                    b.push(" OR id IN (");
                    let mut sep = b.separated(", ");
                    for i in ids {
                        sep.push_bind(i);
                    }
                    b.push(")");
                }
                b.push(") LIMIT 100");
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn link_commits(
                &self,
                links: &[CommitLink],
                changes: &[(Uuid, CodeChanges)],
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for l in links {
                    sqlx::query(
                        "INSERT INTO ai_commit_links (activity_id, commit_sha, project_id, repo, \
                         summary, reason, linked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (activity_id, commit_sha) DO NOTHING",
                    )
                    .bind(l.activity_id)
                    .bind(&l.commit_sha)
                    .bind(l.project_id)
                    .bind(&l.repo)
                    .bind(&l.summary)
                    .bind(l.reason.as_str())
                    .bind(l.linked_at)
                    .execute(&mut *tx)
                    .await?;
                }
                for (id, c) in changes {
                    sqlx::query("UPDATE ai_activities SET code_changes = $2 WHERE id = $1")
                        .bind(id)
                        .bind(serde_json::to_string(c).unwrap_or_else(|_| "[]".into()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn ai_commits(&self, project: Uuid, limit: u32) -> StoreResult<Vec<AiCommit>> {
                let rows = sqlx::query(
                    "SELECT l.commit_sha, l.repo, l.summary, l.linked_at, l.reason, a.id, a.tool, \
                     a.model FROM ai_commit_links l JOIN ai_activities a ON a.id = l.activity_id \
                     WHERE l.project_id = $1 ORDER BY l.linked_at DESC LIMIT $2",
                )
                .bind(project)
                .bind(i64::from(limit) * 20)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<AiCommit> = Vec::new();
                for row in rows {
                    let sha: String = row.try_get("commit_sha")?;
                    let reason: String = row.try_get("reason")?;
                    let linked = LinkedActivity {
                        id: row.try_get("id")?,
                        tool: row.try_get("tool")?,
                        model: row.try_get("model")?,
                        reason: fulcrum_protocol::kinds::CommitLinkReason::parse(&reason)
                            .unwrap_or(fulcrum_protocol::kinds::CommitLinkReason::Window),
                    };
                    let full = out.len() >= limit as usize;
                    match out.iter_mut().find(|c| c.sha == sha) {
                        Some(c) => c.activities.push(linked),
                        None if !full => out.push(AiCommit {
                            sha,
                            repo: row.try_get("repo")?,
                            summary: row.try_get("summary")?,
                            linked_at: row.try_get("linked_at")?,
                            activities: vec![linked],
                        }),
                        None => {}
                    }
                }
                Ok(out)
            }

            async fn workspace_project_ids(&self, workspace: Uuid) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(
                    "SELECT project_id FROM project_workspaces WHERE workspace_id = $1",
                )
                .bind(workspace)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn projects_without_text(&self, projects: &[Uuid]) -> StoreResult<Vec<Uuid>> {
                if projects.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b: QueryBuilder<$db> = QueryBuilder::new(
                    "SELECT id FROM projects WHERE ai_capture_text = FALSE AND id IN (",
                );
                let mut sep = b.separated(", ");
                for p in projects {
                    sep.push_bind(*p);
                }
                b.push(")");
                Ok(b.build_query_scalar().fetch_all(&self.pool).await?)
            }

            async fn project_captures_text(&self, project: Uuid) -> StoreResult<bool> {
                let keep: Option<bool> =
                    sqlx::query_scalar("SELECT ai_capture_text FROM projects WHERE id = $1")
                        .bind(project)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(keep.unwrap_or(false))
            }

            async fn set_project_captures_text(&self, project: Uuid, keep: bool) -> StoreResult<()> {
                sqlx::query("UPDATE projects SET ai_capture_text = $2 WHERE id = $1")
                    .bind(project)
                    .bind(keep)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn raise_budget_alert(
                &self,
                id: Uuid,
                level: i32,
                period: &str,
                event: &super::webhooks::WebhookEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE budgets SET alert_level = $2, alert_period = $3 WHERE id = $1 \
                     AND (alert_period IS NULL OR alert_period <> $3 OR alert_level < $2)",
                )
                .bind(id)
                .bind(level)
                .bind(period)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                Self::add_event_if_wanted(&mut tx, event).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

sql_activity_store!(SqliteStore, sqlx::Sqlite);
sql_activity_store!(PostgresStore, sqlx::Postgres);
