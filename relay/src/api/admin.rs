//! `/api/v1/admin/*`: the REST door to what an administrator of the relay does to users (the
//! same as `fulcrum-relay user deactivate|activate|reset-password`): list them, deactivate and
//! activate them, and make one-time password reset links. Needs a user whose role is `admin`
//! (`fulcrum-relay user admin --email …`), with a login or an API token holding `admin`.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, ok},
    error::{ApiError, ApiResult},
};
use crate::{
    domain::accounts::MAX_USERS_PAGE,
    state::AppState,
    store::{User, UserRole},
};

/// A user as an administrator sees them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Their id.
    pub id: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// Their name (may be empty).
    pub full_name: String,
    /// Member or administrator.
    pub role: UserRole,
    /// Whether the account is active.
    pub active: bool,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            active: u.active(),
            email: u.email,
            full_name: u.full_name,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

fn user_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("user"))
}

/// `GET /api/v1/admin/users`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    operation_id = "admin_list_users",
    tag = "admin",
    params(
        ("after" = Option<String>, Query, description = "Only users whose e-mail sorts after this (the last of the previous page)"),
        ("limit" = Option<i32>, Query, minimum = 1, maximum = 200, description = "Users per page [default: 100]"),
    ),
    responses(
        (status = 200, description = "Users by e-mail", body = Envelope<Vec<UserView>>),
        (status = 422, description = "limit out of range", body = ErrorBody),
        (status = 403, description = "Not an administrator, or a token without `admin`", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn users(
    State(app): State<AppState>,
    user: AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<u32>()
            .map_err(|_| ApiError::invalid(format!("limit must be from 1 to {MAX_USERS_PAGE}")))?,
        None => 100,
    };
    let after = q.get("after").map(String::as_str);
    let users = app
        .domain
        .accounts
        .users(user.caller(), after, limit)
        .await?;
    Ok(ok(users
        .into_iter()
        .map(UserView::from)
        .collect::<Vec<_>>()))
}

/// `POST /api/v1/admin/users/{id}/deactivate`: every login of theirs ends, and their open
/// streams, agent connections and MCP sessions end within a second on every relay.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/deactivate",
    operation_id = "admin_deactivate_user",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user, deactivated", body = Envelope<UserView>),
        (status = 403, description = "Not an administrator, or a token without `admin`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "An administrator cannot deactivate themself", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn deactivate(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_active(&app, user, &id, false).await
}

/// `POST /api/v1/admin/users/{id}/activate`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/activate",
    operation_id = "admin_activate_user",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user, active", body = Envelope<UserView>),
        (status = 403, description = "Not an administrator, or a token without `admin`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn activate(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_active(&app, user, &id, true).await
}

/// Deactivates or activates user `id` for the administrator `user`.
async fn set_active(app: &AppState, user: AuthUser, id: &str, active: bool) -> ApiResult<Response> {
    let changed = app
        .domain
        .accounts
        .set_user_active(user.caller(), user_id(id)?, active)
        .await?;
    Ok(ok(UserView::from(changed)))
}

/// Body of a reset-link request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetLinkBody {
    /// Minutes the link works [default: 60].
    #[schema(minimum = 1, maximum = 10080)]
    valid_for_mins: Option<i64>,
}

/// A one-time password reset link.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResetLink {
    /// The link, to hand to the user (shown this once).
    pub link: String,
    /// Until when it works.
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/admin/users/{id}/reset-link`: a one-time link that sets a new password (no
/// mail server is assumed: hand it over yourself). Using it ends every login of the user.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/reset-link",
    operation_id = "admin_reset_link",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = ResetLinkBody,
    responses(
        (status = 200, description = "The link, shown this once", body = Envelope<ResetLink>),
        (status = 403, description = "Not an administrator, or a token without `admin`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn reset_link(
    State(app): State<AppState>,
    user: AuthUser,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResetLinkBody>,
) -> ApiResult<Response> {
    let minutes = body.valid_for_mins.unwrap_or(60);
    let reset = app
        .domain
        .accounts
        .issue_reset_for(
            user.caller(),
            user_id(&id)?,
            chrono::Duration::minutes(minutes.clamp(0, 7 * 24 * 60 + 1)),
        )
        .await?;
    let base = app.config.base_url_for(crate::install::host(&headers));
    Ok(ok(ResetLink {
        link: format!("{base}/#/reset/{}", reset.secret),
        expires_at: reset.expires_at,
    }))
}
