//! The `fulcrum` command line: `fulcrum agent` runs the daemon, `fulcrum status` asks it how it
//! is doing, `fulcrum run` runs a command or QA step through the relay, `fulcrum logs` shows a
//! task's log.
//!
//! `fulcrum status` exits 0 when the agent is connected, 1 when it runs but is not connected
//! (and says why), 2 when no agent runs. `fulcrum run` exits with the task's own exit code
//! (128+N for a signal, 124 for a timeout, 130 when canceled).

use fulcrum_protocol::kinds::{Scope, Scopes};
use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use serde::Deserialize;

use fulcrum_protocol::{RunRequest, TaskRun};

use crate::{
    agent::{AgentOptions, RunningAgent},
    control::{self, ClientError},
    link::RelayTarget,
    status::{AgentStatus, ConnectionState},
};

/// The Fulcrum workspace agent.
#[derive(Debug, Parser)]
#[command(name = "fulcrum", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground until SIGTERM or SIGINT.
    Agent(AgentArgs),
    /// Show whether the agent is connected, to which relay, the repositories it watches and its
    /// jobs.
    Status(StatusArgs),
    /// Run a command or a QA step through the relay, so it is recorded, and stream its output
    /// here. `fulcrum run -- make test` runs those words as they are (each one argument);
    /// `fulcrum run -- 'make lint && make test'` (one argument) is a shell command line, run by
    /// `sh -c`; `fulcrum run qa` runs every QA step, `fulcrum run test` one.
    Run(RunArgs),
    /// Print a task's log (`-f` follows it until the task ends): the latest task's, or the
    /// one named by its id or the start of its id.
    Logs(LogsArgs),
    /// List this workspace's recent tasks, newest first.
    Tasks(TasksArgs),
}

/// Options of `fulcrum tasks`.
#[derive(Debug, Clone, clap::Args)]
pub struct TasksArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The agent's state directory [default: a dev agent's `.fulcrum/agent` in this directory
    /// or above, else $XDG_STATE_HOME/fulcrum].
    #[arg(long, env = "FULCRUM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Options of `fulcrum run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A QA step from fulcrum.toml (or detected), or `qa` for all of them in order.
    #[arg(conflicts_with = "command")]
    pub step: Option<String>,
    /// The command and its arguments, after `--`; a single argument is a shell command line.
    #[arg(last = true)]
    pub command: Vec<String>,
    /// The repository, relative to the agent's root [default: the current directory].
    #[arg(long)]
    pub repo: Option<String>,
    /// Extra environment, `NAME=VALUE` (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Time limit in seconds [default: the relay's].
    #[arg(long)]
    pub timeout: Option<u64>,
    /// The agent's state directory [default: a dev agent's `.fulcrum/agent` in this directory
    /// or above, else $XDG_STATE_HOME/fulcrum].
    #[arg(long, env = "FULCRUM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Options of `fulcrum logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// The task: its number (`17` or `#17`), its id, or the id's first characters (at least
    /// 4) [default: the latest task].
    pub task: Option<String>,
    /// Keep printing until the task ends.
    #[arg(short, long)]
    pub follow: bool,
    /// The agent's state directory [default: a dev agent's `.fulcrum/agent` in this directory
    /// or above, else $XDG_STATE_HOME/fulcrum].
    #[arg(long, env = "FULCRUM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

pub use fulcrum_common::{LogFormat, init_logging, shutdown_signal};

/// Options of `fulcrum agent`; flags and `FULCRUM_*` variables win over the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The relay's URL, e.g. https://fulcrum.example.com.
    #[arg(long, env = "FULCRUM_RELAY_URL")]
    pub relay: Option<String>,
    /// The agent token. Prefer --token-file or the config file: a flag shows in `ps`.
    #[arg(long, env = "FULCRUM_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the agent token.
    #[arg(long, env = "FULCRUM_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The directory to watch [default: the current directory].
    #[arg(long, env = "FULCRUM_ROOT")]
    pub root: Option<PathBuf>,
    /// Where to keep state [default: $XDG_STATE_HOME/fulcrum].
    #[arg(long, env = "FULCRUM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for wss:// relays.
    #[arg(long, env = "FULCRUM_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// How many jobs run at once; later ones wait in order [default: 1].
    #[arg(long, env = "FULCRUM_MAX_JOBS")]
    pub max_jobs: Option<usize>,
    /// quic, ws (WebSocket), or auto: QUIC when it gets through, else the WebSocket
    /// [default: auto].
    #[arg(long, env = "FULCRUM_TRANSPORT")]
    pub transport: Option<crate::transport::TransportMode>,
    /// The relay's UDP port for QUIC [default: the relay URL's port].
    #[arg(long, env = "FULCRUM_QUIC_PORT")]
    pub quic_port: Option<u16>,
    /// What this workspace allows callers through the relay, comma-separated: `write`
    /// (remote tools may change files), `run` (tasks may run here), or `none`. A call needs
    /// both this and its token's scope [default: run].
    #[arg(long, env = "FULCRUM_ALLOW", value_parser = parse_policy)]
    pub allow: Option<Scopes>,
    /// The same as adding `write` to --allow (kept for older setups).
    #[arg(long, env = "FULCRUM_ALLOW_WRITES", hide = true)]
    pub allow_writes: bool,
    /// TOML config file (keys: relay_url, token, token_file, root, state_dir, ca_file,
    /// max_jobs, transport, quic_port, allow (a list: "write", "run"), and [[mcp_servers]]
    /// tables with name, command, args and env).
    #[arg(long, env = "FULCRUM_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, env = "FULCRUM_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Stop when standard input closes: for a supervisor that holds the other end of a pipe
    /// (`fulcrum-relay dev`), so the agent never outlives it, however it ends.
    #[arg(long, hide = true)]
    pub stop_with_stdin: bool,
}

/// Options of `fulcrum status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print the full status as JSON.
    #[arg(long)]
    pub json: bool,
    /// The agent's state directory [default: a dev agent's `.fulcrum/agent` in this directory
    /// or above, else $XDG_STATE_HOME/fulcrum].
    #[arg(long, env = "FULCRUM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The agent's config file (no `Debug`: it may hold the token).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    relay_url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    root: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    max_jobs: Option<usize>,
    transport: Option<crate::transport::TransportMode>,
    quic_port: Option<u16>,
    allow: Option<Vec<String>>,
    allow_writes: Option<bool>,
    /// MCP servers the agent hosts in the workspace.
    mcp_servers: Vec<crate::hosted::ServerConfig>,
}

/// Parses a workspace policy: `write`, `run`, both (comma-separated), or `none`.
fn parse_policy(text: &str) -> Result<Scopes, String> {
    if text.trim() == "none" {
        return Ok(Scopes::NONE);
    }
    let scopes = Scopes::parse_list(text).map_err(|e| {
        format!(
            "unknown word {:?}: the policy is `write`, `run`, both, or `none`",
            e.name
        )
    })?;
    if !scopes.is_subset(Scopes::of(&[Scope::Write, Scope::Run])) {
        return Err("the policy is `write`, `run`, both, or `none`".into());
    }
    Ok(scopes)
}

/// The default state directory: `$XDG_STATE_HOME/fulcrum`, else `~/.local/state/fulcrum`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from(".fulcrum-state"))
        .join("fulcrum")
}

impl AgentArgs {
    /// Resolves flags, environment and config file into agent options.
    pub fn resolve(&self) -> Result<AgentOptions> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let url = self
            .relay
            .clone()
            .or(file.relay_url)
            .context("no relay URL: pass --relay or set FULCRUM_RELAY_URL")?;
        let token = match (
            self.token.clone(),
            self.token_file.clone().or(file.token_file),
            file.token,
        ) {
            (Some(t), _, _) => t,
            (None, Some(path), _) => std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read token file {}", path.display()))?
                .trim()
                .to_owned(),
            (None, None, Some(t)) => t,
            (None, None, None) => anyhow::bail!(
                "no agent token: pass --token-file, set FULCRUM_AGENT_TOKEN, or put it in the config file"
            ),
        };
        anyhow::ensure!(!token.is_empty(), "the agent token is empty");
        let root = match self.root.clone().or(file.root) {
            Some(r) => r,
            None => std::env::current_dir().context("cannot determine the current directory")?,
        };
        Ok(AgentOptions {
            relay: RelayTarget {
                url,
                token,
                extra_ca: self.ca_file.clone().or(file.ca_file),
                transport: self.transport.or(file.transport).unwrap_or_default(),
                quic_port: self.quic_port.or(file.quic_port),
            },
            root,
            state_dir: self
                .state_dir
                .clone()
                .or(file.state_dir)
                .map(|d| std::path::absolute(&d).unwrap_or(d))
                .unwrap_or_else(default_state_dir),
            max_jobs: self.max_jobs.or(file.max_jobs).unwrap_or(1).clamp(1, 64),
            policy: {
                let base = match (self.allow, file.allow) {
                    (Some(p), _) => p,
                    (None, Some(list)) => parse_policy(&list.join(","))
                        .map_err(|e| anyhow::anyhow!("allow in the config file: {e}"))?,
                    (None, None) => Scopes::of(&[Scope::Run]),
                };
                if self.allow_writes || file.allow_writes.unwrap_or(false) {
                    Scopes::of(&[Scope::Write]).union(base)
                } else {
                    base
                }
            },
            mcp_servers: file.mcp_servers,
        })
    }
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Agent(args) => {
            init_logging(args.log_format);
            match run_agent(&args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status(args) => status(&args).await,
        Command::Run(args) => match run_task(&args).await {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("fulcrum run: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Tasks(args) => tasks(&args).await,
        Command::Logs(args) => {
            let state_dir = find_state_dir(args.state_dir.as_deref());
            let task = match pick_task(&state_dir, args.task.as_deref()).await {
                Ok(task) => task,
                Err(e) => {
                    eprintln!("fulcrum logs: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let mut out = tokio::io::stdout();
            match control::stream_logs(&state_dir, task, args.follow, &mut out).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fulcrum logs: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `fulcrum run`: asks the relay (through the agent) to record the run, streams its output and
/// returns its exit code.
async fn run_task(args: &RunArgs) -> Result<i32> {
    let state_dir = find_state_dir(args.state_dir.as_deref());
    let run = match (&args.step, args.command.is_empty()) {
        (Some(step), true) => TaskRun::Step { name: step.clone() },
        (None, false) => TaskRun::Command {
            command: command_line(&args.command),
        },
        _ => anyhow::bail!("say what to run: `fulcrum run -- CMD…` or `fulcrum run qa`"),
    };
    let repo = match &args.repo {
        Some(r) => r.clone(),
        None => {
            let status = control::query_status(&state_dir).await?;
            relative_repo(
                &std::env::current_dir()?,
                std::path::Path::new(&status.root),
            )?
        }
    };
    let mut env = std::collections::BTreeMap::new();
    for pair in &args.env {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--env {pair:?}: expected NAME=VALUE"))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    let request = RunRequest {
        repo,
        run,
        env,
        timeout_s: args.timeout,
    };
    let started = std::time::Instant::now();
    let task = control::request_run(&state_dir, &request).await?;
    eprintln!("fulcrum: task {task}");
    let mut out = tokio::io::stdout();
    control::stream_logs(&state_dir, task, true, &mut out).await?;
    let end =
        crate::jobs::read_result(&state_dir, task).context("the task ended without a result")?;
    // By its number when the agent knows it (it learns it with the task).
    let handle = recent_tasks(&state_dir)
        .await
        .ok()
        .and_then(|jobs| jobs.into_iter().find(|j| j.task_id == task))
        .map_or_else(|| task.to_string(), |j| j.handle());
    eprintln!("fulcrum: {}", ending_line(&handle, &end, started.elapsed()));
    Ok(end.exit_code_for_terminal())
}

/// This workspace's recent tasks as its agent knows them, newest first.
async fn recent_tasks(state_dir: &std::path::Path) -> Result<Vec<crate::jobs::JobEntry>> {
    let status = control::query_status(state_dir).await?;
    let mut jobs = status.jobs;
    jobs.sort_by_key(|j| std::cmp::Reverse(j.queued_at));
    Ok(jobs)
}

/// The task `wanted` names among the recent ones (a whole id, or the start of one that only
/// one task has), or the latest when it names none.
async fn pick_task(state_dir: &std::path::Path, wanted: Option<&str>) -> Result<uuid::Uuid> {
    if let Some(id) = wanted.and_then(|w| uuid::Uuid::parse_str(w).ok()) {
        return Ok(id);
    }
    let jobs = recent_tasks(state_dir).await?;
    let Some(wanted) = wanted else {
        return jobs
            .first()
            .map(|j| j.task_id)
            .context("this workspace has run no task yet (see `fulcrum run`)");
    };
    // A number: `17` or `#17` (ids have letters or are longer).
    if let Ok(n) = wanted.trim().trim_start_matches('#').parse::<u64>()
        && (wanted.starts_with('#') || wanted.trim().len() < 8)
    {
        return jobs
            .iter()
            .find(|j| j.number == Some(n))
            .map(|j| j.task_id)
            .with_context(|| {
                format!("no recent task #{n} in this workspace; see `fulcrum tasks`")
            });
    }
    let prefix = wanted.trim().to_ascii_lowercase().replace('-', "");
    anyhow::ensure!(
        prefix.len() >= 4 && prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "{wanted:?} is not a task id: give the id, or its first characters, from `fulcrum tasks`"
    );
    let matching: Vec<&crate::jobs::JobEntry> = jobs
        .iter()
        .filter(|j| j.task_id.simple().to_string().starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.task_id),
        [] => anyhow::bail!(
            "no recent task of this workspace starts with {wanted}; see `fulcrum tasks`"
        ),
        many => anyhow::bail!(
            "{} recent tasks start with {wanted}: {}",
            many.len(),
            many.iter()
                .map(|j| j.task_id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `fulcrum tasks`.
async fn tasks(args: &TasksArgs) -> ExitCode {
    let state_dir = find_state_dir(args.state_dir.as_deref());
    let jobs = match recent_tasks(&state_dir).await {
        Ok(jobs) => jobs,
        Err(e) => {
            eprintln!("fulcrum tasks: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&jobs).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    if jobs.is_empty() {
        println!("No tasks yet: `fulcrum run -- CMD` runs one.");
        return ExitCode::SUCCESS;
    }
    let now = Utc::now();
    let since = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>| {
        human_duration((to - from).to_std().unwrap_or_default())
    };
    println!(
        "{:<12}  {:<10}  {:<16}  {:<12}  COMMAND",
        "ID", "STATE", "QUEUED", "TOOK"
    );
    for job in &jobs {
        let id = job.handle();
        let took = match (job.started_at, job.finished_at) {
            (Some(start), Some(end)) => since(start, end),
            (Some(start), None) => format!("{}…", since(start, now)),
            _ => "-".into(),
        };
        let repo = if job.repo == "." || job.repo.is_empty() {
            String::new()
        } else {
            format!("  (in {})", job.repo)
        };
        println!(
            "{:<12}  {:<10}  {:<16}  {:<12}  {}{repo}",
            id,
            job.state.replace('_', " "),
            format!("{} ago", since(job.queued_at, now)),
            took,
            job.label,
        );
    }
    ExitCode::SUCCESS
}

/// The repository path for the current directory: relative to the agent's root.
fn relative_repo(cwd: &std::path::Path, root: &std::path::Path) -> Result<String> {
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_owned());
    let rel = cwd.strip_prefix(root).map_err(|_| {
        anyhow::anyhow!(
            "the current directory is outside the agent's root {}; pass --repo",
            root.display()
        )
    })?;
    let rel = rel.to_string_lossy();
    Ok(if rel.is_empty() {
        ".".into()
    } else {
        rel.into_owned()
    })
}

/// The command line a run records: one argument is already a shell command line; several are
/// words, each quoted as needed.
pub fn command_line(args: &[String]) -> String {
    match args {
        [one] => one.clone(),
        many => shell_join(many),
    }
}

/// The last line `fulcrum run` prints: the task, its state, how it ended and how long it took.
pub fn ending_line(task: &str, end: &crate::jobs::JobEnd, took: std::time::Duration) -> String {
    let how = match (end.exit_code, end.signal, &end.message) {
        (Some(code), _, _) => format!("exit {code}"),
        (None, Some(signal), _) => format!("signal {signal}"),
        (None, None, Some(why)) => why.clone(),
        (None, None, None) => "no exit status".into(),
    };
    format!(
        "task {task} {} ({how}) in {}",
        end.state.replace('_', " "),
        human_duration(took)
    )
}

/// A duration as people say it: `850 ms`, `4.2 s`, `3 min 07 s`, `1 h 02 min`.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// The state directory a terminal command talks to: the one given (`--state-dir` or
/// `FULCRUM_STATE_DIR`); else a dev agent's, found by walking up from the current directory to
/// a `.fulcrum/agent` holding an agent socket (what `fulcrum-relay dev` makes); else the
/// default one.
pub fn find_state_dir(given: Option<&std::path::Path>) -> PathBuf {
    if let Some(dir) = given {
        return std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors().take(64) {
            let candidate = dir.join(".fulcrum").join("agent");
            if control::socket_path(&candidate).exists() {
                return candidate;
            }
        }
    }
    default_state_dir()
}

/// Joins arguments into one shell command line, quoting those that need it.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run_agent(args: &AgentArgs) -> Result<()> {
    let agent = RunningAgent::start(args.resolve()?).await?;
    tracing::info!(state_dir = %agent.state_dir().display(), "agent started");
    if args.stop_with_stdin {
        tokio::select! {
            () = shutdown_signal() => {}
            () = stdin_closed() => tracing::info!("standard input closed: the supervisor is gone"),
        }
    } else {
        shutdown_signal().await;
    }
    tracing::info!("shutting down");
    agent.stop().await;
    Ok(())
}

/// Resolves when standard input reaches its end (or fails); what it carries is ignored, at most
/// a small buffer at a time. The blocking read runs on a detached thread of its own, so a stop
/// for another reason never waits for it (a read on tokio's blocking pool would hold up the
/// runtime's shutdown).
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read standard input");
                        break;
                    }
                }
            }
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch standard input; stopping on signals only");
            std::future::pending::<()>().await;
        }
    }
}

async fn status(args: &StatusArgs) -> ExitCode {
    let state_dir = find_state_dir(args.state_dir.as_deref());
    match control::query_status(&state_dir).await {
        Ok(s) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", render_status(&s, Utc::now()));
            }
            if s.connection.state == ConnectionState::Connected {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e @ ClientError::NotRunning(_)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "running": false, "error": e.to_string() })
                );
            } else {
                println!("✗ {e}\n  start it with: fulcrum agent --relay URL --token-file FILE");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Formats a duration since `t` like "3m 12s".
fn ago(t: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// The human-readable status report.
pub fn render_status(s: &AgentStatus, now: chrono::DateTime<Utc>) -> String {
    use std::fmt::Write;
    let c = &s.connection;
    let mut out = String::new();
    let since = format!(
        "{} ({} ago)",
        c.since.format("%Y-%m-%d %H:%M:%S UTC"),
        ago(c.since, now)
    );
    match c.state {
        ConnectionState::Connected => {
            let _ = writeln!(out, "● connected to {} since {since}", s.relay_url);
            let rtt = c.rtt_ms.map_or("—".into(), |ms| format!("{ms:.2} ms"));
            let session = c.session_id.map_or("—".into(), |id| id.to_string());
            let transport = match c.transport.as_deref() {
                Some("quic") => "QUIC",
                Some("websocket") => "WebSocket",
                _ => "—",
            };
            let _ = writeln!(
                out,
                "  over {transport} · round-trip {rtt} · session {session}"
            );
        }
        ConnectionState::Connecting => {
            let _ = writeln!(out, "◌ connecting to {} …", s.relay_url);
        }
        ConnectionState::Disconnected => {
            let _ = writeln!(out, "○ not connected to {} (since {since})", s.relay_url);
        }
    }
    if c.state != ConnectionState::Connected {
        if let Some(p) = &c.problem {
            let _ = writeln!(
                out,
                "  {}: {}",
                serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                p.message
            );
        }
        if let Some(at) = c.retry_at {
            let _ = writeln!(
                out,
                "  next attempt in {}",
                ago(now, at.max(now)).replace("0s", "now")
            );
        }
    }
    let _ = writeln!(
        out,
        "  workspace {} · root {} · agent {} (pid {})",
        s.workspace_name, s.root, s.agent_version, s.pid
    );
    if s.unacked > 0 {
        let _ = writeln!(
            out,
            "  {} update(s) awaiting the relay's acknowledgement",
            s.unacked
        );
    }
    for n in &s.notices {
        let _ = writeln!(out, "  notice: {n}");
    }
    let active: Vec<_> = s.jobs.iter().filter(|j| j.end.is_none()).collect();
    if !active.is_empty() {
        let _ = writeln!(out, "\n{} job(s):", active.len());
        for j in active {
            let since = j.started_at.unwrap_or(j.queued_at);
            let _ = writeln!(
                out,
                "  {:<8} {}  {}  (in {}, {})",
                j.state,
                j.task_id,
                j.label.chars().take(60).collect::<String>(),
                j.repo,
                ago(since, now)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} repositor{}:",
        s.repos.len(),
        if s.repos.len() == 1 { "y" } else { "ies" }
    );
    let width = s.repos.iter().map(|r| r.path.len()).max().unwrap_or(0);
    for r in &s.repos {
        let branch = r.branch.clone().unwrap_or_else(|| "(detached)".into());
        let head = match (&r.head_sha, &r.head_summary) {
            (Some(sha), Some(summary)) => format!(
                "{} {}",
                &sha[..sha.len().min(7)],
                summary.chars().take(50).collect::<String>()
            ),
            (Some(sha), None) => sha[..sha.len().min(7)].to_owned(),
            _ => "(no commits)".into(),
        };
        let upstream = r.upstream.as_ref().map_or(String::new(), |u| {
            format!(" → {u} ↑{} ↓{}", r.ahead, r.behind)
        });
        let mut counts = Vec::new();
        for (n, label) in [
            (r.staged, "staged"),
            (r.unstaged, "unstaged"),
            (r.untracked, "untracked"),
            (r.conflicted, "conflicted"),
        ] {
            if n > 0 {
                counts.push(format!("{n} {label}"));
            }
        }
        let counts = if counts.is_empty() {
            "clean".to_owned()
        } else {
            counts.join(", ")
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {branch}{upstream}  {head}\n  {:<width$}  {counts}",
            r.path, ""
        );
    }
    out
}
