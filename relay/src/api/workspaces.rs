//! `/api/v1/workspaces`: the caller's workspaces with their repositories.

use axum::{
    extract::{Path, State},
    response::Response,
};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{AuthErrors, Envelope, ErrorBody, ok},
    error::{ApiError, ApiResult},
};
use crate::{state::AppState, store::Workspace};

/// `GET /api/v1/workspaces`.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces",
    operation_id = "list_workspaces",
    tag = "workspaces",
    responses(
        (status = 200, description = "The caller's workspaces, live", body = Envelope<Vec<Workspace>>),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.workspaces.visible(user.caller()).await?))
}

/// `GET /api/v1/workspaces/{id}`: 404 for another user's workspace, as for a missing one.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{id}",
    operation_id = "get_workspace",
    tag = "workspaces",
    params(("id" = String, Path, description = "The workspace's id")),
    responses(
        (status = 200, description = "The workspace", body = Envelope<Workspace>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("workspace"))?;
    Ok(ok(app.domain.workspaces.get(user.caller(), id).await?))
}
