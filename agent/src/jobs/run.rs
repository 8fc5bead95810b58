//! Running one job: resolve what to run, start each command, pump its output to the relay in
//! batches with byte offsets, stop it on cancel or timeout, and report the result.
//!
//! Output is read from the job's pipe and sent when a batch reaches [`BATCH_BYTES`] or has
//! waited [`BATCH_WAIT`], whichever comes first. The log is cut at the task's limit with a marker
//! ([`fulcrum_protocol::tasks::cut_marker`]); the process's further output is read and counted
//! but not kept. Sending waits while the outbox is full, so a job that outruns the relay is slowed
//! down by its own pipe rather than eating memory.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use chrono::Utc;
use fulcrum_protocol::{
    AgentMessage, TaskOutcome, TaskResult, TaskRun, TaskSpec, TestSummary, tasks,
};
use tokio::{
    io::AsyncReadExt,
    sync::{mpsc, watch},
};

use super::{JobReport, process};
use crate::{qa, status::SharedStatus};

/// A batch is sent once it holds this many bytes…
const BATCH_BYTES: usize = 256 * 1024;
/// One read from the job's pipe (a pipe holds 64 KiB).
const READ_BYTES: usize = 64 * 1024;
/// …or once its first byte has waited this long.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// After the job's main process exits, how long its other processes may keep the output open
/// before the whole group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);
/// After that, how long the output may stay open before the job is taken as over anyway.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);
/// Most output kept in memory per step for reading test results from it.
const MAX_PARSED_OUTPUT: usize = 32 * 1024 * 1024;

/// Why a job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Canceled through the relay.
    Canceled,
    /// The agent is shutting down.
    AgentStopping,
}

/// One job to run.
pub struct Job {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub spec: TaskSpec,
    pub status: SharedStatus,
    pub reports: mpsc::Sender<JobReport>,
    pub stop: watch::Receiver<Option<Stop>>,
}

/// One command of a job (a plain command is one; a QA plan may have several).
struct Command {
    header: Option<String>,
    command: String,
    env: std::collections::BTreeMap<String, String>,
    timeout: Option<Duration>,
    reports: Vec<String>,
    format: qa::OutputFormat,
}

/// How one command ended.
enum Ended {
    Exited(std::process::ExitStatus),
    Stopped { why: StopWhy, killed: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StopWhy {
    Canceled,
    TimedOut,
    AgentStopping,
}

/// The task's log as it is sent: offsets, the cut at the limit, the local copy.
struct Log {
    task: uuid::Uuid,
    sent: u64,
    output_bytes: u64,
    limit: u64,
    truncated: bool,
    /// The local copy, opened with the first output (nothing touches the disk before the job
    /// starts but its directory).
    file: LocalCopy,
    reports: mpsc::Sender<JobReport>,
    status: SharedStatus,
}

/// The local copy of a job's log, for `fulcrum logs`.
enum LocalCopy {
    NotYet(PathBuf),
    Open(std::fs::File),
    Failed,
}

impl LocalCopy {
    fn append(&mut self, chunk: &[u8]) {
        if let Self::NotYet(path) = self {
            *self = match std::fs::File::create(&*path) {
                Ok(f) => Self::Open(f),
                Err(_) => Self::Failed,
            };
        }
        if let Self::Open(file) = self
            && file.write_all(chunk).is_err()
        {
            *self = Self::Failed;
        }
    }
}

impl Log {
    /// Sends `data` (cutting at the limit) and keeps a local copy.
    async fn write(&mut self, data: &[u8], counts_as_output: bool) {
        if counts_as_output {
            self.output_bytes += data.len() as u64;
        }
        if self.truncated || data.is_empty() {
            return;
        }
        let room = self.limit.saturating_sub(self.sent) as usize;
        if data.len() <= room {
            self.send(data).await;
        } else {
            self.send(&data[..room]).await;
            let marker = tasks::cut_marker(self.limit);
            self.send(marker.as_bytes()).await;
            self.truncated = true;
        }
    }

    async fn send(&mut self, data: &[u8]) {
        for chunk in data.chunks(tasks::MAX_OUTPUT_CHUNK) {
            if chunk.is_empty() {
                continue;
            }
            self.file.append(chunk);
            let message = AgentMessage::TaskOutput {
                task_id: self.task,
                offset: self.sent,
                data: chunk.to_vec(),
            };
            self.sent += chunk.len() as u64;
            let _ = self
                .reports
                .send(JobReport {
                    message,
                    flush: false,
                    journaled: None,
                })
                .await;
        }
        let (task, sent) = (self.task, self.sent);
        self.status.update(|s| {
            if let Some(job) = s.jobs.iter_mut().find(|j| j.task_id == task) {
                job.log_bytes = sent;
            }
            true
        });
    }
}

impl Job {
    /// Runs the job to its end and reports it.
    pub async fn run(mut self) {
        let started = Instant::now();
        let task = self.spec.task_id;
        let file = LocalCopy::NotYet(self.dir.join("output.log"));
        let mut log = Log {
            task,
            sent: 0,
            output_bytes: 0,
            limit: self.spec.log_limit,
            truncated: false,
            file,
            reports: self.reports.clone(),
            status: self.status.clone(),
        };
        let prepared = self.prepare();
        let (workdir, commands) = match prepared {
            Ok(p) => p,
            Err(message) => {
                log.write(format!("fulcrum: {message}\n").as_bytes(), false)
                    .await;
                let outcome = TaskOutcome::FailedToStart { message };
                self.finish(&log, outcome, started, None).await;
                return;
            }
        };
        let mut head = Some(git_head(&workdir));
        let report_dir = self.dir.join("reports");
        let _ = std::fs::create_dir_all(&report_dir);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.spec.timeout_s);
        let mut summary: Option<TestSummary> = None;
        let mut outcome = TaskOutcome::Exited { code: 0 };
        let single = commands.len() == 1 && commands[0].header.is_none();
        for command in &commands {
            if let Some(header) = &command.header {
                log.write(header.as_bytes(), false).await;
            }
            let mut env = command.env.clone();
            for (k, v) in &self.spec.env {
                env.insert(k.clone(), v.clone());
            }
            let env = process::environment(&task.to_string(), &self.root, &report_dir, &env);
            let since = SystemTime::now();
            let step_deadline = command
                .timeout
                .map_or(deadline, |t| deadline.min(tokio::time::Instant::now() + t));
            let mut parsed = Vec::new();
            let ended = match process::spawn(&command.command, &workdir, &env) {
                Ok(child) => {
                    if let Some((commit, branch)) = head.take() {
                        self.report_started(commit, branch).await;
                    }
                    child.record(&self.dir);
                    let (ended, back) = self.pump(child, log, &mut parsed, step_deadline).await;
                    log = back;
                    ended
                }
                Err(e) => {
                    let message = format!("cannot start /bin/sh: {e}");
                    log.write(format!("fulcrum: {message}\n").as_bytes(), false)
                        .await;
                    outcome = TaskOutcome::FailedToStart { message };
                    break;
                }
            };
            let step_summary = qa::junit::collect(&workdir, &report_dir, &command.reports, since)
                .or_else(|| qa::output::parse(command.format, &parsed));
            summary = merge(summary, step_summary);
            outcome = match ended {
                Ended::Exited(status) => match process::exit_of(status) {
                    (Some(code), _) => TaskOutcome::Exited { code },
                    (None, Some(signal)) => TaskOutcome::Signaled { signal },
                    _ => TaskOutcome::Exited { code: -1 },
                },
                Ended::Stopped { why, killed } => match why {
                    StopWhy::Canceled => TaskOutcome::Canceled { killed },
                    StopWhy::TimedOut => TaskOutcome::TimedOut { killed },
                    // Not reported: the next start of the agent reports the task lost.
                    StopWhy::AgentStopping => return,
                },
            };
            if outcome != (TaskOutcome::Exited { code: 0 }) {
                if !single && let TaskOutcome::Exited { code } = outcome {
                    let line = format!("fulcrum: the step failed with exit code {code}\n");
                    log.write(line.as_bytes(), false).await;
                }
                break;
            }
        }
        self.finish(&log, outcome, started, summary).await;
    }

    /// Reports that the job's (first) process runs.
    async fn report_started(&self, commit: Option<String>, branch: Option<String>) {
        let task = self.spec.task_id;
        let _ = self
            .reports
            .send(JobReport {
                message: AgentMessage::TaskStarted {
                    task_id: task,
                    commit,
                    branch,
                },
                flush: false,
                journaled: None,
            })
            .await;
        self.status.update(|s| {
            if let Some(job) = s.jobs.iter_mut().find(|j| j.task_id == task) {
                job.state = "running".into();
                job.started_at = Some(Utc::now());
            }
            true
        });
    }

    async fn finish(
        &self,
        log: &Log,
        outcome: TaskOutcome,
        started: Instant,
        test_summary: Option<TestSummary>,
    ) {
        let result = TaskResult {
            task_id: self.spec.task_id,
            outcome,
            log_bytes: log.sent,
            output_bytes: log.output_bytes,
            truncated: log.truncated,
            duration_ms: started.elapsed().as_millis() as u64,
            test_summary,
        };
        super::finish(&self.dir, &self.status, &self.reports, result).await;
    }

    /// Finds the directory and the commands; the error is for people.
    fn prepare(&self) -> Result<(PathBuf, Vec<Command>), String> {
        tasks::check_repo_path(&self.spec.repo).map_err(|e| e.to_string())?;
        let dir = self.root.join(&self.spec.repo);
        let dir = std::fs::canonicalize(&dir).map_err(|_| {
            format!(
                "there is no directory {:?} under the workspace root",
                self.spec.repo
            )
        })?;
        if !dir.starts_with(&self.root) || !dir.is_dir() {
            return Err(format!(
                "{:?} is not a directory inside the workspace root",
                self.spec.repo
            ));
        }
        let commands = match &self.spec.run {
            TaskRun::Command { command } => vec![Command {
                header: None,
                command: command.clone(),
                env: Default::default(),
                timeout: None,
                reports: Vec::new(),
                format: qa::OutputFormat::Auto,
            }],
            TaskRun::Step { name } => {
                let plan = qa::plan(&dir).map_err(|e| e.to_string())?;
                let steps = plan.select(name).map_err(|e| e.to_string())?;
                steps
                    .into_iter()
                    .map(|step| Command {
                        header: Some(format!("==> {}: {}\n", step.name, step.command)),
                        command: step.command,
                        env: {
                            let mut env = step.env;
                            if step.color {
                                for (k, v) in qa::COLOR_ENV {
                                    env.entry((*k).to_owned())
                                        .or_insert_with(|| (*v).to_owned());
                                }
                            }
                            env
                        },
                        timeout: step.timeout_s.map(Duration::from_secs),
                        reports: step.reports,
                        format: step.format,
                    })
                    .collect()
            }
        };
        Ok((dir, commands))
    }

    /// Reads the process's output until it ended and its output closed; stops it on cancel or
    /// timeout (SIGTERM to the group, SIGKILL after the grace period).
    ///
    /// Sending a batch runs beside the loop, so cancel and timeout still act while the relay
    /// is slow or away; meanwhile reading pauses once the next batch is full, and the job's own
    /// writes wait on its pipe.
    async fn pump(
        &mut self,
        mut child: process::JobProcess,
        log: Log,
        parsed: &mut Vec<u8>,
        deadline: tokio::time::Instant,
    ) -> (Ended, Log) {
        let grace = Duration::from_secs(self.spec.grace_s);
        let mut buf = vec![0u8; READ_BYTES];
        let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
        let mut batch_due: Option<tokio::time::Instant> = None;
        let mut due = false;
        let mut slot = LogSlot::Idle(log);
        let mut exited: Option<std::process::ExitStatus> = None;
        let mut eof = false;
        let mut stopping: Option<StopWhy> = None;
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut killed = false;
        let mut drain_until: Option<tokio::time::Instant> = None;
        let mut drain_killed = false;
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        loop {
            if exited.is_some() && eof {
                break;
            }
            // Hand a ready batch to the sender when it is free.
            if !batch.is_empty() && (due || batch.len() >= BATCH_BYTES) {
                slot = match slot {
                    LogSlot::Idle(mut log) => {
                        let data = std::mem::take(&mut batch);
                        batch_due = None;
                        due = false;
                        LogSlot::Busy(Box::pin(async move {
                            log.write(&data, true).await;
                            log
                        }))
                    }
                    busy => busy,
                };
            }
            tokio::select! {
                read = child.output.read(&mut buf), if !eof && batch.len() < BATCH_BYTES => match read {
                    Ok(0) | Err(_) => eof = true,
                    Ok(n) => {
                        if parsed.len() < MAX_PARSED_OUTPUT {
                            let take = n.min(MAX_PARSED_OUTPUT - parsed.len());
                            parsed.extend_from_slice(&buf[..take]);
                        }
                        batch.extend_from_slice(&buf[..n]);
                        if batch_due.is_none() {
                            batch_due = Some(tokio::time::Instant::now() + BATCH_WAIT);
                        }
                    }
                },
                _ = tokio::time::sleep_until(batch_due.unwrap_or(far)), if batch_due.is_some() && !due => {
                    due = true;
                }
                log = slot.sent(), if slot.is_busy() => {
                    slot = LogSlot::Idle(log);
                }
                status = child.child.wait(), if exited.is_none() => {
                    exited = Some(status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1 << 8)));
                    drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                }
                _ = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() && !eof => {
                    if drain_killed {
                        // Something outside the group (it called setsid) still holds the output
                        // open: stop reading; the job is over.
                        eof = true;
                        drain_until = None;
                    } else {
                        // The main process is gone but others of its group hold the output open.
                        child.kill();
                        drain_killed = true;
                        drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_KILL);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if stopping.is_none() && exited.is_none() => {
                    stopping = Some(StopWhy::TimedOut);
                    child.terminate();
                    kill_at = Some(tokio::time::Instant::now() + grace);
                }
                changed = self.stop.changed(), if stopping.is_none() && exited.is_none() => {
                    let why = match (changed, *self.stop.borrow()) {
                        (Ok(()), Some(Stop::Canceled)) => StopWhy::Canceled,
                        (Ok(()), None) => continue,
                        _ => StopWhy::AgentStopping,
                    };
                    stopping = Some(why);
                    child.terminate();
                    let wait = if why == StopWhy::AgentStopping { Duration::from_secs(1) } else { grace };
                    kill_at = Some(tokio::time::Instant::now() + wait);
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() && exited.is_none() => {
                    child.kill();
                    killed = true;
                    kill_at = None;
                }
            }
        }
        let mut log = match slot {
            LogSlot::Idle(log) => log,
            LogSlot::Busy(sending) => sending.await,
        };
        if !batch.is_empty() {
            log.write(&batch, true).await;
        }
        // Nothing of the job outlives it.
        child.kill();
        let ended = match (stopping, exited) {
            (Some(why), _) => Ended::Stopped { why, killed },
            (None, Some(status)) => Ended::Exited(status),
            // The loop ends only after the process exited; a failure is the safe answer anyway.
            (None, None) => Ended::Exited(std::os::unix::process::ExitStatusExt::from_raw(1 << 8)),
        };
        (ended, log)
    }
}

/// The log, either free or busy sending a batch (and handed back when done).
enum LogSlot {
    Idle(Log),
    Busy(futures_util::future::BoxFuture<'static, Log>),
}

impl LogSlot {
    fn is_busy(&self) -> bool {
        matches!(self, Self::Busy(_))
    }

    /// Resolves with the log when the batch in flight was sent; never while idle.
    async fn sent(&mut self) -> Log {
        match self {
            Self::Busy(sending) => sending.await,
            Self::Idle(_) => std::future::pending().await,
        }
    }
}

/// The commit and branch checked out in `dir`, if it is in a git repository.
fn git_head(dir: &Path) -> (Option<String>, Option<String>) {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return (None, None);
    };
    let Ok(head) = repo.head() else {
        return (None, None);
    };
    let commit = head.target().map(|oid| oid.to_string());
    let mut branch = head
        .is_branch()
        .then(|| head.shorthand().map(str::to_owned))
        .flatten();
    if let Some(b) = &mut branch {
        crate::qa::truncate_with_ellipsis(b, fulcrum_protocol::MAX_TEXT_BYTES);
    }
    (commit, branch)
}

/// Adds up the summaries of several steps.
fn merge(a: Option<TestSummary>, b: Option<TestSummary>) -> Option<TestSummary> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(mut a), Some(b)) => {
            a.passed += b.passed;
            a.failed += b.failed;
            a.skipped += b.skipped;
            let room = tasks::MAX_LISTED_FAILURES.saturating_sub(a.failures.len());
            a.failures.extend(b.failures.into_iter().take(room));
            Some(a)
        }
    }
}
