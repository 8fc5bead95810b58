//! Tasks on the relay, around the domain's `Tasks` service (which records and dispatches them):
//! telling everyone who may see a task that it changed ([`TaskFeed`]), following and reading
//! logs, and declaring tasks `lost` when their agent stays away.
//!
//! Dispatch is at most once per agent and at least once overall: a task is recorded as
//! `dispatched` and sent to its workspace's live session; every new session of that workspace
//! gets all its tasks that have not started again (the agent ignores ids it already has). A task
//! whose agent is gone longer than the lease ([`crate::config::AgentConfig::task_lease_secs`]) is
//! `lost`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::body::Bytes;
use chrono::Utc;
use fulcrum_protocol::{TaskSpec, tasks::MAX_TIMEOUT_S};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    access::AccessChanges,
    bus::DynBus,
    store::{DynStore, Store, StoreResult, Task},
};

/// What the relay sends the agent for a recorded task; `grace_s` is how long the agent waits
/// between SIGTERM and SIGKILL.
pub fn spec(task: &Task, grace_s: u64) -> TaskSpec {
    TaskSpec {
        task_id: task.id,
        repo: task.repo.clone(),
        run: task.run(),
        env: task.env.clone(),
        timeout_s: (task.timeout_s.max(1) as u64).min(MAX_TIMEOUT_S),
        grace_s,
        log_limit: task.log_limit.max(0) as u64,
        number: task.number.and_then(|n| u64::try_from(n).ok()),
    }
}

/// The JSON text of a `task` event.
pub fn event(task: &Task) -> Bytes {
    Bytes::from(json!({ "type": "task", "task": task }).to_string())
}

/// A task on its way to an agent, with who may see it, so the session can show it started the
/// moment the agent says so, before that is committed (the feed never waits for the disk).
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// What the agent gets.
    pub spec: TaskSpec,
    /// The task as recorded.
    pub task: Task,
    /// The users who may see it, as of `epoch`.
    pub audience: Vec<Uuid>,
    /// The project's membership epoch when `audience` was read (see [`crate::access`]).
    pub epoch: u64,
}

/// Where task changes go out: to every user who may see the task, to its log followers, and,
/// ahead of their commit, to REST readers (through [`LiveTasks`]).
pub struct TaskFeed {
    store: DynStore,
    bus: DynBus,
    access: Arc<AccessChanges>,
    /// Where log followers wait for logs to grow.
    pub logs: LogHub,
    /// Task states on the feed ahead of their commit.
    pub live: LiveTasks,
}

impl TaskFeed {
    /// A feed publishing on `bus`, reading audiences from `store` under `access`'s epochs.
    pub fn new(store: DynStore, bus: DynBus, access: Arc<AccessChanges>) -> Self {
        Self {
            store,
            bus,
            access,
            logs: LogHub::default(),
            live: LiveTasks::default(),
        }
    }

    /// The membership epoch of `project` now (see [`crate::access`]).
    pub fn epoch(&self, project: Option<Uuid>) -> u64 {
        self.access.epoch(project)
    }

    /// Tells `audience` how `task` is now.
    pub fn publish_to(&self, task: &Task, audience: &[Uuid]) {
        let event = event(task);
        for user in audience {
            self.bus.publish(*user, event.clone());
        }
        if task.is_finished() {
            self.logs.finished(task.id);
        }
    }

    /// Tells `audience` how `task` is now, if the project's members did not change since the
    /// audience was read at `epoch`; else tells who may see it now (one lookup).
    pub async fn publish_live(&self, task: &Task, audience: &[Uuid], epoch: u64) {
        if self.access.epoch(task.project_id) == epoch {
            return self.publish_to(task, audience);
        }
        match self.store.task_with_audience(task.id).await {
            Ok(Some((_, now))) => self.publish_to(task, &now),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, task = %task.id, "cannot publish a task change"),
        }
    }

    /// Tells everyone who may see task `id` how it is now (as stored).
    pub async fn publish(&self, id: Uuid) {
        match self.store.task_with_audience(id).await {
            Ok(Some((task, audience))) => self.publish_to(&task, &audience),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, task = %id, "cannot publish a task change"),
        }
    }
}

/// Task states shown on the feed before they are committed, so REST answers agree with the feed
/// (like the live workspace views). An entry lives from the live event to the commit after it.
#[derive(Default)]
pub struct LiveTasks(Mutex<HashMap<Uuid, Task>>);

impl LiveTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Task>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a state shown ahead of its commit.
    pub fn ahead(&self, task: Task) {
        self.lock().insert(task.id, task);
    }

    /// The commit caught up.
    pub fn committed(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// Replaces tasks that have a newer live state. Callers pass only tasks the user may see.
    pub fn overlay(&self, tasks: &mut [Task]) {
        let live = self.lock();
        if live.is_empty() {
            return;
        }
        for t in tasks.iter_mut() {
            if let Some(newer) = live.get(&t.id)
                && !t.is_finished()
            {
                *t = newer.clone();
            }
        }
    }
}

/// Where followers wait for a task's log to grow: the stored length per task, and whether the
/// task ended. Entries exist only while someone follows.
#[derive(Default)]
pub struct LogHub {
    watchers: Mutex<HashMap<Uuid, watch::Sender<LogProgress>>>,
}

/// How far a task's log is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogProgress {
    /// Bytes stored.
    pub stored: u64,
    /// The task reached a final state.
    pub finished: bool,
}

impl LogHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, watch::Sender<LogProgress>>> {
        self.watchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for changes to `task`'s log.
    pub fn subscribe(&self, task: Uuid) -> watch::Receiver<LogProgress> {
        self.lock()
            .entry(task)
            .or_insert_with(|| watch::channel(LogProgress::default()).0)
            .subscribe()
    }

    /// Records that `task`'s log is stored through byte `stored`.
    pub fn grew(&self, task: Uuid, stored: u64) {
        self.update(task, |p| p.stored = p.stored.max(stored));
    }

    /// Records that `task` ended.
    pub fn finished(&self, task: Uuid) {
        self.update(task, |p| p.finished = true);
    }

    fn update(&self, task: Uuid, f: impl FnOnce(&mut LogProgress)) {
        let mut watchers = self.lock();
        if let Some(tx) = watchers.get(&task) {
            if tx.receiver_count() == 0 {
                watchers.remove(&task);
            } else {
                tx.send_modify(f);
            }
        }
    }
}

/// The largest log offset a reader may ask for (2^62): far past any log, and far enough from
/// the databases' 64-bit limit that no offset plus read length overflows it.
pub const MAX_LOG_OFFSET: u64 = 1 << 62;

/// Most bytes one log read returns.
pub const MAX_LOG_READ: usize = 4 * 1024 * 1024;

/// A slice of a task's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSlice {
    /// Where it starts.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Reads up to `limit` bytes of `task`'s log (a task the caller could see) from `offset`,
/// exactly from that byte.
pub async fn read_log(
    store: &dyn Store,
    task: &Task,
    offset: u64,
    limit: usize,
) -> StoreResult<LogSlice> {
    let limit = limit.clamp(1, MAX_LOG_READ);
    let chunks = store.read_log(task, offset, limit).await?;
    let mut data = Vec::new();
    let mut at = offset;
    for (start, bytes) in chunks {
        if start > at {
            break; // A gap (should not happen): stop before it.
        }
        let skip = (at - start) as usize;
        if skip >= bytes.len() {
            continue;
        }
        let take = (bytes.len() - skip).min(limit - data.len());
        data.extend_from_slice(&bytes[skip..skip + take]);
        at += take as u64;
        if data.len() >= limit {
            break;
        }
    }
    Ok(LogSlice { offset, data })
}

/// Declares lost the tasks of workspaces gone longer than `lease`, every so often, until
/// `shutdown`.
pub async fn lease_sweep(
    store: DynStore,
    feed: Arc<TaskFeed>,
    lease: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let lease = lease.max(Duration::from_secs(1));
    let every = (lease / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    let message = format!(
        "the workspace's agent was gone for longer than the {} s lease",
        lease.as_secs()
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Utc::now();
                let cutoff = now - chrono::Duration::from_std(lease).unwrap_or_default();
                match store.mark_lost_tasks(cutoff, now, &message).await {
                    Ok(ids) => {
                        for id in ids {
                            tracing::warn!(task = %id, "task lost: its agent did not come back in time");
                            feed.publish(id).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot check task leases"),
                }
            }
            _ = crate::state::stopping(&mut shutdown) => return,
        }
    }
}
