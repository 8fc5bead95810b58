//! Starting and stopping a relay: open the store, bind, serve, and shut down gracefully.
//!
//! [`Relay::start`] returns once the listener is bound, with its real address, so tests bind
//! `127.0.0.1:0` and use the address they get back, with no waiting or guessing.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, ListenerExt},
};
use chrono::Utc;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    auth,
    bus::InProcessBus,
    config::Config,
    sessions::Registry,
    state::AppState,
    store::{self, DynStore},
};

/// How long a graceful shutdown waits for open connections.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// A running relay.
pub struct Relay {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The UDP address agents reach it at over QUIC, when QUIC is on.
    pub quic_addr: Option<SocketAddr>,
    /// Its shared state (for tests and the dev command).
    pub state: AppState,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    quic: Option<crate::gateway::quic::QuicDoor>,
    secure: bool,
    engine: JoinHandle<()>,
}

/// The address a TLS connection came from, given to handlers as `ConnectInfo<Peer>` (plain
/// TCP connections give `ConnectInfo<SocketAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, crate::tls::TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Serves `app` on `listener` until `stopping` turns true.
fn serve<L, C>(
    listener: L,
    app: axum::Router,
    mut stopping: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    for<'a> C: Connected<IncomingStream<'a, L>> + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<C>())
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .await
    })
}

/// Opens the store named in the config, creating the data directory for SQLite.
pub async fn open_store(config: &Config) -> Result<DynStore> {
    let url = config.database_url.expose();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    store::open(url).await.context("cannot open the database")
}

impl Relay {
    /// Opens the store and starts serving.
    pub async fn start(config: Config) -> Result<Self> {
        let store = open_store(&config).await?;
        Self::start_with_store(config, store).await
    }

    /// Starts serving on an already opened store.
    pub async fn start_with_store(config: Config, store: DynStore) -> Result<Self> {
        let key = store
            .secret("token_signing_key", &auth::generate_signing_key)
            .await
            .context("cannot load the token signing key")?;
        store
            .mark_all_offline(Utc::now())
            .await
            .context("cannot reset workspace presence")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let mut config = config;
        // Asked for port 0: URLs the relay gives out name the port it got.
        config.listen = addr;
        if config.public_url.is_none() {
            tracing::warn!(
                base_url = %config.base_url(),
                "no public URL is set: install.sh and the MCP metadata name this relay's own \
                 address, and /mcp accepts only loopback Host names; set --public-url \
                 (FULCRUM_PUBLIC_URL) to the address users reach it at"
            );
        }
        let keys = match &config.master_keys {
            Some(text) => Some(Arc::new(
                crate::secrets::KeyRing::parse(text.expose())
                    .context("cannot read the master keys")?,
            )),
            None => None,
        };
        let sealed = crate::domain::secrets::check_keys(&store, keys.as_deref())
            .await
            .context("the master keys do not open the secrets this relay stores")?;
        tracing::info!(
            master_key = keys.as_ref().map(|k| k.current_id()),
            sealed = sealed.iter().map(|(_, n)| n).sum::<u64>(),
            "secrets at rest"
        );
        // Prices that cannot be read stop the relay here: budgets would count nothing.
        let prices = Arc::new(
            crate::llm::prices::Prices::new(
                config.llm.prices.clone(),
                config.llm.prices_file.clone(),
            )
            .map_err(anyhow::Error::msg)
            .context("the LLM prices cannot be read")?,
        );
        let (stop, stopping) = watch::channel(false);
        let state = compose(
            store,
            auth::Signer::new(&key),
            config,
            (keys, prices),
            stopping.clone(),
        );
        let deactivated = state
            .domain
            .accounts
            .load_deactivated()
            .await
            .context("cannot read the deactivated accounts")?;
        tracing::debug!(deactivated, "accounts");
        tokio::spawn(account_sweep(state.clone()));
        tokio::spawn(oauth_sweep(state.clone()));
        tokio::spawn(crate::gateway::revocation_sweep(state.clone()));
        let engine = tokio::spawn(state.engine.clone().run(stopping.clone()));
        tokio::spawn(state.webhook_dispatcher.clone().run(stopping.clone()));
        tokio::spawn(crate::tasks::lease_sweep(
            state.store.clone(),
            state.feed.clone(),
            std::time::Duration::from_secs(state.config.agents.task_lease_secs),
            stopping.clone(),
        ));
        let app = crate::routes::router(state.clone());
        let tls = match &state.config.tls {
            Some(files) => Some(crate::tls::server_config(
                &files.cert_file,
                &files.key_file,
            )?),
            None => None,
        };
        let secure = tls.is_some();
        let quic = match state.config.quic_tls() {
            Some(files) => {
                let udp = state.config.quic.listen.unwrap_or(addr);
                Some(
                    crate::gateway::quic::start(
                        state.clone(),
                        udp,
                        &files.cert_file,
                        &files.key_file,
                    )
                    .await?,
                )
            }
            _ => None,
        };
        let task = match tls {
            Some(config) => serve::<_, Peer>(
                crate::tls::TlsListener::new(listener, config)?,
                app,
                stopping,
            ),
            None => {
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                serve::<_, SocketAddr>(listener, app, stopping)
            }
        };
        tracing::info!(%addr, tls = secure, "relay listening");
        Ok(Self {
            addr,
            quic_addr: quic.as_ref().map(|q| q.addr),
            state,
            stop,
            task,
            quic,
            secure,
            engine,
        })
    }

    /// `http://ADDR` (`https://` with TLS), the base URL of this relay.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.secure { "https" } else { "http" },
            self.addr
        )
    }

    /// Stops accepting, tells agents to reconnect, and waits (up to a deadline) for open
    /// requests and sessions to finish.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
        match tokio::time::timeout_at(deadline, self.task).await {
            Ok(joined) => joined
                .context("server task panicked")?
                .context("server failed")?,
            Err(_) => tracing::warn!("open connections did not finish before the deadline"),
        }
        // Upgraded sockets run outside the server's bookkeeping; wait for sessions to end.
        if tokio::time::timeout_at(deadline, self.state.sessions.wait_empty())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.state.sessions.len(),
                "agent sessions outlived the deadline"
            );
        }
        if let Some(quic) = self.quic {
            quic.stopped(deadline).await;
        }
        // The engine gives up the leases of the runs it drives, so another node takes them.
        if tokio::time::timeout_at(deadline, self.engine)
            .await
            .is_err()
        {
            tracing::warn!("the pipeline engine did not stop before the deadline");
        }
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// Builds the relay's shared state: each domain service gets exactly what it uses.
fn compose(
    store: DynStore,
    signer: auth::Signer,
    config: Config,
    (keys, prices): (
        Option<Arc<crate::secrets::KeyRing>>,
        Arc<crate::llm::prices::Prices>,
    ),
    shutdown: watch::Receiver<bool>,
) -> AppState {
    use crate::domain::{
        Domain,
        accounts::{AccountPolicy, Accounts},
        projects::Projects,
        tasks::{TaskLimits, Tasks},
        tokens::Tokens,
        workspaces::Workspaces,
    };
    let metrics: Arc<crate::metrics::Metrics> = Default::default();
    let bus: crate::bus::DynBus = Arc::new(InProcessBus::default());
    let sessions = Arc::new(Registry::default());
    let access = Arc::new(crate::access::AccessChanges::new(metrics.clone()));
    let mcp: Arc<crate::mcp::access::McpState> = Default::default();
    let limits = Arc::new(crate::ratelimit::Limits::new(
        config.auth.quotas(),
        config.auth.login_policy(),
    ));
    let feed = Arc::new(crate::tasks::TaskFeed::new(
        store.clone(),
        bus.clone(),
        access.clone(),
    ));
    let workspaces = Workspaces::new(store.clone(), sessions.clone());
    let token_cache: Arc<crate::domain::tokens::TokenCache> = Default::default();
    let on_revoke: crate::domain::tokens::OnRevoke = {
        let (sessions, mcp, metrics) = (sessions.clone(), mcp.clone(), metrics.clone());
        let cache = token_cache.clone();
        Arc::new(move |token| {
            cache.forget(token);
            crate::access::token_revoked(&sessions, &mcp, &metrics, token);
        })
    };
    let tasks = Arc::new(Tasks::new(
        store.clone(),
        sessions.clone(),
        feed.clone(),
        TaskLimits {
            default_timeout_s: config.agents.task_timeout_secs,
            grace_s: config.agents.task_grace_secs,
            log_limit: config.agents.task_log_limit_bytes,
        },
    ));
    let projects = Arc::new(Projects::new(
        store.clone(),
        access.clone(),
        feed.clone(),
        workspaces.clone(),
    ));
    let secrets = Arc::new(crate::domain::secrets::Secrets::new(
        store.clone(),
        keys,
        metrics.clone(),
    ));
    let providers = Arc::new(crate::domain::providers::Providers::new(
        store.clone(),
        secrets.clone(),
        projects.clone(),
    ));
    let activities = Arc::new(crate::domain::activity::Activities::new(
        store.clone(),
        prices.clone(),
        projects.clone(),
        metrics.clone(),
        workspaces.clone(),
        bus.clone(),
    ));
    let webhook_wake = Arc::new(tokio::sync::Notify::new());
    let budgets = Arc::new(crate::domain::budgets::Budgets::new(
        store.clone(),
        prices,
        crate::llm::Client::new(config.llm.limits()),
        metrics.clone(),
        projects.clone(),
        bus.clone(),
        webhook_wake.clone(),
    ));
    let assistant =
        crate::domain::assistant::Assistant::new(store.clone(), budgets.clone(), providers.clone());
    let gateway = crate::domain::llm_gateway::LlmGateway::new(
        budgets.clone(),
        providers.clone(),
        projects.clone(),
        metrics.clone(),
    );
    let run_feed = Arc::new(crate::domain::pipelines::RunFeed::new(
        store.clone(),
        bus.clone(),
    ));
    let engine_wake = Arc::new(tokio::sync::Notify::new());
    let local_runs: Arc<crate::domain::pipelines::engine::LocalRuns> = Default::default();
    let pipelines = crate::domain::pipelines::Pipelines::new(
        store.clone(),
        projects.clone(),
        (tasks.clone(), workspaces.clone()),
        providers.clone(),
        run_feed.clone(),
        engine_wake.clone(),
        local_runs.clone(),
    );
    let engine = Arc::new(crate::domain::pipelines::engine::Engine::new(
        store.clone(),
        (tasks.clone(), workspaces.clone(), bus.clone()),
        budgets.clone(),
        providers.clone(),
        run_feed,
        metrics.clone(),
        crate::domain::pipelines::engine::EngineConfig {
            node: config.pipelines.node_id(&config.data_dir),
            lease: Duration::from_secs(config.pipelines.lease_secs.max(3)),
            max_runs: config.pipelines.max_runs.max(1),
            agent_tools: crate::mcp::catalog::model_tools(
                crate::domain::pipelines::agent_stage::WORKSPACE_TOOLS,
            ),
            ..Default::default()
        },
        engine_wake,
        local_runs,
    ));
    let webhooks = Arc::new(crate::domain::webhooks::Webhooks::new(
        store.clone(),
        projects.clone(),
        secrets.clone(),
        config.webhooks.allow_private_targets,
        webhook_wake.clone(),
    ));
    let webhook_dispatcher = Arc::new(crate::domain::webhooks::deliver::Dispatcher::new(
        store.clone(),
        secrets.clone(),
        config.webhooks.delivery(),
        metrics.clone(),
        webhook_wake,
    ));
    let domain = Domain {
        accounts: Accounts::new(
            store.clone(),
            signer.clone(),
            2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            limits.logins.clone(),
            access.clone(),
            metrics.clone(),
            AccountPolicy {
                signup_enabled: config.auth.signup_enabled,
                access_ttl_secs: config.auth.access_token_ttl_secs,
                refresh_ttl_secs: config.auth.refresh_token_ttl_secs,
            },
            on_revoke.clone(),
        ),
        tasks: tasks.clone(),
        projects: projects.clone(),
        tokens: Tokens::new(
            store.clone(),
            on_revoke.clone(),
            access.clone(),
            limits.clone(),
            token_cache.clone(),
            metrics.clone(),
        ),
        oauth: crate::domain::oauth::OAuth::new(
            store.clone(),
            access.clone(),
            on_revoke,
            token_cache,
            metrics.clone(),
        ),
        workspaces,
        secrets,
        providers,
        budgets,
        pipelines,
        activities,
        gateway,
        assistant,
        prompts: crate::domain::prompts::Prompts::new(store.clone(), projects.clone()),
        webhooks,
    };
    AppState {
        store,
        bus,
        signer,
        config: Arc::new(config),
        sessions,
        shutdown,
        feed,
        domain: Arc::new(domain),
        limits,
        metrics,
        checksums: Default::default(),
        mcp,
        access,
        used_tickets: Default::default(),
        engine,
        webhook_dispatcher,
    }
}

/// How often the OAuth server's dead rows are deleted.
const OAUTH_SWEEP: Duration = Duration::from_secs(600);

/// Deletes OAuth codes, refresh tokens, grants and clients that can no longer be used (so
/// open registration cannot fill the database). Any node may do it; doing it twice is harmless.
async fn oauth_sweep(app: AppState) {
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(OAUTH_SWEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => match app.domain.oauth.prune().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "OAuth rows that can no longer be used"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the OAuth tables"),
            },
            _ = crate::state::stopping(&mut shutdown) => return,
        }
    }
}

/// How often every node looks for accounts deactivated or activated elsewhere.
const ACCOUNT_SWEEP: Duration = Duration::from_millis(500);

/// Follows account status changes made anywhere (the CLI, another node), so a deactivated
/// user's sessions end within a second everywhere. One indexed query per sweep.
async fn account_sweep(app: AppState) {
    let mut shutdown = app.shutdown.clone();
    let mut since = Utc::now();
    let mut tick = tokio::time::interval(ACCOUNT_SWEEP);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                ticks += 1;
                // Every 10 s, the whole list: catches what the 2 s look-back could miss.
                if ticks.is_multiple_of(20) {
                    match app.domain.accounts.reconcile_status().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(corrected = n, "account status reconciled"),
                        Err(e) => tracing::warn!(error = %e, "cannot reconcile account status"),
                    }
                }
                let now = Utc::now();
                // Overlap covers clock steps between nodes; applying a change twice is harmless.
                match app.domain.accounts.follow_status(since - chrono::Duration::seconds(2)).await {
                    Ok(_) => since = now,
                    Err(e) => tracing::warn!(error = %e, "cannot check account changes"),
                }
            }
            _ = crate::state::stopping(&mut shutdown) => return,
        }
    }
}
