//! Pass-through calls, for the LLM gateway: the caller's own request body goes to the
//! provider's `chat/completions` or `messages` with the provider's key, and the answer's bytes
//! come back as they arrive, unchanged. A [`Meter`] reads the model, usage, text and time to
//! first token off them on the way, with the same parsers as the relay's own calls.

use std::time::Instant;

use fulcrum_protocol::kinds::ProviderKind;
use serde_json::Value;

use super::{Client, Collected, Endpoint, LlmError, Usage, anthropic, openai, without_url};

impl Client {
    /// Sends `body` (JSON, as the caller wrote it) to the provider's endpoint for its format,
    /// once (no retries: the caller's own client retries what it wants to). The answer's
    /// status is the caller's business.
    pub async fn forward(
        &self,
        endpoint: &Endpoint,
        body: Vec<u8>,
        anthropic_version: Option<&str>,
    ) -> Result<reqwest::Response, LlmError> {
        let mut b = match endpoint.kind {
            ProviderKind::Openai => self.http.post(endpoint.url("chat/completions")),
            ProviderKind::Anthropic => self.http.post(endpoint.url("messages")).header(
                "anthropic-version",
                anthropic_version.unwrap_or(anthropic::VERSION),
            ),
        };
        b = b
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &endpoint.key {
            b = match endpoint.kind {
                ProviderKind::Openai => b.bearer_auth(key.expose()),
                ProviderKind::Anthropic => b.header("x-api-key", key.expose()),
            };
        }
        tokio::time::timeout(self.limits.connect_timeout, b.send())
            .await
            .map_err(|_| LlmError::Transport("no answer before the timeout".into()))?
            .map_err(|e| LlmError::Transport(without_url(e)))
    }
}

/// What a [`Meter`] read off an answer.
#[derive(Debug, Clone, Default)]
pub struct Metered {
    /// `gen_ai.response.id`.
    pub id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The answer's text.
    pub text: String,
    /// Why it ended.
    pub finish_reason: Option<String>,
    /// Tokens, as reported (or estimated when the answer reported none).
    pub usage: Usage,
    /// Milliseconds to the first token.
    pub ttft_ms: Option<u64>,
    /// Whether the answer ended as its format says an answer ends.
    pub complete: bool,
}

/// Reads an answer as it passes.
pub struct Meter {
    kind: ProviderKind,
    started: Instant,
    collected: Collected,
    pending: Vec<u8>,
    /// Drop the usage-only chunk (the gateway asked for it; the caller did not).
    drop_usage_chunk: bool,
    max_pending: usize,
}

/// Where the first event boundary (a blank line) in `buf` ends.
fn boundary(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Meter {
    /// A meter for an answer in `kind`'s format, started now; `drop_usage_chunk` removes the
    /// usage-only chunk of an OpenAI stream.
    pub fn new(kind: ProviderKind, drop_usage_chunk: bool, max_pending: usize) -> Self {
        Self {
            kind,
            started: Instant::now(),
            collected: Collected::default(),
            pending: Vec::new(),
            drop_usage_chunk,
            max_pending,
        }
    }

    fn apply(&mut self, data: &str) {
        let before = (self.collected.text.len(), self.collected.tool_calls.len());
        // A chunk the parsers cannot read still passes through: the caller's client judges it.
        let _ = match self.kind {
            ProviderKind::Openai => openai::apply(&mut self.collected, data),
            ProviderKind::Anthropic => anthropic::apply(&mut self.collected, data),
        };
        if self.collected.first_token.is_none()
            && (self.collected.text.len(), self.collected.tool_calls.len()) != before
        {
            self.collected.first_token = Some(Instant::now());
        }
    }

    /// Takes the next bytes of a streamed answer; gives back what to pass on (whole events,
    /// the usage-only chunk left out when asked).
    pub fn stream(&mut self, bytes: &[u8]) -> Result<Vec<u8>, LlmError> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(self.pending.len());
        while let Some(end) = boundary(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            let text = String::from_utf8_lossy(&event);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let mut keep = true;
            if !data.is_empty() {
                let data = data.join("\n");
                self.apply(&data);
                if self.drop_usage_chunk
                    && self.kind == ProviderKind::Openai
                    && let Ok(v) = serde_json::from_str::<Value>(&data)
                    && v.get("usage").is_some_and(Value::is_object)
                    && v.get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty)
                {
                    keep = false;
                }
            }
            if keep {
                out.extend_from_slice(&event);
            }
        }
        if self.pending.len() > self.max_pending {
            return Err(LlmError::TooLarge(self.max_pending));
        }
        Ok(out)
    }

    /// The bytes of an unfinished event at the end of the stream (passed on as they are).
    pub fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Reads a whole (not streamed) JSON answer.
    pub fn whole(&mut self, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        match self.kind {
            ProviderKind::Openai => self.apply(&v.to_string()),
            ProviderKind::Anthropic => {
                self.apply(&serde_json::json!({"type": "message_start", "message": v}).to_string());
                for block in v
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = block.get("text").and_then(Value::as_str) {
                        self.collected.text.push_str(t);
                    }
                }
                self.collected.finish_reason = v
                    .get("stop_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.collected.ended = true;
            }
        }
        if self.collected.finish_reason.is_some() {
            self.collected.ended = true;
        }
    }

    /// What was read; `input_estimate` stands in for input tokens the answer did not report.
    pub fn finish(self, input_estimate: u64) -> Metered {
        let c = self.collected;
        let usage = c.usage.unwrap_or_else(|| Usage {
            input_tokens: input_estimate,
            output_tokens: c.text.len().div_ceil(4) as u64,
            cached_tokens: 0,
            estimated: true,
        });
        Metered {
            id: c.id,
            model: c.model,
            finish_reason: c.finish_reason.filter(|r| !r.is_empty()),
            usage,
            ttft_ms: c
                .first_token
                .map(|t| t.duration_since(self.started).as_millis() as u64),
            complete: c.ended || !c.text.is_empty(),
            text: c.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openai_stream_passes_whole_events_and_is_metered() {
        let mut m = Meter::new(ProviderKind::Openai, true, 1 << 20);
        let stream = concat!(
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        let mut out = Vec::new();
        // Split at awkward places: inside events and inside the boundary.
        for piece in stream.as_bytes().chunks(13) {
            out.extend(m.stream(piece).unwrap());
        }
        out.extend(m.rest());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("usage"), "the usage chunk is dropped: {out}");
        assert!(out.contains("\"Hel\"") && out.ends_with("data: [DONE]\n\n"));
        let r = m.finish(0);
        assert_eq!(r.text, "Hello");
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (7, 2));
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert!(r.ttft_ms.is_some() && r.complete);
    }

    #[test]
    fn a_whole_anthropic_answer_is_metered() {
        let mut m = Meter::new(ProviderKind::Anthropic, false, 1 << 20);
        m.whole(br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":1,"cache_read_input_tokens":2}}"#);
        let r = m.finish(0);
        assert_eq!(r.text, "Hi");
        assert_eq!(r.model.as_deref(), Some("claude-x"));
        assert_eq!((r.usage.input_tokens, r.usage.cached_tokens), (7, 2));
        assert_eq!(r.finish_reason.as_deref(), Some("end_turn"));
    }
}
