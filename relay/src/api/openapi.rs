//! The OpenAPI 3.1 document of the REST API, generated from the handlers' own annotations and
//! served at `GET /api/v1/openapi.json`.

use axum::{http::header, response::IntoResponse};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    activity, admin, assistant, auth, invitations, oauth, pipelines, projects, prompts, tasks,
    tickets, tokens, webhooks, workspaces,
};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fulcrum relay API",
        description = "Workspaces, projects, build and QA tasks. Every answer is an envelope \
            `{data, meta, errors}`. Authenticate with `Authorization: Bearer <access token>` \
            from `POST /api/v1/auth/login`, or with an API token (`fck_…`) for scripts, CI and \
            automations. A token may do what its scopes allow: each operation's security \
            requirement names the scope it needs (`read`, `write`, `run`, `admin`); an \
            operation that names none needs a login (tokens are refused with 403 \
            `login_required`). A token limited to one project or workspace sees only that."
    ),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout, auth::me, auth::update_me,
        auth::change_password, auth::reset_password,
        tokens::list, tokens::create, tokens::revoke,
        workspaces::list, workspaces::get,
        projects::list, projects::create, projects::get, projects::update, projects::archive,
        projects::status, projects::attach_workspace, projects::detach_workspace,
        projects::members, projects::set_member, projects::remove_member,
        invitations::invite, invitations::for_project, invitations::withdraw, invitations::mine,
        invitations::accept, invitations::decline,
        tasks::list, tasks::create, tasks::get, tasks::by_number, tasks::cancel, tasks::rerun, tasks::logs,
        tickets::ticket,
        pipelines::list_providers, pipelines::create_provider, pipelines::update_provider,
        pipelines::delete_provider, pipelines::list_budgets, pipelines::set_budget,
        pipelines::delete_budget, pipelines::list_runs, pipelines::list_deployments, pipelines::start_run, pipelines::get_run,
        pipelines::cancel_run, pipelines::resume_run, pipelines::approve, pipelines::reject,
        pipelines::calls, pipelines::artifacts, pipelines::artifact, pipelines::artifacts_zip,
        admin::users, admin::deactivate, admin::activate, admin::reset_link,
        oauth::request, oauth::consent,
        activity::ingest, activity::list, activity::report, activity::usage, activity::project_report,
        activity::ai_commits,
        activity::get_settings, activity::set_settings,
        assistant::list, assistant::create, assistant::get, assistant::delete, assistant::ask,
        assistant::confirm,
        prompts::list, prompts::save, prompts::get, prompts::delete,
        webhooks::list, webhooks::create, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::rotate, webhooks::test, webhooks::deliveries, webhooks::delivery,
        webhooks::replay,
        super::live, super::ready,
    ),
    components(schemas(crate::domain::activity::ActivityInput, crate::domain::assistant::TurnEvent)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "tokens", description = "Tokens of every kind (agent, mcp, api, ingest), their scopes and limits"),
        (name = "admin", description = "Users, for administrators of the relay"),
        (name = "oauth", description = "The consent step of the OAuth server for MCP clients"),
        (name = "workspaces", description = "Workspaces and their repositories, live"),
        (name = "projects", description = "Projects, members and their workspaces"),
        (name = "tasks", description = "Build and QA tasks and their logs"),
        (name = "pipelines", description = "AI generation pipelines, their LLM providers and budgets"),
        (name = "activity", description = "AI activity: reported by tools, recorded by the relay, and its reports"),
        (name = "assistant", description = "The project manager assistant: conversations, streamed answers, tool calls confirmed by the user"),
        (name = "webhooks", description = "Outgoing webhooks (Standard Webhooks): endpoints, their signing secrets, test events and delivery logs"),
        (name = "events", description = "The live event socket"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme every secured operation refers to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
    }
}

/// The document as JSON, built once.
static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
