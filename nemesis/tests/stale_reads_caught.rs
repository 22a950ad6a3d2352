//! The checks catch a real anomaly end to end: with reads served stale by a random node (a
//! follower that has not applied the latest commit yet, or an isolated old leader), the
//! history of a real cluster is not linearizable and the run must say so.

mod common;

use std::time::Duration;

use raft_nemesis::run::run;
use raft_nemesis::schedule::Kind;

#[test]
fn stale_reads_from_a_real_cluster_are_reported_as_not_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("stale_reads_caught", dir.path());
    cfg.workload.keys = 2;
    cfg.workload.stale_reads = true;
    cfg.max_time = Duration::from_secs(12);
    cfg.faults = vec![Kind::IsolateLeader, Kind::Partition, Kind::Delay];
    let seed = cfg.seed;
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
