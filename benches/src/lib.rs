//! Benchmark harnesses for raftright (the criterion benches live in `benches/`).
//!
//! * [`core_cluster`]: a 3-server in-memory cluster driven through `raft_core::RaftCore`.
//! * `peer` (feature `peer`): the same workload through tikv's raft-rs (`RawNode`).
//! * `etcd` (feature `etcd`): etcd's gRPC API as a target of raftright's load generator, for the
//!   side-by-side comparison (`examples/vs_etcd.rs`).
//! * [`workload`]: the proposal workload both clusters run, so the two sides are timed the same
//!   way.

#![forbid(unsafe_code)]

pub mod core_cluster;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "peer")]
pub mod peer;
pub mod workload;

/// The measurement settings every bench uses: these machines are shared and noisy, so fewer,
/// longer samples and criterion's medians.
pub fn criterion_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(5))
}
