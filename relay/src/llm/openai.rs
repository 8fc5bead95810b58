//! OpenAI Chat Completions (`POST {base}/chat/completions`, streamed), as OpenAI describes it
//! and as the servers that copy it (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter) answer.

use serde_json::{Value, json};

use super::{ChatRequest, Collected, Endpoint, LlmError, MessageRole, ToolCall, Usage};

/// The HTTP request for `request`.
pub(super) fn request(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: &ChatRequest,
) -> reqwest::RequestBuilder {
    let mut b = http
        .post(endpoint.url("chat/completions"))
        .json(&body(request));
    if let Some(key) = &endpoint.key {
        b = b.bearer_auth(key.expose());
    }
    b
}

/// The request body: `max_completion_tokens` (what OpenAI documents now; the servers that copy
/// it read it or ignore it), usage asked for in the stream.
pub fn body(request: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &request.messages {
        messages.push(match m.role {
            MessageRole::User => json!({"role": "user", "content": m.content}),
            MessageRole::Assistant if m.tool_calls.is_empty() => {
                json!({"role": "assistant", "content": m.content})
            }
            MessageRole::Assistant => json!({
                "role": "assistant",
                "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
                "tool_calls": m.tool_calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })).collect::<Vec<_>>(),
            }),
            MessageRole::Tool => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.content,
            }),
        });
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_completion_tokens": request.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
    }
    if let Some(schema) = &request.json_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        });
    }
    body
}

/// Applies one streamed chunk.
pub(super) fn apply(c: &mut Collected, data: &str) -> Result<(), LlmError> {
    if data.trim() == "[DONE]" {
        c.ended = true;
        return Ok(());
    }
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| LlmError::Malformed(format!("a chunk is not JSON: {e}")))?;
    if let Some(err) = chunk.get("error") {
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("an error in the stream");
        return Err(LlmError::Server {
            status: 200,
            message: message.to_owned(),
        });
    }
    if c.id.is_none() {
        c.id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
    }
    if c.model.is_none() {
        c.model = chunk
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        c.usage = Some(Usage {
            input_tokens: n(u.get("prompt_tokens")),
            output_tokens: n(u.get("completion_tokens")),
            cached_tokens: n(u.pointer("/prompt_tokens_details/cached_tokens")),
            estimated: false,
        });
    }
    let Some(choice) = chunk
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    else {
        return Ok(());
    };
    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
        c.finish_reason = Some(reason.to_owned());
    }
    // A non-streamed answer from a server that ignored `stream`.
    let delta = choice.get("delta").or_else(|| choice.get("message"));
    let Some(delta) = delta else { return Ok(()) };
    if let Some(text) = delta.get("content").and_then(Value::as_str) {
        c.text.push_str(text);
    }
    for call in delta
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = call.get("id").and_then(Value::as_str);
        let f = call.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        // Which call this piece belongs to: its `index` when given; else a new call when it
        // carries a new id; else the last one.
        let slot = match call.get("index").and_then(Value::as_u64) {
            Some(i) => Some(i as usize),
            None => match id {
                Some(id) if !c.tool_calls.iter().any(|t| t.id == id) => None,
                Some(id) => c.tool_calls.iter().position(|t| t.id == id),
                None => c.tool_calls.len().checked_sub(1),
            },
        };
        let slot = match slot {
            Some(i) if i < c.tool_calls.len() => i,
            Some(i) if i == c.tool_calls.len() => {
                c.tool_calls.push(empty_call());
                i
            }
            Some(i) => {
                return Err(LlmError::Malformed(format!(
                    "tool call index {i} skips ahead"
                )));
            }
            None => {
                c.tool_calls.push(empty_call());
                c.tool_calls.len() - 1
            }
        };
        if c.tool_calls.len() > 64 {
            return Err(LlmError::Malformed("more than 64 tool calls".into()));
        }
        let t = &mut c.tool_calls[slot];
        if let Some(id) = id {
            t.id = id.to_owned();
        }
        if let Some(name) = name {
            t.name.push_str(name);
        }
        t.arguments.push_str(args);
    }
    Ok(())
}

fn empty_call() -> ToolCall {
    ToolCall {
        id: String::new(),
        name: String::new(),
        arguments: String::new(),
    }
}
