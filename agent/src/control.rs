//! The control socket: a Unix socket in the state directory through which `fulcrum status`
//! (and later `fulcrum run`/`logs`) talk to the running agent.
//!
//! The protocol is one request line, one JSON answer, then close. The socket is created with
//! mode 0600 inside the state directory, so only the workspace user can use it.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::watch,
};

use crate::{
    link::stopping,
    status::{AgentStatus, SharedStatus},
};

/// The socket's file name in the state directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// Longest request line.
const MAX_REQUEST: u64 = 1024;
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
    status: SharedStatus,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let status = status.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &status).await {
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

async fn answer(stream: UnixStream, status: &SharedStatus) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match line.trim() {
        "status" => serde_json::to_string(&status.snapshot())?,
        other => serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string(),
    };
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await?;
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
    let path = socket_path(state_dir);
    let exchange = async {
        let mut stream = UnixStream::connect(&path)
            .await
            .map_err(|_| ClientError::NotRunning(path.clone()))?;
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
