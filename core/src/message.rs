//! Messages between servers (PROTOCOL.md names). What clients send and receive is the state
//! machine's business (`StateMachine::Request`, `Query`, `Reply`).

use serde::{Deserialize, Serialize};

use super::ids::{Index, NodeId, Term};
use super::log::Entry;
use super::snapshot::Snapshot;
use super::state_machine::StateMachine;

/// A message between servers, for a cluster replicating the state machine `S` (its commands
/// travel in `AppendEntries`, its state in `InstallSnapshot`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Message<S: StateMachine> {
    RequestVote {
        term: Term,
        candidate: NodeId,
        last_log_index: Index,
        last_log_term: Term,
        pre_vote: bool,
    },
    RequestVoteResponse {
        term: Term,
        granted: bool,
        pre_vote: bool,
    },
    AppendEntries {
        term: Term,
        leader: NodeId,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry<S::Command>>,
        leader_commit: Index,
    },
    AppendEntriesResponse {
        term: Term,
        success: bool,
        last_index: Index,
    },
    /// Sent instead of an AppendEntries when the entries the peer needs were compacted;
    /// answered with an `AppendEntriesResponse`.
    InstallSnapshot {
        term: Term,
        leader: NodeId,
        snapshot: Snapshot<S>,
    },
    /// Node-only (ReadIndex; sent only when a read request arrives): the leader asks the
    /// followers to confirm it still leads `term`, for read round `round`.
    ReadIndex {
        term: Term,
        leader: NodeId,
        round: u64,
    },
    /// Node-only: answer to `ReadIndex`; `ok` iff the follower accepted `term`'s leader.
    ReadIndexResponse { term: Term, round: u64, ok: bool },
    /// Leadership transfer: the leader of `term` asks a voter that holds its whole log to
    /// stand for election now, skipping the pre-vote round.
    TimeoutNow { term: Term, leader: NodeId },
}

impl<S: StateMachine> Message<S> {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::ReadIndex { term, .. }
            | Message::ReadIndexResponse { term, .. }
            | Message::TimeoutNow { term, .. } => *term,
        }
    }
}

/// A message with its sender and receiver.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Envelope<S: StateMachine> {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message<S>,
}
