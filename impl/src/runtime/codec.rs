//! The peer wire format: length-delimited frames (`tokio_util`'s `LengthDelimitedCodec`, a
//! 4-byte big-endian length, at most [`MAX_FRAME`] bytes) whose body is one version byte
//! ([`WIRE_VERSION`]) followed by the bincode encoding of a [`Frame`].
//!
//! Decoding never trusts a length inside a frame: the framing refuses a frame longer than
//! [`MAX_FRAME`] ([`HANDSHAKE_MAX_FRAME`] until the handshake completes, so that a peer that
//! proved nothing cannot make the node reserve more than 4 KiB) from its 4-byte prefix before
//! reading or allocating for its body, and bincode
//! runs with a size limit of the frame's own length, so a string or vector claiming more bytes
//! than the frame holds is an error, not an allocation. Trailing bytes are an error too.

use bincode::Options;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use super::framing;
use raft_core::{Envelope, Index, NodeId, Term};

/// The codec version; a frame with another version is refused. Version 2 added the
/// challenge-response handshake (nonces and HMAC proofs); version 3 the snapshot transfer
/// frames, so that a node of version 2 is refused with the reason instead of closing a
/// transfer connection as malformed; version 4 the incarnations in `Hello` and `Challenge`
/// and the `Replaced` refusal; version 5 the configuration a snapshot records
/// (`Snapshot::membership`) and the `TimeoutNow` message.
pub const WIRE_VERSION: u8 = 5;
/// Largest frame accepted or sent (appends are capped at 1 MiB of entries by default).
pub const MAX_FRAME: usize = 16 << 20;
/// Largest frame accepted before the handshake completes: a peer that has not proven
/// anything can make the node reserve at most this much for a claimed frame length.
pub const HANDSHAKE_MAX_FRAME: usize = 4096;
/// Size of a handshake nonce and of an HMAC-SHA256 proof.
pub const NONCE: usize = 32;

/// Everything sent between peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a connection, from the dialing node, with its fresh nonce.
    Hello {
        cluster_id: String,
        from: NodeId,
        to: NodeId,
        nonce: [u8; NONCE],
        /// The dialer's incarnation (see `identity`); 0 for a node without a data directory.
        incarnation: u64,
    },
    /// The listener's answer to an acceptable `Hello`: its own fresh nonce and, when it has a
    /// peer secret, its proof of knowing it over both nonces.
    Challenge {
        nonce: [u8; NONCE],
        proof: Option<[u8; NONCE]>,
        /// The listener's incarnation.
        incarnation: u64,
    },
    /// The dialer's proof of the secret over both nonces (`None` when it has no secret).
    Auth { proof: Option<[u8; NONCE]> },
    /// The handshake was accepted.
    Welcome,
    /// The handshake was refused; the connection closes.
    Refused { reason: String },
    /// A Raft message.
    Message(Envelope),
    /// Leader to follower, on a connection that carries nothing else: the next piece of an
    /// encoded snapshot, at byte `offset` of the encoding (see `snapshot_transfer`).
    SnapshotChunk {
        term: Term,
        last_included_index: Index,
        last_included_term: Term,
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The end of a snapshot transfer: the encoding's size and CRC32C.
    SnapshotEnd { size: u64, crc: u32 },
    /// Follower to leader: the whole snapshot arrived and went to the node loop (`None`), or
    /// why it was refused.
    SnapshotReceived { refused: Option<String> },
    /// The handshake was refused because the other side is a re-initialized incarnation of
    /// the node this one knew: the receiver must stop (see `identity`).
    Replaced { reason: String },
}

/// A decoding failure (the connection is closed with this reason logged).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty frame")]
    Empty,
    #[error("unsupported wire version {0} (this node speaks {WIRE_VERSION})")]
    Version(u8),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// The length-delimited framing with the frame-size limit.
pub fn framing() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// The framing used until the handshake completes (limit [`HANDSHAKE_MAX_FRAME`]); raise it
/// with `set_max_frame_length(MAX_FRAME)` afterwards.
pub fn handshake_framing() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(HANDSHAKE_MAX_FRAME)
        .new_codec()
}

/// Encode a frame body; panics on a frame larger than [`MAX_FRAME`] (use [`try_encode`] for
/// frames whose size is not bounded, such as an `InstallSnapshot`).
pub fn encode(frame: &Frame) -> Bytes {
    try_encode(frame).expect("frame within the size limit")
}

/// Encode a frame body, or refuse one whose body would exceed [`MAX_FRAME`] (the receiver's
/// framing would refuse it and drop the connection).
pub fn try_encode(frame: &Frame) -> Result<Bytes, CodecError> {
    // Sizing first costs one walk of the frame and saves the buffer's repeated regrowth
    // (measured by `cargo bench -p raft-benches --bench codec`). The size is measured without
    // a limit so that an oversized frame is reported with its size.
    let size = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialized_size(frame)
        .map_err(|e| CodecError::Malformed(e.to_string()))? as usize;
    if 1 + size > MAX_FRAME {
        return Err(CodecError::TooLarge(1 + size));
    }
    let mut out = Vec::with_capacity(1 + size);
    out.push(WIRE_VERSION);
    framing::options(MAX_FRAME)
        .serialize_into(&mut out, frame)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(Bytes::from(out))
}

/// Decode a frame body.
pub fn decode(body: &[u8]) -> Result<Frame, CodecError> {
    if body.len() > MAX_FRAME {
        return Err(CodecError::TooLarge(body.len()));
    }
    let (&version, rest) = body.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_VERSION {
        return Err(CodecError::Version(version));
    }
    framing::decode(rest).map_err(|e| CodecError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::Message;

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
        assert!(matches!(decode(&[1, 0]), Err(CodecError::Version(1))));
        assert!(matches!(
            decode(&[WIRE_VERSION, 0xFF, 0xFF, 0xFF]),
            Err(CodecError::Malformed(_))
        ));
        let mut trailing = encode(&f).to_vec();
        trailing.push(0);
        assert!(matches!(decode(&trailing), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_with_its_size_not_a_panic() {
        let big = Frame::Refused {
            reason: "x".repeat(MAX_FRAME),
        };
        match try_encode(&big) {
            Err(CodecError::TooLarge(n)) => assert!(n > MAX_FRAME),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_length_inside_a_frame_claiming_more_than_the_frame_is_refused_before_allocating() {
        // Refused { reason } with a string length of 2^62: without the limit bincode would try
        // to reserve for it; with it the answer is an error naming the limit.
        let mut body = vec![WIRE_VERSION];
        body.extend_from_slice(&4u32.to_le_bytes()); // variant 4: Refused
        body.extend_from_slice(&(1u64 << 62).to_le_bytes());
        body.extend_from_slice(b"abc");
        let e = decode(&body).unwrap_err();
        assert!(matches!(e, CodecError::Malformed(_)), "{e}");
    }
}
