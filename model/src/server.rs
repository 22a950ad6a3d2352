//! One server's protocol logic, rule by rule as PROTOCOL.md states it. The node core
//! (`core/src`, crate `raft-core`) implements the same rules with the same names.

use crate::config::{Backoff, Bug, Config};
use crate::types::*;
use serde::{Deserialize, Serialize};

/// A server's state. Leader-only fields are empty (or zero) in other roles, so that two
/// servers that behave alike are equal and the checker does not count them twice.
/// (`Hash` is in `pack.rs`.)
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Server {
    // Durable.
    pub current_term: Term,
    pub voted_for: Option<Id>,
    /// The state machine up to `snapshot.last_included_index`; the log holds what follows.
    pub snapshot: Snapshot,
    /// The entries at indexes `snapshot.last_included_index + 1 ..= last_log_index()`.
    pub log: Vec<Entry>,
    // Volatile.
    pub role: Role,
    pub leader_id: Option<Id>,
    /// Bit `i` set: server `i` granted this (pre-)candidate its vote.
    pub votes: u8,
    pub commit_index: Index,
    pub next_index: Vec<Index>,
    pub match_index: Vec<Index>,
    /// Pipelining (`Params::max_inflight_appends`) only, else empty: per peer, the last index
    /// of each AppendEntries with entries sent and not yet acknowledged, oldest first.
    pub inflight: Vec<Vec<Index>>,
    /// Pipelining only: bit `i` set when a heartbeat found appends to server `i` in flight and
    /// nothing new was acknowledged since (the next heartbeat falls back to `match_index + 1`).
    pub stalled: u8,
    /// Bit `i` set: server `i` answered this leader since the last quorum check.
    pub recent_active: u8,
    /// The key-value state machine: `kv[key]`.
    pub kv: [Option<Value>; 2],
    /// The session table, sorted by `client_id`, at most `max_sessions` long.
    pub sessions: Vec<Session>,
    /// ReadIndex bookkeeping of a leader (`Params::read_index`); empty in other roles.
    pub reads: Reads,
    /// Ghost, not server state: each `(client_id, seq)` applied since the last restart, with
    /// how often, sorted; for the exactly-once property.
    pub applied: Vec<(ClientId, Seq, u8)>,
}

/// A client's read served by ReadIndex: its `(client_id, seq)` routes the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadRequest {
    pub client_id: ClientId,
    pub seq: Seq,
    pub key: Key,
}

/// A read waiting for a majority to confirm, after it arrived, that its leader still leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PendingRead {
    pub request: ReadRequest,
    /// `commit_index` when its round started: the read is served at (at least) this index.
    pub read_index: Index,
    pub round: u8,
    /// Bit `i` set: server `i` confirmed round `round` or a later one (the leader itself too).
    pub acks: u8,
}

/// A leader's ReadIndex state. Rounds are numbered from 1 in each leadership: an answer from
/// an earlier term is refused by its term, so numbers need to be unique within a term only.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reads {
    /// The last round started.
    pub round: u8,
    /// Reads with a round under way, oldest first.
    pub pending: Vec<PendingRead>,
    /// Reads waiting for the first commit of the leader's term (before it, `commit_index` may
    /// miss writes that earlier leaders answered).
    pub waiting: Vec<ReadRequest>,
}

/// What one step of a server produced besides its own state change.
#[derive(Default)]
pub struct Effects {
    pub out: Vec<Envelope>,
    pub responses: Vec<ClientResponse>,
    /// Entries a truncation removed from this server's log.
    pub removed: Vec<Entry>,
    pub events: u32,
}

/// Which AppendEntries-like message a leader builds for a peer (see `Server::send_append`).
pub enum Outgoing {
    Append,
    Snapshot,
}

/// Transient witness events (see `properties.rs`).
pub mod event {
    pub const OVERWRITE: u32 = 1 << 0;
    pub const DEDUP_ANSWER: u32 = 1 << 1;
    pub const F1: u32 = 1 << 3;
    pub const F2: u32 = 1 << 4;
    pub const F3: u32 = 1 << 5;
    pub const F4: u32 = 1 << 6;
    pub const F5: u32 = 1 << 7;
    pub const F6: u32 = 1 << 8;
    pub const SNAPSHOT_INSTALLED: u32 = 1 << 9;
    pub const RESTORED_FROM_SNAPSHOT: u32 = 1 << 10;
    /// A retry is refused because its session was evicted after the command was applied.
    pub const EXPIRED_RETRY_REFUSED: u32 = 1 << 11;
    /// A leader or candidate steps down on a response that carries a higher term.
    pub const STEP_DOWN_ON_RESPONSE: u32 = 1 << 12;
    /// A leader answers a read by ReadIndex.
    pub const READ_INDEX_SERVED: u32 = 1 << 13;
    /// A pipelining leader gives up on appends lost in flight and resends from `match_index`.
    pub const PIPELINE_FALLBACK: u32 = 1 << 14;
    /// A configuration entry that adds a voter is committed.
    pub const VOTER_ADDED: u32 = 1 << 15;
    /// A leader commits the configuration that removes it, and steps down.
    pub const LEADER_REMOVED_ITSELF: u32 = 1 << 2;
    /// A voter starts an election on the leader's `TimeoutNow`.
    pub const TRANSFER: u32 = 1 << 16;
}

/// What a leader did with an administrative operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOutcome {
    /// Not the leader: the operator tries another server.
    NotLeader,
    /// Not now: this leader has not committed an entry of its term, a change of its is still
    /// uncommitted, or a transfer's target has not caught up. The operator retries.
    Busy,
    /// The operation does not apply to the leader's membership (answered as an error).
    Invalid,
    /// Appended (a change) or sent (a transfer's `TimeoutNow`).
    Accepted,
}

pub fn bit(id: Id) -> u8 {
    1 << id
}

/// Sends `msg` from `me` back to `src`, the server whose message is being handled.
fn reply(fx: &mut Effects, me: Id, src: Id, msg: Msg) {
    fx.out.push(Envelope {
        src: me,
        dst: src,
        msg,
    })
}

impl Server {
    pub fn new(cfg: &Config) -> Self {
        let sessions = cfg.initial_sessions();
        Server {
            current_term: 0,
            voted_for: None,
            snapshot: Snapshot {
                last_included_index: 0,
                last_included_term: 0,
                kv: [None; 2],
                sessions: sessions.clone(),
                membership: None,
            },
            log: Vec::new(),
            role: Role::Follower,
            leader_id: None,
            votes: 0,
            commit_index: 0,
            next_index: Vec::new(),
            match_index: Vec::new(),
            inflight: Vec::new(),
            stalled: 0,
            recent_active: 0,
            kv: [None; 2],
            sessions,
            reads: Reads::default(),
            applied: Vec::new(),
        }
    }

    /// Crash and restart: durable state kept, everything else as new. The state machine starts
    /// from the snapshot, whose entries are committed.
    pub fn restart(&self, cfg: &Config) -> Self {
        let snap = &self.snapshot;
        Server {
            current_term: self.current_term,
            voted_for: if cfg.has_bug(Bug::ForgetVoteOnRestart) {
                None
            } else {
                self.voted_for
            },
            log: if cfg.has_bug(Bug::ForgetLogOnRestart) {
                Vec::new()
            } else {
                self.log.clone()
            },
            commit_index: snap.last_included_index,
            kv: snap.kv,
            sessions: snap.sessions.clone(),
            snapshot: snap.clone(),
            ..Server::new(cfg)
        }
    }

    /// `snapshot.last_included_index`: every index up to it is compacted.
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.last_included_index
    }

    pub fn last_log_index(&self) -> Index {
        self.snapshot_index() + self.log.len() as Index
    }

    pub fn last_log_term(&self) -> Term {
        self.log
            .last()
            .map_or(self.snapshot.last_included_term, |e| e.term)
    }

    /// The entry at `index`, if it is in the log (not compacted, not past the end).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let offset = index.checked_sub(self.snapshot_index() + 1)?;
        self.log.get(offset as usize)
    }

    /// The term of the entry at `index`, for `snapshot_index() <= index <= last_log_index()`.
    pub fn term_at(&self, index: Index) -> Term {
        if index == self.snapshot_index() {
            self.snapshot.last_included_term
        } else {
            self.entry(index).expect("term_at outside the log").term
        }
    }

    /// Entries `from..=to` (both within the log).
    fn entries(&self, from: Index, to: Index) -> &[Entry] {
        let base = self.snapshot_index() + 1;
        &self.log[(from - base) as usize..(to + 1 - base) as usize]
    }

    /// The membership in effect: the last configuration entry in the log, committed or not,
    /// else the last one the snapshot covers, else the initial one.
    pub fn membership(&self, cfg: &Config) -> Membership {
        self.membership_or(cfg.initial_membership())
    }

    /// `membership` in a cluster that started as `initial`.
    pub fn membership_or(&self, initial: Membership) -> Membership {
        self.last_membership_entry(self.last_log_index())
            .unwrap_or(initial)
    }

    /// The membership as of `index` (at least `snapshot_index`).
    fn membership_upto(&self, cfg: &Config, index: Index) -> Membership {
        self.last_membership_entry(index)
            .unwrap_or_else(|| cfg.initial_membership())
    }

    /// The index of the last configuration entry in the log (0: none there).
    fn membership_index(&self) -> Index {
        (self
            .log
            .iter()
            .rposition(|e| matches!(e.command, Command::Membership(_))))
        .map_or(0, |at| self.snapshot_index() + 1 + at as Index)
    }

    /// A majority of the voters of this server's membership among the servers in `mask`.
    fn is_quorum(&self, cfg: &Config, mask: u8) -> bool {
        let voters = self.membership(cfg).voters;
        (mask & voters).count_ones() as usize >= cfg.majority_of(voters.count_ones() as usize)
    }

    /// The term rule: a higher term makes any server a follower of that term.
    fn adopt_term(&mut self, term: Term) {
        self.current_term = term;
        self.voted_for = None;
        self.leader_id = None;
        self.become_follower();
    }

    /// A leader stepping down drops the reads it was serving: the node answers them
    /// `NotLeader`, which the model's clients need not see (they may retry anywhere anyway).
    fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.votes = 0;
        self.recent_active = 0;
        self.next_index.clear();
        self.match_index.clear();
        self.inflight.clear();
        self.stalled = 0;
        self.reads = Reads::default();
    }

    pub fn election_timeout(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        if self.role == Role::Leader {
            if self.is_quorum(cfg, self.recent_active | bit(me)) {
                self.recent_active = 0;
            } else {
                self.leader_id = None;
                self.become_follower();
            }
            return;
        }
        // Learners and servers outside the cluster never stand for election.
        if !self.membership(cfg).is_voter(me) {
            return;
        }
        if cfg.params.pre_vote {
            self.role = Role::PreCandidate;
            self.votes = bit(me);
            self.leader_id = None;
            self.broadcast_request_vote(cfg, me, self.current_term + 1, true, fx);
            if self.is_quorum(cfg, self.votes) {
                self.start_election(cfg, me, fx);
            }
        } else {
            self.start_election(cfg, me, fx);
        }
    }

    fn start_election(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        self.current_term += 1;
        self.voted_for = Some(me);
        self.role = Role::Candidate;
        self.votes = bit(me);
        self.leader_id = None;
        self.broadcast_request_vote(cfg, me, self.current_term, false, fx);
        if self.is_quorum(cfg, self.votes) {
            self.become_leader(cfg, me, fx);
        }
    }

    fn broadcast_request_vote(
        &self,
        cfg: &Config,
        me: Id,
        term: Term,
        pre_vote: bool,
        fx: &mut Effects,
    ) {
        let voters = self.membership(cfg).voters;
        for dst in (0..cfg.servers).filter(|&p| p != me && voters & bit(p) != 0) {
            fx.out.push(Envelope {
                src: me,
                dst,
                msg: Msg::RequestVote {
                    term,
                    candidate: me,
                    last_log_index: self.last_log_index(),
                    last_log_term: self.last_log_term(),
                    pre_vote,
                },
            });
        }
    }

    fn become_leader(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        self.role = Role::Leader;
        self.leader_id = Some(me);
        self.votes = 0;
        self.recent_active = 0;
        self.next_index = vec![self.last_log_index() + 1; cfg.servers as usize];
        self.match_index = vec![0; cfg.servers as usize];
        if cfg.params.max_inflight_appends > 0 {
            self.inflight = vec![Vec::new(); cfg.servers as usize];
        }
        self.stalled = 0;
        if cfg.params.noop_on_election {
            self.log.push(Entry {
                term: self.current_term,
                command: Command::Noop,
            });
        }
        self.broadcast_append(cfg, me, fx);
        // (Commits the no-op at once only for a leader that is the only voter.)
        self.advance_commit(cfg, me, fx);
    }

    pub fn heartbeat_timeout(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        if cfg.params.max_inflight_appends > 0 {
            let members = self.membership(cfg).members();
            for p in (0..cfg.servers).filter(|&p| p != me && members & bit(p) != 0) {
                self.check_stalled(p, fx);
            }
        }
        self.broadcast_append(cfg, me, fx);
    }

    /// Pipelining, at each heartbeat: appends to `p` in flight over two heartbeats with nothing
    /// new acknowledged were lost (a peer down or cut off). The optimistic `next_index` then
    /// points past what the peer holds, and heartbeats at `match_index` are never rejected, so
    /// only this fallback to `match_index + 1` brings it back.
    fn check_stalled(&mut self, p: Id, fx: &mut Effects) {
        let i = p as usize;
        if self.inflight[i].is_empty() {
            self.stalled &= !bit(p);
        } else if self.stalled & bit(p) != 0 {
            self.inflight[i].clear();
            self.next_index[i] = self.match_index[i] + 1;
            self.stalled &= !bit(p);
            fx.events |= event::PIPELINE_FALLBACK;
        } else {
            self.stalled |= bit(p);
        }
    }

    fn broadcast_append(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        let members = self.membership(cfg).members();
        for p in (0..cfg.servers).filter(|&p| p != me && members & bit(p) != 0) {
            self.send_append(cfg, me, p, true, fx);
        }
    }

    /// An AppendEntries, unless the peer needs entries that were compacted: then the snapshot.
    pub fn outgoing(&self, p: Id) -> Outgoing {
        if self.next_index[p as usize] <= self.snapshot_index() {
            Outgoing::Snapshot
        } else {
            Outgoing::Append
        }
    }

    /// The only way an AppendEntries (or the InstallSnapshot that replaces it) is built.
    /// Without pipelining: the entries from `next_index`, and sending moves nothing. With
    /// pipelining, an append with entries is sent only while fewer than `max_inflight_appends`
    /// are in flight to `p`, and moves `next_index` past its last entry at once (optimistic); a
    /// `broadcast` (heartbeat, new entry) to a peer whose pipeline is full, or that has nothing
    /// new while appends are in flight, is an empty append at `match_index`: a heartbeat with
    /// the commit index that the peer can always accept. A response's follow-up to a full
    /// pipeline sends nothing.
    fn send_append(&mut self, cfg: &Config, me: Id, p: Id, broadcast: bool, fx: &mut Effects) {
        let i = p as usize;
        let msg = match self.outgoing(p) {
            Outgoing::Snapshot => Msg::InstallSnapshot {
                term: self.current_term,
                leader: me,
                snapshot: self.snapshot.clone(),
            },
            Outgoing::Append => {
                let last_log = self.last_log_index();
                let pipelined = cfg.params.max_inflight_appends as usize;
                let in_flight = self.inflight.get(i).map_or(0, Vec::len);
                let at_match = self.match_index[i].max(self.snapshot_index());
                let mut prev_log_index = self.next_index[i] - 1;
                let mut last = prev_log_index;
                if self.next_index[i] <= last_log {
                    last = last_log
                        .min(prev_log_index.saturating_add(cfg.params.max_entries_per_append));
                    if pipelined > 0 && in_flight >= pipelined {
                        if !broadcast {
                            return;
                        }
                        (prev_log_index, last) = (at_match, at_match);
                    }
                } else if pipelined > 0 && in_flight > 0 {
                    (prev_log_index, last) = (at_match, at_match);
                }
                if pipelined > 0 && last > prev_log_index {
                    self.inflight[i].push(last);
                    self.next_index[i] = self.next_index[i].max(last + 1);
                }
                Msg::AppendEntries {
                    term: self.current_term,
                    leader: me,
                    prev_log_index,
                    prev_log_term: self.term_at(prev_log_index),
                    entries: self.entries(prev_log_index + 1, last).to_vec(),
                    leader_commit: self.commit_index,
                }
            }
        };
        fx.out.push(Envelope {
            src: me,
            dst: p,
            msg,
        });
    }

    fn up_to_date(&self, last_log_index: Index, last_log_term: Term) -> bool {
        (last_log_term, last_log_index) >= (self.last_log_term(), self.last_log_index())
    }

    pub fn on_message(&mut self, cfg: &Config, me: Id, src: Id, msg: &Msg, fx: &mut Effects) {
        if !self.observe_term(cfg, msg) {
            return;
        }
        match *msg {
            Msg::RequestVote {
                term,
                candidate,
                last_log_index,
                last_log_term,
                pre_vote: false,
            } => self.on_request_vote(
                cfg,
                me,
                src,
                term,
                candidate,
                last_log_index,
                last_log_term,
                fx,
            ),
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
                pre_vote: true,
                ..
            } => self.on_pre_vote_request(cfg, me, src, term, last_log_index, last_log_term, fx),
            Msg::RequestVoteResponse {
                term,
                granted,
                pre_vote,
            } => self.on_request_vote_response(cfg, me, src, term, granted, pre_vote, fx),
            Msg::AppendEntries {
                term,
                leader,
                prev_log_index,
                prev_log_term,
                ref entries,
                leader_commit,
            } => self.on_append_entries(
                cfg,
                me,
                src,
                term,
                leader,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                fx,
            ),
            Msg::InstallSnapshot {
                term,
                leader,
                ref snapshot,
            } => self.on_install_snapshot(cfg, me, src, term, leader, snapshot, fx),
            Msg::AppendEntriesResponse {
                term,
                success,
                last_index,
            } => self.on_append_entries_response(cfg, me, src, term, success, last_index, fx),
            Msg::ReadIndex {
                term,
                leader,
                round,
            } => self.on_read_index(me, src, term, leader, round, fx),
            Msg::ReadIndexResponse { term, round, ok } => {
                self.on_read_index_response(cfg, src, term, round, ok, fx)
            }
            Msg::TimeoutNow { term, .. } => self.on_timeout_now(cfg, me, term, fx),
        }
    }

    /// Leadership transfer: the current leader asks this server to stand now. It skips the
    /// pre-vote round (which voters that heard from the leader would refuse) and stands only
    /// as a voter that still follows that term.
    fn on_timeout_now(&mut self, cfg: &Config, me: Id, term: Term, fx: &mut Effects) {
        if term == self.current_term
            && self.role == Role::Follower
            && self.membership(cfg).is_voter(me)
        {
            fx.events |= event::TRANSFER;
            self.start_election(cfg, me, fx);
        }
    }

    /// The first phase of every message: a higher term is adopted, except the future term that
    /// pre-vote messages carry. Returns false if the message is to be ignored (only under
    /// `Bug::NoStepDownOnHigherTermResponse`).
    fn observe_term(&mut self, cfg: &Config, msg: &Msg) -> bool {
        let carries_future_term = matches!(
            msg,
            Msg::RequestVote { pre_vote: true, .. }
                | Msg::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                    ..
                }
        );
        let is_response = matches!(
            msg,
            Msg::RequestVoteResponse { .. } | Msg::AppendEntriesResponse { .. }
        );
        if msg.term() > self.current_term
            && is_response
            && !carries_future_term
            && cfg.has_bug(Bug::NoStepDownOnHigherTermResponse)
        {
            return false;
        }
        if msg.term() > self.current_term && !carries_future_term {
            self.adopt_term(msg.term());
        }
        true
    }

    // The handlers below take the message's fields one by one, hence the argument counts.
    #[allow(clippy::too_many_arguments)]
    fn on_request_vote(
        &mut self,
        cfg: &Config,
        me: Id,
        src: Id,
        term: Term,
        candidate: Id,
        last_log_index: Index,
        last_log_term: Term,
        fx: &mut Effects,
    ) {
        let granted = term == self.current_term
            && (self.voted_for.is_none_or(|v| v == candidate) || cfg.has_bug(Bug::VoteTwiceInTerm))
            && (cfg.has_bug(Bug::VoteWithoutUpToDateCheck)
                || self.up_to_date(last_log_index, last_log_term));
        if granted {
            self.voted_for = Some(candidate);
        }
        reply(
            fx,
            me,
            src,
            Msg::RequestVoteResponse {
                term: self.current_term,
                granted,
                pre_vote: false,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_pre_vote_request(
        &self,
        cfg: &Config,
        me: Id,
        src: Id,
        term: Term,
        last_log_index: Index,
        last_log_term: Term,
        fx: &mut Effects,
    ) {
        let granted = term > self.current_term
            && (cfg.has_bug(Bug::VoteWithoutUpToDateCheck)
                || self.up_to_date(last_log_index, last_log_term))
            && !(cfg.params.check_quorum && self.leader_id.is_some());
        reply(
            fx,
            me,
            src,
            Msg::RequestVoteResponse {
                term: if granted { term } else { self.current_term },
                granted,
                pre_vote: true,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request_vote_response(
        &mut self,
        cfg: &Config,
        me: Id,
        src: Id,
        term: Term,
        granted: bool,
        pre_vote: bool,
        fx: &mut Effects,
    ) {
        let counts = granted
            && if pre_vote {
                self.role == Role::PreCandidate && term == self.current_term + 1
            } else {
                self.role == Role::Candidate
                    && (term == self.current_term
                        || (term < self.current_term && cfg.has_bug(Bug::StaleVoteCounted)))
            };
        if counts {
            self.votes |= bit(src);
            if self.is_quorum(cfg, self.votes) {
                if pre_vote {
                    self.start_election(cfg, me, fx);
                } else {
                    self.become_leader(cfg, me, fx);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries(
        &mut self,
        cfg: &Config,
        me: Id,
        src: Id,
        term: Term,
        leader: Id,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: &[Entry],
        leader_commit: Index,
        fx: &mut Effects,
    ) {
        if !self.accept_leader(me, src, term, leader, fx) {
            return;
        }
        // Compacted entries are committed, so they match the leader's.
        let matches = prev_log_index <= self.last_log_index()
            && (prev_log_index < self.snapshot_index()
                || cfg.has_bug(Bug::NoPrevLogTermCheck)
                || self.term_at(prev_log_index) == prev_log_term);
        if !matches {
            reply(
                fx,
                me,
                src,
                Msg::AppendEntriesResponse {
                    term,
                    success: false,
                    last_index: self.last_log_index().min(prev_log_index - 1),
                },
            );
            return;
        }
        self.append_from_leader(cfg, prev_log_index, entries, fx);
        let last_new = prev_log_index + entries.len() as Index;
        let commit = self.commit_index.max(leader_commit.min(last_new));
        self.commit_to(cfg, me, commit, fx);
        reply(
            fx,
            me,
            src,
            Msg::AppendEntriesResponse {
                term,
                success: true,
                last_index: last_new,
            },
        );
    }

    /// A matching AppendEntries' `entries` (the first at `prev_log_index + 1`) go into the log:
    /// entries already there in the same term are kept, the first conflicting one truncates
    /// the log from there, and compacted indexes are skipped.
    fn append_from_leader(
        &mut self,
        cfg: &Config,
        prev_log_index: Index,
        entries: &[Entry],
        fx: &mut Effects,
    ) {
        for (k, entry) in entries.iter().enumerate() {
            let index = prev_log_index + 1 + k as Index;
            if index <= self.snapshot_index() {
                continue;
            }
            let at = (index - self.snapshot_index() - 1) as usize;
            match self.log.get(at) {
                Some(existing) if existing.term == entry.term => continue,
                Some(_) => {
                    fx.removed.extend(self.log.drain(at..));
                    fx.events |= event::OVERWRITE;
                }
                None => {}
            }
            self.log.push(*entry);
            if let (true, Command::Client { op, .. }) =
                (cfg.has_bug(Bug::ApplyBeforeCommit), entry.command)
            {
                run(&mut self.kv, op);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_install_snapshot(
        &mut self,
        cfg: &Config,
        me: Id,
        src: Id,
        term: Term,
        leader: Id,
        snapshot: &Snapshot,
        fx: &mut Effects,
    ) {
        if !self.accept_leader(me, src, term, leader, fx) {
            return;
        }
        self.install_snapshot(cfg, snapshot, fx);
        reply(
            fx,
            me,
            src,
            Msg::AppendEntriesResponse {
                term,
                success: true,
                last_index: snapshot.last_included_index,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries_response(
        &mut self,
        cfg: &Config,
        me: Id,
        src: Id,
        term: Term,
        success: bool,
        last_index: Index,
        fx: &mut Effects,
    ) {
        if term != self.current_term || self.role != Role::Leader {
            return;
        }
        // A server this leader removed answers an append sent before: it is no follower now.
        if self.membership(cfg).members() & bit(src) == 0 {
            return;
        }
        let p = src as usize;
        self.recent_active |= bit(src);
        if success {
            if last_index > self.match_index[p] {
                self.stalled &= !bit(src);
            }
            self.next_index[p] = self.next_index[p].max(last_index + 1);
            self.match_index[p] = if cfg.has_bug(Bug::MatchFromOptimisticNextIndex) {
                self.next_index[p] - 1
            } else {
                self.match_index[p].max(last_index)
            };
            if let Some(inflight) = self.inflight.get_mut(p) {
                inflight.retain(|&l| l > last_index);
            }
            self.advance_commit(cfg, me, fx);
            // (A leader whose removal this committed is a follower now.)
            if self.role == Role::Leader && self.next_index[p] <= self.last_log_index() {
                self.send_append(cfg, me, src, false, fx);
            }
        } else {
            let back = match cfg.params.backoff {
                Backoff::ConflictHint => (self.next_index[p] - 1).min(last_index + 1),
                Backoff::Decrement => self.next_index[p] - 1,
            };
            self.next_index[p] = back.max(self.match_index[p] + 1);
            if let Some(inflight) = self.inflight.get_mut(p) {
                inflight.clear();
            }
            self.stalled &= !bit(src);
            self.send_append(cfg, me, src, false, fx);
        }
    }

    fn on_read_index(
        &mut self,
        me: Id,
        src: Id,
        term: Term,
        leader: Id,
        round: u8,
        fx: &mut Effects,
    ) {
        if term < self.current_term {
            let term = self.current_term;
            reply(
                fx,
                me,
                src,
                Msg::ReadIndexResponse {
                    term,
                    round,
                    ok: false,
                },
            );
            return;
        }
        if self.role != Role::Follower {
            self.become_follower();
        }
        self.leader_id = Some(leader);
        reply(
            fx,
            me,
            src,
            Msg::ReadIndexResponse {
                term,
                round,
                ok: true,
            },
        );
    }

    fn on_read_index_response(
        &mut self,
        cfg: &Config,
        src: Id,
        term: Term,
        round: u8,
        ok: bool,
        fx: &mut Effects,
    ) {
        if !ok || term != self.current_term || self.role != Role::Leader {
            return;
        }
        for r in self.reads.pending.iter_mut().filter(|r| r.round <= round) {
            r.acks |= bit(src);
        }
        self.serve_confirmed_reads(cfg, fx);
    }

    /// A message from a leader (AppendEntries or InstallSnapshot): one of an older term gets a
    /// rejecting response carrying `current_term` (returns false); otherwise this server follows
    /// `leader`, stepping down from (pre-)candidate.
    fn accept_leader(&mut self, me: Id, src: Id, term: Term, leader: Id, fx: &mut Effects) -> bool {
        if term < self.current_term {
            reply(
                fx,
                me,
                src,
                Msg::AppendEntriesResponse {
                    term: self.current_term,
                    success: false,
                    last_index: self.last_log_index(),
                },
            );
            return false;
        }
        if self.role != Role::Follower {
            self.become_follower();
        }
        self.leader_id = Some(leader);
        true
    }

    /// A leader's snapshot replaces what this server has up to its index, unless this server
    /// has already committed that far (then the snapshot holds nothing new).
    fn install_snapshot(&mut self, cfg: &Config, snapshot: &Snapshot, fx: &mut Effects) {
        let index = snapshot.last_included_index;
        if index <= self.commit_index {
            return;
        }
        let keeps_suffix = index <= self.last_log_index()
            && index >= self.snapshot_index()
            && self.term_at(index) == snapshot.last_included_term;
        if keeps_suffix {
            self.log.drain(..(index - self.snapshot_index()) as usize);
        } else {
            self.log.clear();
        }
        self.snapshot = snapshot.clone();
        self.commit_index = index;
        if !cfg.has_bug(Bug::InstallSnapshotKeepsStateMachine) {
            self.kv = snapshot.kv;
            self.sessions = snapshot.sessions.clone();
        }
        fx.events |= event::SNAPSHOT_INSTALLED;
    }

    /// Log compaction: the state machine as of `commit_index` becomes the snapshot and the
    /// entries it covers leave the log.
    pub fn compact(&mut self) {
        let index = self.commit_index;
        let term = self.term_at(index);
        let membership = self.last_membership_entry(index);
        self.log.drain(..(index - self.snapshot_index()) as usize);
        self.snapshot = Snapshot {
            last_included_index: index,
            last_included_term: term,
            kv: self.kv,
            sessions: self.sessions.clone(),
            membership,
        };
    }

    /// The last configuration entry up to `index`, or the snapshot's: what a snapshot taken
    /// at `index` records.
    fn last_membership_entry(&self, index: Index) -> Option<Membership> {
        let upto = (index - self.snapshot_index()) as usize;
        (self.log[..upto].iter().rev())
            .find_map(|e| match e.command {
                Command::Membership(m) => Some(m),
                _ => None,
            })
            .or(self.snapshot.membership)
    }

    /// The commit rule: the largest index held by a majority of the voters whose entry is of
    /// this term. The leader counts itself only while it is a voter: a leader removing itself
    /// commits the change without its own copy, then steps down.
    fn advance_commit(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        let figure8 = cfg.has_bug(Bug::Figure8Commit);
        let voters = self.membership(cfg).voters;
        for n in (self.commit_index + 1..=self.last_log_index()).rev() {
            if !figure8 && self.term_at(n) != self.current_term {
                continue;
            }
            let holders = (0..cfg.servers)
                .filter(|&p| voters & bit(p) != 0)
                .filter(|&p| p == me || self.match_index[p as usize] >= n)
                .count();
            if holders >= cfg.majority_of(voters.count_ones() as usize) {
                self.commit_to(cfg, me, n, fx);
                self.start_waiting_reads(cfg, me, fx);
                self.leave_if_removed(cfg, me, fx);
                return;
            }
        }
    }

    /// A leader whose removal is committed steps down; as a non-voter it never stands again.
    fn leave_if_removed(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        if !self.membership(cfg).is_voter(me) && self.membership_index() <= self.commit_index {
            fx.events |= event::LEADER_REMOVED_ITSELF;
            self.leader_id = None;
            self.become_follower();
        }
    }

    /// Raise the commit index and apply what it covers, in order.
    fn commit_to(&mut self, cfg: &Config, _me: Id, commit: Index, fx: &mut Effects) {
        for index in self.commit_index + 1..=commit {
            self.apply(cfg, index, fx);
        }
        self.commit_index = self.commit_index.max(commit);
    }

    fn apply(&mut self, cfg: &Config, index: Index, fx: &mut Effects) {
        let entry = *self.entry(index).expect("apply within the log");
        let answer = match entry.command {
            Command::Noop => return,
            Command::Membership(m) => {
                let before = self.membership_upto(cfg, index - 1);
                if m.voters & !before.voters != 0 {
                    fx.events |= event::VOTER_ADDED;
                }
                return;
            }
            Command::Register { nonce } => {
                register(&mut self.sessions, cfg, index);
                if self.role == Role::Leader {
                    fx.responses.push(ClientResponse {
                        client_id: nonce,
                        seq: 0,
                        answer: Answer::Registered(index),
                    });
                }
                return;
            }
            Command::Client { client_id, seq, op } => match self.session_at(client_id) {
                None if cfg.has_bug(Bug::ReopenExpiredSession) => {
                    let answer = run(&mut self.kv, op);
                    let session = Session {
                        client_id,
                        last_seq: seq,
                        answer,
                        last_index: index,
                    };
                    let at = (self.sessions)
                        .binary_search_by_key(&client_id, |s| s.client_id)
                        .unwrap_or_else(|at| at);
                    self.sessions.insert(at, session);
                    self.count_applied(client_id, seq);
                    Some(answer)
                }
                None => {
                    self.refuse_expired(client_id, seq, fx);
                    Some(Answer::SessionExpired)
                }
                Some(at) if seq <= self.sessions[at].last_seq && !cfg.has_bug(Bug::NoDedup) => {
                    let s = self.sessions[at];
                    (seq == s.last_seq).then_some(s.answer)
                }
                Some(at) => {
                    let answer = run(&mut self.kv, op);
                    self.sessions[at] = Session {
                        client_id,
                        last_seq: seq,
                        answer,
                        last_index: index,
                    };
                    self.count_applied(client_id, seq);
                    Some(answer)
                }
            },
        };
        let Command::Client { client_id, seq, .. } = entry.command else {
            unreachable!()
        };
        if let (Role::Leader, Some(answer)) = (self.role, answer) {
            fx.responses.push(ClientResponse {
                client_id,
                seq,
                answer,
            });
        }
    }

    /// The position of session `client_id` in the table.
    fn session_at(&self, client_id: ClientId) -> Option<usize> {
        self.sessions
            .binary_search_by_key(&client_id, |s| s.client_id)
            .ok()
    }

    /// A command of a session that is gone is refused; the witness event marks a refusal of a
    /// command this server had applied (a retry after its session was evicted).
    fn refuse_expired(&self, client_id: ClientId, seq: Seq, fx: &mut Effects) {
        if self
            .applied
            .iter()
            .any(|&(c, s, _)| c == client_id && s == seq)
        {
            fx.events |= event::EXPIRED_RETRY_REFUSED;
        }
    }

    fn count_applied(&mut self, client_id: ClientId, seq: Seq) {
        match self
            .applied
            .binary_search_by_key(&(client_id, seq), |&(c, s, _)| (c, s))
        {
            Ok(at) => self.applied[at].2 = self.applied[at].2.saturating_add(1),
            Err(at) => self.applied.insert(at, (client_id, seq, 1)),
        }
    }

    /// A client's request lands here. Returns false when this server is not the leader (the
    /// node answers `NotLeader { hint: leader_id }`, and nothing changes).
    pub fn client_request(
        &mut self,
        cfg: &Config,
        me: Id,
        client_id: ClientId,
        seq: Seq,
        op: Op,
        fx: &mut Effects,
    ) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        if !cfg.has_bug(Bug::NoDedup) && self.answer_from_sessions(cfg, client_id, seq, fx) {
            return true;
        }
        self.append_and_replicate(cfg, me, Command::Client { client_id, seq, op }, fx);
        true
    }

    /// A client's read lands here (`Params::read_index`). Returns false when this server is not
    /// the leader. A leader that has not committed an entry of its term holds the read back
    /// until it has; otherwise it starts a confirmation round at its `commit_index`.
    pub fn read_request(
        &mut self,
        cfg: &Config,
        me: Id,
        req: ReadRequest,
        fx: &mut Effects,
    ) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        if self.term_at(self.commit_index) != self.current_term
            && !cfg.has_bug(Bug::ReadBeforeTermCommit)
        {
            self.reads.waiting.push(req);
        } else {
            self.start_read_round(cfg, me, vec![req], fx);
        }
        true
    }

    /// After a commit: the reads held back for the term's first commit start one round.
    fn start_waiting_reads(&mut self, cfg: &Config, me: Id, fx: &mut Effects) {
        if !self.reads.waiting.is_empty() && self.term_at(self.commit_index) == self.current_term {
            let waiting = std::mem::take(&mut self.reads.waiting);
            self.start_read_round(cfg, me, waiting, fx);
        }
    }

    fn start_read_round(&mut self, cfg: &Config, me: Id, reqs: Vec<ReadRequest>, fx: &mut Effects) {
        self.reads.round += 1;
        let round = self.reads.round;
        for request in reqs {
            self.reads.pending.push(PendingRead {
                request,
                read_index: self.commit_index,
                round,
                acks: bit(me),
            });
        }
        let voters = self.membership(cfg).voters;
        for dst in (0..cfg.servers).filter(|&p| p != me && voters & bit(p) != 0) {
            fx.out.push(Envelope {
                src: me,
                dst,
                msg: Msg::ReadIndex {
                    term: self.current_term,
                    leader: me,
                    round,
                },
            });
        }
        self.serve_confirmed_reads(cfg, fx);
    }

    /// Answers, oldest first, the reads a majority confirmed. The model applies as it commits,
    /// so `commit_index` is the applied index a read must wait for.
    fn serve_confirmed_reads(&mut self, cfg: &Config, fx: &mut Effects) {
        let voters = self.membership(cfg).voters;
        let majority = cfg.majority_of(voters.count_ones() as usize);
        let quorum = |acks: u8| (acks & voters).count_ones() as usize >= majority;
        let applied = self.commit_index;
        let kv = self.kv;
        self.reads.pending.retain(|r| {
            let confirmed = quorum(r.acks) || cfg.has_bug(Bug::ReadWithoutQuorum);
            let ready = confirmed && r.read_index <= applied;
            if ready {
                fx.responses.push(ClientResponse {
                    client_id: r.request.client_id,
                    seq: r.request.seq,
                    answer: Answer::Value(kv[r.request.key as usize]),
                });
                fx.events |= event::READ_INDEX_SERVED;
            }
            !ready
        });
    }

    /// A client asks for a session. Returns false when this server is not the leader.
    pub fn register_request(&mut self, cfg: &Config, me: Id, nonce: u8, fx: &mut Effects) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        self.append_and_replicate(cfg, me, Command::Register { nonce }, fx);
        true
    }

    /// An operator's membership change or transfer lands here. One change at a time, and only
    /// once this leader has committed an entry of its term: a change proposed earlier could
    /// be one of two changes, by two leaders, from one configuration, whose majorities need not
    /// overlap (PROTOCOL.md, "Membership"). A transfer's `TimeoutNow` goes only to a voter
    /// that holds the whole log, so that it can win.
    pub fn admin_request(
        &mut self,
        cfg: &Config,
        me: Id,
        op: AdminOp,
        fx: &mut Effects,
    ) -> AdminOutcome {
        if self.role != Role::Leader {
            return AdminOutcome::NotLeader;
        }
        let membership = self.membership(cfg);
        if let AdminOp::Transfer(to) = op {
            if to == me || !membership.is_voter(to) {
                return AdminOutcome::Invalid;
            }
            if self.match_index[to as usize] < self.last_log_index() {
                return AdminOutcome::Busy;
            }
            fx.out.push(Envelope {
                src: me,
                dst: to,
                msg: Msg::TimeoutNow {
                    term: self.current_term,
                    leader: me,
                },
            });
            return AdminOutcome::Accepted;
        }
        let term_committed = self.term_at(self.commit_index) == self.current_term
            || cfg.has_bug(Bug::ChangeBeforeTermCommit);
        if !term_committed || self.membership_index() > self.commit_index {
            return AdminOutcome::Busy;
        }
        let Some(changed) = membership.changed_by(op) else {
            return AdminOutcome::Invalid;
        };
        // A new member's progress starts at the configuration entry: nothing known of its log.
        let first = self.last_log_index() + 1;
        for p in
            (0..cfg.servers).filter(|&p| changed.members() & !membership.members() & bit(p) != 0)
        {
            let i = p as usize;
            self.next_index[i] = first;
            self.match_index[i] = 0;
            if let Some(inflight) = self.inflight.get_mut(i) {
                inflight.clear();
            }
            self.stalled &= !bit(p);
        }
        // The new voters may make older entries of this term committed already (a removed
        // voter was the one missing): `append_and_replicate` commits what they allow.
        self.append_and_replicate(cfg, me, Command::Membership(changed), fx);
        AdminOutcome::Accepted
    }

    /// The answer a leader gives without appending, from its session table (true: answered or
    /// dropped). A duplicate of the last applied command gets its answer; an older one is
    /// stale (the node answers `Stale`; the model's clients never send one); a session that is
    /// gone stays gone (ids are never reused, so once `commit_index` covers the id's
    /// `Register` the session can only have been evicted).
    fn answer_from_sessions(
        &self,
        cfg: &Config,
        client_id: ClientId,
        seq: Seq,
        fx: &mut Effects,
    ) -> bool {
        let Some(at) = self.session_at(client_id) else {
            if client_id <= self.commit_index && !cfg.has_bug(Bug::ReopenExpiredSession) {
                fx.responses.push(ClientResponse {
                    client_id,
                    seq,
                    answer: Answer::SessionExpired,
                });
                self.refuse_expired(client_id, seq, fx);
                return true;
            }
            return false;
        };
        let session = self.sessions[at];
        if session.last_seq < seq {
            return false;
        }
        if session.last_seq == seq {
            fx.responses.push(ClientResponse {
                client_id,
                seq,
                answer: session.answer,
            });
            fx.events |= event::DEDUP_ANSWER;
        }
        true
    }

    /// A leader appends a client's entry and sends it to the peers that are caught up.
    fn append_and_replicate(&mut self, cfg: &Config, me: Id, command: Command, fx: &mut Effects) {
        self.log.push(Entry {
            term: self.current_term,
            command,
        });
        // Only peers that held everything before this entry get it now; a peer further behind
        // has an append in flight (or lost), whose response (or the heartbeat) sends the rest.
        let last = self.last_log_index();
        let members = self.membership(cfg).members();
        for p in (0..cfg.servers).filter(|&p| p != me && members & bit(p) != 0) {
            if self.next_index[p as usize] == last {
                self.send_append(cfg, me, p, true, fx);
            }
        }
        // A leader that is its membership's only voter commits on its own copy; with more
        // voters nothing new is held by a majority yet, and this commits nothing.
        self.advance_commit(cfg, me, fx);
    }
}

/// Opens session `index` (a `Register` applied there), first evicting the least recently used
/// session if the table is full.
pub fn register(sessions: &mut Vec<Session>, cfg: &Config, index: Index) {
    let max = cfg.params.max_sessions as usize;
    while max > 0 && sessions.len() >= max {
        let victim = (0..sessions.len())
            .min_by_key(|&i| (sessions[i].last_index, sessions[i].client_id))
            .expect("a full table is not empty");
        sessions.remove(victim);
    }
    let session = Session {
        client_id: index,
        last_seq: 0,
        answer: Answer::Ok,
        last_index: index,
    };
    let at = sessions
        .binary_search_by_key(&index, |s| s.client_id)
        .unwrap_or_else(|at| at);
    sessions.insert(at, session);
}

/// Runs a key-value operation.
pub fn run(kv: &mut [Option<Value>; 2], op: Op) -> Answer {
    match op {
        Op::Put { key, value } => {
            kv[key as usize] = Some(value);
            Answer::Ok
        }
        Op::Get { key } => Answer::Value(kv[key as usize]),
        Op::Delete { key } => {
            kv[key as usize] = None;
            Answer::Ok
        }
        Op::Cas { key, expected, new } => {
            let previous = kv[key as usize];
            let swapped = previous == expected;
            if swapped {
                kv[key as usize] = new;
            }
            Answer::Cas { swapped, previous }
        }
    }
}
