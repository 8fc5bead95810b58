//! The relay's LLM client: one request and answer shape ([`ChatRequest`], [`ChatResponse`])
//! spoken to OpenAI-compatible Chat Completions ([`openai`]) and Anthropic Messages
//! ([`anthropic`]), always streamed so that text reaches watchers as it is written.
//!
//! It is tolerant where near-compatible servers differ (no `usage`, no tool-call `index`, an
//! empty `finish_reason`, no `[DONE]`), keeps the raw answer next to the parsed one, caps the
//! answer's size, and retries 429 and 5xx answers with backoff and jitter, honouring
//! `Retry-After` ([`Client::chat`]); a 401 or 403 fails at once. Cost is computed from the price
//! table in [`prices`]. What the calls are for (journaling, budgets) is the caller's business.

pub mod anthropic;
pub mod forward;
pub mod openai;
pub mod prices;
mod sse;

use std::time::{Duration, Instant};

use fulcrum_protocol::kinds::ProviderKind;
use serde::{Deserialize, Serialize};

pub use prices::{Price, PriceTable};

/// A provider's API key: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key, for the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its last four characters, to recognise it by.
    pub fn hint(&self) -> String {
        let n = self.0.chars().count();
        if n < 12 {
            return "…".into();
        }
        let tail: String = self.0.chars().skip(n - 4).collect();
        format!("…{tail}")
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where to send calls: the wire format, the base URL (such as `https://api.openai.com/v1` or
/// `http://127.0.0.1:11434/v1`), and the key, if the server wants one.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The wire format.
    pub kind: ProviderKind,
    /// The base URL; `chat/completions` or `messages` is appended.
    pub base_url: String,
    /// The key.
    pub key: Option<ApiKey>,
}

impl Endpoint {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url.trim_end_matches('/'))
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// The user (or the engine, speaking for the run).
    User,
    /// The model.
    Assistant,
    /// A tool's result, answering one of the model's tool calls.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: MessageRole,
    /// Its text.
    pub content: String,
    /// The tool calls an assistant message made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::User,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for it.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, as the JSON text the model wrote.
    pub arguments: String,
}

/// One call to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model.
    pub model: String,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Most tokens the answer may have.
    pub max_tokens: u32,
    /// Sampling temperature, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// When set, the answer must be JSON following this schema (asked for as structured output
    /// where the format has it; checked by the caller either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

impl ChatRequest {
    /// A rough count of the input's tokens (four characters a token), for reservations and for
    /// servers that report no usage.
    pub fn estimated_input_tokens(&self) -> u64 {
        let chars = self.system.as_deref().map_or(0, str::len)
            + self
                .messages
                .iter()
                .map(|m| {
                    m.content.len()
                        + m.tool_calls
                            .iter()
                            .map(|c| c.arguments.len())
                            .sum::<usize>()
                })
                .sum::<usize>()
            + self
                .tools
                .iter()
                .map(|t| t.description.len() + t.parameters.to_string().len())
                .sum::<usize>()
            + self.json_schema.as_ref().map_or(0, |s| s.to_string().len());
        (chars as u64).div_ceil(4) + 8 * self.messages.len() as u64
    }
}

/// Tokens a call used, as the provider reported them (or estimated, when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's cache.
    pub cached_tokens: u64,
    /// Whether the provider reported no usage and these are estimates.
    #[serde(default)]
    pub estimated: bool,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's id for the answer.
    pub id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The text.
    pub text: String,
    /// The tool calls it made.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped (`stop`, `length`, `tool_calls`, `end_turn`, …), as the provider said.
    pub finish_reason: Option<String>,
    /// Tokens used.
    pub usage: Usage,
    /// The answer as received (the event stream's text), capped with the answer.
    pub raw: String,
    /// From sending the request to the first byte of text or tool call.
    pub ttft_ms: Option<u64>,
    /// From sending the request to the end of the answer.
    pub latency_ms: u64,
    /// Attempts made (retries included).
    pub attempts: u32,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider refused the key (401 or 403): not retried.
    #[error("the provider refused the key ({status}): {message}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// What the provider said.
        message: String,
    },
    /// Too many requests (429), still after the retries.
    #[error("the provider is rate limiting ({message})")]
    RateLimited {
        /// What the provider said.
        message: String,
        /// How long it asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The provider failed (5xx), still after the retries.
    #[error("the provider failed ({status}): {message}")]
    Server {
        /// The status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The provider refused the request (another 4xx): not retried.
    #[error("the provider refused the request ({status}): {message}")]
    Refused {
        /// The status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The connection failed, timed out, or the stream stopped before the answer ended.
    #[error("the connection to the provider failed: {0}")]
    Transport(String),
    /// The answer was not what the format says.
    #[error("the provider's answer is malformed: {0}")]
    Malformed(String),
    /// The answer went over the size cap.
    #[error("the provider's answer is over the {0} byte cap")]
    TooLarge(usize),
}

impl LlmError {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Transport(_)
                | Self::Malformed(_)
        )
    }

    /// A stable code for the record.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "provider_unauthorized",
            Self::RateLimited { .. } => "provider_rate_limited",
            Self::Server { .. } => "provider_failed",
            Self::Refused { .. } => "provider_refused",
            Self::Transport(_) => "provider_unreachable",
            Self::Malformed(_) => "provider_malformed",
            Self::TooLarge(_) => "output_too_large",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The client's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for the answer's headers.
    pub connect_timeout: Duration,
    /// Longest silence between two parts of a streamed answer.
    pub idle_timeout: Duration,
    /// Most bytes of answer (the raw stream) kept; more fails the call.
    pub max_response_bytes: usize,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; it doubles each retry, with jitter.
    pub backoff: Duration,
    /// Longest wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            max_response_bytes: 4 << 20,
            max_attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Text of the answer as it arrives: called with each piece.
pub type OnText<'a> = &'a mut (dyn FnMut(&str) + Send);

/// The LLM client: one HTTP connection pool for every provider.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    limits: Limits,
}

/// What one attempt's parser collected.
#[derive(Default)]
struct Collected {
    id: Option<String>,
    model: Option<String>,
    text: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// Whether the format's end marker arrived.
    ended: bool,
    first_token: Option<Instant>,
}

impl Client {
    /// A client with these limits.
    pub fn new(limits: Limits) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A request's headers and body go out at once, not a delayed ACK apart (Nagle).
            .tcp_nodelay(true)
            // A redirect could carry the key (Anthropic's is not an Authorization header) to
            // another host: providers answer where they are asked.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fulcrum-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        Self { http, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes the call, streaming its text to `on_text`, retrying what may succeed on another
    /// attempt (up to [`Limits::max_attempts`]). Text already streamed by a failed attempt is
    /// streamed again by the next one; `on_text` receives `None`-free pieces only.
    pub async fn chat(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        on_text: OnText<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let mut delay = self.limits.backoff;
        let mut attempt = 1;
        loop {
            match self.attempt(endpoint, request, on_text).await {
                Ok(mut r) => {
                    r.attempts = attempt;
                    return Ok(r);
                }
                Err(e) if e.retryable() && attempt < self.limits.max_attempts => {
                    let wait = e
                        .retry_after()
                        .unwrap_or_else(|| jitter(delay))
                        .min(self.limits.max_backoff);
                    tracing::debug!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "LLM call retried");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.limits.max_backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        on_text: OnText<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let builder = match endpoint.kind {
            ProviderKind::Openai => openai::request(&self.http, endpoint, request),
            ProviderKind::Anthropic => anthropic::request(&self.http, endpoint, request),
        };
        let response = tokio::time::timeout(self.limits.connect_timeout, builder.send())
            .await
            .map_err(|_| LlmError::Transport("no answer before the timeout".into()))?
            .map_err(|e| LlmError::Transport(without_url(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.status_error(response).await);
        }
        let mut collected = Collected::default();
        let mut raw = String::new();
        let mut events = sse::Events::new(
            response,
            self.limits.idle_timeout,
            self.limits.max_response_bytes + (64 << 10),
        );
        while let Some(event) = events.next().await? {
            if raw.len() + event.len() > self.limits.max_response_bytes {
                return Err(LlmError::TooLarge(self.limits.max_response_bytes));
            }
            raw.push_str("data: ");
            raw.push_str(&event);
            raw.push_str("\n\n");
            let before = collected.text.len();
            let calls_before = collected.tool_calls.len();
            match endpoint.kind {
                ProviderKind::Openai => openai::apply(&mut collected, &event)?,
                ProviderKind::Anthropic => anthropic::apply(&mut collected, &event)?,
            }
            if collected.first_token.is_none()
                && (collected.text.len() > before || collected.tool_calls.len() > calls_before)
            {
                collected.first_token = Some(Instant::now());
            }
            if collected.text.len() > before {
                on_text(&collected.text[before..]);
            }
            if collected.ended {
                break;
            }
        }
        if !collected.ended && collected.finish_reason.is_none() {
            return Err(LlmError::Transport(
                "the stream ended before the answer did".into(),
            ));
        }
        let usage = collected.usage.unwrap_or_else(|| Usage {
            input_tokens: request.estimated_input_tokens(),
            output_tokens: (collected.text.len()
                + collected
                    .tool_calls
                    .iter()
                    .map(|c| c.arguments.len())
                    .sum::<usize>())
            .div_ceil(4) as u64,
            cached_tokens: 0,
            estimated: true,
        });
        Ok(ChatResponse {
            id: collected.id,
            model: collected.model,
            text: collected.text,
            tool_calls: collected.tool_calls,
            finish_reason: collected.finish_reason.filter(|r| !r.is_empty()),
            usage,
            raw,
            ttft_ms: collected
                .first_token
                .map(|t| t.duration_since(started).as_millis() as u64),
            latency_ms: started.elapsed().as_millis() as u64,
            attempts: 1,
        })
    }

    async fn status_error(&self, response: reqwest::Response) -> LlmError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // The error body, capped; providers put the reason in `error.message`.
        let body = sse::read_capped(response, 16 << 10).await;
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        match status {
            401 | 403 => LlmError::Unauthorized { status, message },
            429 => LlmError::RateLimited {
                message,
                retry_after,
            },
            500..=599 => LlmError::Server { status, message },
            _ => LlmError::Refused { status, message },
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these APIs and read as absent).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// `d` scaled by a random factor in [0.5, 1.5).
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>())
}

/// A reqwest error's text without the URL (which may carry a key in its query).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print_and_hint_only_their_end() {
        let k = ApiKey::new("sk-test-abcdefghijklmnop1234");
        assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
        assert_eq!(k.hint(), "…1234");
        assert_eq!(ApiKey::new("short").hint(), "…");
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
