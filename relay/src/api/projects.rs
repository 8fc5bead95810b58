//! `/api/v1/projects`: projects, their members and workspaces, and their status.
//!
//! Every project endpoint answers 404 to a user who is not a member, as for a missing project.
//! Viewers may read; maintainers may also edit and attach workspaces; only the owner manages
//! members and archives.

use std::collections::HashMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult},
};
use fulcrum_protocol::TaskState;

use crate::{
    domain::{self, projects::ProjectInput},
    state::AppState,
    store::{Health, Member, Project, TaskFilter},
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
    )
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ProjectBody>,
) -> ApiResult<Response> {
    Ok(created(
        domain::projects::create(&app, user.caller(), input(body)).await?,
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
    )
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(domain::projects::list(&app, user.id).await?))
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
    )
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(
        domain::projects::visible(&app, user.id, parse_id(&id)?).await?
    ))
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
    )
)]
pub async fn update(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProjectBody>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(ok(domain::projects::update(
        &app,
        user.caller(),
        id,
        input(body),
    )
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
    )
)]
pub async fn archive(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(domain::projects::archive(
        &app,
        user.caller(),
        parse_id(&id)?,
    )
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
    Ok(ok(domain::projects::set_workspace(
        &app,
        user.caller(),
        id,
        workspace,
        attach,
    )
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
    )
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
    )
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
    )
)]
pub async fn members(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(
        domain::projects::members(&app, user.id, parse_id(&id)?).await?
    ))
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
    )
)]
pub async fn set_member(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(ok(domain::projects::set_member_role(
        &app,
        user.caller(),
        id,
        &body.email,
        &body.role,
    )
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
    )
)]
pub async fn remove_member(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let member = Uuid::parse_str(&member).map_err(|_| ApiError::not_found("member"))?;
    domain::projects::remove_member(&app, user.caller(), id, member).await?;
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
        (status = 200, description = "Its workspaces, last tasks and health", body = Envelope<ProjectReport>),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn status(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let project = domain::projects::visible(&app, user.id, parse_id(&id)?).await?;
    let (mut last_tasks, _) = app
        .store
        .list_tasks(
            user.id,
            &TaskFilter {
                project: Some(project.id),
                page: 1,
                per_page: 10,
                ..Default::default()
            },
        )
        .await?;
    app.live_tasks.overlay(&mut last_tasks);
    // The workspaces' names and presence: from their owners' rows, overlaid with live views.
    let mut workspaces = Vec::new();
    let mut seen: HashMap<Uuid, ()> = HashMap::new();
    for member in app.store.project_members(&project).await? {
        for w in crate::domain::workspaces::current(&app, member.user_id).await? {
            if project.workspace_ids.contains(&w.id) && seen.insert(w.id, ()).is_none() {
                workspaces.push(Presence {
                    id: w.id,
                    name: w.name,
                    online: w.online,
                    last_seen_at: w.last_seen_at,
                });
            }
        }
    }
    let any_online = workspaces.iter().any(|w| w.online);
    let health = match last_tasks.first() {
        Some(t) if !t.is_finished() => Health::Running,
        Some(t) if t.state != TaskState::Succeeded => Health::Failing,
        _ if !workspaces.is_empty() && !any_online => Health::Offline,
        Some(_) => Health::Healthy,
        None => Health::Idle,
    };
    Ok(ok(ProjectReport {
        project,
        workspaces,
        last_tasks,
        health,
    }))
}

/// A project's workspaces, last tasks and health.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProjectReport {
    /// The project.
    project: Project,
    /// Its workspaces, online or not.
    workspaces: Vec<Presence>,
    /// Its last 10 tasks, newest first.
    last_tasks: Vec<crate::store::Task>,
    /// Its health in one word.
    health: Health,
}

/// A workspace's name and presence.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Presence {
    id: Uuid,
    name: String,
    online: bool,
    last_seen_at: Option<chrono::DateTime<Utc>>,
}
