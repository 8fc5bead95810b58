//! MessagePack framing with a size cap.
//!
//! Frames are encoded with field names (`rmp_serde::to_vec_named`) so that a peer can add
//! optional fields without breaking older readers. A frame larger than [`MAX_FRAME_BYTES`] is
//! refused on both sides: the sender never emits one and the receiver never decodes one.

use serde::{Serialize, de::DeserializeOwned};

/// The largest frame either side sends or accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] rmp_serde::decode::Error),
    /// The value could not be serialized.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Encodes a frame, refusing one over the cap.
pub fn encode<T: Serialize>(frame: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = rmp_serde::to_vec_named(frame)?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes a frame, refusing one over the cap before looking inside it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(rmp_serde::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;
    use uuid::Uuid;

    fn hello() -> AgentFrame {
        AgentFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            workspace: WorkspaceIdentity {
                key: "k".into(),
                name: "ws".into(),
                hostname: "host".into(),
                root: "/src".into(),
                coder: Some(CoderFacts {
                    workspace_name: Some("ws".into()),
                    ..Default::default()
                }),
            },
            agent_stream: Uuid::new_v4(),
            relay_stream: None,
        })
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            hello(),
            AgentFrame::Pong { nonce: 7 },
            AgentFrame::Ack { seq: 3 },
            AgentFrame::Durable(Durable {
                seq: 1,
                body: AgentMessage::RepoState(RepoStatus {
                    path: ".".into(),
                    branch: Some("main".into()),
                    changed_paths: vec![ChangedPath {
                        path: "a".into(),
                        code: " M".into(),
                    }],
                    ..Default::default()
                }),
            }),
        ];
        for f in frames {
            let bytes = encode(&f).unwrap();
            assert_eq!(decode::<AgentFrame>(&bytes).unwrap(), f);
        }
        let r = RelayFrame::Reject(Reject {
            reason: RejectReason::VersionMismatch { supported: vec![1] },
            message: "no".into(),
        });
        assert_eq!(decode::<RelayFrame>(&encode(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"\xc1", b"\x92\x01", b"hello world", &[0xff; 64]] {
            assert!(matches!(
                decode::<AgentFrame>(bytes),
                Err(CodecError::Malformed(_))
            ));
        }
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let big = AgentFrame::Durable(Durable {
            seq: 1,
            body: AgentMessage::RepoSet {
                paths: vec!["x".repeat(1000); 2000],
            },
        });
        assert!(matches!(encode(&big), Err(CodecError::TooLarge { .. })));
        let bytes = vec![0u8; MAX_FRAME_BYTES + 1];
        assert!(matches!(
            decode::<AgentFrame>(&bytes),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
