//! What the relay's OAuth 2.1 authorization server keeps: registered clients, authorization
//! codes and refresh tokens (both stored hashed, each usable once). A grant to a client is a
//! row of `tokens` (kind `mcp`, with its client's id), so it is listed and revoked like any
//! token; refreshing replaces its access token's hash.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClientAuthMethod, Scopes, StoreResult, Token};

/// A registered OAuth client.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthClient {
    /// Its `client_id`.
    pub id: String,
    /// Its name, shown on the consent page.
    pub name: String,
    /// The redirect URIs it registered; a request must name one exactly.
    #[sqlx(json)]
    pub redirect_uris: Vec<String>,
    /// Its home page, if it gave one.
    pub client_uri: Option<String>,
    /// SHA-256 of its secret (confidential clients only).
    pub secret_hash: Option<String>,
    /// How it authenticates at the token endpoint.
    #[sqlx(try_from = "String")]
    pub auth_method: ClientAuthMethod,
    /// When it registered.
    pub created_at: DateTime<Utc>,
}

/// An authorization code as stored (by its hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthCode {
    /// The client it was issued to.
    pub client_id: String,
    /// The user who consented.
    pub user_id: Uuid,
    /// The redirect URI of the request (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The scopes granted.
    #[sqlx(try_from = "String")]
    pub scopes: Scopes,
    /// The resource (RFC 8707) asked for, if any.
    pub resource: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// An authorization code to store.
#[derive(Debug, Clone)]
pub struct NewOAuthCode<'a> {
    /// SHA-256 of the code.
    pub code_hash: &'a str,
    /// The code's fields.
    pub code: &'a OAuthCode,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The OAuth server's storage.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// Registers a client.
    async fn create_oauth_client(&self, client: &OAuthClient) -> StoreResult<()>;
    /// The client with this id.
    async fn oauth_client(&self, id: &str) -> StoreResult<Option<OAuthClient>>;
    /// How many clients are registered.
    async fn oauth_client_count(&self) -> StoreResult<u64>;
    /// Stores an authorization code.
    async fn create_oauth_code(&self, new: &NewOAuthCode<'_>) -> StoreResult<()>;
    /// Uses up the unused code with this hash, issued to `client`, at `now`; `None` when there
    /// is none (unknown, another client's, or already used).
    async fn take_oauth_code(
        &self,
        hash: &str,
        client: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<OAuthCode>>;
    /// For a code of `client` that was already used: the grant it became, if any (to revoke it
    /// on replay).
    async fn used_oauth_code_grant(&self, hash: &str, client: &str) -> StoreResult<Option<Uuid>>;
    /// Records the grant a code became.
    async fn set_oauth_code_grant(&self, hash: &str, token: Uuid) -> StoreResult<()>;
    /// Stores a refresh token of grant `token`.
    async fn create_oauth_refresh(
        &self,
        hash: &str,
        token: Uuid,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Uses up the unused refresh token with this hash of a grant to `client` at `now`: its
    /// grant and expiry.
    async fn take_oauth_refresh(
        &self,
        hash: &str,
        client: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Uuid, DateTime<Utc>)>>;
    /// For a refresh token of a grant to `client` that was already used: its grant (to revoke
    /// it on replay).
    async fn used_oauth_refresh_grant(&self, hash: &str, client: &str)
    -> StoreResult<Option<Uuid>>;
    /// Deletes codes and refresh tokens expired or used before `used_before`, clients
    /// registered before `unused_before` that never got a grant, and grants revoked or whose
    /// access ended before `dead_before` (with their refresh tokens). How many rows went.
    async fn prune_oauth(
        &self,
        used_before: DateTime<Utc>,
        unused_before: DateTime<Utc>,
        dead_before: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Gives grant `id` a new access token (hash, shown prefix, expiry), if it is not revoked.
    async fn rotate_token(
        &self,
        id: Uuid,
        token_hash: &str,
        prefix: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Revokes token `id` whoever owns it (the relay's own use: a replayed code or refresh
    /// token ends its grant).
    async fn revoke_token_by_id(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Token `id`, whoever owns it (the relay's own use).
    async fn token_by_id(&self, id: Uuid) -> StoreResult<Option<Token>>;
}
