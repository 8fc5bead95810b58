//! Project invitations: nobody becomes a member of a project without saying yes.
//!
//! The owner invites an e-mail address (`POST /api/v1/projects/{id}/invitations`); the answer is
//! the same whether or not that address has an account, so inviting tells nothing about who uses
//! the relay. The user with that address sees it (`GET /api/v1/invitations`) and accepts or
//! declines it. Invitations last [`INVITATION_DAYS`] days; a project has at most
//! [`MAX_PENDING`] pending at once.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{Duration, Utc};
use uuid::Uuid;

use super::{
    auth::{AuthUser, normalize_email},
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult, ErrorKind},
    projects::{MemberBody, member_project, member_role, parse_id, require},
};
use crate::{
    state::AppState,
    store::{Invitation, Project, Role},
};

/// How long an invitation can be accepted.
pub const INVITATION_DAYS: i64 = 7;
/// Most pending invitations per project.
pub const MAX_PENDING: usize = 100;

fn parse_invitation(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("invitation"))
}

/// The caller's e-mail address.
async fn email_of(app: &AppState, user: AuthUser) -> ApiResult<String> {
    Ok(app
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the user no longer exists"))?
        .email)
}

/// `POST /api/v1/projects/{id}/invitations`: invite an e-mail address.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/invitations",
    operation_id = "invite_member",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    request_body = MemberBody,
    responses(
        (status = 201, description = "The invitation (the same answer whether or not the address has an account)", body = Envelope<Invitation>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        (status = 409, description = "Already a member, or too many pending invitations", body = ErrorBody),
        AuthErrors,
        BodyErrors
    )
)]
pub async fn invite(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Response> {
    let project = member_project(&app, user.id, parse_id(&id)?).await?;
    require(&project, &[Role::Owner], "manage its members")?;
    let role = member_role(&body.role)?;
    let email = normalize_email(&body.email).map_err(ApiError::invalid)?;
    if app
        .store
        .project_members(&project)
        .await?
        .iter()
        .any(|m| m.email == email)
    {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "already_member",
            "that address is already a member; change its role with PUT …/members",
        ));
    }
    let now = Utc::now();
    let pending = app.store.project_invitations(project.id, now).await?;
    if pending.len() >= MAX_PENDING && !pending.iter().any(|i| i.email == email) {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            "too_many_invitations",
            format!("at most {MAX_PENDING} pending invitations per project"),
        ));
    }
    let invitation = app
        .store
        .invite(
            project.id,
            &email,
            role,
            user.id,
            now,
            now + Duration::days(INVITATION_DAYS),
        )
        .await?;
    Ok(created(invitation))
}

/// `GET /api/v1/projects/{id}/invitations`: the project's pending invitations (owner only).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/invitations",
    operation_id = "list_project_invitations",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "Its pending invitations", body = Envelope<Vec<Invitation>>),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn for_project(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let project = member_project(&app, user.id, parse_id(&id)?).await?;
    require(&project, &[Role::Owner], "manage its members")?;
    Ok(ok(app
        .store
        .project_invitations(project.id, Utc::now())
        .await?))
}

/// `DELETE /api/v1/projects/{id}/invitations/{invitation_id}`: withdraw an invitation.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/invitations/{invitation_id}",
    operation_id = "withdraw_invitation",
    tag = "projects",
    params(("id" = String, Path, description = "The project's id"), ("invitation_id" = String, Path, description = "The invitation's id")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 403, description = "Not allowed for this role", body = ErrorBody),
        (status = 404, description = "No such thing, or not the caller's", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn withdraw(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, invitation)): Path<(String, String)>,
) -> ApiResult<Response> {
    let project = member_project(&app, user.id, parse_id(&id)?).await?;
    require(&project, &[Role::Owner], "manage its members")?;
    let invitation = parse_invitation(&invitation)?;
    if !app
        .store
        .withdraw_invitation(project.id, invitation)
        .await?
    {
        return Err(ApiError::not_found("invitation"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/invitations`: the invitations addressed to the caller.
#[utoipa::path(
    get,
    path = "/api/v1/invitations",
    operation_id = "my_invitations",
    tag = "projects",
    responses(
        (status = 200, description = "Pending invitations to the caller's e-mail address", body = Envelope<Vec<Invitation>>),
        AuthErrors
    )
)]
pub async fn mine(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    let email = email_of(&app, user).await?;
    Ok(ok(app.store.invitations_for(&email, Utc::now()).await?))
}

/// `POST /api/v1/invitations/{id}/accept`: join the project.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/{id}/accept",
    operation_id = "accept_invitation",
    tag = "projects",
    params(("id" = String, Path, description = "The invitation's id")),
    responses(
        (status = 200, description = "The project joined", body = Envelope<Project>),
        (status = 404, description = "No such invitation to the caller, or it expired", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn accept(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_invitation(&id)?;
    let email = email_of(&app, user).await?;
    let project = app
        .store
        .accept_invitation(user.id, &email, id, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found("invitation"))?;
    app.access.members_changed(project);
    Ok(ok(member_project(&app, user.id, project).await?))
}

/// `POST /api/v1/invitations/{id}/decline`: say no.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/{id}/decline",
    operation_id = "decline_invitation",
    tag = "projects",
    params(("id" = String, Path, description = "The invitation's id")),
    responses(
        (status = 204, description = "Declined"),
        (status = 404, description = "No such invitation to the caller", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn decline(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_invitation(&id)?;
    let email = email_of(&app, user).await?;
    if !app.store.decline_invitation(&email, id).await? {
        return Err(ApiError::not_found("invitation"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
