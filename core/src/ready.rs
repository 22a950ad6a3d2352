//! Inputs to the core and the batch of effects (`Ready`) each input produces.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::message::{ClientReply, ClientRequest, Envelope, Index, NodeId, ReadRequest, Term};

/// Everything that can happen to a server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Input {
    /// A message from a peer was delivered.
    Message(Envelope),
    /// The election timer fired (the driver randomizes it).
    ElectionTimeout,
    /// The heartbeat timer fired (meaningful at a leader only).
    HeartbeatTimeout,
    /// A client command arrived.
    Client(ClientRequest),
    /// A client asks for a session (`Command::Register { nonce }`).
    Register { nonce: u64 },
    /// A linearizable read arrived (served by ReadIndex).
    Read(ReadRequest),
    /// Compact the log: the state machine as of `last_applied` becomes the snapshot and the
    /// entries it covers leave the log. The runtime decides when (a size policy); the core
    /// decides nothing about it, so that every policy is the model's `Compact` step.
    Compact,
}

/// The durable part of the server state besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub current_term: Term,
    pub voted_for: Option<NodeId>,
}

/// A log write to make durable: drop every stored entry at index `>= from_index`, then store
/// `core.log().slice(from_index, last_index)` (empty when `from_index > last_index`). The entries
/// are not copied into the `Ready`: read them from the core before the next input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogWrite {
    pub from_index: Index,
    pub last_index: Index,
}

/// What one input produced, to be handled in this order:
/// 1. make `snapshot`, then `hard_state` and `log_write` durable;
/// 2. only then send `messages` (they may depend on 1: a vote, an acknowledgement, a new term);
/// 3. deliver `replies` to clients.
///
/// `applied` names the entries the core applied to its built-in key-value state machine in
/// this step (for observers; nothing to do). `reset_election_timer` tells the driver it heard
/// from a leader or granted a vote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// A new snapshot (compaction, or one installed from the leader) at this index: store
    /// `core.snapshot()` durably, then drop the stored entries it covers.
    pub snapshot: Option<Index>,
    pub hard_state: Option<HardState>,
    pub log_write: Option<LogWrite>,
    pub messages: Vec<Envelope>,
    pub replies: Vec<ClientReply>,
    pub applied: Option<RangeInclusive<Index>>,
    pub reset_election_timer: bool,
}

impl Ready {
    /// True when nothing has to be persisted.
    pub fn nothing_to_persist(&self) -> bool {
        self.hard_state.is_none() && self.log_write.is_none() && self.snapshot.is_none()
    }
}
