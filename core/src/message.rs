//! Messages between servers and between clients and servers (PROTOCOL.md names).

use serde::{Deserialize, Serialize};

use super::log::{Entry, Op, Text};
use super::snapshot::Snapshot;

/// A server id.
pub type NodeId = u64;
/// A term.
pub type Term = u64;
/// A log index (1-based; 0 means "before the first entry").
pub type Index = u64;
/// A client id: the index of the client's `Register` entry (so never 0).
pub type ClientId = u64;
/// The `client_id` of a write that takes no session: it is applied once per log entry and is
/// not safe to retry. Its `seq` is a nonce that only routes the answer.
pub const NO_SESSION: ClientId = 0;

/// A message between servers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
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
        entries: Vec<Entry>,
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
        snapshot: Snapshot,
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
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::ReadIndex { term, .. }
            | Message::ReadIndexResponse { term, .. } => *term,
        }
    }
}

/// A message with its sender and receiver.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

/// A client command: `(client_id, seq)` identifies it; a retry carries the same pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRequest {
    pub client_id: ClientId,
    pub seq: u64,
    pub op: Op,
}

/// A linearizable read served by ReadIndex (not through the log).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadRequest {
    pub client_id: ClientId,
    /// Chosen by the client; echoed in the answer.
    pub read_id: u64,
    pub key: Text,
}

/// The answer of an applied op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Answer {
    /// `Put` and `Delete`.
    Ok,
    /// `Get`: the value, or `None`.
    Value(Option<Text>),
    /// `Cas`: whether it swapped, and the value before the op.
    Cas {
        swapped: bool,
        previous: Option<Text>,
    },
    /// The command's client has no session: it was evicted (or the id was never registered).
    /// Nothing was applied; the command may or may not have taken effect under an earlier
    /// attempt, and the client must register again before it sends anything else.
    SessionExpired,
}

/// `ClientResponse { client_id, seq, answer }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientResponse {
    pub client_id: ClientId,
    pub seq: u64,
    pub answer: Answer,
}

/// What a server sends back to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientReply {
    /// The answer of an applied command.
    Response(ClientResponse),
    /// `NotLeader { hint }`, with the `(client_id, seq)` (or `read_id`) of the request it
    /// answers so the runtime can route it.
    NotLeader {
        client_id: ClientId,
        seq: u64,
        hint: Option<NodeId>,
    },
    /// The answer of a ReadIndex read.
    Read {
        client_id: ClientId,
        read_id: u64,
        value: Option<Text>,
    },
    /// A `Register` entry was applied: the session `client_id` is open. Routed by `nonce`.
    Registered { nonce: u64, client_id: ClientId },
    /// A request whose `seq` is below its session's last applied seq: its answer is no longer
    /// kept, and it is never applied. Answered at once rather than left to time out.
    Stale {
        client_id: ClientId,
        seq: u64,
        last_seq: u64,
    },
}

impl ClientReply {
    /// The client the reply is for.
    pub fn client_id(&self) -> ClientId {
        match self {
            ClientReply::Response(r) => r.client_id,
            ClientReply::NotLeader { client_id, .. }
            | ClientReply::Read { client_id, .. }
            | ClientReply::Stale { client_id, .. } => *client_id,
            ClientReply::Registered { .. } => NO_SESSION,
        }
    }
}
