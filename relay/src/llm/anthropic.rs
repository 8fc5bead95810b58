//! Anthropic Messages (`POST {base}/messages`, streamed), as Anthropic describes it.

use serde_json::{Value, json};

use super::{ChatRequest, Collected, Endpoint, LlmError, MessageRole, ToolCall, Usage};

/// The API version sent in `anthropic-version`.
pub(super) const VERSION: &str = "2023-06-01";

/// The HTTP request for `request`.
pub(super) fn request(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let mut b = http
        .post(endpoint.url("messages"))
        .header("anthropic-version", VERSION)
        .json(&body(request));
    if let Some(key) = &endpoint.key {
        b = b.header("x-api-key", key.expose());
    }
    b
}

/// The request body. Anthropic has no JSON-schema answer mode in this version: the schema is
/// put in the system prompt, and the caller checks the answer as for every provider.
pub fn body(request: &ChatRequest) -> Value {
    let mut messages: Vec<Value> = Vec::with_capacity(request.messages.len());
    for m in &request.messages {
        let (role, content) = match m.role {
            MessageRole::User => ("user", json!([{"type": "text", "text": m.content}])),
            MessageRole::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    let input: Value =
                        serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
                ("assistant", Value::Array(blocks))
            }
            MessageRole::Tool => (
                "user",
                json!([{
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                }]),
            ),
        };
        // Consecutive tool results go in one user turn, as the format wants.
        match messages.last_mut() {
            Some(last) if last["role"] == role && role == "user" && m.role == MessageRole::Tool => {
                if let (Some(a), Some(b)) = (last["content"].as_array_mut(), content.as_array()) {
                    a.extend(b.iter().cloned());
                }
            }
            _ => messages.push(json!({"role": role, "content": content})),
        }
    }
    let mut system = request.system.clone().unwrap_or_default();
    if let Some(schema) = &request.json_schema {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system
            .push_str("Answer with one JSON value and nothing else, following this JSON Schema:\n");
        system.push_str(&schema.to_string());
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

/// Applies one streamed event.
pub(super) fn apply(c: &mut Collected, data: &str) -> Result<(), LlmError> {
    let event: Value = serde_json::from_str(data)
        .map_err(|e| LlmError::Malformed(format!("an event is not JSON: {e}")))?;
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    match event.get("type").and_then(Value::as_str).unwrap_or("") {
        "message_start" => {
            let m = &event["message"];
            c.id = m.get("id").and_then(Value::as_str).map(str::to_owned);
            c.model = m.get("model").and_then(Value::as_str).map(str::to_owned);
            if let Some(u) = m.get("usage") {
                let cached = n(u.get("cache_read_input_tokens"));
                let created = n(u.get("cache_creation_input_tokens"));
                c.usage = Some(Usage {
                    input_tokens: n(u.get("input_tokens")) + cached + created,
                    output_tokens: n(u.get("output_tokens")),
                    cached_tokens: cached,
                    estimated: false,
                });
            }
        }
        "content_block_start" => {
            let b = &event["content_block"];
            if b.get("type").and_then(Value::as_str) == Some("tool_use") {
                if c.tool_calls.len() >= 64 {
                    return Err(LlmError::Malformed("more than 64 tool calls".into()));
                }
                c.tool_calls.push(ToolCall {
                    id: b.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    arguments: String::new(),
                });
            } else if let Some(text) = b.get("text").and_then(Value::as_str) {
                c.text.push_str(text);
            }
        }
        "content_block_delta" => {
            let d = &event["delta"];
            match d.get("type").and_then(Value::as_str) {
                Some("text_delta") => {
                    c.text
                        .push_str(d.get("text").and_then(Value::as_str).unwrap_or(""));
                }
                Some("input_json_delta") => {
                    let part = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                    match c.tool_calls.last_mut() {
                        Some(t) => t.arguments.push_str(part),
                        None => {
                            return Err(LlmError::Malformed(
                                "tool input before any tool_use block".into(),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(r) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                c.finish_reason = Some(r.to_owned());
            }
            if let Some(out) = event
                .pointer("/usage/output_tokens")
                .and_then(Value::as_u64)
            {
                let u = c.usage.get_or_insert_with(Usage::default);
                u.output_tokens = out;
            }
        }
        "message_stop" => c.ended = true,
        "error" => {
            let message = event
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("an error in the stream")
                .to_owned();
            let kind = event.pointer("/error/type").and_then(Value::as_str);
            return Err(match kind {
                Some("rate_limit_error") => LlmError::RateLimited {
                    message,
                    retry_after: None,
                },
                _ => LlmError::Server {
                    status: 200,
                    message,
                },
            });
        }
        _ => {}
    }
    // Anthropic tool inputs of `{}` arrive as no delta at all.
    if c.ended {
        for t in &mut c.tool_calls {
            if t.arguments.is_empty() {
                t.arguments.push_str("{}");
            }
        }
    }
    Ok(())
}
