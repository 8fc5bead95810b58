//! `/api/v1` for AI activity: reporting it (`POST /ai-activities`, with an `ingest` token),
//! listing it, reports as JSON or CSV (`/ai-activities/report`), a project's Markdown report
//! (`/projects/{id}/ai-report`) and its AI settings. Each handler translates to one function
//! of `crate::domain::activity`.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use serde::Deserialize;
use uuid::Uuid;

use super::path_id;
use super::{
    auth::AuthUser,
    envelope::{ApiJson, ApiQuery, AuthErrors, BodyErrors, Envelope, ErrorBody, QueryErrors, ok},
    error::{ApiError, ApiResult},
};
use crate::{
    auth::bearer,
    domain::{
        Caller,
        activity::{ActivityQuery, AiSettings, IngestBatch, IngestResult, report::Report},
    },
    http::client::token_caller,
    state::AppState,
    store::{
        TokenKind,
        activity::{Activity, AiCommit, UsageCounter},
    },
};

/// The caller of the ingestion door: `Authorization: Bearer <ingest token>` (`fci_…`).
pub struct IngestUser(Caller);

impl FromRequestParts<AppState> for IngestUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).map(str::to_owned);
        let missing = "missing bearer token (an ingest token)";
        Ok(Self(
            token_caller(parts, app, token, TokenKind::Ingest, missing).await?,
        ))
    }
}

/// `POST /api/v1/ai-activities`.
#[utoipa::path(
    post,
    path = "/api/v1/ai-activities",
    operation_id = "ingest_ai_activities",
    tag = "activity",
    request_body = IngestBatch,
    responses(
        (status = 200, description = "What became of each activity: created, duplicate (its id was reported before) or rejected (with the reason); the valid ones are stored together", body = Envelope<IngestResult>),
        (status = 413, description = "The body is over 8 MiB", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["ingest"]))
)]
pub async fn ingest(
    State(app): State<AppState>,
    IngestUser(caller): IngestUser,
    ApiJson(batch): ApiJson<IngestBatch>,
) -> ApiResult<Response> {
    Ok(ok(app.domain.activities.ingest(caller, batch).await?))
}

/// `GET /api/v1/ai-activities`.
#[utoipa::path(
    get,
    path = "/api/v1/ai-activities",
    operation_id = "list_ai_activities",
    tag = "activity",
    params(ActivityQuery),
    responses(
        (status = 200, description = "Activities the caller may see (theirs and their projects'), newest first", body = Envelope<Vec<Activity>>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        QueryErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list(
    State(app): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> ApiResult<Response> {
    Ok(ok(app.domain.activities.list(user.caller(), q).await?))
}

/// Which usage counters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this project's.
    #[serde(default)]
    pub project: Option<Uuid>,
}

/// `GET /api/v1/ai-activities/usage`.
#[utoipa::path(
    get,
    path = "/api/v1/ai-activities/usage",
    operation_id = "ai_usage_counters",
    tag = "activity",
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage counters from OTLP metrics (token and cost counters of AI tools), summed per tool, model, metric and kind", body = Envelope<Vec<UsageCounter>>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        QueryErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn usage(
    State(app): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Response> {
    Ok(ok(app
        .domain
        .activities
        .usage(user.caller(), q.project)
        .await?))
}

/// How a report is wanted.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportFormat {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /api/v1/ai-activities/report`.
#[utoipa::path(
    get,
    path = "/api/v1/ai-activities/report",
    operation_id = "ai_activity_report",
    tag = "activity",
    params(crate::domain::activity::report::ReportQuery, ReportFormat),
    responses(
        (status = 200, description = "Counts, tokens, cost and latency percentiles per group, from the daily rollups", content(
            (Envelope<Report> = "application/json"),
            (String = "text/csv")
        )),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        QueryErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn report(
    State(app): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<crate::domain::activity::report::ReportQuery>,
    ApiQuery(f): ApiQuery<ReportFormat>,
) -> ApiResult<Response> {
    let csv = match f.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format is json or csv")),
    };
    let report = app.domain.activities.report(user.caller(), q).await?;
    if !csv {
        return Ok(ok(report));
    }
    let text = crate::domain::activity::report::csv(&report)?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"ai-activity.csv\""),
    );
    Ok(r)
}

/// The period of a project report.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// First day (UTC) [default: the first of this month].
    #[serde(default)]
    pub from: Option<NaiveDate>,
    /// Last day [default: today].
    #[serde(default)]
    pub to: Option<NaiveDate>,
}

/// `GET /api/v1/projects/{id}/ai-report`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/ai-report",
    operation_id = "project_ai_report",
    tag = "activity",
    params(("id" = String, Path, description = "The project's id"), PeriodQuery),
    responses(
        (status = 200, description = "The project's AI activity over the period, as Markdown", body = String, content_type = "text/markdown"),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        QueryErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn project_report(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PeriodQuery>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    let md = app
        .domain
        .activities
        .project_markdown(user.caller(), id, q.from, q.to)
        .await?;
    let mut r = md.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    Ok(r)
}

/// `GET /api/v1/projects/{id}/ai-settings`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/ai-settings",
    operation_id = "get_ai_settings",
    tag = "activity",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The project's AI settings", body = Envelope<AiSettings>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get_settings(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(ok(app
        .domain
        .activities
        .settings(user.caller(), id)
        .await?))
}

/// `PUT /api/v1/projects/{id}/ai-settings`.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/ai-settings",
    operation_id = "set_ai_settings",
    tag = "activity",
    params(("id" = String, Path, description = "The project's id")),
    request_body = AiSettings,
    responses(
        (status = 200, description = "The project's AI settings", body = Envelope<AiSettings>),
        (status = 403, description = "Only the project's owners and maintainers change them", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn set_settings(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AiSettings>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(ok(app
        .domain
        .activities
        .set_settings(user.caller(), id, body)
        .await?))
}

/// `GET /api/v1/projects/{id}/ai-commits`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/ai-commits",
    operation_id = "project_ai_commits",
    tag = "activity",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The project's AI-assisted commits, newest first, each with the activities linked to it and why", body = Envelope<Vec<AiCommit>>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn ai_commits(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(ok(app
        .domain
        .activities
        .ai_commits(user.caller(), id)
        .await?))
}
