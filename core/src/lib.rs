//! # raft-core
//!
//! The sans-IO Raft core of raftright: a deterministic state machine over [`Input`]s producing
//! [`Ready`]s, and a [`driver`] that turns clock ticks into timeout events with seeded
//! randomized election timeouts. No clock, socket, thread or global RNG lives here: the runtime
//! (`raft-node`), the simulator (`raft-sim`) and the conformance suite drive the same core.
//!
//! Every rule is the rule of PROTOCOL.md with the same names; the node-only features
//! (pipelining, byte cap, session bound, ReadIndex) are documented where they act.
//!
//! The core replicates any [`StateMachine`]: [`RaftCore<S>`](RaftCore) applies its committed
//! entries to an `S`. Without a parameter, `RaftCore` (and `Message`, `Input`, `Ready`, ...)
//! means the key-value store [`KvStateMachine`] with its client sessions, which `raft-node`
//! serves. `examples/counter.rs` runs a machine of its own on three servers.
//!
//! ## Driving the core
//!
//! ```
//! use raft_core::{Input, Params, RaftCore, Role};
//!
//! // A one-server cluster elects itself on its first election timeout.
//! let mut node = RaftCore::new(1, &[1], Params::default());
//! let ready = node.step(Input::ElectionTimeout);
//! assert_eq!(node.role(), Role::Leader);
//! // Persist first, then send: the new term and vote must be durable before any message.
//! assert!(ready.hard_state.is_some());
//! let write = ready.log_write.expect("the leader's no-op entry");
//! let to_store = node.log().slice(write.from_index, write.last_index);
//! assert_eq!(to_store.len(), 1);
//! ```
//!
//! A server built around the core is a loop: take one input (a message from a peer, a timeout
//! from the [`driver`], a client request), call [`RaftCore::step`], handle the [`Ready`] it
//! returns as below, repeat. The core is never called from two places at once and never
//! waits: everything slow (disk, network) is the caller's.
//!
//! ## The `Ready` contract
//!
//! Each `step` returns a [`Ready`]: what the input changed and what must happen because of
//! it. Handle it completely, in this order, before the next `step` (the log write names
//! entries by index and they are read from the core, which the next step may change):
//!
//! 1. **`snapshot: Some(index)`**: a new snapshot, from `Input::Compact` or installed from the
//!    leader. Store [`RaftCore::snapshot`] durably, then drop the stored entries up to
//!    `index` (never before the snapshot is durable: until then they are the only copy of
//!    that state). An installed snapshot must be durable before step 4, since the reply to
//!    the leader acknowledges it. A compaction snapshot may be written in the background
//!    (`raft-node` does), as long as the entries it covers stay stored until it is durable.
//! 2. **`hard_state: Some(hs)`**: store the term and vote durably. A vote forgotten in a crash
//!    lets a server vote twice in one term, and two leaders can then be elected.
//! 3. **`log_write: Some(w)`**: drop every stored entry at index `>= w.from_index`, then
//!    append `core.log().slice(w.from_index, w.last_index)` (empty when `from_index >
//!    last_index`: after an installed snapshot that replaced a conflicting log, drop
//!    everything stored after the snapshot). A follower's acknowledgement counts toward the
//!    leader's commit majority, and a leader counts its own log, so an entry that is lost in
//!    a crash after either could vanish from a majority after it was committed.
//! 4. **Only once 1 to 3 are durable (fsync), send `messages`**, in any order; the network may
//!    lose, duplicate or reorder them, which the protocol tolerates. Several `Ready`s may
//!    share one sync (group commit), provided their writes reach storage in step order and
//!    none of their messages leaves before the sync.
//! 5. **Deliver `replies`** to clients: the state machine's [`StateMachine::Reply`] values (for
//!    the key-value store, [`ClientReply`]s that name the client and request they answer).
//!    The answer of an applied command comes only from the leader that applied it, so only
//!    after a majority stored the entry; a `NotLeader` answer says where to go instead.
//! 6. **`applied`**: the log indexes this step applied to [`RaftCore::state_machine`]. The
//!    core applies committed entries itself, through [`StateMachine::apply`], so there is
//!    nothing to do; an observer can read those entries from `core.log()` before the next
//!    step. A snapshot installed from the leader replaces the machine without an `applied`
//!    range (see `snapshot`).
//! 7. **`reset_election_timer`**: the server heard from a leader or granted a vote: restart
//!    the election timer with a fresh randomized timeout ([`driver::Driver`] does this).
//!
//! Then take the next input. Timers are inputs like any other: `Input::ElectionTimeout` when
//! the randomized election timeout elapses without a reset, `Input::HeartbeatTimeout` every
//! heartbeat interval at a leader (the [`driver`] turns ticks into both). When to compact is
//! the caller's policy: feed `Input::Compact`. After a crash, rebuild the core from what was
//! stored with [`RaftCore::restore`] (or [`MemoryStorage::restore`]); nothing else survives.
//! [`MemoryStorage`] is this contract applied in memory, step for step.
//!
//! ## Your own state machine
//!
//! Implement [`StateMachine`] (its documentation states the determinism contract and has an
//! example), build the servers with [`RaftCore::with_state_machine`], and drive them exactly
//! as above: clients' requests arrive as `Input::Client(S::Request)`, reads as
//! `Input::Read(S::Query)`, and the answers come back in `Ready::replies`.
#![forbid(unsafe_code)]

pub mod driver;
mod ids;
mod kv;
mod log;
mod membership;
mod memory_storage;
mod message;
mod params;
mod progress;
mod read;
mod ready;
pub mod record;
mod snapshot;
mod state_machine;

use std::collections::{BTreeMap, BTreeSet};

use self::membership::Configs;

use serde::{Deserialize, Serialize};

pub use self::kv::{
    Answer, Applied, ClientId, ClientReply, ClientRequest, ClientResponse, Command, Kv, KvRequest,
    KvStateMachine, Op, ReadRequest, Session, Text, NO_SESSION,
};
/// A log entry; the key-value store's command by default.
pub type Entry<C = Command> = log::Entry<C>;
/// The log; of key-value commands by default.
pub type Log<C = Command> = log::Log<C>;
pub use self::ids::{Index, NodeId, Term};
pub use self::membership::{AdminOp, AdminOutcome, Busy, Membership, Refusal};
pub use self::memory_storage::MemoryStorage;
/// A message between servers; of the key-value store by default.
pub type Message<S = KvStateMachine> = message::Message<S>;
/// A message with its sender and receiver; of the key-value store by default.
pub type Envelope<S = KvStateMachine> = message::Envelope<S>;
pub use self::params::{Backoff, Bug, Params};
pub use self::progress::Progress;
pub use self::read::{PendingRead, ReadState};
pub use self::ready::{HardState, LogWrite};
/// What the core is stepped with; the key-value store's by default.
pub type Input<S = KvStateMachine> = ready::Input<S>;
/// What one step asks the caller to persist, send and answer; the key-value store's by default.
pub type Ready<S = KvStateMachine> = ready::Ready<S>;
/// A snapshot of a state machine; the key-value store's by default.
pub type Snapshot<S = KvStateMachine> = snapshot::Snapshot<S>;
pub use self::state_machine::StateMachine;

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// One Raft server replicating the state machine `S` (the key-value store unless said
/// otherwise): plain data, deterministic, no I/O.
///
/// Drive it with [`RaftCore::step`]; handle each returned [`Ready`] completely (persist, then
/// send) before the next input.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RaftCore<S: StateMachine = KvStateMachine> {
    id: NodeId,
    /// The configuration the cluster started with: in effect until a configuration entry or a
    /// snapshot that records one says otherwise.
    initial_membership: Membership,
    params: Params,
    // durable
    current_term: Term,
    voted_for: Option<NodeId>,
    /// The state machine as of `log.snapshot_index()`.
    snapshot: Snapshot<S>,
    log: Log<S::Command>,
    /// Derived from `log`, `snapshot` and `initial_membership`, kept beside them so that the
    /// configuration in effect is known without scanning the log.
    configs: Configs,
    // volatile
    role: Role,
    commit_index: Index,
    last_applied: Index,
    leader_id: Option<NodeId>,
    votes: BTreeSet<NodeId>,
    progress: BTreeMap<NodeId, Progress>,
    recent_active: BTreeSet<NodeId>,
    sm: S,
    reads: ReadState<S::Query>,
    // persistence bookkeeping
    persisted_hard_state: HardState,
    unstable_from: Index,
    // the batch being built
    #[serde(skip)]
    out: Out<S>,
}

/// The parts of a `Ready` gathered while an input is handled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Out<S: StateMachine> {
    messages: Vec<Envelope<S>>,
    replies: Vec<S::Reply>,
    applied_from: Option<Index>,
    snapshot: Option<Index>,
    /// An installed snapshot replaced a conflicting log: storage must drop what it holds
    /// after the snapshot even though nothing is appended.
    log_discarded: bool,
    reset_election_timer: bool,
    admin: Option<AdminOutcome>,
}

// Derived, it would ask for `S::Reply: Default`.
impl<S: StateMachine> Default for Out<S> {
    fn default() -> Self {
        Out {
            messages: Vec::new(),
            replies: Vec::new(),
            applied_from: None,
            snapshot: None,
            log_discarded: false,
            reset_election_timer: false,
            admin: None,
        }
    }
}

impl<S: StateMachine> RaftCore<S> {
    /// A brand-new server (empty log, term 0) whose state machine starts as `machine` (usually
    /// `S::default()`; every server of a cluster must start from the same one).
    ///
    /// The cluster starts with `peers` and this server as its voters; a server that starts
    /// outside that configuration (to be added later) is built with
    /// [`RaftCore::with_membership`].
    pub fn with_state_machine(id: NodeId, peers: &[NodeId], params: Params, machine: S) -> Self {
        let initial = Membership::voters(peers.iter().copied().chain([id]));
        Self::with_membership(id, initial, params, machine)
    }

    /// A brand-new server of a cluster whose configuration starts as `initial`, which need not
    /// include it: a server outside it stays a follower that never stands for election until
    /// a configuration entry makes it a voter.
    pub fn with_membership(id: NodeId, initial: Membership, params: Params, machine: S) -> Self {
        let snapshot = Snapshot {
            last_included_index: 0,
            last_included_term: 0,
            state: machine,
            membership: None,
        };
        Self::restore(
            id,
            initial,
            params,
            HardState::default(),
            snapshot,
            Log::default(),
        )
    }

    /// A server restarted from its durable state: a `Follower` whose state machine is the
    /// snapshot's, with `commit_index = last_applied = snapshot.last_included_index` (a
    /// snapshot holds only committed entries) and `leader_id = None`. `log` must start right
    /// after the snapshot. `initial` is the configuration the cluster started with (the
    /// snapshot's and the log's configuration entries override it).
    pub fn restore(
        id: NodeId,
        initial: Membership,
        params: Params,
        hard_state: HardState,
        snapshot: Snapshot<S>,
        log: Log<S::Command>,
    ) -> Self {
        assert_eq!(
            (log.snapshot_index(), log.snapshot_term()),
            (snapshot.last_included_index, snapshot.last_included_term),
            "the log must start right after the snapshot"
        );
        let configs = Configs {
            base: snapshot
                .membership
                .clone()
                .unwrap_or_else(|| initial.clone()),
            entries: log
                .entries()
                .iter()
                .enumerate()
                .filter_map(|(k, e)| {
                    let m = S::as_membership(&e.command)?;
                    Some((log.snapshot_index() + 1 + k as Index, m.clone()))
                })
                .collect(),
        };
        let mut hard_state = hard_state;
        if params.has_bug(Bug::ForgetVoteOnRestart) {
            hard_state.voted_for = None;
        }
        let unstable_from = log.last_index() + 1;
        RaftCore {
            id,
            initial_membership: initial,
            params,
            current_term: hard_state.current_term,
            voted_for: hard_state.voted_for,
            commit_index: snapshot.last_included_index,
            last_applied: snapshot.last_included_index,
            sm: snapshot.state.clone(),
            snapshot,
            log,
            configs,
            role: Role::Follower,
            leader_id: None,
            votes: BTreeSet::new(),
            progress: BTreeMap::new(),
            recent_active: BTreeSet::new(),
            reads: ReadState::default(),
            persisted_hard_state: hard_state,
            unstable_from,
            out: Out::default(),
        }
    }

    // ----- accessors -------------------------------------------------------------------

    /// This server's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// The configuration in effect: the last configuration entry in the log, committed or
    /// not, else the snapshot's, else the initial one.
    pub fn membership(&self) -> &Membership {
        self.configs.latest()
    }
    /// The configuration as of the commit index: the one every server will agree on.
    pub fn committed_membership(&self) -> &Membership {
        self.configs.upto(self.commit_index)
    }
    /// The configuration the cluster started with.
    pub fn initial_membership(&self) -> &Membership {
        &self.initial_membership
    }
    /// The members other than this server: those a leader replicates to.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let id = self.id;
        self.membership().members().filter(move |&p| p != id)
    }
    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// `role`.
    pub fn role(&self) -> Role {
        self.role
    }
    /// True when `role == Leader`.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// `current_term`.
    pub fn current_term(&self) -> Term {
        self.current_term
    }
    /// `voted_for`.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    /// The durable state besides the log.
    pub fn hard_state(&self) -> HardState {
        HardState {
            current_term: self.current_term,
            voted_for: self.voted_for,
        }
    }
    /// The latest snapshot (durable; the empty one before any compaction).
    pub fn snapshot(&self) -> &Snapshot<S> {
        &self.snapshot
    }
    /// `log`.
    pub fn log(&self) -> &Log<S::Command> {
        &self.log
    }
    /// `commit_index`.
    pub fn commit_index(&self) -> Index {
        self.commit_index
    }
    /// `last_applied`.
    pub fn last_applied(&self) -> Index {
        self.last_applied
    }
    /// `leader_id`.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader_id
    }
    /// `votes` (meaningful at a `PreCandidate` or `Candidate`).
    pub fn votes(&self) -> &BTreeSet<NodeId> {
        &self.votes
    }
    /// `recent_active` (meaningful at a leader with `check_quorum`).
    pub fn recent_active(&self) -> &BTreeSet<NodeId> {
        &self.recent_active
    }
    /// The progress of every peer (set when this server last became leader).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }
    /// `next_index[peer]`.
    pub fn next_index(&self, peer: NodeId) -> Option<Index> {
        self.progress.get(&peer).map(|p| p.next_index)
    }
    /// `match_index[peer]`.
    pub fn match_index(&self, peer: NodeId) -> Option<Index> {
        self.progress.get(&peer).map(|p| p.match_index)
    }
    /// The state machine as of `last_applied`.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }
    /// ReadIndex bookkeeping (node-only).
    pub fn read_state(&self) -> &ReadState<S::Query> {
        &self.reads
    }

    /// Whether `ids` hold a majority of the voters in effect.
    fn is_quorum<'a>(&self, ids: impl IntoIterator<Item = &'a NodeId>) -> bool {
        self.configs.latest().is_quorum(ids)
    }

    // ----- the one entry point -----------------------------------------------------------

    /// Handle one input and return what must happen because of it.
    pub fn step(&mut self, input: Input<S>) -> Ready<S> {
        match input {
            Input::Message(env) => self.on_message(env.from, env.msg),
            Input::ElectionTimeout => self.on_election_timeout(),
            Input::HeartbeatTimeout => {
                if self.role == Role::Leader {
                    if self.params.max_inflight_appends.is_some() {
                        self.progress.values_mut().for_each(Progress::on_heartbeat);
                    }
                    self.broadcast_append();
                }
            }
            Input::Client(req) => self.on_client_request(req),
            Input::Read(req) => self.on_read_request(req),
            Input::Compact => self.compact(),
            Input::Admin(op) => {
                let outcome = self.on_admin(op);
                self.out.admin = Some(outcome);
            }
        }
        self.debug_check_invariants();
        self.take_ready()
    }

    /// What every step must leave true of one server, checked in debug builds (every test and
    /// simulation) so that a broken assumption stops the run where it happened instead of
    /// corrupting the log or the applied state silently several steps later. The cross-server
    /// properties (election safety, log matching...) are the simulator's and the model's.
    fn debug_check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let last = self.log.last_index();
        debug_assert!(
            self.log.snapshot_index() <= self.last_applied
                && self.last_applied <= self.commit_index
                && self.commit_index <= last,
            "n{}: snapshot {} <= applied {} <= commit {} <= last {} broken",
            self.id,
            self.log.snapshot_index(),
            self.last_applied,
            self.commit_index,
            last
        );
        debug_assert!(
            self.voted_for.is_none() || self.current_term > 0,
            "n{}: a vote in term 0",
            self.id
        );
        if self.role == Role::Leader {
            debug_assert_eq!(
                self.leader_id,
                Some(self.id),
                "n{}: a leader not knowing itself",
                self.id
            );
            for (peer, pr) in &self.progress {
                debug_assert!(
                    pr.match_index < pr.next_index && pr.next_index <= last + 1,
                    "n{}: progress of n{peer}: match {} < next {} <= last + 1 = {} broken",
                    self.id,
                    pr.match_index,
                    pr.next_index,
                    last + 1
                );
            }
        }
    }

    fn take_ready(&mut self) -> Ready<S> {
        let hs = self.hard_state();
        let hard_state = (hs != self.persisted_hard_state).then(|| {
            self.persisted_hard_state = hs;
            hs
        });
        let out = std::mem::take(&mut self.out);
        let last = self.log.last_index();
        let log_write =
            (self.unstable_from <= last || self.unstable_from_truncated() || out.log_discarded)
                .then(|| {
                    let w = LogWrite {
                        from_index: self.unstable_from,
                        last_index: last,
                    };
                    self.unstable_from = last + 1;
                    w
                });
        Ready {
            snapshot: out.snapshot,
            hard_state,
            log_write,
            messages: out.messages,
            replies: out.replies,
            applied: out.applied_from.map(|from| from..=self.last_applied),
            reset_election_timer: out.reset_election_timer,
            admin: out.admin,
        }
    }

    /// A truncation with nothing appended after it still has to reach storage.
    fn unstable_from_truncated(&self) -> bool {
        self.unstable_from != self.log.last_index() + 1
    }

    fn send(&mut self, to: NodeId, msg: Message<S>) {
        self.out.messages.push(Envelope {
            from: self.id,
            to,
            msg,
        });
    }

    // ----- terms ---------------------------------------------------------------------------

    /// The term rule: a newer term makes this server a follower of that term.
    fn adopt_term(&mut self, term: Term) {
        self.current_term = term;
        self.voted_for = None;
        self.leader_id = None;
        self.become_follower_role();
    }

    /// `role = Follower`, failing the reads a leader was serving.
    fn become_follower_role(&mut self) {
        if self.role == Role::Leader {
            let hint = self.leader_id.filter(|&l| l != self.id);
            self.fail_reads(hint);
        }
        self.role = Role::Follower;
    }

    fn on_message(&mut self, from: NodeId, msg: Message<S>) {
        let term = msg.term();
        let exempt = matches!(
            msg,
            Message::RequestVote { pre_vote: true, .. }
                | Message::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                    ..
                }
        );
        if term > self.current_term && !exempt {
            self.adopt_term(term);
        }
        if term < self.current_term {
            let current_term = self.current_term;
            match msg {
                Message::RequestVote { pre_vote, .. } => self.send(
                    from,
                    Message::RequestVoteResponse {
                        term: current_term,
                        granted: false,
                        pre_vote,
                    },
                ),
                Message::AppendEntries { .. } | Message::InstallSnapshot { .. } => self.send(
                    from,
                    Message::AppendEntriesResponse {
                        term: current_term,
                        success: false,
                        last_index: self.log.last_index(),
                    },
                ),
                Message::ReadIndex { round, .. } => self.send(
                    from,
                    Message::ReadIndexResponse {
                        term: current_term,
                        round,
                        ok: false,
                    },
                ),
                Message::RequestVoteResponse {
                    granted: true,
                    pre_vote: false,
                    ..
                } if self.params.has_bug(Bug::StaleVoteCounted) => {
                    self.on_vote_response(from, current_term, true, false)
                }
                _ => {}
            }
            return;
        }
        match msg {
            Message::RequestVote {
                term,
                candidate,
                last_log_index,
                last_log_term,
                pre_vote,
            } => self.on_request_vote(
                from,
                term,
                candidate,
                last_log_index,
                last_log_term,
                pre_vote,
            ),
            Message::RequestVoteResponse {
                term,
                granted,
                pre_vote,
            } => self.on_vote_response(from, term, granted, pre_vote),
            Message::AppendEntries {
                term: _,
                leader,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.on_append_entries(
                from,
                leader,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            ),
            Message::AppendEntriesResponse {
                term: _,
                success,
                last_index,
            } => self.on_append_response(from, success, last_index),
            Message::InstallSnapshot {
                term,
                leader,
                snapshot,
            } => self.on_install_snapshot(from, term, leader, snapshot),
            Message::ReadIndex {
                term,
                leader,
                round,
            } => {
                self.role_follow(leader);
                self.send(
                    from,
                    Message::ReadIndexResponse {
                        term,
                        round,
                        ok: true,
                    },
                );
            }
            Message::ReadIndexResponse { term: _, round, ok } => {
                if ok && self.role == Role::Leader {
                    self.on_read_ack(from, round);
                }
            }
            Message::TimeoutNow { term, leader: _ } => self.on_timeout_now(term),
        }
    }

    /// A message from the leader of the current term: follow it.
    fn role_follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower {
            self.become_follower_role();
        }
        self.leader_id = Some(leader);
        self.out.reset_election_timer = true;
    }

    // ----- elections ---------------------------------------------------------------------

    fn on_election_timeout(&mut self) {
        if self.role == Role::Leader {
            if self.params.check_quorum {
                let active = self.recent_active.iter().chain([&self.id]);
                if !self.is_quorum(active) {
                    self.leader_id = None;
                    self.become_follower_role();
                }
                self.recent_active.clear();
            }
            return;
        }
        // Learners and servers outside the cluster never stand for election.
        if !self.membership().is_voter(self.id) {
            return;
        }
        if self.params.pre_vote {
            self.start_pre_vote();
        } else {
            self.start_election();
        }
    }

    fn start_pre_vote(&mut self) {
        self.role = Role::PreCandidate;
        self.votes = BTreeSet::from([self.id]);
        self.leader_id = None;
        let msg = Message::RequestVote {
            term: self.current_term + 1,
            candidate: self.id,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: true,
        };
        self.broadcast(msg);
        if self.is_quorum(&self.votes) {
            self.start_election();
        }
    }

    fn start_election(&mut self) {
        self.current_term += 1;
        self.voted_for = Some(self.id);
        self.role = Role::Candidate;
        self.votes = BTreeSet::from([self.id]);
        self.leader_id = None;
        let msg = Message::RequestVote {
            term: self.current_term,
            candidate: self.id,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: false,
        };
        self.broadcast(msg);
        if self.is_quorum(&self.votes) {
            self.become_leader();
        }
    }

    /// To the other voters: a vote or a ReadIndex confirmation is theirs to give.
    fn broadcast(&mut self, msg: Message<S>) {
        let voters: Vec<NodeId> = (self.membership().voters.iter().copied())
            .filter(|&p| p != self.id)
            .collect();
        for to in voters {
            self.send(to, msg.clone());
        }
    }

    fn on_request_vote(
        &mut self,
        from: NodeId,
        term: Term,
        candidate: NodeId,
        last_log_index: Index,
        last_log_term: Term,
        pre_vote: bool,
    ) {
        let up_to_date = self.params.has_bug(Bug::VoteWithoutUpToDateCheck)
            || self.log.candidate_up_to_date(last_log_term, last_log_index);
        if pre_vote {
            let granted = term > self.current_term
                && up_to_date
                && !(self.params.check_quorum && self.leader_id.is_some());
            let term = if granted { term } else { self.current_term };
            self.send(
                from,
                Message::RequestVoteResponse {
                    term,
                    granted,
                    pre_vote: true,
                },
            );
        } else {
            let granted = term == self.current_term
                && self.voted_for.is_none_or(|v| v == candidate)
                && up_to_date;
            if granted {
                self.voted_for = Some(candidate);
                self.out.reset_election_timer = true;
            }
            let term = self.current_term;
            self.send(
                from,
                Message::RequestVoteResponse {
                    term,
                    granted,
                    pre_vote: false,
                },
            );
        }
    }

    fn on_vote_response(&mut self, from: NodeId, term: Term, granted: bool, pre_vote: bool) {
        if !granted {
            return;
        }
        if pre_vote {
            if self.role == Role::PreCandidate && term == self.current_term + 1 {
                self.votes.insert(from);
                if self.is_quorum(&self.votes) {
                    self.start_election();
                }
            }
        } else if self.role == Role::Candidate && term == self.current_term {
            self.votes.insert(from);
            if self.is_quorum(&self.votes) {
                self.become_leader();
            }
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader_id = Some(self.id);
        let last = self.log.last_index();
        self.progress = self.peers().map(|p| (p, Progress::new(last))).collect();
        self.recent_active.clear();
        if self.params.noop_on_election {
            self.log.push(Entry {
                term: self.current_term,
                command: S::noop(),
            });
        }
        self.broadcast_append();
        self.maybe_commit();
    }

    // ----- replication -------------------------------------------------------------------

    /// To every member but this leader (the peers it keeps progress for).
    fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            self.send_append(p, true);
        }
    }

    /// Build and send the AppendEntries for `peer`. With pipelining off this is exactly the
    /// PROTOCOL.md rule. With pipelining on, an append with entries is sent only while fewer
    /// than `max_inflight_appends` are in flight (it moves `next_index` optimistically); a
    /// broadcast to a peer whose pipeline is full, or that has nothing new while appends are
    /// in flight, is an empty append at `match_index` (a heartbeat carrying the commit index).
    fn send_append(&mut self, peer: NodeId, broadcast: bool) {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get(&peer) else {
            return;
        };
        if pr.next_index <= self.log.snapshot_index() {
            let msg = Message::InstallSnapshot {
                term: self.current_term,
                leader: self.id,
                snapshot: self.snapshot.clone(),
            };
            self.send(peer, msg);
            return;
        }
        let mut prev = pr.next_index - 1;
        let mut to = prev;
        let pipelined = self.params.max_inflight_appends;
        if pr.next_index <= last {
            to = self.cap_append(pr.next_index, last);
            if let Some(max) = pipelined {
                if pr.inflight() >= max {
                    if !broadcast {
                        return;
                    }
                    prev = pr.match_index.max(self.log.snapshot_index());
                    to = prev;
                }
            }
        } else if pipelined.is_some() && pr.inflight() > 0 {
            prev = pr.match_index.max(self.log.snapshot_index());
            to = prev;
        }
        let entries = self.log.slice(prev + 1, to).to_vec();
        if pipelined.is_some() && to > prev {
            if let Some(pr) = self.progress.get_mut(&peer) {
                pr.sent_optimistic(to);
            }
        }
        let msg = Message::AppendEntries {
            term: self.current_term,
            leader: self.id,
            prev_log_index: prev,
            prev_log_term: self.log.term_at(prev).unwrap_or(0),
            entries,
            leader_commit: self.commit_index,
        };
        self.send(peer, msg);
    }

    /// Last index of an append starting at `from`: at most `max_entries_per_append` entries
    /// and, when set, `max_bytes_per_append` bytes (always at least one entry).
    fn cap_append(&self, from: Index, last: Index) -> Index {
        let mut to = last.min(from + self.params.max_entries_per_append.max(1) as Index - 1);
        if let Some(max_bytes) = self.params.max_bytes_per_append {
            let mut bytes = 0usize;
            for (k, e) in self.log.slice(from, to).iter().enumerate() {
                bytes += 16 + S::command_size(&e.command);
                if bytes > max_bytes && k > 0 {
                    to = from + k as Index - 1;
                    break;
                }
            }
        }
        to
    }

    fn on_append_entries(
        &mut self,
        from: NodeId,
        leader: NodeId,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry<S::Command>>,
        leader_commit: Index,
    ) {
        let term = self.current_term;
        self.role_follow(leader);
        let last = self.log.last_index();
        // Compacted entries are committed, so they match the leader's.
        let matches = prev_log_index <= last
            && (prev_log_index < self.log.snapshot_index()
                || self.params.has_bug(Bug::NoPrevLogTermCheck)
                || self.log.term_at(prev_log_index) == Some(prev_log_term));
        if !matches {
            let last_index = last.min(prev_log_index.saturating_sub(1));
            self.send(
                from,
                Message::AppendEntriesResponse {
                    term,
                    success: false,
                    last_index,
                },
            );
            return;
        }
        let n = entries.len() as Index;
        for (k, entry) in entries.into_iter().enumerate() {
            let index = prev_log_index + 1 + k as Index;
            if index <= self.log.snapshot_index() {
                continue;
            }
            match self.log.term_at(index) {
                Some(t) if t == entry.term => {}
                Some(_) => {
                    self.log.truncate_from(index);
                    self.configs.truncate_from(index);
                    self.unstable_from = self.unstable_from.min(index);
                    self.push_entry(entry);
                }
                None => {
                    self.push_entry(entry);
                }
            }
        }
        let last_new = prev_log_index + n;
        let new_commit = leader_commit.min(last_new);
        if new_commit > self.commit_index {
            self.commit_index = new_commit;
            self.apply();
        }
        self.send(
            from,
            Message::AppendEntriesResponse {
                term,
                success: true,
                last_index: last_new,
            },
        );
    }

    /// A leader's snapshot replaces what this server has up to its index, unless this server
    /// has already committed that far (then the snapshot holds nothing new).
    fn on_install_snapshot(
        &mut self,
        from: NodeId,
        term: Term,
        leader: NodeId,
        snapshot: Snapshot<S>,
    ) {
        self.role_follow(leader);
        let index = snapshot.last_included_index;
        if index > self.commit_index {
            let dropped = self
                .log
                .install_snapshot(index, snapshot.last_included_term);
            if dropped {
                self.unstable_from = index + 1;
                self.out.log_discarded = true;
            }
            self.commit_index = index;
            self.last_applied = index;
            if !self.params.has_bug(Bug::InstallSnapshotKeepsStateMachine) {
                self.sm = snapshot.state.clone();
            }
            if dropped {
                self.configs.entries.clear();
            }
            self.configs.compact_to(index);
            self.configs.base =
                (snapshot.membership.clone()).unwrap_or_else(|| self.initial_membership.clone());
            self.snapshot = snapshot;
            self.out.snapshot = Some(index);
        }
        self.send(
            from,
            Message::AppendEntriesResponse {
                term,
                success: true,
                last_index: index,
            },
        );
    }

    /// Log compaction: the state machine as of `last_applied` becomes the snapshot.
    fn compact(&mut self) {
        let index = self.last_applied;
        if index <= self.log.snapshot_index() {
            return;
        }
        self.log.compact_to(index);
        // The snapshot records a configuration only once one was in the log: a cluster that
        // never changed keeps its initial one implicit, as the model does.
        let recorded = (self.configs.entries.iter().rev())
            .find(|(i, _)| *i <= index)
            .map(|(_, m)| m.clone());
        let membership = recorded.or_else(|| self.snapshot.membership.clone());
        self.configs.compact_to(index);
        self.snapshot = Snapshot {
            last_included_index: index,
            last_included_term: self.log.snapshot_term(),
            state: self.sm.clone(),
            membership,
        };
        self.out.snapshot = Some(index);
    }

    fn on_append_response(&mut self, from: NodeId, success: bool, last_index: Index) {
        if self.role != Role::Leader {
            return;
        }
        // A server this leader removed answers an append sent before: it is no follower now.
        if !self.progress.contains_key(&from) {
            return;
        }
        self.recent_active.insert(from);
        let backoff = self.params.backoff;
        let match_sent = self.params.has_bug(Bug::MatchFromOptimisticNextIndex);
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if success {
            pr.on_success(last_index);
            if match_sent {
                pr.match_index = pr.next_index - 1;
            }
            let more = pr.next_index <= last;
            self.maybe_commit();
            // (A leader whose removal this committed is a follower now.)
            if more && self.role == Role::Leader {
                self.send_append(from, false);
            }
        } else {
            pr.on_reject(last_index, backoff);
            self.send_append(from, false);
        }
    }

    /// The commit rule: the largest `N > commit_index` held by a majority of the voters (the
    /// leader counting itself at `last_log_index` while it is one) with `term_at(N) ==
    /// current_term`. A leader removing itself thus commits the change without its own copy,
    /// then steps down.
    fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        // The majority-th largest of the voters' match indexes (the leader's own is its last
        // index): the largest of them that a majority of voters hold. Quadratic in the cluster
        // size, and free of allocation, which matters more on this per-proposal path.
        let membership = self.configs.latest();
        let own = self.log.last_index();
        let own_counts = membership.is_voter(self.id);
        let voter_matches = || {
            (self.progress.iter())
                .filter(|(p, _)| membership.is_voter(**p))
                .map(|(_, pr)| pr.match_index)
        };
        let held_by = |n: Index| {
            usize::from(own_counts && own >= n) + voter_matches().filter(|&m| m >= n).count()
        };
        let majority = membership.majority();
        let n = std::iter::once(own)
            .filter(|_| own_counts)
            .chain(voter_matches())
            .filter(|&n| n > self.commit_index && held_by(n) >= majority)
            .max()
            .unwrap_or(0);
        if n <= self.commit_index {
            return;
        }
        let own_term = self.log.term_at(n) == Some(self.current_term);
        if own_term || self.params.has_bug(Bug::Figure8Commit) {
            self.commit_index = n;
            self.apply();
            self.start_waiting_reads();
            self.leave_if_removed();
        }
    }

    /// A leader whose removal is committed steps down; as a non-voter it never stands again.
    fn leave_if_removed(&mut self) {
        if !self.membership().is_voter(self.id) && self.configs.latest_index() <= self.commit_index
        {
            self.leader_id = None;
            self.become_follower_role();
        }
    }

    /// Apply `last_applied + 1 ..= commit_index`; a leader answers each client command.
    fn apply(&mut self) {
        if self.last_applied >= self.commit_index {
            return;
        }
        self.out.applied_from.get_or_insert(self.last_applied + 1);
        let is_leader = self.role == Role::Leader;
        while self.last_applied < self.commit_index {
            let index = self.last_applied + 1;
            let Some(entry) = self.log.get(index) else {
                break;
            };
            let reply = self.sm.apply(index, &entry.command, &self.params);
            self.last_applied = index;
            if is_leader {
                self.out.replies.extend(reply);
            }
        }
    }

    // ----- clients -----------------------------------------------------------------------

    fn on_client_request(&mut self, req: S::Request) {
        if self.role != Role::Leader {
            let reply = S::not_leader(req, self.leader_id);
            self.out.replies.push(reply);
            return;
        }
        match self.sm.propose(req, self.last_applied, &self.params) {
            Ok(command) => {
                self.append_and_replicate(command);
            }
            Err(reply) => self.out.replies.push(reply),
        }
    }

    /// A leader appends a client's entry and sends it to the peers that are caught up.
    fn append_and_replicate(&mut self, command: S::Command) -> Index {
        let last = self.push_entry(Entry {
            term: self.current_term,
            command,
        });
        // Only peers that held everything before this entry get it now; a peer further behind
        // has an append in flight (or lost), whose response (or the heartbeat) sends the rest.
        // A burst of proposals thus costs one append per peer per round trip, not one each.
        let caught_up: Vec<NodeId> = (self.progress.iter())
            .filter(|(_, pr)| pr.next_index == last)
            .map(|(&p, _)| p)
            .collect();
        for p in caught_up {
            self.send_append(p, true);
        }
        // A leader that is its membership's only voter commits on its own copy; with more
        // voters nothing new is held by a majority yet, and this commits nothing.
        self.maybe_commit();
        last
    }

    /// Append to the log, noting a configuration entry: it is in effect from now on.
    fn push_entry(&mut self, entry: Entry<S::Command>) -> Index {
        let membership = S::as_membership(&entry.command).cloned();
        let index = self.log.push(entry);
        if let Some(m) = membership {
            self.configs.entries.push((index, m));
        }
        index
    }

    // ----- membership ----------------------------------------------------------------------

    /// An operator's change or transfer. One change at a time, and only once this leader has
    /// committed an entry of its term: a change proposed earlier could be one of two changes,
    /// by two leaders, from one configuration, whose majorities need not overlap (PROTOCOL.md,
    /// "Membership"). A transfer's `TimeoutNow` goes only to a voter that holds the whole log,
    /// so that it can win.
    fn on_admin(&mut self, op: AdminOp) -> AdminOutcome {
        if self.role != Role::Leader {
            return AdminOutcome::NotLeader {
                hint: self.leader_id,
            };
        }
        let last = self.log.last_index();
        if let AdminOp::TransferLeader(to) = op {
            if to == self.id || !self.membership().is_voter(to) {
                return AdminOutcome::Refused(Refusal::NotATransferTarget(to));
            }
            if self.match_index(to).unwrap_or(0) < last {
                return AdminOutcome::Busy(Busy::TargetBehind);
            }
            let term = self.current_term;
            self.send(
                to,
                Message::TimeoutNow {
                    term,
                    leader: self.id,
                },
            );
            return AdminOutcome::Accepted { index: None };
        }
        if self.log.term_at(self.commit_index) != Some(self.current_term)
            && !self.params.has_bug(Bug::ChangeBeforeTermCommit)
        {
            return AdminOutcome::Busy(Busy::TermNotCommitted);
        }
        if self.configs.latest_index() > self.commit_index {
            return AdminOutcome::Busy(Busy::ChangePending);
        }
        let changed = match self.membership().changed_by(op) {
            Ok(m) => m,
            Err(refusal) => return AdminOutcome::Refused(refusal),
        };
        let Some(command) = S::membership_command(changed.clone()) else {
            return AdminOutcome::Refused(Refusal::Unsupported);
        };
        // A new member's progress starts at the configuration entry (nothing is known of its
        // log); a removed one's is dropped with it.
        let id = self.id;
        self.progress
            .retain(|p, _| changed.is_member(*p) && *p != id);
        for p in changed.members().filter(|&p| p != id) {
            self.progress
                .entry(p)
                .or_insert_with(|| Progress::new(last));
        }
        let index = self.append_and_replicate(command);
        AdminOutcome::Accepted { index: Some(index) }
    }

    /// Leadership transfer: the leader of this term asks this server to stand now. It skips
    /// the pre-vote round (which voters that heard from the leader would refuse) and stands
    /// only as a voter that still follows that term.
    fn on_timeout_now(&mut self, term: Term) {
        if term == self.current_term
            && self.role == Role::Follower
            && self.membership().is_voter(self.id)
        {
            self.start_election();
        }
    }
}

#[cfg(test)]
mod tests;
