//! The control socket: a Unix socket in the state directory through which `fulcrum status`,
//! `fulcrum run` and `fulcrum logs` talk to the running agent.
//!
//! The protocol is one request line, then the answer, then close:
//! - `status` → the [`AgentStatus`] as JSON;
//! - `{"run": RunRequest}` → `{"task_id": …}` once the relay recorded the run, or `{"error": …}`;
//! - `{"logs": {"task": ID, "follow": BOOL}}` → a JSON line (`{"ok": true}` or `{"error": …}`),
//!   then the task's raw log bytes; with `follow`, until the task ended.
//!
//! The socket is created with mode 0600 inside the state directory, so only the workspace user
//! can use it.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use fulcrum_protocol::RunRequest;
use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream, unix::OwnedWriteHalf},
    sync::{mpsc, oneshot, watch},
};
use uuid::Uuid;

use crate::{
    jobs,
    link::{RunCall, stopping},
    status::{AgentStatus, SharedStatus},
};

/// What the control socket serves from.
#[derive(Clone)]
pub struct Control {
    /// The agent's status.
    pub status: SharedStatus,
    /// The state directory (job directories live there).
    pub state_dir: PathBuf,
    /// Where `fulcrum run` requests go (the link).
    pub runs: mpsc::Sender<RunCall>,
}

/// A JSON request line.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Run(RunRequest),
    Logs { task: Uuid, follow: bool },
}

/// How long a follow waits for a task the agent has not seen yet (the relay's dispatch is on its
/// way) before it says there is no such task here.
const UNKNOWN_TASK_WAIT: Duration = Duration::from_secs(10);
/// How long a run request waits for the relay's answer.
const RUN_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// The socket's file name in the state directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// Longest request line (a run request carries its command and environment).
const MAX_REQUEST: u64 = 512 * 1024;
/// Longest answer a client reads.
const MAX_ANSWER: u64 = 4 * 1024 * 1024;
/// How long a client waits for the agent.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket path for a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Binds the control socket, refusing if another agent already serves this state directory.
pub async fn bind(state_dir: &Path) -> Result<UnixListener> {
    let path = socket_path(state_dir);
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            bail!(
                "another agent is already running with state directory {}",
                state_dir.display()
            );
        }
        // A stale socket from an agent that died: nobody answers on it.
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot create control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict control socket {}", path.display()))?;
    Ok(listener)
}

/// Serves status requests until shutdown, then removes the socket.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    control: Control,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let control = control.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &control).await {
                            tracing::debug!(error = %e, "control client error");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            },
            _ = stopping(&mut shutdown) => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(stream: UnixStream, control: &Control) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let error = |m: String| serde_json::json!({ "error": m }).to_string();
    let reply = match line.trim() {
        "status" => serde_json::to_string(&control.status.snapshot())?,
        json => match serde_json::from_str::<Request>(json) {
            Ok(Request::Run(run)) => match forward_run(control, run).await {
                Ok(task) => serde_json::json!({ "task_id": task }).to_string(),
                Err(m) => error(m),
            },
            Ok(Request::Logs { task, follow }) => {
                return serve_logs(control, task, follow, write).await;
            }
            Err(e) => error(format!("bad request: {e}")),
        },
    };
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await?;
    Ok(())
}

async fn forward_run(control: &Control, run: RunRequest) -> Result<Uuid, String> {
    let (tx, rx) = oneshot::channel();
    control
        .runs
        .send((run, tx))
        .await
        .map_err(|_| "the agent is stopping".to_owned())?;
    match tokio::time::timeout(RUN_ANSWER_WAIT, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err("the agent is stopping".into()),
        Err(_) => Err("the relay did not answer in time".into()),
    }
}

/// Streams a job's local log; with `follow`, until the job ended.
async fn serve_logs(
    control: &Control,
    task: Uuid,
    follow: bool,
    mut write: OwnedWriteHalf,
) -> Result<()> {
    let dir = jobs::job_dir(&control.state_dir, task);
    let mut changes = control.status.subscribe();
    let known = |s: &AgentStatus| s.jobs.iter().any(|j| j.task_id == task);
    if !dir.exists() {
        // A task just asked for may not have arrived from the relay yet.
        let arrived = follow
            && tokio::time::timeout(UNKNOWN_TASK_WAIT, changes.wait_for(known))
                .await
                .is_ok_and(|r| r.is_ok());
        if !arrived && !dir.exists() {
            let m = format!(
                "no task {task} ran in this workspace (fulcrum logs reads the logs of this workspace's own tasks; see the dashboard for others)"
            );
            write
                .write_all(format!("{}\n", serde_json::json!({ "error": m })).as_bytes())
                .await?;
            return Ok(());
        }
    }
    write.write_all(b"{\"ok\":true}\n").await?;
    let finished = |dir: &std::path::Path| dir.join("result.json").exists();
    let mut file = loop {
        match tokio::fs::File::open(dir.join("output.log")).await {
            Ok(f) => break f,
            Err(_) if follow && !finished(&dir) => {
                let _ = changes.changed().await;
            }
            Err(_) => return Ok(()),
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Mark the status seen and check for the end before reading, so no write is missed and
        // the last read sees everything written before the result.
        changes.borrow_and_update();
        let done = !follow || finished(&dir);
        copy_available(&mut file, &mut buf, &mut write).await?;
        if done {
            break;
        }
        if changes.changed().await.is_err() {
            break;
        }
    }
    write.shutdown().await?;
    Ok(())
}

async fn copy_available(
    file: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    write: &mut OwnedWriteHalf,
) -> Result<()> {
    loop {
        let n = file.read(buf).await?;
        if n == 0 {
            return Ok(());
        }
        write.write_all(&buf[..n]).await?;
    }
}

/// Connects to the agent behind `state_dir`.
async fn connect(state_dir: &Path) -> Result<UnixStream, ClientError> {
    let path = socket_path(state_dir);
    UnixStream::connect(&path)
        .await
        .map_err(|_| ClientError::NotRunning(path))
}

/// Asks the agent to have the relay record and dispatch a run; returns the task's id.
pub async fn request_run(state_dir: &Path, run: &RunRequest) -> Result<Uuid> {
    let mut stream = connect(state_dir).await?;
    let line = serde_json::json!({ "run": run }).to_string();
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).context("unreadable answer from the agent")?;
    if let Some(e) = answer["error"].as_str() {
        bail!("{e}");
    }
    answer["task_id"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .context("the agent's answer has no task id")
}

/// Copies a task's log from the agent to `out`; with `follow`, until the task ended.
pub async fn stream_logs(
    state_dir: &Path,
    task: Uuid,
    follow: bool,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<()> {
    let (read, mut write) = connect(state_dir).await?.into_split();
    let line = serde_json::json!({ "logs": { "task": task, "follow": follow } }).to_string();
    write.write_all(format!("{line}\n").as_bytes()).await?;
    let mut read = BufReader::new(read);
    let mut header = String::new();
    (&mut read).take(64 * 1024).read_line(&mut header).await?;
    let header: serde_json::Value =
        serde_json::from_str(&header).context("unreadable answer from the agent")?;
    if let Some(e) = header["error"].as_str() {
        bail!("{e}");
    }
    tokio::io::copy(&mut read, out).await?;
    out.flush().await?;
    Ok(())
}

/// Why a client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No agent listens on the socket.
    #[error("no agent is running (no control socket at {0})")]
    NotRunning(PathBuf),
    /// The agent did not answer properly.
    #[error("the agent did not answer: {0}")]
    Failed(String),
}

/// Asks the agent behind `state_dir` for its status.
pub async fn query_status(state_dir: &Path) -> Result<AgentStatus, ClientError> {
    let exchange = async {
        let mut stream = connect(state_dir).await?;
        stream
            .write_all(b"status\n")
            .await
            .map_err(|e| ClientError::Failed(e.to_string()))?;
        let mut answer = Vec::new();
        stream
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| ClientError::Failed(e.to_string()))?;
        serde_json::from_slice(&answer)
            .map_err(|e| ClientError::Failed(format!("unreadable answer: {e}")))
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .map_err(|_| ClientError::Failed("timed out".into()))?
}
