//! The delivery loop: fans recorded events out to the endpoints that want them, then claims
//! endpoints whose oldest pending delivery is due and hands each to a worker, which sends it
//! (signed, with a timeout, no redirects, no proxy) and, once it is delivered, goes on with the
//! endpoint's next one, claimed in the same transaction that records the attempt: one at a
//! time per endpoint, so a receiver gets its events in order, and up to 32 endpoints at once,
//! so a slow one holds up no other.
//!
//! A failed attempt is tried again on the specification's schedule (5 s, 5 min, 30 min, 2 h,
//! 5 h, 10 h, 14 h, 20 h, 24 h after the one before, each ±20% at random); a 429, 502 or 504
//! answer, or any `Retry-After`, waits at least as long as it asks (up to a day). A delivery
//! out of attempts has failed, and its endpoint, failing for days, is disabled; a 410 answer
//! disables it at once. Several relays share the work: an endpoint is claimed by one worker
//! until a lease runs out (so a relay that dies mid-attempt leaves it to another, which sends
//! the delivery again: receivers drop duplicates by `webhook-id`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{DeliveryState, WebhookEventKind};
use uuid::Uuid;

use super::{kinds, payload, secret_name, sign, target};
use crate::{
    domain::{DomainResult, secrets::Secrets},
    metrics::Metrics,
    store::{
        DynStore,
        webhooks::{Attempt, AttemptOutcome, AttemptRecord, Delivery, DueDelivery, WebhookEvent},
    },
};

/// Events fanned out per round.
const EVENTS_PER_ROUND: u32 = 200;
/// Deliveries claimed per round (each of a different endpoint).
const DELIVERIES_PER_ROUND: u32 = 64;
/// Endpoints served at once.
const IN_FLIGHT: usize = 32;
/// How often the delivery log is swept.
const SWEEP: Duration = Duration::from_secs(3600);
/// Longest wait a `Retry-After` gets.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The waits before the second, third… attempt; a delivery gets one more attempt than
    /// there are waits.
    pub retry_delays: Vec<Duration>,
    /// How long an attempt may take.
    pub timeout: Duration,
    /// How often the loop looks for work when nothing woke it.
    pub poll: Duration,
    /// Whether private and loopback targets are allowed.
    pub allow_private: bool,
    /// How long delivered and failed deliveries stay in the log.
    pub keep: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_delays: [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            timeout: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            allow_private: false,
            keep: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The loop that delivers outgoing webhooks.
pub struct Dispatcher {
    store: DynStore,
    secrets: Arc<Secrets>,
    /// None if it could not be built: every attempt fails, and readiness says so.
    http: Option<reqwest::Client>,
    config: DeliveryConfig,
    metrics: Arc<Metrics>,
    wake: Arc<tokio::sync::Notify>,
    running: AtomicBool,
    /// Attempts in flight at once (one endpoint's worker holds one).
    slots: Arc<tokio::sync::Semaphore>,
}

/// What one attempt got.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

/// The wait a `Retry-After` value asks for: seconds, or an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let wait = match value.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => (DateTime::parse_from_rfc2822(value.trim())
            .ok()?
            .with_timezone(&Utc)
            - now)
            .to_std()
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

impl Dispatcher {
    /// A dispatcher over `store`, opening endpoint secrets with `secrets`; `wake` starts a
    /// round at once.
    pub fn new(
        store: DynStore,
        secrets: Arc<Secrets>,
        config: DeliveryConfig,
        metrics: Arc<Metrics>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        let mut http = reqwest::Client::builder()
            // A proxy would resolve the target itself, past the address check.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("Fulcrum-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            http = http.dns_resolver(Arc::new(target::PublicOnly));
        }
        Self {
            store,
            secrets,
            http: http
                .build()
                .inspect_err(
                    |e| tracing::error!(error = %e, "the webhook HTTP client cannot start"),
                )
                .ok(),
            config,
            metrics,
            wake,
            running: AtomicBool::new(false),
            slots: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        }
    }

    /// Starts a round now: an event was recorded on this node.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// `running` while the loop runs, else `stopped` (for readiness).
    pub fn status(&self) -> &'static str {
        if self.http.is_none() {
            "no_http_client"
        } else if self.running.load(Ordering::Relaxed) {
            "running"
        } else {
            "stopped"
        }
    }

    /// Deletes what the log no longer keeps (in batches, at most a million rows a sweep), and
    /// the rotated-out secrets that stopped signing.
    async fn sweep(&self) -> DomainResult<()> {
        let before = Utc::now() - chrono::Duration::from_std(self.config.keep).unwrap_or_default();
        for _ in 0..1000 {
            if self.store.prune_deliveries(before, 1000).await? < 1000 {
                break;
            }
        }
        for (endpoint, owner) in self.store.expired_rotations(Utc::now()).await? {
            self.secrets
                .remove_for(owner, &secret_name(endpoint, true))
                .await?;
        }
        Ok(())
    }

    /// Delivers until `shutdown` says stop; sweeps the log at start and then hourly.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        self.running.store(true, Ordering::Relaxed);
        let mut swept: Option<Instant> = None;
        while !*shutdown.borrow() {
            if swept.is_none_or(|t| t.elapsed() >= SWEEP) {
                swept = Some(Instant::now());
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "cannot sweep the webhook delivery log");
                }
            }
            let busy = match self.round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery round failed");
                    0
                }
            };
            if busy > 0 {
                continue;
            }
            // Idle: the pending gauge is counted here, not on every busy round.
            match self.store.pending_deliveries().await {
                Ok(n) => self.metrics.webhook_pending(n),
                Err(e) => tracing::warn!(error = %e, "cannot count pending webhook deliveries"),
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
        self.running.store(false, Ordering::Relaxed);
    }

    /// When a claimed attempt lapses if its relay is gone: past the request's timeout.
    fn lease(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.config.timeout * 2).unwrap_or_default()
            + chrono::Duration::seconds(30)
    }

    /// One round: fans events out, then claims the deliveries that are due (as many as there
    /// are free slots) and hands each to a worker of its endpoint; how much it did.
    async fn round(self: &Arc<Self>) -> DomainResult<usize> {
        let events = self.fan_out().await?;
        let free = self
            .slots
            .available_permits()
            .min(DELIVERIES_PER_ROUND as usize);
        let mut claimed = 0;
        if free > 0 {
            for d in self
                .store
                .claim_due(Utc::now(), self.lease(), free as u32)
                .await?
            {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                claimed += 1;
                tokio::spawn(self.clone().work(d, permit));
            }
        }
        Ok(events + claimed)
    }

    /// An endpoint's worker: attempts its delivery `d`, and while they are delivered (or out
    /// of attempts), goes on with the endpoint's next one, claimed in the same transaction that
    /// records the attempt before it (one commit a delivery, in order).
    async fn work(self: Arc<Self>, mut d: DueDelivery, _slot: tokio::sync::OwnedSemaphorePermit) {
        loop {
            let (record, event_at) = self.attempt(&d).await;
            let recorded = self
                .store
                .record_attempt(&record, Utc::now(), self.lease())
                .await;
            self.metrics.webhook_attempt(match record.outcome {
                AttemptOutcome::Delivered => {
                    self.metrics.webhook_delivered(
                        (Utc::now() - event_at)
                            .to_std()
                            .unwrap_or_default()
                            .as_secs_f64(),
                    );
                    "delivered"
                }
                AttemptOutcome::Retry(at) => {
                    // Wake the loop when it is due (other relays find it by polling).
                    let wake = self.wake.clone();
                    let wait = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        wake.notify_one();
                    });
                    "retry"
                }
                AttemptOutcome::Failed => "failed",
                AttemptOutcome::Gone => {
                    tracing::info!(endpoint = %record.endpoint, "webhook endpoint answered 410: disabled");
                    "gone"
                }
            });
            match recorded {
                Ok(Some(delivery)) => match self.store.endpoint(delivery.endpoint_id).await {
                    Ok(Some(endpoint)) => d = DueDelivery { delivery, endpoint },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a webhook endpoint");
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record a webhook attempt");
                    break;
                }
            }
        }
        // A slot is free: the loop may claim more.
        self.wake.notify_one();
    }

    /// The payload data of event `e`: a task's as the API shows it, else what was recorded.
    async fn data(&self, e: &WebhookEvent) -> DomainResult<serde_json::Value> {
        if let (WebhookEventKind::TaskFinished, Some(task)) = (e.kind, e.subject_id)
            && let Some(task) = self.store.get_task(e.owner_id, task).await?
        {
            return Ok(serde_json::to_value(task).unwrap_or_default());
        }
        Ok(serde_json::from_str(&e.data).unwrap_or_default())
    }

    /// Turns each recorded event into one delivery per endpoint that wants it; how many it
    /// did (an event that fails is logged and tried again next round).
    async fn fan_out(&self) -> DomainResult<usize> {
        let events = self.store.pending_events(EVENTS_PER_ROUND).await?;
        let mut done = 0;
        for e in &events {
            match self.fan_out_one(e).await {
                Ok(()) => done += 1,
                Err(err) => {
                    tracing::warn!(error = %err, event = %e.id, "cannot fan a webhook event out");
                }
            }
        }
        Ok(done)
    }

    async fn fan_out_one(&self, e: &WebhookEvent) -> DomainResult<()> {
        let endpoints = self.store.endpoints_for_event(e).await?;
        let now = Utc::now();
        let body = payload(e.kind, e.created_at, self.data(e).await?);
        let deliveries: Vec<Delivery> = endpoints
            .iter()
            .filter(|ep| e.endpoint_id.is_some() || kinds(&ep.events).contains(&e.kind))
            .map(|ep| Delivery {
                id: Uuid::now_v7(),
                endpoint_id: ep.id,
                event_id: e.id,
                kind: e.kind,
                payload: body.clone(),
                state: DeliveryState::Pending,
                attempts: 0,
                schedule_base: 0,
                next_attempt_at: now,
                last_status: None,
                last_error: None,
                created_at: e.created_at,
                finished_at: None,
            })
            .collect();
        if self.store.fan_out(e.id, &deliveries).await? {
            self.metrics.webhook_events(1);
        }
        Ok(())
    }

    /// The keys that sign for endpoint `id` of `owner`: its secret, and the one before while
    /// it still signs.
    async fn keys(&self, d: &DueDelivery, now: DateTime<Utc>) -> DomainResult<Vec<Vec<u8>>> {
        let (id, owner) = (d.endpoint.id, d.endpoint.owner_id);
        let mut keys = Vec::with_capacity(2);
        let current = self.secrets.open(owner, &secret_name(id, false)).await?;
        keys.extend(sign::key(&String::from_utf8_lossy(current.expose())));
        if d.endpoint.previous_until.is_some_and(|t| t > now)
            && let Ok(previous) = self.secrets.open(owner, &secret_name(id, true)).await
        {
            keys.extend(sign::key(&String::from_utf8_lossy(previous.expose())));
        }
        Ok(keys)
    }

    /// Posts one delivery.
    async fn post(&self, d: &DueDelivery, keys: &[Vec<u8>], now: DateTime<Utc>) -> Answer {
        let failed = |error: String| Answer {
            status: None,
            error: Some(error),
            retry_after: None,
        };
        // A literal address is not resolved, so it is checked here (the URL was checked when
        // saved, but the config may have changed since).
        if let Err(e) = target::check(&d.endpoint.url, self.config.allow_private) {
            return failed(e.to_string());
        }
        let id = d.delivery.id.to_string();
        let timestamp = now.timestamp();
        let body = d.delivery.payload.clone().into_bytes();
        let signature = sign::header(keys, &id, timestamp, &body);
        let Some(http) = &self.http else {
            return failed("the relay's webhook HTTP client could not start".into());
        };
        let sent = http
            .post(&d.endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => Answer {
                status: Some(resp.status().as_u16()),
                error: None,
                retry_after: resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, now)),
            },
            // Without the URL: it is the endpoint's, shown in the endpoint already.
            Err(e) => failed(e.without_url().to_string()),
        }
    }

    /// Makes one attempt at a claimed delivery; what to record, and when its event happened.
    async fn attempt(&self, d: &DueDelivery) -> (AttemptRecord, DateTime<Utc>) {
        let now = Utc::now();
        let started = Instant::now();
        let answer = match self.keys(d, now).await {
            Ok(keys) if !keys.is_empty() => self.post(d, &keys, now).await,
            Ok(_) | Err(_) => Answer {
                status: None,
                error: Some("the endpoint's signing secret cannot be opened".into()),
                retry_after: None,
            },
        };
        let number = d.delivery.attempts + 1;
        let attempt = Attempt {
            attempt: number,
            at: now,
            status: answer.status.map(i32::from),
            error: answer.error.clone(),
            duration_ms: started.elapsed().as_millis() as i64,
        };
        let record = AttemptRecord {
            delivery: d.delivery.id,
            endpoint: d.endpoint.id,
            outcome: self.outcome(
                &answer,
                (number - d.delivery.schedule_base).max(1) as usize,
                now,
            ),
            attempt,
        };
        (record, d.delivery.created_at)
    }

    /// What attempt `number` (counted from the schedule's base) leaves its delivery as.
    fn outcome(&self, a: &Answer, number: usize, now: DateTime<Utc>) -> AttemptOutcome {
        match a.status {
            Some(s) if (200..300).contains(&s) => return AttemptOutcome::Delivered,
            Some(410) => return AttemptOutcome::Gone,
            _ => {}
        }
        let Some(base) = self.config.retry_delays.get(number - 1) else {
            return AttemptOutcome::Failed;
        };
        let mut wait = base.mul_f64(0.8 + 0.4 * rand::random::<f64>());
        if let Some(asked) = a.retry_after {
            wait = wait.max(asked);
        }
        AttemptOutcome::Retry(now + chrono::Duration::from_std(wait).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = Utc::now();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("99999999", now),
            Some(MAX_RETRY_AFTER),
            "capped"
        );
        let later = (now + chrono::Duration::seconds(120)).to_rfc2822();
        let got = retry_after(&later, now).unwrap();
        assert!((119..=120).contains(&got.as_secs()), "{got:?}");
        assert_eq!(retry_after("soon", now), None);
    }
}
