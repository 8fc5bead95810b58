//! Tokens: creating the agent and MCP tokens of a user (the API, `fulcrum-relay token create`
//! and `dev` all go through [`create_token`]), listing and revoking them. Revoking one
//! disconnects its agents and closes its MCP sessions at once, through the hook [`Tokens`] is
//! built with. What a user does through a door is audited here ([`Tokens::create`],
//! [`Tokens::revoke`]); the CLI and `dev` act for the operator and call [`create_token`]
//! directly.

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
};
use crate::{
    auth::{self, AGENT_TOKEN_PREFIX, MCP_TOKEN_PREFIX},
    store::{AgentToken, DynStore, NewToken, TokenKind},
};

/// Longest token name.
const MAX_NAME: usize = 100;
/// Most tokens a user may hold, revoked ones included.
const MAX_TOKENS_PER_USER: usize = 200;

/// A token just created: its metadata and, this once, the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The stored metadata.
    #[serde(flatten)]
    pub token: AgentToken,
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

/// Creates an agent token for `owner`.
pub async fn create_agent_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
) -> DomainResult<CreatedToken> {
    create_token(store, owner, name, TokenKind::Agent, false, None).await
}

/// Longest a token may be made to last.
const MAX_LIFETIME: chrono::Duration = chrono::Duration::days(3650);

/// Creates a token for `owner`: the one path used by the API and the CLI.
pub async fn create_token(
    store: &DynStore,
    owner: Uuid,
    name: &str,
    kind: TokenKind,
    read_only: bool,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> DomainResult<CreatedToken> {
    let now = chrono::Utc::now();
    if let Some(at) = expires_at
        && (at <= now || at > now + MAX_LIFETIME)
    {
        return Err(DomainError::Invalid(
            "expires_at must be in the future, and at most ten years away".into(),
        ));
    }
    if read_only && kind != TokenKind::Mcp {
        return Err(DomainError::Invalid(
            "only MCP tokens can be read-only; an agent token acts for its own workspace".into(),
        ));
    }
    // The limit applies to the name as sent (the schema's maxLength), the emptiness check to
    // what is left after trimming.
    let too_long = name.chars().count() > MAX_NAME;
    let name = name.trim();
    if name.is_empty() || too_long {
        return Err(DomainError::Invalid(format!(
            "a token name of 1 to {MAX_NAME} characters is required"
        )));
    }
    if store.list_agent_tokens(owner).await?.len() >= MAX_TOKENS_PER_USER {
        return Err(DomainError::conflict(
            "too_many_tokens",
            format!("at most {MAX_TOKENS_PER_USER} tokens per user"),
        ));
    }
    let new = auth::new_token(match kind {
        TokenKind::Agent => AGENT_TOKEN_PREFIX,
        TokenKind::Mcp => MCP_TOKEN_PREFIX,
    });
    let token = store
        .create_token(&NewToken {
            owner,
            name,
            token_hash: &new.hash,
            prefix: &new.shown_prefix,
            kind,
            read_only,
            expires_at,
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

/// A user's tokens, with what managing them uses.
pub struct Tokens {
    store: DynStore,
    on_revoke: OnRevoke,
}

impl Tokens {
    /// Tokens in `store`; `on_revoke` runs for each one revoked.
    pub fn new(store: DynStore, on_revoke: OnRevoke) -> Self {
        Self { store, on_revoke }
    }

    /// Creates a token for the caller, and records it.
    pub async fn create(
        &self,
        caller: Caller,
        name: &str,
        kind: TokenKind,
        read_only: bool,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> DomainResult<CreatedToken> {
        let created =
            create_token(&self.store, caller.user, name, kind, read_only, expires_at).await?;
        audit::record(Record {
            caller,
            action: "token.create",
            subject: created.token.id,
        });
        Ok(created)
    }

    /// The caller's tokens, revoked ones included.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<AgentToken>> {
        Ok(self.store.list_agent_tokens(caller.user).await?)
    }

    /// Revokes one of the caller's tokens: its agents are disconnected and its MCP sessions
    /// closed at once, here; other relay nodes notice within their revocation sweep.
    pub async fn revoke(&self, caller: Caller, id: Uuid) -> DomainResult<()> {
        if !self
            .store
            .revoke_agent_token(caller.user, id, chrono::Utc::now())
            .await?
        {
            return Err(DomainError::NotFound("agent token"));
        }
        (self.on_revoke)(id);
        audit::record(Record {
            caller,
            action: "token.revoke",
            subject: id,
        });
        Ok(())
    }
}
