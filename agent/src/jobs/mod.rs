//! The job runner: takes tasks from the relay, runs them with a concurrency limit (later ones
//! wait in order), and reports start, output and result on the agent's durable stream.
//!
//! Each task the agent accepts gets a directory `<state dir>/jobs/<task id>/` before anything
//! runs; its existence is what makes "at most once" hold across relay resends and agent
//! restarts. The directory keeps a copy of the log (`output.log`, for `fulcrum logs`) and, once
//! the task ended, `result.json`. A directory without a result found at start belongs to a task
//! that was running when the agent died: it is reported `lost`. The newest [`KEEP_JOBS`]
//! directories are kept.

mod process;
mod run;

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, Utc};
use fulcrum_protocol::{AgentMessage, TaskOutcome, TaskResult, TaskRun, TaskSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use process::PASSED_THROUGH;

use crate::{link::stopping, status::SharedStatus};

/// Job directories kept (the oldest beyond this are deleted).
pub const KEEP_JOBS: usize = 100;
/// Finished jobs listed in the agent's status.
const LISTED_FINISHED: usize = 10;
/// How long running jobs get to stop when the agent shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// An instruction from the relay.
#[derive(Debug, Clone)]
pub enum JobCommand {
    /// Run (or queue) a task.
    Run(TaskSpec),
    /// Cancel a task.
    Cancel(Uuid),
}

/// A message for the relay, and whether it must reach the disk before it is sent.
#[derive(Debug)]
pub struct JobReport {
    /// The message.
    pub message: AgentMessage,
    /// Flush the outbox journal to the disk before sending (results).
    pub flush: bool,
    /// Told once the message is in the outbox journal.
    pub journaled: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A job as `fulcrum status` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobEntry {
    /// The task's id.
    pub task_id: Uuid,
    /// The command, or `step NAME`.
    pub label: String,
    /// The repository it runs in.
    pub repo: String,
    /// `queued`, `running` or the final state.
    pub state: String,
    /// When the agent got it.
    pub queued_at: DateTime<Utc>,
    /// When its process started.
    pub started_at: Option<DateTime<Utc>>,
    /// Log bytes so far.
    pub log_bytes: u64,
    /// How it ended, once it did.
    pub end: Option<JobEnd>,
    /// When it ended, once it did.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its number in this workspace (`#17`), as the relay gave it.
    #[serde(default)]
    pub number: Option<u64>,
}

impl JobEntry {
    /// How people name it: `#17`, or the start of its id when it has no number.
    pub fn handle(&self) -> String {
        match self.number {
            Some(n) => format!("#{n}"),
            None => self.task_id.simple().to_string()[..8].to_owned(),
        }
    }
}

/// How a job ended, as kept in `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobEnd {
    /// The final state: `succeeded`, `failed`, `canceled`, `timed_out` or `lost`.
    pub state: String,
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Why it could not start or was lost.
    pub message: Option<String>,
}

impl JobEnd {
    /// The end a [`TaskOutcome`] describes.
    pub fn from_outcome(outcome: &TaskOutcome) -> Self {
        let (exit_code, signal, message) = match outcome {
            TaskOutcome::Exited { code } => (Some(*code), None, None),
            TaskOutcome::Signaled { signal } => (None, Some(*signal), None),
            TaskOutcome::Canceled { killed } | TaskOutcome::TimedOut { killed } => {
                (None, killed.then_some(9), None)
            }
            TaskOutcome::FailedToStart { message } | TaskOutcome::Lost { message } => {
                (None, None, Some(message.clone()))
            }
        };
        Self {
            state: outcome.state().as_str().to_owned(),
            exit_code,
            signal,
            message,
        }
    }

    /// The exit code a terminal command should exit with for this end.
    pub fn exit_code_for_terminal(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            _ if self.state == "timed_out" => 124,
            _ if self.state == "canceled" => 130,
            _ => 1,
        }
    }
}

/// The job directory of a task.
pub fn job_dir(state_dir: &Path, task: Uuid) -> PathBuf {
    state_dir.join("jobs").join(task.to_string())
}

/// Reads a finished job's result.
pub fn read_result(state_dir: &Path, task: Uuid) -> Option<JobEnd> {
    let text = std::fs::read(job_dir(state_dir, task).join("result.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The runner task.
pub struct Runner {
    root: PathBuf,
    jobs_dir: PathBuf,
    limit: usize,
    /// Whether the workspace's policy allows runs.
    allows_runs: bool,
    status: SharedStatus,
    commands: mpsc::UnboundedReceiver<JobCommand>,
    reports: mpsc::Sender<JobReport>,
    shutdown: watch::Receiver<bool>,
    queue: VecDeque<TaskSpec>,
    /// Jobs finished since the job directories were last pruned.
    finished_since_prune: usize,
    running: HashMap<Uuid, watch::Sender<Option<run::Stop>>>,
    done_tx: mpsc::Sender<Uuid>,
    done_rx: mpsc::Receiver<Uuid>,
}

impl Runner {
    /// Prepares the runner; `limit` is how many jobs run at once; with `allows_runs` false
    /// (the workspace's policy lacks `run`) every task is refused.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: PathBuf,
        state_dir: &Path,
        limit: usize,
        allows_runs: bool,
        status: SharedStatus,
        commands: mpsc::UnboundedReceiver<JobCommand>,
        reports: mpsc::Sender<JobReport>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let jobs_dir = state_dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir)?;
        let (done_tx, done_rx) = mpsc::channel(64);
        Ok(Self {
            root,
            jobs_dir,
            limit: limit.max(1),
            allows_runs,
            status,
            commands,
            reports,
            shutdown,
            queue: VecDeque::new(),
            finished_since_prune: 0,
            running: HashMap::new(),
            done_tx,
            done_rx,
        })
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        self.report_interrupted().await;
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(JobCommand::Run(spec)) => self.accept(spec).await,
                    Some(JobCommand::Cancel(task)) => self.cancel(task).await,
                    None => break,
                },
                Some(task) = self.done_rx.recv() => {
                    self.running.remove(&task);
                    self.start_queued();
                    self.finished_since_prune += 1;
                    if self.finished_since_prune >= 20 {
                        self.finished_since_prune = 0;
                        // Off the runner's loop: a dispatch must not wait for directory cleanup.
                        let dir = self.jobs_dir.clone();
                        tokio::task::spawn_blocking(move || prune(&dir));
                    }
                }
                _ = stopping(&mut shutdown) => break,
            }
        }
        // Stop what runs; the next start reports these tasks lost (the relay's lease does too).
        for stop in self.running.values() {
            let _ = stop.send(Some(run::Stop::AgentStopping));
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, self.done_rx.recv()).await {
                Ok(Some(task)) => {
                    self.running.remove(&task);
                }
                _ => break,
            }
        }
    }

    /// Tasks whose directory has no result were running when the agent died: whatever of their
    /// processes is left is killed, and they are reported lost. Then old directories go.
    async fn report_interrupted(&self) {
        let Ok(entries) = std::fs::read_dir(&self.jobs_dir) else {
            return;
        };
        let unfinished: Vec<(PathBuf, Uuid)> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.path().join("result.json").exists())
            .filter_map(|e| {
                let id = e.file_name().to_str().and_then(|n| n.parse().ok())?;
                Some((e.path(), id))
            })
            .collect();
        for (path, task) in unfinished {
            process::kill_leftover(&path);
            let outcome = TaskOutcome::Lost {
                message: "the agent stopped while the task was running".into(),
            };
            tracing::warn!(task = %task, "a task was interrupted by an agent restart");
            self.finish_without_running(task, outcome).await;
        }
        prune(&self.jobs_dir);
    }

    async fn accept(&mut self, spec: TaskSpec) {
        if !self.allows_runs {
            let outcome = TaskOutcome::FailedToStart {
                message: "the workspace's policy does not allow `run` (start its agent with \
                          --allow run)"
                    .into(),
            };
            self.finish_without_running(spec.task_id, outcome).await;
            return;
        }
        let dir = self.jobs_dir.join(spec.task_id.to_string());
        // Creating the directory is the "accepted" record: a resend finds it and is ignored.
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::debug!(task = %spec.task_id, "task already accepted; ignoring the resend");
                return;
            }
            Err(e) => {
                let outcome = TaskOutcome::FailedToStart {
                    message: format!("the agent cannot record the task: {e}"),
                };
                self.finish_without_running(spec.task_id, outcome).await;
                return;
            }
        }
        let entry = JobEntry {
            task_id: spec.task_id,
            label: label(&spec.run),
            repo: spec.repo.clone(),
            state: "queued".into(),
            queued_at: Utc::now(),
            started_at: None,
            log_bytes: 0,
            end: None,
            finished_at: None,
            number: spec.number,
        };
        self.status.update(|s| {
            s.jobs.push(entry);
            true
        });
        self.queue.push_back(spec);
        self.start_queued();
    }

    fn start_queued(&mut self) {
        while self.running.len() < self.limit {
            let Some(spec) = self.queue.pop_front() else {
                return;
            };
            let (stop_tx, stop_rx) = watch::channel(None);
            self.running.insert(spec.task_id, stop_tx);
            let job = run::Job {
                dir: self.jobs_dir.join(spec.task_id.to_string()),
                root: self.root.clone(),
                spec,
                status: self.status.clone(),
                reports: self.reports.clone(),
                stop: stop_rx,
            };
            let done = self.done_tx.clone();
            tokio::spawn(async move {
                let task = job.spec.task_id;
                job.run().await;
                let _ = done.send(task).await;
            });
        }
    }

    async fn cancel(&mut self, task: Uuid) {
        if let Some(stop) = self.running.get(&task) {
            let _ = stop.send(Some(run::Stop::Canceled));
            return;
        }
        if let Some(i) = self.queue.iter().position(|s| s.task_id == task) {
            self.queue.remove(i);
            self.finish_without_running(task, TaskOutcome::Canceled { killed: false })
                .await;
            return;
        }
        // Never seen (or long finished): record it, so a late run request is refused.
        let dir = self.jobs_dir.join(task.to_string());
        if std::fs::create_dir(&dir).is_ok() {
            self.finish_without_running(task, TaskOutcome::Canceled { killed: false })
                .await;
        }
    }

    /// Records and reports the end of a task that did not run (any more).
    async fn finish_without_running(&self, task: Uuid, outcome: TaskOutcome) {
        let result = TaskResult {
            task_id: task,
            outcome,
            log_bytes: 0,
            output_bytes: 0,
            truncated: false,
            duration_ms: 0,
            test_summary: None,
        };
        finish(
            &self.jobs_dir.join(task.to_string()),
            &self.status,
            &self.reports,
            result,
        )
        .await;
    }
}

/// Deletes the oldest finished job directories beyond [`KEEP_JOBS`]; unfinished ones stay.
fn prune(jobs_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(jobs_dir) else {
        return;
    };
    let mut finished: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let result = e.path().join("result.json");
            let modified = std::fs::metadata(&result).ok()?.modified().ok()?;
            Some((modified, e.path()))
        })
        .collect();
    if finished.len() <= KEEP_JOBS {
        return;
    }
    finished.sort_by_key(|d| std::cmp::Reverse(d.0));
    for (_, path) in finished.into_iter().skip(KEEP_JOBS) {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// Reports a result and waits until it is in the outbox journal (flushed to the disk), then
/// records it in the job directory and the status. In that order: a crash in between reports
/// the task again after the restart (as lost, which the relay ignores once it has the result),
/// never not at all. If the agent stops before the journal has it, no result is recorded here
/// and the next start reports the task lost.
pub(crate) async fn finish(
    dir: &Path,
    status: &SharedStatus,
    reports: &mpsc::Sender<JobReport>,
    mut result: TaskResult,
) {
    clamp_result(&mut result);
    let end = JobEnd::from_outcome(&result.outcome);
    let task = result.task_id;
    let (journaled, on_disk) = tokio::sync::oneshot::channel();
    let sent = reports
        .send(JobReport {
            message: AgentMessage::TaskFinished(result),
            flush: true,
            journaled: Some(journaled),
        })
        .await;
    if sent.is_err() || on_disk.await.is_err() {
        return;
    }
    if let Ok(json) = serde_json::to_vec(&end) {
        let tmp = dir.join("result.json.tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join("result.json"));
        }
    }
    status.update(|s| {
        match s.jobs.iter_mut().find(|j| j.task_id == task) {
            Some(job) => {
                job.state = end.state.clone();
                job.end = Some(end);
                job.finished_at = Some(Utc::now());
            }
            None => s.jobs.push(JobEntry {
                task_id: task,
                label: String::new(),
                repo: String::new(),
                state: end.state.clone(),
                queued_at: Utc::now(),
                started_at: None,
                log_bytes: 0,
                end: Some(end),
                finished_at: Some(Utc::now()),
                number: None,
            }),
        }
        // Keep every unfinished job and the last few finished ones.
        let finished = s.jobs.iter().filter(|j| j.end.is_some()).count();
        let mut excess = finished.saturating_sub(LISTED_FINISHED);
        s.jobs.retain(|j| {
            if excess > 0 && j.end.is_some() {
                excess -= 1;
                false
            } else {
                true
            }
        });
        true
    });
}

/// Keeps a result's texts within the protocol's limits, so the relay never refuses it (a refused
/// durable message would be replayed forever).
fn clamp_result(result: &mut TaskResult) {
    if let TaskOutcome::FailedToStart { message } | TaskOutcome::Lost { message } =
        &mut result.outcome
    {
        crate::qa::truncate_with_ellipsis(message, 4096);
    }
    if let Some(summary) = &mut result.test_summary {
        summary
            .failures
            .truncate(fulcrum_protocol::tasks::MAX_LISTED_FAILURES);
        for f in &mut summary.failures {
            crate::qa::truncate_with_ellipsis(&mut f.name, 1024);
            crate::qa::truncate_with_ellipsis(&mut f.message, 8192);
        }
    }
}

/// How a task is shown: its command, or `step NAME`.
pub fn label(run: &TaskRun) -> String {
    match run {
        TaskRun::Command { command } => command.clone(),
        TaskRun::Step { name } => format!("step {name}"),
    }
}
