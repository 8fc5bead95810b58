//! `transport`: QUIC against the WebSocket, with the real relay and the real `fulcrum agent`,
//! both over TLS with the same certificate (`wss://` and QUIC).
//!
//! For each transport:
//! - **log throughput**: one job writing `--megabytes` as fast as it can, from `POST
//!   /api/v1/tasks` to the task shown finished on the dashboard feed (its log then fully stored);
//! - **control latency**: `--calls` runs asked for from the workspace terminal, one after the
//!   other (`fulcrum run`'s request: a control frame to the relay, the task recorded, the answer
//!   back), each timed to its answer; first on an idle connection, then while another job
//!   streams its log as fast as it can. On the WebSocket the request queues behind the log's
//!   bytes (head-of-line blocking); on QUIC it travels on the control stream.

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
    /// Control round trips timed, idle and under load.
    #[arg(long, default_value_t = 300)]
    calls: usize,
}

/// Runs `transport` and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    for transport in ["ws", "quic"] {
        let quic = "127.0.0.1:0".parse()?;
        let agents = format!(
            "task_log_limit_bytes = {}\n",
            (a.megabytes + 64) * 1_000_000
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

        let idle = control_round_trips(&rig, a.calls).await?;
        println!("transport {name}: control round trip, idle: {idle}");

        let http = rig.relay.http.clone();
        let flood = post_task(&http, &rig, "yes 0123456789abcdef0123456789abcdef").await?;
        wait_for_log(&rig, &flood, 16_000_000).await?;
        let loaded = control_round_trips(&rig, a.calls).await?;
        let streamed = log_bytes(&rig, &flood).await?;
        println!(
            "transport {name}: control round trip, while a log streams: {loaded} ({:.0} MB of log stored meanwhile)",
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
        repo: String::new(),
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
