//! `/api/v1/webhooks`: outgoing webhook endpoints, their secrets, test events and delivery
//! logs. Each handler translates to one function of `crate::domain::webhooks`.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::path_id;
use super::{
    auth::AuthUser,
    envelope::{
        ApiJson, ApiQuery, AuthErrors, BodyErrors, Envelope, ErrorBody, QueryErrors, created, ok,
    },
    error::ApiResult,
};
use crate::{
    domain::webhooks::{
        DeliveryDetail, EndpointInput, EndpointPatch, EndpointView, EndpointWithSecret,
    },
    state::AppState,
    store::webhooks::Delivery,
};

/// A page of the delivery log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Deliveries older than this one (the last id of the page before).
    #[serde(default)]
    pub before: Option<Uuid>,
    /// How many, 1 to 200 [default 50].
    #[serde(default)]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The id of a test event.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TestEvent {
    /// The event's id.
    pub event_id: Uuid,
}

/// `GET /api/v1/webhooks`.
#[utoipa::path(
    get, path = "/api/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints the caller manages: their own, and those of the projects they own or maintain", body = Envelope<Vec<EndpointView>>),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.webhooks.list(user.caller()).await?))
}

/// `POST /api/v1/webhooks`.
#[utoipa::path(
    post, path = "/api/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body = EndpointInput,
    responses(
        (status = 201, description = "The endpoint, with its signing secret (shown this once)", body = Envelope<EndpointWithSecret>),
        (status = 403, description = "Only a project's owners and maintainers set up its webhooks", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn create(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<EndpointInput>,
) -> ApiResult<Response> {
    Ok(created(
        app.domain.webhooks.create(user.caller(), body).await?,
    ))
}

/// `GET /api/v1/webhooks/{id}`.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = Envelope<EndpointView>),
        (status = 404, description = "No such endpoint the caller manages", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    Ok(ok(app.domain.webhooks.get(user.caller(), id).await?))
}

/// `PATCH /api/v1/webhooks/{id}`.
#[utoipa::path(
    patch, path = "/api/v1/webhooks/{id}", operation_id = "update_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = EndpointPatch,
    responses(
        (status = 200, description = "The endpoint, changed", body = Envelope<EndpointView>),
        (status = 404, description = "No such endpoint the caller manages", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn update(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointPatch>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    Ok(ok(app
        .domain
        .webhooks
        .update(user.caller(), id, body)
        .await?))
}

/// `DELETE /api/v1/webhooks/{id}`.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted, with its deliveries and secrets"),
        (status = 404, description = "No such endpoint the caller manages", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn delete(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    app.domain.webhooks.delete(user.caller(), id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/webhooks/{id}/rotate-secret`.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/rotate-secret", operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint with its new secret (shown this once); the old one keeps signing too for 24 hours", body = Envelope<EndpointWithSecret>),
        (status = 404, description = "No such endpoint the caller manages", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn rotate(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    Ok(ok(app.domain.webhooks.rotate(user.caller(), id).await?))
}

/// `POST /api/v1/webhooks/{id}/test`.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/test", operation_id = "test_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "A `webhook_test` event is on its way", body = Envelope<TestEvent>),
        (status = 404, description = "No such endpoint the caller manages", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn test(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    let event_id = app.domain.webhooks.test(user.caller(), id).await?;
    Ok((axum::http::StatusCode::ACCEPTED, ok(TestEvent { event_id })).into_response())
}

/// `GET /api/v1/webhooks/{id}/deliveries`.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), DeliveryQuery),
    responses(
        (status = 200, description = "The endpoint's deliveries, newest first", body = Envelope<Vec<Delivery>>),
        (status = 404, description = "No such endpoint the caller manages", body = ErrorBody),
        AuthErrors,
        QueryErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn deliveries(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    Ok(ok(app
        .domain
        .webhooks
        .deliveries(user.caller(), id, q.before, q.limit)
        .await?))
}

/// `GET /api/v1/webhooks/{id}/deliveries/{delivery}`.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries/{delivery}", operation_id = "get_webhook_delivery",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("delivery" = String, Path, description = "The delivery's id")
    ),
    responses(
        (status = 200, description = "The delivery with every attempt", body = Envelope<DeliveryDetail>),
        (status = 404, description = "No such endpoint or delivery", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn delivery(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    let delivery = path_id(&delivery, "delivery")?;
    Ok(ok(app
        .domain
        .webhooks
        .delivery(user.caller(), id, delivery)
        .await?))
}

/// `POST /api/v1/webhooks/{id}/deliveries/{delivery}/replay`.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/replay",
    operation_id = "replay_webhook_delivery", tag = "webhooks",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("delivery" = String, Path, description = "The delivery's id")
    ),
    responses(
        (status = 202, description = "It is sent again, with the same `webhook-id`"),
        (status = 404, description = "No such endpoint or delivery", body = ErrorBody),
        (status = 409, description = "It is still being sent (`delivery_pending`)", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn replay(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_id(&id, "webhook endpoint")?;
    let delivery = path_id(&delivery, "delivery")?;
    app.domain
        .webhooks
        .replay(user.caller(), id, delivery)
        .await?;
    Ok(axum::http::StatusCode::ACCEPTED.into_response())
}
