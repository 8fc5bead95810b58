//! The assistant as an A2A agent (protocol version 1.0, JSON-RPC binding), so that another
//! agent can delegate work to it: its Agent Card at `/.well-known/agent-card.json` (public),
//! and `POST /a2a` with a Fulcrum API token as the bearer, for `SendMessage`,
//! `SendStreamingMessage` (server-sent events), `GetTask`, `ListTasks` and `CancelTask`.
//! A task is one turn of the assistant in the conversation of the message's `contextId`; a
//! turn that waits for a tool call's confirmation leaves its task `TASK_STATE_INPUT_REQUIRED`,
//! and a reply with that task's id answers it. JSON follows the protocol's ProtoJSON mapping
//! (camelCase, enum names); JSON-RPC errors are answered with HTTP 200, as the binding says.
//! Everything a task does is `crate::domain::assistant`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::Utc;
use fulcrum_protocol::kinds::A2aTaskState;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    auth::bearer,
    domain::{
        Caller, DomainError,
        assistant::{A2aMessage, A2aView, TurnEvent},
    },
    http::client::token_caller,
    state::AppState,
    store::TokenKind,
};

/// Largest JSON-RPC request.
const MAX_REQUEST: usize = 256 << 10;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/agent-card.json", get(card))
        .route("/a2a", post(rpc))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST))
}

async fn card(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = app.config.base_url_for(crate::install::host(&headers));
    Json(json!({
        "name": "Fulcrum project manager",
        "description": "Keeps track of your Fulcrum projects, remote workspaces, build and QA tasks, AI pipelines and AI costs, and acts on them for you: ask it about them, or delegate work such as running QA on every project and summarising the results.",
        "version": env!("CARGO_PKG_VERSION"),
        "provider": {"organization": "Fulcrum", "url": base},
        "documentationUrl": format!("{base}/"),
        "supportedInterfaces": [
            {"url": format!("{base}/a2a"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {"streaming": true, "pushNotifications": false},
        "securitySchemes": {
            "bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "Fulcrum API token (fck_…)"}}
        },
        "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {"id": "projects", "name": "Projects and workspaces",
             "description": "What your projects, workspaces, tasks and pipeline runs are doing now.",
             "tags": ["projects", "workspaces", "tasks"],
             "examples": ["Which of my projects has failing tasks?"]},
            {"id": "qa", "name": "Run QA",
             "description": "Run builds and QA in your workspaces and summarise the results (each run is confirmed).",
             "tags": ["qa", "tests"],
             "examples": ["Run QA on every project and summarise"]},
            {"id": "costs", "name": "AI costs",
             "description": "AI activity and cost by project, tool, model and category.",
             "tags": ["costs", "reports"],
             "examples": ["What did AI cost us this month, by model?"]}
        ]
    }))
    .into_response()
}

/// A JSON-RPC error answer (HTTP 200).
fn error(id: &Value, code: i64, message: impl Into<String>) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}}))
        .into_response()
}

fn domain_error(id: &Value, e: &DomainError) -> Response {
    let code = match e {
        DomainError::NotFound(_) => -32001,
        DomainError::Invalid(_) => -32602,
        DomainError::Conflict { code, .. } if *code == "not_cancelable" => -32002,
        DomainError::Conflict { .. } => -32004,
        DomainError::MissingScope(_) | DomainError::Denied { .. } => -32600,
        _ => -32603,
    };
    error(id, code, e.to_string())
}

fn state_name(s: A2aTaskState) -> &'static str {
    match s {
        A2aTaskState::Submitted => "TASK_STATE_SUBMITTED",
        A2aTaskState::Working => "TASK_STATE_WORKING",
        A2aTaskState::InputRequired => "TASK_STATE_INPUT_REQUIRED",
        A2aTaskState::Completed => "TASK_STATE_COMPLETED",
        A2aTaskState::Failed => "TASK_STATE_FAILED",
        A2aTaskState::Canceled => "TASK_STATE_CANCELED",
    }
}

fn agent_message(task: &crate::store::assistant::A2aTask, text: &str) -> Value {
    json!({
        "messageId": Uuid::now_v7().to_string(),
        "contextId": task.context_id,
        "taskId": task.id.to_string(),
        "role": "ROLE_AGENT",
        "parts": [{"text": text}],
    })
}

/// A task in ProtoJSON.
fn task_json(v: &A2aView) -> Value {
    let t = &v.task;
    let mut status = json!({
        "state": state_name(t.state),
        "timestamp": t.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    let mut task = json!({
        "id": t.id.to_string(),
        "contextId": t.context_id,
        "status": status.clone(),
    });
    if let Some(answer) = t.answer.as_deref().filter(|a| !a.is_empty()) {
        status["message"] = agent_message(t, answer);
        task["status"] = status;
        task["artifacts"] =
            json!([{"artifactId": "answer", "name": "answer", "parts": [{"text": answer}]}]);
    }
    if let Some(w) = &v.waiting {
        task["metadata"] = json!({"waitingTool": w.name, "waitingArguments": w.arguments});
    }
    task
}

/// The caller, from the bearer token (an API token).
async fn caller(parts: &mut Parts, app: &AppState) -> Result<Caller, DomainError> {
    let token = bearer(&parts.headers).map(str::to_owned);
    token_caller(
        parts,
        app,
        token,
        TokenKind::Api,
        "give a Fulcrum API token as `Authorization: Bearer fck_…`",
    )
    .await
}

/// What a message says: its text parts, joined.
fn message_text(message: &Value) -> Option<String> {
    let parts = message.get("parts")?.as_array()?;
    let text: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    (!text.is_empty()).then(|| text.join("\n"))
}

async fn rpc(State(app): State<AppState>, mut parts: Parts, body: Bytes) -> Response {
    let caller = match caller(&mut parts, &app).await {
        Ok(c) => c,
        Err(DomainError::Throttled { .. }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "over this token's request limit",
            )
                .into_response();
        }
        Err(e) => {
            let mut r = (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(&Value::Null, -32700, "the body is not JSON");
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    if req.get("jsonrpc") != Some(&json!("2.0")) {
        return error(&id, -32600, "not a JSON-RPC 2.0 request");
    }
    if let Some(v) = parts
        .headers
        .get("a2a-version")
        .and_then(|v| v.to_str().ok())
        && !v.trim().starts_with("1.")
    {
        return error(
            &id,
            -32009,
            format!("A2A version {v} is not supported; this agent speaks 1.0"),
        );
    }
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let params = req.get("params").cloned().unwrap_or(json!({}));
    let task_id = |key: &str| -> Option<Uuid> {
        params
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
    };
    let assistant = &app.domain.assistant;
    match method {
        "SendMessage" | "SendStreamingMessage" => {
            let message = params.get("message").cloned().unwrap_or(Value::Null);
            let Some(text) = message_text(&message) else {
                return error(&id, -32602, "the message has no text part");
            };
            let context = message
                .get("contextId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let task = match message.get("taskId").and_then(Value::as_str) {
                None => None,
                Some(t) => match Uuid::parse_str(t) {
                    Ok(t) => Some(t),
                    Err(_) => return error(&id, -32001, "task not found"),
                },
            };
            if method == "SendMessage" {
                let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
                let tools = app.assistant_tools();
                return match assistant
                    .a2a_send(
                        caller,
                        A2aMessage {
                            context,
                            task,
                            text,
                        },
                        &tools,
                        &tx,
                        |_| {},
                    )
                    .await
                {
                    Ok(v) => {
                        Json(json!({"jsonrpc": "2.0", "id": id, "result": {"task": task_json(&v)}}))
                            .into_response()
                    }
                    Err(e) => domain_error(&id, &e),
                };
            }
            stream(app.clone(), caller, id, context, task, text)
        }
        "GetTask" => {
            let Some(t) = task_id("id") else {
                return error(&id, -32001, "task not found");
            };
            match assistant.a2a_task(caller, t).await {
                Ok(v) => Json(json!({"jsonrpc": "2.0", "id": id, "result": task_json(&v)}))
                    .into_response(),
                Err(e) => domain_error(&id, &e),
            }
        }
        "CancelTask" => {
            let Some(t) = task_id("id") else {
                return error(&id, -32001, "task not found");
            };
            match assistant.a2a_cancel(caller, t).await {
                Ok(v) => Json(json!({"jsonrpc": "2.0", "id": id, "result": task_json(&v)}))
                    .into_response(),
                Err(e) => domain_error(&id, &e),
            }
        }
        "ListTasks" => {
            let context = params.get("contextId").and_then(Value::as_str);
            let size = params
                .get("pageSize")
                .and_then(Value::as_u64)
                .unwrap_or(50)
                .min(100) as u32;
            match assistant.a2a_tasks(caller, context, size).await {
                Ok(list) => {
                    let tasks: Vec<Value> = list
                        .into_iter()
                        .map(|task| {
                            task_json(&A2aView {
                                task,
                                waiting: None,
                            })
                        })
                        .collect();
                    Json(json!({"jsonrpc": "2.0", "id": id, "result": {
                        "tasks": tasks, "nextPageToken": "", "pageSize": size, "totalSize": tasks.len(),
                    }}))
                    .into_response()
                }
                Err(e) => domain_error(&id, &e),
            }
        }
        "SubscribeToTask"
        | "GetExtendedAgentCard"
        | "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => error(
            &id,
            -32004,
            format!("{method} is not supported by this agent"),
        ),
        _ => error(&id, -32601, format!("no method {method:?}")),
    }
}

/// `SendStreamingMessage`: the task, then its status and answer as they change, then its last
/// status; the response ends there.
fn stream(
    app: AppState,
    caller: Caller,
    id: Value,
    context: Option<String>,
    task: Option<Uuid>,
    text: String,
) -> Response {
    let (out, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let forward_out = out.clone();
        let started: std::sync::Arc<std::sync::Mutex<Option<(String, String)>>> =
            Default::default();
        let seen = started.clone();
        let relay = tokio::spawn(async move {
            let mut first = true;
            while let Some(e) = events.recv().await {
                let Some((task, context)) = seen.lock().ok().and_then(|g| g.clone()) else {
                    continue;
                };
                if let TurnEvent::Text { delta } = e {
                    let mut update = json!({
                        "taskId": task, "contextId": context,
                        "artifact": {"artifactId": "answer", "name": "answer", "parts": [{"text": delta}]},
                    });
                    if !first {
                        update["append"] = json!(true);
                    }
                    first = false;
                    let _ = forward_out.send(json!({"artifactUpdate": update}));
                }
            }
        });
        let tools = app.assistant_tools();
        let on_start = |t: &crate::store::assistant::A2aTask| {
            if let Ok(mut g) = started.lock() {
                *g = Some((t.id.to_string(), t.context_id.clone()));
            }
            let _ = out.send(json!({"task": {
                "id": t.id.to_string(), "contextId": t.context_id,
                "status": {"state": "TASK_STATE_SUBMITTED"},
            }}));
            let _ = out.send(json!({"statusUpdate": {
                "taskId": t.id.to_string(), "contextId": t.context_id,
                "status": {"state": "TASK_STATE_WORKING",
                           "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)},
            }}));
        };
        let result = app
            .domain
            .assistant
            .a2a_send(
                caller,
                A2aMessage {
                    context,
                    task,
                    text,
                },
                &tools,
                &tx,
                on_start,
            )
            .await;
        drop(tx);
        let _ = relay.await;
        match result {
            Ok(v) => {
                let t = task_json(&v);
                let _ = out.send(json!({"statusUpdate": {
                    "taskId": t["id"], "contextId": t["contextId"], "status": t["status"],
                }}));
            }
            Err(e) => {
                let _ = out.send(json!({"error": {"code": -32603, "message": e.to_string()}}));
            }
        }
    });
    crate::http::sse::event_stream(rx, move |v: Value| match v.get("error") {
        Some(err) => format!(
            "event: error\ndata: {}\n\n",
            json!({"jsonrpc": "2.0", "id": id, "error": err})
        ),
        None => format!(
            "data: {}\n\n",
            json!({"jsonrpc": "2.0", "id": id, "result": v})
        ),
    })
}
