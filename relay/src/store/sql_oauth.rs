//! The SQL behind [`OAuthStore`], written once for SQLite and PostgreSQL (the statements are
//! in [`super::queries`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreResult, Token,
    oauth::{NewOAuthCode, OAuthClient, OAuthCode, OAuthStore},
    queries as q,
};

/// Stamps out an [`OAuthStore`] implementation for one store.
macro_rules! sql_oauth_store {
    ($name:ident) => {
        #[async_trait]
        impl OAuthStore for $name {
            async fn create_oauth_client(&self, c: &OAuthClient) -> StoreResult<()> {
                sqlx::query(q::INSERT_OAUTH_CLIENT)
                    .bind(&c.id)
                    .bind(&c.name)
                    .bind(Json(&c.redirect_uris))
                    .bind(&c.client_uri)
                    .bind(&c.secret_hash)
                    .bind(c.auth_method.as_str())
                    .bind(c.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn oauth_client(&self, id: &str) -> StoreResult<Option<OAuthClient>> {
                Ok(sqlx::query_as(q::OAUTH_CLIENT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn oauth_client_count(&self) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(q::OAUTH_CLIENT_COUNT)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n.max(0) as u64)
            }

            async fn create_oauth_code(&self, new: &NewOAuthCode<'_>) -> StoreResult<()> {
                let c = new.code;
                sqlx::query(q::INSERT_OAUTH_CODE)
                    .bind(new.code_hash)
                    .bind(&c.client_id)
                    .bind(c.user_id)
                    .bind(&c.redirect_uri)
                    .bind(&c.code_challenge)
                    .bind(c.scopes.to_string())
                    .bind(&c.resource)
                    .bind(c.expires_at)
                    .bind(new.now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_oauth_code(
                &self,
                hash: &str,
                client: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<OAuthCode>> {
                Ok(sqlx::query_as(q::TAKE_OAUTH_CODE)
                    .bind(hash)
                    .bind(now)
                    .bind(client)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn used_oauth_code_grant(
                &self,
                hash: &str,
                client: &str,
            ) -> StoreResult<Option<Uuid>> {
                let row: Option<Option<Uuid>> = sqlx::query_scalar(q::USED_OAUTH_CODE_GRANT)
                    .bind(hash)
                    .bind(client)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.flatten())
            }

            async fn set_oauth_code_grant(&self, hash: &str, token: Uuid) -> StoreResult<()> {
                sqlx::query(q::SET_OAUTH_CODE_GRANT)
                    .bind(hash)
                    .bind(token)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_oauth_refresh(
                &self,
                hash: &str,
                token: Uuid,
                expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(q::INSERT_OAUTH_REFRESH)
                    .bind(hash)
                    .bind(token)
                    .bind(expires_at)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_oauth_refresh(
                &self,
                hash: &str,
                client: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<(Uuid, DateTime<Utc>)>> {
                Ok(sqlx::query_as(q::TAKE_OAUTH_REFRESH)
                    .bind(hash)
                    .bind(now)
                    .bind(client)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn used_oauth_refresh_grant(
                &self,
                hash: &str,
                client: &str,
            ) -> StoreResult<Option<Uuid>> {
                Ok(sqlx::query_scalar(q::USED_OAUTH_REFRESH_GRANT)
                    .bind(hash)
                    .bind(client)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn prune_oauth(
                &self,
                used_before: DateTime<Utc>,
                unused_before: DateTime<Utc>,
                dead_before: DateTime<Utc>,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let mut gone = 0;
                for (sql, at) in [
                    (q::PRUNE_OAUTH_CODES, used_before),
                    (q::PRUNE_OAUTH_REFRESH, used_before),
                    (q::PRUNE_OAUTH_GRANTS, dead_before),
                    (q::PRUNE_OAUTH_CLIENTS, unused_before),
                ] {
                    gone += sqlx::query(sql)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(gone)
            }

            async fn rotate_token(
                &self,
                id: Uuid,
                token_hash: &str,
                prefix: &str,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<bool> {
                Ok(sqlx::query(q::ROTATE_TOKEN)
                    .bind(id)
                    .bind(token_hash)
                    .bind(prefix)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn revoke_token_by_id(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
                Ok(sqlx::query(q::REVOKE_TOKEN_BY_ID)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn token_by_id(&self, id: Uuid) -> StoreResult<Option<Token>> {
                Ok(sqlx::query_as(q::TOKEN_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }
    };
}

sql_oauth_store!(SqliteStore);
sql_oauth_store!(PostgresStore);
