//! The agents' QUIC door: a UDP endpoint with the relay's TLS certificate and the ALPN id
//! `fulcrum/1`, carrying the same sessions as the WebSocket door.
//!
//! The agent opens one bidirectional control stream and sends its token first (see
//! [`fulcrum_protocol::quic`]); a refused token gets a `Reject` frame, as on the WebSocket. Each
//! task's messages come on a stream of their own, which [`super::transport::QuicSource`] merges
//! back into sequence order. On shutdown the endpoint stops accepting; open sessions tell their
//! agents to reconnect, as WebSocket sessions do.
//!
//! The endpoint's stateless-reset key is kept in the database, so a relay that restarts (or
//! another node sharing the database) answers packets of connections it has forgotten with a
//! reset the agent trusts: the agent learns at once that its connection is gone, instead of
//! waiting for a heartbeat to go unanswered.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use fulcrum_protocol::{
    RejectReason,
    quic::{MAX_AUTH_BYTES, QuicAuth},
};
use tokio::task::JoinHandle;

use super::{
    session,
    transport::{Outgoing, QuicSource, Source},
};
use crate::{http::error::ErrorKind, state::AppState};

/// How long a client has to finish the QUIC handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Task streams an agent may have open at once.
const MAX_TASK_STREAMS: u32 = 64;
/// Flow-control window per stream: enough for a fast log on a fast network.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// A connection with no packets at all for this long is gone (heartbeats flow far more often).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Flow-control window for a whole connection: what one agent may have in flight.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Connections between the handshake and the token check, at most; more wait their turn (for
/// up to the handshake timeout), so a reconnect storm is served in order, not refused.
const MAX_UNAUTHENTICATED: usize = 256;
/// Connection attempts the endpoint holds before it refuses new ones.
const MAX_INCOMING: usize = 4096;

/// No pause between stateless resets. quinn's default of one per 20 ms makes a thousand agents
/// whose relay came back wait twenty seconds for theirs, and even one per 100 µs drops most of a
/// burst (agents that connected together send their keep-alives together), each dropped one
/// costing its agent another keep-alive period. A reset is always smaller than the packet that
/// caused it, so answering every one amplifies nothing.
const MIN_RESET_INTERVAL: Duration = Duration::ZERO;

/// The running QUIC endpoint.
pub struct QuicDoor {
    /// The UDP address it is bound to.
    pub addr: SocketAddr,
    endpoint: quinn::Endpoint,
    task: JoinHandle<()>,
}

/// Binds `addr` and accepts agents until the relay shuts down.
pub async fn start(app: AppState, addr: SocketAddr, cert: &Path, key: &Path) -> Result<QuicDoor> {
    let mut tls = crate::tls::tls13_config(cert, key)?;
    tls.alpn_protocols = vec![fulcrum_protocol::quic::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .context("the TLS configuration cannot serve QUIC")?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server
        .transport_config(Arc::new(transport_config()))
        .max_incoming(MAX_INCOMING);
    let reset_key = app
        .store
        .secret("quic_reset_key", &crate::auth::generate_signing_key)
        .await
        .context("cannot load the QUIC reset key")?;
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset_key,
    )));
    // Connection ids are signed too (so a reset goes only to ids this relay could have issued),
    // with a key derived from the same secret.
    let derived = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset_key),
        b"fulcrum quic connection ids",
    );
    let cid_key = u64::from_le_bytes(derived.as_ref()[..8].try_into().context("short HMAC")?);
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    endpoint_config.min_reset_interval(MIN_RESET_INTERVAL);
    let socket = std::net::UdpSocket::bind(addr)
        .with_context(|| format!("cannot listen for QUIC on udp/{addr}"))?;
    let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
    let endpoint = quinn::Endpoint::new(endpoint_config, Some(server), socket, runtime)
        .with_context(|| format!("cannot listen for QUIC on udp/{addr}"))?;
    let addr = endpoint.local_addr()?;
    let task = tokio::spawn(accept_loop(app, endpoint.clone()));
    tracing::info!(%addr, "accepting agents over QUIC");
    Ok(QuicDoor {
        addr,
        endpoint,
        task,
    })
}

impl QuicDoor {
    /// Waits for the accept loop to stop (it stops on shutdown) and for closing connections to
    /// say goodbye, up to `deadline`.
    pub async fn stopped(self, deadline: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(deadline, self.task).await;
        let _ = tokio::time::timeout_at(deadline, self.endpoint.wait_idle()).await;
    }
}

/// No task streams until the token is checked (see [`handle`]), and a bounded window.
fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into())
        .max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("idle timeout fits")));
    t
}

async fn accept_loop(app: AppState, endpoint: quinn::Endpoint) {
    let mut shutdown = app.shutdown.clone();
    let unauthenticated = Arc::new(tokio::sync::Semaphore::new(MAX_UNAUTHENTICATED));
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let (app, unauthenticated) = (app.clone(), unauthenticated.clone());
                    tokio::spawn(async move {
                        let permit = tokio::time::timeout(
                            HANDSHAKE_TIMEOUT,
                            unauthenticated.acquire_owned(),
                        )
                        .await;
                        match permit {
                            Ok(Ok(permit)) => handle(app, incoming, permit).await,
                            _ => incoming.refuse(),
                        }
                    });
                }
                None => return,
            },
            _ = crate::state::stopping(&mut shutdown) => {
                // New connections are refused from here on; open sessions end themselves.
                endpoint.set_server_config(None);
                return;
            }
        }
    }
}

/// One connection: handshake, token, then the session. `permit` counts it as unauthenticated
/// until the token is checked.
async fn handle(
    app: AppState,
    incoming: quinn::Incoming,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let peer = incoming.remote_address();
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "QUIC handshake failed"),
        Err(_) => return tracing::debug!(%peer, "QUIC handshake timed out"),
    };
    let wait = Duration::from_millis(app.config.agents.hello_timeout_ms);
    let (send, mut recv) = match tokio::time::timeout(wait, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        _ => {
            conn.close(0u32.into(), b"no control stream in time");
            return;
        }
    };
    let auth = tokio::time::timeout(
        wait,
        fulcrum_protocol::quic::read_prefixed_max(&mut recv, MAX_AUTH_BYTES),
    )
    .await;
    let mut out = Outgoing::Quic(send, conn.clone());
    let secret = match auth {
        Ok(Ok(Some(bytes))) => fulcrum_protocol::decode::<QuicAuth>(&bytes)
            .map(|auth| auth.token)
            .map_err(|e| format!("the first frame must be the token: {e}")),
        Ok(Ok(None) | Err(_)) => Err("the first frame must be the token".to_owned()),
        Err(_) => Err("no token in time".to_owned()),
    };
    let secret = match secret {
        Ok(secret) => secret,
        Err(problem) => {
            session::reject(&mut out, RejectReason::ProtocolViolation, &problem).await;
            return;
        }
    };
    match super::authenticate_secret(&app, Some(&secret), Some(conn.remote_address().ip())).await {
        Ok(token) => {
            drop(permit);
            conn.set_max_concurrent_uni_streams(MAX_TASK_STREAMS.into());
            let source = Source::Quic(QuicSource::new(&conn, recv));
            session::run(app, token, out, source).await;
            // Whatever ended the session, the connection ends with it.
            conn.close(0u32.into(), b"session ended");
        }
        Err(e) => {
            let reason = match e.kind {
                ErrorKind::Unauthorized => RejectReason::Unauthorized,
                _ => RejectReason::Unavailable,
            };
            session::reject(&mut out, reason, &e.message).await;
        }
    }
}
