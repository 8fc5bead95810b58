//! `pipelines`: the pipeline engine's own cost, with the real relay and agent processes and an
//! instant stand-in LLM (`fulcrum_tests::llm_standin`):
//!
//! - orchestration overhead: a SystemCrafter-shaped chain (seven `llm` stages, then `build`,
//!   `qa` and `deploy` as `run` stages of `true`), run one after the other; the time between a
//!   stage ending and the next one starting, as the engine recorded them (excluding the LLM's
//!   and the task's own time), p50/p99;
//! - 100 runs at once (seven `llm` stages each): stages per second, relay CPU and memory;
//! - resume: the relay SIGKILLed while an answer streams, started again on the same data dir;
//!   from listening again to the run asking for that answer again;
//! - streamed text: pieces stamped with their send time by the stand-in, received on a
//!   dashboard socket; the added latency p50/p99.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use fulcrum_tests::llm_standin::{Answer, LlmStandIn};
use serde_json::{Value, json};

use crate::{
    jobs_bench::{next_json, rig_with},
    procs, stats,
};

/// Options of `pipelines`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs timed one after the other for the transition overhead.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Runs started at once for the throughput figure.
    #[arg(long, default_value_t = 100)]
    concurrent: usize,
    /// Run the relay on a fresh PostgreSQL database on this server instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

const KEY: &str = "sk-bench-standin-000000000001";

/// Seven LLM stages in a chain, then build, QA and deploy as tasks of `true` when `tasks`.
fn chain(tasks: bool) -> String {
    let llm = [
        "requirements",
        "architecture",
        "api",
        "database",
        "backend",
        "frontend",
        "infrastructure",
    ];
    let mut d = String::from("name = \"bench\"\n");
    let mut prev: Option<&str> = None;
    for name in llm {
        d.push_str(&format!(
            "\n[[stages]]\nname = \"{name}\"\nkind = \"llm\"\nprompt = \"STAGE {name}\"\n\
             artifacts = [{{ path = \"{name}.md\" }}]\n"
        ));
        if let Some(p) = prev {
            d.push_str(&format!("needs = [\"{p}\"]\n"));
        }
        prev = Some(name);
    }
    if tasks {
        for name in ["build", "qa", "deploy"] {
            d.push_str(&format!(
                "\n[[stages]]\nname = \"{name}\"\nkind = \"run\"\ncommand = \"true\"\nneeds = [\"{}\"]\n",
                prev.unwrap_or_default()
            ));
            prev = Some(name);
        }
    }
    d
}

/// The config sections a pipeline relay needs besides `[agents]`.
fn sections(keys: &std::path::Path) -> String {
    format!(
        "\n[secrets]\nmaster_keys_file = {keys:?}\n\n[llm]\nbackoff_ms = 5\n\n\
         [llm.prices.\"stand-in-*\"]\ninput = 2.0\noutput = 8.0\n"
    )
}

async fn api(
    relay: &procs::RelayProcess,
    access: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = relay
        .http
        .request(method, format!("{}{path}", relay.url))
        .bearer_auth(access);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("{path}: {status}: {v}");
    }
    Ok(v["data"].clone())
}

fn ts(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// Waits on the events socket until run `id` is in a final state; returns it.
async fn finished(events: &mut crate::wire::Ws, id: &str) -> Result<Value> {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let v = next_json(events).await?;
            if v["type"] == "pipeline_run"
                && v["run"]["id"] == id
                && matches!(
                    v["run"]["state"].as_str(),
                    Some("succeeded" | "failed" | "canceled")
                )
            {
                return Ok::<_, anyhow::Error>(v["run"].clone());
            }
        }
    })
    .await
    .context("the run did not finish in time")?
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    let standin = LlmStandIn::start(KEY).await;
    standin.on("STAGE", vec![Answer::text("done")]);
    standin.on("STAMPED", vec![Answer::Stamped(200)]);
    let keys_dir = tempfile::tempdir()?;
    let keys = keys_dir.path().join("master-keys");
    procs::write_private(
        &keys,
        &fulcrum_relay::secrets::KeyRing::generate_entry("k1"),
    )?;
    let mut rig = rig_with(
        &args.postgres,
        &format!("heartbeat_interval_ms = 15000\n{}", sections(&keys)),
        None,
        &[],
    )
    .await?;
    let access = rig.access.clone();
    let project = api(
        &rig.relay,
        &access,
        reqwest::Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "Bench", "description": "A benchmark project"})),
    )
    .await?;
    let project = project["id"].as_str().unwrap_or_default().to_owned();
    api(
        &rig.relay,
        &access,
        reqwest::Method::PUT,
        &format!("/api/v1/projects/{project}/workspaces/{}", rig.workspace),
        Some(json!({})),
    )
    .await?;
    api(
        &rig.relay,
        &access,
        reqwest::Method::POST,
        "/api/v1/llm-providers",
        Some(
            json!({"name": "stand-in", "kind": "openai", "base_url": standin.url,
                    "default_model": "stand-in-1", "api_key": KEY}),
        ),
    )
    .await?;
    println!(
        "pipelines: relay on {}, instant stand-in LLM, build/qa/deploy tasks of `true`",
        rig.backend
    );

    // 1. Transition overhead, runs one after the other.
    let full = chain(true);
    let mut gaps = Vec::new();
    let mut llm_overheads = Vec::new();
    let mut walls = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let run = api(
            &rig.relay,
            &access,
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            Some(json!({"definition": full})),
        )
        .await?;
        let id = run["id"].as_str().unwrap_or_default().to_owned();
        let done = finished(&mut rig.events, &id).await?;
        walls.push(started.elapsed());
        if done["state"] != "succeeded" {
            bail!("a run did not succeed: {done:#}");
        }
        let stages = done["stages"].as_array().cloned().unwrap_or_default();
        for pair in stages.windows(2) {
            if let (Some(end), Some(start)) =
                (ts(&pair[0]["finished_at"]), ts(&pair[1]["started_at"]))
            {
                gaps.push((start - end).to_std().unwrap_or_default());
            }
        }
        let calls = api(
            &rig.relay,
            &access,
            reqwest::Method::GET,
            &format!("/api/v1/pipeline-runs/{id}/calls"),
            None,
        )
        .await?;
        for s in stages.iter().filter(|s| s["kind"] == "llm") {
            let (Some(a), Some(b)) = (ts(&s["started_at"]), ts(&s["finished_at"])) else {
                continue;
            };
            let latency: i64 = calls
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["stage"] == s["name"])
                .filter_map(|c| c["latency_ms"].as_i64())
                .sum();
            let stage = (b - a).to_std().unwrap_or_default();
            llm_overheads.push(stage.saturating_sub(Duration::from_millis(latency as u64)));
        }
    }
    println!(
        "  stage transition (end of one stage to start of the next, engine timestamps): {}",
        stats::summarize(gaps)
    );
    println!(
        "  llm stage overhead (stage time minus the call's latency: render, journal, \
         reserve, settle, check, artifacts): {}",
        stats::summarize(llm_overheads)
    );
    println!("  whole run of 10 stages: {}", stats::summarize(walls));

    // 2. Many runs at once.
    let short = chain(false);
    let cpu_before = procs::cpu_time(rig.relay.pid)?;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..args.concurrent {
        let run = api(
            &rig.relay,
            &access,
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            Some(json!({"definition": short})),
        )
        .await?;
        ids.push(run["id"].as_str().unwrap_or_default().to_owned());
    }
    let mut left: std::collections::HashSet<String> = ids.iter().cloned().collect();
    let mut peak_rss = procs::rss_kib(rig.relay.pid)?;
    tokio::time::timeout(Duration::from_secs(600), async {
        while !left.is_empty() {
            let v = next_json(&mut rig.events).await?;
            if v["type"] == "pipeline_run" && v["run"]["state"] == "succeeded" {
                left.remove(v["run"]["id"].as_str().unwrap_or_default());
            }
            if v["type"] == "pipeline_run" && v["run"]["state"] == "failed" {
                bail!("a run failed: {}", v["run"]);
            }
            peak_rss = peak_rss.max(procs::rss_kib(rig.relay.pid).unwrap_or(0));
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .context("the runs did not finish in time")??;
    let took = started.elapsed();
    let cpu = procs::cpu_time(rig.relay.pid)? - cpu_before;
    let stages = args.concurrent * 7;
    println!(
        "  {} runs at once, {stages} llm stages: {:.2} s, {:.0} stages/s, relay CPU {:.0}% of one \
         core, peak RSS {:.1} MiB",
        args.concurrent,
        took.as_secs_f64(),
        stages as f64 / took.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / took.as_secs_f64(),
        peak_rss as f64 / 1024.0
    );

    // 3. Streamed text to a dashboard socket.
    let stamped =
        "name = \"stream\"\n[[stages]]\nname = \"talk\"\nkind = \"llm\"\nprompt = \"STAMPED\"\n";
    let run = api(
        &rig.relay,
        &access,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/pipeline-runs"),
        Some(json!({"definition": stamped})),
    )
    .await?;
    let id = run["id"].as_str().unwrap_or_default().to_owned();
    let mut lags = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let v = next_json(&mut rig.events).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            if v["type"] == "pipeline_text" && v["run"] == id.as_str() {
                for part in v["text"].as_str().unwrap_or("").split(';') {
                    if let Some(sent) = part.strip_prefix('T').and_then(|n| n.parse::<u128>().ok())
                    {
                        lags.push(Duration::from_nanos(now.saturating_sub(sent) as u64));
                    }
                }
            }
            if v["type"] == "pipeline_run"
                && v["run"]["id"] == id.as_str()
                && v["run"]["state"] == "succeeded"
            {
                return Ok::<_, anyhow::Error>(());
            }
        }
    })
    .await
    .context("the streaming run did not finish")??;
    println!(
        "  streamed text, stand-in send to dashboard socket receipt: {}",
        stats::summarize(lags)
    );

    // 4. Resume after SIGKILL.
    let (_release, gate) = tokio::sync::watch::channel(false);
    standin.on("HELD", vec![Answer::Hold("held answer".into(), gate)]);
    let held = "name = \"held\"\n[[stages]]\nname = \"wait\"\nkind = \"llm\"\nprompt = \"HELD\"\n";
    let before = standin.count("HELD");
    api(
        &rig.relay,
        &access,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/pipeline-runs"),
        Some(json!({"definition": held})),
    )
    .await?;
    standin.wait_count("HELD", before + 1).await;
    let url = rig.relay.url.clone();
    let listen: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    let database = rig.relay.database();
    let dir = rig.relay.kill().await?;
    let restarted = procs::RelayProcess::start_opts(procs::Start {
        database,
        agents: format!("heartbeat_interval_ms = 15000\n{}", sections(&keys)),
        listen: Some(listen),
        dir: Some(dir),
        ..Default::default()
    })
    .await?;
    let listening = Instant::now();
    standin.wait_count("HELD", before + 2).await;
    println!(
        "  resume after SIGKILL: {:.0} ms from listening again to the run asking again",
        listening.elapsed().as_secs_f64() * 1000.0
    );
    drop(restarted);
    Ok(())
}
