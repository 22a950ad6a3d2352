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
    /// A configuration entry: the cluster's membership from this entry on. It takes effect
    /// on the servers that append it, committed or not (PROTOCOL.md, "Membership").
    Membership(Membership),
}

/// Who takes part: voters elect and count toward a majority; learners only receive the log.
/// Bit `i` of a mask is server `i`; the two masks never share a bit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub voters: u8,
    pub learners: u8,
}

impl Membership {
    pub fn is_voter(&self, id: Id) -> bool {
        self.voters & (1 << id) != 0
    }

    /// Voters and learners: the servers a leader replicates to.
    pub fn members(&self) -> u8 {
        self.voters | self.learners
    }

    /// The membership an administrative change makes of this one, or `None` when the change
    /// does not apply to it (adding a voter that is one, promoting a server that is no
    /// learner, removing a server that is not a member). A transfer changes no membership.
    pub fn changed_by(&self, op: AdminOp) -> Option<Membership> {
        let b = |id: Id| 1u8 << id;
        match op {
            AdminOp::AddVoter(id) if !self.is_voter(id) => Some(Membership {
                voters: self.voters | b(id),
                learners: self.learners & !b(id),
            }),
            AdminOp::AddLearner(id) if self.members() & b(id) == 0 => Some(Membership {
                voters: self.voters,
                learners: self.learners | b(id),
            }),
            AdminOp::Promote(id) if self.learners & b(id) != 0 => Some(Membership {
                voters: self.voters | b(id),
                learners: self.learners & !b(id),
            }),
            // The last voter stays: a cluster without voters elects no one, ever.
            AdminOp::Remove(id) if self.members() & b(id) != 0 && self.voters != b(id) => {
                Some(Membership {
                    voters: self.voters & !b(id),
                    learners: self.learners & !b(id),
                })
            }
            _ => None,
        }
    }
}

/// What an operator asks of the cluster's leader (`raft-model check --membership`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AdminOp {
    AddVoter(Id),
    AddLearner(Id),
    /// A learner becomes a voter.
    Promote(Id),
    /// A voter or learner leaves; the leader may remove itself.
    Remove(Id),
    /// The leader hands its leadership to a caught-up voter (`TimeoutNow`).
    Transfer(Id),
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
    /// The last configuration entry the snapshot covers; `None`: it covers none, and the
    /// initial membership holds. (Not serialized when `None`: traces without membership are
    /// written as before it existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Membership>,
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
    /// Leadership transfer: the leader of `term` tells a caught-up voter to start an
    /// election now, without a pre-vote round.
    TimeoutNow { term: Term, leader: Id },
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
            | Msg::ReadIndexResponse { term, .. }
            | Msg::TimeoutNow { term, .. } => *term,
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
            Command::Membership(m) => write!(f, "{m:?}"),
        }
    }
}

fn write_ids(f: &mut fmt::Formatter, mask: u8) -> fmt::Result {
    let ids: Vec<String> = (0..8)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| format!("s{i}"))
        .collect();
    write!(f, "{}", ids.join(","))
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "config(voters=")?;
        write_ids(f, self.voters)?;
        if self.learners != 0 {
            write!(f, " learners=")?;
            write_ids(f, self.learners)?;
        }
        write!(f, ")")
    }
}

impl fmt::Debug for AdminOp {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AdminOp::AddVoter(i) => write!(f, "add-voter s{i}"),
            AdminOp::AddLearner(i) => write!(f, "add-learner s{i}"),
            AdminOp::Promote(i) => write!(f, "promote s{i}"),
            AdminOp::Remove(i) => write!(f, "remove s{i}"),
            AdminOp::Transfer(i) => write!(f, "transfer-leader s{i}"),
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
            Msg::TimeoutNow { term, leader } => write!(f, "TimeoutNow(t{term} s{leader})"),
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
        )?;
        match self.membership {
            Some(m) => write!(f, " {m:?}"),
            None => Ok(()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: Membership = Membership {
        voters: 0b111,
        learners: 0,
    };

    #[test]
    fn a_change_applies_only_where_it_means_something() {
        let with_learner = THREE.changed_by(AdminOp::AddLearner(3)).unwrap();
        assert_eq!(with_learner.learners, 0b1000);
        assert_eq!(with_learner.members(), 0b1111);
        assert!(!with_learner.is_voter(3));
        let promoted = with_learner.changed_by(AdminOp::Promote(3)).unwrap();
        assert_eq!((promoted.voters, promoted.learners), (0b1111, 0));
        // Adding a voter that is one, promoting a non-learner, removing a stranger: errors.
        assert_eq!(THREE.changed_by(AdminOp::AddVoter(1)), None);
        assert_eq!(THREE.changed_by(AdminOp::Promote(1)), None);
        assert_eq!(THREE.changed_by(AdminOp::Remove(5)), None);
        assert_eq!(THREE.changed_by(AdminOp::AddLearner(2)), None);
        // A transfer is no change of membership.
        assert_eq!(THREE.changed_by(AdminOp::Transfer(1)), None);
        let removed = THREE.changed_by(AdminOp::Remove(0)).unwrap();
        assert_eq!(removed.voters, 0b110);
        // A learner removed; a voter added directly drops it from the learners.
        assert_eq!(with_learner.changed_by(AdminOp::Remove(3)), Some(THREE));
        assert_eq!(
            with_learner.changed_by(AdminOp::AddVoter(3)),
            Some(promoted)
        );
    }

    #[test]
    fn the_last_voter_cannot_be_removed() {
        let one = Membership {
            voters: 0b10,
            learners: 0b1,
        };
        assert_eq!(one.changed_by(AdminOp::Remove(1)), None);
        assert!(one.changed_by(AdminOp::Remove(0)).is_some());
    }
}
