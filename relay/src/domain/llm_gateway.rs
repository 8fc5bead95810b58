//! The LLM gateway: OpenAI-compatible Chat Completions and Anthropic-compatible Messages on
//! the relay, so that any tool that takes a base URL is tracked and capped with no other
//! setup. A request is checked against the caller's budgets (its worst case: the input's
//! estimated tokens plus its `max_tokens`, or [`DEFAULT_MAX_TOKENS`] when it names none),
//! sent unchanged to the caller's provider of that format with the provider's stored key,
//! and its answer passed back unchanged as it arrives, while the call is journaled, priced
//! and recorded as an activity like every call the relay makes.
//!
//! The provider: the one named by `X-Fulcrum-Provider`, else the caller's for the project,
//! else the caller's for all projects, else the project owner's for the project. The project:
//! the token's, or `X-Fulcrum-Project` (id or name).

use std::sync::Arc;

use axum::body::Bytes;
use chrono::Utc;
use fulcrum_protocol::kinds::{ActivitySource, LlmCallState, ProviderKind};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{
    Caller, DomainError, Limit,
    activity::{RelayOutcome, tool_name},
    budgets::{Budgets, CallError, CallFor, Reserved, failed_outcome},
    projects::Projects,
    providers::Providers,
};
use crate::{
    llm::{
        Usage,
        forward::{Meter, Metered},
    },
    metrics::Metrics,
    store::{Project, Scope, pipelines::CallOutcome, pipelines::LlmProvider},
};

/// Output tokens reserved for a request that names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Largest request body.
pub const MAX_REQUEST: usize = 4 << 20;

/// What went wrong, in terms every provider's error shape can carry.
#[derive(Debug)]
pub struct GatewayError {
    /// The HTTP status.
    pub status: u16,
    /// What kind of error (`invalid_request`, `authentication`, `permission`, `not_found`,
    /// `budget`, `upstream`).
    pub kind: GatewayErrorKind,
    /// What to tell the caller.
    pub message: String,
}

/// The kinds of gateway errors; each provider format names them its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayErrorKind {
    /// The request is malformed.
    Invalid,
    /// No credential, or a bad one.
    Authentication,
    /// The credential may not do this.
    Permission,
    /// No such project or provider.
    NotFound,
    /// A budget would be passed: nothing was sent.
    Budget,
    /// The token is over its request limit: worth trying again later.
    RateLimited,
    /// The provider could not be reached or failed.
    Upstream,
}

impl GatewayError {
    fn new(status: u16, kind: GatewayErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// The metric's outcome.
    pub fn outcome(&self) -> &'static str {
        match self.kind {
            GatewayErrorKind::Invalid => "invalid",
            GatewayErrorKind::Authentication | GatewayErrorKind::Permission => "refused",
            GatewayErrorKind::NotFound => "no_provider",
            GatewayErrorKind::Budget => "budget_exceeded",
            GatewayErrorKind::RateLimited => "rate_limited",
            GatewayErrorKind::Upstream => "upstream_error",
        }
    }
}

impl From<DomainError> for GatewayError {
    fn from(e: DomainError) -> Self {
        use GatewayErrorKind as K;
        match &e {
            DomainError::NotFound(_) => Self::new(404, K::NotFound, e.to_string()),
            DomainError::Invalid(_) => Self::new(400, K::Invalid, e.to_string()),
            DomainError::MissingScope(_) | DomainError::Denied { .. } => {
                Self::new(403, K::Permission, e.to_string())
            }
            DomainError::Conflict { .. } => Self::new(404, K::NotFound, e.to_string()),
            _ => {
                tracing::warn!(error = %e, "gateway request failed");
                Self::new(500, K::Upstream, "the relay failed; try again")
            }
        }
    }
}

/// A request to the gateway.
#[derive(Debug)]
pub struct GatewayRequest {
    /// The format (the route it came to).
    pub kind: ProviderKind,
    /// The body, as sent.
    pub body: Bytes,
    /// `X-Fulcrum-Project`: a project id or name.
    pub project: Option<String>,
    /// `X-Fulcrum-Provider`: a provider's name.
    pub provider: Option<String>,
    /// `X-Fulcrum-Tool`, else guessed from the `User-Agent`.
    pub tool: Option<String>,
    /// The caller's `User-Agent`.
    pub user_agent: Option<String>,
    /// The caller's `anthropic-version`.
    pub anthropic_version: Option<String>,
}

/// An answer's body.
pub enum GatewayBody {
    /// All of it.
    Whole(Bytes),
    /// Its pieces as they arrive.
    Stream(mpsc::Receiver<Bytes>),
}

/// The provider's answer, passed on.
pub struct GatewayAnswer {
    /// Its status.
    pub status: u16,
    /// Its content type.
    pub content_type: Option<String>,
    /// Its body.
    pub body: GatewayBody,
}

/// The gateway.
pub struct LlmGateway {
    budgets: Arc<Budgets>,
    providers: Arc<Providers>,
    projects: Arc<Projects>,
    metrics: Arc<Metrics>,
}

/// The tool a `User-Agent` names, for those that say who they are.
fn tool_from_agent(agent: &str) -> &'static str {
    let a = agent.to_ascii_lowercase();
    if a.starts_with("claude-cli") || a.contains("claude-code") {
        "claude-code"
    } else if a.contains("codex") {
        "codex"
    } else if a.contains("cursor") {
        "cursor"
    } else if a.contains("copilot") {
        "copilot"
    } else if a.starts_with("openai/") {
        "openai-sdk"
    } else if a.starts_with("anthropic/") {
        "anthropic-sdk"
    } else {
        "gateway"
    }
}

/// The text of the last user message, for the activity.
fn last_prompt(body: &Value) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let m = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    let content = m.get("content")?;
    if let Some(t) = content.as_str() {
        return Some(t.to_owned());
    }
    let parts: Vec<&str> = content
        .as_array()?
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

impl LlmGateway {
    /// The gateway, spending through `budgets`, with providers from `providers`.
    pub fn new(
        budgets: Arc<Budgets>,
        providers: Arc<Providers>,
        projects: Arc<Projects>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            budgets,
            providers,
            projects,
            metrics,
        }
    }

    async fn project(
        &self,
        caller: Caller,
        asked: Option<&str>,
    ) -> Result<Option<Project>, GatewayError> {
        let asked = match (asked, caller.grant.limit) {
            (None, Limit::Project(p)) => Some(p.to_string()),
            (a, _) => a.map(str::to_owned),
        };
        // No project named: nothing to look up (the common case, on the hot path).
        let Some(asked) = asked else { return Ok(None) };
        let reachable = self.projects.reachable(caller).await?;
        let found = reachable
            .into_iter()
            .find(|p| p.id.to_string() == asked || p.name == asked);
        match found {
            Some(p) => Ok(Some(p)),
            None => Err(GatewayError::new(
                404,
                GatewayErrorKind::NotFound,
                format!("no project {asked:?} of yours (X-Fulcrum-Project)"),
            )),
        }
    }

    /// Forwards one request for `caller`.
    pub async fn forward(
        &self,
        caller: Caller,
        req: GatewayRequest,
    ) -> Result<GatewayAnswer, GatewayError> {
        let format = req.kind.as_str();
        let result = self.forward_inner(caller, req).await;
        match &result {
            Ok(_) => self.metrics.gateway(format, "ok"),
            Err(e) => self.metrics.gateway(format, e.outcome()),
        }
        result
    }

    async fn forward_inner(
        &self,
        caller: Caller,
        req: GatewayRequest,
    ) -> Result<GatewayAnswer, GatewayError> {
        use GatewayErrorKind as K;
        caller.need(Scope::Run).map_err(GatewayError::from)?;
        if req.body.len() > MAX_REQUEST {
            return Err(GatewayError::new(
                413,
                K::Invalid,
                format!("the request is over {MAX_REQUEST} bytes"),
            ));
        }
        let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
            GatewayError::new(400, K::Invalid, format!("the body is not JSON: {e}"))
        })?;
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty() && m.len() <= 200)
            .ok_or_else(|| GatewayError::new(400, K::Invalid, "model is required"))?
            .to_owned();
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let max_tokens = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64))
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(1 << 24);
        let tool = match &req.tool {
            Some(t) => tool_name(t).map_err(|e| GatewayError::new(400, K::Invalid, e))?,
            None => tool_from_agent(req.user_agent.as_deref().unwrap_or("")).to_owned(),
        };
        let project = self.project(caller, req.project.as_deref()).await?;
        let provider = self
            .providers
            .for_gateway(
                caller.user,
                project.as_ref(),
                req.kind,
                req.provider.as_deref(),
            )
            .await?;
        let endpoint = self.providers.endpoint(&provider).await?;
        // OpenAI streams report usage only when asked: ask, and drop the chunk if the caller
        // did not.
        let mut send = body.clone();
        let mut drop_usage = false;
        if stream && req.kind == ProviderKind::Openai {
            let asked = body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !asked && let Some(o) = send.as_object_mut() {
                let opts = o
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(opts) = opts.as_object_mut() {
                    opts.insert("include_usage".into(), Value::Bool(true));
                    drop_usage = true;
                }
            }
        }
        let input_estimate = (req.body.len() as u64).div_ceil(4);
        let worst = self.budgets.prices().table().cost_micros(
            &model,
            &Usage {
                input_tokens: input_estimate,
                output_tokens: max_tokens,
                cached_tokens: 0,
                estimated: true,
            },
        );
        let who = CallFor {
            user: caller.user,
            project: project.as_ref().map(|p| p.id),
            run: None,
            source: ActivitySource::Gateway,
            tool,
        };
        let journal = serde_json::json!({
            "gateway": req.kind.as_str(),
            "model": model,
            "stream": stream,
            "max_tokens": max_tokens,
            "messages": body.get("messages").and_then(Value::as_array).map_or(0, Vec::len),
        })
        .to_string();
        let reserved = match self
            .budgets
            .reserve(&who, &provider, &model, worst, journal)
            .await
        {
            Ok(r) => r,
            Err(CallError::Budget(m)) => return Err(GatewayError::new(429, K::Budget, m)),
            Err(CallError::Domain(e)) => return Err(e.into()),
            Err(e) => return Err(GatewayError::new(502, K::Upstream, e.to_string())),
        };
        let prompt = last_prompt(&body);
        let bytes = serde_json::to_vec(&send)
            .map_err(|e| GatewayError::new(400, K::Invalid, e.to_string()))?;
        let started = std::time::Instant::now();
        let call = Settle {
            budgets: self.budgets.clone(),
            who,
            provider,
            model,
            prompt,
            started,
        };
        let upstream = match self
            .budgets
            .client()
            .forward(&endpoint, bytes, req.anthropic_version.as_deref())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let message = e.to_string();
                call.failed(reserved, e.code(), message.clone()).await;
                return Err(GatewayError::new(
                    502,
                    K::Upstream,
                    format!("the provider could not be reached: {message}"),
                ));
            }
        };
        let status = upstream.status().as_u16();
        let content_type = upstream
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limits = self.budgets.client().limits().clone();
        if !(200..300).contains(&status) {
            // The provider's own error, passed on as it is.
            let body = read_capped(upstream, 64 << 10).await;
            call.failed(
                reserved,
                "provider_error",
                format!(
                    "the provider answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            )
            .await;
            return Ok(GatewayAnswer {
                status,
                content_type,
                body: GatewayBody::Whole(body),
            });
        }
        let is_stream = stream
            || content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("text/event-stream"));
        if !is_stream {
            let body = match read_limited(upstream, limits.max_response_bytes).await {
                Ok(b) => b,
                Err(m) => {
                    call.failed(reserved, "transport", m.clone()).await;
                    return Err(GatewayError::new(502, K::Upstream, m));
                }
            };
            let mut meter = Meter::new(req.kind, false, limits.max_response_bytes);
            meter.whole(&body);
            call.succeeded(reserved, meter.finish(input_estimate)).await;
            return Ok(GatewayAnswer {
                status,
                content_type,
                body: GatewayBody::Whole(body),
            });
        }
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        let kind = req.kind;
        tokio::spawn(async move {
            let mut meter = Meter::new(kind, drop_usage, limits.max_response_bytes);
            let mut chunks = upstream.bytes_stream();
            let mut total = 0usize;
            let mut failure = None;
            loop {
                let next = tokio::time::timeout(limits.idle_timeout, chunks.next()).await;
                let piece = match next {
                    Err(_) => {
                        failure = Some("the provider went silent".to_owned());
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        failure = Some(e.without_url().to_string());
                        break;
                    }
                    Ok(Some(Ok(p))) => p,
                };
                total += piece.len();
                if total > limits.max_response_bytes {
                    failure = Some("the answer is over the relay's size limit".to_owned());
                    break;
                }
                let pass = match meter.stream(&piece) {
                    Ok(p) => p,
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                };
                if !pass.is_empty() && tx.send(Bytes::from(pass)).await.is_err() {
                    // The caller hung up: what was used so far is still recorded.
                    break;
                }
            }
            let rest = meter.rest();
            if !rest.is_empty() {
                let _ = tx.send(Bytes::from(rest)).await;
            }
            drop(tx);
            let metered = meter.finish(input_estimate);
            match failure {
                Some(m) if !metered.complete => call.failed(reserved, "transport", m).await,
                _ => call.succeeded(reserved, metered).await,
            }
        });
        Ok(GatewayAnswer {
            status,
            content_type,
            body: GatewayBody::Stream(rx),
        })
    }
}

/// What settling a gateway call needs.
struct Settle {
    budgets: Arc<Budgets>,
    who: CallFor,
    provider: LlmProvider,
    model: String,
    prompt: Option<String>,
    started: std::time::Instant,
}

impl Settle {
    async fn succeeded(self, reserved: Reserved, m: Metered) {
        let cost = self
            .budgets
            .prices()
            .table()
            .cost_micros(&self.model, &m.usage);
        let latency = self.started.elapsed().as_millis() as i64;
        let outcome = CallOutcome {
            state: LlmCallState::Succeeded,
            response_model: m.model.clone(),
            response_id: m.id.clone(),
            finish_reason: m.finish_reason.clone(),
            input_tokens: m.usage.input_tokens as i64,
            output_tokens: m.usage.output_tokens as i64,
            cached_tokens: m.usage.cached_tokens as i64,
            usage_estimated: m.usage.estimated,
            cost_micros: cost,
            latency_ms: Some(latency),
            ttft_ms: m.ttft_ms.map(|t| t as i64),
            attempts: 1,
            error_code: None,
            error: None,
            response: None,
            raw_response: None,
            now: Utc::now(),
        };
        let relay = RelayOutcome {
            model: m.model,
            usage: m.usage,
            cost_micros: cost,
            latency_ms: Some(latency),
            ttft_ms: m.ttft_ms.map(|t| t as i64),
            finish_reason: m.finish_reason,
            response: Some(m.text),
        };
        if let Err(e) = self
            .budgets
            .settle(
                reserved,
                &self.who,
                &self.provider,
                &self.model,
                self.prompt,
                outcome,
                Ok(relay),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot settle a gateway call");
        }
    }

    async fn failed(self, reserved: Reserved, code: &'static str, message: String) {
        if let Err(e) = self
            .budgets
            .settle(
                reserved,
                &self.who,
                &self.provider,
                &self.model,
                None,
                failed_outcome(code, message),
                Err(code),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot settle a gateway call");
        }
    }
}

/// At most `max` bytes of an answer (an error body: the rest is dropped).
async fn read_capped(r: reqwest::Response, max: usize) -> Bytes {
    let mut out = Vec::new();
    let mut s = r.bytes_stream();
    while let Some(Ok(piece)) = s.next().await {
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&piece[..piece.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    Bytes::from(out)
}

/// A whole answer, refused over `max` bytes.
async fn read_limited(r: reqwest::Response, max: usize) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let mut s = r.bytes_stream();
    while let Some(piece) = s.next().await {
        let piece = piece.map_err(|e| e.without_url().to_string())?;
        if out.len() + piece.len() > max {
            return Err(format!("the answer is over {max} bytes"));
        }
        out.extend_from_slice(&piece);
    }
    Ok(Bytes::from(out))
}

/// The caller's error, in the provider's own shape: `(status, body)`.
pub fn error_body(kind: ProviderKind, e: &GatewayError) -> Value {
    use GatewayErrorKind as K;
    match kind {
        ProviderKind::Openai => {
            let (t, code) = match e.kind {
                K::Invalid => ("invalid_request_error", None),
                K::Authentication => ("invalid_request_error", Some("invalid_api_key")),
                K::Permission => ("invalid_request_error", Some("insufficient_permissions")),
                K::NotFound => ("invalid_request_error", Some("not_found")),
                K::Budget => ("insufficient_quota", Some("insufficient_quota")),
                K::RateLimited => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
                K::Upstream => ("server_error", None),
            };
            serde_json::json!({"error": {"message": e.message, "type": t, "param": null, "code": code}})
        }
        ProviderKind::Anthropic => {
            let t = match e.kind {
                K::Invalid => "invalid_request_error",
                K::Authentication => "authentication_error",
                K::Permission => "permission_error",
                K::NotFound => "not_found_error",
                K::Budget | K::RateLimited => "rate_limit_error",
                K::Upstream => "api_error",
            };
            serde_json::json!({"type": "error", "error": {"type": t, "message": e.message}})
        }
    }
}

/// An authentication failure, for the door.
pub fn unauthorized(message: impl Into<String>) -> GatewayError {
    GatewayError::new(401, GatewayErrorKind::Authentication, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_named_from_their_user_agent() {
        assert_eq!(
            tool_from_agent("claude-cli/2.0.1 (external, cli)"),
            "claude-code"
        );
        assert_eq!(tool_from_agent("OpenAI/Python 3.63.0"), "openai-sdk");
        assert_eq!(tool_from_agent("Anthropic/Python 2.17.0"), "anthropic-sdk");
        assert_eq!(tool_from_agent("curl/8"), "gateway");
    }

    #[test]
    fn errors_take_each_provider_shape() {
        let e = GatewayError::new(429, GatewayErrorKind::Budget, "over");
        let o = error_body(ProviderKind::Openai, &e);
        assert_eq!(o["error"]["type"], "insufficient_quota");
        assert_eq!(o["error"]["message"], "over");
        let a = error_body(ProviderKind::Anthropic, &e);
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "rate_limit_error");
    }
}
