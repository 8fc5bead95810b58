//! `/api/v1/workspaces`: the caller's workspaces with their repositories.

use axum::{
    extract::{Path, State},
    response::Response,
};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ok,
    error::{ApiError, ApiResult},
};
use crate::state::AppState;

/// `GET /api/v1/workspaces`.
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(crate::events::current(&app, user.id).await?))
}

/// `GET /api/v1/workspaces/{id}`: 404 for another user's workspace, as for a missing one.
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("workspace"))?;
    let workspace = app.store.get_workspace(user.id, id).await?;
    Ok(ok(
        workspace.ok_or_else(|| ApiError::not_found("workspace"))?
    ))
}
