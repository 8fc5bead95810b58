//! `fulcrum-bench`: the benchmarks named in the issues, as commands anyone can run.
//!
//! Each benchmark starts the real `fulcrum-relay` (and, for `agent`, the real `fulcrum agent`) as
//! separate processes built from this workspace, drives them from this process, and reads their
//! memory and CPU from `/proc`. Build first: `cargo build --release --workspace --bins`.
//!
//! - `idle-agents`: N agent sessions that only heartbeat; relay memory per session and CPU.
//! - `fanout`: dashboard subscribers and agents sending status changes; send-to-receipt latency.
//! - `agent`: agent idle memory/CPU and file-save-to-relay latency on a large repository,
//!   next to `git status` on the same repository.
//! - `dispatch`: job dispatch latency, `POST /api/v1/tasks` to the task shown started.
//! - `logs`: one job's log throughput into storage, and a live follower's lag.
//! - `transport`: QUIC against the WebSocket: log throughput, and control round trips while a
//!   log streams (head-of-line blocking).
//! - `reconnect`: a crashed relay comes back; how long until all of 1,000 agents are online.
//! - `mcp`: MCP tool calls through relay and agent, next to the same calls made directly to
//!   the reference servers over stdio.
//! - `pipelines`: the pipeline engine's overhead per stage transition, 100 runs at once,
//!   resume after a SIGKILL, and streamed LLM text to a dashboard socket.
//! - `activity`: AI activity ingestion per second, reports over a million activities, and the
//!   LLM gateway's added latency on a streamed completion.
//! - `webhooks`: outgoing webhook deliveries per second to a local receiver that checks every
//!   signature, and the time from each event to its delivery.
#![forbid(unsafe_code)]

mod activity_bench;
mod agent_bench;
mod fanout;
mod idle;
mod jobs_bench;
mod mcp_bench;
mod pipelines_bench;
mod procs;
mod reconnect;
mod stats;
mod transport_bench;
mod webhooks_bench;
mod wire;

use clap::{Parser, Subcommand};

/// Fulcrum benchmarks.
#[derive(Debug, Parser)]
#[command(name = "fulcrum-bench", about)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Hold many idle agent sessions on one relay; report relay memory per session and CPU.
    IdleAgents(idle::Args),
    /// Fan status changes out to dashboard subscribers; report latency percentiles.
    Fanout(fanout::Args),
    /// Agent idle footprint and file-save-to-relay latency on a large repository.
    Agent(agent_bench::Args),
    /// Job dispatch latency over 1,000 jobs of `true`.
    Dispatch(jobs_bench::DispatchArgs),
    /// Log throughput of one fast job, with a live follower.
    Logs(jobs_bench::LogsArgs),
    /// QUIC against the WebSocket: log throughput and control latency under a streaming log.
    Transport(transport_bench::Args),
    /// Time for 1,000 agents to be online again after the relay crashed and came back.
    Reconnect(reconnect::Args),
    /// MCP tool calls through relay and agent, next to the same calls over stdio.
    Mcp(mcp_bench::Args),
    /// The pipeline engine: transition overhead, runs at once, resume, streamed text.
    Pipelines(pipelines_bench::Args),
    /// AI activity: ingestion rate, report latency over a million activities, gateway overhead.
    Activity(activity_bench::Args),
    /// Outgoing webhooks: deliveries per second and event-to-delivery latency.
    Webhooks(webhooks_bench::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::IdleAgents(a) => idle::run(a).await,
        Bench::Fanout(a) => fanout::run(a).await,
        Bench::Agent(a) => agent_bench::run(a).await,
        Bench::Dispatch(a) => jobs_bench::dispatch(a).await,
        Bench::Logs(a) => jobs_bench::logs(a).await,
        Bench::Transport(a) => transport_bench::run(a).await,
        Bench::Reconnect(a) => reconnect::run(a).await,
        Bench::Mcp(a) => mcp_bench::run(a).await,
        Bench::Pipelines(a) => pipelines_bench::run(a).await,
        Bench::Activity(a) => activity_bench::run(a).await,
        Bench::Webhooks(a) => webhooks_bench::run(a).await,
    }
}
