//! The one mapping between the model's vocabulary and the node core's, both ways.
//!
//! | model | core |
//! |---|---|
//! | server id `i` (`0..n`) | `NodeId` `i + 1` |
//! | client id `c` | `ClientId` `100 + c` |
//! | key `k` (u8) | `"k{k}"` |
//! | value `v` (u8) | `v.to_string()` |
//! | `Params` (6 fields) | `Params { .., ..Params::conformance_off() }`; `read_index` is not a core parameter but how clients read |
//! | `Config::bug` | `Params::bug` (the variants both have) |
//! | `Snapshot { kv, sessions }` | `Snapshot { state: KvStateMachine }` |
//! | a `Get` with `read_index` on | `Input::Read(ReadRequest { client_id, read_id: seq, key })` |
//! | its `Value` answer | `ClientReply::Read { client_id, read_id, value }` |
//! | a read dropped when its leader steps down | `ClientReply::ReadNotLeader { hint: None }` (the model's clients need no answer) |
//!
//! | `Membership { voters, learners }` (bit masks) | `Membership { voters, learners }` (sets of `NodeId`) |
//! | `Snapshot::membership` | `Snapshot::membership` (`None` on both sides until a configuration entry is compacted) |
//! | the operator's `AdminOp` (`Transfer`) | `Input::Admin(AdminOp)` (`TransferLeader`) |
//! | `AdminOutcome::Accepted` / `Invalid` | `AdminOutcome::Accepted { .. }` / `Refused(_)` |
//!
//! Model-to-core is total. Core-to-model fails on anything the model has no word for (a key
//! or value out of range, a number above 255), and that failure is itself a divergence.

use raft_core as c;
use raft_model::config::{Backoff as MBackoff, Bug as MBug, Config};
use raft_model::types as m;

pub fn node_id(id: m::Id) -> c::NodeId {
    id as c::NodeId + 1
}

pub fn model_id(n: c::NodeId) -> Result<m::Id, String> {
    n.checked_sub(1)
        .and_then(|x| m::Id::try_from(x).ok())
        .ok_or_else(|| format!("node id {n} has no model id"))
}

/// Session ids are the same number in both: a `Register` entry's index, or
/// `PRE_REGISTERED + c` for a session opened before the run.
pub fn client_id(cl: m::ClientId) -> c::ClientId {
    cl as c::ClientId
}

pub fn model_client(cl: c::ClientId) -> Result<m::ClientId, String> {
    m::ClientId::try_from(cl).map_err(|_| format!("client id {cl} has no model id"))
}

pub fn key(k: m::Key) -> c::Text {
    format!("k{k}").into()
}

pub fn model_key(k: &str) -> Result<m::Key, String> {
    k.strip_prefix('k')
        .and_then(|n| n.parse::<m::Key>().ok())
        .filter(|&n| (n as usize) < 2)
        .ok_or_else(|| format!("key {k:?} has no model key"))
}

pub fn value(v: m::Value) -> c::Text {
    v.to_string().into()
}

pub fn model_value(v: &str) -> Result<m::Value, String> {
    v.parse::<m::Value>()
        .map_err(|_| format!("value {v:?} has no model value"))
}

pub fn term(t: m::Term) -> c::Term {
    t as c::Term
}

/// A registration's nonce in the model's vocabulary. The model uses a nonce only to address the
/// `Registered` answer, and a recorded node picks 64-bit random nonces, so they are folded to
/// their low byte (the identity below 256, as in every model configuration). Both sides of a
/// comparison go through this same function, so a collision cannot make two different states
/// or logs look equal; it could only let an answer addressed to the wrong nonce with the same
/// low byte pass.
pub fn model_nonce(nonce: u64) -> u8 {
    nonce as u8
}

pub fn model_u8(x: u64, what: &str) -> Result<u8, String> {
    u8::try_from(x).map_err(|_| format!("{what} {x} out of the model's range"))
}

pub fn op(o: &m::Op) -> c::Op {
    match *o {
        m::Op::Put { key: k, value: v } => c::Op::Put {
            key: key(k),
            value: value(v),
        },
        m::Op::Get { key: k } => c::Op::Get { key: key(k) },
        m::Op::Delete { key: k } => c::Op::Delete { key: key(k) },
        m::Op::Cas {
            key: k,
            expected,
            new,
        } => c::Op::Cas {
            key: key(k),
            expected: expected.map(value),
            new: new.map(value),
        },
    }
}

pub fn model_op(o: &c::Op) -> Result<m::Op, String> {
    match o {
        c::Op::Put { key: k, value: v } => Ok(m::Op::Put {
            key: model_key(k)?,
            value: model_value(v)?,
        }),
        c::Op::Get { key: k } => Ok(m::Op::Get { key: model_key(k)? }),
        c::Op::Delete { key: k } => Ok(m::Op::Delete { key: model_key(k)? }),
        c::Op::Cas {
            key: k,
            expected,
            new,
        } => Ok(m::Op::Cas {
            key: model_key(k)?,
            expected: expected.as_deref().map(model_value).transpose()?,
            new: new.as_deref().map(model_value).transpose()?,
        }),
    }
}

/// A leader's answer as the core's reply to the client. With `read_index` on, a `Value` answer
/// is a ReadIndex read's (every `Get` is one then), whose `seq` is the node's `read_id`.
pub fn client_reply(r: &m::ClientResponse, read_index: bool) -> c::ClientReply {
    match r.answer {
        m::Answer::Registered(id) => {
            return c::ClientReply::Registered {
                nonce: r.client_id as u64,
                client_id: client_id(id),
            }
        }
        m::Answer::Value(v) if read_index => {
            return c::ClientReply::Read {
                client_id: client_id(r.client_id),
                read_id: r.seq as u64,
                value: v.map(value),
            }
        }
        _ => {}
    }
    c::ClientReply::Response(c::ClientResponse {
        client_id: client_id(r.client_id),
        seq: r.seq as u64,
        answer: answer(&r.answer),
    })
}

pub fn answer(a: &m::Answer) -> c::Answer {
    match *a {
        m::Answer::Ok => c::Answer::Ok,
        m::Answer::Value(v) => c::Answer::Value(v.map(value)),
        m::Answer::SessionExpired => c::Answer::SessionExpired,
        m::Answer::Cas { swapped, previous } => c::Answer::Cas {
            swapped,
            previous: previous.map(value),
        },
        // Carried by `ClientReply::Registered` in the node; never stored in a session.
        m::Answer::Registered(_) => c::Answer::Ok,
    }
}

pub fn model_answer(a: &c::Answer) -> Result<m::Answer, String> {
    match a {
        c::Answer::Ok => Ok(m::Answer::Ok),
        c::Answer::Value(v) => Ok(m::Answer::Value(v.as_deref().map(model_value).transpose()?)),
        c::Answer::SessionExpired => Ok(m::Answer::SessionExpired),
        c::Answer::Cas { swapped, previous } => Ok(m::Answer::Cas {
            swapped: *swapped,
            previous: previous.as_deref().map(model_value).transpose()?,
        }),
    }
}

pub fn command(cmd: &m::Command) -> c::Command {
    match cmd {
        m::Command::Noop => c::Command::Noop,
        m::Command::Client {
            client_id: cl,
            seq,
            op: o,
        } => c::Command::Client {
            client_id: client_id(*cl),
            seq: *seq as u64,
            op: op(o),
        },
        m::Command::Register { nonce } => c::Command::Register {
            nonce: *nonce as u64,
        },
        m::Command::Membership(ms) => c::Command::Membership(membership(ms)),
    }
}

fn ids(mask: u8) -> std::collections::BTreeSet<c::NodeId> {
    (0..8)
        .filter(|i| mask & (1 << i) != 0)
        .map(node_id)
        .collect()
}

fn model_mask(ids: &std::collections::BTreeSet<c::NodeId>) -> Result<u8, String> {
    let mut mask = 0u8;
    for &n in ids {
        let id = model_id(n)?;
        if id >= 8 {
            return Err(format!("node id {n} has no model id"));
        }
        mask |= 1 << id;
    }
    Ok(mask)
}

pub fn membership(ms: &m::Membership) -> c::Membership {
    c::Membership {
        voters: ids(ms.voters),
        learners: ids(ms.learners),
    }
}

pub fn model_membership(ms: &c::Membership) -> Result<m::Membership, String> {
    Ok(m::Membership {
        voters: model_mask(&ms.voters)?,
        learners: model_mask(&ms.learners)?,
    })
}

pub fn admin_op(op: m::AdminOp) -> c::AdminOp {
    match op {
        m::AdminOp::AddVoter(i) => c::AdminOp::AddVoter(node_id(i)),
        m::AdminOp::AddLearner(i) => c::AdminOp::AddLearner(node_id(i)),
        m::AdminOp::Promote(i) => c::AdminOp::Promote(node_id(i)),
        m::AdminOp::Remove(i) => c::AdminOp::Remove(node_id(i)),
        m::AdminOp::Transfer(i) => c::AdminOp::TransferLeader(node_id(i)),
    }
}

pub fn model_admin_op(op: c::AdminOp) -> Result<m::AdminOp, String> {
    Ok(match op {
        c::AdminOp::AddVoter(n) => m::AdminOp::AddVoter(model_id(n)?),
        c::AdminOp::AddLearner(n) => m::AdminOp::AddLearner(model_id(n)?),
        c::AdminOp::Promote(n) => m::AdminOp::Promote(model_id(n)?),
        c::AdminOp::Remove(n) => m::AdminOp::Remove(model_id(n)?),
        c::AdminOp::TransferLeader(n) => m::AdminOp::Transfer(model_id(n)?),
    })
}

/// The core outcome an operation the model took (accepted or refused as invalid) must have.
pub fn admin_outcome_matches(
    model: raft_model::server::AdminOutcome,
    core: &c::AdminOutcome,
) -> bool {
    use raft_model::server::AdminOutcome as M;
    matches!(
        (model, core),
        (M::Accepted, c::AdminOutcome::Accepted { .. })
            | (M::Invalid, c::AdminOutcome::Refused(_))
            | (M::NotLeader, c::AdminOutcome::NotLeader { .. })
            | (M::Busy, c::AdminOutcome::Busy(_))
    )
}

pub fn model_command(cmd: &c::Command) -> Result<m::Command, String> {
    Ok(match cmd {
        c::Command::Noop => m::Command::Noop,
        c::Command::Client {
            client_id: cl,
            seq,
            op: o,
        } => m::Command::Client {
            client_id: model_client(*cl)?,
            seq: model_u8(*seq, "seq")?,
            op: model_op(o)?,
        },
        c::Command::Register { nonce } => m::Command::Register {
            nonce: model_nonce(*nonce),
        },
        c::Command::Membership(ms) => m::Command::Membership(model_membership(ms)?),
    })
}

pub fn entry(e: &m::Entry) -> c::Entry {
    c::Entry {
        term: term(e.term),
        command: command(&e.command),
    }
}

pub fn model_entry(e: &c::Entry) -> Result<m::Entry, String> {
    Ok(m::Entry {
        term: model_u8(e.term, "term")?,
        command: model_command(&e.command)?,
    })
}

pub fn snapshot(s: &m::Snapshot) -> c::Snapshot {
    let kv = (s.kv.iter().enumerate())
        .filter_map(|(k, v)| v.map(|v| (key(k as m::Key), value(v))))
        .collect();
    let sessions = (s.sessions.iter())
        .map(|sess| {
            (
                client_id(sess.client_id),
                c::Session {
                    last_seq: sess.last_seq as u64,
                    answer: answer(&sess.answer),
                    last_index: sess.last_index as u64,
                },
            )
        })
        .collect();
    c::Snapshot {
        last_included_index: s.last_included_index as u64,
        last_included_term: term(s.last_included_term),
        state: c::KvStateMachine::from_parts(kv, sessions),
        membership: s.membership.as_ref().map(membership),
    }
}

/// The model's snapshot for a core one.
pub fn model_snapshot(s: &c::Snapshot) -> Result<m::Snapshot, String> {
    let mut kv = [None; 2];
    for (k, v) in s.state.kv() {
        kv[model_key(k)? as usize] = Some(model_value(v)?);
    }
    let mut sessions = Vec::new();
    for (&cl, sess) in s.state.sessions() {
        sessions.push(m::Session {
            client_id: model_client(cl)?,
            last_seq: model_u8(sess.last_seq, "seq")?,
            answer: model_answer(&sess.answer)?,
            last_index: model_u8(sess.last_index, "index")?,
        });
    }
    Ok(m::Snapshot {
        last_included_index: model_u8(s.last_included_index, "index")?,
        last_included_term: model_u8(s.last_included_term, "term")?,
        kv,
        sessions,
        membership: s.membership.as_ref().map(model_membership).transpose()?,
    })
}

pub fn msg(x: &m::Msg) -> c::Message {
    match x {
        m::Msg::RequestVote {
            term: t,
            candidate,
            last_log_index,
            last_log_term,
            pre_vote,
        } => c::Message::RequestVote {
            term: term(*t),
            candidate: node_id(*candidate),
            last_log_index: *last_log_index as u64,
            last_log_term: term(*last_log_term),
            pre_vote: *pre_vote,
        },
        m::Msg::RequestVoteResponse {
            term: t,
            granted,
            pre_vote,
        } => c::Message::RequestVoteResponse {
            term: term(*t),
            granted: *granted,
            pre_vote: *pre_vote,
        },
        m::Msg::AppendEntries {
            term: t,
            leader,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => c::Message::AppendEntries {
            term: term(*t),
            leader: node_id(*leader),
            prev_log_index: *prev_log_index as u64,
            prev_log_term: term(*prev_log_term),
            entries: entries.iter().map(entry).collect(),
            leader_commit: *leader_commit as u64,
        },
        m::Msg::AppendEntriesResponse {
            term: t,
            success,
            last_index,
        } => c::Message::AppendEntriesResponse {
            term: term(*t),
            success: *success,
            last_index: *last_index as u64,
        },
        m::Msg::InstallSnapshot {
            term: t,
            leader,
            snapshot: s,
        } => c::Message::InstallSnapshot {
            term: term(*t),
            leader: node_id(*leader),
            snapshot: snapshot(s),
        },
        m::Msg::ReadIndex {
            term: t,
            leader,
            round,
        } => c::Message::ReadIndex {
            term: term(*t),
            leader: node_id(*leader),
            round: *round as u64,
        },
        m::Msg::ReadIndexResponse { term: t, round, ok } => c::Message::ReadIndexResponse {
            term: term(*t),
            round: *round as u64,
            ok: *ok,
        },
        m::Msg::TimeoutNow { term: t, leader } => c::Message::TimeoutNow {
            term: term(*t),
            leader: node_id(*leader),
        },
    }
}

/// The model's message for a core one.
pub fn model_msg(x: &c::Message) -> Result<m::Msg, String> {
    Ok(match x {
        c::Message::RequestVote {
            term: t,
            candidate,
            last_log_index,
            last_log_term,
            pre_vote,
        } => m::Msg::RequestVote {
            term: model_u8(*t, "term")?,
            candidate: model_id(*candidate)?,
            last_log_index: model_u8(*last_log_index, "index")?,
            last_log_term: model_u8(*last_log_term, "term")?,
            pre_vote: *pre_vote,
        },
        c::Message::RequestVoteResponse {
            term: t,
            granted,
            pre_vote,
        } => m::Msg::RequestVoteResponse {
            term: model_u8(*t, "term")?,
            granted: *granted,
            pre_vote: *pre_vote,
        },
        c::Message::AppendEntries {
            term: t,
            leader,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => m::Msg::AppendEntries {
            term: model_u8(*t, "term")?,
            leader: model_id(*leader)?,
            prev_log_index: model_u8(*prev_log_index, "index")?,
            prev_log_term: model_u8(*prev_log_term, "term")?,
            entries: entries.iter().map(model_entry).collect::<Result<_, _>>()?,
            leader_commit: model_u8(*leader_commit, "index")?,
        },
        c::Message::AppendEntriesResponse {
            term: t,
            success,
            last_index,
        } => m::Msg::AppendEntriesResponse {
            term: model_u8(*t, "term")?,
            success: *success,
            last_index: model_u8(*last_index, "index")?,
        },
        c::Message::InstallSnapshot {
            term: t,
            leader,
            snapshot: s,
        } => m::Msg::InstallSnapshot {
            term: model_u8(*t, "term")?,
            leader: model_id(*leader)?,
            snapshot: model_snapshot(s)?,
        },
        c::Message::ReadIndex {
            term: t,
            leader,
            round,
        } => m::Msg::ReadIndex {
            term: model_u8(*t, "term")?,
            leader: model_id(*leader)?,
            round: model_u8(*round, "read round")?,
        },
        c::Message::ReadIndexResponse { term: t, round, ok } => m::Msg::ReadIndexResponse {
            term: model_u8(*t, "term")?,
            round: model_u8(*round, "read round")?,
            ok: *ok,
        },
        c::Message::TimeoutNow { term: t, leader } => m::Msg::TimeoutNow {
            term: model_u8(*t, "term")?,
            leader: model_id(*leader)?,
        },
    })
}

pub fn envelope(e: &m::Envelope) -> c::Envelope {
    c::Envelope {
        from: node_id(e.src),
        to: node_id(e.dst),
        msg: msg(&e.msg),
    }
}

pub fn model_envelope(e: &c::Envelope) -> Result<m::Envelope, String> {
    Ok(m::Envelope {
        src: model_id(e.from)?,
        dst: model_id(e.to)?,
        msg: model_msg(&e.msg)?,
    })
}

pub fn role(r: m::Role) -> c::Role {
    match r {
        m::Role::Follower => c::Role::Follower,
        m::Role::PreCandidate => c::Role::PreCandidate,
        m::Role::Candidate => c::Role::Candidate,
        m::Role::Leader => c::Role::Leader,
    }
}

/// The core's mutant for a model bug; `None` for a bug only the model has (the mutation score
/// runs the core's own list, `CORE_BUGS`).
pub fn bug(b: MBug) -> Option<c::Bug> {
    Some(match b {
        MBug::VoteWithoutUpToDateCheck => c::Bug::VoteWithoutUpToDateCheck,
        MBug::Figure8Commit => c::Bug::Figure8Commit,
        MBug::ForgetVoteOnRestart => c::Bug::ForgetVoteOnRestart,
        MBug::NoDedup => c::Bug::NoDedup,
        MBug::NoPrevLogTermCheck => c::Bug::NoPrevLogTermCheck,
        MBug::InstallSnapshotKeepsStateMachine => c::Bug::InstallSnapshotKeepsStateMachine,
        MBug::ReopenExpiredSession => c::Bug::ReopenExpiredSession,
        MBug::StaleVoteCounted => c::Bug::StaleVoteCounted,
        MBug::ReadWithoutQuorum => c::Bug::ReadWithoutQuorum,
        MBug::ReadBeforeTermCommit => c::Bug::ReadBeforeTermCommit,
        MBug::MatchFromOptimisticNextIndex => c::Bug::MatchFromOptimisticNextIndex,
        MBug::ChangeBeforeTermCommit => c::Bug::ChangeBeforeTermCommit,
        MBug::ApplyBeforeCommit
        | MBug::MajorityOffByOne
        | MBug::NoStepDownOnHigherTermResponse
        | MBug::ForgetLogOnRestart
        | MBug::VoteTwiceInTerm
        | MBug::MajorityOfEvenCluster => return None,
    })
}

/// The core's parameters for a model configuration: the PROTOCOL.md parameters (the session
/// bound and pipelining among them), the byte cap off, and the model's bug (if any) as the core's
/// mutant.
pub fn params(cfg: &Config) -> c::Params {
    let p = &cfg.params;
    c::Params {
        pre_vote: p.pre_vote,
        check_quorum: p.check_quorum,
        max_entries_per_append: p.max_entries_per_append as usize,
        backoff: match p.backoff {
            MBackoff::ConflictHint => c::Backoff::ConflictHint,
            MBackoff::Decrement => c::Backoff::Decrement,
        },
        noop_on_election: p.noop_on_election,
        // The model's 0 is "no bound".
        max_sessions: (p.max_sessions > 0).then_some(p.max_sessions as usize),
        max_inflight_appends: (p.max_inflight_appends > 0)
            .then_some(p.max_inflight_appends as usize),
        bug: cfg.bug.and_then(bug),
        ..c::Params::conformance_off()
    }
}

/// Every core bug, for the mutation score.
pub const CORE_BUGS: [c::Bug; 12] = [
    c::Bug::VoteWithoutUpToDateCheck,
    c::Bug::Figure8Commit,
    c::Bug::ForgetVoteOnRestart,
    c::Bug::NoDedup,
    c::Bug::NoPrevLogTermCheck,
    c::Bug::InstallSnapshotKeepsStateMachine,
    c::Bug::ReopenExpiredSession,
    c::Bug::StaleVoteCounted,
    c::Bug::ReadWithoutQuorum,
    c::Bug::ReadBeforeTermCommit,
    c::Bug::MatchFromOptimisticNextIndex,
    c::Bug::ChangeBeforeTermCommit,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_map_both_ways() {
        let e = m::Envelope {
            src: 2,
            dst: 0,
            msg: m::Msg::AppendEntries {
                term: 2,
                leader: 2,
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![
                    m::Entry {
                        term: 2,
                        command: m::Command::Client {
                            client_id: 1,
                            seq: 1,
                            op: m::Op::Put { key: 1, value: 7 },
                        },
                    },
                    m::Entry {
                        term: 2,
                        command: m::Command::Noop,
                    },
                ],
                leader_commit: 1,
            },
        };
        let core = envelope(&e);
        assert_eq!(core.from, 3);
        assert_eq!(model_envelope(&core).unwrap(), e);
        let snap = m::Envelope {
            src: 0,
            dst: 1,
            msg: m::Msg::InstallSnapshot {
                term: 2,
                leader: 0,
                snapshot: m::Snapshot {
                    last_included_index: 2,
                    last_included_term: 1,
                    kv: [Some(1), None],
                    sessions: vec![
                        m::Session {
                            client_id: 2,
                            last_seq: 0,
                            answer: m::Answer::Ok,
                            last_index: 2,
                        },
                        m::Session {
                            client_id: m::PRE_REGISTERED,
                            last_seq: 1,
                            answer: m::Answer::Ok,
                            last_index: 1,
                        },
                    ],
                    membership: None,
                },
            },
        };
        assert_eq!(model_envelope(&envelope(&snap)).unwrap(), snap);
        for msg in [
            m::Msg::ReadIndex {
                term: 2,
                leader: 1,
                round: 3,
            },
            m::Msg::ReadIndexResponse {
                term: 2,
                round: 3,
                ok: false,
            },
        ] {
            assert_eq!(model_msg(&super::msg(&msg)).unwrap(), msg);
        }
        for o in [
            m::Op::Delete { key: 1 },
            m::Op::Cas {
                key: 0,
                expected: None,
                new: Some(4),
            },
            m::Op::Cas {
                key: 0,
                expected: Some(4),
                new: None,
            },
        ] {
            assert_eq!(model_op(&op(&o)).unwrap(), o);
        }
        let cas = m::Answer::Cas {
            swapped: false,
            previous: Some(2),
        };
        assert_eq!(model_answer(&answer(&cas)).unwrap(), cas);
        assert!(model_msg(&c::Message::ReadIndex {
            term: 1,
            leader: 1,
            round: 256
        })
        .is_err());
        assert!(model_value("x").is_err());
        assert!(model_key("k2").is_err());
    }
}
