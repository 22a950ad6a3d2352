//! Linearizable reads through ReadIndex (the model's `Params::read_index`, rule for rule).
//!
//! A leader serves a read at its `commit_index` once a majority has confirmed, after the read
//! arrived, that it still leads: it broadcasts `ReadIndex { term, leader, round }` and counts
//! `ReadIndexResponse`s of that round or a later one. A leader that has not yet committed an
//! entry of its own term first waits for one (so its commit index covers every write answered
//! by earlier leaders). The answer is read once `last_applied >= read index`, which holds at
//! once because the core applies as it commits.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::ids::{Index, NodeId};
use super::kv::ReadRequest;
use super::message::Message;
use super::params::Bug;
use super::state_machine::StateMachine;
use super::{RaftCore, Role};

/// A read waiting for its leadership confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingRead<Q = ReadRequest> {
    pub request: Q,
    /// The commit index when the round started.
    pub read_index: Index,
    pub round: u64,
    pub acks: BTreeSet<NodeId>,
}

/// ReadIndex bookkeeping of a leader; `Q` is the state machine's query type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadState<Q = ReadRequest> {
    /// Last round number used.
    pub round: u64,
    /// Reads with a confirmation round under way, oldest first.
    pub pending: Vec<PendingRead<Q>>,
    /// Reads waiting for the first commit of the leader's term.
    pub waiting: Vec<Q>,
}

// A derived `Default` would ask for `Q: Default`.
impl<Q> Default for ReadState<Q> {
    fn default() -> Self {
        ReadState {
            round: 0,
            pending: Vec::new(),
            waiting: Vec::new(),
        }
    }
}

impl<S: StateMachine> RaftCore<S> {
    pub(super) fn on_read_request(&mut self, req: S::Query) {
        if self.role != Role::Leader {
            let reply = S::query_not_leader(req, self.leader_id);
            self.out.replies.push(reply);
            return;
        }
        if self.log.term_at(self.commit_index) != Some(self.current_term)
            && !self.params.has_bug(Bug::ReadBeforeTermCommit)
        {
            self.reads.waiting.push(req);
            return;
        }
        self.start_read_round(vec![req]);
    }

    /// After a commit: reads that waited for the first commit of this term start a round.
    pub(super) fn start_waiting_reads(&mut self) {
        if !self.reads.waiting.is_empty()
            && self.log.term_at(self.commit_index) == Some(self.current_term)
        {
            let reqs = std::mem::take(&mut self.reads.waiting);
            self.start_read_round(reqs);
        }
    }

    fn start_read_round(&mut self, reqs: Vec<S::Query>) {
        self.reads.round += 1;
        let round = self.reads.round;
        for request in reqs {
            self.reads.pending.push(PendingRead {
                request,
                read_index: self.commit_index,
                round,
                acks: BTreeSet::from([self.id]),
            });
        }
        let msg = Message::ReadIndex {
            term: self.current_term,
            leader: self.id,
            round,
        };
        self.broadcast(msg);
        self.serve_confirmed_reads();
    }

    pub(super) fn on_read_ack(&mut self, from: NodeId, round: u64) {
        for r in &mut self.reads.pending {
            if r.round <= round {
                r.acks.insert(from);
            }
        }
        self.serve_confirmed_reads();
    }

    fn serve_confirmed_reads(&mut self) {
        let membership = self.configs.latest();
        let applied = self.last_applied;
        let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads.pending)
            .into_iter()
            .partition(|r| {
                let confirmed =
                    membership.is_quorum(&r.acks) || self.params.has_bug(Bug::ReadWithoutQuorum);
                confirmed && r.read_index <= applied
            });
        self.reads.pending = rest;
        for r in ready {
            let reply = self.sm.query(r.request);
            self.out.replies.push(reply);
        }
    }

    /// A leader stepping down answers every read it was serving with `NotLeader`, and starts
    /// its next leadership at round 1: answers of this term's rounds are refused by their term
    /// then, so round numbers need be unique within a term only (the model's are, and its
    /// states stay small).
    pub(super) fn fail_reads(&mut self, hint: Option<NodeId>) {
        let reads = std::mem::take(&mut self.reads);
        let pending = reads.pending.into_iter().map(|r| r.request);
        let waiting = reads.waiting;
        for req in pending.chain(waiting) {
            self.out.replies.push(S::query_not_leader(req, hint));
        }
    }
}
