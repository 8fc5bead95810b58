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
        let (stop, stopping) = watch::channel(false);
        let requests_per_minute = config.auth.requests_per_minute;
        let login_policy = config.auth.login_policy();
        let state = AppState {
            store,
            bus: Arc::new(InProcessBus::default()),
            signer: auth::Signer::new(&key),
            config: Arc::new(config),
            sessions: Arc::new(Registry::default()),
            shutdown: stopping.clone(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            logs: Default::default(),
            live_tasks: Default::default(),
            limits: Arc::new(crate::ratelimit::Limits::new(
                requests_per_minute,
                login_policy,
            )),
            metrics: Default::default(),
            checksums: Default::default(),
            mcp: Default::default(),
            access: Default::default(),
            used_tickets: Default::default(),
        };
        tokio::spawn(crate::gateway::revocation_sweep(state.clone()));
        tokio::spawn(crate::tasks::lease_sweep(state.clone()));
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
        tracing::info!("relay stopped");
        Ok(())
    }
}
