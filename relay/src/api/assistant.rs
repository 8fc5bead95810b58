//! `/api/v1/assistant/conversations`: the project manager assistant's REST door. Asking and
//! confirming answer with a stream of server-sent events (`text/event-stream`): `text`
//! (`{delta}`), `tool_call` (`{id, name, arguments}`), `tool_result` (`{id, name, ok,
//! content}`), `confirm` (`{id, name, arguments}`: the turn waits for the user), `error`
//! (`{message}`) and, last, `done` (`{state, reason?}`). The turn runs to its end even if the
//! client goes away; its messages are stored. Each handler translates to one function of
//! `crate::domain::assistant`.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use tokio::sync::mpsc;

use super::path_id;
use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::ApiResult,
};
use crate::{
    domain::{
        Caller,
        assistant::{
            Confirmation, ConversationDetail, ConversationView, NewConversation, Question,
            TurnEvent,
        },
    },
    state::AppState,
};

/// One server-sent event of a turn, as the stream carries it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only described: the stream is written as text.
pub struct TurnFrame {
    /// `text`, `tool_call`, `tool_result`, `confirm`, `error` or `done`.
    #[schema(pattern = "^(text|tool_call|tool_result|confirm|error|done)$")]
    event: String,
    /// The event's JSON (see `TurnEvent`).
    data: String,
}

/// `GET /api/v1/assistant/conversations`.
#[utoipa::path(
    get,
    path = "/api/v1/assistant/conversations",
    operation_id = "list_conversations",
    tag = "assistant",
    responses(
        (status = 200, description = "The caller's conversations with the assistant, latest first", body = Envelope<Vec<ConversationView>>),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.assistant.list(user.caller()).await?))
}

/// `POST /api/v1/assistant/conversations`.
#[utoipa::path(
    post,
    path = "/api/v1/assistant/conversations",
    operation_id = "create_conversation",
    tag = "assistant",
    request_body = NewConversation,
    responses(
        (status = 201, description = "The new conversation", body = Envelope<ConversationView>),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<NewConversation>,
) -> ApiResult<Response> {
    Ok(created(
        app.domain
            .assistant
            .create(user.caller(), body, None)
            .await?,
    ))
}

/// `GET /api/v1/assistant/conversations/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/assistant/conversations/{id}",
    operation_id = "get_conversation",
    tag = "assistant",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The conversation, its messages and the tool call waiting for confirmation", body = Envelope<ConversationDetail>),
        (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "conversation")?;
    Ok(ok(app.domain.assistant.get(user.caller(), id).await?))
}

/// `DELETE /api/v1/assistant/conversations/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/assistant/conversations/{id}",
    operation_id = "delete_conversation",
    tag = "assistant",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn delete(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "conversation")?;
    app.domain.assistant.delete(user.caller(), id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// A turn's events as server-sent events, the turn run by `run` in a task of its own.
fn stream<F, Fut>(run: F) -> Response
where
    F: FnOnce(mpsc::UnboundedSender<TurnEvent>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<TurnEvent>();
    tokio::spawn(run(tx));
    crate::http::sse::event_stream(rx, |e: TurnEvent| {
        let name = match &e {
            TurnEvent::Text { .. } => "text",
            TurnEvent::ToolCall { .. } => "tool_call",
            TurnEvent::ToolResult { .. } => "tool_result",
            TurnEvent::Confirm { .. } => "confirm",
            TurnEvent::Error { .. } => "error",
            TurnEvent::Done { .. } => "done",
        };
        let mut data = serde_json::to_value(&e).unwrap_or_default();
        if let Some(o) = data.as_object_mut() {
            o.remove("event");
        }
        format!("event: {name}\ndata: {data}\n\n")
    })
}

fn finish(tx: &mpsc::UnboundedSender<TurnEvent>, r: crate::domain::DomainResult<impl Sized>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "an assistant turn failed");
        let _ = tx.send(TurnEvent::Error {
            message: e.to_string(),
        });
        let _ = tx.send(TurnEvent::Done {
            state: crate::domain::assistant::TurnState::Stopped,
            reason: Some(e.to_string()),
        });
    }
}

/// `POST /api/v1/assistant/conversations/{id}/messages`.
#[utoipa::path(
    post,
    path = "/api/v1/assistant/conversations/{id}/messages",
    operation_id = "ask_assistant",
    tag = "assistant",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = Question,
    responses(
        (status = 200, description = "The turn's events as they happen (server-sent events: text, tool_call, tool_result, confirm, error, done)", body = TurnFrame, content_type = "text/event-stream"),
        (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
        (status = 409, description = "A tool call waits for confirmation", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn ask(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(q): ApiJson<Question>,
) -> ApiResult<Response> {
    let id = path_id(&id, "conversation")?;
    let caller: Caller = user.caller();
    app.domain.assistant.check_ask(caller, id, &q).await?;
    Ok(stream(move |tx| async move {
        let tools = app.assistant_tools();
        let r = app.domain.assistant.ask(caller, id, q, &tools, &tx).await;
        finish(&tx, r);
    }))
}

/// `POST /api/v1/assistant/conversations/{id}/confirm`.
#[utoipa::path(
    post,
    path = "/api/v1/assistant/conversations/{id}/confirm",
    operation_id = "confirm_assistant_call",
    tag = "assistant",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = Confirmation,
    responses(
        (status = 200, description = "The rest of the turn's events (server-sent events, as for a question)", body = TurnFrame, content_type = "text/event-stream"),
        (status = 404, description = "No such conversation of the caller's", body = ErrorBody),
        (status = 409, description = "No tool call with this id waits", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn confirm(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(answer): ApiJson<Confirmation>,
) -> ApiResult<Response> {
    let id = path_id(&id, "conversation")?;
    let caller: Caller = user.caller();
    app.domain
        .assistant
        .check_confirm(caller, id, &answer)
        .await?;
    Ok(stream(move |tx| async move {
        let tools = app.assistant_tools();
        let r = app
            .domain
            .assistant
            .confirm(caller, id, answer, &tools, &tx)
            .await;
        finish(&tx, r);
    }))
}
