//! `/api/v1` for the AI half: LLM providers (`/llm-providers`), budgets (`/budgets`) and
//! pipeline runs (`/projects/{id}/pipeline-runs`, `/pipeline-runs/{id}/…`): start, watch,
//! cancel, resume, approve or reject a gate, read artifacts one by one or as a zip, and read
//! the run's LLM calls. Each handler translates to one function of `crate::domain`.

use std::io::Write as _;

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::path_id;
use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult},
};
use crate::{
    domain::{
        budgets::{BudgetInput, BudgetView},
        pipelines::{CallView, Decision, ResumeRun, RunView, StartRun},
        providers::{ProviderInput, ProviderPatch},
    },
    state::AppState,
    store::pipelines::{ArtifactMeta, Budget, Deployment, LlmProvider},
};

/// `GET /api/v1/llm-providers`.
#[utoipa::path(
    get,
    path = "/api/v1/llm-providers",
    operation_id = "list_llm_providers",
    tag = "pipelines",
    responses(
        (status = 200, description = "The caller's LLM providers (keys shown only by their last characters)", body = Envelope<Vec<LlmProvider>>),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list_providers(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.providers.list(user.caller()).await?))
}

/// `POST /api/v1/llm-providers`.
#[utoipa::path(
    post,
    path = "/api/v1/llm-providers",
    operation_id = "create_llm_provider",
    tag = "pipelines",
    request_body = ProviderInput,
    responses(
        (status = 201, description = "The provider; its key is sealed and never shown again", body = Envelope<LlmProvider>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "A provider of this name exists", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn create_provider(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ProviderInput>,
) -> ApiResult<Response> {
    Ok(created(
        app.domain.providers.create(user.caller(), body).await?,
    ))
}

/// `PATCH /api/v1/llm-providers/{id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/llm-providers/{id}",
    operation_id = "update_llm_provider",
    tag = "pipelines",
    params(("id" = String, Path, description = "The provider's id")),
    request_body = ProviderPatch,
    responses(
        (status = 200, description = "The changed provider (a new key replaces the sealed one)", body = Envelope<LlmProvider>),
        (status = 404, description = "No such provider of the caller's", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn update_provider(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderPatch>,
) -> ApiResult<Response> {
    let id = path_id(&id, "provider")?;
    Ok(ok(app
        .domain
        .providers
        .update(user.caller(), id, body)
        .await?))
}

/// `DELETE /api/v1/llm-providers/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/llm-providers/{id}",
    operation_id = "delete_llm_provider",
    tag = "pipelines",
    params(("id" = String, Path, description = "The provider's id")),
    responses(
        (status = 204, description = "Removed, with its key"),
        (status = 404, description = "No such provider of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn delete_provider(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "provider")?;
    app.domain.providers.delete(user.caller(), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/budgets`.
#[utoipa::path(
    get,
    path = "/api/v1/budgets",
    operation_id = "list_budgets",
    tag = "pipelines",
    responses(
        (status = 200, description = "The caller's budgets and their projects', with what each counts so far", body = Envelope<Vec<BudgetView>>),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list_budgets(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.budgets.list(user.caller()).await?))
}

/// `PUT /api/v1/budgets`.
#[utoipa::path(
    put,
    path = "/api/v1/budgets",
    operation_id = "set_budget",
    tag = "pipelines",
    request_body = BudgetInput,
    responses(
        (status = 200, description = "The budget (one per scope and period; setting it again replaces the limit)", body = Envelope<Budget>),
        (status = 403, description = "Only a project's owner sets its budget", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn set_budget(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<BudgetInput>,
) -> ApiResult<Response> {
    Ok(ok(app.domain.budgets.set(user.caller(), body).await?))
}

/// `DELETE /api/v1/budgets/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/budgets/{id}",
    operation_id = "delete_budget",
    tag = "pipelines",
    params(("id" = String, Path, description = "The budget's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such budget set by the caller", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["write"]))
)]
pub async fn delete_budget(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "budget")?;
    app.domain.budgets.delete(user.caller(), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/projects/{id}/pipeline-runs`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/pipeline-runs",
    operation_id = "list_pipeline_runs",
    tag = "pipelines",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The project's pipeline runs, newest first", body = Envelope<Vec<RunView>>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list_runs(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(ok(app.domain.pipelines.list(user.caller(), id).await?))
}

/// `GET /api/v1/projects/{id}/deployments`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/deployments",
    operation_id = "list_deployments",
    tag = "pipelines",
    params(("id" = String, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The project's deployments, newest first", body = Envelope<Vec<Deployment>>),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn list_deployments(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(ok(app
        .domain
        .pipelines
        .deployments(user.caller(), id)
        .await?))
}

/// `POST /api/v1/projects/{id}/pipeline-runs`.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/pipeline-runs",
    operation_id = "start_pipeline_run",
    tag = "pipelines",
    params(("id" = String, Path, description = "The project's id")),
    request_body = StartRun,
    responses(
        (status = 201, description = "The run, queued", body = Envelope<RunView>),
        (status = 403, description = "A viewer cannot start pipelines", body = ErrorBody),
        (status = 404, description = "No such project of the caller's", body = ErrorBody),
        (status = 409, description = "No LLM provider is set up", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn start_run(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StartRun>,
) -> ApiResult<Response> {
    let id = path_id(&id, "project")?;
    Ok(created(
        app.domain.pipelines.start(user.caller(), id, body).await?,
    ))
}

/// `GET /api/v1/pipeline-runs/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/pipeline-runs/{id}",
    operation_id = "get_pipeline_run",
    tag = "pipelines",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run with its stages, tokens and cost", body = Envelope<RunView>),
        (status = 404, description = "No such run in the caller's projects", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn get_run(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app.domain.pipelines.get(user.caller(), id).await?))
}

/// `POST /api/v1/pipeline-runs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/pipeline-runs/{id}/cancel",
    operation_id = "cancel_pipeline_run",
    tag = "pipelines",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run: canceled, or canceling at its next step", body = Envelope<RunView>),
        (status = 404, description = "No such run in the caller's projects", body = ErrorBody),
        (status = 409, description = "The run has ended", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn cancel_run(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app.domain.pipelines.cancel(user.caller(), id).await?))
}

/// `POST /api/v1/pipeline-runs/{id}/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/pipeline-runs/{id}/resume",
    operation_id = "resume_pipeline_run",
    tag = "pipelines",
    params(("id" = String, Path, description = "The run's id")),
    request_body = ResumeRun,
    responses(
        (status = 200, description = "The run, back in line", body = Envelope<RunView>),
        (status = 404, description = "No such run or stage", body = ErrorBody),
        (status = 409, description = "The run is queued or running", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn resume_run(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResumeRun>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app
        .domain
        .pipelines
        .resume(user.caller(), id, body)
        .await?))
}

/// `POST /api/v1/pipeline-runs/{id}/stages/{stage}/approve`.
#[utoipa::path(
    post,
    path = "/api/v1/pipeline-runs/{id}/stages/{stage}/approve",
    operation_id = "approve_pipeline_stage",
    tag = "pipelines",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("stage" = String, Path, description = "The approval gate")
    ),
    responses(
        (status = 200, description = "The run, going on", body = Envelope<RunView>),
        (status = 403, description = "The caller's role cannot decide this gate", body = ErrorBody),
        (status = 404, description = "No such run or gate", body = ErrorBody),
        (status = 409, description = "The gate is not waiting", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn approve(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, stage)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app
        .domain
        .pipelines
        .approve(user.caller(), id, &stage)
        .await?))
}

/// `POST /api/v1/pipeline-runs/{id}/stages/{stage}/reject`.
#[utoipa::path(
    post,
    path = "/api/v1/pipeline-runs/{id}/stages/{stage}/reject",
    operation_id = "reject_pipeline_stage",
    tag = "pipelines",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("stage" = String, Path, description = "The approval gate")
    ),
    request_body = Decision,
    responses(
        (status = 200, description = "The run: the gated stages run again with the comment", body = Envelope<RunView>),
        (status = 403, description = "The caller's role cannot decide this gate", body = ErrorBody),
        (status = 404, description = "No such run or gate", body = ErrorBody),
        (status = 409, description = "The gate is not waiting", body = ErrorBody),
        AuthErrors,
        BodyErrors
    ),
    security(("bearer" = ["run"]))
)]
pub async fn reject(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, stage)): Path<(String, String)>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app
        .domain
        .pipelines
        .reject(user.caller(), id, &stage, body)
        .await?))
}

/// `GET /api/v1/pipeline-runs/{id}/calls`.
#[utoipa::path(
    get,
    path = "/api/v1/pipeline-runs/{id}/calls",
    operation_id = "list_pipeline_run_calls",
    tag = "pipelines",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run's LLM calls with their OpenTelemetry GenAI facts", body = Envelope<Vec<CallView>>),
        (status = 404, description = "No such run in the caller's projects", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn calls(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app.domain.pipelines.calls(user.caller(), id).await?))
}

/// `GET /api/v1/pipeline-runs/{id}/artifacts`.
#[utoipa::path(
    get,
    path = "/api/v1/pipeline-runs/{id}/artifacts",
    operation_id = "list_pipeline_artifacts",
    tag = "pipelines",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run's artifacts", body = Envelope<Vec<ArtifactMeta>>),
        (status = 404, description = "No such run in the caller's projects", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn artifacts(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    Ok(ok(app
        .domain
        .pipelines
        .artifacts(user.caller(), id)
        .await?))
}

/// `GET /api/v1/pipeline-runs/{id}/artifacts/{path}`: the content itself.
#[utoipa::path(
    get,
    path = "/api/v1/pipeline-runs/{id}/artifacts/{path}",
    operation_id = "get_pipeline_artifact",
    tag = "pipelines",
    params(
        ("id" = String, Path, description = "The run's id"),
        ("path" = String, Path, description = "The artifact's path, such as `api/openapi.yaml`")
    ),
    responses(
        (status = 200, description = "The artifact's content, with its media type", content_type = "text/plain", body = String),
        (status = 404, description = "No such run or artifact", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn artifact(
    State(app): State<AppState>,
    user: AuthUser,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    let a = app
        .domain
        .pipelines
        .artifact(user.caller(), id, &path)
        .await?;
    let file = path
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .replace('"', "");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                format!("{}; charset=utf-8", a.meta.media_type),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file}\""),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox".to_owned(),
            ),
        ],
        a.content,
    )
        .into_response())
}

/// `GET /api/v1/pipeline-runs/{id}/artifacts.zip`: every artifact, as a zip.
#[utoipa::path(
    get,
    path = "/api/v1/pipeline-runs/{id}/artifacts.zip",
    operation_id = "download_pipeline_artifacts",
    tag = "pipelines",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "A zip of the run's artifacts, under a folder named after the run", content_type = "application/zip", body = Vec<u8>),
        (status = 404, description = "No such run in the caller's projects", body = ErrorBody),
        AuthErrors
    ),
    security(("bearer" = ["read"]))
)]
pub async fn artifacts_zip(
    State(app): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "pipeline run")?;
    let (handle, all) = app
        .domain
        .pipelines
        .all_artifacts(user.caller(), id)
        .await?;
    let handle_name = handle.clone();
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for a in &all {
            zip.start_file(format!("run-{handle}/{}", a.meta.path), options)
                .map_err(std::io::Error::other)?;
            zip.write_all(a.content.as_bytes())?;
        }
        Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"fulcrum-run-{handle_name}.zip\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
