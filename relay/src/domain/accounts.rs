//! Accounts and logins: the rules for e-mail addresses and passwords, signing up, logging in,
//! refreshing and logging out, whatever the door. A login is a family of refresh tokens: each
//! refresh token works once, and presenting a used one revokes the whole login (someone
//! replayed it). Access tokens are short-lived and name their login.
//!
//! `fulcrum-relay user create` and `dev` create accounts with [`create_user`], which needs only
//! the store; the REST door goes through [`Accounts`].

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult, Door,
    audit::{self, Record},
};
use crate::{
    access::{AccessChange, AccessChanges},
    auth::{self, REFRESH_TOKEN_PREFIX, Signer, TokenUse},
    metrics::Metrics,
    ratelimit::{LoginLimit, LoginLimits},
    store::{
        DynStore, NewRefreshToken, Preferences, RefreshOutcome, Scope, StoreError, User, UserRole,
    },
};

/// Longest display name.
const MAX_FULL_NAME: usize = 200;
/// Longest time zone name.
const MAX_TIME_ZONE: usize = 64;

/// Changes to the caller's profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// The name shown for the user (empty clears it).
    pub full_name: Option<String>,
    /// Preferences, replacing the stored ones whole.
    pub preferences: Option<Preferences>,
}

/// Longest e-mail address.
const MAX_EMAIL: usize = 254;
/// Shortest password.
pub const MIN_PASSWORD: usize = 8;
/// Longest password.
pub const MAX_PASSWORD: usize = 1024;
/// How long a login or sign-up waits for a password-hashing slot before being told to retry.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// Normalises and checks an e-mail address; the one rule used by the API and the CLI.
pub fn normalize_email(email: &str) -> Result<String, String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err("a valid e-mail address is required".into())
    }
}

/// Checks a new password's length; the one rule used by the API and the CLI.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        ))
    }
}

/// Creates a user: validates, hashes off the runtime, stores. The one way an account is made
/// (sign-up, the CLI, `dev`).
pub async fn create_user(store: &DynStore, email: &str, password: &str) -> DomainResult<User> {
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    check_password(password).map_err(DomainError::Invalid)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    Ok(store.create_user(&email, &hash).await?)
}

/// Deactivates (`active` false) or activates the user with this e-mail address: the
/// operator's command (`fulcrum-relay user deactivate|activate`). Deactivating ends every login
/// at once; every relay node notices within a second and ends the user's open streams, agent
/// connections and MCP sessions.
pub async fn set_active(store: &DynStore, email: &str, active: bool) -> DomainResult<User> {
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    let user = store
        .user_by_email(&email)
        .await?
        .ok_or(DomainError::NotFound("user"))?;
    if !store.set_user_active(user.id, active, Utc::now()).await? {
        return Err(DomainError::NotFound("user"));
    }
    audit::record_operator(
        user.id,
        if active {
            "user.activate"
        } else {
            "user.deactivate"
        },
    );
    Ok(user)
}

/// Makes the user with this e-mail address an administrator or a member: the operator's
/// command (`fulcrum-relay user admin`).
pub async fn set_role(store: &DynStore, email: &str, role: UserRole) -> DomainResult<User> {
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    let user = store
        .user_by_email(&email)
        .await?
        .ok_or(DomainError::NotFound("user"))?;
    if !store.set_user_role(user.id, role).await? {
        return Err(DomainError::NotFound("user"));
    }
    audit::record_operator(
        user.id,
        match role {
            UserRole::Admin => "user.make_admin",
            UserRole::Member => "user.make_member",
        },
    );
    Ok(User { role, ..user })
}

/// Most users an administrator's list returns at once.
pub const MAX_USERS_PAGE: u32 = 200;

/// Longest a password reset link may stay valid.
pub const MAX_RESET_VALIDITY: chrono::Duration = chrono::Duration::days(7);

/// A one-time password reset link's token, fresh from [`issue_reset`]. Its `Debug` output
/// hides it.
pub struct ResetToken {
    /// The user it resets.
    pub user: User,
    /// The token, shown this once (in the link).
    pub secret: String,
    /// Until when it works.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetToken")
            .field("user", &self.user.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Makes a one-time password reset link's token for the user with this e-mail address, valid
/// for `valid_for` (at most [`MAX_RESET_VALIDITY`]): the operator's command (`fulcrum-relay
/// user reset-password`), since the relay assumes no mail server.
pub async fn issue_reset(
    store: &DynStore,
    email: &str,
    valid_for: chrono::Duration,
) -> DomainResult<ResetToken> {
    if valid_for <= chrono::Duration::zero() || valid_for > MAX_RESET_VALIDITY {
        return Err(DomainError::Invalid(
            "a reset link is valid for 1 minute to 7 days".into(),
        ));
    }
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    let user = store
        .user_by_email(&email)
        .await?
        .ok_or(DomainError::NotFound("user"))?;
    let token = auth::new_token(auth::RESET_TOKEN_PREFIX);
    let now = Utc::now();
    let expires_at = now + valid_for;
    store
        .create_password_reset(user.id, &token.hash, expires_at, now)
        .await?;
    audit::record_operator(user.id, "user.issue_reset");
    Ok(ResetToken {
        user,
        secret: token.secret,
        expires_at,
    })
}

/// The account settings the relay runs with.
#[derive(Debug, Clone, Copy)]
pub struct AccountPolicy {
    /// Whether anyone may sign up.
    pub signup_enabled: bool,
    /// Lifetime of an access token, in seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token (and so of an idle login), in seconds.
    pub refresh_ttl_secs: u64,
}

/// A login's tokens, fresh from a login or a refresh. Its `Debug` output hides both secrets.
pub struct LoginTokens {
    /// The user.
    pub user: Uuid,
    /// The login they belong to.
    pub login: Uuid,
    /// A signed access token.
    pub access_token: String,
    /// The refresh token's secret (works once).
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for LoginTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTokens")
            .field("user", &self.user)
            .field("login", &self.login)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Signing up, logging in and out, and refreshing: with exactly what they use.
pub struct Accounts {
    store: DynStore,
    signer: Signer,
    /// Password hashing is slow on purpose; this caps how many run at once.
    password_checks: Arc<Semaphore>,
    logins: Arc<LoginLimits>,
    access: Arc<AccessChanges>,
    metrics: Arc<Metrics>,
    policy: AccountPolicy,
    /// Closes what one of a deactivated user's tokens holds open (agent and MCP sessions).
    cut_token: super::tokens::OnRevoke,
}

impl Accounts {
    /// Accounts on `store`, signing with `signer`, hashing at most `hashing` passwords at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: DynStore,
        signer: Signer,
        hashing: usize,
        logins: Arc<LoginLimits>,
        access: Arc<AccessChanges>,
        metrics: Arc<Metrics>,
        policy: AccountPolicy,
        cut_token: super::tokens::OnRevoke,
    ) -> Self {
        Self {
            store,
            signer,
            password_checks: Arc::new(Semaphore::new(hashing.max(1))),
            logins,
            access,
            metrics,
            policy,
            cut_token,
        }
    }

    /// Learns which users are deactivated (at start).
    pub async fn load_deactivated(&self) -> Result<usize, StoreError> {
        let users = self.store.deactivated_users().await?;
        for user in &users {
            self.access.set_active(*user, false);
        }
        Ok(users.len())
    }

    /// Brings this node's view in line with the whole list of deactivated users, catching any
    /// change the look-back of [`Self::follow_status`] missed (a commit that took long, clocks
    /// apart). Returns how many users it corrected.
    pub async fn reconcile_status(&self) -> Result<usize, StoreError> {
        let stored: std::collections::HashSet<Uuid> =
            self.store.deactivated_users().await?.into_iter().collect();
        let mut fixed = 0;
        for user in self.access.deactivated_users() {
            if !stored.contains(&user) {
                self.access.set_active(user, true);
                fixed += 1;
            }
        }
        for user in stored {
            if !self.access.is_deactivated(user) {
                self.apply_status(user, false).await?;
                fixed += 1;
            }
        }
        Ok(fixed)
    }

    /// Applies one user's status on this node.
    async fn apply_status(&self, user: Uuid, active: bool) -> Result<(), StoreError> {
        let was = !self.access.is_deactivated(user);
        self.access.set_active(user, active);
        if was && !active {
            for token in self.store.list_tokens(user).await? {
                (self.cut_token)(token.id);
            }
            tracing::info!(%user, "account deactivated: its sessions ended");
        }
        Ok(())
    }

    /// Applies the status changes made since `since` (here, by the CLI or on another node):
    /// a deactivated user's streams close, their agent and MCP sessions end, and nothing of
    /// theirs authenticates until they are activated again. Returns how many changed.
    pub async fn follow_status(&self, since: DateTime<Utc>) -> Result<usize, StoreError> {
        let changes = self.store.user_status_changes(since).await?;
        for (user, active) in &changes {
            self.apply_status(*user, *active).await?;
        }
        Ok(changes.len())
    }

    /// The settings in force.
    pub fn policy(&self) -> AccountPolicy {
        self.policy
    }

    /// Waits briefly for a password-hashing slot; refused when the relay is busy hashing.
    async fn password_slot(&self) -> DomainResult<OwnedSemaphorePermit> {
        match tokio::time::timeout(SLOT_WAIT, self.password_checks.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(DomainError::Busy(
                "too many logins at once; try again in a moment".into(),
            )),
        }
    }

    /// Creates an account, when sign-up is enabled.
    pub async fn sign_up(&self, door: Door, email: &str, password: &str) -> DomainResult<User> {
        if !self.policy.signup_enabled {
            return Err(DomainError::refused(
                "signup_disabled",
                "sign-up is disabled on this relay",
            ));
        }
        let _slot = self.password_slot().await?;
        let user = create_user(&self.store, email, password).await?;
        audit::record(Record {
            caller: Caller::new(user.id, door),
            action: "user.sign_up",
            subject: user.id,
        });
        Ok(user)
    }

    /// Logs in with a password from `client`: failed attempts are limited per account and per
    /// address, and every failure looks the same.
    pub async fn log_in(
        &self,
        door: Door,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> DomainResult<LoginTokens> {
        let invalid =
            || DomainError::unauthenticated("invalid_credentials", "wrong e-mail or password");
        if password.len() > MAX_PASSWORD * 4 {
            return Err(invalid());
        }
        let email = normalize_email(email).map_err(|_| invalid())?;
        // The limits are checked holding a password-check slot, so that attempts in parallel
        // cannot all pass before the first failure is counted.
        let _slot = self.password_slot().await?;
        if let Err(refused) = self.logins.admit(&email, client) {
            self.metrics.login_throttled(refused.limit.as_str());
            return Err(DomainError::Throttled {
                retry_after: refused.retry_after,
                what: match refused.limit {
                    LoginLimit::Account => "account's failed logins",
                    LoginLimit::Address => "address's failed logins",
                },
            });
        }
        let user = self.store.user_by_email(&email).await?;
        let hash = user.as_ref().map_or_else(
            || auth::dummy_password_hash().to_owned(),
            |u| u.password_hash.clone(),
        );
        let password = password.to_owned();
        let good = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let Some(user) = user.filter(|_| good) else {
            self.logins.failed(&email, client);
            self.metrics.login_failed();
            return Err(invalid());
        };
        self.logins.succeeded(&email, client);
        // Said only to someone who knows the password.
        if user.deactivated_at.is_some() {
            return Err(DomainError::refused(
                "account_deactivated",
                "this account is deactivated; ask an operator to activate it",
            ));
        }
        let refresh = auth::new_token(REFRESH_TOKEN_PREFIX);
        let now = Utc::now();
        let login = Uuid::now_v7();
        self.store
            .insert_refresh_token(&NewRefreshToken {
                user_id: user.id,
                family_id: login,
                token_hash: refresh.hash.clone(),
                expires_at: now + self.refresh_ttl(),
            })
            .await?;
        tracing::info!(user = %user.id, "login");
        audit::record(Record {
            caller: Caller::new(user.id, door),
            action: "login.start",
            subject: login,
        });
        Ok(self.tokens(user.id, login, refresh.secret))
    }

    /// Trades a refresh token for a new pair. A token used before ends its whole login.
    pub async fn refresh(&self, door: Door, presented: &str) -> DomainResult<LoginTokens> {
        let next = auth::new_token(REFRESH_TOKEN_PREFIX);
        let now = Utc::now();
        let outcome = self
            .store
            .rotate_refresh_token(
                &auth::token_hash(presented),
                &next.hash,
                now + self.refresh_ttl(),
                now,
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated { user_id, family_id } => {
                Ok(self.tokens(user_id, family_id, next.secret))
            }
            RefreshOutcome::Reused { user_id, family_id } => {
                tracing::warn!("refresh token reused; the login was revoked");
                self.ended(family_id);
                audit::record(Record {
                    caller: Caller::new(user_id, door),
                    action: "login.replayed",
                    subject: family_id,
                });
                Err(DomainError::unauthenticated(
                    "refresh_reused",
                    "this refresh token was already used; log in again",
                ))
            }
            RefreshOutcome::Invalid => Err(DomainError::unauthenticated(
                "invalid_refresh",
                "invalid or expired refresh token",
            )),
        }
    }

    /// Ends the login `presented` belongs to; an unknown token changes nothing.
    pub async fn log_out(&self, door: Door, presented: &str) -> DomainResult<()> {
        let login = self
            .store
            .revoke_refresh_family(&auth::token_hash(presented), Utc::now())
            .await?;
        if let Some((user, family)) = login {
            // Its open sockets close now, not when their access token would have expired.
            self.ended(family);
            audit::record(Record {
                caller: Caller::new(user, door),
                action: "login.end",
                subject: family,
            });
        }
        Ok(())
    }

    /// `Ok` when the caller is an administrator acting with a login or an unlimited token
    /// holding `admin`.
    async fn admin(&self, caller: Caller) -> DomainResult<()> {
        caller.need(Scope::Admin)?;
        caller.need_unlimited("act as an administrator")?;
        let me = self.me(caller).await?;
        if me.role != UserRole::Admin {
            return Err(DomainError::Denied {
                code: "not_admin",
                message: "only an administrator of the relay may do this \
                          (`fulcrum-relay user admin --email …`)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The user `id`, for an administrator.
    async fn user_for_admin(&self, caller: Caller, id: Uuid) -> DomainResult<User> {
        self.admin(caller).await?;
        self.store
            .user_by_id(id)
            .await?
            .ok_or(DomainError::NotFound("user"))
    }

    /// Every user, by e-mail, after `after`, at most `limit` (an administrator's view).
    pub async fn users(
        &self,
        caller: Caller,
        after: Option<&str>,
        limit: u32,
    ) -> DomainResult<Vec<User>> {
        self.admin(caller).await?;
        if !(1..=MAX_USERS_PAGE).contains(&limit) {
            return Err(DomainError::Invalid(format!(
                "limit must be from 1 to {MAX_USERS_PAGE}"
            )));
        }
        Ok(self.store.list_users(after, limit).await?)
    }

    /// Deactivates or activates user `id` (an administrator, never themself): as
    /// `fulcrum-relay user deactivate|activate`, and this node ends their streams at once.
    pub async fn set_user_active(
        &self,
        caller: Caller,
        id: Uuid,
        active: bool,
    ) -> DomainResult<User> {
        let user = self.user_for_admin(caller, id).await?;
        if user.id == caller.user && !active {
            return Err(DomainError::conflict(
                "self",
                "an administrator cannot deactivate themself",
            ));
        }
        let user = set_active(&self.store, &user.email, active).await?;
        self.apply_status(user.id, active).await?;
        audit::record(Record {
            caller,
            action: if active {
                "admin.activate"
            } else {
                "admin.deactivate"
            },
            subject: user.id,
        });
        self.store
            .user_by_id(user.id)
            .await?
            .ok_or(DomainError::NotFound("user"))
    }

    /// A one-time password reset link's token for user `id` (an administrator), as
    /// `fulcrum-relay user reset-password`.
    pub async fn issue_reset_for(
        &self,
        caller: Caller,
        id: Uuid,
        valid_for: chrono::Duration,
    ) -> DomainResult<ResetToken> {
        // A reset link is a whole login: a token may not mint one.
        caller.need_login("issuing password reset links")?;
        let user = self.user_for_admin(caller, id).await?;
        let reset = issue_reset(&self.store, &user.email, valid_for).await?;
        audit::record(Record {
            caller,
            action: "admin.issue_reset",
            subject: user.id,
        });
        Ok(reset)
    }

    /// The caller's account.
    pub async fn me(&self, caller: Caller) -> DomainResult<User> {
        self.store.user_by_id(caller.user).await?.ok_or_else(|| {
            DomainError::unauthenticated("unauthorized", "the user no longer exists")
        })
    }

    /// Changes the caller's name and preferences. A default project must be one the caller is
    /// a member of.
    pub async fn update_profile(
        &self,
        caller: Caller,
        change: ProfileChange,
    ) -> DomainResult<User> {
        caller.need_login("changing the profile")?;
        let full_name = change.full_name.map(|n| n.trim().to_owned());
        if let Some(name) = &full_name
            && (name.chars().count() > MAX_FULL_NAME || name.chars().any(char::is_control))
        {
            return Err(DomainError::Invalid(format!(
                "full_name is at most {MAX_FULL_NAME} characters, without control characters"
            )));
        }
        if let Some(p) = &change.preferences {
            if let Some(tz) = &p.time_zone
                && (tz.is_empty()
                    || tz.len() > MAX_TIME_ZONE
                    || !tz
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)))
            {
                return Err(DomainError::Invalid(
                    "time_zone is an IANA name such as Europe/Berlin".into(),
                ));
            }
            if let Some(project) = p.default_project
                && self
                    .store
                    .get_project(caller.user, project)
                    .await?
                    .is_none()
            {
                return Err(DomainError::NotFound("project"));
            }
        }
        let user = self
            .store
            .update_profile(
                caller.user,
                full_name.as_deref(),
                change.preferences.as_ref(),
            )
            .await?
            .ok_or_else(|| {
                DomainError::unauthenticated("unauthorized", "the user no longer exists")
            })?;
        audit::record(Record {
            caller,
            action: "user.update_profile",
            subject: caller.user,
        });
        Ok(user)
    }

    /// Changes the caller's password, given the current one, and ends their other logins (all
    /// but `login`, the one the request came with): their sockets close at once. Wrong current
    /// passwords count against the same limits as failed logins. Returns how many logins ended.
    pub async fn change_password(
        &self,
        caller: Caller,
        login: Option<Uuid>,
        current: &str,
        new: &str,
        client: Option<IpAddr>,
    ) -> DomainResult<usize> {
        caller.need_login("changing the password")?;
        let wrong =
            || DomainError::unauthenticated("wrong_password", "the current password is wrong");
        check_password(new).map_err(DomainError::Invalid)?;
        if current.len() > MAX_PASSWORD * 4 {
            return Err(wrong());
        }
        let user = self.me(caller).await?;
        let _slot = self.password_slot().await?;
        if let Err(refused) = self.logins.admit(&user.email, client) {
            self.metrics.login_throttled(refused.limit.as_str());
            return Err(DomainError::Throttled {
                retry_after: refused.retry_after,
                what: "account's failed logins",
            });
        }
        let (hash, current) = (user.password_hash.clone(), current.to_owned());
        let good = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &current))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        if !good {
            self.logins.failed(&user.email, client);
            self.metrics.login_failed();
            return Err(wrong());
        }
        self.logins.succeeded(&user.email, client);
        let new = new.to_owned();
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&new))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let ended = self
            .store
            .set_password(caller.user, &hash, login, Utc::now())
            .await?;
        for family in &ended {
            self.ended(*family);
        }
        audit::record(Record {
            caller,
            action: "user.change_password",
            subject: caller.user,
        });
        Ok(ended.len())
    }

    /// Sets a new password with a one-time reset link's token and ends every login of the
    /// user. An unknown, used or expired link changes nothing; so does a new password that
    /// breaks the rules (the link still works).
    pub async fn reset_password(&self, door: Door, token: &str, new: &str) -> DomainResult<()> {
        let invalid = || {
            DomainError::unauthenticated(
                "invalid_reset",
                "this reset link is unknown, used or expired; ask an operator for a new one",
            )
        };
        check_password(new).map_err(DomainError::Invalid)?;
        if token.len() > 256 {
            return Err(invalid());
        }
        let token_hash = auth::token_hash(token);
        // Checked before hashing, so made-up links cost no password hash.
        if !self
            .store
            .password_reset_open(&token_hash, Utc::now())
            .await?
        {
            return Err(invalid());
        }
        let _slot = self.password_slot().await?;
        let new = new.to_owned();
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&new))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let (user, ended) = self
            .store
            .reset_password(&token_hash, &hash, Utc::now())
            .await?
            .ok_or_else(invalid)?;
        for family in ended {
            self.ended(family);
        }
        audit::record(Record {
            caller: Caller::new(user, door),
            action: "user.reset_password",
            subject: user,
        });
        Ok(())
    }

    /// Whether the login a token was issued under is still on (not logged out, not revoked as
    /// replayed). Tokens from before logins were named carry none and count as on.
    pub async fn login_active(&self, login: Option<Uuid>) -> Result<bool, StoreError> {
        match login {
            Some(family) => self.store.login_active(family, Utc::now()).await,
            None => Ok(true),
        }
    }

    fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.policy.refresh_ttl_secs.min(i64::MAX as u64) as i64)
    }

    fn ended(&self, login: Uuid) {
        self.access.publish(AccessChange::Login(login));
    }

    fn tokens(&self, user: Uuid, login: Uuid, refresh_token: String) -> LoginTokens {
        let ttl = self.policy.access_ttl_secs;
        let access_token = self.signer.issue_in(
            user,
            Some(login),
            TokenUse::Access,
            Utc::now(),
            chrono::Duration::seconds(ttl.min(i64::MAX as u64) as i64),
        );
        LoginTokens {
            user,
            login,
            access_token,
            refresh_token,
            expires_in: ttl,
        }
    }
}
