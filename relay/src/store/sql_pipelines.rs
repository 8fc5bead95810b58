//! The SQL behind [`PipelineStore`], written once for SQLite and PostgreSQL (the statements
//! are in [`super::queries`]); only the claim differs (PostgreSQL skips rows another node is
//! claiming).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{RunState, StageState};
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreResult,
    activity::NewActivity,
    pipelines::{
        Artifact, ArtifactMeta, Budget, BudgetCheck, BudgetScope, CallOutcome, CallTotals,
        Deployment, LlmCall, LlmProvider, NewLlmCall, NewRun, PipelineRun, PipelineStore,
        Reservation, RunAction, StageRow, Step,
    },
    queries as q,
    sql::unique_violation,
    work::Project,
};

fn spent_query(scope: BudgetScope) -> (&'static str, Uuid) {
    match scope {
        BudgetScope::Run(id) => (q::SPENT_BY_RUN, id),
        BudgetScope::Project(id) => (q::SPENT_BY_PROJECT, id),
        BudgetScope::User(id) => (q::SPENT_BY_USER, id),
    }
}

/// Stamps out a [`PipelineStore`] implementation for one store over database `$db`; `$claim`
/// is its claim.
macro_rules! sql_pipeline_store {
    ($name:ident, $db:ty, $claim:expr) => {
        impl $name {
            /// Journals `call` inside `tx`.
            async fn insert_call_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                call: &NewLlmCall,
            ) -> StoreResult<()> {
                let (run, stage, attempt, seq) = match &call.run {
                    Some((r, s, a, n)) => (Some(*r), Some(s.as_str()), Some(*a), Some(*n)),
                    None => (None, None, None, None),
                };
                sqlx::query(q::INSERT_CALL)
                    .bind(call.id)
                    .bind(call.owner_id)
                    .bind(call.project_id)
                    .bind(run)
                    .bind(stage)
                    .bind(attempt)
                    .bind(seq)
                    .bind(call.provider_id)
                    .bind(call.provider.as_str())
                    .bind(call.operation)
                    .bind(&call.request_model)
                    .bind(call.reserved_micros)
                    .bind(&call.request)
                    .bind(call.now)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| unique_violation(e, "this call"))?;
                Ok(())
            }

            /// Settles call `id` inside `tx`, writing its activity if it was still reserved.
            async fn settle_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: Uuid,
                o: &CallOutcome,
                activity: Option<&NewActivity>,
            ) -> StoreResult<()> {
                let settled = sqlx::query(q::SETTLE_CALL)
                    .bind(id)
                    .bind(o.state.as_str())
                    .bind(&o.response_model)
                    .bind(&o.response_id)
                    .bind(&o.finish_reason)
                    .bind(o.input_tokens)
                    .bind(o.output_tokens)
                    .bind(o.cached_tokens)
                    .bind(o.usage_estimated)
                    .bind(o.cost_micros)
                    .bind(o.latency_ms)
                    .bind(o.ttft_ms)
                    .bind(o.attempts)
                    .bind(&o.error_code)
                    .bind(&o.error)
                    .bind(&o.response)
                    .bind(&o.raw_response)
                    .bind(o.now)
                    .execute(&mut **tx)
                    .await?;
                if settled.rows_affected() == 1
                    && let Some(a) = activity
                {
                    Self::write_activities(tx, std::slice::from_ref(a)).await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl PipelineStore for $name {
            async fn create_provider(&self, p: &LlmProvider) -> StoreResult<()> {
                sqlx::query(q::INSERT_PROVIDER)
                    .bind(p.id)
                    .bind(p.owner_id)
                    .bind(p.project_id)
                    .bind(&p.name)
                    .bind(p.kind.as_str())
                    .bind(&p.base_url)
                    .bind(&p.default_model)
                    .bind(&p.key_hint)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| unique_violation(e, "a provider with this name"))?;
                Ok(())
            }

            async fn list_providers(&self, owner: Uuid) -> StoreResult<Vec<LlmProvider>> {
                Ok(sqlx::query_as(q::PROVIDERS_OF)
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn provider(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<LlmProvider>> {
                Ok(sqlx::query_as(q::PROVIDER)
                    .bind(owner)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn update_provider(&self, p: &LlmProvider) -> StoreResult<bool> {
                let done = sqlx::query(q::UPDATE_PROVIDER)
                    .bind(p.owner_id)
                    .bind(p.id)
                    .bind(&p.base_url)
                    .bind(&p.default_model)
                    .bind(&p.key_hint)
                    .bind(p.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_provider(&self, owner: Uuid, id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query(q::DELETE_PROVIDER)
                    .bind(owner)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn put_budget(&self, b: &Budget) -> StoreResult<Budget> {
                Ok(match b.project_id {
                    None => {
                        sqlx::query_as(q::UPSERT_USER_BUDGET)
                            .bind(b.id)
                            .bind(b.owner_id)
                            .bind(b.period.as_str())
                            .bind(b.limit_micros)
                            .bind(b.updated_at)
                            .fetch_one(&self.pool)
                            .await?
                    }
                    Some(project) => {
                        sqlx::query_as(q::UPSERT_PROJECT_BUDGET)
                            .bind(b.id)
                            .bind(b.owner_id)
                            .bind(project)
                            .bind(b.period.as_str())
                            .bind(b.limit_micros)
                            .bind(b.updated_at)
                            .fetch_one(&self.pool)
                            .await?
                    }
                })
            }

            async fn budgets(&self, owner: Uuid, projects: &[Uuid]) -> StoreResult<Vec<Budget>> {
                let mut all: Vec<Budget> = sqlx::query_as(q::USER_BUDGETS)
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await?;
                for p in projects {
                    all.extend(
                        sqlx::query_as::<_, Budget>(q::PROJECT_BUDGETS)
                            .bind(p)
                            .fetch_all(&self.pool)
                            .await?,
                    );
                }
                Ok(all)
            }

            async fn delete_budget(&self, owner: Uuid, id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query(q::DELETE_BUDGET)
                    .bind(owner)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn spent(
                &self,
                scope: BudgetScope,
                since: Option<DateTime<Utc>>,
            ) -> StoreResult<i64> {
                let (sql, id) = spent_query(scope);
                Ok(sqlx::query_scalar(sql)
                    .bind(id)
                    .bind(since)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn reserve_call(
                &self,
                call: &NewLlmCall,
                checks: &[BudgetCheck],
            ) -> StoreResult<Reservation> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(q::LOCK_USER)
                    .bind(call.owner_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(project) = call.project_id {
                    sqlx::query(q::LOCK_PROJECT)
                        .bind(project)
                        .execute(&mut *tx)
                        .await?;
                }
                for (i, check) in checks.iter().enumerate() {
                    let (sql, id) = spent_query(check.scope);
                    let spent: i64 = sqlx::query_scalar(sql)
                        .bind(id)
                        .bind(check.since)
                        .fetch_one(&mut *tx)
                        .await?;
                    if spent.saturating_add(call.reserved_micros) > check.limit_micros {
                        tx.rollback().await?;
                        return Ok(Reservation::Refused {
                            check: i,
                            spent_micros: spent,
                        });
                    }
                }
                Self::insert_call_in(&mut tx, call).await?;
                tx.commit().await?;
                Ok(Reservation::Made)
            }

            async fn settle_call(
                &self,
                id: Uuid,
                o: &CallOutcome,
                activity: Option<&NewActivity>,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::settle_in(&mut tx, id, o, activity).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_call(
                &self,
                call: &NewLlmCall,
                o: &CallOutcome,
                activity: Option<&NewActivity>,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::insert_call_in(&mut tx, call).await?;
                Self::settle_in(&mut tx, call.id, o, activity).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn run_call(
                &self,
                run: Uuid,
                stage: &str,
                attempt: i32,
                seq: i32,
            ) -> StoreResult<Option<LlmCall>> {
                Ok(sqlx::query_as(q::RUN_CALL)
                    .bind(run)
                    .bind(stage)
                    .bind(attempt)
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn run_calls(&self, run: Uuid) -> StoreResult<Vec<LlmCall>> {
                Ok(sqlx::query_as(q::RUN_CALLS)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn set_run_project_generation(
                &self,
                run: Uuid,
                generation: fulcrum_protocol::kinds::ProjectGeneration,
            ) -> StoreResult<()> {
                sqlx::query(q::SET_PROJECT_GENERATION)
                    .bind(run)
                    .bind(generation.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_deployment(&self, d: &Deployment) -> StoreResult<()> {
                sqlx::query(q::INSERT_DEPLOYMENT)
                    .bind(d.id)
                    .bind(d.project_id)
                    .bind(d.run_id)
                    .bind(d.task_id)
                    .bind(d.source.as_str())
                    .bind(&d.environment)
                    .bind(&d.url)
                    .bind(&d.commit_sha)
                    .bind(d.state.as_str())
                    .bind(d.created_by)
                    .bind(d.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_deployments(
                &self,
                project: Uuid,
                limit: u32,
            ) -> StoreResult<Vec<Deployment>> {
                Ok(sqlx::query_as(q::LIST_DEPLOYMENTS)
                    .bind(project)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn run_totals(&self, run: Uuid) -> StoreResult<Vec<CallTotals>> {
                Ok(sqlx::query_as(q::RUN_TOTALS)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn create_run(&self, new: &NewRun) -> StoreResult<()> {
                let r = &new.run;
                let mut tx = self.pool.begin().await?;
                sqlx::query(q::INSERT_RUN)
                    .bind(r.id)
                    .bind(&r.handle)
                    .bind(r.project_id)
                    .bind(r.workspace_id)
                    .bind(r.started_by)
                    .bind(r.provider_id)
                    .bind(&r.pipeline)
                    .bind(&r.definition)
                    .bind(&r.definition_hash)
                    .bind(&r.inputs)
                    .bind(r.state.as_str())
                    .bind(&r.reason)
                    .bind(&r.error)
                    .bind(r.budget_micros)
                    .bind(r.cancel_requested)
                    .bind(r.created_at)
                    .bind(r.started_at)
                    .bind(r.finished_at)
                    .bind(r.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| unique_violation(e, "a run with this handle"))?;
                for (i, (name, kind)) in new.stages.iter().enumerate() {
                    sqlx::query(q::INSERT_STAGE)
                        .bind(r.id)
                        .bind(name)
                        .bind(i as i32)
                        .bind(kind.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_run(
                &self,
                project: &Project,
                id: Uuid,
            ) -> StoreResult<Option<PipelineRun>> {
                Ok(sqlx::query_as(q::RUN_IN_PROJECT)
                    .bind(id)
                    .bind(project.id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn run_unscoped(&self, id: Uuid) -> StoreResult<Option<PipelineRun>> {
                Ok(sqlx::query_as(q::RUN_UNSCOPED)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_runs(
                &self,
                project: &Project,
                limit: u32,
            ) -> StoreResult<Vec<PipelineRun>> {
                Ok(sqlx::query_as(q::RUNS_OF_PROJECT)
                    .bind(project.id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn stages(&self, run: Uuid) -> StoreResult<Vec<StageRow>> {
                Ok(sqlx::query_as(q::STAGES_OF_RUN)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn artifacts(&self, run: Uuid) -> StoreResult<Vec<ArtifactMeta>> {
                Ok(sqlx::query_as(q::ARTIFACTS_OF_RUN)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn artifact(&self, run: Uuid, path: &str) -> StoreResult<Option<Artifact>> {
                Ok(sqlx::query_as(q::ARTIFACT)
                    .bind(run)
                    .bind(path)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn artifacts_with_content(&self, run: Uuid) -> StoreResult<Vec<Artifact>> {
                Ok(sqlx::query_as(q::ARTIFACTS_WITH_CONTENT)
                    .bind(run)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn claim_runs(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                until: DateTime<Utc>,
                limit: u32,
            ) -> StoreResult<Vec<PipelineRun>> {
                Ok(sqlx::query_as($claim)
                    .bind(owner)
                    .bind(now)
                    .bind(until)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn renew_run_lease(
                &self,
                run: Uuid,
                owner: &str,
                until: DateTime<Utc>,
            ) -> StoreResult<Option<bool>> {
                Ok(sqlx::query_scalar(q::RENEW_RUN_LEASE)
                    .bind(run)
                    .bind(owner)
                    .bind(until)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn project_audience(&self, project: Uuid) -> StoreResult<Vec<Uuid>> {
                Ok(sqlx::query_scalar(q::MEMBER_IDS)
                    .bind(project)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn release_all_runs(&self, owner: &str) -> StoreResult<u64> {
                Ok(sqlx::query(q::RELEASE_ALL_RUNS)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn release_run(&self, run: Uuid, owner: &str) -> StoreResult<()> {
                sqlx::query(q::RELEASE_RUN)
                    .bind(run)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn apply_step(&self, step: &Step) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let fenced = sqlx::query(q::FENCE_RUN)
                    .bind(step.run_id)
                    .bind(&step.lease_owner)
                    .bind(step.now)
                    .execute(&mut *tx)
                    .await?;
                if fenced.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for s in &step.stages {
                    let query = sqlx::query(if s.result_of.is_some() {
                        q::UPDATE_STAGE_RESULT
                    } else {
                        q::UPDATE_STAGE
                    })
                    .bind(step.run_id)
                    .bind(&s.name)
                    .bind(s.state.as_str())
                    .bind(s.attempt)
                    .bind(&s.reason)
                    .bind(&s.error)
                    .bind(&s.output)
                    .bind(s.task_id)
                    .bind(s.started_at)
                    .bind(s.finished_at);
                    let query = match s.result_of {
                        Some(attempt) => query.bind(attempt),
                        None => query,
                    };
                    let written = query.execute(&mut *tx).await?.rows_affected();
                    if s.result_of.is_some() && written == 0 {
                        // Reset under the engine: this result is stale; nothing of it stays.
                        tx.rollback().await?;
                        return Ok(true);
                    }
                }
                for a in &step.artifacts {
                    sqlx::query(q::UPSERT_ARTIFACT)
                        .bind(step.run_id)
                        .bind(&a.path)
                        .bind(&a.stage)
                        .bind(a.attempt)
                        .bind(&a.media_type)
                        .bind(&a.content)
                        .bind(a.content.len() as i64)
                        .bind(&a.sha256)
                        .bind(step.now)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(g) = step.run.as_ref().and_then(|r| r.generation) {
                    sqlx::query(q::SET_PROJECT_GENERATION)
                        .bind(step.run_id)
                        .bind(g.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(r) = &step.run {
                    let ended = matches!(
                        r.state,
                        RunState::Succeeded | RunState::Failed | RunState::Canceled
                    );
                    if ended {
                        sqlx::query(q::SKIP_OPEN_STAGES)
                            .bind(step.run_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query(q::UPDATE_RUN)
                        .bind(step.run_id)
                        .bind(r.state.as_str())
                        .bind(&r.reason)
                        .bind(&r.error)
                        .bind(r.workspace_id)
                        .bind(ended.then_some(step.now))
                        .bind(step.now)
                        .bind(r.state == RunState::Running)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn act_on_run(
                &self,
                run: Uuid,
                action: &RunAction,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = match action {
                    RunAction::Cancel => {
                        let idle = sqlx::query(q::CANCEL_IDLE_RUN)
                            .bind(run)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1;
                        if idle {
                            sqlx::query(q::SKIP_OPEN_STAGES)
                                .bind(run)
                                .execute(&mut *tx)
                                .await?;
                            true
                        } else {
                            sqlx::query(q::REQUEST_RUN_CANCEL)
                                .bind(run)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected()
                                == 1
                        }
                    }
                    RunAction::Approve { stage, by } => {
                        let decided = sqlx::query(q::DECIDE_GATE)
                            .bind(run)
                            .bind(stage)
                            .bind(StageState::Succeeded.as_str())
                            .bind(by)
                            .bind(None::<String>)
                            .bind(Some(now))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1;
                        decided && requeue_or_running!(tx, run, now)
                    }
                    RunAction::Reject {
                        stage,
                        redo,
                        by,
                        comment,
                    } => {
                        let decided = sqlx::query(q::DECIDE_GATE)
                            .bind(run)
                            .bind(stage)
                            .bind(StageState::Pending.as_str())
                            .bind(by)
                            .bind(Some(comment))
                            .bind(None::<DateTime<Utc>>)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1;
                        if decided {
                            for name in redo {
                                sqlx::query(q::RESET_STAGE)
                                    .bind(run)
                                    .bind(name)
                                    .bind(Some(comment))
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                        decided && requeue_or_running!(tx, run, now)
                    }
                    RunAction::Resume {
                        reset,
                        budget_micros,
                    } => {
                        if let Some(b) = budget_micros {
                            sqlx::query(q::SET_RUN_BUDGET)
                                .bind(run)
                                .bind(b)
                                .execute(&mut *tx)
                                .await?;
                        }
                        sqlx::query(q::RESET_STUCK_STAGES)
                            .bind(run)
                            .execute(&mut *tx)
                            .await?;
                        for name in reset {
                            sqlx::query(q::RESET_STAGE)
                                .bind(run)
                                .bind(name)
                                .bind(None::<String>)
                                .execute(&mut *tx)
                                .await?;
                        }
                        requeue!(tx, run, now)
                    }
                };
                if done {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(done)
            }
        }
    };
}

/// Puts a run back in line, inside the caller's transaction; whether it was, or is in line or
/// being driven already (a gate decided while other stages run: the engine sees it at its next
/// step).
macro_rules! requeue_or_running {
    ($tx:expr, $run:expr, $now:expr) => {
        requeue!($tx, $run, $now)
            || sqlx::query_scalar::<_, String>(q::RUN_STATE)
                .bind($run)
                .fetch_optional(&mut *$tx)
                .await?
                .as_deref()
                .is_some_and(|state| state == "running" || state == "queued")
    };
}

/// Puts a run back in line, inside the caller's transaction; whether it was.
macro_rules! requeue {
    ($tx:expr, $run:expr, $now:expr) => {
        sqlx::query(q::REQUEUE_RUN)
            .bind($run)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            == 1
    };
}

sql_pipeline_store!(SqliteStore, sqlx::Sqlite, q::CLAIM_RUNS_SQLITE);
sql_pipeline_store!(PostgresStore, sqlx::Postgres, q::CLAIM_RUNS_POSTGRES);
