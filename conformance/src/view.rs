//! The abstraction both sides are compared on: one [`View`] per server, built from a model
//! `Server` or from a node core plus its durable storage, in the core's vocabulary.
//!
//! Role-relevant fields only: `votes` while `PreCandidate`/`Candidate`, `next_index`,
//! `match_index` and `recent_active` while `Leader` (the core keeps them after stepping down;
//! the model clears them). `last_applied` is compared with the model's `commit_index` (the
//! model applies as it commits). `durable` is what the core's storage holds after the `Ready`
//! was persisted, compared with the model's durable fields: a restart rebuilds the core from
//! it.

use crate::map;
use raft_core as c;
use raft_model::server::Server;
use raft_model::types as m;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The durable state a node's storage holds: the simulator's in-memory storage, persisted and
/// restored the way the runtime does it.
pub use raft_core::MemoryStorage as Storage;

/// A snapshot as compared: `(last_included_index, last_included_term, kv, sessions,
/// membership)`.
pub type SnapView = (c::Index, c::Term, Kv, Sessions, Option<c::Membership>);
pub type Kv = BTreeMap<c::Text, c::Text>;
/// Per session id `(last_seq, answer, last_index)`: `last_index` orders eviction.
pub type Sessions = BTreeMap<c::ClientId, (u64, c::Answer, c::Index)>;

fn model_kv(kv: &[Option<m::Value>; 2]) -> Kv {
    (kv.iter().enumerate())
        .filter_map(|(k, v)| v.map(|v| (map::key(k as m::Key), map::value(v))))
        .collect()
}

fn model_sessions(sessions: &[m::Session]) -> Sessions {
    (sessions.iter())
        .map(|sess| {
            (
                map::client_id(sess.client_id),
                (
                    sess.last_seq as u64,
                    map::answer(&sess.answer),
                    sess.last_index as u64,
                ),
            )
        })
        .collect()
}

fn model_snap(s: &m::Snapshot) -> SnapView {
    (
        s.last_included_index as u64,
        map::term(s.last_included_term),
        model_kv(&s.kv),
        model_sessions(&s.sessions),
        s.membership.as_ref().map(map::membership),
    )
}

fn core_sessions(sm: &c::KvStateMachine) -> Sessions {
    (sm.sessions().iter())
        .map(|(&cl, s)| (cl, (s.last_seq, s.answer.clone(), s.last_index)))
        .collect()
}

/// A core's entries with registration nonces in the model's vocabulary (`map::model_nonce`).
fn core_log(entries: &[c::Entry]) -> Vec<c::Entry> {
    (entries.iter())
        .map(|e| match e.command {
            c::Command::Register { nonce } => c::Entry {
                command: c::Command::Register {
                    nonce: map::model_nonce(nonce) as u64,
                },
                ..e.clone()
            },
            _ => e.clone(),
        })
        .collect()
}

fn core_snap(s: &c::Snapshot) -> SnapView {
    (
        s.last_included_index,
        s.last_included_term,
        s.state
            .kv()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        core_sessions(&s.state),
        s.membership.clone(),
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub role: c::Role,
    pub current_term: c::Term,
    pub voted_for: Option<c::NodeId>,
    pub log: Vec<c::Entry>,
    pub commit_index: c::Index,
    pub last_applied: c::Index,
    pub leader_id: Option<c::NodeId>,
    /// The configuration in effect (the core keeps it cached beside its log).
    pub membership: c::Membership,
    pub votes: Option<BTreeSet<c::NodeId>>,
    /// Per member but the leader: `next_index`, `match_index`, and the pipeline (the model
    /// keeps them for every server; only a member's mean anything).
    pub progress: Option<BTreeMap<c::NodeId, ProgressView>>,
    pub recent_active: Option<BTreeSet<c::NodeId>>,
    pub kv: Kv,
    pub sessions: Sessions,
    /// ReadIndex bookkeeping (empty but for a leader): the last round, and per read
    /// `(client_id, read_id, key, read_index, round, acks)` under way, then those held back.
    pub reads: (u64, Vec<PendingView>, Vec<c::ReadRequest>),
    pub snapshot: SnapView,
    /// Durable `(current_term, voted_for, snapshot, log after it)`.
    pub durable: (c::Term, Option<c::NodeId>, SnapView, Vec<c::Entry>),
}

/// `(next_index, match_index, last index of each append in flight, stalled)`.
pub type ProgressView = (c::Index, c::Index, Vec<c::Index>, bool);

pub type PendingView = (c::ReadRequest, c::Index, u64, BTreeSet<c::NodeId>);

fn model_read(q: &raft_model::server::ReadRequest) -> c::ReadRequest {
    c::ReadRequest {
        client_id: map::client_id(q.client_id),
        read_id: q.seq as u64,
        key: map::key(q.key),
    }
}

fn mask(bits: u8) -> BTreeSet<c::NodeId> {
    (0..8u8)
        .filter(|i| bits & (1 << i) != 0)
        .map(map::node_id)
        .collect()
}

impl View {
    /// `initial`: the configuration the model's cluster started with.
    pub fn of_model(s: &Server, me: m::Id, initial: m::Membership) -> View {
        let log: Vec<c::Entry> = s.log.iter().map(map::entry).collect();
        let candidate = matches!(s.role, m::Role::PreCandidate | m::Role::Candidate);
        let leader = s.role == m::Role::Leader;
        let membership = s.membership_or(initial);
        View {
            role: map::role(s.role),
            current_term: map::term(s.current_term),
            voted_for: s.voted_for.map(map::node_id),
            log: log.clone(),
            commit_index: s.commit_index as u64,
            last_applied: s.commit_index as u64,
            leader_id: s.leader_id.map(map::node_id),
            membership: map::membership(&membership),
            votes: candidate.then(|| mask(s.votes)),
            progress: leader.then(|| {
                (0..s.next_index.len() as m::Id)
                    .filter(|&p| p != me && membership.members() & (1 << p) != 0)
                    .map(|p| {
                        let i = p as usize;
                        let inflight = s.inflight.get(i).map_or(&[][..], Vec::as_slice);
                        let progress = (
                            s.next_index[i] as u64,
                            s.match_index[i] as u64,
                            inflight.iter().map(|&l| l as u64).collect(),
                            s.stalled & (1 << p) != 0,
                        );
                        (map::node_id(p), progress)
                    })
                    .collect()
            }),
            recent_active: leader.then(|| mask(s.recent_active)),
            kv: model_kv(&s.kv),
            sessions: model_sessions(&s.sessions),
            reads: (
                s.reads.round as u64,
                (s.reads.pending.iter())
                    .map(|r| {
                        let at = r.read_index as u64;
                        (model_read(&r.request), at, r.round as u64, mask(r.acks))
                    })
                    .collect(),
                s.reads.waiting.iter().map(model_read).collect(),
            ),
            snapshot: model_snap(&s.snapshot),
            durable: (
                map::term(s.current_term),
                s.voted_for.map(map::node_id),
                model_snap(&s.snapshot),
                log,
            ),
        }
    }

    pub fn of_core(core: &c::RaftCore, storage: &Storage) -> View {
        let role = core.role();
        let candidate = matches!(role, c::Role::PreCandidate | c::Role::Candidate);
        let leader = role == c::Role::Leader;
        View {
            role,
            current_term: core.current_term(),
            voted_for: core.voted_for(),
            log: core_log(core.log().entries()),
            commit_index: core.commit_index(),
            last_applied: core.last_applied(),
            leader_id: core.leader_id(),
            membership: core.membership().clone(),
            votes: candidate.then(|| core.votes().clone()),
            progress: leader.then(|| {
                core.progress()
                    .iter()
                    .map(|(&p, pr)| {
                        let inflight = pr.inflight_lasts().collect();
                        (p, (pr.next_index, pr.match_index, inflight, pr.stalled()))
                    })
                    .collect()
            }),
            recent_active: leader.then(|| core.recent_active().clone()),
            kv: core
                .kv()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sessions: core_sessions(core.state_machine()),
            reads: {
                let r = core.read_state();
                (
                    r.round,
                    (r.pending.iter())
                        .map(|p| (p.request.clone(), p.read_index, p.round, p.acks.clone()))
                        .collect(),
                    r.waiting.clone(),
                )
            },
            snapshot: core_snap(core.snapshot()),
            durable: (
                storage.hard_state.current_term,
                storage.hard_state.voted_for,
                core_snap(&storage.snapshot),
                core_log(&storage.log),
            ),
        }
    }

    /// `(field, rendering)` pairs, in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let log = |l: &[c::Entry]| l.iter().map(entry_str).collect::<Vec<_>>().join(", ");
        vec![
            ("role", format!("{:?}", self.role)),
            ("current_term", self.current_term.to_string()),
            ("voted_for", format!("{:?}", self.voted_for)),
            ("log", format!("[{}]", log(&self.log))),
            ("commit_index", self.commit_index.to_string()),
            ("last_applied", self.last_applied.to_string()),
            ("leader_id", format!("{:?}", self.leader_id)),
            ("membership", self.membership.to_string()),
            ("votes", format!("{:?}", self.votes)),
            (
                "next/match/in flight/stalled",
                format!("{:?}", self.progress),
            ),
            ("recent_active", format!("{:?}", self.recent_active)),
            ("kv", format!("{:?}", self.kv)),
            ("sessions", format!("{:?}", self.sessions)),
            ("reads", format!("{:?}", self.reads)),
            ("snapshot", format!("{:?}", self.snapshot)),
            (
                "durable",
                format!(
                    "t{} vote={:?} snapshot={:?} [{}]",
                    self.durable.0,
                    self.durable.1,
                    self.durable.2,
                    log(&self.durable.3)
                ),
            ),
        ]
    }
}

pub fn entry_str(e: &c::Entry) -> String {
    match &e.command {
        c::Command::Noop => format!("{}:noop", e.term),
        c::Command::Client { client_id, seq, op } => {
            format!("{}:c{client_id}#{seq}:{op:?}", e.term)
        }
        c::Command::Register { nonce } => format!("{}:register(n{nonce})", e.term),
        c::Command::Membership(ms) => format!("{}:config({ms})", e.term),
    }
}

/// Both views side by side, one field a line, `≠` where they differ.
pub fn side_by_side(node: c::NodeId, model: &View, core: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  node {node}:");
    for ((name, a), (_, b)) in model.fields().into_iter().zip(core.fields()) {
        let mark = if a == b { " " } else { "≠" };
        let _ = writeln!(out, "  {mark} {name:<14} model: {a}");
        if a != b {
            let _ = writeln!(out, "    {:<14} core:  {b}", "");
        }
    }
    out
}
