//! `activity`: AI activity tracking, with the real relay process and an instant stand-in LLM
//! (`fulcrum_tests::llm_standin`):
//!
//! - ingestion: activities per second through `POST /api/v1/ai-activities` (batches of 1,000,
//!   two senders) and through OTLP/HTTP (protobuf, 1,000 GenAI spans a request), with the
//!   relay's CPU and memory: live, as tools report what just happened (timestamps within the
//!   last five minutes), and as a history import (timestamps spread at random over 30 days, the
//!   worst case for the time indexes);
//! - reports: with `--report-rows` activities stored (a million by default, over 30 days, five
//!   tools, four models, five categories), report latency p50/p99 for a month by model, and by
//!   day and tool;
//! - gateway overhead: the same streamed completion asked of the stand-in directly and through
//!   `/llm/v1/chat/completions`; time to first byte and total time, p50/p99, and the
//!   difference.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use fulcrum_tests::llm_standin::{Answer, LlmStandIn};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{procs, stats};

/// Options of `activity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Activities sent for the ingestion figure.
    #[arg(long, default_value_t = 100_000)]
    ingest: usize,
    /// Activities stored before the report figure (the ingestion ones count).
    #[arg(long, default_value_t = 1_000_000)]
    report_rows: usize,
    /// Reports timed.
    #[arg(long, default_value_t = 200)]
    reports: usize,
    /// Completions timed, each way, for the gateway figure.
    #[arg(long, default_value_t = 300)]
    completions: usize,
    /// Run the relay on a fresh PostgreSQL database on this server instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
}

const KEY: &str = "sk-bench-standin-000000000001";
const BATCH: usize = 1000;
const TOOLS: [&str; 5] = ["cursor", "claude-code", "copilot", "codex", "chatgpt"];
const MODELS: [&str; 4] = ["gpt-4o", "claude-sonnet-4", "stand-in-1", "o3"];
const CATEGORIES: [&str; 5] = ["feature", "bugfix", "refactor", "docs", "test"];
/// Timestamps of live reporting: within the last five minutes.
const LIVE: u64 = 300;
/// Timestamps of a history import: anywhere in the last 30 days.
const HISTORY: u64 = 30 * 86_400;

async fn call(
    relay: &procs::RelayProcess,
    bearer: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = relay
        .http
        .request(method, format!("{}{path}", relay.url))
        .bearer_auth(bearer);
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

/// A batch of `n` activities numbered from `first`, spread over the last `spread` seconds.
fn batch(first: usize, n: usize, project: &str, spread: u64) -> Value {
    let now = chrono::Utc::now();
    let items: Vec<Value> = (first..first + n)
        .map(|i| {
            // A cheap deterministic spread.
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let at = now - chrono::Duration::seconds((h % spread) as i64);
            json!({
                "id": format!("bench-{i}"),
                "project_id": project,
                "tool": TOOLS[(h >> 8) as usize % TOOLS.len()],
                "model": MODELS[(h >> 16) as usize % MODELS.len()],
                "category": CATEGORIES[(h >> 24) as usize % CATEGORIES.len()],
                "input_tokens": 500 + (h >> 32) % 4000,
                "output_tokens": 50 + (h >> 40) % 800,
                "latency_ms": 200 + (h >> 44) % 20_000,
                "timestamp": at.to_rfc3339(),
            })
        })
        .collect();
    json!({ "activities": items })
}

/// Sends activities `from..to` (timestamps over the last `spread` seconds) in batches with
/// `senders` at once; the time it took.
async fn ingest(
    relay: &procs::RelayProcess,
    token: &str,
    project: &str,
    (from, to): (usize, usize),
    spread: u64,
    senders: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let starts: Vec<usize> = (from..to).step_by(BATCH).collect();
    let mut stream = futures_util::stream::iter(starts.into_iter().map(|s| {
        let body = batch(s, BATCH.min(to - s), project, spread);
        async move {
            let r = call(
                relay,
                token,
                reqwest::Method::POST,
                "/api/v1/ai-activities",
                Some(body),
            )
            .await?;
            anyhow::ensure!(r["rejected"] == 0, "rejected items: {r}");
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(senders);
    while let Some(r) = stream.next().await {
        r?;
    }
    Ok(started.elapsed())
}

/// An OTLP traces request of `n` GenAI spans numbered from `first` (started over the last
/// `spread` seconds), as protobuf.
fn otlp_spans(first: usize, n: usize, project: &str, spread: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value::Value as V},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };
    let kv = |k: &str, v: V| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let spans = (first..first + n)
        .map(|i| {
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let start = now - (h % spread) * 1_000_000_000;
            Span {
                trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: "chat".into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 200_000_000 + (h >> 44) % 20_000_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", V::StringValue("chat".into())),
                    kv(
                        "gen_ai.request.model",
                        V::StringValue(MODELS[(h >> 16) as usize % MODELS.len()].into()),
                    ),
                    kv(
                        "gen_ai.usage.input_tokens",
                        V::IntValue(500 + ((h >> 32) % 4000) as i64),
                    ),
                    kv(
                        "gen_ai.usage.output_tokens",
                        V::IntValue(50 + ((h >> 40) % 800) as i64),
                    ),
                    kv("fulcrum.project", V::StringValue(project.into())),
                ],
                ..Default::default()
            }
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    V::StringValue(TOOLS[first % TOOLS.len()].into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&req)
}

/// Sends `n` spans over OTLP (started over the last `spread` seconds) in requests of
/// [`BATCH`] with `senders` at once; the time it took.
async fn ingest_otlp(
    relay: &procs::RelayProcess,
    token: &str,
    project: &str,
    (from, n): (usize, usize),
    spread: u64,
    senders: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let url = format!("{}/otlp/v1/traces", relay.url);
    let mut stream = futures_util::stream::iter((from..from + n).step_by(BATCH).map(|s| {
        let body = otlp_spans(s, BATCH.min(from + n - s), project, spread);
        let req = relay
            .http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/x-protobuf")
            .body(body);
        async move {
            let r = req.send().await?;
            anyhow::ensure!(r.status().is_success(), "OTLP export: {}", r.status());
            let body = r.bytes().await?;
            let answer: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse =
                prost::Message::decode(&body[..])?;
            anyhow::ensure!(answer.partial_success.is_none(), "rejected spans: {answer:?}");
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(senders);
    while let Some(r) = stream.next().await {
        r?;
    }
    Ok(started.elapsed())
}

/// One streamed completion; (time to the first byte, total time).
async fn completion(http: &reqwest::Client, url: &str, key: &str) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let resp = http
        .post(url)
        .bearer_auth(key)
        .json(
            &json!({"model": "stand-in-1", "stream": true, "max_tokens": 64,
                      "messages": [{"role": "user", "content": "BENCH hello"}]}),
        )
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "{}", resp.status());
    let mut body = resp.bytes_stream();
    let mut first = None;
    while let Some(piece) = body.next().await {
        piece?;
        first.get_or_insert_with(|| started.elapsed());
    }
    Ok((first.unwrap_or_default(), started.elapsed()))
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    let standin = LlmStandIn::start(KEY).await;
    standin.on(
        "BENCH",
        vec![Answer::text("a short streamed answer in a few pieces")],
    );
    let database = match &args.postgres {
        Some(admin) => Some(procs::fresh_postgres(admin).await?),
        None => None,
    };
    let relay = procs::RelayProcess::start_with_keys(
        database,
        "[llm.prices.\"stand-in-*\"]\ninput = 2.0\noutput = 8.0\n",
    )
    .await?;
    let backend = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    relay
        .user_with_token("bench@example.com", "bench-password-1")
        .await?;
    let access = relay.login("bench@example.com", "bench-password-1").await?;
    let project = call(
        &relay,
        &access,
        reqwest::Method::POST,
        "/api/v1/projects",
        Some(json!({"name": "Bench", "description": "A benchmark project"})),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ingest_token = call(
        &relay,
        &access,
        reqwest::Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "bench", "kind": "ingest"})),
    )
    .await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("activity: relay on {backend}");

    // 1. Ingestion: live, then a history import, through both doors.
    let otlp_n = args.ingest.min(50_000);
    let mut sent = 0;
    let mut spans = 10_000_000;
    for (what, spread) in [("live", LIVE), ("history", HISTORY)] {
        let cpu0 = procs::cpu_time(relay.pid)?;
        let took = ingest(
            &relay,
            &ingest_token,
            &project,
            (sent, sent + args.ingest),
            spread,
            2,
        )
        .await?;
        sent += args.ingest;
        let cpu = procs::cpu_time(relay.pid)? - cpu0;
        println!(
            "ingest {what}: {} activities in {:.2} s = {:.0} activities/s (batches of {BATCH}, \
             2 senders); relay CPU {:.0}% of one core, RSS {} MiB",
            args.ingest,
            took.as_secs_f64(),
            args.ingest as f64 / took.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / took.as_secs_f64(),
            procs::rss_kib(relay.pid)? / 1024
        );

        let cpu0 = procs::cpu_time(relay.pid)?;
        let took = ingest_otlp(&relay, &ingest_token, "Bench", (spans, otlp_n), spread, 2).await?;
        spans += otlp_n;
        sent += otlp_n;
        let cpu = procs::cpu_time(relay.pid)? - cpu0;
        println!(
            "otlp {what}: {otlp_n} GenAI spans in {:.2} s = {:.0} activities/s (protobuf, {BATCH} \
             spans a request, 2 senders); relay CPU {:.0}% of one core, RSS {} MiB",
            took.as_secs_f64(),
            otlp_n as f64 / took.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / took.as_secs_f64(),
            procs::rss_kib(relay.pid)? / 1024
        );
    }

    // 2. Reports over the whole table.
    if args.report_rows > sent {
        let took = ingest(
            &relay,
            &ingest_token,
            &project,
            (sent, args.report_rows),
            HISTORY,
            2,
        )
        .await?;
        println!(
            "filled to {} activities ({:.0}/s)",
            args.report_rows,
            (args.report_rows - sent) as f64 / took.as_secs_f64()
        );
    }
    let from = (chrono::Utc::now() - chrono::Duration::days(31)).date_naive();
    for (what, query) in [
        ("30 days by model", format!("from={from}&group_by=model")),
        (
            "30 days by day and tool",
            format!("from={from}&group_by=day,tool"),
        ),
        (
            "30 days of the project by category",
            format!("from={from}&group_by=category&project={project}"),
        ),
    ] {
        let mut samples = Vec::with_capacity(args.reports);
        let mut total = Value::Null;
        for _ in 0..args.reports {
            let t = Instant::now();
            let r = call(
                &relay,
                &access,
                reqwest::Method::GET,
                &format!("/api/v1/ai-activities/report?{query}"),
                None,
            )
            .await?;
            samples.push(t.elapsed());
            total = r["total"]["activities"].clone();
        }
        println!(
            "report over {total} activities, {what}: {}",
            stats::summarize(samples)
        );
    }

    // 3. Gateway overhead on a streamed completion.
    call(
        &relay,
        &access,
        reqwest::Method::POST,
        "/api/v1/llm-providers",
        Some(
            json!({"name": "stand-in", "kind": "openai", "base_url": standin.url,
                    "default_model": "stand-in-1", "api_key": KEY}),
        ),
    )
    .await?;
    let gw_token = call(
        &relay,
        &access,
        reqwest::Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "gateway", "kind": "api", "scopes": ["run"]})),
    )
    .await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let http = reqwest::Client::new();
    let direct_url = format!("{}/chat/completions", standin.url);
    let gateway_url = format!("{}/llm/v1/chat/completions", relay.url);
    let (mut d_first, mut d_total, mut g_first, mut g_total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.completions + 20 {
        // Interleaved, so both see the same machine; the first 20 warm up.
        let d = completion(&http, &direct_url, KEY).await?;
        let g = completion(&http, &gateway_url, &gw_token).await?;
        if i >= 20 {
            d_first.push(d.0);
            d_total.push(d.1);
            g_first.push(g.0);
            g_total.push(g.1);
        }
    }
    let (df, dt, gf, gt) = (
        stats::summarize(d_first),
        stats::summarize(d_total),
        stats::summarize(g_first),
        stats::summarize(g_total),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("direct  first byte: {df}\ndirect  total:      {dt}");
    println!("gateway first byte: {gf}\ngateway total:      {gt}");
    println!(
        "gateway added: first byte p50 {:.3} ms p99 {:.3} ms; total p50 {:.3} ms p99 {:.3} ms",
        ms(gf.p50) - ms(df.p50),
        ms(gf.p99) - ms(df.p99),
        ms(gt.p50) - ms(dt.p50),
        ms(gt.p99) - ms(dt.p99),
    );
    Ok(())
}
