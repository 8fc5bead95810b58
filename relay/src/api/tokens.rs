//! `/api/v1/agent-tokens`: the dashboard's side of `fulcrum-relay token create|list|revoke`.
//!
//! Two kinds of token live here: agent tokens (`fca_…`), with which an agent dials in, and MCP
//! tokens (`fcm_…`), with which an MCP client calls `/mcp`. An MCP token may be read-only.

use axum::{
    extract::{Path, State},
    response::Response,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::tokens::CreatedToken;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult},
};
use crate::{
    state::AppState,
    store::{AgentToken, TokenKind},
};

/// The answer to a revocation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The token's id.
    pub id: uuid::Uuid,
    /// Always true.
    pub revoked: bool,
}

/// Body of `POST /api/v1/agent-tokens`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// A name to recognise the token by.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// `agent` (the default) or `mcp`.
    kind: Option<TokenKind>,
    /// For an MCP token: it may read but not write files or run tasks.
    #[serde(default)]
    read_only: bool,
    /// When it stops working (RFC 3339, in the future, at most ten years away) [default:
    /// never].
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /api/v1/agent-tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/agent-tokens",
    operation_id = "list_agent_tokens",
    tag = "agent tokens",
    responses(
        (status = 200, description = "The caller's agent tokens", body = Envelope<Vec<AgentToken>>),
        AuthErrors
    )
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.tokens.list(user.caller()).await?))
}

/// `POST /api/v1/agent-tokens`.
#[utoipa::path(
    post,
    path = "/api/v1/agent-tokens",
    operation_id = "create_agent_token",
    tag = "agent tokens",
    request_body = NewTokenBody,
    responses(
        (status = 201, description = "The token, with its secret shown this once", body = Envelope<CreatedToken>),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        AuthErrors,
        BodyErrors
    )
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<NewTokenBody>,
) -> ApiResult<Response> {
    Ok(created(
        app.domain
            .tokens
            .create(
                user.caller(),
                &body.name,
                body.kind.unwrap_or(TokenKind::Agent),
                body.read_only,
                body.expires_at,
            )
            .await?,
    ))
}

/// `DELETE /api/v1/agent-tokens/{id}`: revokes the token and disconnects agents using it.
#[utoipa::path(
    delete,
    path = "/api/v1/agent-tokens/{id}",
    operation_id = "revoke_agent_token",
    tag = "agent tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked; its agents are disconnected", body = Envelope<Revoked>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn revoke(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("agent token"))?;
    app.domain.tokens.revoke(user.caller(), id).await?;
    Ok(ok(Revoked { id, revoked: true }))
}
