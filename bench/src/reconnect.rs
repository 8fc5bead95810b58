//! `reconnect`: how long after a crashed relay comes back until all of N agents are online again.
//!
//! The agents are N copies of the agent's real link (`fulcrum_agent::link::Link`: the same
//! dialing, handshake, outbox and backoff with jitter as `fulcrum agent`), in this process, each
//! with its own workspace identity and outbox; only the file monitor and job runner are left
//! out (they have nothing to do here). The relay is the real binary: it is SIGKILLed, kept down
//! for `--down-secs`, and started again on the same address and database. Reported: the time
//! from the relay listening again to the last agent back, the spread of the agents' returns,
//! and how many connection attempts the relay faced per 100 ms at the peak (the herd the
//! jitter spreads out).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use fulcrum_agent::{
    link::{Link, LinkChannels, RelayTarget},
    outbox::DiskOutbox,
    status::{AgentStatus, ConnectionState, SharedStatus},
    transport::TransportMode,
};
use fulcrum_protocol::WorkspaceIdentity;
use tokio::sync::{mpsc, watch};

use crate::{procs, stats};

/// Options of `reconnect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Seconds the relay stays down.
    #[arg(long, default_value_t = 5)]
    down_secs: u64,
    /// `ws` or `quic`.
    #[arg(long, default_value = "ws")]
    transport: String,
}

/// What one agent's link needs kept alive, and its status.
struct BenchAgent {
    status: SharedStatus,
    _keep: (
        mpsc::Sender<fulcrum_agent::link::Update>,
        mpsc::Sender<fulcrum_agent::jobs::JobReport>,
        mpsc::UnboundedReceiver<fulcrum_agent::jobs::JobCommand>,
        mpsc::Sender<fulcrum_agent::link::RunCall>,
    ),
}

/// Runs `reconnect` and prints its figures.
pub async fn run(a: Args) -> Result<()> {
    let transport = match a.transport.as_str() {
        "ws" => TransportMode::Ws,
        "quic" => TransportMode::Quic,
        other => anyhow::bail!("--transport {other}: use ws or quic"),
    };
    let quic = "127.0.0.1:0".parse()?;
    let relay = procs::RelayProcess::start_opts(procs::Start {
        agents: "heartbeat_interval_ms = 15000\n".into(),
        tls: Some(quic),
        ..Default::default()
    })
    .await?;
    let token = relay
        .user_with_token("reconnect@example.com", "bench-password-1")
        .await?;
    let addr: std::net::SocketAddr = relay.url.trim_start_matches("https://").parse()?;
    let quic_addr = relay.quic_addr.context("the relay serves no QUIC")?;
    let ca = relay.ca.clone().context("the relay has no CA")?;

    let started = Instant::now();
    let dirs = tempfile::tempdir()?;
    let (stop, stopping) = watch::channel(false);
    // Counts every connection attempt: each one starts with the state set to connecting.
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut agents = Vec::with_capacity(a.agents);
    for i in 0..a.agents {
        let mut target = RelayTarget::new(relay.url.clone(), token.clone());
        target.transport = transport;
        target.quic_port = Some(quic_addr.port());
        target.extra_ca = Some(ca.clone());
        let status = SharedStatus::new(AgentStatus::starting(&relay.url, "bench", "/bench"));
        let (updates_tx, updates) = mpsc::channel(1);
        let (reports_tx, job_reports) = mpsc::channel(1);
        let (job_commands, commands_rx) = mpsc::unbounded_channel();
        let (runs_tx, run_calls) = mpsc::channel(1);
        let outbox = DiskOutbox::open(&dirs.path().join(i.to_string()))?;
        let identity = WorkspaceIdentity {
            key: format!("reconnect-bench-{i}"),
            name: format!("bench-{i}"),
            hostname: "bench".into(),
            root: "/bench".into(),
            coder: None,
        };
        let link = Link::new(
            target,
            identity,
            status.clone(),
            LinkChannels {
                updates,
                job_reports,
                job_commands,
                run_calls,
                toolbox: fulcrum_agent::tools::Toolbox::new(
                    dirs.path().to_path_buf(),
                    fulcrum_protocol::kinds::Scopes::of(&[fulcrum_protocol::kinds::Scope::Run]),
                    fulcrum_agent::hosted::Hosted::start(
                        Vec::new(),
                        dirs.path().into(),
                        stopping.clone(),
                    ),
                ),
            },
            outbox,
            stopping.clone(),
        )?;
        let mut watch = status.subscribe();
        let counter = attempts.clone();
        tokio::spawn(async move {
            let mut was = watch.borrow().connection.state;
            while watch.changed().await.is_ok() {
                let now = watch.borrow().connection.state;
                if now == ConnectionState::Connecting && was != ConnectionState::Connecting {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                was = now;
            }
        });
        tokio::spawn(link.run());
        agents.push(BenchAgent {
            status,
            _keep: (updates_tx, reports_tx, commands_rx, runs_tx),
        });
    }
    let online = |agents: &[BenchAgent]| {
        agents
            .iter()
            .filter(|a| {
                a.status.subscribe().borrow().connection.state == ConnectionState::Connected
            })
            .count()
    };
    wait_until(Duration::from_secs(120), || online(&agents) == a.agents)
        .await
        .with_context(|| format!("only {} agents connected at first", online(&agents)))?;
    println!(
        "reconnect ({}): {} agents started and connected in {:.2} s",
        a.transport,
        a.agents,
        started.elapsed().as_secs_f64()
    );
    // An agent is back once it is in a session other than the one it had before the crash (a
    // QUIC agent may not notice the crash until the restarted relay resets its connection).
    let session = |agent: &BenchAgent| {
        let s = agent.status.subscribe().borrow().clone();
        (s.connection.state == ConnectionState::Connected)
            .then_some(s.connection.session_id)
            .flatten()
    };
    let before_crash: Vec<_> = agents.iter().map(session).collect();

    // Crash the relay; bring it back after the outage, on the same address and database.
    let dir = relay.kill().await?;
    tokio::time::sleep(Duration::from_secs(a.down_secs)).await; // the outage itself
    let before = attempts.load(Ordering::Relaxed);
    let relay = procs::RelayProcess::start_opts(procs::Start {
        agents: "heartbeat_interval_ms = 15000\n".into(),
        listen: Some(addr),
        tls: Some(quic_addr),
        dir: Some(dir),
        ..Default::default()
    })
    .await?;
    let back = Instant::now();
    let mut returns = Vec::with_capacity(a.agents);
    let mut seen = vec![false; a.agents];
    let mut peak = 0;
    let mut last_attempts = attempts.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while returns.len() < a.agents {
        tick.tick().await;
        anyhow::ensure!(
            back.elapsed() < Duration::from_secs(300),
            "only {} of {} agents came back",
            returns.len(),
            a.agents
        );
        let now = attempts.load(Ordering::Relaxed);
        peak = peak.max(now - last_attempts);
        last_attempts = now;
        for (i, agent) in agents.iter().enumerate() {
            if !seen[i] && session(agent).is_some_and(|s| Some(s) != before_crash[i]) {
                seen[i] = true;
                returns.push(back.elapsed());
            }
        }
    }
    let total = back.elapsed();
    let s = stats::summarize(returns);
    println!(
        "reconnect ({}): relay down {} s, then all {} agents online {:.2} s after it listened again; returns: {s}; {} attempts after the restart, at most {peak} in one 100 ms",
        a.transport,
        a.down_secs,
        a.agents,
        total.as_secs_f64(),
        attempts.load(Ordering::Relaxed) - before,
    );
    let _ = stop.send(true);
    drop(relay);
    Ok(())
}

/// Polls `done` every 50 ms until it holds or `within` passes.
async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
