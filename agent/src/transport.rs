//! How the agent reaches the relay: a WebSocket (through `HTTPS_PROXY` when one is set), or QUIC.
//!
//! `--transport auto` (the default) tries QUIC first when the relay URL is `https://`, gives it
//! [`QUIC_ATTEMPT`] to finish its handshake, and falls back to the WebSocket when UDP is blocked
//! or nothing answers; after such a fallback it stays on the WebSocket for [`QUIC_RETRY_AFTER`]
//! before trying QUIC again, so a network without UDP costs one short wait, not one per
//! reconnect. `ws` and `quic` use only that transport.
//!
//! On QUIC (see [`fulcrum_protocol::quic`]) the control stream and each task's stream have a
//! writer task of their own, so the link's loop never waits on a stream's flow control: a job's
//! fast log cannot hold back a heartbeat answer or another job's messages. Whatever the writers
//! hold is bounded by the outbox, which only takes messages while it has room.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use fulcrum_protocol::{
    AgentFrame, AgentMessage, RelayFrame,
    quic::{ALPN, QuicAuth, ReadError, encode_prefixed, read_prefixed, task_stream_of},
};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};
use uuid::Uuid;

use crate::{
    link::RelayTarget,
    status::{Problem, ProblemKind},
};

/// How long `auto` gives a QUIC handshake before it uses the WebSocket instead.
pub const QUIC_ATTEMPT: Duration = Duration::from_millis(1500);
/// How often an idle QUIC connection sends a packet (see [`quic_client_config`]).
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How long `auto` stays on the WebSocket after QUIC failed.
pub const QUIC_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Which transport the agent uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportMode {
    /// QUIC when the relay offers it and UDP gets through, else the WebSocket.
    #[default]
    Auto,
    /// The WebSocket only.
    Ws,
    /// QUIC only.
    Quic,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open connection to the relay.
pub enum Conn {
    /// A WebSocket.
    Ws(Box<Ws>),
    /// A QUIC connection.
    Quic(QuicConn),
}

impl Conn {
    /// The transport's name, as `fulcrum status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ws(_) => "websocket",
            Self::Quic(_) => "quic",
        }
    }

    /// Sends a frame. On QUIC this only queues it for the stream's writer; a failed writer
    /// shows up as an error on a later call, or as the connection ending.
    pub async fn send(&mut self, frame: &AgentFrame) -> std::io::Result<()> {
        match self {
            Self::Ws(ws) => {
                let bytes = fulcrum_protocol::encode(frame).map_err(std::io::Error::other)?;
                ws.send(Message::Binary(bytes.into()))
                    .await
                    .map_err(std::io::Error::other)
            }
            Self::Quic(quic) => quic.send(frame),
        }
    }

    /// The next frame from the relay (WebSocket control frames are skipped).
    pub async fn next_frame(&mut self) -> Result<RelayFrame, Problem> {
        match self {
            Self::Ws(ws) => next_ws_frame(ws).await,
            Self::Quic(quic) => quic.next_frame().await,
        }
    }

    /// Closes the connection politely.
    pub async fn close(&mut self) {
        match self {
            Self::Ws(ws) => {
                let _ = WebSocketStream::close(ws.as_mut(), None).await;
            }
            Self::Quic(quic) => quic.conn.close(0u32.into(), b"agent closing"),
        }
    }
}

fn down(message: String) -> Problem {
    Problem {
        kind: ProblemKind::RelayDown,
        message,
    }
}

fn unreadable(e: impl std::fmt::Display) -> Problem {
    Problem {
        kind: ProblemKind::SessionEnded,
        message: format!("the relay sent a frame this agent cannot read: {e}"),
    }
}

async fn next_ws_frame(ws: &mut Ws) -> Result<RelayFrame, Problem> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                return fulcrum_protocol::decode(&bytes).map_err(unreadable);
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(down("the relay closed the connection".into()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(down(format!("connection lost: {e}"))),
        }
    }
}

/// Opens connections to the relay in the configured mode, remembering when QUIC failed.
pub struct Dialer {
    target: RelayTarget,
    /// The WebSocket URL.
    ws_url: String,
    tls: Arc<rustls::ClientConfig>,
    /// Set when the relay URL is `https://`/`wss://` (QUIC needs TLS).
    quic: Option<quinn::ClientConfig>,
    /// Until when `auto` skips QUIC.
    quic_failed_until: Option<Instant>,
}

impl Dialer {
    /// Checks the URL, CA file and mode; fails on a combination that cannot work.
    pub fn new(target: RelayTarget) -> anyhow::Result<Self> {
        let ws_url = crate::link::connect_url(&target.url)?;
        let tls = crate::link::tls_config(target.extra_ca.as_deref())?;
        // QUIC is always encrypted: `auto` expects it only from an https:// relay (one behind a
        // plain-HTTP proxy usually has no UDP door); `quic` asks for it whatever the scheme.
        let secure = ws_url.starts_with("wss://");
        let quic = match target.transport {
            TransportMode::Quic => Some(quic_client_config(&tls)?),
            TransportMode::Auto if secure => Some(quic_client_config(&tls)?),
            TransportMode::Auto | TransportMode::Ws => None,
        };
        Ok(Self {
            target,
            ws_url,
            tls,
            quic,
            quic_failed_until: None,
        })
    }

    /// Opens a connection: QUIC or the WebSocket, as the mode and past failures say.
    pub async fn dial(&mut self, timeout: Duration) -> Result<Conn, Problem> {
        let timed_out = || down("timed out connecting to the relay".into());
        let Some(quic) = self.quic.clone() else {
            return tokio::time::timeout(timeout, self.dial_ws())
                .await
                .map_err(|_| timed_out())?;
        };
        match self.target.transport {
            TransportMode::Quic => tokio::time::timeout(timeout, self.dial_quic(quic))
                .await
                .map_err(|_| timed_out())?,
            TransportMode::Ws => unreachable!("no QUIC config in ws mode"),
            TransportMode::Auto => {
                if self.quic_failed_until.is_none_or(|t| Instant::now() >= t) {
                    let attempt = tokio::time::timeout(QUIC_ATTEMPT, self.dial_quic(quic)).await;
                    let problem = match attempt {
                        Ok(Ok(conn)) => {
                            self.quic_failed_until = None;
                            return Ok(conn);
                        }
                        Ok(Err(problem)) => problem.message,
                        Err(_) => format!("no QUIC handshake within {QUIC_ATTEMPT:?}"),
                    };
                    tracing::info!(
                        problem,
                        retry_in = ?QUIC_RETRY_AFTER,
                        "QUIC unavailable; using the WebSocket"
                    );
                    self.quic_failed_until = Some(Instant::now() + QUIC_RETRY_AFTER);
                }
                tokio::time::timeout(timeout, self.dial_ws())
                    .await
                    .map_err(|_| timed_out())?
            }
        }
    }

    /// Opens the TCP connection and the WebSocket, mapping failures to problems.
    async fn dial_ws(&self) -> Result<Conn, Problem> {
        let mut request = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| down(format!("bad relay URL: {e}")))?;
        request
            .headers_mut()
            .insert("authorization", bearer(&self.target.token)?);
        let uri = request.uri().clone();
        let host = bare_host(uri.host().unwrap_or_default());
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let proxy = crate::proxy::Proxy::from_env(secure, &host, port).map_err(down)?;
        let tcp = match &proxy {
            Some(proxy) => proxy
                .connect(&host, port, crate::link::HANDSHAKE_TIMEOUT)
                .await
                .map_err(down)?,
            None => TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| {
                    down(format!(
                        "cannot reach the relay at {}: {e}",
                        self.target.url
                    ))
                })?,
        };
        let _ = tcp.set_nodelay(true);
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(fulcrum_protocol::MAX_FRAME_BYTES))
            .max_frame_size(Some(fulcrum_protocol::MAX_FRAME_BYTES));
        let connector = Connector::Rustls(self.tls.clone());
        match tokio_tungstenite::client_async_tls_with_config(
            request,
            tcp,
            Some(config),
            Some(connector),
        )
        .await
        {
            Ok((ws, _)) => Ok(Conn::Ws(Box::new(ws))),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status();
                let detail = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| status.to_string());
                if status.as_u16() == 401 || status.as_u16() == 403 {
                    Err(Problem {
                        kind: ProblemKind::TokenRefused,
                        message: format!("the relay refused the agent token: {detail}"),
                    })
                } else {
                    Err(down(format!("the relay answered {status}: {detail}")))
                }
            }
            Err(e) => Err(down(format!("cannot open a WebSocket to the relay: {e}"))),
        }
    }

    /// Opens a QUIC connection and its control stream, and sends the token.
    async fn dial_quic(&self, config: quinn::ClientConfig) -> Result<Conn, Problem> {
        let uri: tungstenite::http::Uri = self
            .ws_url
            .parse()
            .map_err(|e| down(format!("bad relay URL: {e}")))?;
        let host = bare_host(uri.host().unwrap_or_default());
        let port = self.target.quic_port.or(uri.port_u16()).unwrap_or(443);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| down(format!("cannot resolve the relay host {host}")))?;
        let bind: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| down(format!("cannot open a UDP socket: {e}")))?;
        let conn = endpoint
            .connect_with(config, addr, &host)
            .map_err(|e| down(format!("cannot start QUIC to udp/{addr}: {e}")))?
            .await
            .map_err(|e| down(format!("QUIC to udp/{addr} failed: {e}")))?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| down(format!("QUIC connection lost: {e}")))?;
        // Control frames go first when the connection is busy with logs.
        let _ = send.set_priority(1);
        let auth = encode_prefixed(&QuicAuth {
            token: self.target.token.clone(),
        })
        .map_err(|e| down(format!("cannot encode the token: {e}")))?;
        send.write_all(&auth)
            .await
            .map_err(|e| down(format!("QUIC connection lost: {e}")))?;
        let (control, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_stream(conn.clone(), send, rx));
        let (frames_tx, frames) = mpsc::channel(16);
        tokio::spawn(read_control(recv, frames_tx));
        let (opener, requests) = mpsc::unbounded_channel();
        tokio::spawn(open_task_streams(conn.clone(), requests));
        Ok(Conn::Quic(QuicConn {
            _endpoint: endpoint,
            conn,
            control,
            tasks: HashMap::new(),
            opener,
            frames,
        }))
    }
}

/// The `Authorization` header for a token.
fn bearer(token: &str) -> Result<HeaderValue, Problem> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Problem {
        kind: ProblemKind::TokenRefused,
        message: "the agent token has characters a header cannot carry".into(),
    })
}

fn bare_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

fn quic_client_config(tls: &rustls::ClientConfig) -> anyhow::Result<quinn::ClientConfig> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| anyhow::anyhow!("the TLS configuration cannot do QUIC: {e}"))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            Duration::from_secs(120)
                .try_into()
                .expect("idle timeout fits"),
        ))
        // A packet now and then, so that a relay that crashed and came back answers with a
        // stateless reset within seconds, even while the connection is idle.
        .keep_alive_interval(Some(QUIC_KEEP_ALIVE));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A QUIC connection: the control stream and the open task streams.
pub struct QuicConn {
    /// Kept so the UDP socket lives as long as the connection.
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    control: mpsc::UnboundedSender<Vec<u8>>,
    tasks: HashMap<Uuid, mpsc::UnboundedSender<Vec<u8>>>,
    /// Task streams to open, in the order of their first message.
    opener: mpsc::UnboundedSender<mpsc::UnboundedReceiver<Vec<u8>>>,
    /// Frames from the control stream, read by a task of their own (cancel-safe to wait on).
    frames: mpsc::Receiver<Result<RelayFrame, Problem>>,
}

impl QuicConn {
    fn send(&mut self, frame: &AgentFrame) -> std::io::Result<()> {
        if let Some(reason) = self.conn.close_reason() {
            return Err(std::io::Error::other(reason));
        }
        let bytes = encode_prefixed(frame).map_err(std::io::Error::other)?;
        let writer = match task_stream_of(frame) {
            Some(task) => self.tasks.entry(task).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = self.opener.send(rx);
                tx
            }),
            None => &mut self.control,
        };
        let sent = writer.send(bytes);
        // The last message about a task: its stream finishes once the writer has sent it.
        if let AgentFrame::Durable(d) = frame
            && let AgentMessage::TaskFinished(r) = &d.body
        {
            self.tasks.remove(&r.task_id);
        }
        sent.map_err(|_| std::io::Error::other("the QUIC connection is closed"))
    }

    async fn next_frame(&mut self) -> Result<RelayFrame, Problem> {
        match self.frames.recv().await {
            Some(frame) => frame,
            None => Err(down("the relay closed the connection".into())),
        }
    }
}

/// Reads the control stream's frames into `tx` until it ends or fails.
async fn read_control(mut recv: quinn::RecvStream, tx: mpsc::Sender<Result<RelayFrame, Problem>>) {
    loop {
        let frame = match read_prefixed(&mut recv).await {
            Ok(Some(bytes)) => fulcrum_protocol::decode(&bytes).map_err(unreadable),
            Ok(None) => Err(down("the relay closed the connection".into())),
            Err(ReadError::TooLarge(n)) => Err(unreadable(format!("a {n}-byte frame"))),
            Err(ReadError::Io(e)) => Err(down(format!("connection lost: {e}"))),
        };
        let last = frame.is_err();
        if tx.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// Opens task streams one at a time, in the order they were asked for (the order of each
/// task's first message), and hands each to a writer. The relay allows 64 open task streams
/// and applies messages in sequence order: opening in that order means the stream holding the
/// next message the relay needs is always among the open ones (at most `--max-jobs` ≤ 64 tasks
/// have messages in flight at once), so the streams cannot all end up waiting on each other.
async fn open_task_streams(
    conn: quinn::Connection,
    mut requests: mpsc::UnboundedReceiver<mpsc::UnboundedReceiver<Vec<u8>>>,
) {
    while let Some(rx) = requests.recv().await {
        // Waits while the relay's limit of open task streams is reached.
        let Ok(send) = conn.open_uni().await else {
            return;
        };
        tokio::spawn(write_stream(conn.clone(), send, rx));
    }
}

impl Drop for QuicConn {
    fn drop(&mut self) {
        self.conn.close(0u32.into(), b"agent closing");
    }
}

/// Writes what arrives on `rx` to one stream, then finishes it. A failed write closes the whole
/// connection, so the link notices and reconnects (and the outbox replays).
async fn write_stream(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(bytes) = rx.recv().await {
        if let Err(e) = send.write_all(&bytes).await {
            tracing::debug!(error = %e, "QUIC stream write failed");
            conn.close(0u32.into(), b"stream write failed");
            return;
        }
    }
    let _ = send.finish();
}
