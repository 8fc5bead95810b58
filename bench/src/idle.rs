//! `idle-agents`: many agent sessions that only answer heartbeats.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use fulcrum_protocol::{AgentFrame, RelayFrame};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::{procs, wire};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sessions to hold.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// The relay's heartbeat interval.
    #[arg(long, default_value_t = 15_000)]
    heartbeat_ms: u64,
    /// How long to measure CPU while the sessions idle.
    #[arg(long, default_value_t = 30)]
    window_s: u64,
    /// Connections opened at once while ramping up.
    #[arg(long, default_value_t = 200)]
    ramp: usize,
}

/// Runs the benchmark and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    let relay = procs::RelayProcess::start(None, a.heartbeat_ms).await?;
    let token = relay
        .user_with_token("bench@example.com", "bench-password-1")
        .await?;
    // Let the relay settle, then take its baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = procs::rss_kib(relay.pid)?;
    let connected = Arc::new(AtomicUsize::new(0));
    let pongs = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(a.ramp));
    let started = Instant::now();
    for i in 0..a.sessions {
        let (url, token, connected, pongs, permits) = (
            relay.url.clone(),
            token.clone(),
            connected.clone(),
            pongs.clone(),
            permits.clone(),
        );
        tokio::spawn(async move {
            let permit = permits.acquire_owned().await;
            let ws = match wire::agent_session(&url, &token, &format!("idle-{i}")).await {
                Ok(ws) => ws,
                Err(e) => {
                    eprintln!("session {i}: {e:#}");
                    return;
                }
            };
            drop(permit);
            connected.fetch_add(1, Ordering::Relaxed);
            let (mut sink, mut stream) = ws.split();
            while let Ok(Some(frame)) = wire::recv(&mut stream).await {
                if let RelayFrame::Ping { nonce, .. } = frame {
                    if wire::send(&mut sink, &AgentFrame::Pong { nonce })
                        .await
                        .is_err()
                    {
                        break;
                    }
                    pongs.fetch_add(1, Ordering::Relaxed);
                }
            }
            connected.fetch_sub(1, Ordering::Relaxed);
        });
    }
    while connected.load(Ordering::Relaxed) < a.sessions {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "only {} of {} sessions connected",
                connected.load(Ordering::Relaxed),
                a.sessions
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = procs::rss_kib(relay.pid)?;
    let cpu = procs::cpu_percent(relay.pid, Duration::from_secs(a.window_s)).await?;
    let after = procs::rss_kib(relay.pid)?;
    let per_session = (held.saturating_sub(base)) as f64 / a.sessions as f64;
    println!(
        "idle-agents: {} sessions on one relay (heartbeat every {} ms)",
        a.sessions, a.heartbeat_ms
    );
    println!("  connected all in {:.1} s", ramp.as_secs_f64());
    println!(
        "  relay RSS: {:.1} MiB before, {:.1} MiB holding them ({:.1} MiB after the window)",
        base as f64 / 1024.0,
        held as f64 / 1024.0,
        after as f64 / 1024.0
    );
    println!("  relay memory per session: {per_session:.1} KiB");
    println!(
        "  relay CPU while idle-heartbeating: {cpu:.2}% of one core over {} s ({} pongs answered in all)",
        a.window_s,
        pongs.load(Ordering::Relaxed)
    );
    println!(
        "  still connected at the end: {}",
        connected.load(Ordering::Relaxed)
    );
    Ok(())
}
