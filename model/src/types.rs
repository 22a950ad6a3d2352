//! The protocol's vocabulary, with the names PROTOCOL.md gives them. Numbers are `u8`: the
//! model's bounds are small, and small states hash and clone fast.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A server's index in `0..servers`.
pub type Id = u8;
pub type Term = u8;
/// Log indexes start at 1; 0 means "before the first entry".
pub type Index = u8;
/// A session's id: the index of its `Register` entry (or, for a client whose session was
/// opened before the run, `PRE_REGISTERED + c`). Client commands carry it.
pub type ClientId = u8;
/// The session ids of the clients registered before the run: `PRE_REGISTERED + c` for client
/// `c`, above every log index the bounds allow.
pub const PRE_REGISTERED: ClientId = 100;
/// A client's request number; its first request is 1.
pub type Seq = u8;
pub type Key = u8;
pub type Value = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: Key,
        value: Value,
    },
    /// Through the log, or by ReadIndex when `Params::read_index` is on.
    Get {
        key: Key,
    },
    Delete {
        key: Key,
    },
    /// Set `key` to `new` iff its value is `expected` (`None`: absent; `new: None` deletes).
    Cas {
        key: Key,
        expected: Option<Value>,
        new: Option<Value>,
    },
}

impl Op {
    /// True for a `Get`: the one operation served by ReadIndex when `read_index` is on.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Answer {
    Ok,
    Value(Option<Value>),
    /// A `Cas`: whether it swapped, and the value before it.
    Cas {
        swapped: bool,
        previous: Option<Value>,
    },
    /// The command's session is gone (evicted): nothing was applied.
    SessionExpired,
    /// A `Register` was applied: the session with this id is open.
    Registered(ClientId),
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Command {
    Noop,
    Client {
        client_id: ClientId,
        seq: Seq,
        op: Op,
    },
    /// Opens a session whose id is this entry's index. `nonce` (the model's client number)
    /// routes the answer back to the client that asked.
    Register {
        nonce: u8,
    },
}

/// (`Hash` is in `pack.rs`.)
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub command: Command,
}

/// One open session: the answer its client's last applied request got.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Session {
    pub client_id: ClientId,
    /// 0 when the client has had nothing applied.
    pub last_seq: Seq,
    pub answer: Answer,
    /// The log index of the session's last applied command (of its `Register` at first): the
    /// least recently used session is the one with the lowest.
    pub last_index: Index,
}

/// The state machine as of `last_included_index`, which replaces the log up to it
/// (PROTOCOL.md, "Snapshots"). `last_included_index = 0` is the empty snapshot.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub last_included_index: Index,
    pub last_included_term: Term,
    pub kv: [Option<Value>; 2],
    pub sessions: Vec<Session>,
}

/// Server-to-server messages (PROTOCOL.md, "Elections" and "Replication").
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg {
    RequestVote {
        term: Term,
        candidate: Id,
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
        leader: Id,
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
    /// Sent instead of an AppendEntries when the entries a follower needs were compacted.
    /// Answered with an `AppendEntriesResponse`.
    InstallSnapshot {
        term: Term,
        leader: Id,
        snapshot: Snapshot,
    },
    /// ReadIndex (`Params::read_index`): the leader asks the others to confirm that it still
    /// leads `term`, for read round `round`.
    ReadIndex { term: Term, leader: Id, round: u8 },
    /// `ok` iff the sender accepted `term`'s leader (false: it is in a later term).
    ReadIndexResponse { term: Term, round: u8, ok: bool },
}

impl Msg {
    pub fn term(&self) -> Term {
        match self {
            Msg::RequestVote { term, .. }
            | Msg::RequestVoteResponse { term, .. }
            | Msg::AppendEntries { term, .. }
            | Msg::AppendEntriesResponse { term, .. }
            | Msg::InstallSnapshot { term, .. }
            | Msg::ReadIndex { term, .. }
            | Msg::ReadIndexResponse { term, .. } => *term,
        }
    }
}

/// A message in flight between two servers. (`Hash` is in `pack.rs`.)
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Envelope {
    pub src: Id,
    pub dst: Id,
    pub msg: Msg,
}

/// A leader's answer to a client, in flight to that client. The model carries only real
/// answers: a `NotLeader` reply changes nothing the client does next (it may retry anywhere at
/// any moment), so the model records the miss in the client's state instead. The answer to a
/// `Register` has `seq = 0` and the nonce as `client_id`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientResponse {
    pub client_id: ClientId,
    pub seq: Seq,
    pub answer: Answer,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put(k{key}={value})"),
            Op::Get { key } => write!(f, "get(k{key})"),
            Op::Delete { key } => write!(f, "del(k{key})"),
            Op::Cas { key, expected, new } => {
                let v = |x: Option<Value>| x.map_or("none".to_string(), |v| v.to_string());
                write!(f, "cas(k{key}:{}→{})", v(*expected), v(*new))
            }
        }
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Answer::Ok => write!(f, "ok"),
            Answer::Value(Some(v)) => write!(f, "{v}"),
            Answer::Value(None) => write!(f, "none"),
            Answer::Cas { swapped, previous } => write!(
                f,
                "{}(was {})",
                if *swapped { "swapped" } else { "kept" },
                previous.map_or("none".to_string(), |v| v.to_string())
            ),
            Answer::SessionExpired => write!(f, "expired"),
            Answer::Registered(id) => write!(f, "session={id}"),
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Command::Noop => write!(f, "noop"),
            Command::Client { client_id, seq, op } => write!(f, "c{client_id}#{seq}:{op:?}"),
            Command::Register { nonce } => write!(f, "register(n{nonce})"),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{:?}", self.term, self.command)
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Msg::RequestVote {
                term,
                candidate,
                last_log_index,
                last_log_term,
                pre_vote,
            } => write!(
                f,
                "{}Vote?(t{term} c=s{candidate} last={last_log_index}@t{last_log_term})",
                if *pre_vote { "Pre" } else { "" }
            ),
            Msg::RequestVoteResponse {
                term,
                granted,
                pre_vote,
            } => write!(
                f,
                "{}Vote{}(t{term})",
                if *pre_vote { "Pre" } else { "" },
                if *granted { "+" } else { "-" }
            ),
            Msg::AppendEntries {
                term,
                leader,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => write!(
                f,
                "Append(t{term} s{leader} prev={prev_log_index}@t{prev_log_term} {entries:?} commit={leader_commit})"
            ),
            Msg::AppendEntriesResponse {
                term,
                success,
                last_index,
            } => write!(
                f,
                "Append{}(t{term} last={last_index})",
                if *success { "+" } else { "-" }
            ),
            Msg::InstallSnapshot {
                term,
                leader,
                snapshot,
            } => write!(f, "InstallSnapshot(t{term} s{leader} {snapshot:?})"),
            Msg::ReadIndex {
                term,
                leader,
                round,
            } => write!(f, "ReadIndex(t{term} s{leader} r{round})"),
            Msg::ReadIndexResponse { term, round, ok } => write!(
                f,
                "ReadIndex{}(t{term} r{round})",
                if *ok { "+" } else { "-" }
            ),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "c{}#{}:{:?}@{}",
            self.client_id, self.last_seq, self.answer, self.last_index
        )
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "snap={}@t{} kv={:?} sessions={:?}",
            self.last_included_index, self.last_included_term, self.kv, self.sessions
        )
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "s{}→s{} {:?}", self.src, self.dst, self.msg)
    }
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "→c{} #{} {:?}", self.client_id, self.seq, self.answer)
    }
}
