//! Operations: `GET /metrics` in the Prometheus text format, and the HTTP middleware that counts
//! and times every request and gives it a request id.
//!
//! Metrics (all prefixed `fulcrum_`): `agents_connected`; `agent_frames_total` and
//! `agent_bytes_total` by `direction` (`in`/`out`); `events_sent_total` (messages written to
//! dashboard sockets); `http_requests_total` by `method`, `route` and `status`;
//! `http_request_duration_seconds` by `method` and `route`; `db_pool_connections` by `state`
//! (`idle`/`in_use`); `task_dispatch_seconds` (a task handed to its agent's session to the agent
//! reporting its process started); `login_failures_total`; `login_throttled_total` by `limit`
//! (`account`/`address`); `access_changes_total` (memberships, logins and tokens that lost
//! access, told to open streams); `streams_cut_total` by `stream` (`follow`, `events`, `mcp`:
//! open streams stopped because their access went away); `secrets_sealed_total`;
//! `secrets_opened_total` by `outcome` (`ok`/`failed`: a failure is a wrong key or a changed
//! ciphertext); `llm_calls_total` by `provider` and `outcome`, `llm_tokens_total` by
//! `direction`, `llm_cost_micros_total`, `llm_call_duration_seconds`; `pipeline_runs_total`
//! and `pipeline_stages_total` by `state`, `pipeline_runs_driven`, `pipeline_step_seconds`.
//!
//! Every request gets an id: the client's `X-Request-Id` if it sent a sane one, else a new
//! UUID. It is returned in `X-Request-Id` and carried by the request's tracing span, so every
//! log line the request causes (in JSON logs, a `request_id` field) can be tied to it.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tracing::Instrument;

use crate::state::AppState;

/// Labels of an HTTP request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Labels of an HTTP request duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// A direction on the agent connections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// A login limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

/// A kind of long-lived stream.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: &'static str,
}

/// A token check: the door's kind and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenCheckLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// Something the OAuth server did.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OAuthLabels {
    event: &'static str,
}

/// An LLM call's provider format and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmCallLabels {
    provider: &'static str,
    outcome: &'static str,
}

/// Token direction of LLM calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    direction: &'static str,
}

/// A state pipeline runs or stages reach.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Activities by how they came and what became of them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabels {
    source: &'static str,
    outcome: &'static str,
}

/// Gateway requests by wire format and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    format: &'static str,
    outcome: &'static str,
}

/// Budget alerts by level.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    level: &'static str,
}

/// A state of database connections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// The relay's metrics.
pub struct Metrics {
    registry: Registry,
    agents_connected: Gauge,
    frames: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    events_sent: Counter,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    pool: Family<PoolLabels, Gauge>,
    dispatch: Histogram,
    login_failures: Counter,
    login_throttled: Family<LimitLabels, Counter>,
    access_changes: Counter,
    streams_cut: Family<StreamLabels, Counter>,
    secrets_sealed: Counter,
    secrets_opened: Family<OutcomeLabels, Counter>,
    token_checks: Family<TokenCheckLabels, Counter>,
    oauth: Family<OAuthLabels, Counter>,
    llm_calls: Family<LlmCallLabels, Counter>,
    llm_tokens: Family<TokenLabels, Counter>,
    llm_cost: Counter,
    llm_seconds: Histogram,
    runs: Family<StateLabels, Counter>,
    stages: Family<StateLabels, Counter>,
    activities: Family<ActivityLabels, Counter>,
    gateway: Family<GatewayLabels, Counter>,
    budget_alerts: Family<AlertLabels, Counter>,
    runs_driven: Gauge,
    transition_seconds: Histogram,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    webhook_events: Counter,
    webhook_lag: Histogram,
    webhook_pending: Gauge,
}

/// Whether an operation worked.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fulcrum");
        let agents_connected = Gauge::default();
        registry.register(
            "agents_connected",
            "Agent sessions open on this node",
            agents_connected.clone(),
        );
        let frames = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "agent_frames",
            "Protocol frames on agent connections",
            frames.clone(),
        );
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "agent_bytes",
            "Protocol frame bytes on agent connections",
            bytes.clone(),
        );
        let events_sent = Counter::default();
        registry.register(
            "events_sent",
            "Messages written to dashboard event sockets",
            events_sent.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            durations.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register("db_pool_connections", "Database connections", pool.clone());
        let dispatch = Histogram::new(exponential_buckets(0.0002, 2.0, 16));
        registry.register(
            "task_dispatch_seconds",
            "A task handed to its agent's session until the agent reports it started",
            dispatch.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "login_failures",
            "Logins refused for a wrong e-mail or password",
            login_failures.clone(),
        );
        let login_throttled = Family::<LimitLabels, Counter>::default();
        registry.register(
            "login_throttled",
            "Logins refused by the failed-login limits, by limit",
            login_throttled.clone(),
        );
        let access_changes = Counter::default();
        registry.register(
            "access_changes",
            "Lost access (memberships, logins, tokens) told to open streams",
            access_changes.clone(),
        );
        let streams_cut = Family::<StreamLabels, Counter>::default();
        registry.register(
            "streams_cut",
            "Open streams stopped because their access went away, by stream",
            streams_cut.clone(),
        );
        let secrets_sealed = Counter::default();
        registry.register(
            "secrets_sealed",
            "Secrets sealed under the current master key",
            secrets_sealed.clone(),
        );
        let secrets_opened = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "secrets_opened",
            "Stored secrets opened, by outcome (ok, failed)",
            secrets_opened.clone(),
        );
        let token_checks = Family::<TokenCheckLabels, Counter>::default();
        registry.register(
            "token_checks",
            "Tokens presented at a door, by the door's kind and outcome (ok, invalid_token, \
             wrong_token_kind, expired_token, account_deactivated, rate_limited)",
            token_checks.clone(),
        );
        let oauth = Family::<OAuthLabels, Counter>::default();
        registry.register(
            "oauth",
            "OAuth server events (registered, consented, denied, granted, refreshed, refused, \
             replayed)",
            oauth.clone(),
        );
        let llm_calls = Family::<LlmCallLabels, Counter>::default();
        registry.register(
            "llm_calls",
            "LLM calls made, by provider format and outcome (ok, budget_exceeded, or the \
             failure's code)",
            llm_calls.clone(),
        );
        let llm_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "llm_tokens",
            "Tokens of LLM calls, by direction (input, output, cached)",
            llm_tokens.clone(),
        );
        let llm_cost = Counter::default();
        registry.register(
            "llm_cost_micros",
            "What LLM calls cost, in micro-dollars, from the price table",
            llm_cost.clone(),
        );
        let llm_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "llm_call_duration_seconds",
            "LLM calls from request to the end of the answer",
            llm_seconds.clone(),
        );
        let activities = Family::<ActivityLabels, Counter>::default();
        registry.register(
            "ai_activities",
            "AI activities by source (api, otlp, gateway, pipeline, assistant) and outcome \
             (created, duplicate, rejected); OTLP metric points (otlp, counter); commits linked \
             to activities (commit, linked)",
            activities.clone(),
        );
        let gateway = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "llm_gateway_requests",
            "Requests to the LLM gateway by format (openai, anthropic) and outcome (ok: \
             forwarded, whatever the provider answered; budget_exceeded, rate_limited, \
             no_provider, refused, upstream_error, invalid)",
            gateway.clone(),
        );
        let budget_alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "budget_alerts",
            "Budget alerts raised, by level (80, 100)",
            budget_alerts.clone(),
        );
        let runs = Family::<StateLabels, Counter>::default();
        registry.register(
            "pipeline_runs",
            "Pipeline runs that reached a state (succeeded, failed, canceled, paused)",
            runs.clone(),
        );
        let stages = Family::<StateLabels, Counter>::default();
        registry.register(
            "pipeline_stages",
            "Pipeline stage attempts that reached a state",
            stages.clone(),
        );
        let runs_driven = Gauge::default();
        registry.register(
            "pipeline_runs_driven",
            "Pipeline runs this node holds the lease of and drives now",
            runs_driven.clone(),
        );
        let transition_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "pipeline_step_seconds",
            "Time the engine takes to record a stage's change and advance its run",
            transition_seconds.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Outgoing webhook attempts by outcome (delivered; retry: failed, tried again later; \
             failed: no attempts left; gone: the endpoint answered 410 and was disabled)",
            webhook_attempts.clone(),
        );
        let webhook_events = Counter::default();
        registry.register(
            "webhook_events",
            "Events fanned out to outgoing webhook endpoints",
            webhook_events.clone(),
        );
        let webhook_lag = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "webhook_delivery_seconds",
            "Time from an event to its delivery (the endpoint's 2xx answer)",
            webhook_lag.clone(),
        );
        let webhook_pending = Gauge::default();
        registry.register(
            "webhook_pending",
            "Outgoing webhook deliveries waiting for their turn or their next attempt",
            webhook_pending.clone(),
        );
        Self {
            webhook_attempts,
            webhook_events,
            webhook_lag,
            webhook_pending,
            activities,
            gateway,
            budget_alerts,
            llm_calls,
            llm_tokens,
            llm_cost,
            llm_seconds,
            runs,
            stages,
            runs_driven,
            transition_seconds,
            token_checks,
            oauth,
            secrets_sealed,
            secrets_opened,
            login_failures,
            login_throttled,
            access_changes,
            streams_cut,
            registry,
            agents_connected,
            frames,
            bytes,
            events_sent,
            requests,
            durations,
            pool,
            dispatch,
        }
    }
}

impl Metrics {
    /// Counts a frame received from an agent.
    pub fn frame_in(&self, bytes: usize) {
        self.count(DirectionLabels { direction: "in" }, bytes);
    }

    /// Counts a frame sent to an agent.
    pub fn frame_out(&self, bytes: usize) {
        self.count(DirectionLabels { direction: "out" }, bytes);
    }

    fn count(&self, labels: DirectionLabels, bytes: usize) {
        self.frames.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// Counts messages written to a dashboard socket.
    pub fn events_sent(&self, n: u64) {
        self.events_sent.inc_by(n);
    }

    /// Records a task's dispatch latency.
    pub fn dispatched(&self, seconds: f64) {
        self.dispatch.observe(seconds);
    }

    /// Counts a failed login.
    pub fn login_failed(&self) {
        self.login_failures.inc();
    }

    /// Counts a login refused by a limit (`account` or `address`).
    pub fn login_throttled(&self, limit: &'static str) {
        self.login_throttled
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Counts a loss of access told to open streams (or a revoked token).
    pub fn access_changed(&self) {
        self.access_changes.inc();
    }

    /// Counts a secret sealed.
    pub fn secret_sealed(&self) {
        self.secrets_sealed.inc();
    }

    /// Counts a stored secret opened (or not).
    pub fn secret_opened(&self, ok: bool) {
        self.secrets_opened
            .get_or_create(&OutcomeLabels {
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Counts a token presented at a door that takes `kind`, by how the check ended.
    pub fn token_checked(&self, kind: &'static str, outcome: &'static str) {
        self.token_checks
            .get_or_create(&TokenCheckLabels { kind, outcome })
            .inc();
    }

    /// Counts an OAuth server event.
    pub fn oauth(&self, event: &'static str) {
        self.oauth.get_or_create(&OAuthLabels { event }).inc();
    }

    /// Counts an LLM call and what it used.
    pub fn llm_call(
        &self,
        provider: &'static str,
        outcome: &'static str,
        usage: Option<(u64, u64, u64, i64, f64)>,
    ) {
        self.llm_calls
            .get_or_create(&LlmCallLabels { provider, outcome })
            .inc();
        if let Some((input, output, cached, cost, seconds)) = usage {
            for (direction, n) in [("input", input), ("output", output), ("cached", cached)] {
                self.llm_tokens
                    .get_or_create(&TokenLabels { direction })
                    .inc_by(n);
            }
            self.llm_cost.inc_by(cost.max(0) as u64);
            self.llm_seconds.observe(seconds);
        }
    }

    /// Counts `n` activities from `source` with `outcome`.
    pub fn activities(&self, source: &'static str, outcome: &'static str, n: u64) {
        if n > 0 {
            self.activities
                .get_or_create(&ActivityLabels { source, outcome })
                .inc_by(n);
        }
    }

    /// Counts a gateway request.
    pub fn gateway(&self, format: &'static str, outcome: &'static str) {
        self.gateway
            .get_or_create(&GatewayLabels { format, outcome })
            .inc();
    }

    /// Counts an outgoing webhook attempt with `outcome`.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts `n` events fanned out to webhook endpoints.
    pub fn webhook_events(&self, n: u64) {
        self.webhook_events.inc_by(n);
    }

    /// Records a delivery `seconds` after its event.
    pub fn webhook_delivered(&self, seconds: f64) {
        self.webhook_lag.observe(seconds);
    }

    /// Sets the deliveries pending.
    pub fn webhook_pending(&self, n: u64) {
        self.webhook_pending.set(n as i64);
    }

    /// Counts a budget alert.
    pub fn budget_alert(&self, level: &'static str) {
        self.budget_alerts
            .get_or_create(&AlertLabels { level })
            .inc();
    }

    /// Counts a pipeline run reaching `state`.
    pub fn pipeline_run(&self, state: &'static str) {
        self.runs.get_or_create(&StateLabels { state }).inc();
    }

    /// Counts a stage attempt reaching `state`.
    pub fn pipeline_stage(&self, state: &'static str) {
        self.stages.get_or_create(&StateLabels { state }).inc();
    }

    /// Times one recorded engine step.
    pub fn pipeline_step(&self, seconds: f64) {
        self.transition_seconds.observe(seconds);
    }

    /// Moves the count of runs this node drives by `delta`.
    pub fn runs_driven(&self, delta: i64) {
        self.runs_driven.inc_by(delta);
    }

    /// Counts an open stream stopped because its access went away.
    pub fn stream_cut(&self, stream: &'static str) {
        self.streams_cut
            .get_or_create(&StreamLabels { stream })
            .inc();
    }

    /// The text exposition, with the gauges read now.
    fn render(&self, app: &AppState) -> String {
        self.agents_connected.set(app.sessions.len() as i64);
        let (size, idle) = app.store.pool_stats();
        self.pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(idle));
        self.pool
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(i64::from(size.saturating_sub(idle)));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// `GET /metrics`.
pub async fn endpoint(State(app): State<AppState>) -> Response {
    let body = app.metrics.render(&app);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// A client's request id, if it is short and plain enough to log.
fn client_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get("x-request-id")?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| v.to_owned())
}

/// Middleware: request id, a span for the request, and its count and duration.
pub async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    // The route template, not the path, so ids do not explode the label space.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = client_request_id(&req).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    app.metrics
        .durations
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}
