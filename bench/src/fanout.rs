//! `fanout`: agents send status changes; dashboard subscribers receive them; how long it takes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::{procs, stats, wire};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dashboard subscribers (all of the same user).
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Agents sending changes.
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// Status changes per second, across all agents.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds to measure (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Run the relay on a fresh PostgreSQL database on this server instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

/// Runs the benchmark and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    let database = match &a.postgres {
        Some(admin) => Some(procs::fresh_postgres(admin).await?),
        None => None,
    };
    let backend = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let relay = procs::RelayProcess::start(database, 15_000).await?;
    let (email, password) = ("bench@example.com", "bench-password-1");
    let token = relay.user_with_token(email, password).await?;
    let access = relay.login(email, password).await?;

    let samples = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let measure_from = Arc::new(Mutex::new(None::<Instant>));
    let mut subs = Vec::new();
    for _ in 0..a.subscribers {
        let mut ws = relay.events_socket(&access).await?;
        ws.next().await; // the snapshot
        let (samples, measure_from) = (samples.clone(), measure_from.clone());
        subs.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let Some(at) = text.find("\"head_summary\":\"t=") else {
                    continue;
                };
                let digits: String = text[at + 18..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let Ok(sent) = digits.parse::<u128>() else {
                    continue;
                };
                let counting = measure_from
                    .lock()
                    .unwrap()
                    .is_some_and(|t| Instant::now() >= t);
                if counting {
                    mine.push(Duration::from_nanos(
                        wire::unix_nanos().saturating_sub(sent) as u64,
                    ));
                }
            }
            samples.lock().unwrap().extend(mine);
        }));
    }

    let per_agent = a.rate as f64 / a.agents as f64;
    let total = Duration::from_secs(a.duration_s + 1);
    let mut senders = Vec::new();
    for i in 0..a.agents {
        let ws = wire::agent_session(&relay.url, &token, &format!("fanout-{i}")).await?;
        let (mut sink, mut stream) = ws.split();
        // Drain acks and answer pings.
        tokio::spawn(async move { while let Ok(Some(_)) = wire::recv(&mut stream).await {} });
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_agent));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let start = Instant::now();
            let mut seq = 0;
            while start.elapsed() < total {
                tick.tick().await;
                seq += 1;
                if wire::send(&mut sink, &wire::stamped_state(seq, wire::unix_nanos()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            seq
        }));
    }
    *measure_from.lock().unwrap() = Some(Instant::now() + Duration::from_secs(1));
    let mut sent = 0;
    for s in senders {
        sent += s.await?;
    }
    // Give the last events a moment to arrive, then close the subscribers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(relay);
    for s in subs {
        let _ = s.await;
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let expected = a.rate * a.duration_s * a.subscribers as u64;
    println!(
        "fanout ({backend}): {} subscribers, {} agents, {} changes/s for {} s",
        a.subscribers, a.agents, a.rate, a.duration_s
    );
    println!(
        "  changes sent: {sent}; deliveries measured: {} (expected about {expected})",
        samples.len()
    );
    println!(
        "  agent send -> subscriber receipt: {}",
        stats::summarize(samples)
    );
    Ok(())
}
