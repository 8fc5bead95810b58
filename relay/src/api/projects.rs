//! `/api/v1/projects`: projects, their members and workspaces, and their status.
//!
//! Every project endpoint answers 404 to a user who is not a member, as for a missing project.
//! Viewers may read; maintainers may also edit and attach workspaces; only the owner manages
//! members and archives.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult},
};

use crate::{
    domain::projects::ProjectInput,
    state::AppState,
    store::{Member, Project},
};

/// Body of `POST /api/v1/projects` and `PATCH /api/v1/projects/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    /// Display name (required when creating).
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// Free text.
    #[schema(max_length = 10000)]
    description: Option<String>,
    /// Where its code lives.
    repository_url: Option<String>,
    /// Languages and frameworks.
    #[schema(max_items = 32)]
    tech_stack: Option<Vec<String>>,
}

/// The domain's input from the body.
fn input(body: ProjectBody) -> ProjectInput {
    ProjectInput {
        name: body.name,
        description: body.description,
        repository_url: body.repository_url,
        tech_stack: body.tech_stack,
    }
}

pub(super) fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("project"))
}

/// `POST /api/v1/projects`.
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    operation_id = "create_project",
    tag = "projects",
    request_body = ProjectBody,
    responses(
        (status = 201, description = "The new project", body = Envelope<Project>),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ProjectBody>,
) -> ApiResult<Response> {
    Ok(created(
        app.domain
            .projects
            .create(user.caller(), input(body))
            .await?,
    ))
}

/// `GET /api/v1/projects`.
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    operation_id = "list_projects",
    tag = "projects",
    responses(
        (status = 200, description = "The projects the caller is a member of", body = Envelope<Vec<Project>>),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.projects.list(user.caller()).await?))
}

/// `GET /api/v1/projects/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    operation_id = "get_project",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The project", body = Envelope<Project>),
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
    Ok(ok(app
        .domain
        .projects
        .visible(user.caller(), parse_id(&id)?)
        .await?))
}

/// `PATCH /api/v1/projects/{id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}",
    operation_id = "update_project",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    request_body = ProjectBody,
    responses(
        (status = 200, description = "The changed project", body = Envelope<Project>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn update(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProjectBody>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(ok(app
        .domain
        .projects
        .update(user.caller(), id, input(body))
        .await?))
}

/// `POST /api/v1/projects/{id}/archive`.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/archive",
    operation_id = "archive_project",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The archived project", body = Envelope<Project>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn archive(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .projects
        .archive(user.caller(), parse_id(&id)?)
        .await?))
}

/// `PUT|DELETE /api/v1/projects/{id}/workspaces/{workspace_id}`: attach or detach one of the
/// caller's own workspaces.
async fn set_workspace(
    app: AppState,
    user: AuthUser,
    id: String,
    workspace: String,
    attach: bool,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let workspace = Uuid::parse_str(&workspace).map_err(|_| ApiError::not_found("workspace"))?;
    Ok(ok(app
        .domain
        .projects
        .set_workspace(user.caller(), id, workspace, attach)
        .await?))
}

/// `PUT /api/v1/projects/{id}/workspaces/{workspace_id}`.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/workspaces/{workspace_id}",
    operation_id = "attach_workspace",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id"), ("workspace_id" = String, Path, description = "The workspace's id")),
    responses(
        (status = 200, description = "The project", body = Envelope<Project>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn attach_workspace(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, workspace)): Path<(String, String)>,
) -> ApiResult<Response> {
    set_workspace(app, user, id, workspace, true).await
}

/// `DELETE /api/v1/projects/{id}/workspaces/{workspace_id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/workspaces/{workspace_id}",
    operation_id = "detach_workspace",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id"), ("workspace_id" = String, Path, description = "The workspace's id")),
    responses(
        (status = 200, description = "The project", body = Envelope<Project>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn detach_workspace(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, workspace)): Path<(String, String)>,
) -> ApiResult<Response> {
    set_workspace(app, user, id, workspace, false).await
}

/// `GET /api/v1/projects/{id}/members`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/members",
    operation_id = "list_members",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Its members", body = Envelope<Vec<Member>>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn members(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .projects
        .members(user.caller(), parse_id(&id)?)
        .await?))
}

/// Body of `PUT /api/v1/projects/{id}/members`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    /// The member's e-mail address.
    pub(super) email: String,
    /// `maintainer` or `viewer`.
    pub(super) role: String,
}

/// `PUT /api/v1/projects/{id}/members`: change a member's role. Nobody is added here: new
/// members come through invitations they accept (`POST /api/v1/projects/{id}/invitations`).
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/members",
    operation_id = "set_member",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    request_body = MemberBody,
    responses(
        (status = 200, description = "Its members", body = Envelope<Vec<Member>>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such project, or no member with that e-mail", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn set_member(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(ok(app
        .domain
        .projects
        .set_member_role(user.caller(), id, &body.email, &body.role)
        .await?))
}

/// `DELETE /api/v1/projects/{id}/members/{user_id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/members/{user_id}",
    operation_id = "remove_member",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id"), ("user_id" = String, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn remove_member(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let member = Uuid::parse_str(&member).map_err(|_| ApiError::not_found("member"))?;
    app.domain
        .projects
        .remove_member(user.caller(), id, member)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/projects/{id}/status`: its workspaces (online or not), its last tasks, and a
/// one-word health.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/status",
    operation_id = "project_status",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Its workspaces, last tasks and health", body = Envelope<crate::domain::projects::ProjectReport>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn status(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .projects
        .report(user.caller(), parse_id(&id)?)
        .await?))
}
