//! `dispatch` and `logs`: the job benchmarks, with the real relay and the real `fulcrum agent`.
//!
//! - `dispatch`: 1,000 jobs of `true`, one after the other; for each, the time from
//!   `POST /api/v1/tasks` returning to the dashboard feed showing the task started (which is
//!   after the agent reported it, the relay committed that, and published it: an upper bound on
//!   "the agent reporting the process started").
//! - `logs`: one job writing as fast as it can; bytes per second end to end into storage, and a
//!   live follower on the events socket: how far behind storage it was while the job ran, and
//!   how long after the log was fully stored it had received everything.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{procs, stats, wire::Ws};

/// Options of `dispatch`.
#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    /// Jobs to time.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Run the relay on a fresh PostgreSQL database on this server instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

/// Options of `logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Megabytes the job writes.
    #[arg(long, default_value_t = 256)]
    megabytes: u64,
    /// Run the relay on a fresh PostgreSQL database on this server instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

/// A relay, a user, a live agent on a fresh repository, and the user's event feed.
pub(crate) struct Rig {
    pub relay: procs::RelayProcess,
    _agent: tokio::process::Child,
    _root: tempfile::TempDir,
    /// The agent's state directory (its control socket is there).
    pub state: std::path::PathBuf,
    pub access: String,
    pub workspace: String,
    pub events: Ws,
    pub backend: &'static str,
}

async fn rig(postgres: &Option<String>, agents_config: &str) -> Result<Rig> {
    rig_with(postgres, agents_config, None, &[]).await
}

/// A [`Rig`]; with `tls`, the relay serves HTTPS and QUIC (on that UDP address) and the agent
/// gets `agent_args` plus the CA and QUIC port.
pub(crate) async fn rig_with(
    postgres: &Option<String>,
    agents_config: &str,
    tls: Option<std::net::SocketAddr>,
    agent_args: &[&str],
) -> Result<Rig> {
    let database = match postgres {
        Some(admin) => Some(procs::fresh_postgres(admin).await?),
        None => None,
    };
    let backend = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let relay = procs::RelayProcess::start_opts(procs::Start {
        database,
        agents: agents_config.into(),
        tls,
        ..Default::default()
    })
    .await?;
    let (email, password) = ("bench@example.com", "bench-password-1");
    let token = relay.user_with_token(email, password).await?;
    let access = relay.login(email, password).await?;
    let mut events = relay.events_socket(&access).await?;
    let root = tempfile::tempdir()?;
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(root.path())
        .status()?;
    anyhow::ensure!(status.success(), "git init failed");
    let state = root.path().join(".agent-state");
    let mut agent = tokio::process::Command::new(procs::sibling_binary("fulcrum")?);
    agent
        .args(["agent", "--relay", &relay.url])
        .args(agent_args)
        .arg("--root")
        .arg(root.path())
        .arg("--state-dir")
        .arg(&state);
    if let Some(ca) = &relay.ca {
        agent.arg("--ca-file").arg(ca);
    }
    if let Some(quic) = relay.quic_addr {
        agent.arg("--quic-port").arg(quic.port().to_string());
    }
    let agent = agent
        .env("FULCRUM_AGENT_TOKEN", &token)
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("cannot start fulcrum agent")?;
    let workspace = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let v = next_json(&mut events).await?;
            let online = match v["type"].as_str() {
                Some("workspace") => vec![v["workspace"].clone()],
                Some("snapshot") => v["workspaces"].as_array().cloned().unwrap_or_default(),
                _ => vec![],
            };
            if let Some(w) = online.into_iter().find(|w| w["online"] == true) {
                return Ok::<_, anyhow::Error>(w["id"].as_str().unwrap_or_default().to_owned());
            }
        }
    })
    .await
    .context("the agent did not come online")??;
    Ok(Rig {
        relay,
        _agent: agent,
        _root: root,
        state,
        access,
        workspace,
        events,
        backend,
    })
}

pub(crate) async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(_)) => continue,
            _ => bail!("the events socket closed"),
        }
    }
}

pub(crate) async fn post_task(http: &reqwest::Client, rig: &Rig, command: &str) -> Result<String> {
    let r: Value = http
        .post(format!("{}/api/v1/tasks", rig.relay.url))
        .bearer_auth(&rig.access)
        .json(&json!({ "workspace_id": rig.workspace, "command": command }))
        .send()
        .await?
        .json()
        .await?;
    Ok(r["data"]["id"]
        .as_str()
        .with_context(|| format!("task not accepted: {r}"))?
        .to_owned())
}

pub(crate) fn is_final(state: &Value) -> bool {
    state
        .as_str()
        .and_then(fulcrum_protocol::TaskState::parse)
        .is_some_and(fulcrum_protocol::TaskState::is_final)
}

/// Runs `dispatch` and prints its figures.
pub async fn dispatch(a: DispatchArgs) -> Result<()> {
    let mut rig = rig(&a.postgres, "").await?;
    let http = rig.relay.http.clone();
    let mut samples = Vec::with_capacity(a.jobs);
    let warmup = 20;
    for i in 0..a.jobs + warmup {
        let id = post_task(&http, &rig, "true").await?;
        let posted = Instant::now();
        let mut started = None;
        loop {
            let v = tokio::time::timeout(Duration::from_secs(30), next_json(&mut rig.events))
                .await
                .context("no task event in time")??;
            if v["type"] != "task" || v["task"]["id"] != id.as_str() {
                continue;
            }
            if started.is_none() && !v["task"]["started_at"].is_null() {
                started = Some(posted.elapsed());
            }
            if is_final(&v["task"]["state"]) {
                anyhow::ensure!(v["task"]["state"] == "succeeded", "job failed: {v}");
                break;
            }
        }
        if i >= warmup {
            samples.push(started.context("the task never showed as started")?);
        }
    }
    let s = stats::summarize(samples);
    println!(
        "dispatch ({}): {} jobs of `true`, POST returned → task shown started on the feed: {s}",
        rig.backend, a.jobs
    );
    Ok(())
}

/// Runs `logs` and prints its figures.
pub async fn logs(a: LogsArgs) -> Result<()> {
    let total = a.megabytes * 1_000_000;
    let mut rig = rig(
        &a.postgres,
        &format!("task_log_limit_bytes = {}\n", total + 1024),
    )
    .await?;
    let http = rig.relay.http.clone();
    let t0 = Instant::now();
    let id = post_task(
        &http,
        &rig,
        &format!("head -c {total} /dev/zero | tr '\\0' x"),
    )
    .await?;
    rig.events
        .send(Message::Text(
            json!({ "type": "follow", "task": id, "offset": 0 })
                .to_string()
                .into(),
        ))
        .await?;
    // The follower: everything arrives over the same feed as the task events.
    let mut followed: u64 = 0;
    let mut stored_at: Option<Instant> = None;
    let mut lags: Vec<u64> = Vec::new();
    let mut last_probe = Instant::now();
    let done_following;
    loop {
        let v = tokio::time::timeout(Duration::from_secs(60), next_json(&mut rig.events))
            .await
            .context("the feed stalled")??;
        match v["type"].as_str() {
            Some("log") if v["task"] == id.as_str() => {
                followed += v["data"].as_str().map_or(0, |d| d.len() as u64 * 3 / 4);
            }
            Some("log_end") if v["task"] == id.as_str() => {
                done_following = Instant::now();
                break;
            }
            Some("task") if v["task"]["id"] == id.as_str() && is_final(&v["task"]["state"]) => {
                stored_at.get_or_insert_with(Instant::now);
            }
            _ => {}
        }
        if stored_at.is_none() && last_probe.elapsed() >= Duration::from_millis(100) {
            last_probe = Instant::now();
            let r: Value = http
                .get(format!("{}/api/v1/tasks/{id}", rig.relay.url))
                .bearer_auth(&rig.access)
                .send()
                .await?
                .json()
                .await?;
            let stored = r["data"]["log_bytes"].as_u64().unwrap_or(0);
            lags.push(stored.saturating_sub(followed));
        }
    }
    let stored_at = stored_at.unwrap_or(done_following);
    let elapsed = (stored_at - t0).as_secs_f64();
    lags.sort_unstable();
    let p50 = lags.get(lags.len() / 2).copied().unwrap_or(0);
    let max = lags.last().copied().unwrap_or(0);
    let rate = total as f64 / elapsed / 1e6;
    println!(
        "logs ({}): {} MB stored in {:.2} s = {rate:.0} MB/s end to end; follower got all {} bytes {:.0} ms after the log was stored; follower behind storage while running: p50 {:.1} MB ({:.0} ms at this rate), max {:.1} MB",
        rig.backend,
        a.megabytes,
        elapsed,
        followed,
        done_following
            .saturating_duration_since(stored_at)
            .as_secs_f64()
            * 1000.0,
        p50 as f64 / 1e6,
        p50 as f64 / 1e6 / rate * 1000.0,
        max as f64 / 1e6,
    );
    Ok(())
}
