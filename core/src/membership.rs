//! Cluster membership: who votes, who only receives the log, and the operator's changes to
//! it (PROTOCOL.md, "Membership"). One server is added, promoted or removed at a time, so any
//! two consecutive configurations share a voter in every pair of their majorities; a leader
//! proposes a change only once it has committed an entry of its term and no change of its is
//! uncommitted.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{Index, NodeId};

/// A configuration: the voters (who elect and whose majority commits) and the learners (who
/// receive the log but neither vote nor count toward commit). A server in neither is not a
/// member: no leader replicates to it and it never stands for election.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// The configuration of a cluster started with these voters and no learners.
    pub fn voters(ids: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: ids.into_iter().collect(),
            learners: BTreeSet::new(),
        }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Voters and learners, sorted: the servers a leader replicates to.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.union(&self.learners).copied()
    }

    /// How many voters make a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether the servers `ids` hold a majority of the voters (non-voters among them do not
    /// count).
    pub fn is_quorum<'a>(&self, ids: impl IntoIterator<Item = &'a NodeId>) -> bool {
        ids.into_iter().filter(|id| self.is_voter(**id)).count() >= self.majority()
    }

    /// The configuration `op` makes of this one. A transfer changes none and is not a change.
    pub fn changed_by(&self, op: AdminOp) -> Result<Membership, Refusal> {
        let mut next = self.clone();
        match op {
            AdminOp::AddVoter(id) => {
                if self.is_voter(id) {
                    return Err(Refusal::AlreadyVoter(id));
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            AdminOp::AddLearner(id) => {
                if self.is_member(id) {
                    return Err(Refusal::AlreadyMember(id));
                }
                next.learners.insert(id);
            }
            AdminOp::Promote(id) => {
                if !self.is_learner(id) {
                    return Err(Refusal::NotLearner(id));
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            AdminOp::Remove(id) => {
                if !self.is_member(id) {
                    return Err(Refusal::NotMember(id));
                }
                // A cluster without voters elects no one, ever.
                if self.voters.len() == 1 && self.is_voter(id) {
                    return Err(Refusal::LastVoter(id));
                }
                next.voters.remove(&id);
                next.learners.remove(&id);
            }
            AdminOp::TransferLeader(_) => return Err(Refusal::NotAChange),
        }
        Ok(next)
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters {:?}", self.voters)?;
        if !self.learners.is_empty() {
            write!(f, ", learners {:?}", self.learners)?;
        }
        Ok(())
    }
}

/// An operator's request to a leader: one membership change, or a leadership transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdminOp {
    /// Add a voter (a learner that is one already is promoted).
    AddVoter(NodeId),
    /// Add a learner: it receives the log, then can be promoted once it has caught up.
    AddLearner(NodeId),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a voter or a learner (the leader itself included: it steps down once the change
    /// commits).
    Remove(NodeId),
    /// Hand leadership to a voter that holds the whole log (`TimeoutNow`).
    TransferLeader(NodeId),
}

/// What a leader did with an [`AdminOp`], in `Ready::admin`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdminOutcome {
    /// Not the leader: ask `hint` (the leader this server knows of), or find it.
    NotLeader { hint: Option<NodeId> },
    /// Not now; retry later.
    Busy(Busy),
    /// The operation does not apply to the leader's membership.
    Refused(Refusal),
    /// A change was appended at `index` (it takes effect there, and is done once `index` is
    /// committed); a transfer's `TimeoutNow` was sent (`index` is `None`).
    Accepted { index: Option<Index> },
}

/// Why a leader cannot take an operation yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Busy {
    /// The leader has not committed an entry of its term yet.
    TermNotCommitted,
    /// A change is appended and not committed yet: one change at a time.
    ChangePending,
    /// A transfer's target does not hold the leader's whole log yet.
    TargetBehind,
}

/// Why an operation does not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    AlreadyVoter(NodeId),
    AlreadyMember(NodeId),
    NotLearner(NodeId),
    NotMember(NodeId),
    LastVoter(NodeId),
    /// A transfer to the leader itself or to a server that is no voter.
    NotATransferTarget(NodeId),
    /// A transfer asked of `Membership::changed_by`.
    NotAChange,
    /// This state machine cannot hold configuration entries (`StateMachine::membership_command`).
    Unsupported,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Busy::TermNotCommitted => "the leader has not committed an entry of its term yet",
            Busy::ChangePending => "a membership change is not committed yet",
            Busy::TargetBehind => "the transfer target does not hold the leader's whole log yet",
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AlreadyVoter(id) => write!(f, "node {id} is a voter already"),
            Refusal::AlreadyMember(id) => write!(f, "node {id} is a member already"),
            Refusal::NotLearner(id) => write!(f, "node {id} is not a learner"),
            Refusal::NotMember(id) => write!(f, "node {id} is not a member"),
            Refusal::LastVoter(id) => write!(f, "node {id} is the last voter"),
            Refusal::NotATransferTarget(id) => {
                write!(f, "node {id} is not a voter other than the leader")
            }
            Refusal::NotAChange => f.write_str("a leadership transfer changes no membership"),
            Refusal::Unsupported => {
                f.write_str("this state machine cannot hold membership changes")
            }
        }
    }
}

/// The configuration entries of a log after its snapshot, with the configuration in effect
/// before them: what `RaftCore::membership` answers without scanning the log. Few entries
/// are configurations, so this stays short.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Configs {
    /// In effect at the snapshot: its configuration, else the initial one.
    pub base: Membership,
    /// `(index, configuration)` of each configuration entry after the snapshot, ascending.
    pub entries: Vec<(Index, Membership)>,
}

impl Configs {
    /// In effect: the last configuration entry, committed or not.
    pub fn latest(&self) -> &Membership {
        self.entries.last().map_or(&self.base, |(_, m)| m)
    }

    /// Index of the last configuration entry after the snapshot (0: none).
    pub fn latest_index(&self) -> Index {
        self.entries.last().map_or(0, |(i, _)| *i)
    }

    /// In effect as of `index` (at least the snapshot's index).
    pub fn upto(&self, index: Index) -> &Membership {
        (self.entries.iter().rev())
            .find(|(i, _)| *i <= index)
            .map_or(&self.base, |(_, m)| m)
    }

    /// The log lost every entry from `index` on.
    pub fn truncate_from(&mut self, index: Index) {
        self.entries.retain(|(i, _)| *i < index);
    }

    /// A snapshot now covers up to `index`: the configuration it records becomes the base.
    pub fn compact_to(&mut self, index: Index) {
        self.base = self.upto(index).clone();
        self.entries.retain(|(i, _)| *i > index);
    }
}
