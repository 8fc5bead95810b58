//! `/api/v1/agent-tokens`: the dashboard's side of `fulcrum-relay token create|list|revoke`.
//!
//! Two kinds of token live here: agent tokens (`fca_…`), with which an agent dials in, and MCP
//! tokens (`fcm_…`), with which an MCP client calls `/mcp`. An MCP token may be read-only.

use axum::{
    extract::{Path, State},
    response::Response,
};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult, ErrorKind},
};
use crate::{
    auth::{self, AGENT_TOKEN_PREFIX, MCP_TOKEN_PREFIX},
    state::AppState,
    store::{AgentToken, DynStore, NewToken, TokenKind},
};

/// Longest token name.
const MAX_NAME: usize = 100;
/// Most tokens a user may hold, revoked ones included.
const MAX_TOKENS_PER_USER: usize = 200;

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
}

/// A token just created: its metadata and, this once, the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The stored metadata.
    #[serde(flatten)]
    pub token: AgentToken,
    /// The secret, shown once.
    #[serde(rename = "token")]
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Creates an agent token for `owner`.
pub async fn create_agent_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
) -> ApiResult<CreatedToken> {
    create_token(store, owner, name, TokenKind::Agent, false).await
}

/// Creates a token for `owner`: the one path used by the API and the CLI.
pub async fn create_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
    kind: TokenKind,
    read_only: bool,
) -> ApiResult<CreatedToken> {
    if read_only && kind != TokenKind::Mcp {
        return Err(ApiError::invalid(
            "only MCP tokens can be read-only; an agent token acts for its own workspace",
        ));
    }
    // The limit applies to the name as sent (the schema's maxLength), the emptiness check to
    // what is left after trimming.
    let too_long = name.chars().count() > MAX_NAME;
    let name = name.trim();
    if name.is_empty() || too_long {
        return Err(ApiError::invalid(format!(
            "a token name of 1 to {MAX_NAME} characters is required"
        )));
    }
    if store.list_agent_tokens(owner).await?.len() >= MAX_TOKENS_PER_USER {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "too_many_tokens",
            format!("at most {MAX_TOKENS_PER_USER} tokens per user"),
        ));
    }
    let new = auth::new_token(match kind {
        TokenKind::Agent => AGENT_TOKEN_PREFIX,
        TokenKind::Mcp => MCP_TOKEN_PREFIX,
    });
    let token = store
        .create_token(&NewToken {
            owner,
            name,
            token_hash: &new.hash,
            prefix: &new.shown_prefix,
            kind,
            read_only,
        })
        .await?;
    Ok(CreatedToken {
        token,
        secret: new.secret,
    })
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
    Ok(ok(app.store.list_agent_tokens(user.id).await?))
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
        create_token(
            &app.store,
            user.id,
            &body.name,
            body.kind.unwrap_or(TokenKind::Agent),
            body.read_only,
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
    if !app
        .store
        .revoke_agent_token(user.id, id, Utc::now())
        .await?
    {
        return Err(ApiError::not_found("agent token"));
    }
    crate::access::token_revoked(&app, id);
    Ok(ok(Revoked { id, revoked: true }))
}
