//! `/api/v1/oauth/*`: the dashboard's side of the OAuth consent step. The relay's
//! `/oauth/authorize` sends the browser to the dashboard's consent page with the request's
//! parameters; the page shows what the client asks for (`GET /api/v1/oauth/requests`) and
//! sends the user's answer (`POST /api/v1/oauth/consent`), which says where the browser goes
//! next: back to the client, with a code or with `access_denied`.

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use serde::{Deserialize, Serialize};

use super::{
    auth::AuthUser,
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, ok},
    error::{ApiError, ApiResult},
};
use crate::{
    domain::oauth::{AuthorizeParams, ConsentRequest},
    state::AppState,
};

/// The request, checked, or why it cannot be answered.
async fn checked(
    app: &AppState,
    headers: &HeaderMap,
    params: &AuthorizeParams,
) -> ApiResult<ConsentRequest> {
    let base = app.config.base_url_for(crate::install::host(headers));
    app.domain
        .oauth
        .check_request(params, &format!("{base}/mcp"))
        .await
        .map_err(|bad| ApiError::invalid(bad.0))
}

/// `GET /api/v1/oauth/requests`: what an authorization request asks for.
#[utoipa::path(
    get,
    path = "/api/v1/oauth/requests",
    operation_id = "oauth_request",
    tag = "oauth",
    params(
        ("client_id" = String, Query, description = "The client"),
        ("redirect_uri" = Option<String>, Query, description = "One of its redirect URIs"),
        ("response_type" = String, Query, description = "code"),
        ("code_challenge" = String, Query, description = "PKCE S256 challenge"),
        ("code_challenge_method" = String, Query, description = "S256"),
        ("scope" = Option<String>, Query, description = "Scopes, space-separated"),
        ("state" = Option<String>, Query, description = "The client's state"),
        ("resource" = Option<String>, Query, description = "This relay's /mcp"),
    ),
    responses(
        (status = 200, description = "The client and what it asks for", body = Envelope<ConsentRequest>),
        (status = 422, description = "The request cannot be granted", body = ErrorBody),
        AuthErrors
    )
)]
pub async fn request(
    State(app): State<AppState>,
    _user: AuthUser,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> ApiResult<Response> {
    Ok(ok(checked(&app, &headers, &params).await?))
}

/// The user's answer to an authorization request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// The client.
    client_id: String,
    /// Its redirect URI.
    redirect_uri: Option<String>,
    /// `code`.
    response_type: Option<String>,
    /// PKCE S256 challenge.
    code_challenge: String,
    /// `S256`.
    code_challenge_method: String,
    /// Scopes, space-separated.
    scope: Option<String>,
    /// The client's state.
    state: Option<String>,
    /// This relay's /mcp.
    resource: Option<String>,
    /// Whether the user allows it.
    approve: bool,
}

/// Where the browser goes next.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentAnswer {
    /// The client's redirect URI with a code, or with `error=access_denied`.
    redirect_to: String,
}

/// `POST /api/v1/oauth/consent`: allow or deny; needs a login (a token cannot grant access).
#[utoipa::path(
    post,
    path = "/api/v1/oauth/consent",
    operation_id = "oauth_consent",
    tag = "oauth",
    request_body = ConsentBody,
    responses(
        (status = 200, description = "Where to send the browser", body = Envelope<ConsentAnswer>),
        (status = 403, description = "A token cannot grant access", body = ErrorBody),
        (status = 422, description = "The request cannot be granted", body = ErrorBody),
        AuthErrors,
        BodyErrors
    )
)]
pub async fn consent(
    State(app): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConsentBody>,
) -> ApiResult<Response> {
    let params = AuthorizeParams {
        response_type: Some(body.response_type.unwrap_or_else(|| "code".into())),
        client_id: Some(body.client_id),
        redirect_uri: body.redirect_uri,
        code_challenge: Some(body.code_challenge),
        code_challenge_method: Some(body.code_challenge_method),
        state: body.state,
        scope: body.scope,
        resource: body.resource,
    };
    let request = checked(&app, &headers, &params).await?;
    let issuer = app.config.base_url_for(crate::install::host(&headers));
    let redirect_to = app
        .domain
        .oauth
        .consent(user.caller(), request, body.approve, &issuer)
        .await?;
    Ok(ok(ConsentAnswer { redirect_to }))
}
