//! The peer wire format: length-delimited frames (`tokio_util`'s `LengthDelimitedCodec`, a
//! 4-byte big-endian length, at most [`MAX_FRAME`] bytes) whose body is one version byte
//! ([`WIRE_VERSION`]) followed by the bincode encoding of a [`Frame`].

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::core::{Envelope, NodeId};

/// The codec version; a frame with another version is refused.
pub const WIRE_VERSION: u8 = 1;
/// Largest frame accepted or sent (appends are capped at 1 MiB of entries by default).
pub const MAX_FRAME: usize = 16 << 20;

/// Everything sent between peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a connection, from the dialing node.
    Hello {
        cluster_id: String,
        from: NodeId,
        to: NodeId,
    },
    /// The handshake was accepted.
    Welcome,
    /// The handshake was refused; the connection closes.
    Refused { reason: String },
    /// A Raft message.
    Message(Envelope),
}

/// A decoding failure (the connection is closed with this reason logged).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty frame")]
    Empty,
    #[error("unsupported wire version {0} (this node speaks {WIRE_VERSION})")]
    Version(u8),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// The length-delimited framing with the frame-size limit.
pub fn framing() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Encode a frame body.
pub fn encode(frame: &Frame) -> Bytes {
    // Sizing first costs one walk of the frame and saves the buffer's repeated regrowth
    // (measured by `cargo bench -p raft-benches --bench codec`).
    let size = bincode::serialized_size(frame).expect("frames always encode") as usize;
    let mut out = Vec::with_capacity(1 + size);
    out.push(WIRE_VERSION);
    bincode::serialize_into(&mut out, frame).expect("frames always encode");
    Bytes::from(out)
}

/// Decode a frame body.
pub fn decode(body: &[u8]) -> Result<Frame, CodecError> {
    let (&version, rest) = body.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_VERSION {
        return Err(CodecError::Version(version));
    }
    bincode::deserialize(rest).map_err(|e| CodecError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Message;

    #[test]
    fn frames_round_trip_and_bad_input_is_an_error() {
        let f = Frame::Message(Envelope {
            from: 1,
            to: 2,
            msg: Message::RequestVoteResponse {
                term: 3,
                granted: true,
                pre_vote: false,
            },
        });
        assert_eq!(decode(&encode(&f)).unwrap(), f);
        assert!(matches!(decode(&[]), Err(CodecError::Empty)));
        assert!(matches!(decode(&[9, 0]), Err(CodecError::Version(9))));
        assert!(matches!(
            decode(&[WIRE_VERSION, 0xFF, 0xFF, 0xFF]),
            Err(CodecError::Malformed(_))
        ));
    }
}
