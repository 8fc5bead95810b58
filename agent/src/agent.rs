//! Running an agent: its tasks (link, monitor, control socket) and their lifetime.

use fulcrum_protocol::kinds::{Scope, Scopes};
use std::path::PathBuf;

use anyhow::{Context, Result};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    control, identity,
    jobs::Runner,
    link::{Link, LinkChannels, RelayTarget},
    monitor::Monitor,
    outbox::DiskOutbox,
    status::{AgentStatus, SharedStatus},
};

/// How many repository updates may queue between the monitor and the link.
const UPDATE_QUEUE: usize = 256;
/// How many job messages may queue between the runner and the link (then the runner waits).
const JOB_QUEUE: usize = 16;

/// What an agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Where the relay is and how to authenticate.
    pub relay: RelayTarget,
    /// The directory to watch.
    pub root: PathBuf,
    /// Where the agent keeps its key, control socket, outbox and job directories.
    pub state_dir: PathBuf,
    /// How many jobs run at once; later ones wait in order.
    pub max_jobs: usize,
    /// What the workspace allows callers through the relay: `write` (remote tools may change
    /// files) and `run` (tasks may run). A call needs this and its token's scope.
    pub policy: Scopes,
    /// MCP servers to host in the workspace.
    pub mcp_servers: Vec<crate::hosted::ServerConfig>,
}

impl AgentOptions {
    /// Options for an agent on `root` reaching `relay`, with the defaults: one job at a time,
    /// no writes by remote tools, no hosted MCP servers.
    pub fn new(relay: RelayTarget, root: PathBuf, state_dir: PathBuf) -> Self {
        Self {
            relay,
            root,
            state_dir,
            max_jobs: 1,
            policy: Scopes::of(&[Scope::Run]),
            mcp_servers: Vec::new(),
        }
    }
}

/// A running agent.
pub struct RunningAgent {
    status: SharedStatus,
    hosted: crate::hosted::Hosted,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    state_dir: PathBuf,
}

impl RunningAgent {
    /// Starts the agent's tasks. Fails fast on bad options (unreadable root, bad URL, another
    /// agent on the same state directory); connection problems are retried, not fatal.
    pub async fn start(mut opts: AgentOptions) -> Result<Self> {
        let root = std::fs::canonicalize(&opts.root).with_context(|| {
            format!(
                "the root {} is not a readable directory",
                opts.root.display()
            )
        })?;
        anyhow::ensure!(
            root.is_dir(),
            "the root {} is not a directory",
            root.display()
        );
        create_private_dir(&opts.state_dir)?;
        // Absolute from here on: jobs get `$FULCRUM_REPORT_DIR` under it and run in other
        // directories.
        opts.state_dir = std::fs::canonicalize(&opts.state_dir).with_context(|| {
            format!(
                "the state directory {} cannot be read",
                opts.state_dir.display()
            )
        })?;
        let identity = identity::load(&opts.state_dir, &root)?;
        let listener = control::bind(&opts.state_dir).await?;
        let status = SharedStatus::new(AgentStatus::starting(
            &opts.relay.url,
            &identity.name,
            &root.display().to_string(),
        ));
        let (stop, stopping) = watch::channel(false);
        let (updates_tx, updates_rx) = mpsc::channel(UPDATE_QUEUE);
        let (reports_tx, reports_rx) = mpsc::channel(JOB_QUEUE);
        // Unbounded: the link must never wait on the runner (which may be waiting on the link).
        // What comes through is bounded by what the relay dispatches.
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (runs_tx, runs_rx) = mpsc::channel(JOB_QUEUE);
        let outbox = DiskOutbox::open(&opts.state_dir.join("outbox"))?;
        crate::hosted::check_configs(&opts.mcp_servers).map_err(anyhow::Error::msg)?;
        let hosted = crate::hosted::Hosted::start(opts.mcp_servers, root.clone(), stopping.clone());
        let toolbox = crate::tools::Toolbox::new(root.clone(), opts.policy, hosted.clone());
        let link = Link::new(
            opts.relay,
            identity,
            status.clone(),
            LinkChannels {
                updates: updates_rx,
                job_reports: reports_rx,
                job_commands: commands_tx,
                run_calls: runs_rx,
                toolbox,
            },
            outbox,
            stopping.clone(),
        )?;
        let runner = Runner::new(
            root.clone(),
            &opts.state_dir,
            opts.max_jobs,
            opts.policy.contains(Scope::Run),
            status.clone(),
            commands_rx,
            reports_tx,
            stopping.clone(),
        )
        .context("cannot prepare the job directory")?;
        let monitor = Monitor::new(root, status.clone(), updates_tx, stopping.clone());
        let socket = control::socket_path(&opts.state_dir);
        let control = control::Control {
            status: status.clone(),
            state_dir: opts.state_dir.clone(),
            runs: runs_tx,
        };
        let tasks = vec![
            tokio::spawn(link.run()),
            tokio::spawn(runner.run()),
            tokio::spawn(monitor.run()),
            tokio::spawn(control::serve(listener, socket, control, stopping)),
        ];
        Ok(Self {
            status,
            hosted,
            stop,
            tasks,
            state_dir: opts.state_dir,
        })
    }

    /// The agent's current status.
    pub fn status(&self) -> AgentStatus {
        self.status.snapshot()
    }

    /// The state directory (holding the control socket).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// Waits until the status satisfies `f`, waking on every change.
    pub async fn wait_for(
        &self,
        f: impl FnMut(&AgentStatus) -> bool,
        timeout: std::time::Duration,
    ) -> Result<AgentStatus> {
        let mut rx = self.status.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(f)).await;
        match waited {
            Ok(Ok(s)) => Ok(s.clone()),
            _ => anyhow::bail!(
                "agent status condition not met in time: {:?}",
                self.status().connection
            ),
        }
    }

    /// Stops every task: closes the relay session cleanly and removes the control socket.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.hosted.stopped().await;
    }
}

/// Creates the state directory, readable by the user only.
fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict the state directory {}", dir.display()))?;
    }
    Ok(())
}
