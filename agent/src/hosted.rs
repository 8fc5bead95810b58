//! MCP servers that live in the workspace, hosted by the agent.
//!
//! Each server in the agent's config (`[[mcp_servers]]`: name, command, args, env) runs as a
//! child process speaking MCP over stdio, driven by `rmcp`'s client. The agent lists its tools
//! once it has started and publishes them as part of its [`ToolCatalog`], which the relay serves
//! on its MCP endpoint, namespaced by server. A server that exits or fails to start is started
//! again after a backoff that doubles from 1 s to 60 s (and starts over once a run lasted a
//! minute); meanwhile the catalog says why it is down and calls to it fail with that reason.
//!
//! A server gets the agent's environment without the agent's own secrets (the token), plus the
//! variables of its config entry, and runs in the workspace root in its own process group.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fulcrum_protocol::tools::{
    self, HostedServer, HostedTool, MAX_DESCRIPTION_BYTES, MAX_SCHEMA_BYTES, ToolOutput,
};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResponse},
    service::Peer,
    transport::TokioChildProcess,
};
use serde::Deserialize;
use tokio::sync::watch;

/// How long a server has to answer its handshake and list its tools.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// First restart delay.
const RESTART_MIN: Duration = Duration::from_secs(1);
/// Longest restart delay.
const RESTART_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the restart delay.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a server has to exit when the agent stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Kills a process group when dropped.
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Bytes of each stderr line kept.
const MAX_STDERR_LINE: usize = 300;
/// Lines of a server's stderr kept to explain why it stopped.
const STDERR_LINES: usize = 5;
/// Environment variables a hosted server never inherits from the agent.
const SECRET_VARS: &[&str] = &["FULCRUM_AGENT_TOKEN", "FULCRUM_AGENT_TOKEN_FILE"];

/// One `[[mcp_servers]]` entry of the agent's config file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The name its tools are listed under: 1 to 32 of `a-z 0-9 - _` (no `__`).
    pub name: String,
    /// The program to run.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (their values are hidden in `Debug` output).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &fulcrum_protocol::tasks::RedactedEnv(&self.env))
            .finish()
    }
}

/// Checks a list of server configs: valid, unique names and a command each.
pub fn check_configs(configs: &[ServerConfig]) -> Result<(), String> {
    if configs.len() > tools::MAX_HOSTED_SERVERS {
        return Err(format!(
            "at most {} MCP servers may be hosted",
            tools::MAX_HOSTED_SERVERS
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in configs {
        if !tools::valid_server_name(&c.name) {
            return Err(format!(
                "MCP server name {:?} must be 1 to 32 of a-z, 0-9, - and _ (no __, not ending in _)",
                c.name
            ));
        }
        if !seen.insert(&c.name) {
            return Err(format!("MCP server name {:?} is used twice", c.name));
        }
        if c.command.trim().is_empty() {
            return Err(format!("MCP server {} has no command", c.name));
        }
    }
    Ok(())
}

/// A running server's handle and its state for the catalog.
struct Slot {
    peer: Option<Peer<RoleClient>>,
    state: HostedServer,
}

/// The hosted servers: their supervisors, their live handles and the catalog they make up.
#[derive(Clone)]
pub struct Hosted {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    changed: watch::Sender<u64>,
    supervisors: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Hosted {
    /// Starts a supervisor for each configured server, in `root`; they stop with `shutdown`.
    pub fn start(
        configs: Vec<ServerConfig>,
        root: PathBuf,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let hosted = Self {
            slots: Arc::new(Mutex::new(
                configs
                    .iter()
                    .map(|c| {
                        let state = HostedServer {
                            name: c.name.clone(),
                            running: false,
                            problem: Some("starting".into()),
                            tools: Vec::new(),
                        };
                        (c.name.clone(), Slot { peer: None, state })
                    })
                    .collect(),
            )),
            changed: watch::channel(0).0,
            supervisors: Default::default(),
        };
        let handles = configs
            .into_iter()
            .map(|config| {
                tokio::spawn(supervise(
                    hosted.clone(),
                    config,
                    root.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        *hosted.supervisors.lock().unwrap_or_else(|e| e.into_inner()) = handles;
        hosted
    }

    /// Waits until every server has stopped (after the agent's shutdown began).
    pub async fn stopped(&self) {
        let handles =
            std::mem::take(&mut *self.supervisors.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The servers as the catalog shows them.
    pub fn servers(&self) -> Vec<HostedServer> {
        self.lock().values().map(|s| s.state.clone()).collect()
    }

    /// Wakes whenever the catalog changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn set(&self, name: &str, peer: Option<Peer<RoleClient>>, state: HostedServer) {
        if let Some(slot) = self.lock().get_mut(name) {
            slot.peer = peer;
            slot.state = state;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Calls `tool` on server `server` with `args` (a JSON object), within `timeout`. A tool
    /// not marked read-only needs a caller that `may_write` and a `writable` workspace.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        args: serde_json::Map<String, serde_json::Value>,
        may_write: bool,
        writable: bool,
        timeout: Duration,
    ) -> ToolOutput {
        let (peer, read_only) = {
            let slots = self.lock();
            let Some(slot) = slots.get(server) else {
                return ToolOutput::error(format!("this workspace hosts no MCP server {server:?}"));
            };
            let Some(peer) = slot.peer.clone() else {
                let why = slot.state.problem.as_deref().unwrap_or("not running");
                return ToolOutput::error(format!("the MCP server {server} is down: {why}"));
            };
            let read_only = slot
                .state
                .tools
                .iter()
                .find(|t| t.name == tool)
                .map(|t| t.read_only);
            (peer, read_only)
        };
        match read_only {
            None => {
                return ToolOutput::error(format!(
                    "this workspace hosts no MCP tool {server}__{tool}"
                ));
            }
            Some(false) if !may_write => {
                return ToolOutput::error(format!(
                    "{server}__{tool} may change the workspace, and this token lacks the `write` \
                     scope"
                ));
            }
            Some(false) if !writable => {
                return ToolOutput::error(format!(
                    "{server}__{tool} may change the workspace, and the workspace's policy does \
                     not allow `write` (its agent runs without `write` in --allow)"
                ));
            }
            Some(_) => {}
        }
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
        match tokio::time::timeout(timeout, peer.call_tool_once(params)).await {
            Err(_) => ToolOutput::error(format!(
                "the MCP server {server} did not answer within {} s",
                timeout.as_secs()
            )),
            Ok(Err(e)) => ToolOutput::error(format!("the MCP server {server} failed: {e}")),
            Ok(Ok(CallToolResponse::Complete(result))) => {
                let text: Vec<&str> = result
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
                    .collect();
                let mut text = text.join("\n");
                tools::cut(
                    &mut text,
                    tools::MAX_REPLY_TEXT_BYTES - 256,
                    "\n[… cut: the server's answer exceeded 512 KiB]\n",
                );
                let structured = result
                    .structured_content
                    .map(|v| v.to_string())
                    .filter(|s| s.len() <= tools::MAX_REPLY_TEXT_BYTES);
                ToolOutput {
                    text,
                    is_error: result.is_error.unwrap_or(false),
                    structured_json: structured,
                }
            }
            Ok(Ok(_)) => ToolOutput::error(format!(
                "the MCP server {server} asked for more input, which Fulcrum does not relay"
            )),
        }
    }
}

/// Runs one server for the agent's lifetime: start, list tools, wait for it to end, back off,
/// start again.
async fn supervise(
    hosted: Hosted,
    config: ServerConfig,
    root: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = RESTART_MIN;
    loop {
        let began = Instant::now();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let problem = run_once(&hosted, &config, &root, stderr_tail.clone(), &mut shutdown).await;
        if *shutdown.borrow() {
            return;
        }
        let tail: Vec<String> = stderr_tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let mut problem = problem;
        if !tail.is_empty() {
            problem.push_str(&format!("; its last output: {}", tail.join(" | ")));
        }
        tools::cut(&mut problem, 2048, "…");
        if began.elapsed() >= HEALTHY_RUN {
            delay = RESTART_MIN;
        }
        tracing::warn!(server = %config.name, retry_in = ?delay, "hosted MCP server stopped: {problem}");
        hosted.set(
            &config.name,
            None,
            HostedServer {
                name: config.name.clone(),
                running: false,
                problem: Some(format!("{problem} (restarting in {} s)", delay.as_secs())),
                tools: Vec::new(),
            },
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = crate::link::stopping(&mut shutdown) => return,
        }
        delay = (delay * 2).min(RESTART_MAX);
    }
}

/// Starts the server, publishes its tools, and returns why it stopped.
async fn run_once(
    hosted: &Hosted,
    config: &ServerConfig,
    root: &std::path::Path,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    shutdown: &mut watch::Receiver<bool>,
) -> String {
    let mut command = tokio::process::Command::new(&config.command);
    command
        .args(&config.args)
        .current_dir(root)
        .envs(&config.env)
        .process_group(0)
        .kill_on_drop(true);
    for var in SECRET_VARS {
        command.env_remove(var);
    }
    let (transport, stderr) = match TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(spawned) => spawned,
        Err(e) => return format!("cannot start {:?}: {e}", config.command),
    };
    // Whatever the server started (npx, uvx and the like start children) ends with it.
    let _group = transport.id().map(GroupKill);
    if let Some(stderr) = stderr {
        let name = config.name.clone();
        tokio::spawn(keep_stderr_tail(stderr, name, stderr_tail));
    }
    let starting = tokio::time::timeout(START_TIMEOUT, async {
        let client = ().serve(transport).await.map_err(|e| e.to_string())?;
        let listed = client.list_all_tools().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((client, listed))
    });
    let started = tokio::select! {
        started = starting => started,
        _ = crate::link::stopping(shutdown) => return "the agent is stopping".into(),
    };
    let (client, listed) = match started {
        Err(_) => return format!("no handshake within {} s", START_TIMEOUT.as_secs()),
        Ok(Err(e)) => return format!("the MCP handshake failed: {e}"),
        Ok(Ok(started)) => started,
    };
    let tools = catalog_tools(&config.name, listed);
    tracing::info!(server = %config.name, tools = tools.len(), "hosted MCP server running");
    hosted.set(
        &config.name,
        Some(client.peer().clone()),
        HostedServer {
            name: config.name.clone(),
            running: true,
            problem: None,
            tools,
        },
    );
    let stop = client.cancellation_token();
    let waiting = client.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        quit = &mut waiting => format!("it exited ({quit:?})"),
        _ = crate::link::stopping(shutdown) => {
            // Close its stdin and wait for it to exit (SIGTERM, then SIGKILL, if it lingers).
            stop.cancel();
            let _ = tokio::time::timeout(STOP_TIMEOUT, waiting).await;
            "the agent is stopping".into()
        }
    }
}

/// Drains a server's stderr to the end, keeping its last lines (each cut to 300 bytes) to say
/// why it stopped. Reads bytes, so neither invalid UTF-8 nor a line without end stops it.
async fn keep_stderr_tail(
    mut stderr: tokio::process::ChildStderr,
    name: String,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    let finish = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line).into_owned();
        line.clear();
        tracing::debug!(server = %name, "{text}");
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                finish(&mut line);
            } else if line.len() < MAX_STDERR_LINE {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        finish(&mut line);
    }
}

/// The server's tools as the catalog carries them: valid names only, long parts cut or left
/// out, at most [`tools::MAX_TOOLS_PER_SERVER`].
fn catalog_tools(server: &str, listed: Vec<rmcp::model::Tool>) -> Vec<HostedTool> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for t in listed {
        if !tools::valid_tool_name(&t.name) || seen.insert(t.name.to_string(), ()).is_some() {
            tracing::warn!(server, tool = %t.name, "tool left out: its name is invalid or repeated");
            continue;
        }
        let schema = serde_json::Value::Object((*t.input_schema).clone()).to_string();
        if schema.len() > MAX_SCHEMA_BYTES {
            tracing::warn!(server, tool = %t.name, "tool left out: its input schema is too large");
            continue;
        }
        let mut description = t.description.map(|d| d.to_string()).unwrap_or_default();
        tools::cut(&mut description, MAX_DESCRIPTION_BYTES - 3, "…");
        out.push(HostedTool {
            name: t.name.to_string(),
            description,
            input_schema_json: schema,
            read_only: t
                .annotations
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false),
        });
        if out.len() == tools::MAX_TOOLS_PER_SERVER {
            break;
        }
    }
    out
}
