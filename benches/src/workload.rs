//! The proposal workload: propose at the leader, deliver every message until the cluster is
//! quiet, count what the leader committed. Both the core and the peer run it through
//! [`timed_proposals`], so only the proposal rounds are timed, never building or dropping a
//! cluster.

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
    /// Proposes `n` commands at the leader (each carrying the cluster's payload), then delivers
    /// messages until none is left; every proposal is committed at the leader by then.
    fn propose_and_commit(&mut self, n: usize);
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
        let start = Instant::now();
        for _ in 0..n {
            cluster.propose_and_commit(batch);
        }
        total += start.elapsed();
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
