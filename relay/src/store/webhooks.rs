//! What the store keeps for outgoing webhooks: endpoints, the event outbox, deliveries and
//! their attempts. Events are written in the same transaction as what they tell of (a task's
//! end: [`super::sql_work`]); the domain fans each out to the endpoints that want it and sends
//! the deliveries in order per endpoint (`crate::domain::webhooks`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{DeliveryState, WebhookEventKind};
use serde::Serialize;
use uuid::Uuid;

use super::StoreResult;

/// An endpoint automations receive events at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Who set it up (its signing secret is kept with their secrets).
    pub owner_id: Uuid,
    /// The project it is for (its events, whoever caused them); none: the owner's own.
    pub project_id: Option<Uuid>,
    /// Where deliveries are posted.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event kinds it wants, space-separated.
    pub events: String,
    /// Whether deliveries are sent.
    pub enabled: bool,
    /// Why it was disabled (by its owner, or by a 410 answer).
    pub disabled_reason: Option<String>,
    /// Until when the secret it had before the last rotation still signs too.
    pub previous_until: Option<DateTime<Utc>>,
    /// When it was set up.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An event waiting to be fanned out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookEvent {
    /// Its id (v7: in the order they happened).
    pub id: Uuid,
    /// What happened.
    #[sqlx(try_from = "String")]
    pub kind: WebhookEventKind,
    /// Whose it is.
    pub owner_id: Uuid,
    /// The project it happened in, if any.
    pub project_id: Option<Uuid>,
    /// For this endpoint only (a test event).
    pub endpoint_id: Option<Uuid>,
    /// What it is about (a task), when the payload is read at fan-out.
    pub subject_id: Option<Uuid>,
    /// The event's data (JSON), or `{}` when it is read from the subject.
    pub data: String,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// One event for one endpoint.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    /// Its id: the `webhook-id` header, the same on every attempt.
    pub id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The event's kind.
    #[sqlx(try_from = "String")]
    pub kind: WebhookEventKind,
    /// The body posted (JSON text).
    pub payload: String,
    /// Where it stands.
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i32,
    /// The attempt the retry schedule counts from (a replay moves it on).
    #[serde(skip)]
    pub schedule_base: i32,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// The last answer's status.
    pub last_status: Option<i32>,
    /// The last attempt's error, when no answer came.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was delivered or failed.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Attempt {
    /// Which attempt (1 first).
    pub attempt: i32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The answer's status; none when no answer came.
    pub status: Option<i32>,
    /// What went wrong, when no answer came.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// A delivery that is due, with where to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Its endpoint.
    pub endpoint: Endpoint,
}

/// What an attempt leaves a delivery as.
#[derive(Debug, Clone, Copy)]
pub enum AttemptOutcome {
    /// Delivered.
    Delivered,
    /// Another attempt at this time.
    Retry(DateTime<Utc>),
    /// No more attempts: the delivery failed, and the endpoint is disabled (it has failed for
    /// days).
    Failed,
    /// The endpoint is gone (410): the delivery failed and the endpoint is disabled.
    Gone,
}

/// Changes to an endpoint: what is `None` stays.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// A new URL.
    pub url: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// The event kinds, space-separated.
    pub events: Option<String>,
    /// Enabled (clearing why it was disabled), or disabled for this reason.
    pub enabled: Option<(bool, Option<String>)>,
}

/// An attempt made, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery: Uuid,
    /// Its endpoint.
    pub endpoint: Uuid,
    /// The attempt.
    pub attempt: Attempt,
    /// What it leaves the delivery as.
    pub outcome: AttemptOutcome,
}

/// Outgoing webhooks' storage.
#[async_trait]
pub trait WebhookStore {
    /// Stores a new endpoint.
    async fn create_endpoint(&self, e: &Endpoint) -> StoreResult<()>;
    /// Endpoint `id`.
    async fn endpoint(&self, id: Uuid) -> StoreResult<Option<Endpoint>>;
    /// The endpoints `user` set up for themself, and those of `projects`, oldest first.
    async fn endpoints(&self, user: Uuid, projects: &[Uuid]) -> StoreResult<Vec<Endpoint>>;
    /// Changes endpoint `id` (only what `change` names, so a concurrent 410 or rotation is not
    /// undone); the endpoint as it is now.
    async fn update_endpoint(
        &self,
        id: Uuid,
        change: &EndpointChange,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Endpoint>>;
    /// Sets until when endpoint `id`'s secret before the last rotation still signs.
    async fn set_previous_until(
        &self,
        id: Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deletes an endpoint with its deliveries.
    async fn delete_endpoint(&self, id: Uuid) -> StoreResult<bool>;
    /// How many endpoints `user` set up.
    async fn count_endpoints(&self, user: Uuid) -> StoreResult<u64>;
    /// Records an event.
    async fn add_event(&self, e: &WebhookEvent) -> StoreResult<()>;
    /// Up to `limit` events waiting to be fanned out, oldest first.
    async fn pending_events(&self, limit: u32) -> StoreResult<Vec<WebhookEvent>>;
    /// The enabled endpoints that may receive `e` (by owner, project or target; the caller
    /// checks the kinds they want).
    async fn endpoints_for_event(&self, e: &WebhookEvent) -> StoreResult<Vec<Endpoint>>;
    /// Replaces event `event` by `deliveries`, in one transaction; false (and nothing written)
    /// when another relay did it first.
    async fn fan_out(&self, event: Uuid, deliveries: &[Delivery]) -> StoreResult<bool>;
    /// Claims up to `limit` enabled endpoints whose oldest pending delivery is due at `now`
    /// and that no worker holds (until `lease`), with that delivery: one worker an endpoint,
    /// so its deliveries go one at a time, in order.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt and what it leaves its delivery (and, when it failed for good or
    /// the endpoint is gone, its endpoint) as; once delivered, takes the endpoint's next
    /// delivery if it is due at `now` (the worker's claim extended to `lease`) and returns it,
    /// else gives the endpoint up. One transaction; nothing is written (and `None` returned)
    /// when the delivery moved on meanwhile (another relay's attempt).
    async fn record_attempt(
        &self,
        attempt: &AttemptRecord,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
    ) -> StoreResult<Option<Delivery>>;
    /// Endpoint `endpoint`'s deliveries, newest first, older than `before` if given.
    async fn deliveries(
        &self,
        endpoint: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Delivery `id` of endpoint `endpoint`, with its attempts.
    async fn delivery(
        &self,
        endpoint: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>>;
    /// Sends delivery `id` again from now (pending, due at `now`); false if it is pending.
    async fn replay_delivery(
        &self,
        endpoint: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deliveries pending, for the metrics.
    async fn pending_deliveries(&self) -> StoreResult<u64>;
    /// Deletes up to `limit` deliveries (with their attempts) that were delivered or failed
    /// before `before`; how many.
    async fn prune_deliveries(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
    /// Endpoints (id, owner) whose rotated-out secret stopped signing before `now`, and
    /// forgets when it did (so each is handed out once).
    async fn expired_rotations(&self, now: DateTime<Utc>) -> StoreResult<Vec<(Uuid, Uuid)>>;
}
