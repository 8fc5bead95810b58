//! The QUIC transport's framing: the same frames as on the WebSocket, on QUIC streams.
//!
//! A QUIC connection carries one bidirectional *control* stream, opened by the agent, and one
//! unidirectional stream per task, also opened by the agent:
//!
//! - The control stream starts with a [`QuicAuth`] (the agent token, which a WebSocket carries in
//!   its `Authorization` header), then carries every frame of the session in both directions,
//!   except the task messages below.
//! - Every durable message about a task ([`AgentMessage::TaskStarted`], `TaskOutput`,
//!   `TaskFinished`) goes on that task's own stream, which the agent finishes after the result.
//!   A fast log then never delays a heartbeat, an acknowledgement or another task: each stream
//!   has its own flow control. The relay still applies durable messages in sequence order,
//!   taking each from whichever stream carries the next number.
//!
//! On every stream a frame is a 4-byte big-endian length, then the MessagePack frame of
//! [`crate::codec`] with its size cap.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use uuid::Uuid;

use crate::{AgentFrame, AgentMessage, CodecError, MAX_FRAME_BYTES};

/// The ALPN protocol id of Fulcrum over QUIC.
pub const ALPN: &[u8] = b"fulcrum/1";

/// The most bytes the [`QuicAuth`] frame may take.
pub const MAX_AUTH_BYTES: usize = 4 * 1024;

/// The first frame on the control stream: the agent's credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuicAuth {
    /// The agent token.
    pub token: String,
}

impl std::fmt::Debug for QuicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicAuth")
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Encodes a frame with its length prefix.
pub fn encode_prefixed<T: Serialize>(frame: &T) -> Result<Vec<u8>, CodecError> {
    let body = crate::encode(frame)?;
    let mut out = Vec::with_capacity(body.len() + 4);
    // `encode` caps the size far below `u32::MAX`.
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Why a frame could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream failed or ended inside a frame.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announces more than the cap.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// Reads one length-prefixed frame's bytes; `None` when the stream ended cleanly between frames.
/// The size is checked before anything is allocated.
///
/// Not cancel-safe: a read dropped halfway loses the bytes it had, so call it from a task that
/// owns the stream, never as one branch of a `select!`.
pub async fn read_prefixed<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, ReadError> {
    read_prefixed_max(r, MAX_FRAME_BYTES).await
}

/// [`read_prefixed`] with a lower size cap (for the token frame, read before authentication).
pub async fn read_prefixed_max<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max.min(MAX_FRAME_BYTES) {
        return Err(ReadError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// The task whose stream carries this frame, or `None` for the control stream.
pub fn task_stream_of(frame: &AgentFrame) -> Option<Uuid> {
    match frame {
        AgentFrame::Durable(d) => d.body.task_id(),
        _ => None,
    }
}

impl AgentMessage {
    /// The task this message is about, if any.
    pub fn task_id(&self) -> Option<Uuid> {
        match self {
            Self::TaskStarted { task_id, .. } | Self::TaskOutput { task_id, .. } => Some(*task_id),
            Self::TaskFinished(r) => Some(r.task_id),
            Self::RepoSet { .. } | Self::RepoState(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixed_frames_round_trip_and_oversized_ones_are_refused() {
        let auth = QuicAuth {
            token: "fa_secret".into(),
        };
        let mut bytes = encode_prefixed(&auth).unwrap();
        bytes.extend(encode_prefixed(&auth).unwrap());
        let mut r = bytes.as_slice();
        for _ in 0..2 {
            let body = read_prefixed(&mut r).await.unwrap().unwrap();
            assert_eq!(crate::decode::<QuicAuth>(&body).unwrap(), auth);
        }
        assert!(read_prefixed(&mut r).await.unwrap().is_none());

        let huge = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        let mut r = &huge[..];
        assert!(matches!(
            read_prefixed(&mut r).await,
            Err(ReadError::TooLarge(_))
        ));
        let torn = [0u8, 0, 0, 9, 1, 2];
        let mut r = &torn[..];
        assert!(matches!(read_prefixed(&mut r).await, Err(ReadError::Io(_))));
        assert!(!format!("{auth:?}").contains("secret"));
    }
}
