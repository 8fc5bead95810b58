//! Outgoing webhooks, for automations such as n8n: endpoints a user sets up for their own
//! things, or a project's owners and maintainers for the project's, each with the event kinds
//! it wants. Every message is signed as the Standard Webhooks specification says ([`sign`]),
//! with a secret shown once (at creation and at rotation; a rotated secret keeps signing too for
//! [`ROTATION_OVERLAP`]) and kept sealed with its owner's secrets.
//!
//! Delivery is durable: an event is written in the same transaction as what it tells of (the
//! outbox), fanned out to one delivery per endpoint, and sent in order per endpoint, retried on
//! the specification's schedule ([`deliver`]). Every attempt is logged; a delivery can be sent
//! again. Targets inside the relay's network are refused unless the config allows them
//! ([`target`]).

pub mod deliver;
pub mod sign;
pub mod target;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{DeliveryState, Role, WebhookEventKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
    projects::Projects,
    secrets::Secrets,
};
use crate::{
    secrets::Plain,
    store::{
        DynStore, Scope,
        webhooks::{Attempt, Delivery, Endpoint, EndpointChange, WebhookEvent},
    },
};

/// Most endpoints one user sets up.
const MAX_ENDPOINTS: u64 = 50;
/// Longest description.
const MAX_DESCRIPTION: usize = 500;
/// How long a rotated secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);
/// Most deliveries in one page of the log.
const MAX_PAGE: u32 = 200;
/// The roles that manage a project's webhooks.
const MANAGERS: &[Role] = &[Role::Owner, Role::Maintainer];

/// The secret of endpoint `id` (and the one before its last rotation), by name among its
/// owner's secrets.
fn secret_name(id: Uuid, previous: bool) -> String {
    if previous {
        format!("webhook/{id}/previous")
    } else {
        format!("webhook/{id}")
    }
}

/// An endpoint to set up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Where to post: an `http` or `https` URL of at most 2,000 characters, without
    /// credentials; a public address unless the relay allows private ones.
    pub url: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The event kinds it wants (at least one).
    pub events: Vec<WebhookEventKind>,
    /// For this project's events (its owners and maintainers set it up); none: the caller's
    /// own.
    #[serde(default)]
    pub project_id: Option<Uuid>,
}

/// Changes to an endpoint; what is absent stays.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// A new URL.
    pub url: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// The event kinds it wants.
    pub events: Option<Vec<WebhookEventKind>>,
    /// Enables or disables it (enabling clears why it was disabled).
    pub enabled: Option<bool>,
}

/// An endpoint as its managers see it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// Its id.
    pub id: Uuid,
    /// The project it is for; none: its owner's own events.
    pub project_id: Option<Uuid>,
    /// Where deliveries are posted.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event kinds it wants.
    pub events: Vec<WebhookEventKind>,
    /// Whether deliveries are sent.
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs too.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// When it was set up.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id,
            project_id: e.project_id,
            url: e.url.clone(),
            description: e.description.clone(),
            events: kinds(&e.events),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            previous_secret_until: e.previous_until.filter(|t| *t > Utc::now()),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// Its signing secret (`whsec_…`), for the receiver to check signatures with.
    pub secret: String,
}

impl std::fmt::Debug for EndpointWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointWithSecret")
            .field("endpoint", &self.endpoint)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Every attempt, first first.
    pub attempt_log: Vec<Attempt>,
}

/// The event kinds of a stored list (names it does not know are skipped).
fn kinds(list: &str) -> Vec<WebhookEventKind> {
    list.split_whitespace()
        .filter_map(WebhookEventKind::parse)
        .collect()
}

fn kind_list(events: &[WebhookEventKind]) -> DomainResult<String> {
    if events.is_empty() {
        return Err(DomainError::Invalid(
            "events names at least one event kind".into(),
        ));
    }
    let mut names: Vec<&str> = events.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    Ok(names.join(" "))
}

fn check_description(d: &str) -> DomainResult<()> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(DomainError::Invalid(format!(
            "a description is at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

/// The Standard Webhooks payload of an event: its kind, when it happened, and its data.
pub fn payload(kind: WebhookEventKind, at: DateTime<Utc>, data: serde_json::Value) -> String {
    serde_json::json!({
        "type": kind.as_str(),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// Outgoing webhooks: endpoints, their secrets, and their delivery logs.
pub struct Webhooks {
    store: DynStore,
    projects: Arc<Projects>,
    secrets: Arc<Secrets>,
    allow_private: bool,
    wake: Arc<tokio::sync::Notify>,
}

impl Webhooks {
    /// Webhooks over `store`; `allow_private`: whether endpoints may be private addresses;
    /// `wake` is notified when an event is recorded here.
    pub fn new(
        store: DynStore,
        projects: Arc<Projects>,
        secrets: Arc<Secrets>,
        allow_private: bool,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            store,
            projects,
            secrets,
            allow_private,
            wake,
        }
    }

    /// Endpoint `id` if the caller manages it: its owner for a personal one, an owner or
    /// maintainer of its project for a project's (`write`: with the `write` scope).
    async fn managed(&self, caller: Caller, id: Uuid, write: bool) -> DomainResult<Endpoint> {
        caller.need(if write { Scope::Write } else { Scope::Read })?;
        if let super::Limit::Workspace(_) = caller.grant.limit {
            return Err(DomainError::Denied {
                code: "token_limited",
                message: "this token is limited to one workspace, so it cannot manage webhooks"
                    .into(),
            });
        }
        let e = self
            .store
            .endpoint(id)
            .await?
            .ok_or(DomainError::NotFound("webhook endpoint"))?;
        match e.project_id {
            None if e.owner_id == caller.user => {
                caller.need_unlimited("manage personal webhooks")?;
            }
            None => return Err(DomainError::NotFound("webhook endpoint")),
            Some(p) => {
                let project = self
                    .projects
                    .visible(caller, p)
                    .await
                    .map_err(|_| DomainError::NotFound("webhook endpoint"))?;
                if !MANAGERS.contains(&project.role) {
                    return Err(DomainError::NotFound("webhook endpoint"));
                }
            }
        }
        Ok(e)
    }

    /// Sets up an endpoint; its secret is in the answer, this once.
    pub async fn create(
        &self,
        caller: Caller,
        input: EndpointInput,
    ) -> DomainResult<EndpointWithSecret> {
        caller.need(Scope::Write)?;
        match input.project_id {
            Some(p) => {
                self.projects
                    .managed(caller, p, MANAGERS, "set up its webhooks")
                    .await?;
            }
            None => caller.need_unlimited("set up personal webhooks")?,
        }
        let url = target::check(&input.url, self.allow_private)
            .map_err(|e| DomainError::Invalid(e.to_string()))?;
        check_description(&input.description)?;
        let events = kind_list(&input.events)?;
        if self.store.count_endpoints(caller.user).await? >= MAX_ENDPOINTS {
            return Err(DomainError::Invalid(format!(
                "a user sets up at most {MAX_ENDPOINTS} webhook endpoints"
            )));
        }
        let now = Utc::now();
        let endpoint = Endpoint {
            id: Uuid::now_v7(),
            owner_id: caller.user,
            project_id: input.project_id,
            url: url.to_string(),
            description: input.description,
            events,
            enabled: true,
            disabled_reason: None,
            previous_until: None,
            created_at: now,
            updated_at: now,
        };
        let secret = sign::new_secret();
        self.secrets
            .seal_for(
                endpoint.owner_id,
                &secret_name(endpoint.id, false),
                Plain::new(secret.clone().into_bytes()),
            )
            .await?;
        if let Err(e) = self.store.create_endpoint(&endpoint).await {
            let _ = self
                .secrets
                .remove_for(endpoint.owner_id, &secret_name(endpoint.id, false))
                .await;
            return Err(e.into());
        }
        audit::record(Record {
            caller,
            action: "webhook.create",
            subject: endpoint.id,
        });
        Ok(EndpointWithSecret {
            endpoint: (&endpoint).into(),
            secret,
        })
    }

    /// The endpoints the caller manages: their own, and those of the projects they own or
    /// maintain.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<EndpointView>> {
        caller.need(Scope::Read)?;
        let projects: Vec<Uuid> = self
            .projects
            .list(caller)
            .await?
            .into_iter()
            .filter(|p| MANAGERS.contains(&p.role))
            .map(|p| p.id)
            .collect();
        let mut all = match caller.grant.limit {
            super::Limit::Workspace(_) => Vec::new(),
            _ => self.store.endpoints(caller.user, &projects).await?,
        };
        if !matches!(caller.grant.limit, super::Limit::None) {
            all.retain(|e| e.project_id.is_some());
        }
        Ok(all.iter().map(EndpointView::from).collect())
    }

    /// Endpoint `id`.
    pub async fn get(&self, caller: Caller, id: Uuid) -> DomainResult<EndpointView> {
        Ok((&self.managed(caller, id, false).await?).into())
    }

    /// Changes endpoint `id` (only what the patch names).
    pub async fn update(
        &self,
        caller: Caller,
        id: Uuid,
        patch: EndpointPatch,
    ) -> DomainResult<EndpointView> {
        self.managed(caller, id, true).await?;
        let mut change = EndpointChange::default();
        if let Some(url) = patch.url {
            change.url = Some(
                target::check(&url, self.allow_private)
                    .map_err(|e| DomainError::Invalid(e.to_string()))?
                    .to_string(),
            );
        }
        if let Some(d) = patch.description {
            check_description(&d)?;
            change.description = Some(d);
        }
        if let Some(events) = patch.events {
            change.events = Some(kind_list(&events)?);
        }
        change.enabled = patch
            .enabled
            .map(|on| (on, (!on).then(|| "disabled by a manager".to_owned())));
        let e = self
            .store
            .update_endpoint(id, &change, Utc::now())
            .await?
            .ok_or(DomainError::NotFound("webhook endpoint"))?;
        audit::record(Record {
            caller,
            action: "webhook.update",
            subject: id,
        });
        self.wake.notify_one();
        Ok((&e).into())
    }

    /// Deletes endpoint `id`, its deliveries and its secrets.
    pub async fn delete(&self, caller: Caller, id: Uuid) -> DomainResult<()> {
        let e = self.managed(caller, id, true).await?;
        if !self.store.delete_endpoint(id).await? {
            return Err(DomainError::NotFound("webhook endpoint"));
        }
        for previous in [false, true] {
            let _ = self
                .secrets
                .remove_for(e.owner_id, &secret_name(id, previous))
                .await;
        }
        audit::record(Record {
            caller,
            action: "webhook.delete",
            subject: id,
        });
        Ok(())
    }

    /// Gives endpoint `id` a new secret; the old one keeps signing too for
    /// [`ROTATION_OVERLAP`], so the receiver can switch without losing a message. The old
    /// secret is kept as the previous one and its window saved before the new one replaces it,
    /// so a failure part way leaves the old secret signing.
    pub async fn rotate(&self, caller: Caller, id: Uuid) -> DomainResult<EndpointWithSecret> {
        let e = self.managed(caller, id, true).await?;
        let old = self
            .secrets
            .open(e.owner_id, &secret_name(id, false))
            .await?;
        self.secrets
            .seal_for(e.owner_id, &secret_name(id, true), old)
            .await?;
        let now = Utc::now();
        if !self
            .store
            .set_previous_until(id, now + ROTATION_OVERLAP, now)
            .await?
        {
            return Err(DomainError::NotFound("webhook endpoint"));
        }
        let secret = sign::new_secret();
        self.secrets
            .seal_for(
                e.owner_id,
                &secret_name(id, false),
                Plain::new(secret.clone().into_bytes()),
            )
            .await?;
        audit::record(Record {
            caller,
            action: "webhook.rotate",
            subject: id,
        });
        let e = self
            .store
            .endpoint(id)
            .await?
            .ok_or(DomainError::NotFound("webhook endpoint"))?;
        Ok(EndpointWithSecret {
            endpoint: (&e).into(),
            secret,
        })
    }

    /// Sends endpoint `id` a `webhook_test` event (whatever kinds it wants); the event's id.
    pub async fn test(&self, caller: Caller, id: Uuid) -> DomainResult<Uuid> {
        let e = self.managed(caller, id, true).await?;
        if !e.enabled {
            return Err(DomainError::Conflict {
                code: "endpoint_disabled",
                message: "this endpoint is disabled; enable it first".into(),
            });
        }
        let event = WebhookEvent {
            id: Uuid::now_v7(),
            kind: WebhookEventKind::WebhookTest,
            owner_id: e.owner_id,
            project_id: e.project_id,
            endpoint_id: Some(id),
            subject_id: None,
            data: serde_json::json!({ "endpoint_id": id }).to_string(),
            created_at: Utc::now(),
        };
        self.store.add_event(&event).await?;
        self.wake.notify_one();
        Ok(event.id)
    }

    /// Endpoint `id`'s deliveries, newest first (at most `limit`, older than `before`).
    pub async fn deliveries(
        &self,
        caller: Caller,
        id: Uuid,
        before: Option<Uuid>,
        limit: Option<u32>,
    ) -> DomainResult<Vec<Delivery>> {
        self.managed(caller, id, false).await?;
        let limit = limit.unwrap_or(50).clamp(1, MAX_PAGE);
        Ok(self.store.deliveries(id, before, limit).await?)
    }

    /// Delivery `delivery` of endpoint `id`, with its attempts.
    pub async fn delivery(
        &self,
        caller: Caller,
        id: Uuid,
        delivery: Uuid,
    ) -> DomainResult<DeliveryDetail> {
        self.managed(caller, id, false).await?;
        let (delivery, attempts) = self
            .store
            .delivery(id, delivery)
            .await?
            .ok_or(DomainError::NotFound("delivery"))?;
        Ok(DeliveryDetail {
            delivery,
            attempt_log: attempts,
        })
    }

    /// Sends delivery `delivery` of endpoint `id` again (with the same `webhook-id`, so a
    /// receiver that has it already can tell), in its place in the endpoint's order.
    pub async fn replay(&self, caller: Caller, id: Uuid, delivery: Uuid) -> DomainResult<()> {
        self.managed(caller, id, true).await?;
        if !self.store.replay_delivery(id, delivery, Utc::now()).await? {
            return match self.store.delivery(id, delivery).await? {
                None => Err(DomainError::NotFound("delivery")),
                Some((d, _)) if d.state == DeliveryState::Pending => Err(DomainError::Conflict {
                    code: "delivery_pending",
                    message: "this delivery is still being sent".into(),
                }),
                Some(_) => Err(DomainError::NotFound("delivery")),
            };
        }
        audit::record(Record {
            caller,
            action: "webhook.replay",
            subject: delivery,
        });
        self.wake.notify_one();
        Ok(())
    }
}
