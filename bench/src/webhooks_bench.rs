//! `webhooks`: outgoing webhook delivery, with the real relay process and a local receiver that
//! checks every signature: events per second delivered, and the time from each event to its
//! delivery (p50/p99): a burst to one endpoint (deliveries one at a time, in order), a burst
//! spread over several endpoints, and a steady 50 events a second to one endpoint (the time
//! an event waits when nothing is queued). Events are test events
//! (`POST /api/v1/webhooks/{id}/test`), a burst sent by eight clients at once.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use axum::{body::Bytes, http::HeaderMap};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{procs, stats};

/// Options of `webhooks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events sent per run.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Endpoints of the second run (the first has one).
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Run the relay on a fresh PostgreSQL database on this server instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

/// What the receiver saw: each delivery's time from its event, and whether all signatures held.
#[derive(Default)]
struct Seen {
    lags: Vec<Duration>,
    bad: usize,
    keys: Vec<Vec<u8>>,
}

async fn receive(
    axum::extract::State(seen): axum::extract::State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let now = chrono::Utc::now();
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let payload: Value = serde_json::from_slice(&body).unwrap_or_default();
    let at = payload["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let ok = seen.keys.iter().any(|k| {
        fulcrum_relay::domain::webhooks::sign::header(
            std::slice::from_ref(k),
            &id,
            ts.parse().unwrap_or_default(),
            &body,
        ) == sig
    });
    match at {
        Some(at) if ok => seen.lags.push(
            (now - at.with_timezone(&chrono::Utc))
                .to_std()
                .unwrap_or_default(),
        ),
        _ => seen.bad += 1,
    }
    axum::http::StatusCode::NO_CONTENT
}

async fn call(relay: &procs::RelayProcess, bearer: &str, path: &str, body: Value) -> Result<Value> {
    let resp = relay
        .http
        .post(format!("{}{path}", relay.url))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("{path}: {status}: {v}");
    }
    Ok(v["data"].clone())
}

/// One run: `events` test events spread over `endpoints` new endpoints, as fast as eight
/// clients send them, or one every `pace`.
async fn run_once(
    relay: &procs::RelayProcess,
    access: &str,
    events: usize,
    endpoints: usize,
    pace: Option<Duration>,
) -> Result<()> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut ids = Vec::new();
    for _ in 0..endpoints {
        let e = call(
            relay,
            access,
            "/api/v1/webhooks",
            json!({"url": url, "events": ["webhook_test"]}),
        )
        .await?;
        let key = fulcrum_relay::domain::webhooks::sign::key(e["secret"].as_str().unwrap_or(""))
            .context("a secret")?;
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .push(key);
        ids.push(e["id"].as_str().unwrap_or_default().to_owned());
    }
    let started = Instant::now();
    match pace {
        None => {
            let mut sends = futures_util::stream::iter((0..events).map(|i| {
                let path = format!("/api/v1/webhooks/{}/test", ids[i % ids.len()]);
                async move { call(relay, access, &path, json!({})).await }
            }))
            .buffer_unordered(8);
            while let Some(r) = sends.next().await {
                r?;
            }
        }
        Some(every) => {
            let mut tick = tokio::time::interval(every);
            for i in 0..events {
                tick.tick().await;
                let path = format!("/api/v1/webhooks/{}/test", ids[i % ids.len()]);
                call(relay, access, &path, json!({})).await?;
            }
        }
    }
    let sent = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = {
            let s = seen.lock().unwrap_or_else(|e| e.into_inner());
            s.lags.len() + s.bad
        };
        if got >= events {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {got} of {events} deliveries arrived");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    server.abort();
    let s = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    if s.bad > 0 {
        bail!("{} deliveries had no valid signature", s.bad);
    }
    let how = match pace {
        None => format!("{endpoints} endpoint(s), a burst"),
        Some(p) => format!(
            "{endpoints} endpoint(s), one event every {} ms",
            p.as_millis()
        ),
    };
    println!(
        "{how}: {events} events sent in {:.2} s, all delivered and verified in {:.2} s = {:.0} \
         deliveries/s; relay RSS {} MiB",
        sent.as_secs_f64(),
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        procs::rss_kib(relay.pid)? / 1024
    );
    println!("{how}: event to delivery {}", stats::summarize(s.lags));
    Ok(())
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    let database = match &args.postgres {
        Some(admin) => Some(procs::fresh_postgres(admin).await?),
        None => None,
    };
    let relay = procs::RelayProcess::start_with_keys(
        database,
        "[webhooks]\nallow_private_targets = true\n",
    )
    .await?;
    relay
        .user_with_token("bench@example.com", "bench-password-1")
        .await?;
    let access = relay.login("bench@example.com", "bench-password-1").await?;
    println!(
        "webhooks: relay on {}",
        if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let cpu0 = procs::cpu_time(relay.pid)?;
    let t0 = Instant::now();
    run_once(&relay, &access, args.events, 1, None).await?;
    run_once(&relay, &access, args.events, args.endpoints.max(1), None).await?;
    run_once(
        &relay,
        &access,
        args.events.min(500),
        1,
        Some(Duration::from_millis(20)),
    )
    .await?;
    let cpu = procs::cpu_time(relay.pid)? - cpu0;
    println!(
        "relay CPU over both runs: {:.0}% of one core",
        100.0 * cpu.as_secs_f64() / t0.elapsed().as_secs_f64()
    );
    Ok(())
}
