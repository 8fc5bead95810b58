//! `mcp`: round trips of MCP tool calls through the relay and an agent, next to the same calls
//! made directly to the reference servers over stdio.
//!
//! The relay and `fulcrum agent` are the real binaries; the agent hosts `mcp-server-git` (PyPI)
//! and `@modelcontextprotocol/server-filesystem` (npm), as `scripts/setup.sh` installs them. The
//! client here speaks MCP over Streamable HTTP by hand (JSON-RPC POSTs on one session), so the
//! client's own cost is small and the same for every call. Calls, 1,000 each after a warm-up:
//!
//! - through the relay, built-in: `read_file` (a 4 KiB file) and `git_status`;
//! - through the relay to the hosted servers: `git__git_status`, `fs__read_text_file` (4 KiB);
//! - directly over stdio with `rmcp`'s client: `git_status` on `mcp-server-git`, and
//!   `read_text_file` on the filesystem server.
//!
//! The hosted and the direct calls are taken in turns, one of each per round, so both see the
//! machine in the same state. "Added by the relay path" is the distribution of the per-round
//! differences (through relay and agent, minus directly): the same server doing the same work,
//! reached through relay and agent instead of a local pipe.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rmcp::{ServiceExt, model::CallToolRequestParams, transport::TokioChildProcess};
use serde_json::{Value, json};

use crate::{procs, stats};

/// Options of `mcp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Calls per measurement.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// The venv with `mcp-server-git` [default: ~/.cache/fulcrum/mcp-venv].
    #[arg(long, env = "FULCRUM_MCP_VENV")]
    venv: Option<PathBuf>,
}

/// A hand-driven MCP session over HTTP.
struct Session {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    next_id: u64,
}

impl Session {
    async fn open(http: reqwest::Client, base: &str, token: &str) -> Result<Self> {
        let mut s = Self {
            http,
            url: format!("{base}/mcp"),
            token: token.to_owned(),
            session: String::new(),
            next_id: 0,
        };
        let reply = s
            .post(
                json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": { "name": "fulcrum-bench", "version": "1" } } }),
            )
            .await?;
        s.session = reply
            .headers()
            .get("mcp-session-id")
            .context("no session id")?
            .to_str()?
            .to_owned();
        reply.text().await?;
        s.post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await?
            .text()
            .await?;
        Ok(s)
    }

    async fn post(&self, body: Value) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if !self.session.is_empty() {
            req = req.header("mcp-session-id", &self.session);
        }
        let reply = req.json(&body).send().await?;
        if !reply.status().is_success() {
            bail!("{} answered {}", self.url, reply.status());
        }
        Ok(reply)
    }

    /// A request and its JSON-RPC result.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let text = self
            .post(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await?
            .text()
            .await?;
        let answer = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v["id"] == id)
            .with_context(|| format!("no answer in {text}"))?;
        if answer["error"].is_object() {
            bail!("{method}: {}", answer["error"]);
        }
        Ok(answer["result"].clone())
    }

    /// Calls a tool; fails unless it succeeded.
    async fn call(&mut self, name: &str, args: &Value) -> Result<String> {
        let r = self
            .request("tools/call", json!({ "name": name, "arguments": args }))
            .await?;
        if r["isError"] == true {
            bail!("{name} failed: {}", r["content"]);
        }
        Ok(r["content"][0]["text"].as_str().unwrap_or("").to_owned())
    }
}

/// Times `calls` calls of `name` through the relay, after a tenth as many to warm up.
async fn through_relay(
    mcp: &mut Session,
    name: &str,
    args: &Value,
    calls: usize,
) -> Result<stats::Summary> {
    for _ in 0..calls / 10 {
        mcp.call(name, args).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        mcp.call(name, args).await?;
        samples.push(t.elapsed());
    }
    Ok(stats::summarize(samples))
}

/// A reference server reached directly over stdio with `rmcp`'s client.
struct Direct {
    client: rmcp::service::RunningService<rmcp::RoleClient, ()>,
}

impl Direct {
    async fn start(program: &Path, server_args: &[String]) -> Result<Self> {
        let mut command = tokio::process::Command::new(program);
        command.args(server_args);
        let (transport, _stderr) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok(Self {
            client: ().serve(transport).await?,
        })
    }

    async fn call(&self, name: &str, args: &Value) -> Result<()> {
        let args = args.as_object().cloned().unwrap_or_default();
        let r = self
            .client
            .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
            .await?;
        anyhow::ensure!(r.is_error != Some(true), "{name} failed: {:?}", r.content);
        Ok(())
    }
}

/// The same server's call through relay and agent, and directly, taken in turns (so both see
/// the same machine at the same time): both summaries and the summary of the differences.
async fn paired(
    mcp: &mut Session,
    relay_call: (&str, &Value),
    direct: &Direct,
    direct_call: (&str, &Value),
    calls: usize,
) -> Result<(stats::Summary, stats::Summary, stats::Summary)> {
    for _ in 0..calls / 10 {
        mcp.call(relay_call.0, relay_call.1).await?;
        direct.call(direct_call.0, direct_call.1).await?;
    }
    let (mut through, mut straight, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..calls {
        let t = Instant::now();
        mcp.call(relay_call.0, relay_call.1).await?;
        let r = t.elapsed();
        let t = Instant::now();
        direct.call(direct_call.0, direct_call.1).await?;
        let d = t.elapsed();
        through.push(r);
        straight.push(d);
        added.push(r.saturating_sub(d));
    }
    Ok((
        stats::summarize(through),
        stats::summarize(straight),
        stats::summarize(added),
    ))
}

fn node_modules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp/node_modules")
}

/// Runs `mcp` and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    let venv = a.venv.unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/fulcrum/mcp-venv")
    });
    let python = venv.join("bin/python");
    let fs_server = node_modules().join("@modelcontextprotocol/server-filesystem/dist/index.js");
    anyhow::ensure!(
        python.exists() && fs_server.exists(),
        "run scripts/setup.sh first: it installs mcp-server-git ({}) and the filesystem server ({})",
        python.display(),
        fs_server.display()
    );

    // A repository with a 4 KiB file and a change.
    let repo = tempfile::tempdir()?;
    let root = std::fs::canonicalize(repo.path())?;
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-c", "user.name=b", "-c", "user.email=b@b"])
            .args(args)
            .current_dir(&root)
            .output()
    };
    git(&["init", "-q", "-b", "main"])?;
    let four_k: String = (0..64).map(|i| format!("{i:063}\n")).collect();
    std::fs::write(root.join("four.txt"), &four_k)?;
    std::fs::write(root.join("README.md"), "bench\n")?;
    git(&["add", "."])?;
    git(&["commit", "-qm", "bench"])?;
    std::fs::write(root.join("README.md"), "bench\nchanged\n")?;

    let relay = procs::RelayProcess::start(None, 15_000).await?;
    let (email, password) = ("mcp-bench@example.com", "mcp-bench-password");
    let agent_token = relay.user_with_token(email, password).await?;
    let mcp_token = relay.token(email, "mcp").await?;
    let state = tempfile::tempdir()?;
    let token_file = state.path().join("token");
    procs::write_private(&token_file, &agent_token)?;
    let config = state.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[[mcp_servers]]\nname = \"git\"\ncommand = {python:?}\nargs = [\"-m\", \"mcp_server_git\", \"--repository\", {root:?}]\n\n\
             [[mcp_servers]]\nname = \"fs\"\ncommand = \"node\"\nargs = [{fs_server:?}, {root:?}]\n",
        ),
    )?;
    let _agent = tokio::process::Command::new(procs::sibling_binary("fulcrum")?)
        .args(["agent", "--relay", &relay.url])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .arg("--config")
        .arg(&config)
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;

    let mut mcp = Session::open(relay.http.clone(), &relay.url, &mcp_token).await?;
    // Wait until the agent is online with both hosted servers listed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let workspace = loop {
        let tools = mcp.request("tools/list", json!({})).await?;
        let names: Vec<&str> = tools["tools"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        if names.contains(&"git__git_status") && names.contains(&"fs__read_text_file") {
            let listed: Value =
                serde_json::from_str(&mcp.call("list_workspaces", &json!({})).await?)?;
            break listed["workspaces"][0]["id"]
                .as_str()
                .context("no workspace")?
                .to_owned();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the hosted servers never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let root_s = root.display().to_string();
    let four_path = root.join("four.txt").display().to_string();
    println!(
        "mcp: {} calls each after {} warm-up; relay {} (SQLite), agent over WebSocket, 2 cores",
        a.calls,
        a.calls / 10,
        relay.url
    );

    let read_args = json!({ "workspace": workspace, "path": "four.txt" });
    let text = mcp.call("read_file", &read_args).await?;
    anyhow::ensure!(text == four_k, "read_file returned {} bytes", text.len());
    let status_args = json!({ "workspace": workspace });
    let hosted_status_args = json!({ "workspace": workspace, "repo_path": root_s });
    let hosted_read_args = json!({ "workspace": workspace, "path": four_path });
    let hosted_text = mcp.call("fs__read_text_file", &hosted_read_args).await?;
    anyhow::ensure!(
        hosted_text == four_k,
        "fs__read_text_file returned {} bytes",
        hosted_text.len()
    );

    let relay_read = through_relay(&mut mcp, "read_file", &read_args, a.calls).await?;
    println!("  relay → agent, built-in read_file (4 KiB):      {relay_read}");
    let relay_status = through_relay(&mut mcp, "git_status", &status_args, a.calls).await?;
    println!("  relay → agent, built-in git_status:             {relay_status}");
    let git_server = Direct::start(
        &python,
        &[
            "-m".into(),
            "mcp_server_git".into(),
            "--repository".into(),
            root_s.clone(),
        ],
    )
    .await?;
    let fs_direct = Direct::start(
        Path::new("node"),
        &[fs_server.display().to_string(), root_s.clone()],
    )
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let direct_status_args = json!({ "repo_path": root_s });
    let (through, straight, added) = paired(
        &mut mcp,
        ("git__git_status", &hosted_status_args),
        &git_server,
        ("git_status", &direct_status_args),
        a.calls,
    )
    .await?;
    println!("  relay → agent → mcp-server-git git_status:      {through}");
    println!("  direct stdio mcp-server-git git_status:         {straight}");
    println!(
        "  added by the relay path, git_status: p50 {:.3} ms, p99 {:.3} ms (difference of p50s {:.3} ms)",
        ms(added.p50),
        ms(added.p99),
        ms(through.p50) - ms(straight.p50)
    );
    let direct_read_args = json!({ "path": four_path });
    let (through, straight, added) = paired(
        &mut mcp,
        ("fs__read_text_file", &hosted_read_args),
        &fs_direct,
        ("read_text_file", &direct_read_args),
        a.calls,
    )
    .await?;
    println!("  relay → agent → server-filesystem read (4 KiB): {through}");
    println!("  direct stdio server-filesystem read (4 KiB):    {straight}");
    println!(
        "  added by the relay path, read (4 KiB): p50 {:.3} ms, p99 {:.3} ms (difference of p50s {:.3} ms)",
        ms(added.p50),
        ms(added.p99),
        ms(through.p50) - ms(straight.p50)
    );
    Ok(())
}
