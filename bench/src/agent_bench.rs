//! `agent`: the real agent on a large repository: idle footprint and save-to-relay latency.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::{procs, stats};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files in the repository.
    #[arg(long, default_value_t = 50_000)]
    files: usize,
    /// Saves to time.
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Seconds to measure idle CPU.
    #[arg(long, default_value_t = 10)]
    idle_s: u64,
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let ok = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()?
        .success();
    anyhow::ensure!(ok, "git {args:?} failed");
    Ok(())
}

/// Runs the benchmark and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    let repo = tempfile::tempdir()?;
    eprintln!("creating a repository of {} files…", a.files);
    for i in 0..a.files {
        let dir = repo.path().join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::write(dir.join(format!("f{i}.txt")), format!("file {i}\n"))?;
    }
    git(repo.path(), &["init", "-q", "-b", "main"])?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-q", "-m", "many files"])?;

    // git status on the same repository, warm.
    let mut git_times = Vec::new();
    for _ in 0..6 {
        let t = Instant::now();
        git(repo.path(), &["status", "--porcelain"])?;
        git_times.push(t.elapsed());
    }
    git_times.remove(0);

    let relay = procs::RelayProcess::start(None, 15_000).await?;
    let (email, password) = ("bench@example.com", "bench-password-1");
    let token = relay.user_with_token(email, password).await?;
    let access = relay.login(email, password).await?;
    let mut events = relay.events_socket(&access).await?;
    let token_file = relay.dir.path().join("agent-token");
    procs::write_private(&token_file, &token)?;
    let state = tempfile::tempdir()?;
    let mut agent = tokio::process::Command::new(procs::sibling_binary("fulcrum")?)
        .args(["agent", "--relay", &relay.url])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--root")
        .arg(repo.path())
        .arg("--state-dir")
        .arg(state.path())
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = agent.id().context("no pid")?;
    let started = Instant::now();
    wait_for(&mut events, |w| {
        w["online"] == true && w["repos"][0]["head_summary"] == "many files"
    })
    .await?;
    let first_report = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = procs::rss_kib(pid)?;
    let idle_cpu = procs::cpu_percent(pid, Duration::from_secs(a.idle_s)).await?;

    let middle = a.files / 2;
    let file = repo
        .path()
        .join(format!("d{:03}/f{middle}.txt", middle / 100));
    let original = std::fs::read_to_string(&file).unwrap_or_default();
    let mut saves = Vec::new();
    for i in 0..a.samples {
        let modified = i % 2 == 0;
        let t = Instant::now();
        std::fs::write(
            &file,
            if modified {
                format!("{original}edit {i}\n")
            } else {
                original.clone()
            },
        )?;
        let want = if modified { 1 } else { 0 };
        wait_for(&mut events, |w| w["repos"][0]["unstaged"] == want).await?;
        saves.push(t.elapsed());
    }
    // Idle again: give it two quiet seconds before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = procs::rss_kib(pid)?;
    agent.kill().await.ok();

    println!("agent on a repository of {} files", a.files);
    println!(
        "  first full report after start: {:.0} ms",
        first_report.as_secs_f64() * 1000.0
    );
    println!(
        "  agent RSS idle: {:.1} MiB after the first report, {:.1} MiB idle after the saves",
        rss as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    println!(
        "  agent CPU idle: {idle_cpu:.2}% of one core over {} s",
        a.idle_s
    );
    println!(
        "  file save -> relay has the new state (seen on the dashboard feed): {}",
        stats::summarize(saves)
    );
    println!(
        "  git status --porcelain on the same repository: {}",
        stats::summarize(git_times)
    );
    Ok(())
}

async fn wait_for(
    events: &mut crate::wire::Ws,
    mut pred: impl FnMut(&serde_json::Value) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let msg = tokio::time::timeout_at(deadline, events.next())
            .await
            .context("no matching event in 60 s")?;
        let Some(Ok(Message::Text(text))) = msg else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let found = match v["type"].as_str() {
            Some("workspace") => pred(&v["workspace"]),
            Some("snapshot") => v["workspaces"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(&mut pred)),
            _ => false,
        };
        if found {
            return Ok(());
        }
    }
}
