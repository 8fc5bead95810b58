//! `transport`: QUIC against the WebSocket, with the real relay and the real `fulcrum agent`,
//! both over TLS with the same certificate (`wss://` and QUIC).
//!
//! For each transport:
//! - **log throughput**: one job writing `--megabytes` as fast as it can, from `POST
//!   /api/v1/tasks` to the task shown finished on the dashboard feed (its log then fully stored);
//! - **control latency**, first on an idle connection, then while another job streams its log as
//!   fast as it can (on the WebSocket, control frames queue behind the log's bytes: head-of-line
//!   blocking; on QUIC they travel on the control stream):
//!   - the heartbeat round trip the relay measures (`Ping` out, `Pong` back), with the relay
//!     pinging every 100 ms, read from `fulcrum status` as it changes (`--pings` samples);
//!   - `--calls` runs asked for from the workspace terminal, one after the other (`fulcrum run`'s
//!     request: a control frame to the relay, the task recorded in the database, the answer
//!     back), each timed to its answer. This one includes a database write, which waits for
//!     the log's writes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fulcrum_protocol::{RunRequest, TaskRun};
use serde_json::Value;

use crate::{
    jobs_bench::{Rig, is_final, next_json, post_task, rig_with},
    stats,
};

/// Options of `transport`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Megabytes the throughput job writes.
    #[arg(long, default_value_t = 256)]
    megabytes: u64,
    /// Run requests timed, idle and under load.
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Heartbeat round trips collected, idle and under load (one every 100 ms).
    #[arg(long, default_value_t = 100)]
    pings: usize,
}

/// The relay's heartbeat interval here (the relay times one ping at a time, so a round trip
/// longer than this is still measured, but fewer are).
const PING_MS: u64 = 100;

/// Runs `transport` and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    for transport in ["ws", "quic"] {
        let quic = "127.0.0.1:0".parse()?;
        let agents = format!(
            "task_log_limit_bytes = {}\nheartbeat_interval_ms = {PING_MS}\n",
            3_000_000_000u64.max(a.megabytes * 2_000_000)
        );
        let mut rig = rig_with(
            &None,
            &agents,
            Some(quic),
            &["--transport", transport, "--max-jobs", "4"],
        )
        .await?;
        let name = if transport == "ws" {
            "WebSocket (wss)"
        } else {
            "QUIC"
        };

        let (secs, mbps) = throughput(&mut rig, a.megabytes).await?;
        println!(
            "transport {name}: log throughput: {} MB stored in {secs:.2} s = {mbps:.0} MB/s",
            a.megabytes
        );

        let idle = heartbeat_rtts(&rig, a.pings).await?;
        println!("transport {name}: heartbeat round trip, idle: {idle}");
        let idle = control_round_trips(&rig, a.calls).await?;
        println!("transport {name}: run request round trip, idle: {idle}");

        let http = rig.relay.http.clone();
        let flood = post_task(&http, &rig, "yes 0123456789abcdef0123456789abcdef").await?;
        wait_for_log(&rig, &flood, 16_000_000).await?;
        let before = log_bytes(&rig, &flood).await?;
        let loaded = heartbeat_rtts(&rig, a.pings).await?;
        let streamed = log_bytes(&rig, &flood).await? - before;
        println!(
            "transport {name}: heartbeat round trip, while a log streams: {loaded} ({:.0} MB of log stored meanwhile)",
            streamed as f64 / 1e6
        );
        let before = log_bytes(&rig, &flood).await?;
        let loaded = control_round_trips(&rig, a.calls).await?;
        let streamed = log_bytes(&rig, &flood).await? - before;
        println!(
            "transport {name}: run request round trip, while a log streams: {loaded} ({:.0} MB of log stored meanwhile)",
            streamed as f64 / 1e6
        );
        http.post(format!("{}/api/v1/tasks/{flood}/cancel", rig.relay.url))
            .bearer_auth(&rig.access)
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(())
}

/// One job writing `megabytes`: seconds from the POST to the task shown finished, and MB/s.
async fn throughput(rig: &mut Rig, megabytes: u64) -> Result<(f64, f64)> {
    let total = megabytes * 1_000_000;
    let http = rig.relay.http.clone();
    let t0 = Instant::now();
    let id = post_task(
        &http,
        rig,
        &format!("head -c {total} /dev/zero | tr '\\0' x"),
    )
    .await?;
    loop {
        let v = tokio::time::timeout(Duration::from_secs(120), next_json(&mut rig.events))
            .await
            .context("the feed stalled")??;
        if v["type"] == "task" && v["task"]["id"] == id.as_str() && is_final(&v["task"]["state"]) {
            anyhow::ensure!(v["task"]["state"] == "succeeded", "the job failed: {v}");
            anyhow::ensure!(
                v["task"]["log_bytes"].as_u64() == Some(total),
                "the log is not whole: {v}"
            );
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok((secs, total as f64 / secs / 1e6))
}

/// Times `calls` runs asked for through the agent's control socket, one after the other.
async fn control_round_trips(rig: &Rig, calls: usize) -> Result<stats::Summary> {
    let run = RunRequest {
        repo: ".".into(),
        run: TaskRun::Command {
            command: "true".into(),
        },
        env: Default::default(),
        timeout_s: None,
    };
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        fulcrum_agent::control::request_run(&rig.state, &run)
            .await
            .context("the agent refused the run")?;
        samples.push(t.elapsed());
    }
    Ok(stats::summarize(samples))
}

/// Collects `samples` heartbeat round trips: the agent's status shows the relay's latest
/// measurement, which changes with every ping.
async fn heartbeat_rtts(rig: &Rig, samples: usize) -> Result<stats::Summary> {
    let mut out = Vec::with_capacity(samples);
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while out.len() < samples {
        anyhow::ensure!(Instant::now() < deadline, "too few heartbeats");
        let status = fulcrum_agent::control::query_status(&rig.state)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let rtt = status.connection.rtt_ms;
        if rtt.is_some() && rtt != last {
            out.push(Duration::from_secs_f64(rtt.unwrap_or(0.0) / 1000.0));
            last = rtt;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(stats::summarize(out))
}

async fn log_bytes(rig: &Rig, task: &str) -> Result<u64> {
    let v: Value = rig
        .relay
        .http
        .get(format!("{}/api/v1/tasks/{task}", rig.relay.url))
        .bearer_auth(&rig.access)
        .send()
        .await?
        .json()
        .await?;
    Ok(v["data"]["log_bytes"].as_u64().unwrap_or(0))
}

/// Waits until `task` has stored at least `bytes` of log (polling: this is set-up, not timed).
async fn wait_for_log(rig: &Rig, task: &str, bytes: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_bytes(rig, task).await? < bytes {
        anyhow::ensure!(Instant::now() < deadline, "the flood job never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
