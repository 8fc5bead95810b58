//! Project invitations: nobody becomes a member of a project without saying yes.
//!
//! The owner invites an e-mail address (`POST /api/v1/projects/{id}/invitations`); the answer is
//! the same whether or not that address has an account, so inviting tells nothing about who uses
//! the relay. The user with that address sees it (`GET /api/v1/invitations`) and accepts or
//! declines it. The rules are `domain::projects`'; these handlers translate.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult},
    projects::{MemberBody, parse_id},
};
use crate::{
    state::AppState,
    store::{Invitation, Project},
};

fn parse_invitation(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("invitation"))
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
    ),
    security(("bearer" = ["write"]))
)]
pub async fn invite(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    Ok(created(
        app.domain
            .projects
            .invite(user.caller(), id, &body.email, &body.role)
            .await?,
    ))
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
    ),
    security(("bearer" = ["write"]))
)]
pub async fn for_project(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .projects
        .invitations(user.caller(), parse_id(&id)?)
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
    ),
    security(("bearer" = ["write"]))
)]
pub async fn withdraw(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, invitation)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (id, invitation) = (parse_id(&id)?, parse_invitation(&invitation)?);
    app.domain
        .projects
        .withdraw(user.caller(), id, invitation)
        .await?;
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
    ),
    security(("bearer" = ["read"]))
)]
pub async fn mine(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .projects
        .my_invitations(user.caller())
        .await?))
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
    ),
    security(("bearer" = ["write"]))
)]
pub async fn accept(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_invitation(&id)?;
    Ok(ok(app.domain.projects.accept(user.caller(), id).await?))
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
    ),
    security(("bearer" = ["write"]))
)]
pub async fn decline(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_invitation(&id)?;
    app.domain.projects.decline(user.caller(), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
