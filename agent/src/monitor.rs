//! Keeps the repositories' state current and tells the link what changed.
//!
//! Finds the repositories under the root, reads each one's state, then waits on the watcher: a
//! change re-reads that repository and forwards its state only if it differs from the last one
//! sent. A directory appearing or vanishing triggers a rescan. A slow full refresh every few
//! minutes catches anything the watcher could not see (e.g. an upstream moved by a fetch on a
//! network file system). Git work runs on the blocking pool, never on the async workers.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::sync::{mpsc, watch};

use crate::{
    link::{Update, stopping},
    repos::{self, Changed, FullStatus, RepoWatcher, WatchEvent},
    status::SharedStatus,
};

/// How deep below the root repositories are looked for.
pub const MAX_DEPTH: usize = 4;
/// Most repositories watched.
pub const MAX_REPOS: usize = 64;
/// Quiet time before a changed repository is re-read.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Full refresh period.
const REFRESH: Duration = Duration::from_secs(300);

/// The monitor task.
pub struct Monitor {
    root: PathBuf,
    status: SharedStatus,
    updates: mpsc::Sender<Update>,
    shutdown: watch::Receiver<bool>,
    /// Last state sent per work tree, with every changed path.
    sent: BTreeMap<PathBuf, FullStatus>,
}

impl Monitor {
    /// A monitor of the repositories under `root`.
    pub fn new(
        root: PathBuf,
        status: SharedStatus,
        updates: mpsc::Sender<Update>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            root,
            status,
            updates,
            shutdown,
            sent: BTreeMap::new(),
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        loop {
            let workdirs = {
                let root = self.root.clone();
                tokio::task::spawn_blocking(move || repos::discover(&root, MAX_DEPTH, MAX_REPOS))
                    .await
                    .unwrap_or_default()
            };
            self.sent.retain(|w, _| workdirs.contains(w));
            let paths = workdirs
                .iter()
                .map(|w| relative(&self.root, w))
                .collect::<Vec<_>>();
            tracing::info!(count = workdirs.len(), "watching repositories");
            if self.updates.send(Update::RepoSet(paths)).await.is_err() {
                return;
            }
            let started = {
                let (root, w) = (self.root.clone(), workdirs.clone());
                tokio::task::spawn_blocking(move || {
                    RepoWatcher::start_with_depth(&root, &w, DEBOUNCE, MAX_DEPTH)
                })
                .await
            };
            let (watcher, mut events) = match started {
                Ok(Ok((watcher, events))) => (Some(watcher), Some(events)),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot watch the repositories; relying on the periodic refresh");
                    (None, None)
                }
                Err(_) => (None, None),
            };
            // Read only once the watcher runs: a change after this read is seen by the watcher,
            // a change before it is in what is read.
            for w in &workdirs {
                self.refresh(w, Changed::Everything).await;
            }
            self.publish_status();
            let mut refresh =
                tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
            let rescan = loop {
                tokio::select! {
                    event = next_event(&mut events) => match event {
                        Some(WatchEvent::RepoChanged(w, changed)) => {
                            if self.refresh(&w, changed).await {
                                self.publish_status();
                            }
                        }
                        Some(WatchEvent::TreeChanged) => break true,
                        None => break true,
                    },
                    _ = refresh.tick() => break true,
                    _ = stopping(&mut self.shutdown) => break false,
                }
            };
            drop(watcher);
            if !rescan {
                return;
            }
        }
    }

    /// Re-reads one repository (only the changed paths when that is enough) and forwards its
    /// state if it changed; true if it did.
    async fn refresh(&mut self, workdir: &Path, changed: Changed) -> bool {
        let (root, w) = (self.root.clone(), workdir.to_path_buf());
        let previous = self.sent.get(workdir).cloned();
        let read = tokio::task::spawn_blocking(move || {
            let partial = match (&changed, &previous) {
                (Changed::Paths(paths), Some(previous)) => repos::update_paths(&w, previous, paths),
                _ => Ok(None),
            };
            let full = match partial {
                Ok(Some(updated)) => Ok(updated),
                _ => repos::read_full(&root, &w),
            };
            crate::memory::release_free_memory();
            full
        })
        .await;
        let state = match read {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(repo = %workdir.display(), error = %e, "cannot read repository state");
                return false;
            }
            Err(_) => return false,
        };
        if self
            .sent
            .get(workdir)
            .is_some_and(|s| s.status == state.status)
        {
            return false;
        }
        let status = state.status.clone();
        self.sent.insert(workdir.to_path_buf(), state);
        self.updates.send(Update::Repo(status)).await.is_ok()
    }

    fn publish_status(&self) {
        let repos = self.sent.values().map(|s| s.status.clone()).collect();
        self.status.update(|s| {
            s.repos = repos;
            true
        });
    }
}

async fn next_event(events: &mut Option<mpsc::Receiver<WatchEvent>>) -> Option<WatchEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `workdir` relative to `root`, with `/` separators; `.` for the root itself.
fn relative(root: &Path, workdir: &Path) -> String {
    match workdir.strip_prefix(root) {
        Ok(p) if p.as_os_str().is_empty() => ".".into(),
        Ok(p) => p.to_string_lossy().replace('\\', "/"),
        Err(_) => workdir.display().to_string(),
    }
}
