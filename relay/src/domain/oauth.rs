//! The relay as an OAuth 2.1 authorization server for its own `/mcp`, as the MCP authorization
//! specification describes: dynamic client registration (RFC 7591), the authorization code
//! grant with PKCE (S256 only), a consent step the user takes in the dashboard, and refresh
//! tokens that rotate (a refresh token used twice ends the grant: someone replayed it).
//!
//! A grant is a token of kind `mcp` (`crate::domain::tokens`) whose owner is the user who
//! consented, with the scopes they granted, named after the client and tied to it: it shows in
//! the user's token list and is revoked like any token. Its access token lives an hour; each
//! refresh replaces it. Codes live two minutes and work once; a code presented twice also ends
//! the grant it became. Every secret is stored hashed.
//!
//! Errors at the token endpoint are OAuth's own ([`OAuthError`]); the doors show them as RFC
//! 6749 §5.2 JSON.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    Caller, DomainResult,
    audit::{self, Record},
    tokens::{OnRevoke, TokenCache},
};
use crate::{
    access::AccessChanges,
    auth::{self, MCP_TOKEN_PREFIX},
    metrics::Metrics,
    store::{
        ClientAuthMethod, DynStore, NewToken, Scope, Scopes, StoreError, TokenKind,
        oauth::{NewOAuthCode, OAuthClient, OAuthCode},
    },
};

/// How long an authorization code works.
const CODE_TTL: Duration = Duration::seconds(120);
/// How long an access token works.
pub const ACCESS_TTL: Duration = Duration::hours(1);
/// How long a refresh token works (each refresh makes a new one).
const REFRESH_TTL: Duration = Duration::days(30);
/// Most clients registered in all.
const MAX_CLIENTS: u64 = 10_000;
/// Most redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI, client URI, state or resource.
const MAX_URI: usize = 2000;
/// Longest client name.
const MAX_CLIENT_NAME: usize = 100;
/// Prefix of OAuth refresh tokens.
const REFRESH_PREFIX: &str = "fco_";
/// Prefix of authorization codes.
const CODE_PREFIX: &str = "fcx_";
/// Prefix of client secrets.
const CLIENT_SECRET_PREFIX: &str = "fcs_";

/// An error of the token or registration endpoint, as RFC 6749 §5.2 and RFC 7591 §3.2.2
/// name them.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`,
    /// `invalid_scope`, `invalid_redirect_uri`, `invalid_client_metadata`, `server_error`,
    /// `temporarily_unavailable`.
    pub code: &'static str,
    /// For people.
    pub description: String,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// Whether the client failed to authenticate (HTTP 401 rather than 400).
    pub fn is_client_auth(&self) -> bool {
        self.code == "invalid_client"
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "the OAuth server cannot reach its database");
        Self::new(
            "temporarily_unavailable",
            "the relay cannot reach its database",
        )
    }
}

/// A client's registration request (RFC 7591 §2); unknown fields are ignored, as the RFC says.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Registration {
    /// Where codes may be sent.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic` [default: client_secret_basic].
    pub token_endpoint_auth_method: Option<String>,
    /// Must be within `authorization_code` and `refresh_token`.
    pub grant_types: Option<Vec<String>>,
    /// Must be `code`.
    pub response_types: Option<Vec<String>>,
    /// Its name, shown on the consent page.
    pub client_name: Option<String>,
    /// Its home page.
    pub client_uri: Option<String>,
    /// The scopes it will ask for (checked, not stored: each request names its own).
    pub scope: Option<String>,
}

/// A registered client, as the registration endpoint answers (RFC 7591 §3.2.1).
#[derive(Serialize)]
pub struct Registered {
    /// Its id.
    pub client_id: String,
    /// Its secret, shown this once (confidential clients only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// When it was issued (seconds since the epoch).
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// As registered.
    pub redirect_uris: Vec<String>,
    /// As registered.
    pub token_endpoint_auth_method: &'static str,
    /// What it may use.
    pub grant_types: [&'static str; 2],
    /// What it may ask for.
    pub response_types: [&'static str; 1],
    /// Its name.
    pub client_name: String,
    /// Its home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// The scopes it may ask for.
    pub scope: String,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An authorization request's parameters (from `/oauth/authorize`, carried to the consent
/// page and back).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AuthorizeParams {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// One of the client's redirect URIs, exactly.
    pub redirect_uri: Option<String>,
    /// The PKCE challenge (base64url SHA-256 of the verifier).
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Echoed back to the client.
    pub state: Option<String>,
    /// The scopes asked for, space-separated [default: read write run].
    pub scope: Option<String>,
    /// The resource (RFC 8707): this relay's `/mcp`.
    pub resource: Option<String>,
}

/// A checked authorization request: what the consent page shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentRequest {
    /// The client's id.
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    /// The client's home page.
    pub client_uri: Option<String>,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// The scopes asked for.
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Scopes,
    /// The resource asked for.
    pub resource: Option<String>,
    #[serde(skip)]
    challenge: String,
    #[serde(skip)]
    state: Option<String>,
}

/// Why an authorization request cannot be granted: shown to the user on the relay's own page,
/// never sent to the redirect URI.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadAuthorizeRequest(pub String);

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenAnswer {
    /// The access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds it works.
    pub expires_in: i64,
    /// The refresh token (works once).
    pub refresh_token: String,
    /// The scopes granted.
    pub scope: String,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A token request's form (RFC 6749 §4.1.3 and §6); unknown fields are ignored.
#[derive(Deserialize, Default)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// The redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// Its secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// Fewer scopes than granted, on a refresh.
    pub scope: Option<String>,
    /// The resource (RFC 8707).
    pub resource: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The OAuth server, with what it uses.
pub struct OAuth {
    store: DynStore,
    access: Arc<AccessChanges>,
    on_revoke: OnRevoke,
    cache: Arc<TokenCache>,
    metrics: Arc<Metrics>,
}

/// Whether `uri` may be registered as a redirect URI: absolute, no fragment, and either
/// `https`, or `http` on a loopback host (native clients, RFC 8252 §7.3), or a private-use
/// scheme with a dot (RFC 8252 §7.1, e.g. `com.example.app:/cb`).
fn redirect_uri_allowed(uri: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URI: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(format!("{uri:?} has a fragment"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => match parsed.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain("localhost")) => Ok(()),
            _ => Err(format!(
                "{uri:?}: plain http is allowed only for a loopback address"
            )),
        },
        "javascript" | "data" | "file" | "blob" | "vbscript" => {
            Err(format!("{uri:?}: that scheme is not allowed"))
        }
        other if other.contains('.') => Ok(()),
        _ => Err(format!(
            "{uri:?}: use https, http on a loopback address, or a reverse-DNS private scheme"
        )),
    }
}

/// `uri` with these query parameters added.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// The base64url SHA-256 of a PKCE verifier.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `s` is a PKCE verifier or challenge: 43 to 128 unreserved characters.
fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl OAuth {
    /// The OAuth server on `store`; `access` says who is deactivated; `on_revoke` ends what a
    /// grant held open when a replay revokes it; a refreshed grant's old access token is
    /// forgotten in `cache`; what it does is counted in `metrics`.
    pub fn new(
        store: DynStore,
        access: Arc<AccessChanges>,
        on_revoke: OnRevoke,
        cache: Arc<TokenCache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            access,
            on_revoke,
            cache,
            metrics,
        }
    }

    /// Registers a client (RFC 7591).
    pub async fn register(&self, r: Registration) -> Result<Registered, OAuthError> {
        let bad_meta = |d: String| OAuthError::new("invalid_client_metadata", d);
        if r.redirect_uris.is_empty() || r.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::new(
                "invalid_redirect_uri",
                format!("register 1 to {MAX_REDIRECT_URIS} redirect_uris"),
            ));
        }
        for uri in &r.redirect_uris {
            if uri.len() > MAX_URI {
                return Err(OAuthError::new(
                    "invalid_redirect_uri",
                    "a redirect URI is too long",
                ));
            }
            redirect_uri_allowed(uri).map_err(|e| OAuthError::new("invalid_redirect_uri", e))?;
        }
        let method = match r.token_endpoint_auth_method.as_deref() {
            None => ClientAuthMethod::ClientSecretBasic,
            Some(m) => ClientAuthMethod::parse(m).ok_or_else(|| {
                bad_meta(format!(
                    "token_endpoint_auth_method {m:?} is not supported: use none, \
                     client_secret_post or client_secret_basic"
                ))
            })?,
        };
        if let Some(g) = &r.grant_types
            && g.iter()
                .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Err(bad_meta(
                "grant_types may hold authorization_code and refresh_token only".into(),
            ));
        }
        if let Some(t) = &r.response_types
            && t.iter().any(|t| t != "code")
        {
            return Err(bad_meta("response_types may hold code only".into()));
        }
        if let Some(scope) = &r.scope {
            let asked = Scopes::parse_list(scope)
                .map_err(|e| bad_meta(format!("unknown scope {:?}", e.name)))?;
            if !asked.is_subset(TokenKind::Mcp.allowed_scopes()) {
                return Err(bad_meta("scope may hold read, write and run".into()));
            }
        }
        let name = r
            .client_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("MCP client");
        if name.chars().count() > MAX_CLIENT_NAME || name.chars().any(char::is_control) {
            return Err(bad_meta(format!(
                "client_name is at most {MAX_CLIENT_NAME} characters, without control characters"
            )));
        }
        let client_uri = r.client_uri.filter(|u| !u.is_empty());
        if let Some(u) = &client_uri
            && (u.len() > MAX_URI
                || !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http")))
        {
            return Err(bad_meta("client_uri must be an http(s) URL".into()));
        }
        if self.store.oauth_client_count().await? >= MAX_CLIENTS {
            return Err(OAuthError::new(
                "temporarily_unavailable",
                "the relay holds as many OAuth clients as it may",
            ));
        }
        let secret =
            (method != ClientAuthMethod::None).then(|| auth::new_token(CLIENT_SECRET_PREFIX));
        let now = Utc::now();
        let client = OAuthClient {
            id: format!("fcc_{}", Uuid::new_v4().simple()),
            name: name.to_owned(),
            redirect_uris: r.redirect_uris.clone(),
            client_uri: client_uri.clone(),
            secret_hash: secret.as_ref().map(|s| s.hash.clone()),
            auth_method: method,
            created_at: now,
        };
        self.store.create_oauth_client(&client).await?;
        self.metrics.oauth("registered");
        tracing::info!(client = %client.id, name = %client.name, "OAuth client registered");
        Ok(Registered {
            client_id: client.id,
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret.map(|s| s.secret),
            client_id_issued_at: now.timestamp(),
            redirect_uris: client.redirect_uris,
            token_endpoint_auth_method: method.as_str(),
            grant_types: ["authorization_code", "refresh_token"],
            response_types: ["code"],
            client_name: client.name,
            client_uri,
            scope: TokenKind::Mcp.allowed_scopes().to_string(),
        })
    }

    /// The client and redirect URI of a request, checked; an error here is shown to the user
    /// (it must not be sent to an unverified URI).
    async fn client_of(
        &self,
        p: &AuthorizeParams,
    ) -> Result<(OAuthClient, String), BadAuthorizeRequest> {
        let id = p
            .client_id
            .as_deref()
            .ok_or_else(|| BadAuthorizeRequest("the request names no client_id".into()))?;
        if id.len() > 100 {
            return Err(BadAuthorizeRequest("unknown client".into()));
        }
        let client = self
            .store
            .oauth_client(id)
            .await
            .map_err(|_| BadAuthorizeRequest("the relay cannot reach its database".into()))?
            .ok_or_else(|| {
                BadAuthorizeRequest(
                    "unknown client: it must register first (POST /oauth/register)".into(),
                )
            })?;
        let redirect = match (&p.redirect_uri, client.redirect_uris.as_slice()) {
            (Some(uri), registered) if registered.iter().any(|r| r == uri) => uri.clone(),
            // OAuth 2.1 §2.3.1: the URI may be left out when exactly one is registered.
            (None, [only]) => only.clone(),
            _ => {
                return Err(BadAuthorizeRequest(
                    "the redirect_uri is not one the client registered".into(),
                ));
            }
        };
        Ok((client, redirect))
    }

    /// Checks an authorization request. Every error is shown on the relay's own page, never
    /// sent to the redirect URI: anyone may register a client, so redirecting before the user
    /// consented would make the relay an open redirector (RFC 9700 §4.11.2).
    pub async fn check_request(
        &self,
        p: &AuthorizeParams,
        resource: &str,
    ) -> Result<ConsentRequest, BadAuthorizeRequest> {
        let (client, redirect) = self.client_of(p).await?;
        let bad = |m: &str| Err(BadAuthorizeRequest(m.to_owned()));
        if p.state.as_ref().is_some_and(|s| s.len() > MAX_URI) {
            return bad("state is too long");
        }
        let state = p.state.clone();
        if p.response_type.as_deref() != Some("code") {
            return bad("response_type must be code");
        }
        if p.code_challenge_method.as_deref() != Some("S256") {
            return bad("PKCE is required, with code_challenge_method S256");
        }
        let challenge = match p.code_challenge.as_deref() {
            Some(c) if pkce_shaped(c) => c.to_owned(),
            _ => return bad("a code_challenge of 43 to 128 characters is required"),
        };
        let scopes = match p.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            None => TokenKind::Mcp.default_scopes(),
            Some(s) => match Scopes::parse_list(s) {
                Ok(scopes) if scopes.is_subset(TokenKind::Mcp.allowed_scopes()) => scopes,
                _ => return bad("scope may hold read, write and run"),
            },
        };
        if let Some(r) = &p.resource
            && r.trim_end_matches('/') != resource
        {
            return bad("this server grants access to its /mcp only (resource)");
        }
        Ok(ConsentRequest {
            client_id: client.id,
            client_name: client.name,
            client_uri: client.client_uri,
            redirect_uri: redirect,
            scopes,
            resource: p.resource.clone(),
            challenge,
            state,
        })
    }

    /// The user's answer on the consent page: with `approve`, a code for the client; either
    /// way, where to send the browser.
    pub async fn consent(
        &self,
        caller: Caller,
        request: ConsentRequest,
        approve: bool,
        issuer: &str,
    ) -> DomainResult<String> {
        caller.need_login("granting access to an OAuth client")?;
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &request.state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", issuer));
        if !approve {
            self.metrics.oauth("denied");
            pairs.push(("error", "access_denied"));
            pairs.push(("error_description", "the user denied access"));
            return Ok(with_query(&request.redirect_uri, &pairs));
        }
        let code = auth::new_token(CODE_PREFIX);
        let now = Utc::now();
        let stored = OAuthCode {
            client_id: request.client_id.clone(),
            user_id: caller.user,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.challenge.clone(),
            scopes: request.scopes,
            resource: request.resource.clone(),
            expires_at: now + CODE_TTL,
        };
        self.store
            .create_oauth_code(&NewOAuthCode {
                code_hash: &code.hash,
                code: &stored,
                now,
            })
            .await?;
        self.metrics.oauth("consented");
        audit::record(Record {
            caller,
            action: "oauth.consent",
            subject: caller.user,
        });
        pairs.push(("code", &code.secret));
        Ok(with_query(&request.redirect_uri, &pairs))
    }

    /// Checks the client's credentials at the token endpoint: `basic` from the Authorization
    /// header, else the form's `client_id` (and `client_secret`).
    async fn authenticate_client(
        &self,
        form: &TokenRequest,
        basic: Option<(String, String)>,
    ) -> Result<OAuthClient, OAuthError> {
        let bad = || OAuthError::new("invalid_client", "client authentication failed");
        let (id, secret) = match (&basic, &form.client_id) {
            (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
            (None, Some(id)) => (id.clone(), form.client_secret.clone()),
            (None, None) => return Err(bad()),
        };
        if id.len() > 100 {
            return Err(bad());
        }
        let client = self.store.oauth_client(&id).await?.ok_or_else(bad)?;
        match (&client.secret_hash, secret) {
            (None, _) => Ok(client),
            // Both are SHA-256 digests: comparing them in variable time tells nothing.
            (Some(hash), Some(secret)) if *hash == auth::token_hash(&secret) => Ok(client),
            _ => Err(bad()),
        }
    }

    /// Ends grant `token` (a replayed code or refresh token): its sessions close.
    async fn end_grant(&self, token: Uuid) -> Result<(), OAuthError> {
        if self.store.revoke_token_by_id(token, Utc::now()).await? {
            (self.on_revoke)(token);
        }
        self.metrics.oauth("replayed");
        tracing::warn!(%token, "an OAuth code or refresh token was replayed; the grant is revoked");
        Ok(())
    }

    /// The token endpoint: exchanges a code or a refresh token (counted in `/metrics` as
    /// granted, refreshed or refused).
    pub async fn token(
        &self,
        form: TokenRequest,
        basic: Option<(String, String)>,
    ) -> Result<TokenAnswer, OAuthError> {
        let refresh = form.grant_type.as_deref() == Some("refresh_token");
        let outcome = self.exchange(form, basic).await;
        self.metrics.oauth(match (&outcome, refresh) {
            (Ok(_), false) => "granted",
            (Ok(_), true) => "refreshed",
            (Err(_), _) => "refused",
        });
        outcome
    }

    async fn exchange(
        &self,
        form: TokenRequest,
        basic: Option<(String, String)>,
    ) -> Result<TokenAnswer, OAuthError> {
        let grant = |d: &str| OAuthError::new("invalid_grant", d);
        match form.grant_type.as_deref() {
            Some("authorization_code") => {
                let client = self.authenticate_client(&form, basic).await?;
                let code = form
                    .code
                    .as_deref()
                    .filter(|c| c.len() <= 256)
                    .ok_or_else(|| OAuthError::new("invalid_request", "code is required"))?;
                let hash = auth::token_hash(code);
                let now = Utc::now();
                // Only the client the code was issued to can use it up (or, replaying it, end
                // its grant).
                let Some(stored) = self.store.take_oauth_code(&hash, &client.id, now).await? else {
                    if let Some(token) = self.store.used_oauth_code_grant(&hash, &client.id).await?
                    {
                        self.end_grant(token).await?;
                        return Err(grant("the code was already used; its grant is revoked"));
                    }
                    return Err(grant("unknown or used code"));
                };
                if stored.expires_at <= now {
                    return Err(grant("the code expired"));
                }
                // Required when the authorization request could name one of several.
                let redirect_ok = match form.redirect_uri.as_deref() {
                    Some(uri) => uri == stored.redirect_uri,
                    None => client.redirect_uris.len() == 1,
                };
                if !redirect_ok {
                    return Err(grant(
                        "redirect_uri differs from the authorization request's",
                    ));
                }
                let verifier = form.code_verifier.as_deref().unwrap_or_default();
                if !pkce_shaped(verifier) || s256(verifier) != stored.code_challenge {
                    return Err(grant("the code_verifier does not match the code_challenge"));
                }
                if self.access.is_deactivated(stored.user_id) {
                    return Err(grant("the account is deactivated"));
                }
                let access = auth::new_token(MCP_TOKEN_PREFIX);
                let token = self
                    .store
                    .create_token(&NewToken {
                        owner: stored.user_id,
                        name: &client.name,
                        token_hash: &access.hash,
                        prefix: &access.shown_prefix,
                        kind: TokenKind::Mcp,
                        scopes: stored.scopes,
                        project: None,
                        workspace: None,
                        expires_at: Some(now + ACCESS_TTL),
                        oauth_client: Some(&client.id),
                    })
                    .await?;
                self.store.set_oauth_code_grant(&hash, token.id).await?;
                let refresh = auth::new_token(REFRESH_PREFIX);
                self.store
                    .create_oauth_refresh(&refresh.hash, token.id, now + REFRESH_TTL, now)
                    .await?;
                audit::record(Record {
                    caller: Caller::new(stored.user_id, super::Door::Mcp),
                    action: "oauth.grant",
                    subject: token.id,
                });
                Ok(TokenAnswer {
                    access_token: access.secret,
                    token_type: "Bearer",
                    expires_in: ACCESS_TTL.num_seconds(),
                    refresh_token: refresh.secret,
                    scope: stored.scopes.to_string(),
                })
            }
            Some("refresh_token") => {
                let client = self.authenticate_client(&form, basic).await?;
                let presented = form
                    .refresh_token
                    .as_deref()
                    .filter(|c| c.len() <= 256)
                    .ok_or_else(|| {
                        OAuthError::new("invalid_request", "refresh_token is required")
                    })?;
                let hash = auth::token_hash(presented);
                let now = Utc::now();
                let Some((token_id, expires_at)) = self
                    .store
                    .take_oauth_refresh(&hash, &client.id, now)
                    .await?
                else {
                    if let Some(token) = self
                        .store
                        .used_oauth_refresh_grant(&hash, &client.id)
                        .await?
                    {
                        self.end_grant(token).await?;
                        return Err(grant(
                            "the refresh token was already used; its grant is revoked",
                        ));
                    }
                    return Err(grant("unknown refresh token"));
                };
                let token = self
                    .store
                    .token_by_id(token_id)
                    .await?
                    .ok_or_else(|| grant("the grant no longer exists"))?;
                if expires_at <= now || token.revoked_at.is_some() {
                    return Err(grant("the refresh token expired or its grant was revoked"));
                }
                if self.access.is_deactivated(token.owner_id) {
                    return Err(grant("the account is deactivated"));
                }
                // A refresh keeps the scopes granted; asking for others is refused.
                if let Some(s) = form.scope.as_deref().filter(|s| !s.trim().is_empty())
                    && Scopes::parse_list(s).ok() != Some(token.scopes)
                {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "a refresh keeps the scopes granted; ask for a new grant to change them",
                    ));
                }
                let scopes = token.scopes;
                let access = auth::new_token(MCP_TOKEN_PREFIX);
                if !self
                    .store
                    .rotate_token(
                        token.id,
                        &access.hash,
                        &access.shown_prefix,
                        now + ACCESS_TTL,
                    )
                    .await?
                {
                    return Err(grant("the grant was revoked"));
                }
                // The old access token stops working at once.
                self.cache.forget(token.id);
                let refresh = auth::new_token(REFRESH_PREFIX);
                self.store
                    .create_oauth_refresh(&refresh.hash, token.id, now + REFRESH_TTL, now)
                    .await?;
                Ok(TokenAnswer {
                    access_token: access.secret,
                    token_type: "Bearer",
                    expires_in: ACCESS_TTL.num_seconds(),
                    refresh_token: refresh.secret,
                    scope: scopes.to_string(),
                })
            }
            Some(other) => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported"),
            )),
            None => Err(OAuthError::new("invalid_request", "grant_type is required")),
        }
    }

    /// Deletes what can no longer be used: codes and refresh tokens past their expiry or used
    /// more than a day ago, clients that never got a grant an hour after registering, and
    /// grants dead for a month (revoked, or their access token ended). Returns how many rows
    /// went.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let now = Utc::now();
        self.store
            .prune_oauth(
                now - Duration::days(1),
                now - Duration::hours(1),
                now - REFRESH_TTL,
            )
            .await
    }

    /// The authorization server metadata (RFC 8414) for `issuer`.
    pub fn metadata(issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "registration_endpoint": format!("{issuer}/oauth/register"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ClientAuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "scopes_supported": TokenKind::Mcp.allowed_scopes().iter().map(Scope::as_str).collect::<Vec<_>>(),
            "authorization_response_iss_parameter_supported": true,
            "service_documentation": format!("{issuer}/"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_checked() {
        for ok in [
            "https://client.example/cb",
            "http://127.0.0.1:33418/callback",
            "http://localhost/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth",
        ] {
            assert!(redirect_uri_allowed(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://client.example/cb",
            "https://client.example/cb#frag",
            "javascript:alert(1)",
            "cb",
            "myapp:/cb",
        ] {
            assert!(redirect_uri_allowed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_shaped(verifier));
        assert!(!pkce_shaped("short"));
        assert!(!pkce_shaped(&"a".repeat(129)));
    }

    #[test]
    fn answers_go_to_the_redirect_uri_with_their_parameters() {
        let u = with_query(
            "https://c.example/cb?x=1",
            &[("code", "a b"), ("state", "s&t")],
        );
        assert_eq!(u, "https://c.example/cb?x=1&code=a+b&state=s%26t");
    }
}
