//! The proposal workload: propose at the leader, deliver every message until the cluster is
//! quiet, count what the leader committed. Both the core and the peer run it through
//! [`timed_proposals`], so only the proposal rounds are timed, never building or dropping a
//! cluster, nor building the round's client payloads: each proposal's payload is a fresh buffer
//! of its own, made before the clock starts, as a request read off the network would be. What
//! the clock sees is what the implementation does with it (raft-rs copies it into its storage
//! and its messages; the core shares it).

use std::time::{Duration, Instant};

/// Payload sizes measured (bytes of the value of each proposed command).
pub const PAYLOADS: [(&str, usize); 3] = [("16B", 16), ("256B", 256), ("4KiB", 4096)];

/// Proposals per round in the batched workload.
pub const BATCH: usize = 64;

/// A cluster is replaced (untimed) after this many proposals, so that the in-memory logs (which
/// neither side compacts here) stay small and every sample sees logs of the same lengths.
pub const PROPOSALS_PER_CLUSTER: usize = 4096;

/// An in-memory 3-server cluster with an elected leader.
pub trait ProposalCluster {
    /// One client command's payload, in the form the implementation's API takes.
    type Payload;
    /// A fresh copy of the cluster's payload (untimed).
    fn payload(&self) -> Self::Payload;
    /// Proposes one command per payload at the leader, then delivers messages until none is
    /// left; every proposal is committed at the leader by then.
    fn propose_and_commit(&mut self, payloads: Vec<Self::Payload>);
    /// The leader's commit index.
    fn leader_commit(&self) -> u64;
}

/// Runs `rounds` rounds of `batch` proposals on fresh clusters from `make` and returns the time
/// spent in the rounds only. Panics if a round left a proposal uncommitted.
pub fn timed_proposals<C: ProposalCluster>(
    mut make: impl FnMut() -> C,
    rounds: u64,
    batch: usize,
) -> Duration {
    let per_cluster = (PROPOSALS_PER_CLUSTER / batch).max(1) as u64;
    let mut total = Duration::ZERO;
    let mut left = rounds;
    while left > 0 {
        let n = left.min(per_cluster);
        let mut cluster = make();
        let before = cluster.leader_commit();
        for _ in 0..n {
            let payloads = (0..batch).map(|_| cluster.payload()).collect();
            let start = Instant::now();
            cluster.propose_and_commit(payloads);
            total += start.elapsed();
        }
        let committed = cluster.leader_commit() - before;
        assert_eq!(
            committed,
            n * batch as u64,
            "the leader committed {committed} of {} proposals",
            n * batch as u64
        );
        left -= n;
        drop(cluster);
    }
    total
}
