//! The two ways an agent's frames reach its session: a WebSocket, or a QUIC connection.
//!
//! A session reads decoded frames from a [`Source`] and writes frames to an [`Outgoing`], and
//! does not care which transport is underneath. On QUIC, frames arrive on several streams (see
//! [`fulcrum_protocol::quic`]); [`QuicSource`] merges them back into one sequence: control
//! frames as they come, durable messages in sequence order, each taken from whichever stream
//! holds the next number. It reads ahead at most a frame or two per task stream, so memory stays
//! bounded while a stream whose turn has not come simply stops being read (its own flow control
//! then holds the agent back, and nothing else). A number that never arrives ends the session
//! after [`STALL_LIMIT`], as a gap does on the WebSocket.

use std::{collections::VecDeque, task::Poll};

use axum::extract::ws::{Message, WebSocket};
use fulcrum_protocol::{
    AgentFrame, AgentMessage, Durable, RelayFrame,
    quic::{ReadError, encode_prefixed, read_prefixed},
};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::sync::mpsc;

use crate::state::SEND_TIMEOUT;

/// Bytes of durable messages from the control stream that may wait for an earlier number on a
/// task stream; past this the control stream is not read until they are taken.
const MAX_PARKED_CONTROL_BYTES: usize = 8 * 1024 * 1024;
/// How long messages may wait for a sequence number that does not come before the session is
/// refused (an agent bug; the agent reconnects and replays).
pub const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a closing QUIC session waits for the agent to read its last frame and hang up.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What the session reads next.
// Frames are the common case and move straight on; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    /// A frame, and its size on the wire.
    Frame(AgentFrame, usize),
    /// A transport keepalive (WebSocket ping or pong): the agent is alive.
    KeepAlive,
    /// The agent hung up, or the connection dropped.
    Closed,
    /// The agent broke the protocol; the text says how.
    Violation(String),
}

/// Where a session's frames come from.
pub enum Source {
    /// A WebSocket's reading half.
    Ws(SplitStream<WebSocket>),
    /// A QUIC connection's streams.
    Quic(QuicSource),
}

impl Source {
    /// The next frame. With `durable_ok` false (the session is holding back), only control
    /// frames are returned; a WebSocket cannot tell them apart without reading, so it waits.
    pub async fn next(&mut self, durable_ok: bool) -> Incoming {
        match self {
            Self::Ws(stream) => {
                if !durable_ok {
                    return std::future::pending().await;
                }
                next_ws(stream).await
            }
            Self::Quic(source) => source.next(durable_ok).await,
        }
    }

    /// The sequence number of the next durable message the session will apply.
    pub fn expect(&mut self, seq: u64) {
        if let Self::Quic(source) = self {
            source.expected = Some(seq);
        }
    }

    /// The transport's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ws(_) => "websocket",
            Self::Quic(_) => "quic",
        }
    }
}

async fn next_ws(stream: &mut SplitStream<WebSocket>) -> Incoming {
    match stream.next().await {
        Some(Ok(Message::Binary(bytes))) => match fulcrum_protocol::decode::<AgentFrame>(&bytes) {
            Ok(frame) => Incoming::Frame(frame, bytes.len()),
            Err(e) => Incoming::Violation(format!("bad frame: {e}")),
        },
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::KeepAlive,
        Some(Ok(Message::Text(_))) => {
            Incoming::Violation("text frames are not part of the protocol".into())
        }
        Some(Ok(Message::Close(_))) | None => Incoming::Closed,
        Some(Err(e)) => {
            tracing::debug!(error = %e, "agent socket error");
            Incoming::Closed
        }
    }
}

/// Where a session's frames go.
pub enum Outgoing {
    /// A WebSocket's writing half.
    Ws(SplitSink<WebSocket, Message>),
    /// The QUIC control stream, and its connection.
    Quic(quinn::SendStream, quinn::Connection),
}

impl Outgoing {
    /// Sends a frame; its encoded size if it went out. An agent that stops reading must not
    /// freeze the session, so this gives up after [`SEND_TIMEOUT`].
    pub async fn send(&mut self, frame: &RelayFrame) -> Option<usize> {
        match self {
            Self::Ws(sink) => {
                let bytes = encode(fulcrum_protocol::encode(frame))?;
                let len = bytes.len();
                let sent =
                    tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Binary(bytes.into())))
                        .await;
                matches!(sent, Ok(Ok(()))).then_some(len)
            }
            Self::Quic(send, _) => {
                let bytes = encode(encode_prefixed(frame))?;
                let sent = tokio::time::timeout(SEND_TIMEOUT, send.write_all(&bytes)).await;
                matches!(sent, Ok(Ok(()))).then_some(bytes.len() - 4)
            }
        }
    }

    /// Ends the connection once the agent has had a chance to read what was sent.
    pub async fn close(&mut self) {
        match self {
            Self::Ws(sink) => {
                let _ = sink.close().await;
            }
            Self::Quic(send, conn) => {
                let _ = send.finish();
                // The agent hangs up once it has read the last frame; then close either way.
                let _ = tokio::time::timeout(CLOSE_LINGER, conn.closed()).await;
                conn.close(0u32.into(), b"session ended");
            }
        }
    }
}

fn encode(bytes: Result<Vec<u8>, fulcrum_protocol::CodecError>) -> Option<Vec<u8>> {
    bytes
        .map_err(|e| tracing::error!(error = %e, "cannot encode relay frame"))
        .ok()
}

/// A durable message waiting its turn, with its size on the wire.
type Parked = (Durable<AgentMessage>, usize);

/// One task stream: its reader's channel and the message read from it and not yet taken.
struct Slot {
    rx: mpsc::Receiver<Incoming>,
    head: Option<Parked>,
}

/// The frames of one QUIC connection, merged back into one sequence.
pub struct QuicSource {
    control: mpsc::Receiver<Incoming>,
    control_parked: VecDeque<Parked>,
    control_parked_bytes: usize,
    /// Since when messages wait and none can be taken.
    stalled_since: Option<tokio::time::Instant>,
    new_streams: mpsc::Receiver<mpsc::Receiver<Incoming>>,
    slots: Vec<Slot>,
    /// The next sequence number to hand out; `None` until the session knows it.
    expected: Option<u64>,
}

impl QuicSource {
    /// Reads `control` and every task stream the agent opens on `conn`, each in a task of its
    /// own that stops when its stream ends or this source is dropped.
    pub fn new(conn: &quinn::Connection, control: quinn::RecvStream) -> Self {
        let (control_tx, control_rx) = mpsc::channel(64);
        tokio::spawn(read_stream(control, control_tx, true));
        let (streams_tx, new_streams) = mpsc::channel(16);
        let conn = conn.clone();
        tokio::spawn(async move {
            while let Ok(recv) = conn.accept_uni().await {
                // One waiting message per stream, plus the one being handed over.
                let (tx, rx) = mpsc::channel(1);
                tokio::spawn(read_stream(recv, tx, false));
                if streams_tx.send(rx).await.is_err() {
                    return;
                }
            }
        });
        Self {
            control: control_rx,
            control_parked: VecDeque::new(),
            control_parked_bytes: 0,
            stalled_since: None,
            new_streams,
            slots: Vec::new(),
            expected: None,
        }
    }

    async fn next(&mut self, durable_ok: bool) -> Incoming {
        loop {
            if durable_ok {
                if let Some((d, size)) = self.take_in_turn() {
                    self.stalled_since = None;
                    return Incoming::Frame(AgentFrame::Durable(d), size);
                }
                let waiting =
                    !self.control_parked.is_empty() || self.slots.iter().any(|s| s.head.is_some());
                if !waiting {
                    self.stalled_since = None;
                } else if self.stalled_since.is_none() {
                    self.stalled_since = Some(tokio::time::Instant::now());
                }
            }
            let control_open = self.control_parked_bytes < MAX_PARKED_CONTROL_BYTES;
            let stall_deadline = self.stalled_since.map(|t| t + STALL_LIMIT);
            tokio::select! {
                biased;
                incoming = self.control.recv(), if control_open => match incoming {
                    Some(Incoming::Frame(AgentFrame::Durable(d), size)) => {
                        self.control_parked_bytes += size;
                        self.control_parked.push_back((d, size));
                    }
                    Some(other) => return other,
                    None => return Incoming::Closed,
                },
                Some(rx) = self.new_streams.recv() => self.slots.push(Slot { rx, head: None }),
                (i, incoming) = poll_slots(&mut self.slots) => match incoming {
                    Some(Incoming::Frame(AgentFrame::Durable(d), size)) => {
                        self.slots[i].head = Some((d, size));
                    }
                    Some(Incoming::Frame(_, _)) => {
                        return Incoming::Violation(
                            "only a task's durable messages go on its stream".into(),
                        );
                    }
                    Some(other) => return other,
                    // The stream ended cleanly, and everything read from it was taken.
                    None => {
                        self.slots.swap_remove(i);
                    }
                },
                _ = tokio::time::sleep_until(stall_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if stall_deadline.is_some() && durable_ok =>
                {
                    return Incoming::Violation(format!(
                        "message {} never arrived",
                        self.expected.unwrap_or_default()
                    ));
                }
            }
        }
    }

    /// The waiting durable message whose turn it is (or a replay of one already applied, which
    /// the session acknowledges and drops). Before the session knows the next number, the
    /// lowest waiting one.
    fn take_in_turn(&mut self) -> Option<Parked> {
        let heads = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head.as_ref().map(|(d, _)| (d.seq, Some(i))))
            .chain(self.control_parked.front().map(|(d, _)| (d.seq, None)));
        let (seq, at) = heads.min_by_key(|(seq, _)| *seq)?;
        if self.expected.is_some_and(|e| seq > e) {
            return None;
        }
        let taken = match at {
            Some(i) => self.slots[i].head.take(),
            None => {
                let taken = self.control_parked.pop_front();
                if let Some((_, size)) = &taken {
                    self.control_parked_bytes -= size;
                }
                taken
            }
        };
        if self.expected.is_some_and(|e| seq == e) {
            self.expected = Some(seq + 1);
        }
        taken
    }
}

/// The first task stream with something to read (skipping those whose message waits), as its
/// index and what it read (`None`: the stream ended).
async fn poll_slots(slots: &mut [Slot]) -> (usize, Option<Incoming>) {
    std::future::poll_fn(|cx| {
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.head.is_some() {
                continue;
            }
            if let Poll::Ready(incoming) = slot.rx.poll_recv(cx) {
                return Poll::Ready((i, incoming));
            }
        }
        Poll::Pending
    })
    .await
}

/// Reads length-prefixed frames from one stream into `tx` until it ends. The control stream's
/// end is the session's end; a task stream just stops.
async fn read_stream(mut recv: quinn::RecvStream, tx: mpsc::Sender<Incoming>, control: bool) {
    loop {
        let incoming = match read_prefixed(&mut recv).await {
            Ok(Some(bytes)) => match fulcrum_protocol::decode::<AgentFrame>(&bytes) {
                Ok(frame) => Incoming::Frame(frame, bytes.len()),
                Err(e) => Incoming::Violation(format!("bad frame: {e}")),
            },
            Ok(None) if !control => return,
            Ok(None) => Incoming::Closed,
            Err(ReadError::TooLarge(n)) => Incoming::Violation(format!(
                "frame of {n} bytes exceeds the {}-byte limit",
                fulcrum_protocol::MAX_FRAME_BYTES
            )),
            Err(ReadError::Io(e)) => {
                tracing::debug!(error = %e, "agent stream error");
                Incoming::Closed
            }
        };
        let last = !matches!(incoming, Incoming::Frame(..));
        if tx.send(incoming).await.is_err() || last {
            return;
        }
    }
}
