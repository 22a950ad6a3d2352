//! The peer handshake: who may open a peer connection.
//!
//! ```text
//! dialer                                         listener
//!   Hello { cluster_id, from, to, nonce: Nd,
//!           incarnation: Id }                  →   checks cluster id, node ids
//!                                              ←   Challenge { nonce: Nl, proof: P_l,
//!                                                              incarnation: Il }
//!   checks P_l, then Il against its book            P_l = HMAC(secret, "listener" ‖ T)
//!   Auth { proof: P_d }                        →   checks P_d, then Id against its book
//!                                              ←   Welcome  (or Refused { reason })
//! T = wire version ‖ cluster id ‖ dialer id ‖ listener id ‖ Nd ‖ Nl ‖ Id ‖ Il
//! ```
//!
//! Both nonces are fresh random 32 bytes, so a recorded handshake proves nothing in a new
//! connection (the other side's nonce differs), and the role label keeps a node's own proof from
//! being reflected back at it. Proofs are compared in constant time (`Mac::verify_slice`). Each
//! side proves the secret only after the other side's identity checks passed, and a node without
//! a secret neither sends nor accepts proofs: a mismatch in whether a secret is configured is a
//! refusal, with the reason logged on the side that refuses and sent to the other.
//!
//! The incarnations (see [`super::identity`]) are checked only once the other side proved the
//! secret, so that nobody outside the cluster can write to a node's book. A side that finds
//! the other to be a re-initialized incarnation of a node it knew sends `Replaced` instead of
//! going on; the side that receives it learns that it must stop ([`HandshakeError::Replaced`]).

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use std::sync::Arc;

use super::codec::{decode, encode, handshake_framing, Frame, MAX_FRAME, NONCE, WIRE_VERSION};
use super::identity::{PeerBook, Refusal};
use raft_core::NodeId;

/// How long each handshake step may take.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A framed peer connection.
pub type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// What a node proves and checks in the handshake.
#[derive(Clone)]
pub struct PeerAuth {
    cluster_id: String,
    secret: Option<Vec<u8>>,
    book: Option<Arc<PeerBook>>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAuth")
            .field("cluster_id", &self.cluster_id)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("incarnation", &self.incarnation())
            .finish()
    }
}

/// Which side of the handshake a proof is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Listener,
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer failed a check: the reason is logged as a warning (and sent to the peer when
    /// this side refused).
    #[error("refused: {0}")]
    Refused(String),
    /// The connection failed or timed out (logged quietly; the dialer retries).
    #[error("{0}")]
    Io(String),
    /// The peer knew another incarnation of this node: this node's data directory was
    /// re-initialized, and it must stop.
    #[error("this node was replaced: {0}")]
    Replaced(String),
}

impl PeerAuth {
    /// `secret`: the shared peer secret, `None` to check cluster and node ids only.
    pub fn new(cluster_id: &str, secret: Option<Vec<u8>>) -> PeerAuth {
        PeerAuth {
            cluster_id: cluster_id.to_string(),
            secret,
            book: None,
        }
    }

    /// Check and record peers' incarnations in `book`, and present its incarnation.
    pub fn with_book(mut self, book: Arc<PeerBook>) -> PeerAuth {
        self.book = Some(book);
        self
    }

    /// This node's incarnation (0 without a book).
    pub fn incarnation(&self) -> u64 {
        self.book.as_ref().map_or(0, |b| b.incarnation())
    }

    /// Admit `peer` at `incarnation` (always, without a book).
    fn admit(&self, peer: NodeId, incarnation: u64) -> Result<(), Refusal> {
        self.book
            .as_ref()
            .map_or(Ok(()), |b| b.admit(peer, incarnation))
    }

    /// Record that a peer refused this node as replaced, and return the error.
    fn replaced(&self, peer: NodeId, reason: String) -> HandshakeError {
        let reason = format!("node {peer} says: {reason}");
        if let Some(b) = &self.book {
            b.mark_replaced(reason.clone());
        }
        HandshakeError::Replaced(reason)
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Whether a secret is configured.
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    fn mac(&self, role: Role, t: &Transcript) -> Option<Hmac<Sha256>> {
        let secret = self.secret.as_ref()?;
        let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        m.update(match role {
            Role::Dialer => b"raftright peer dialer  ",
            Role::Listener => b"raftright peer listener",
        });
        m.update(&[WIRE_VERSION]);
        // Length-prefixed, so that no two different inputs give the same byte string.
        m.update(&(self.cluster_id.len() as u64).to_le_bytes());
        m.update(self.cluster_id.as_bytes());
        m.update(&t.dialer.to_le_bytes());
        m.update(&t.listener.to_le_bytes());
        m.update(&t.nd);
        m.update(&t.nl);
        m.update(&t.incarnations.dialer.to_le_bytes());
        m.update(&t.incarnations.listener.to_le_bytes());
        Some(m)
    }

    /// The proof `role` sends for this handshake (`None` without a secret).
    pub fn proof(&self, role: Role, t: &Transcript) -> Option<[u8; NONCE]> {
        let m = self.mac(role, t)?;
        Some(m.finalize().into_bytes().into())
    }

    /// Check the proof received from `role` (constant-time comparison).
    fn check(&self, role: Role, t: &Transcript, proof: Option<&[u8; NONCE]>) -> Result<(), String> {
        let peer = match role {
            Role::Dialer => t.dialer,
            Role::Listener => t.listener,
        };
        match (self.mac(role, t), proof) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(format!(
                "node {peer} proves a peer secret but this node has none (set peer_secret here too)"
            )),
            (Some(_), None) => Err(format!(
                "node {peer} sent no proof of the peer secret (is peer_secret set on it?)"
            )),
            (Some(m), Some(p)) => m
                .verify_slice(p)
                .map_err(|_| format!("node {peer} failed the peer-secret proof (wrong secret or a replayed handshake)")),
        }
    }
}

/// What a handshake's proofs cover besides the cluster id and the wire version: `T` above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub dialer: NodeId,
    pub listener: NodeId,
    /// The dialer's nonce.
    pub nd: [u8; NONCE],
    /// The listener's nonce.
    pub nl: [u8; NONCE],
    pub incarnations: Incarnations,
}

/// The two incarnations a handshake's proofs cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incarnations {
    pub dialer: u64,
    pub listener: u64,
}

fn io(e: impl std::fmt::Display) -> HandshakeError {
    HandshakeError::Io(e.to_string())
}

/// Read the next frame within the handshake timeout.
async fn next_frame(conn: &mut Conn, step: &str) -> Result<Frame, HandshakeError> {
    let bytes = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next())
        .await
        .map_err(|_| io(format!("no {step} within {HANDSHAKE_TIMEOUT:?}")))?
        .ok_or_else(|| io(format!("connection closed before the {step}")))?
        .map_err(|e| HandshakeError::Refused(format!("bad frame instead of the {step}: {e}")))?;
    // A version mismatch reads "malformed handshake: unsupported wire version 1 (this node
    // speaks 2)": the version byte comes first so that it is the first thing checked.
    decode(&bytes).map_err(|e| HandshakeError::Refused(format!("malformed {step}: {e}")))
}

/// Send `Replaced { reason }` (best effort) and return the refusal.
async fn refuse_replaced(conn: &mut Conn, reason: String) -> HandshakeError {
    let _ = conn
        .send(encode(&Frame::Replaced {
            reason: reason.clone(),
        }))
        .await;
    HandshakeError::Refused(reason)
}

/// Send `Refused { reason }` (best effort) and return the refusal.
async fn refuse(conn: &mut Conn, reason: String) -> HandshakeError {
    let _ = conn
        .send(encode(&Frame::Refused {
            reason: reason.clone(),
        }))
        .await;
    HandshakeError::Refused(reason)
}

/// Dial side: run the handshake on a fresh connection to node `peer`.
pub async fn dial(
    stream: TcpStream,
    auth: &PeerAuth,
    me: NodeId,
    peer: NodeId,
) -> Result<Conn, HandshakeError> {
    stream.set_nodelay(true).map_err(io)?;
    let mut conn = Framed::new(stream, handshake_framing());
    let nd: [u8; NONCE] = rand::random();
    let hello = Frame::Hello {
        cluster_id: auth.cluster_id.clone(),
        from: me,
        to: peer,
        nonce: nd,
        incarnation: auth.incarnation(),
    };
    conn.send(encode(&hello)).await.map_err(io)?;
    let t = match next_frame(&mut conn, "challenge").await? {
        Frame::Challenge {
            nonce,
            proof,
            incarnation,
        } => {
            if nonce == nd {
                // Our own nonce reflected back: not a peer answering a fresh challenge.
                return Err(refuse(&mut conn, "the peer echoed our nonce".into()).await);
            }
            let t = Transcript {
                dialer: me,
                listener: peer,
                nd,
                nl: nonce,
                incarnations: Incarnations {
                    dialer: auth.incarnation(),
                    listener: incarnation,
                },
            };
            if let Err(reason) = auth.check(Role::Listener, &t, proof.as_ref()) {
                return Err(refuse(&mut conn, reason).await);
            }
            match auth.admit(peer, incarnation) {
                Ok(()) => {}
                Err(Refusal::Replaced(reason)) => {
                    return Err(refuse_replaced(&mut conn, reason).await)
                }
                Err(Refusal::Other(reason)) => return Err(refuse(&mut conn, reason).await),
            }
            t
        }
        Frame::Refused { reason } => {
            return Err(HandshakeError::Refused(format!(
                "node {peer} refused our handshake: {reason}"
            )))
        }
        other => {
            let reason = format!("expected a challenge, got {}", frame_kind(&other));
            return Err(refuse(&mut conn, reason).await);
        }
    };
    let proof = auth.proof(Role::Dialer, &t);
    conn.send(encode(&Frame::Auth { proof }))
        .await
        .map_err(io)?;
    match next_frame(&mut conn, "welcome").await? {
        Frame::Welcome => {
            conn.codec_mut().set_max_frame_length(MAX_FRAME);
            Ok(conn)
        }
        Frame::Refused { reason } => Err(HandshakeError::Refused(format!(
            "node {peer} refused our handshake: {reason}"
        ))),
        Frame::Replaced { reason } => Err(auth.replaced(peer, reason)),
        other => Err(HandshakeError::Refused(format!(
            "expected a welcome, got {}",
            frame_kind(&other)
        ))),
    }
}

/// Listen side: run the handshake on an accepted connection; returns the peer's node id.
pub async fn accept(
    stream: TcpStream,
    auth: &PeerAuth,
    me: NodeId,
    peers: &[NodeId],
) -> Result<(Conn, NodeId), HandshakeError> {
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, handshake_framing());
    let first = match next_frame(&mut conn, "handshake").await {
        Ok(f) => f,
        Err(HandshakeError::Refused(reason)) => return Err(refuse(&mut conn, reason).await),
        Err(e) => return Err(e),
    };
    let Frame::Hello {
        cluster_id: theirs,
        from,
        to,
        nonce: nd,
        incarnation: theirs_incarnation,
    } = first
    else {
        let reason = format!("expected a handshake, got {}", frame_kind(&first));
        return Err(refuse(&mut conn, reason).await);
    };
    let refusal = if theirs != auth.cluster_id {
        Some(format!(
            "wrong cluster id {theirs:?} (this is {:?})",
            auth.cluster_id
        ))
    } else if !peers.contains(&from) {
        Some(format!("unknown node id {from}"))
    } else if to != me {
        Some(format!("addressed to node {to}, this is node {me}"))
    } else {
        None
    };
    if let Some(reason) = refusal {
        return Err(refuse(&mut conn, reason).await);
    }
    let t = Transcript {
        dialer: from,
        listener: me,
        nd,
        nl: rand::random(),
        incarnations: Incarnations {
            dialer: theirs_incarnation,
            listener: auth.incarnation(),
        },
    };
    let proof = auth.proof(Role::Listener, &t);
    conn.send(encode(&Frame::Challenge {
        nonce: t.nl,
        proof,
        incarnation: t.incarnations.listener,
    }))
    .await
    .map_err(io)?;
    match next_frame(&mut conn, "proof").await {
        Ok(Frame::Auth { proof }) => {
            if let Err(reason) = auth.check(Role::Dialer, &t, proof.as_ref()) {
                return Err(refuse(&mut conn, reason).await);
            }
            match auth.admit(from, theirs_incarnation) {
                Ok(()) => {}
                Err(Refusal::Replaced(reason)) => {
                    return Err(refuse_replaced(&mut conn, reason).await)
                }
                Err(Refusal::Other(reason)) => return Err(refuse(&mut conn, reason).await),
            }
        }
        Ok(Frame::Replaced { reason }) => return Err(auth.replaced(from, reason)),
        Ok(Frame::Refused { reason }) => {
            return Err(HandshakeError::Refused(format!(
                "node {from} refused our challenge: {reason}"
            )))
        }
        Ok(other) => {
            let reason = format!("expected a proof, got {}", frame_kind(&other));
            return Err(refuse(&mut conn, reason).await);
        }
        Err(HandshakeError::Refused(reason)) => return Err(refuse(&mut conn, reason).await),
        Err(e) => return Err(e),
    }
    conn.send(encode(&Frame::Welcome)).await.map_err(io)?;
    conn.codec_mut().set_max_frame_length(MAX_FRAME);
    Ok((conn, from))
}

/// A frame's kind for error messages (never its content: a proof must not be logged).
pub fn frame_kind(f: &Frame) -> &'static str {
    match f {
        Frame::Hello { .. } => "Hello",
        Frame::Challenge { .. } => "Challenge",
        Frame::Auth { .. } => "Auth",
        Frame::Welcome => "Welcome",
        Frame::Refused { .. } => "Refused",
        Frame::Message(_) => "Message",
        Frame::SnapshotChunk { .. } => "SnapshotChunk",
        Frame::SnapshotEnd { .. } => "SnapshotEnd",
        Frame::SnapshotReceived { .. } => "SnapshotReceived",
        Frame::Replaced { .. } => "Replaced",
    }
}
