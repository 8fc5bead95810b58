//! `/api/v1/tokens`: the dashboard's side of `fulcrum-relay token create|list|revoke`.
//!
//! Every kind of token lives here (`crate::domain::tokens`): agent tokens (`fca_…`), with which
//! an agent dials in; MCP tokens (`fcm_…`, static or issued to OAuth clients), for `/mcp`; API
//! tokens (`fck_…`), for the REST API; ingest tokens (`fci_…`), for reporting AI activity.
//! Each holds scopes and may be limited to one project or workspace. Managing tokens needs a
//! login: a token cannot make, list or revoke tokens.

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
    domain::tokens::TokenSpec,
    state::AppState,
    store::{Scope, Scopes, Token, TokenKind},
};

/// The answer to a revocation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The token's id.
    pub id: uuid::Uuid,
    /// Always true.
    pub revoked: bool,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// A name to recognise the token by.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Which door it opens [default: agent].
    kind: Option<TokenKind>,
    /// What it may do [default: the kind's: agent `read run`, mcp `read write run`, api
    /// `read`, ingest `ingest`]. An agent token may hold read and run; an MCP token read,
    /// write and run; an API token also admin (for an administrator); an ingest token only
    /// ingest.
    #[schema(value_type = Option<Vec<Scope>>)]
    scopes: Option<Scopes>,
    /// Limits it to one of the caller's projects (not for agent tokens).
    project_id: Option<Uuid>,
    /// Limits it to one of the caller's workspaces (not for agent tokens).
    workspace_id: Option<Uuid>,
    /// When it stops working (RFC 3339, in the future, at most ten years away) [default:
    /// never].
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /api/v1/tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The caller's tokens of every kind, revoked ones included", body = Envelope<Vec<Token>>),
        (status = 403, description = "A token cannot list tokens", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.tokens.list(user.caller()).await?))
}

/// `POST /api/v1/tokens`.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = NewTokenBody,
    responses(
        (status = 201, description = "The token, with its secret shown this once", body = Envelope<CreatedToken>),
        (status = 403, description = "A token cannot create tokens; or `admin` for a non-administrator", body = ErrorBody),
        (status = 404, description = "The project or workspace to limit it to is not the caller's", body = ErrorBody),
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
                TokenSpec {
                    name: body.name,
                    kind: body.kind.unwrap_or(TokenKind::Agent),
                    scopes: body.scopes,
                    project: body.project_id,
                    workspace: body.workspace_id,
                    expires_at: body.expires_at,
                },
            )
            .await?,
    ))
}

/// `DELETE /api/v1/tokens/{id}`: revokes the token and disconnects agents using it.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked; its agents are disconnected", body = Envelope<Revoked>),
        (status = 403, description = "A token cannot revoke tokens", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn revoke(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("token"))?;
    app.domain.tokens.revoke(user.caller(), id).await?;
    Ok(ok(Revoked { id, revoked: true }))
}
