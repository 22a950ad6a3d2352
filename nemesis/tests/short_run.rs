//! A short nemesis run in CI: three real nodes, eight clients with put/get/delete/cas, every
//! fault kind for about 45 s; the history must be linearizable, no acknowledged write lost,
//! the nodes converged, and no other anomaly.

mod common;

use std::time::Duration;

use raft_nemesis::run::{run, RunConfig};
use raft_nemesis::schedule::ALL;
use raft_nemesis::workload::{Vocabulary, Workload};

#[test]
fn short_nemesis_run_has_no_anomaly() {
    let seed = common::seed("short_run");
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        bin: common::raft_node(),
        dir: dir.path().join("run"),
        nodes: 3,
        seed,
        workload: Workload {
            clients: 6,
            keys: 6,
            vocabulary: Vocabulary::Full,
            max_ops: 1_000_000,
            max_writes: 0,
            op_timeout: Duration::from_secs(5),
            think: Duration::ZERO,
            stale_reads: false,
        },
        max_time: Duration::from_secs(45),
        faults: ALL.to_vec(),
        record: false,
        warmup_ms: 1000,
        target_leader: false,
        verbose: true,
    };
    let report = run(&cfg).expect("the run could not be carried out");
    println!("{}", report.render());
    assert!(report.anomalies.is_empty(), "anomalies (seed {seed})");
    assert_eq!(report.lost_writes, 0);
    let faults: u64 = report.faults.values().sum();
    assert!(faults >= 8, "only {faults} faults were injected");
    assert!(report.ops > 1000, "only {} operations", report.ops);
    assert!(report.lin.is_some());
}
