//! The checks catch a real anomaly end to end: with reads served stale by a random node (a
//! follower that has not applied the latest commit yet, or an isolated old leader), the
//! history of a real cluster is not linearizable and the run must say so.

mod common;

use std::time::Duration;

use raft_nemesis::run::{run, RunConfig};
use raft_nemesis::schedule::Kind;
use raft_nemesis::workload::{Vocabulary, Workload};

#[test]
fn stale_reads_from_a_real_cluster_are_reported_as_not_linearizable() {
    let seed = common::seed("stale_reads_caught");
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        bin: common::raft_node(),
        dir: dir.path().join("run"),
        nodes: 3,
        seed,
        workload: Workload {
            clients: 6,
            keys: 2,
            vocabulary: Vocabulary::Full,
            max_ops: 1_000_000,
            max_writes: 0,
            op_timeout: Duration::from_secs(5),
            think: Duration::ZERO,
            stale_reads: true,
        },
        max_time: Duration::from_secs(12),
        faults: vec![Kind::IsolateLeader, Kind::Partition, Kind::Delay],
        record: false,
        warmup_ms: 1000,
        target_leader: false,
        verbose: true,
    };
    let report = run(&cfg).expect("the run could not be carried out");
    println!("{}", report.render());
    assert!(
        report
            .anomalies
            .iter()
            .any(|a| a.starts_with("not linearizable")),
        "stale reads went unnoticed (seed {seed})"
    );
    // Writes are untouched by stale reads.
    assert_eq!(report.lost_writes, 0);
}
