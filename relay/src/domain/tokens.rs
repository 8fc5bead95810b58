//! Tokens: every non-interactive credential, of one table and one code path. A token has a kind
//! (which door it opens: agent, MCP, API, ingest), scopes (what it may do there), optionally a
//! limit to one project or workspace, an expiry, and a name; the secret is shown once and
//! stored hashed. [`create_token`] is the one way to make one (the API, the CLI and `dev`);
//! [`Tokens::authenticate`] is the one way a door checks one, and says clearly why it refused
//! (unknown or revoked, wrong kind, expired, account deactivated, over its request limit). It
//! records where and when each token was last used (at most once a minute per token).
//!
//! Revoking one disconnects its agents and closes its MCP sessions at once, through the hook
//! [`Tokens`] is built with. What a user does through a door is audited here; the CLI and
//! `dev` act for the operator and call [`create_token`] directly.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
};
use crate::{
    access::AccessChanges,
    auth::{self, AGENT_TOKEN_PREFIX, API_TOKEN_PREFIX, INGEST_TOKEN_PREFIX, MCP_TOKEN_PREFIX},
    metrics::Metrics,
    ratelimit::{Key, Limits},
    store::{DynStore, NewToken, Scope, Scopes, Token, TokenKind, UserRole},
};

/// Longest token name.
const MAX_NAME: usize = 100;
/// Most live tokens a user may make (OAuth grants aside).
const MAX_TOKENS_PER_USER: usize = 200;
/// Longest secret looked at (ours are 47 characters).
const MAX_SECRET: usize = 256;
/// Longest a token may be made to last.
const MAX_LIFETIME: chrono::Duration = chrono::Duration::days(3650);

/// A token just created: its metadata and, this once, the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The stored metadata.
    #[serde(flatten)]
    pub token: Token,
    /// The secret, shown once.
    #[serde(rename = "token")]
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// What a new token should be.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: TokenKind,
    /// Its scopes; `None` for the kind's defaults.
    pub scopes: Option<Scopes>,
    /// The one project it is limited to.
    pub project: Option<Uuid>,
    /// The one workspace it is limited to.
    pub workspace: Option<Uuid>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenSpec {
    /// A token of `kind` named `name` with the kind's default scopes, unlimited, never
    /// expiring.
    pub fn new(name: &str, kind: TokenKind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            scopes: None,
            project: None,
            workspace: None,
            expires_at: None,
        }
    }
}

/// The prefix of a kind's secrets, so people and secret scanners can tell them apart.
fn prefix(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Agent => AGENT_TOKEN_PREFIX,
        TokenKind::Mcp => MCP_TOKEN_PREFIX,
        TokenKind::Api => API_TOKEN_PREFIX,
        TokenKind::Ingest => INGEST_TOKEN_PREFIX,
    }
}

/// Creates an agent token for `owner`.
pub async fn create_agent_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
) -> DomainResult<CreatedToken> {
    create_token(store, owner, TokenSpec::new(name, TokenKind::Agent)).await
}

/// Creates a token for `owner`: the one path used by the API, the CLI and `dev`.
pub async fn create_token(
    store: &DynStore,
    owner: Uuid,
    spec: TokenSpec,
) -> DomainResult<CreatedToken> {
    let now = Utc::now();
    let kind = spec.kind;
    if let Some(at) = spec.expires_at
        && (at <= now || at > now + MAX_LIFETIME)
    {
        return Err(DomainError::Invalid(
            "expires_at must be in the future, and at most ten years away".into(),
        ));
    }
    let scopes = spec.scopes.unwrap_or_else(|| kind.default_scopes());
    let allowed = kind.allowed_scopes();
    if scopes.is_empty() || !scopes.is_subset(allowed) {
        return Err(DomainError::Invalid(format!(
            "a {kind} token holds one or more of: {}",
            allowed
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if spec.project.is_some() && spec.workspace.is_some() {
        return Err(DomainError::Invalid(
            "limit a token to a project or to a workspace, not both".into(),
        ));
    }
    if (spec.project.is_some() || spec.workspace.is_some()) && !kind.may_be_limited() {
        return Err(DomainError::Invalid(
            "an agent token acts for the workspace it runs in; it cannot be limited".into(),
        ));
    }
    // The limit must be something the owner reaches now.
    if let Some(p) = spec.project
        && store.get_project(owner, p).await?.is_none()
    {
        return Err(DomainError::NotFound("project"));
    }
    if let Some(w) = spec.workspace
        && store.get_workspace(owner, w).await?.is_none()
    {
        return Err(DomainError::NotFound("workspace"));
    }
    if scopes.contains(Scope::Admin) {
        let user = store
            .user_by_id(owner)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        if user.role != UserRole::Admin {
            return Err(DomainError::Denied {
                code: "not_admin",
                message: "only an administrator's token may hold the `admin` scope".into(),
            });
        }
    }
    // The limit applies to the name as sent (the schema's maxLength), the emptiness check to
    // what is left after trimming.
    let too_long = spec.name.chars().count() > MAX_NAME;
    let name = spec.name.trim();
    if name.is_empty() || too_long {
        return Err(DomainError::Invalid(format!(
            "a token name of 1 to {MAX_NAME} characters is required"
        )));
    }
    // Live tokens of the user's own making count; revoked ones and OAuth grants do not.
    let live = store
        .list_tokens(owner)
        .await?
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.oauth_client_id.is_none())
        .count();
    if live >= MAX_TOKENS_PER_USER {
        return Err(DomainError::conflict(
            "too_many_tokens",
            format!("at most {MAX_TOKENS_PER_USER} live tokens per user; revoke some first"),
        ));
    }
    let new = auth::new_token(prefix(kind));
    let token = store
        .create_token(&NewToken {
            owner,
            name,
            token_hash: &new.hash,
            prefix: &new.shown_prefix,
            kind,
            scopes,
            project: spec.project,
            workspace: spec.workspace,
            expires_at: spec.expires_at,
            oauth_client: None,
        })
        .await?;
    Ok(CreatedToken {
        token,
        secret: new.secret,
    })
}

/// What closes everything a revoked token holds open (its agents' sessions, its MCP
/// sessions); given by whoever builds [`Tokens`].
pub type OnRevoke = Arc<dyn Fn(Uuid) + Send + Sync>;

/// How long a checked token is trusted without asking the database again. A revocation on
/// this node takes effect at once; one made elsewhere (another node, the CLI) within the
/// revocation sweep's interval (5 s), and at the latest after this.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most tokens remembered.
const MAX_CACHED: usize = 10_000;
/// How often a token's last use is written down.
const USE_RECORD_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Tokens recently checked against the database, by hash: every request carries its token,
/// and checking it should not cost a database round trip. Shared with the revocation hook,
/// which forgets a token wherever it was revoked from.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, (Token, Instant)>>);

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Token, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, hash: &str) -> Option<Token> {
        self.lock()
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(t, _)| t.clone())
    }

    /// Replaces a remembered token's fields, keeping when it was checked against the database.
    fn update(&self, hash: &str, token: Token) {
        if let Some(entry) = self.lock().get_mut(hash) {
            entry.0 = token;
        }
    }

    fn put(&self, hash: String, token: Token) {
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED && !cache.contains_key(&hash) {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(hash, (token, Instant::now()));
    }

    /// Forgets token `id`, so its next use is checked against the database.
    pub fn forget(&self, id: Uuid) {
        self.lock().retain(|_, (t, _)| t.id != id);
    }
}

/// Tokens, with what managing and checking them uses.
pub struct Tokens {
    store: DynStore,
    on_revoke: OnRevoke,
    access: Arc<AccessChanges>,
    limits: Arc<Limits>,
    cache: Arc<TokenCache>,
    metrics: Arc<Metrics>,
}

impl Tokens {
    /// Tokens in `store`; `on_revoke` runs for each one revoked (and should forget it in
    /// `cache`); `access` says which users are deactivated; `limits` counts each token's
    /// requests; every check is counted in `metrics`.
    pub fn new(
        store: DynStore,
        on_revoke: OnRevoke,
        access: Arc<AccessChanges>,
        limits: Arc<Limits>,
        cache: Arc<TokenCache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            on_revoke,
            access,
            limits,
            cache,
            metrics,
        }
    }

    /// Creates a token for the caller (with a login), and records it.
    pub async fn create(&self, caller: Caller, spec: TokenSpec) -> DomainResult<CreatedToken> {
        caller.need_login("creating tokens")?;
        let created = create_token(&self.store, caller.user, spec).await?;
        audit::record(Record {
            caller,
            action: "token.create",
            subject: created.token.id,
        });
        Ok(created)
    }

    /// The caller's tokens, revoked ones included.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<Token>> {
        caller.need_login("listing tokens")?;
        Ok(self.store.list_tokens(caller.user).await?)
    }

    /// Revokes one of the caller's tokens: its agents are disconnected and its MCP sessions
    /// closed at once, here; other relay nodes notice within their revocation sweep.
    pub async fn revoke(&self, caller: Caller, id: Uuid) -> DomainResult<()> {
        caller.need_login("revoking tokens")?;
        if !self.store.revoke_token(caller.user, id, Utc::now()).await? {
            return Err(DomainError::NotFound("token"));
        }
        (self.on_revoke)(id);
        audit::record(Record {
            caller,
            action: "token.revoke",
            subject: id,
        });
        Ok(())
    }

    /// A token was revoked or expired elsewhere (another node, the CLI): the same hook as a
    /// revocation here forgets it and ends what it holds open.
    pub fn ended(&self, id: Uuid) {
        (self.on_revoke)(id);
    }

    /// Checks a token presented at a door that takes `kind`, counts it against its request
    /// limit, and records its use. The error says which check refused it; each check is
    /// counted in `/metrics` by outcome.
    pub async fn authenticate(
        &self,
        secret: &str,
        kind: TokenKind,
        addr: Option<IpAddr>,
    ) -> DomainResult<Token> {
        let outcome = self.check(secret, kind, addr).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(DomainError::Unauthenticated { code, .. }) => code,
            Err(DomainError::Throttled { .. }) => "rate_limited",
            Err(_) => "unavailable",
        };
        self.metrics.token_checked(kind.as_str(), label);
        outcome
    }

    async fn check(
        &self,
        secret: &str,
        kind: TokenKind,
        addr: Option<IpAddr>,
    ) -> DomainResult<Token> {
        let unknown = || {
            DomainError::unauthenticated(
                "invalid_token",
                format!("unknown or revoked {kind} token"),
            )
        };
        if secret.is_empty() || secret.len() > MAX_SECRET {
            return Err(unknown());
        }
        let hash = auth::token_hash(secret);
        // Agents connect rarely: their tokens are always looked up, so a revocation made
        // anywhere refuses the next connection at once.
        let cached = match kind {
            TokenKind::Agent => None,
            _ => self.cache.get(&hash),
        };
        let token = match cached {
            Some(token) => token,
            None => {
                let token = self.store.active_token(&hash).await?.ok_or_else(unknown)?;
                if kind != TokenKind::Agent {
                    self.cache.put(hash.clone(), token.clone());
                }
                token
            }
        };
        if token.kind != kind {
            return Err(DomainError::unauthenticated(
                "wrong_token_kind",
                format!(
                    "this is an {} token; this door takes {kind} tokens",
                    token.kind
                ),
            ));
        }
        let now = Utc::now();
        if let Some(at) = token.expires_at.filter(|at| *at <= now) {
            return Err(DomainError::unauthenticated(
                "expired_token",
                format!(
                    "this token expired at {}; make a new one",
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
            ));
        }
        if self.access.is_deactivated(token.owner_id) {
            return Err(DomainError::unauthenticated(
                "account_deactivated",
                "this token's account is deactivated",
            ));
        }
        self.limits
            .check(Key::Token(kind, token.id))
            .map_err(|retry_after| DomainError::Throttled {
                retry_after,
                what: "token",
            })?;
        let addr = addr.map(|a| a.to_string());
        let stale = token
            .last_used_at
            .is_none_or(|at| now - at >= USE_RECORD_EVERY)
            || token.last_used_addr != addr;
        if stale {
            // Best effort: a failure to note the use does not refuse the request.
            match self.store.token_used(token.id, now, addr.as_deref()).await {
                Ok(()) => {
                    let mut noted = token.clone();
                    noted.last_used_at = Some(now);
                    noted.last_used_addr = addr;
                    self.cache.update(&hash, noted);
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a token's use"),
            }
        }
        Ok(token)
    }
}
