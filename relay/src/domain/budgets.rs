//! Budgets, and every LLM call the relay makes on someone's behalf. One module serves every
//! caller of a model (pipelines, the assistant and the LLM gateway): before a call,
//! its worst case (the input's tokens plus `max_tokens`, at the model's prices) is reserved
//! against every budget that applies (the run's own, the project's, the user's; over all time
//! or this month) and the call is journaled; if any budget would be passed it is refused and
//! nothing is sent. After it, the call is settled to what the provider reported.
//!
//! Amounts are micro-dollars (millionths of a US dollar); the API shows dollars.

use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use fulcrum_protocol::kinds::{ActivitySource, BudgetPeriod, LlmCallState, Role, WebhookEventKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    activity::{RelayCall, RelayOutcome, relay_activity},
    audit::{self, Record},
    projects::Projects,
};
use crate::{
    bus::DynBus,
    llm::{self, ChatRequest, ChatResponse, Endpoint, LlmError, prices::Prices},
    metrics::Metrics,
    store::{
        DynStore, Scope,
        pipelines::{
            Budget, BudgetCheck, BudgetScope, CallOutcome, LlmCall, LlmProvider, NewLlmCall,
            Reservation,
        },
        webhooks::WebhookEvent,
    },
};

/// The code of a call that was in flight when its relay stopped.
const INTERRUPTED: &str = "interrupted";

/// Settles a reserved call as aborted if the future making it is dropped before it settles
/// (a stage timeout, a cancel, a lost lease), so its reservation holds no budget.
struct Unsettled {
    store: DynStore,
    id: Uuid,
    armed: bool,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, id) = (self.store.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let outcome = failed_outcome("aborted", "the call was abandoned".into());
                if let Err(e) = store.settle_call(id, &outcome, None).await {
                    tracing::warn!(error = %e, call = %id, "cannot settle an abandoned call");
                }
            });
        }
    }
}

/// Micro-dollars in a dollar.
pub const MICROS: f64 = 1_000_000.0;
/// Largest budget, in dollars.
const MAX_BUDGET_USD: f64 = 1_000_000.0;

/// Dollars as micro-dollars.
pub fn usd_to_micros(usd: f64) -> i64 {
    (usd * MICROS).round() as i64
}

/// Micro-dollars as dollars.
pub fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / MICROS
}

/// A budget to set.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    /// The project whose calls it limits [default: the caller's calls everywhere].
    #[serde(default)]
    pub project_id: Option<Uuid>,
    /// Over what period.
    pub period: BudgetPeriod,
    /// The limit, US dollars.
    pub limit_usd: f64,
}

/// A budget with what it counts so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// The budget.
    #[serde(flatten)]
    pub budget: Budget,
    /// The limit, US dollars.
    pub limit_usd: f64,
    /// Spent (and reserved by calls in flight) in its period, US dollars.
    pub spent_usd: f64,
    /// The alert raised in its current period: 80 or 100 (percent), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_level: Option<i32>,
}

/// The name of the period `now` is in, for alerts: `2026-12`, or `total`.
fn period_key(period: BudgetPeriod, now: DateTime<Utc>) -> String {
    match period {
        BudgetPeriod::Total => "total".into(),
        BudgetPeriod::Month => now.format("%Y-%m").to_string(),
    }
}

/// The start of the month `now` is in.
fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

fn since(period: BudgetPeriod, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match period {
        BudgetPeriod::Total => None,
        BudgetPeriod::Month => Some(month_start(now)),
    }
}

/// Who a call is for and what it belongs to.
#[derive(Debug, Clone)]
pub struct CallFor {
    /// The user it is billed to.
    pub user: Uuid,
    /// The project it is for.
    pub project: Option<Uuid>,
    /// The run, stage, attempt and number in the attempt; with the run's own budget.
    pub run: Option<RunCall>,
    /// Which door makes it (its activity's source).
    pub source: ActivitySource,
    /// The tool its activity names.
    pub tool: String,
}

/// A call's place in a run.
#[derive(Debug, Clone)]
pub struct RunCall {
    /// The run.
    pub run: Uuid,
    /// Its own budget, micro-dollars.
    pub budget_micros: Option<i64>,
    /// The stage.
    pub stage: String,
    /// The stage's attempt.
    pub attempt: i32,
    /// The call's number in the attempt.
    pub seq: i32,
}

/// Why a call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// A budget would be passed: nothing was sent.
    #[error("{0}")]
    Budget(String),
    /// An earlier relay left this call in flight when it stopped: the place is used up, and
    /// the caller moves to the next number.
    #[error("the call was interrupted")]
    Interrupted,
    /// The provider failed (after the client's retries).
    #[error(transparent)]
    Provider(#[from] LlmError),
    /// The relay failed to journal or settle.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// Budgets and the call journal.
pub struct Budgets {
    store: DynStore,
    prices: Arc<Prices>,
    client: llm::Client,
    metrics: Arc<Metrics>,
    projects: Arc<Projects>,
    bus: DynBus,
    /// Woken when an alert recorded a webhook event.
    webhooks: Arc<tokio::sync::Notify>,
}

/// A call journaled and held against its budgets, not yet settled.
pub struct Reserved {
    id: Uuid,
    guard: Unsettled,
    /// A call that holds nothing against a budget (none applies) is journaled when it settles,
    /// in the same transaction: one write instead of two on the way to the provider.
    deferred: Option<NewLlmCall>,
}

impl Reserved {
    /// The journaled call's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

/// What a budget alert says.
#[derive(Debug, Serialize)]
struct Alert {
    budget_id: Uuid,
    project_id: Option<Uuid>,
    period: BudgetPeriod,
    level: i32,
    limit_usd: f64,
    spent_usd: f64,
}

impl Budgets {
    /// Budgets in `store`, calls made with `client`, priced by `prices`; alerts published on
    /// `bus`.
    pub fn new(
        store: DynStore,
        prices: Arc<Prices>,
        client: llm::Client,
        metrics: Arc<Metrics>,
        projects: Arc<Projects>,
        bus: DynBus,
        webhooks: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            store,
            prices,
            client,
            metrics,
            projects,
            bus,
            webhooks,
        }
    }

    /// The price table in force.
    pub fn prices(&self) -> &Prices {
        &self.prices
    }

    /// The LLM client.
    pub fn client(&self) -> &llm::Client {
        &self.client
    }

    /// The caller's budgets and those of the projects they are members of, with what each
    /// counts so far.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<BudgetView>> {
        caller.need(Scope::Read)?;
        caller.need_unlimited("list budgets")?;
        let projects: Vec<Uuid> = self
            .projects
            .list(caller)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let now = Utc::now();
        let mut out = Vec::new();
        for b in self.store.budgets(caller.user, &projects).await? {
            let scope = match b.project_id {
                Some(p) => BudgetScope::Project(p),
                None => BudgetScope::User(b.owner_id),
            };
            let spent = self.store.spent(scope, since(b.period, now)).await?;
            let current = b.alert_period.as_deref() == Some(&period_key(b.period, now));
            out.push(BudgetView {
                limit_usd: micros_to_usd(b.limit_micros),
                spent_usd: micros_to_usd(spent),
                alert_level: (current && b.alert_level > 0).then_some(b.alert_level),
                budget: b,
            });
        }
        Ok(out)
    }

    /// Sets (or replaces) a budget: the caller's own, or a project's (by its owner).
    pub async fn set(&self, caller: Caller, input: BudgetInput) -> DomainResult<Budget> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("set budgets")?;
        if !(input.limit_usd.is_finite() && (0.0..=MAX_BUDGET_USD).contains(&input.limit_usd)) {
            return Err(DomainError::Invalid(format!(
                "limit_usd is 0 to {MAX_BUDGET_USD}"
            )));
        }
        if let Some(project) = input.project_id {
            self.projects
                .managed(caller, project, &[Role::Owner], "set its budget")
                .await?;
        }
        let budget = self
            .store
            .put_budget(&Budget {
                id: Uuid::now_v7(),
                owner_id: caller.user,
                project_id: input.project_id,
                period: input.period,
                limit_micros: usd_to_micros(input.limit_usd),
                updated_at: Utc::now(),
                alert_level: 0,
                alert_period: None,
            })
            .await?;
        audit::record(Record {
            caller,
            action: "budget.set",
            subject: budget.id,
        });
        Ok(budget)
    }

    /// Removes a budget the caller set.
    pub async fn delete(&self, caller: Caller, id: Uuid) -> DomainResult<()> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("remove budgets")?;
        if !self.store.delete_budget(caller.user, id).await? {
            return Err(DomainError::NotFound("budget"));
        }
        audit::record(Record {
            caller,
            action: "budget.delete",
            subject: id,
        });
        Ok(())
    }

    /// The limits that apply to a call for `who`, now.
    async fn checks(&self, who: &CallFor, now: DateTime<Utc>) -> DomainResult<Vec<BudgetCheck>> {
        let mut checks = Vec::new();
        if let Some(r) = &who.run
            && let Some(limit) = r.budget_micros
        {
            checks.push(BudgetCheck {
                scope: BudgetScope::Run(r.run),
                since: None,
                limit_micros: limit,
            });
        }
        let projects: Vec<Uuid> = who.project.into_iter().collect();
        for b in self.store.budgets(who.user, &projects).await? {
            let scope = match b.project_id {
                Some(p) => BudgetScope::Project(p),
                None => BudgetScope::User(b.owner_id),
            };
            checks.push(BudgetCheck {
                scope,
                since: since(b.period, now),
                limit_micros: b.limit_micros,
            });
        }
        Ok(checks)
    }

    /// Makes one call for `who` through `provider` (at `endpoint`), journaled and within its
    /// budgets, streaming its text to `on_text`. A call of a run whose answer is already
    /// recorded is not made again: the recorded answer comes back.
    pub async fn call(
        &self,
        who: &CallFor,
        provider: &LlmProvider,
        endpoint: &Endpoint,
        request: &ChatRequest,
        on_text: llm::OnText<'_>,
    ) -> Result<ChatResponse, CallError> {
        if let Some(r) = &who.run
            && let Some(done) = self
                .store
                .run_call(r.run, &r.stage, r.attempt, r.seq)
                .await
                .map_err(DomainError::from)?
        {
            if done.state == LlmCallState::Reserved {
                self.abandon(&done).await?;
                return Err(CallError::Interrupted);
            }
            // One an earlier resume settled as interrupted: the place stays used up.
            if done.error_code.as_deref() == Some(INTERRUPTED) {
                return Err(CallError::Interrupted);
            }
            return recorded(done);
        }
        let prices = self.prices.table();
        let worst = prices.cost_micros(
            &request.model,
            &llm::Usage {
                input_tokens: request.estimated_input_tokens(),
                output_tokens: u64::from(request.max_tokens),
                cached_tokens: 0,
                estimated: true,
            },
        );
        let request_json =
            serde_json::to_string(request).map_err(|e| DomainError::Internal(e.to_string()))?;
        let reserved = self
            .reserve(who, provider, &request.model, worst, request_json)
            .await?;
        let result = self.client.chat(endpoint, request, on_text).await;
        let prompt = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == llm::MessageRole::User)
            .map(|m| m.content.clone());
        let (outcome, relay) = match &result {
            Ok(r) => {
                let cost = prices.cost_micros(&request.model, &r.usage);
                let mut parsed = r.clone();
                parsed.raw = String::new();
                let outcome = CallOutcome {
                    state: LlmCallState::Succeeded,
                    response_model: r.model.clone(),
                    response_id: r.id.clone(),
                    finish_reason: r.finish_reason.clone(),
                    input_tokens: r.usage.input_tokens as i64,
                    output_tokens: r.usage.output_tokens as i64,
                    cached_tokens: r.usage.cached_tokens as i64,
                    usage_estimated: r.usage.estimated,
                    cost_micros: cost,
                    latency_ms: Some(r.latency_ms as i64),
                    ttft_ms: r.ttft_ms.map(|t| t as i64),
                    attempts: r.attempts as i32,
                    error_code: None,
                    error: None,
                    response: serde_json::to_string(&parsed).ok(),
                    raw_response: Some(r.raw.clone()),
                    now: Utc::now(),
                };
                let relay = RelayOutcome {
                    model: r.model.clone(),
                    usage: r.usage,
                    cost_micros: cost,
                    latency_ms: Some(r.latency_ms as i64),
                    ttft_ms: r.ttft_ms.map(|t| t as i64),
                    finish_reason: r.finish_reason.clone(),
                    response: Some(r.text.clone()),
                };
                (outcome, Ok(relay))
            }
            Err(e) => (failed_outcome(e.code(), e.to_string()), Err(e.code())),
        };
        self.settle(
            reserved,
            who,
            provider,
            &request.model,
            prompt,
            outcome,
            relay,
        )
        .await?;
        Ok(result?)
    }

    /// Journals a call for `who` to `model` through `provider`, holding `worst` micro-dollars
    /// against every budget that applies; refused (and nothing journaled) if one would be
    /// passed. `request` is the journal's copy of the request.
    pub async fn reserve(
        &self,
        who: &CallFor,
        provider: &LlmProvider,
        model: &str,
        worst: i64,
        request: String,
    ) -> Result<Reserved, CallError> {
        let now = Utc::now();
        let checks = self.checks(who, now).await?;
        // Without a price nothing can be held against a budget: with one, refuse.
        if !checks.is_empty() && self.prices.table().price(model).is_none() {
            self.metrics
                .llm_call(provider.kind.as_str(), "budget_exceeded", None);
            return Err(CallError::Budget(format!(
                "the model {model} has no price in the relay's price table, and a budget applies: \
                 ask the operator to price it (a local model can be priced at 0)"
            )));
        }
        let id = Uuid::now_v7();
        let call = NewLlmCall {
            id,
            owner_id: who.user,
            project_id: who.project,
            run: who
                .run
                .as_ref()
                .map(|r| (r.run, r.stage.clone(), r.attempt, r.seq)),
            provider_id: Some(provider.id),
            provider: provider.kind,
            operation: "chat",
            request_model: model.to_owned(),
            reserved_micros: worst,
            request,
            now,
        };
        if checks.is_empty() && who.run.is_none() {
            return Ok(Reserved {
                id,
                guard: Unsettled {
                    store: self.store.clone(),
                    id,
                    armed: false,
                },
                deferred: Some(call),
            });
        }
        let reservation = self
            .store
            .reserve_call(&call, &checks)
            .await
            .map_err(DomainError::from)?;
        if let Reservation::Refused {
            check,
            spent_micros,
        } = reservation
        {
            self.metrics
                .llm_call(provider.kind.as_str(), "budget_exceeded", None);
            let c = &checks[check];
            let what = match c.scope {
                BudgetScope::Run(_) => "the run's budget",
                BudgetScope::Project(_) => "the project's budget",
                BudgetScope::User(_) => "your budget",
            };
            return Err(CallError::Budget(format!(
                "{what} of ${:.2}{} would be passed: ${:.4} spent, and this call may cost up to ${:.4}",
                micros_to_usd(c.limit_micros),
                if c.since.is_some() { " a month" } else { "" },
                micros_to_usd(spent_micros),
                micros_to_usd(worst),
            )));
        }
        Ok(Reserved {
            id,
            guard: Unsettled {
                store: self.store.clone(),
                id,
                armed: true,
            },
            deferred: None,
        })
    }

    /// Settles a reserved call to how it ended, records its activity (a succeeded one) in the
    /// same transaction, and raises the budget alerts it crossed.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        &self,
        mut reserved: Reserved,
        who: &CallFor,
        provider: &LlmProvider,
        model: &str,
        prompt: Option<String>,
        outcome: CallOutcome,
        relay: Result<RelayOutcome, &'static str>,
    ) -> Result<(), CallError> {
        match &relay {
            Ok(r) => self.metrics.llm_call(
                provider.kind.as_str(),
                "ok",
                Some((
                    r.usage.input_tokens,
                    r.usage.output_tokens,
                    r.usage.cached_tokens,
                    r.cost_micros,
                    r.latency_ms.unwrap_or(0) as f64 / 1000.0,
                )),
            ),
            Err(code) => self.metrics.llm_call(provider.kind.as_str(), code, None),
        }
        let activity = match &relay {
            Ok(r) => Some(
                relay_activity(
                    &self.store,
                    &RelayCall {
                        call_id: reserved.id,
                        user: who.user,
                        project: who.project,
                        source: who.source,
                        tool: who.tool.clone(),
                        category: None,
                        provider: provider.kind.as_str().to_owned(),
                        model: model.to_owned(),
                        prompt,
                        conversation_id: who.run.as_ref().map(|r| r.run.to_string()),
                    },
                    r,
                )
                .await?,
            ),
            Err(_) => None,
        };
        // A call no budget applied to when it was reserved has no alert to raise.
        let budgeted = reserved.deferred.is_none();
        match reserved.deferred.take() {
            Some(call) => {
                self.store
                    .record_call(&call, &outcome, activity.as_ref())
                    .await
            }
            None => {
                self.store
                    .settle_call(reserved.id, &outcome, activity.as_ref())
                    .await
            }
        }
        .map_err(DomainError::from)?;
        reserved.guard.armed = false;
        if let Some(a) = &activity {
            self.metrics.activities(a.source.as_str(), "created", 1);
            // Live: the dashboard's activity list, and anyone waiting for the record.
            let event = axum::body::Bytes::from(
                serde_json::json!({
                    "type": "ai_activity",
                    "activity": {
                        "id": a.id,
                        "project_id": a.project_id,
                        "source": a.source,
                        "tool": a.tool,
                        "model": a.model,
                        "cost_micros": a.cost_micros,
                        "occurred_at": a.occurred_at,
                    },
                })
                .to_string(),
            );
            let audience = match a.project_id {
                Some(p) => self.store.project_audience(p).await.unwrap_or_default(),
                None => vec![a.owner_id],
            };
            for user in audience {
                self.bus.publish(user, event.clone());
            }
        }
        if budgeted
            && outcome.cost_micros > 0
            && let Err(e) = self.raise_alerts(who).await
        {
            tracing::warn!(error = %e, "cannot check budget alerts");
        }
        Ok(())
    }

    /// Raises the alerts (80% and 100% of a budget in its period) that `who`'s spending
    /// crossed, each once per period, to the budget's audience.
    async fn raise_alerts(&self, who: &CallFor) -> DomainResult<()> {
        let now = Utc::now();
        let projects: Vec<Uuid> = who.project.into_iter().collect();
        for b in self.store.budgets(who.user, &projects).await? {
            let scope = match b.project_id {
                Some(p) => BudgetScope::Project(p),
                None => BudgetScope::User(b.owner_id),
            };
            let spent = self.store.spent(scope, since(b.period, now)).await?;
            let level = if spent >= b.limit_micros {
                100
            } else if spent.saturating_mul(5) >= b.limit_micros.saturating_mul(4) {
                80
            } else {
                continue;
            };
            let key = period_key(b.period, now);
            let alert = Alert {
                budget_id: b.id,
                project_id: b.project_id,
                period: b.period,
                level,
                limit_usd: micros_to_usd(b.limit_micros),
                spent_usd: micros_to_usd(spent),
            };
            let webhook = WebhookEvent {
                id: Uuid::now_v7(),
                kind: WebhookEventKind::BudgetThreshold,
                owner_id: b.owner_id,
                project_id: b.project_id,
                endpoint_id: None,
                subject_id: Some(b.id),
                data: serde_json::to_string(&alert).unwrap_or_default(),
                created_at: now,
            };
            if !self
                .store
                .raise_budget_alert(b.id, level, &key, &webhook)
                .await?
            {
                continue;
            }
            self.metrics
                .budget_alert(if level == 100 { "100" } else { "80" });
            self.webhooks.notify_one();
            let audience = match b.project_id {
                Some(p) => self.store.project_audience(p).await?,
                None => vec![b.owner_id],
            };
            let event = serde_json::json!({ "type": "budget_alert", "alert": alert });
            let bytes = axum::body::Bytes::from(event.to_string());
            for user in audience {
                self.bus.publish(user, bytes.clone());
            }
        }
        Ok(())
    }

    /// Settles a call an interrupted attempt left reserved (the relay stopped while it was in
    /// flight), so that it no longer holds budget. Its number is not used again.
    pub async fn abandon(&self, call: &LlmCall) -> DomainResult<()> {
        if call.state == LlmCallState::Reserved {
            self.store
                .settle_call(
                    call.id,
                    &failed_outcome(
                        "interrupted",
                        "the relay stopped while the call was in flight".into(),
                    ),
                    None,
                )
                .await?;
        }
        Ok(())
    }

    /// The journaled call of a run at this place, if any.
    pub async fn journaled(&self, r: &RunCall) -> DomainResult<Option<LlmCall>> {
        Ok(self
            .store
            .run_call(r.run, &r.stage, r.attempt, r.seq)
            .await?)
    }
}

/// A failed call's outcome.
pub fn failed_outcome(code: &str, error: String) -> CallOutcome {
    CallOutcome {
        state: LlmCallState::Failed,
        response_model: None,
        response_id: None,
        finish_reason: None,
        input_tokens: 0,
        output_tokens: 0,
        cached_tokens: 0,
        usage_estimated: false,
        cost_micros: 0,
        latency_ms: None,
        ttft_ms: None,
        attempts: 0,
        error_code: Some(code.to_owned()),
        error: Some(error),
        response: None,
        raw_response: None,
        now: Utc::now(),
    }
}

/// The answer a journaled call recorded.
fn recorded(call: LlmCall) -> Result<ChatResponse, CallError> {
    match call.state {
        LlmCallState::Succeeded => {
            let text = call.response.unwrap_or_default();
            let mut r: ChatResponse = serde_json::from_str(&text)
                .map_err(|e| DomainError::Internal(format!("a recorded answer: {e}")))?;
            r.raw = call.raw_response.unwrap_or_default();
            Ok(r)
        }
        // A failed call is not made again at the same place.
        _ => Err(CallError::Provider(LlmError::Transport(
            call.error.unwrap_or_else(|| "the call failed".into()),
        ))),
    }
}
