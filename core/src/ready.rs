//! Inputs to the core and the batch of effects (`Ready`) each input produces.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::ids::{Index, NodeId, Term};
use super::membership::{AdminOp, AdminOutcome};
use super::message::Envelope;
use super::state_machine::StateMachine;

/// Everything that can happen to a server replicating the state machine `S`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Input<S: StateMachine> {
    /// A message from a peer was delivered.
    Message(Envelope<S>),
    /// The election timer fired (the driver randomizes it).
    ElectionTimeout,
    /// The heartbeat timer fired (meaningful at a leader only).
    HeartbeatTimeout,
    /// A client request arrived: a leader hands it to [`StateMachine::propose`] (which answers
    /// it at once or turns it into a command to append); any other server answers
    /// [`StateMachine::not_leader`].
    Client(S::Request),
    /// A linearizable read arrived, served by ReadIndex through [`StateMachine::query`].
    Read(S::Query),
    /// Compact the log: the state machine as of `last_applied` becomes the snapshot and the
    /// entries it covers leave the log. The runtime decides when (a size policy); the core
    /// decides nothing about it, so that every policy is the model's `Compact` step.
    Compact,
    /// An operator's membership change or leadership transfer, for the leader; its outcome is
    /// `Ready::admin`.
    Admin(AdminOp),
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

/// What one input produced. See the crate documentation ("The `Ready` contract") for what to
/// do with each field and in which order; in short:
/// 1. make `snapshot`, then `hard_state` and `log_write` durable;
/// 2. only then send `messages` (they may depend on 1: a vote, an acknowledgement, a new term);
/// 3. deliver `replies` to clients;
/// 4. only then step the core again.
///
/// `applied` names the entries the core applied to its state machine in this step (for
/// observers; nothing to do). `reset_election_timer` tells the driver it heard from a leader
/// or granted a vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready<S: StateMachine> {
    /// A new snapshot (compaction, or one installed from the leader) at this index: store
    /// `core.snapshot()` durably, then drop the stored entries it covers.
    pub snapshot: Option<Index>,
    pub hard_state: Option<HardState>,
    pub log_write: Option<LogWrite>,
    pub messages: Vec<Envelope<S>>,
    /// Answers for clients, made by the state machine (`StateMachine::Reply`).
    pub replies: Vec<S::Reply>,
    pub applied: Option<RangeInclusive<Index>>,
    pub reset_election_timer: bool,
    /// What became of an `Input::Admin` (`None` for any other input).
    pub admin: Option<AdminOutcome>,
}

// Derived, it would ask for `S::Reply: Default`.
impl<S: StateMachine> Default for Ready<S> {
    fn default() -> Self {
        Ready {
            snapshot: None,
            hard_state: None,
            log_write: None,
            messages: Vec::new(),
            replies: Vec::new(),
            applied: None,
            reset_election_timer: false,
            admin: None,
        }
    }
}

impl<S: StateMachine> Ready<S> {
    /// True when nothing has to be persisted.
    pub fn nothing_to_persist(&self) -> bool {
        self.hard_state.is_none() && self.log_write.is_none() && self.snapshot.is_none()
    }
}
