//! A stand-in LLM provider for the tests: an HTTP server on `127.0.0.1:0` that speaks OpenAI
//! Chat Completions (`POST /v1/chat/completions`) and Anthropic Messages (`POST /v1/messages`)
//! as they are published, streamed and not, with canned answers. `tests/llm/sdk_contract.py`
//! proves it follows the contract by calling it with the official `openai` and `anthropic`
//! SDKs, and checks the requests the relay sent against OpenAI's OpenAPI description.
//!
//! Answers come from rules: the first rule whose text occurs in the request's body (its JSON
//! text) and still has answers gives its next one; a rule's last answer repeats. It counts and
//! keeps every request, and sums the usage it reported, so tests can prove none was repeated
//! and that the relay's totals are the provider's.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One canned answer.
#[derive(Clone)]
pub enum Answer {
    /// Text, with the usage to report.
    Text {
        /// The answer.
        text: String,
        /// Input tokens reported.
        input: u64,
        /// Output tokens reported.
        output: u64,
        /// Cached input tokens reported.
        cached: u64,
    },
    /// The text, with no usage reported at all and no `[DONE]` (a near-compatible server).
    Sloppy(String),
    /// An error status, with `Retry-After` seconds when given.
    Status(u16, Option<u64>),
    /// Half the text, then the connection closes before the answer ends.
    Cut(String),
    /// A stream whose chunk is not JSON.
    Garbage,
    /// The first piece of the text, then nothing until the gate opens (the connection stays
    /// open), then the rest.
    Hold(String, tokio::sync::watch::Receiver<bool>),
    /// A stream of `n` bytes of text (over a client's cap).
    Huge(usize),
    /// The answer ends with `finish_reason = "length"` (cut at max_tokens).
    Truncated(String),
    /// `n` pieces, 2 ms apart, each `T<nanoseconds since the epoch>;` when it is sent: for
    /// measuring how late streamed text reaches a watcher.
    Stamped(usize),
    /// Tool calls (name, JSON arguments), streamed as OpenAI streams them: the arguments in
    /// pieces, `finish_reason = "tool_calls"`; usage 100 in, 20 out.
    Tools(Vec<(String, Value)>),
}

impl Answer {
    /// The usage it reports, if it reports any.
    fn usage(&self) -> Option<(u64, u64, u64)> {
        match self {
            Self::Text {
                input,
                output,
                cached,
                ..
            } => Some((*input, *output, *cached)),
            Self::Hold(text, _) => Some((100, (text.len() as u64).div_ceil(4), 0)),
            Self::Truncated(_) => Some((100, 10, 0)),
            Self::Stamped(n) => Some((100, 6 * *n as u64, 0)),
            Self::Tools(_) => Some((100, 20, 0)),
            _ => None,
        }
    }

    /// Text with usage made up from its length: input 100, output a token per 4 bytes.
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        let output = (text.len() as u64).div_ceil(4);
        Self::Text {
            text,
            input: 100,
            output,
            cached: 0,
        }
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `/v1/chat/completions` or `/v1/messages`.
    pub path: String,
    /// Its JSON body.
    pub body: Value,
    /// The key it carried (bearer or `x-api-key`).
    pub key: Option<String>,
}

struct Rule {
    contains: String,
    answers: VecDeque<Answer>,
}

#[derive(Default)]
struct Inner {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    usage: (u64, u64, u64),
}

struct Shared {
    inner: Mutex<Inner>,
    key: String,
    request: Notify,
}

/// The stand-in server.
pub struct LlmStandIn {
    /// Its base URL (`http://127.0.0.1:PORT/v1`), as a provider's `base_url`.
    pub url: String,
    /// The key it accepts.
    pub key: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LlmStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LlmStandIn {
    /// Starts one that accepts `key`.
    pub async fn start(key: &str) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::default(),
            key: key.to_owned(),
            request: Notify::new(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        // Each piece of a stream goes out at once, as a provider's server sends it (without
        // this, Nagle and delayed ACKs hold small writes back up to 40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/v1"),
            key: key.to_owned(),
            shared,
            task,
        }
    }

    /// Answers requests whose body contains `contains` with `answers`, in order (the last
    /// repeats). Rules are tried in the order they were added.
    pub fn on(&self, contains: &str, answers: Vec<Answer>) {
        self.shared.inner.lock().unwrap().rules.push(Rule {
            contains: contains.to_owned(),
            answers: answers.into(),
        });
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.inner.lock().unwrap().seen.clone()
    }

    /// Requests so far whose body contains `text`.
    pub fn count(&self, text: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.body.to_string().contains(text))
            .count()
    }

    /// Input, output and cached tokens reported so far.
    pub fn usage(&self) -> (u64, u64, u64) {
        self.shared.inner.lock().unwrap().usage
    }

    /// Waits until at least `n` requests whose body contains `text` arrived.
    pub async fn wait_count(&self, text: &str, n: usize) {
        loop {
            let notified = self.shared.request.notified();
            if self.count(text) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_requests(&self, n: usize) {
        loop {
            let notified = self.shared.request.notified();
            if self.seen().len() >= n {
                return;
            }
            notified.await;
        }
    }
}

/// Takes the answer for a request, records it, or says why it is refused.
fn take(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &str,
) -> Result<(Value, Answer), Box<Response>> {
    let key = headers
        .get("x-api-key")
        .or_else(|| headers.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").to_owned());
    let parsed: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            return Err(Box::new(error(
                400,
                "invalid_request_error",
                "the body is not JSON",
            )));
        }
    };
    let mut inner = shared.inner.lock().unwrap();
    inner.seen.push(Seen {
        path: path.to_owned(),
        body: parsed.clone(),
        key: key.clone(),
    });
    shared.request.notify_waiters();
    if key.as_deref() != Some(shared.key.as_str()) {
        return Err(Box::new(error(
            401,
            "authentication_error",
            "invalid x-api-key",
        )));
    }
    let answer = inner
        .rules
        .iter_mut()
        .find(|r| body.contains(&r.contains) && !r.answers.is_empty())
        .map(|r| {
            if r.answers.len() > 1 {
                r.answers.pop_front().unwrap()
            } else {
                r.answers[0].clone()
            }
        })
        .unwrap_or_else(|| Answer::text("no rule matched"));
    if let Some((input, output, cached)) = answer.usage() {
        inner.usage.0 += input;
        inner.usage.1 += output;
        inner.usage.2 += cached;
    }
    Ok((parsed, answer))
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({"type": "error", "error": {"type": kind, "message": message, "code": kind}})
            .to_string(),
    )
        .into_response()
}

fn status_answer(code: u16, retry_after: Option<u64>) -> Response {
    let mut r = error(
        code,
        if code == 429 {
            "rate_limit_error"
        } else {
            "api_error"
        },
        "stand-in fault",
    );
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

/// Pieces of at most 24 bytes, on character boundaries.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if cur.len() + c.len_utf8() > 24 {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

type Events = tokio::sync::mpsc::Sender<Result<String, std::io::Error>>;

/// A streamed response fed by `produce`.
fn stream<F>(produce: F) -> Response
where
    F: FnOnce(Events) -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let (req, answer) = match take(&shared, "/v1/chat/completions", &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let model = req["model"].as_str().unwrap_or("stand-in").to_owned();
    let streamed = req["stream"].as_bool().unwrap_or(false);
    let with_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let (text, usage, finish) = match answer {
        Answer::Status(code, retry) => return status_answer(code, retry),
        Answer::Text {
            text,
            input,
            output,
            cached,
        } => (text, Some((input, output, cached)), "stop"),
        Answer::Truncated(text) => (text, Some((100, 10, 0)), "length"),
        other => {
            if !streamed {
                return error(500, "api_error", "this answer needs a stream");
            }
            return stream(move |tx| Box::pin(openai_fault(tx, model, other)));
        }
    };
    let usage_json = usage.map(|(i, o, c)| {
        json!({"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
               "prompt_tokens_details": {"cached_tokens": c}})
    });
    if !streamed {
        return (
            [("content-type", "application/json")],
            json!({
                "id": "chatcmpl-standin", "object": "chat.completion", "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                             "finish_reason": finish, "logprobs": null}],
                "usage": usage_json,
            })
            .to_string(),
        )
            .into_response();
    }
    stream(move |tx| {
        Box::pin(async move {
            let chunk = |delta: Value, finish: Value| {
                Ok(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk",
                           "created": 1_700_000_000, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                ))
            };
            let _ = tx
                .send(chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                ))
                .await;
            for p in pieces(&text) {
                let _ = tx.send(chunk(json!({"content": p}), Value::Null)).await;
            }
            let _ = tx.send(chunk(json!({}), json!(finish))).await;
            if with_usage {
                let _ = tx
                    .send(Ok(format!(
                        "data: {}\n\n",
                        json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk",
                               "created": 1_700_000_000, "model": model, "choices": [],
                               "usage": usage_json})
                    )))
                    .await;
            }
            let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
        })
    })
}

async fn openai_fault(tx: Events, model: String, answer: Answer) {
    let chunk = |delta: Value, finish: Value| {
        Ok(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk",
                   "created": 1_700_000_000, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        ))
    };
    match answer {
        Answer::Sloppy(text) => {
            for p in pieces(&text) {
                let _ = tx.send(chunk(json!({"content": p}), Value::Null)).await;
            }
            let _ = tx.send(chunk(json!({}), json!("stop"))).await;
        }
        Answer::Cut(text) => {
            let half: String = text.chars().take(text.chars().count() / 2).collect();
            let _ = tx.send(chunk(json!({"content": half}), Value::Null)).await;
            let _ = tx.send(Err(std::io::Error::other("cut"))).await;
        }
        Answer::Garbage => {
            let _ = tx.send(Ok("data: {not json\n\n".into())).await;
        }
        Answer::Hold(text, mut gate) => {
            let p = pieces(&text);
            let _ = tx.send(chunk(json!({"content": p[0]}), Value::Null)).await;
            let _ = gate.wait_for(|open| *open).await;
            for piece in &p[1..] {
                let _ = tx.send(chunk(json!({"content": piece}), Value::Null)).await;
            }
            let _ = tx.send(chunk(json!({}), json!("stop"))).await;
            let (i, o, _) = Answer::Hold(text, gate).usage().unwrap_or_default();
            let _ = tx
                .send(Ok(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk",
                           "created": 1_700_000_000, "model": model, "choices": [],
                           "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}})
                )))
                .await;
            let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
        }
        Answer::Stamped(n) => {
            for _ in 0..n {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let _ = tx
                    .send(chunk(json!({"content": format!("T{nanos};")}), Value::Null))
                    .await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let _ = tx.send(chunk(json!({}), json!("stop"))).await;
            let _ = tx
                .send(Ok(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk",
                           "created": 1_700_000_000, "model": model, "choices": [],
                           "usage": {"prompt_tokens": 100, "completion_tokens": 6 * n, "total_tokens": 100 + 6 * n}})
                )))
                .await;
            let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
        }
        Answer::Tools(calls) => {
            let _ = tx
                .send(chunk(
                    json!({"role": "assistant", "content": null}),
                    Value::Null,
                ))
                .await;
            for (i, (name, args)) in calls.iter().enumerate() {
                let _ = tx
                    .send(chunk(
                        json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                                               "function": {"name": name, "arguments": ""}}]}),
                        Value::Null,
                    ))
                    .await;
                for p in pieces(&args.to_string()) {
                    let _ = tx
                        .send(chunk(
                            json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                            Value::Null,
                        ))
                        .await;
                }
            }
            let _ = tx.send(chunk(json!({}), json!("tool_calls"))).await;
            let _ = tx
                .send(Ok(format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk",
                           "created": 1_700_000_000, "model": model, "choices": [],
                           "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
                )))
                .await;
            let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
        }
        Answer::Huge(n) => {
            let piece = "x".repeat(1000);
            for _ in 0..n.div_ceil(1000) {
                if tx
                    .send(chunk(json!({"content": piece}), Value::Null))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx.send(chunk(json!({}), json!("stop"))).await;
            let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
        }
        _ => {}
    }
}

async fn anthropic(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (req, answer) = match take(&shared, "/v1/messages", &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let model = req["model"].as_str().unwrap_or("stand-in").to_owned();
    let streamed = req["stream"].as_bool().unwrap_or(false);
    let (text, (input, output, cached), stop) = match answer {
        Answer::Status(code, retry) => return status_answer(code, retry),
        Answer::Text {
            text,
            input,
            output,
            cached,
        } => (text, (input, output, cached), "end_turn"),
        Answer::Truncated(text) => (text, (100, 10, 0), "max_tokens"),
        _ => {
            return error(
                500,
                "api_error",
                "the stand-in gives this fault on OpenAI's format only",
            );
        }
    };
    if !streamed {
        return (
            [("content-type", "application/json")],
            json!({
                "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": input - cached, "output_tokens": output,
                          "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0},
            })
            .to_string(),
        )
            .into_response();
    }
    stream(move |tx| {
        Box::pin(async move {
            let ev = |name: &str, data: Value| Ok(format!("event: {name}\ndata: {data}\n\n"));
            let _ = tx
                .send(ev(
                    "message_start",
                    json!({"type": "message_start", "message": {
                        "id": "msg_standin", "type": "message", "role": "assistant",
                        "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": input - cached, "output_tokens": 1,
                                  "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}}}),
                ))
                .await;
            let _ = tx
                .send(ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                           "content_block": {"type": "text", "text": ""}}),
                ))
                .await;
            let _ = tx.send(ev("ping", json!({"type": "ping"}))).await;
            for p in pieces(&text) {
                let _ = tx
                    .send(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "text_delta", "text": p}}),
                    ))
                    .await;
            }
            let _ = tx
                .send(ev(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ))
                .await;
            let _ = tx
                .send(ev(
                    "message_delta",
                    json!({"type": "message_delta",
                           "delta": {"stop_reason": stop, "stop_sequence": null},
                           "usage": {"output_tokens": output}}),
                ))
                .await;
            let _ = tx
                .send(ev("message_stop", json!({"type": "message_stop"})))
                .await;
        })
    })
}
