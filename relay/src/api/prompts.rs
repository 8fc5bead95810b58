//! `/api/v1/projects/{id}/prompts`: a project's prompt library. Each handler translates to one
//! function of `crate::domain::prompts`.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::path_id;
use super::{
    auth::AuthUser,
    envelope::{
        ApiJson, ApiQuery, AuthErrors, BodyErrors, Envelope, ErrorBody, QueryErrors, created, ok,
    },
    error::ApiResult,
};
use crate::{
    domain::prompts::{PromptInput, PromptView},
    state::AppState,
};

/// A prompt and its versions.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PromptDetail {
    /// The version asked for (the latest by default).
    #[serde(flatten)]
    pub prompt: PromptView,
    /// Every version, newest first.
    pub versions: Vec<i32>,
}

/// Which version.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A version [default: the latest].
    #[serde(default)]
    #[param(minimum = 1)]
    pub version: Option<i32>,
}

/// `GET /api/v1/projects/{id}/prompts`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/prompts",
    operation_id = "list_prompts",
    tag = "activity",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The latest version of each of the project's prompts", body = Envelope<Vec<PromptView>>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(ok(app.domain.prompts.list(user.caller(), id).await?))
}

/// `POST /api/v1/projects/{id}/prompts`.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/prompts",
    operation_id = "save_prompt",
    tag = "activity",
    params(("id" = String, Path, description = "The project's id")),
    request_body = PromptInput,
    responses(
        (status = 201, description = "The prompt, saved as its next version", body = Envelope<PromptView>),
        (status = 403, description = "Only the project's owners and maintainers change its prompts", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn save(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PromptInput>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(created(
        app.domain.prompts.save(user.caller(), id, body).await?,
    ))
}

/// `GET /api/v1/projects/{id}/prompts/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/prompts/{name}",
    operation_id = "get_prompt",
    tag = "activity",
    params(
        ("id" = String, Path, description = "The project's id"),
        ("name" = String, Path, description = "The prompt's name"),
        VersionQuery
    ),
    responses(
        (status = 200, description = "The prompt (a version, or the latest) and its versions", body = Envelope<PromptDetail>),
        (status = 404, description = "No such project or prompt", body = ErrorBody),
        AuthErrors,
        QueryErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    let (prompt, versions) = app
        .domain
        .prompts
        .get(user.caller(), id, &name, q.version)
        .await?;
    Ok(ok(PromptDetail { prompt, versions }))
}

/// `DELETE /api/v1/projects/{id}/prompts/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/prompts/{name}",
    operation_id = "delete_prompt",
    tag = "activity",
    params(
        ("id" = String, Path, description = "The project's id"),
        ("name" = String, Path, description = "The prompt's name")
    ),
    responses(
        (status = 204, description = "Removed, with every version"),
        (status = 403, description = "Only the project's owners and maintainers change its prompts", body = ErrorBody),
        (status = 404, description = "No such project or prompt", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn delete(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    app.domain.prompts.delete(user.caller(), id, &name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
