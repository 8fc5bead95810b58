//! The REST door: everything under `/api/v1` that is plain HTTP, and the health checks. The
//! relay's whole router is put together in `crate::routes`.

mod activity;
mod admin;
mod assistant;
pub mod auth;
pub(crate) use crate::http::{envelope, error};
mod invitations;
mod oauth;
pub mod openapi;
mod pipelines;
mod projects;
mod prompts;
pub mod tasks;
mod tickets;
mod tokens;
mod webhooks;
mod workspaces;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{delete, get, patch, post, put},
};

use crate::{http::policy, state::AppState};
use error::{ApiError, ErrorKind};

/// The REST routes nested under `/api/v1`, with `sockets` (the other doors' WebSocket routes,
/// which live under the same prefix) among them, plus the health checks.
pub fn routes(state: &AppState, sockets: Router<AppState>) -> Router<AppState> {
    // Where the refresh cookie lives: never reachable cross-origin.
    let cookie_paths = Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/reset", post(auth::reset_password));
    let rest =
        Router::new()
            .route("/me", get(auth::me).patch(auth::update_me))
            .route("/me/password", post(auth::change_password))
            .route("/admin/users", get(admin::users))
            .route("/admin/users/{id}/deactivate", post(admin::deactivate))
            .route("/admin/users/{id}/activate", post(admin::activate))
            .route("/admin/users/{id}/reset-link", post(admin::reset_link))
            .route("/oauth/requests", get(oauth::request))
            .route("/oauth/consent", post(oauth::consent))
            .route("/tokens", get(tokens::list).post(tokens::create))
            .route("/tokens/{id}", delete(tokens::revoke))
            .route("/workspaces", get(workspaces::list))
            .route("/workspaces/{id}", get(workspaces::get))
            .route("/workspaces/{id}/tasks/{number}", get(tasks::by_number))
            .route("/projects", get(projects::list).post(projects::create))
            .route("/projects/{id}", get(projects::get).patch(projects::update))
            .route("/projects/{id}/archive", post(projects::archive))
            .route("/projects/{id}/status", get(projects::status))
            .route(
                "/projects/{id}/workspaces/{workspace_id}",
                put(projects::attach_workspace).delete(projects::detach_workspace),
            )
            .route(
                "/projects/{id}/members",
                get(projects::members).put(projects::set_member),
            )
            .route(
                "/projects/{id}/members/{user_id}",
                delete(projects::remove_member),
            )
            .route(
                "/projects/{id}/invitations",
                get(invitations::for_project).post(invitations::invite),
            )
            .route(
                "/projects/{id}/invitations/{invitation_id}",
                delete(invitations::withdraw),
            )
            .route("/invitations", get(invitations::mine))
            .route("/invitations/{id}/accept", post(invitations::accept))
            .route("/invitations/{id}/decline", post(invitations::decline))
            .route("/tasks", get(tasks::list).post(tasks::create))
            .route("/tasks/{id}", get(tasks::get))
            .route("/tasks/{id}/cancel", post(tasks::cancel))
            .route("/tasks/{id}/rerun", post(tasks::rerun))
            .route("/tasks/{id}/logs", get(tasks::logs))
            .route(
                "/llm-providers",
                get(pipelines::list_providers).post(pipelines::create_provider),
            )
            .route(
                "/llm-providers/{id}",
                patch(pipelines::update_provider).delete(pipelines::delete_provider),
            )
            .route(
                "/budgets",
                get(pipelines::list_budgets).put(pipelines::set_budget),
            )
            .route("/budgets/{id}", delete(pipelines::delete_budget))
            .route(
                "/projects/{id}/pipeline-runs",
                get(pipelines::list_runs).post(pipelines::start_run),
            )
            .route(
                "/projects/{id}/deployments",
                get(pipelines::list_deployments),
            )
            .route("/pipeline-runs/{id}", get(pipelines::get_run))
            .route("/pipeline-runs/{id}/cancel", post(pipelines::cancel_run))
            .route("/pipeline-runs/{id}/resume", post(pipelines::resume_run))
            .route(
                "/pipeline-runs/{id}/stages/{stage}/approve",
                post(pipelines::approve),
            )
            .route(
                "/pipeline-runs/{id}/stages/{stage}/reject",
                post(pipelines::reject),
            )
            .route("/pipeline-runs/{id}/calls", get(pipelines::calls))
            .route("/pipeline-runs/{id}/artifacts", get(pipelines::artifacts))
            .route(
                "/pipeline-runs/{id}/artifacts.zip",
                get(pipelines::artifacts_zip),
            )
            .route(
                "/pipeline-runs/{id}/artifacts/{*path}",
                get(pipelines::artifact),
            )
            .route(
                "/ai-activities",
                get(activity::list).post(activity::ingest).layer(
                    axum::extract::DefaultBodyLimit::max(crate::domain::activity::MAX_BATCH_BYTES),
                ),
            )
            .route("/ai-activities/report", get(activity::report))
            .route("/ai-activities/usage", get(activity::usage))
            .route("/projects/{id}/ai-report", get(activity::project_report))
            .route("/projects/{id}/ai-commits", get(activity::ai_commits))
            .route(
                "/projects/{id}/ai-settings",
                get(activity::get_settings).put(activity::set_settings),
            )
            .route(
                "/assistant/conversations",
                get(assistant::list).post(assistant::create),
            )
            .route(
                "/assistant/conversations/{id}",
                get(assistant::get).delete(assistant::delete),
            )
            .route(
                "/assistant/conversations/{id}/messages",
                post(assistant::ask),
            )
            .route(
                "/assistant/conversations/{id}/confirm",
                post(assistant::confirm),
            )
            .route(
                "/projects/{id}/prompts",
                get(prompts::list).post(prompts::save),
            )
            .route(
                "/projects/{id}/prompts/{name}",
                get(prompts::get).delete(prompts::delete),
            )
            .route("/webhooks", get(webhooks::list).post(webhooks::create))
            .route(
                "/webhooks/{id}",
                get(webhooks::get)
                    .patch(webhooks::update)
                    .delete(webhooks::delete),
            )
            .route("/webhooks/{id}/rotate-secret", post(webhooks::rotate))
            .route("/webhooks/{id}/test", post(webhooks::test))
            .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
            .route(
                "/webhooks/{id}/deliveries/{delivery}",
                get(webhooks::delivery),
            )
            .route(
                "/webhooks/{id}/deliveries/{delivery}/replay",
                post(webhooks::replay),
            )
            .route("/events/ticket", post(tickets::ticket))
            .route("/openapi.json", get(openapi::document))
            .merge(sockets);
    let rest = match policy::cors(state) {
        Some(cors) => rest.layer(cors),
        None => rest,
    };
    let api = cookie_paths.merge(rest).fallback(api_not_found);
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "not_found",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Whether the relay is up (the health probes' answer; `Health` is a project's health).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Probe {
    /// `ok`, or `ready` for readiness.
    status: &'static str,
    /// `ok` when the database answered (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
    /// The master key that seals secrets, by id, or `not_configured` (readiness only; the
    /// relay does not start when its keys do not open what is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<String>,
    /// The pipeline engine of this node: its name in run leases and the runs it drives, or
    /// `stopped` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pipelines: Option<String>,
    /// This node's outgoing webhook delivery loop: `running` or `stopped` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    webhooks: Option<&'static str>,
}

/// `GET /health/live` (also `/health`): the process is up.
#[utoipa::path(
    get, path = "/health/live", operation_id = "live", tag = "health", security(()),
    responses((status = 200, description = "Up", body = envelope::Envelope<Probe>))
)]
async fn live() -> Response {
    envelope::ok(Probe {
        status: "ok",
        database: None,
        secrets: None,
        pipelines: None,
        webhooks: None,
    })
}

/// A path's id: an id that is not a UUID names nothing, so it is `what` not found (404).
pub(super) fn path_id(id: &str, what: &str) -> error::ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(what))
}

/// `GET /health/ready`: the relay can serve (its database answers).
#[utoipa::path(
    get, path = "/health/ready", operation_id = "ready", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready", body = envelope::Envelope<Probe>),
        (status = 503, description = "The database is unreachable", body = envelope::ErrorBody)
    )
)]
async fn ready(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => envelope::ok(Probe {
            status: "ready",
            database: Some("ok"),
            secrets: Some(
                app.domain
                    .secrets
                    .current_key()
                    .map_or_else(|| "not_configured".to_owned(), |id| format!("key {id}")),
            ),
            pipelines: Some(app.engine.status()),
            webhooks: Some(app.webhook_dispatcher.status()),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(envelope::ErrorBody::new(
                    "unavailable",
                    "the database is unreachable",
                )),
            )
                .into_response()
        }
    }
}
