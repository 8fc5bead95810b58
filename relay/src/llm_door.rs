//! The LLM gateway's door: `POST /llm/v1/chat/completions` (OpenAI's format) and
//! `POST /llm/v1/messages` (Anthropic's). A tool is pointed at `<relay>/llm/v1` as its base URL
//! (`<relay>/llm` for Anthropic's SDKs, which add `/v1/messages`) with a Fulcrum API token as
//! its API key (`Authorization: Bearer`, or `x-api-key` as
//! Anthropic's clients send it). Everything else is `crate::domain::llm_gateway`; this
//! translates headers in and answers out, errors in the provider's own shape.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use fulcrum_protocol::kinds::ProviderKind;

use crate::{
    auth::bearer,
    domain::{
        Caller, DomainError,
        llm_gateway::{
            GatewayAnswer, GatewayBody, GatewayError, GatewayRequest, MAX_REQUEST, error_body,
            unauthorized,
        },
    },
    http::client::token_caller,
    state::AppState,
    store::TokenKind,
};

/// The gateway's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/llm/v1/chat/completions", post(chat_completions))
        .route("/llm/v1/messages", post(messages))
        // Twice the gateway's own limit, so that a body just over it gets the gateway's error
        // in the provider's shape rather than a bare 413.
        .layer(DefaultBodyLimit::max(2 * MAX_REQUEST))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The provider-shaped answer to a gateway error.
fn refuse(kind: ProviderKind, e: &GatewayError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(error_body(kind, e))).into_response();
    // A budget refusal is not worth retrying: the official clients honour this.
    if e.kind == crate::domain::llm_gateway::GatewayErrorKind::Budget {
        r.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    r
}

/// The caller, from the token given as the API key.
async fn caller(parts: &mut Parts, app: &AppState) -> Result<Caller, GatewayError> {
    let token = bearer(&parts.headers)
        .map(str::to_owned)
        .or_else(|| header(&parts.headers, "x-api-key"));
    token_caller(
        parts,
        app,
        token,
        TokenKind::Api,
        "give a Fulcrum API token (fck_…) as the API key",
    )
    .await
    .map_err(|e| match e {
        DomainError::Throttled { .. } => GatewayError {
            status: 429,
            kind: crate::domain::llm_gateway::GatewayErrorKind::RateLimited,
            message: "this token is over its request limit; slow down".into(),
        },
        e => unauthorized(e.to_string()),
    })
}

async fn handle(app: AppState, kind: ProviderKind, parts: &mut Parts, body: Bytes) -> Response {
    let caller = match caller(parts, &app).await {
        Ok(c) => c,
        Err(e) => {
            app.metrics.gateway(kind.as_str(), e.outcome());
            return refuse(kind, &e);
        }
    };
    let h = &parts.headers;
    let req = GatewayRequest {
        kind,
        body,
        project: header(h, "x-fulcrum-project"),
        provider: header(h, "x-fulcrum-provider"),
        tool: header(h, "x-fulcrum-tool"),
        user_agent: header(h, "user-agent"),
        anthropic_version: header(h, "anthropic-version"),
    };
    match app.domain.gateway.forward(caller, req).await {
        Ok(answer) => pass_on(answer),
        Err(e) => refuse(kind, &e),
    }
}

/// The provider's answer, unchanged.
fn pass_on(a: GatewayAnswer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match a.body {
        GatewayBody::Whole(b) => Body::from(b),
        GatewayBody::Stream(rx) => {
            Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
            }))
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Some(ct) = a.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn chat_completions(State(app): State<AppState>, mut parts: Parts, body: Bytes) -> Response {
    handle(app, ProviderKind::Openai, &mut parts, body).await
}

async fn messages(State(app): State<AppState>, mut parts: Parts, body: Bytes) -> Response {
    handle(app, ProviderKind::Anthropic, &mut parts, body).await
}
