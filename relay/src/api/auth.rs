//! `/api/v1/auth/*` and `/api/v1/me`: the REST door to `crate::domain::accounts`.
//!
//! A login returns a 15-minute access token and a 7-day refresh token (both configurable). The
//! refresh token comes in the JSON body for programs and, for the dashboard, in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/api/v1/auth`, so page scripts never hold it. Each refresh
//! token works once; presenting a used one revokes the whole login (someone replayed it).

use axum::{
    body::Bytes,
    extract::{FromRequestParts, State},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::Response,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    envelope::{ApiJson, AuthErrors, BodyErrors, Envelope, ErrorBody, created, ok},
    error::{ApiError, ApiResult, ErrorKind},
};
pub use crate::http::client::ClientAddr;
use crate::{
    auth::{TokenUse, bearer},
    domain::{Door, Grant, accounts::LoginTokens},
    state::AppState,
    store::{TokenKind, User},
};

const REFRESH_COOKIE: &str = "fulcrum_refresh";

/// The authenticated caller of a request: `Authorization: Bearer <access token>` (a login) or
/// `Bearer <API token>` (a script, CI job or automation, within the token's scopes and limit).
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user's id.
    pub id: Uuid,
    /// The login the access token was issued under (none for an API token).
    pub login: Option<Uuid>,
    /// What the credential allows.
    pub grant: Grant,
}

impl AuthUser {
    /// The domain's caller: this user, through the REST door, with the credential's grant.
    pub fn caller(self) -> crate::domain::Caller {
        crate::domain::Caller::with_grant(self.id, crate::domain::Door::Api, self.grant)
    }
}

/// Whether a bearer value is a signed access token (three dot-separated parts) rather than an
/// opaque token.
fn is_jwt(bearer: &str) -> bool {
    bearer.split('.').count() == 3
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?
            .to_owned();
        if !is_jwt(&token) {
            let ClientAddr(client) = ClientAddr::from_request_parts(parts, app)
                .await
                .unwrap_or(ClientAddr(None));
            let found = app
                .domain
                .tokens
                .authenticate(&token, TokenKind::Api, client)
                .await?;
            return Ok(AuthUser {
                id: found.owner_id,
                login: None,
                grant: Grant::of(&found),
            });
        }
        let verified = app
            .signer
            .check(&token, TokenUse::Access)
            .ok_or_else(|| ApiError::unauthorized("invalid or expired access token"))?;
        if app.access.is_deactivated(verified.user) {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "account_deactivated",
                "this account is deactivated",
            ));
        }
        if app.access.login_ended(verified.login) {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "login_ended",
                "this login has ended; log in again",
            ));
        }
        app.limits
            .check(crate::ratelimit::Key::User(verified.user))
            .map_err(|secs| ApiError::rate_limited(secs, "user"))?;
        Ok(AuthUser {
            id: verified.user,
            login: verified.login,
            grant: Grant::login(),
        })
    }
}

/// Body of signup and login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/auth/signup` (only when enabled in the config).
#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    operation_id = "signup",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "The new account", body = Envelope<User>),
        (status = 403, description = "Sign-up is disabled", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        BodyErrors
    ),
    security(())
)]
pub async fn signup(
    State(app): State<AppState>,
    ApiJson(c): ApiJson<Credentials>,
) -> ApiResult<Response> {
    let user = app
        .domain
        .accounts
        .sign_up(Door::Api, &c.email, &c.password)
        .await?;
    Ok(created(user))
}

/// An access token and a refresh token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    token_type: &'static str,
}

/// `POST /api/v1/auth/login`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Access and refresh tokens; the refresh token is also set as a cookie", body = Envelope<TokenPair>),
        AuthErrors,
        BodyErrors
    ),
    security(())
)]
pub async fn login(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(c): ApiJson<Credentials>,
) -> ApiResult<Response> {
    let tokens = app
        .domain
        .accounts
        .log_in(Door::Api, &c.email, &c.password, client)
        .await?;
    Ok(token_response(&app, tokens))
}

/// Body of refresh and logout; the token may come from the cookie instead.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

/// The refresh token of a request: from the body if given, else from the cookie.
fn presented_refresh(headers: &HeaderMap, body: &Bytes) -> ApiResult<Option<String>> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        // `null` is as good as no body.
        serde_json::from_slice::<Option<RefreshBody>>(body)
            .map_err(|e| ApiError::new(ErrorKind::BadRequest, "malformed_json", e.to_string()))?
            .and_then(|b| b.refresh_token)
    };
    Ok(from_body.or_else(|| cookie(headers, REFRESH_COOKIE)))
}

/// `POST /api/v1/auth/refresh`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "refresh",
    tag = "auth",
    request_body = Option<RefreshBody>,
    responses(
        (status = 200, description = "A new token pair (the refresh token rotates)", body = Envelope<TokenPair>),
        (status = 400, description = "Malformed JSON, or not JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody)
    ),
    security(())
)]
pub async fn refresh(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let presented = presented_refresh(&headers, &body)?
        .ok_or_else(|| ApiError::unauthorized("no refresh token"))?;
    let tokens = app.domain.accounts.refresh(Door::Api, &presented).await?;
    Ok(token_response(&app, tokens))
}

/// The answer to a logout.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    /// Always true.
    pub logged_out: bool,
}

/// `POST /api/v1/auth/logout`: revokes the login the refresh token belongs to.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "logout",
    tag = "auth",
    request_body = Option<RefreshBody>,
    responses(
        (status = 200, description = "Logged out", body = Envelope<LoggedOut>),
        (status = 400, description = "Malformed JSON, or not JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)
    ),
    security(())
)]
pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(presented) = presented_refresh(&headers, &body)? {
        app.domain.accounts.log_out(Door::Api, &presented).await?;
    }
    let mut response = ok(LoggedOut { logged_out: true });
    set_refresh_cookie(&app, &mut response, None);
    Ok(response)
}

/// `GET /api/v1/me`.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Envelope<User>),
        AuthErrors
    )
)]
pub async fn me(State(app): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    Ok(ok(app.domain.accounts.me(user.caller()).await?))
}

/// Body of `POST /api/v1/auth/reset` (no `Debug`: it holds a token and a password).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The token of the one-time link an operator made.
    #[schema(max_length = 256)]
    token: String,
    /// The new password, 8 to 1024 characters.
    new_password: String,
}

/// The answer to a password reset.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasswordWasReset {
    /// Always true.
    pub reset: bool,
}

/// `POST /api/v1/auth/reset`: set a new password with a one-time link an operator made
/// (`fulcrum-relay user reset-password`); every login of the user ends.
#[utoipa::path(
    post,
    path = "/api/v1/auth/reset",
    operation_id = "reset_password",
    tag = "auth",
    request_body = PasswordReset,
    responses(
        (status = 200, description = "The password is set; log in with it", body = Envelope<PasswordWasReset>),
        (status = 401, description = "The link is unknown, used or expired", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        BodyErrors
    ),
    security(())
)]
pub async fn reset_password(
    State(app): State<AppState>,
    ApiJson(reset): ApiJson<PasswordReset>,
) -> ApiResult<Response> {
    app.domain
        .accounts
        .reset_password(Door::Api, &reset.token, &reset.new_password)
        .await?;
    Ok(ok(PasswordWasReset { reset: true }))
}

/// Body of `PATCH /api/v1/me`: what to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeChange {
    /// The name shown for you (empty clears it).
    #[schema(max_length = 200)]
    full_name: Option<String>,
    /// Your preferences, replacing the stored ones whole.
    preferences: Option<crate::store::Preferences>,
}

/// `PATCH /api/v1/me`: change your name or preferences.
#[utoipa::path(
    patch,
    path = "/api/v1/me",
    operation_id = "update_me",
    tag = "auth",
    request_body = MeChange,
    responses(
        (status = 200, description = "You, changed", body = Envelope<User>),
        (status = 404, description = "No such default project, or not yours", body = ErrorBody),
        AuthErrors,
        BodyErrors
    )
)]
pub async fn update_me(
    State(app): State<AppState>,
    user: AuthUser,
    ApiJson(change): ApiJson<MeChange>,
) -> ApiResult<Response> {
    let change = crate::domain::accounts::ProfileChange {
        full_name: change.full_name,
        preferences: change.preferences,
    };
    Ok(ok(app
        .domain
        .accounts
        .update_profile(user.caller(), change)
        .await?))
}

/// Body of `POST /api/v1/me/password` (no `Debug`: it holds passwords).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// Your current password.
    current_password: String,
    /// The new one, 8 to 1024 characters.
    new_password: String,
}

/// What a password change did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasswordChanged {
    /// How many of your other logins ended (this one stays).
    pub other_logins_ended: usize,
}

/// `POST /api/v1/me/password`: change your password; your other logins end at once.
#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    operation_id = "change_password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed; the other logins ended", body = Envelope<PasswordChanged>),
        AuthErrors,
        BodyErrors
    )
)]
pub async fn change_password(
    State(app): State<AppState>,
    user: AuthUser,
    ClientAddr(client): ClientAddr,
    ApiJson(change): ApiJson<PasswordChange>,
) -> ApiResult<Response> {
    let ended = app
        .domain
        .accounts
        .change_password(
            user.caller(),
            user.login,
            &change.current_password,
            &change.new_password,
            client,
        )
        .await?;
    Ok(ok(PasswordChanged {
        other_logins_ended: ended,
    }))
}

/// The answer to a login or refresh: the pair in the body, the refresh token in the cookie.
fn token_response(app: &AppState, tokens: LoginTokens) -> Response {
    let mut response = ok(TokenPair {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token.clone(),
        expires_in: tokens.expires_in,
        token_type: "Bearer",
    });
    set_refresh_cookie(app, &mut response, Some(&tokens.refresh_token));
    response
}

/// Sets (or, with `None`, clears) the refresh cookie.
fn set_refresh_cookie(app: &AppState, response: &mut Response, secret: Option<&str>) {
    let secure = app.config.secure_cookies();
    let (value, max_age) = match secret {
        Some(s) => (s, app.domain.accounts.policy().refresh_ttl_secs),
        None => ("", 0),
    };
    let cookie = format!(
        "{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api/v1/auth; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}
