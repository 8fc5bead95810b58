//! The OAuth door: the relay's authorization server endpoints for MCP clients
//! (`crate::domain::oauth` holds the rules).
//!
//! - `GET /.well-known/oauth-authorization-server`: the metadata (RFC 8414), beside the
//!   protected-resource metadata `mcp` serves (RFC 9728).
//! - `POST /oauth/register`: dynamic client registration (RFC 7591), 20 an hour per client
//!   address; clients that never get a grant are forgotten after an hour.
//! - `GET /oauth/authorize`: checks the request and sends the browser to the dashboard's consent
//!   page (`/#/authorize?…`), or shows why it cannot be granted (never redirecting an error:
//!   with open registration that would make the relay an open redirector).
//! - `POST /oauth/token`: codes and refresh tokens for access tokens (form-encoded, client
//!   authentication by `client_secret_basic`, `client_secret_post` or none with PKCE).
//!
//! These answer any origin (browser-based MCP clients call them), never with credentials.

use axum::{
    Form, Json, Router,
    extract::{Query, RawQuery, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use tower_http::cors::{Any, CorsLayer};

use crate::{
    domain::oauth::{AuthorizeParams, OAuth, OAuthError, Registration, TokenRequest},
    http::client::ClientAddr,
    state::AppState,
};

/// The OAuth routes, to merge into the relay's router.
pub fn router() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(Any);
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth/register", post(register))
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .layer(cors)
}

/// This relay's base URL as the request names it (the issuer).
fn issuer(app: &AppState, headers: &HeaderMap) -> String {
    app.config.base_url_for(crate::install::host(headers))
}

/// An OAuth error answer (RFC 6749 §5.2): 401 for a client that failed to authenticate, 503
/// when the database is away, else 400.
fn oauth_error(e: OAuthError) -> Response {
    let status = if e.is_client_auth() {
        StatusCode::UNAUTHORIZED
    } else if e.code == "temporarily_unavailable" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        Json(serde_json::json!({ "error": e.code, "error_description": e.description })),
    )
        .into_response()
}

/// `GET /.well-known/oauth-authorization-server`.
async fn metadata(State(app): State<AppState>, headers: HeaderMap) -> Response {
    Json(OAuth::metadata(&issuer(&app, &headers))).into_response()
}

/// `POST /oauth/register`.
async fn register(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: axum::body::Bytes,
) -> Response {
    if let Some(addr) = client
        && let Err(secs) = app.limits.check(crate::ratelimit::Key::Address(addr))
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.max(1).to_string())],
            Json(serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "too many registrations from this address; try again later",
            })),
        )
            .into_response();
    }
    let registration: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(OAuthError {
                code: "invalid_client_metadata",
                description: format!("the body is not a client registration: {e}"),
            });
        }
    };
    match app.domain.oauth.register(registration).await {
        Ok(registered) => (StatusCode::CREATED, Json(registered)).into_response(),
        Err(e) => oauth_error(e),
    }
}

/// `GET /oauth/authorize`: to the consent page, or back to the client with an error, or an
/// explanation when the client or redirect URI cannot be trusted.
async fn authorize(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let base = issuer(&app, &headers);
    match app
        .domain
        .oauth
        .check_request(&params, &format!("{base}/mcp"))
        .await
    {
        Ok(_) => Redirect::to(&format!("/#/authorize?{}", raw.unwrap_or_default())).into_response(),
        Err(bad) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("This sign-in request cannot be answered: {bad}\n"),
        )
            .into_response(),
    }
}

/// The client id and secret of `Authorization: Basic …`, if given (RFC 6749 §2.3.1: each
/// form-urlencoded).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// `POST /oauth/token`.
async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(OAuthError {
            code: "invalid_request",
            description: "send an application/x-www-form-urlencoded token request".into(),
        });
    };
    match app
        .domain
        .oauth
        .token(form, basic_credentials(&headers))
        .await
    {
        Ok(answer) => ([(header::PRAGMA, "no-cache")], Json(answer)).into_response(),
        Err(e) => oauth_error(e),
    }
}
