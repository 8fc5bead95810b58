//! The SQL behind [`WebhookStore`], written once for SQLite and PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreResult,
    webhooks::{
        Attempt, AttemptOutcome, AttemptRecord, Delivery, DueDelivery, Endpoint, EndpointChange,
        WebhookEvent, WebhookStore,
    },
};

const ENDPOINT: &str = "SELECT id, owner_id, project_id, url, description, events, enabled, \
    disabled_reason, previous_until, created_at, updated_at FROM webhook_endpoints";
const EVENT: &str = "SELECT id, kind, owner_id, project_id, endpoint_id, subject_id, data, \
    created_at FROM webhook_events";
const DELIVERY: &str = "SELECT id, endpoint_id, event_id, kind, payload, state, attempts, \
    schedule_base, next_attempt_at, last_status, last_error, created_at, finished_at \
    FROM webhook_deliveries";

/// Stamps out a [`WebhookStore`] implementation for one store over database `$db`.
macro_rules! sql_webhook_store {
    ($name:ident, $db:ty) => {
        impl $name {
            /// Records event `e` inside `tx` when an enabled endpoint of its owner, or of its
            /// project, may want it (the outbox of a change that `tx` makes).
            pub(super) async fn add_event_if_wanted(
                tx: &mut sqlx::Transaction<'_, $db>,
                e: &WebhookEvent,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webhook_events (id, kind, owner_id, project_id, endpoint_id, \
                     subject_id, data, created_at) SELECT $1, $2, $3, $4, NULL, $5, $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.enabled AND \
                     ((e.project_id IS NULL AND e.owner_id = $3) OR e.project_id = $4))",
                )
                .bind(e.id)
                .bind(e.kind.as_str())
                .bind(e.owner_id)
                .bind(e.project_id)
                .bind(e.subject_id)
                .bind(&e.data)
                .bind(e.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl WebhookStore for $name {
            async fn create_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, owner_id, project_id, url, description, \
                     events, enabled, disabled_reason, previous_until, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(e.id)
                .bind(e.owner_id)
                .bind(e.project_id)
                .bind(&e.url)
                .bind(&e.description)
                .bind(&e.events)
                .bind(e.enabled)
                .bind(&e.disabled_reason)
                .bind(e.previous_until)
                .bind(e.created_at)
                .bind(e.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>> {
                Ok(sqlx::query_as(&format!("{ENDPOINT} WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn endpoints(&self, user: Uuid, projects: &[Uuid]) -> StoreResult<Vec<Endpoint>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(ENDPOINT);
                b.push(" WHERE (owner_id = ").push_bind(user).push(" AND project_id IS NULL)");
                if !projects.is_empty() {
                    b.push(" OR project_id IN (");
                    let mut list = b.separated(", ");
                    for p in projects {
                        list.push_bind(*p);
                    }
                    b.push(")");
                }
                b.push(" ORDER BY created_at, id");
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn update_endpoint(
                &self,
                id: Uuid,
                c: &EndpointChange,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Endpoint>> {
                let (enabled, reason) = match &c.enabled {
                    Some((on, reason)) => (Some(*on), reason.clone()),
                    None => (None, None),
                };
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET url = COALESCE($2, url), \
                     description = COALESCE($3, description), events = COALESCE($4, events), \
                     enabled = COALESCE($5, enabled), disabled_reason = CASE \
                     WHEN $5 IS NULL THEN disabled_reason WHEN $5 THEN NULL \
                     WHEN enabled THEN $6 ELSE disabled_reason END, updated_at = $7 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(&c.url)
                .bind(&c.description)
                .bind(&c.events)
                .bind(enabled)
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                self.endpoint(id).await
            }

            async fn set_previous_until(
                &self,
                id: Uuid,
                until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET previous_until = $2, updated_at = $3 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(until)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_endpoint(&self, id: Uuid) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM webhook_events WHERE endpoint_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn count_endpoints(&self, user: Uuid) -> StoreResult<u64> {
                let n: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE owner_id = $1")
                        .bind(user)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(n as u64)
            }

            async fn add_event(&self, e: &WebhookEvent) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webhook_events (id, kind, owner_id, project_id, endpoint_id, \
                     subject_id, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(e.id)
                .bind(e.kind.as_str())
                .bind(e.owner_id)
                .bind(e.project_id)
                .bind(e.endpoint_id)
                .bind(e.subject_id)
                .bind(&e.data)
                .bind(e.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn pending_events(&self, limit: u32) -> StoreResult<Vec<WebhookEvent>> {
                Ok(sqlx::query_as(&format!("{EVENT} ORDER BY id LIMIT $1"))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn endpoints_for_event(&self, e: &WebhookEvent) -> StoreResult<Vec<Endpoint>> {
                Ok(match e.endpoint_id {
                    Some(id) => sqlx::query_as(&format!("{ENDPOINT} WHERE id = $1 AND enabled"))
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?,
                    // A project's endpoint only while its creator still manages the project.
                    None => sqlx::query_as(&format!(
                        "{ENDPOINT} WHERE enabled AND ((project_id IS NULL AND owner_id = $1) \
                         OR (project_id = $2 AND EXISTS (SELECT 1 FROM project_members m \
                         WHERE m.project_id = $2 AND m.user_id = webhook_endpoints.owner_id \
                         AND m.role IN ('owner', 'maintainer')))) ORDER BY id"
                    ))
                    .bind(e.owner_id)
                    .bind(e.project_id)
                    .fetch_all(&self.pool)
                    .await?,
                })
            }

            async fn fan_out(&self, event: Uuid, deliveries: &[Delivery]) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let taken = sqlx::query("DELETE FROM webhook_events WHERE id = $1")
                    .bind(event)
                    .execute(&mut *tx)
                    .await?;
                if taken.rows_affected() != 1 {
                    return Ok(false);
                }
                for d in deliveries {
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, kind, \
                         payload, state, attempts, schedule_base, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8)",
                    )
                    .bind(d.id)
                    .bind(d.endpoint_id)
                    .bind(d.event_id)
                    .bind(d.kind.as_str())
                    .bind(&d.payload)
                    .bind(d.state.as_str())
                    .bind(d.next_attempt_at)
                    .bind(d.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn claim_due(
                &self,
                now: DateTime<Utc>,
                lease: DateTime<Utc>,
                limit: u32,
            ) -> StoreResult<Vec<DueDelivery>> {
                let mut tx = self.pool.begin().await?;
                // Endpoints no worker holds whose oldest pending delivery is due; one another
                // relay claimed meanwhile no longer matches the outer condition and is skipped.
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "UPDATE webhook_endpoints SET busy_until = $2 WHERE id IN (SELECT e.id \
                     FROM webhook_endpoints e WHERE e.enabled AND (e.busy_until IS NULL OR \
                     e.busy_until < $1) AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE \
                     d.endpoint_id = e.id AND d.state = 'pending' AND d.next_attempt_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE \
                     o.endpoint_id = e.id AND o.state = 'pending' AND o.id < d.id)) LIMIT $3) \
                     AND enabled AND (busy_until IS NULL OR busy_until < $1) RETURNING id",
                )
                .bind(now)
                .bind(lease)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut due = Vec::with_capacity(ids.len());
                for id in ids {
                    let endpoint: Option<Endpoint> =
                        sqlx::query_as(&format!("{ENDPOINT} WHERE id = $1"))
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let delivery: Option<Delivery> = sqlx::query_as(&format!(
                        "{DELIVERY} WHERE endpoint_id = $1 AND state = 'pending' \
                         ORDER BY id LIMIT 1"
                    ))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let (Some(endpoint), Some(delivery)) = (endpoint, delivery) {
                        due.push(DueDelivery { delivery, endpoint });
                    }
                }
                tx.commit().await?;
                Ok(due)
            }

            async fn record_attempt(
                &self,
                r: &AttemptRecord,
                now: DateTime<Utc>,
                lease: DateTime<Utc>,
            ) -> StoreResult<Option<Delivery>> {
                let a = &r.attempt;
                let mut tx = self.pool.begin().await?;
                let (state, next_at, finished) = match r.outcome {
                    AttemptOutcome::Delivered => ("delivered", a.at, Some(a.at)),
                    AttemptOutcome::Retry(at) => ("pending", at, None),
                    AttemptOutcome::Failed | AttemptOutcome::Gone => ("failed", a.at, Some(a.at)),
                };
                // Fenced: only the attempt that follows the one stored counts.
                let moved = sqlx::query(
                    "UPDATE webhook_deliveries SET state = $2, attempts = $3, \
                     next_attempt_at = $4, last_status = $5, last_error = $6, finished_at = $7 \
                     WHERE id = $1 AND state = 'pending' AND attempts = $8",
                )
                .bind(r.delivery)
                .bind(state)
                .bind(a.attempt)
                .bind(next_at)
                .bind(a.status)
                .bind(&a.error)
                .bind(finished)
                .bind(a.attempt - 1)
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() != 1 {
                    return Ok(None);
                }
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, \
                     duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(r.delivery)
                .bind(a.attempt)
                .bind(a.at)
                .bind(a.status)
                .bind(&a.error)
                .bind(a.duration_ms)
                .execute(&mut *tx)
                .await?;
                let disabled = match r.outcome {
                    AttemptOutcome::Gone => Some("the endpoint answered 410 Gone"),
                    AttemptOutcome::Failed => Some(
                        "every attempt at a delivery failed, for days; enable it again once \
                         the endpoint works",
                    ),
                    _ => None,
                };
                let next: Option<Delivery> = match r.outcome {
                    AttemptOutcome::Delivered => {
                        sqlx::query_as(&format!(
                            "{DELIVERY} WHERE endpoint_id = $1 AND state = 'pending' \
                             AND next_attempt_at <= $2 AND id = (SELECT o.id FROM \
                             webhook_deliveries o WHERE o.endpoint_id = $1 \
                             AND o.state = 'pending' ORDER BY o.id LIMIT 1) AND EXISTS (SELECT 1 FROM \
                             webhook_endpoints e WHERE e.id = $1 AND e.enabled)"
                        ))
                        .bind(r.endpoint)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                    _ => None,
                };
                sqlx::query(
                    "UPDATE webhook_endpoints SET busy_until = $2, \
                     enabled = CASE WHEN $3 IS NULL THEN enabled ELSE FALSE END, \
                     disabled_reason = COALESCE($3, disabled_reason), \
                     updated_at = CASE WHEN $3 IS NULL THEN updated_at ELSE $4 END \
                     WHERE id = $1",
                )
                .bind(r.endpoint)
                .bind(next.as_ref().map(|_| lease))
                .bind(disabled)
                .bind(a.at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(next)
            }

            async fn deliveries(
                &self,
                endpoint: Uuid,
                before: Option<Uuid>,
                limit: u32,
            ) -> StoreResult<Vec<Delivery>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(DELIVERY);
                b.push(" WHERE endpoint_id = ").push_bind(endpoint);
                if let Some(before) = before {
                    b.push(" AND id < ").push_bind(before);
                }
                b.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn delivery(
                &self,
                endpoint: Uuid,
                id: Uuid,
            ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
                let Some(d): Option<Delivery> =
                    sqlx::query_as(&format!("{DELIVERY} WHERE id = $1 AND endpoint_id = $2"))
                        .bind(id)
                        .bind(endpoint)
                        .fetch_optional(&self.pool)
                        .await?
                else {
                    return Ok(None);
                };
                let attempts = sqlx::query_as(
                    "SELECT attempt, at, status, error, duration_ms FROM webhook_attempts \
                     WHERE delivery_id = $1 ORDER BY attempt",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some((d, attempts)))
            }

            async fn replay_delivery(
                &self,
                endpoint: Uuid,
                id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $3, \
                     finished_at = NULL, schedule_base = attempts WHERE id = $1 \
                     AND endpoint_id = $2 AND state <> 'pending'",
                )
                .bind(id)
                .bind(endpoint)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_deliveries(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM webhook_deliveries WHERE state <> 'pending' \
                     AND finished_at < $1 ORDER BY id LIMIT $2",
                )
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                for id in &ids {
                    sqlx::query("DELETE FROM webhook_attempts WHERE delivery_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(ids.len() as u64)
            }

            async fn expired_rotations(&self, now: DateTime<Utc>) -> StoreResult<Vec<(Uuid, Uuid)>> {
                Ok(sqlx::query_as(
                    "UPDATE webhook_endpoints SET previous_until = NULL \
                     WHERE previous_until < $1 RETURNING id, owner_id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn pending_deliveries(&self) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }
        }
    };
}

sql_webhook_store!(SqliteStore, sqlx::Sqlite);
sql_webhook_store!(PostgresStore, sqlx::Postgres);
