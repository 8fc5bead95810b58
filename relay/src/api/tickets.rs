//! `POST /api/v1/events/ticket`: a short-lived, single-use ticket for the events socket
//! (`crate::events`), which browsers cannot open with an `Authorization` header.

use axum::{extract::State, response::Response};
use chrono::{Duration, Utc};
use serde::Serialize;

use super::{
    auth::AuthUser,
    envelope::{AuthErrors, Envelope, ok},
    error::{ApiError, ApiResult},
};
use crate::{auth::TokenUse, state::AppState};

/// A short-lived ticket to open the events socket with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ticket {
    ticket: String,
    expires_in: u64,
}

/// `POST /api/v1/events/ticket`.
#[utoipa::path(
    post,
    path = "/api/v1/events/ticket",
    operation_id = "events_ticket",
    tag = "events",
    responses(
        (status = 200, description = "A ticket for `GET /api/v1/events?ticket=…`", body = Envelope<Ticket>),
        AuthErrors
    )
)]
pub async fn ticket(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.caller().need_login("the events socket")?;
    if !app.domain.accounts.login_active(user.login).await? {
        return Err(ApiError::unauthorized("this login has ended; log in again"));
    }
    let ttl = app.config.auth.events_ticket_ttl_secs;
    let ticket = app.signer.issue_in(
        user.id,
        user.login,
        TokenUse::Events,
        Utc::now(),
        Duration::seconds(ttl as i64),
    );
    Ok(ok(Ticket {
        ticket,
        expires_in: ttl,
    }))
}
