//! Fan-out of events to everyone watching an owner's things.
//!
//! Publishers hand over an already-serialized event (JSON text) once; each subscriber gets a
//! cheap clone of the same bytes. Subscriptions are per owner, so an event can only ever reach
//! sockets of the user it belongs to. [`InProcessBus`] serves a single relay node; a NATS or Redis
//! bus implements the same trait by publishing to the broker and feeding local subscribers from
//! it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::body::Bytes;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The JSON text of a `workspace` event.
pub fn workspace_event(w: &crate::store::Workspace) -> Bytes {
    Bytes::from(serde_json::json!({ "type": "workspace", "workspace": w }).to_string())
}

/// How many events a slow subscriber may fall behind before it is told it lagged.
const SUBSCRIBER_BUFFER: usize = 1024;

/// Publishes events to the subscribers of their owner.
pub trait Bus: Send + Sync + 'static {
    /// Sends `event` (JSON text) to every current subscriber of `owner`.
    fn publish(&self, owner: Uuid, event: Bytes);
    /// Subscribes to `owner`'s events from now on. A receiver that lags gets
    /// `RecvError::Lagged` and should resynchronise (e.g. resend a snapshot).
    fn subscribe(&self, owner: Uuid) -> broadcast::Receiver<Bytes>;
}

/// A shared handle to the bus.
pub type DynBus = Arc<dyn Bus>;

/// The single-node bus: one broadcast channel per owner with subscribers.
#[derive(Default)]
pub struct InProcessBus {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<Bytes>>>,
}

impl Bus for InProcessBus {
    fn publish(&self, owner: Uuid, event: Bytes) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.get(&owner)
            && tx.send(event).is_err()
        {
            // Nobody listens any more: forget the channel.
            channels.remove(&owner);
        }
    }

    fn subscribe(&self, owner: Uuid) -> broadcast::Receiver<Bytes> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(owner)
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_only_their_owner() {
        let bus = InProcessBus::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut ra = bus.subscribe(a);
        let mut rb = bus.subscribe(b);
        bus.publish(a, Bytes::from_static(b"for-a"));
        assert_eq!(ra.recv().await.unwrap(), Bytes::from_static(b"for-a"));
        assert!(rb.try_recv().is_err());
    }

    #[tokio::test]
    async fn channels_without_subscribers_are_dropped() {
        let bus = InProcessBus::default();
        let a = Uuid::new_v4();
        drop(bus.subscribe(a));
        bus.publish(a, Bytes::from_static(b"x"));
        assert!(bus.channels.lock().unwrap().is_empty());
    }
}
