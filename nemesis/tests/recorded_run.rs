//! A short recorded nemesis run in CI: every fault kind, clients in the model's vocabulary,
//! and every step every node recorded must be a transition the model allows
//! (`raft-conformance validate`), besides the checks of every run.

mod common;

use std::time::Duration;

use raft_nemesis::run::{run, RunConfig};
use raft_nemesis::schedule::ALL;
use raft_nemesis::workload::{self, Vocabulary, Workload};

#[test]
fn recorded_nemesis_run_passes_the_validator() {
    let seed = common::seed("recorded_run");
    let dir = tempfile::tempdir().unwrap();
    let time = Duration::from_secs(25);
    let cfg = RunConfig {
        bin: common::raft_node(),
        dir: dir.path().join("run"),
        nodes: 3,
        seed,
        workload: Workload {
            clients: 6,
            keys: 2,
            vocabulary: Vocabulary::Model,
            max_ops: 1_000_000,
            max_writes: 120,
            op_timeout: Duration::from_secs(5),
            think: workload::spread(time, 6, 120),
            stale_reads: false,
        },
        max_time: time,
        faults: ALL.to_vec(),
        record: true,
        warmup_ms: 1000,
        target_leader: false,
        verbose: true,
    };
    let report = run(&cfg).expect("the run could not be carried out");
    println!("{}", report.render());
    assert!(report.anomalies.is_empty(), "anomalies (seed {seed})");
    assert_eq!(report.validated_files, 3);
    assert!(report.validated_steps > 100, "{}", report.validated_steps);
    assert!(
        report.acknowledged_writes > 20,
        "{}",
        report.acknowledged_writes
    );
}
