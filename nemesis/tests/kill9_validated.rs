//! Real processes, `kill -9` of the leader again and again while clients write through any
//! node: a new leader is elected each time, every acknowledged write is in the converged log,
//! each killed node restarts from disk and catches up, and the events every node recorded
//! (across its restarts) pass `raft-conformance validate`.

mod common;

use std::time::Duration;

use raft_nemesis::run::{run, RunConfig};
use raft_nemesis::schedule::Kind;
use raft_nemesis::workload::{self, Vocabulary, Workload};

#[test]
fn kill_9_of_the_leader_recorded_events_pass_the_validator() {
    let seed = common::seed("kill9_validated");
    let dir = tempfile::tempdir().unwrap();
    let time = Duration::from_secs(15);
    let cfg = RunConfig {
        bin: common::raft_node(),
        dir: dir.path().join("run"),
        nodes: 3,
        seed,
        workload: Workload {
            clients: 4,
            keys: 2,
            vocabulary: Vocabulary::Model,
            max_ops: 1_000_000,
            max_writes: 80,
            op_timeout: Duration::from_secs(5),
            think: workload::spread(time, 4, 80),
            stale_reads: false,
        },
        max_time: time,
        faults: vec![Kind::Kill],
        record: true,
        warmup_ms: 1000,
        target_leader: true,
        verbose: true,
    };
    let report = run(&cfg).expect("the run could not be carried out");
    println!("{}", report.render());
    assert!(report.anomalies.is_empty(), "anomalies (seed {seed})");
    let kills = report.faults.get("kill").copied().unwrap_or(0);
    assert!(kills >= 2, "only {kills} kills");
    // Every kill took the leader; a new one was seen after at least one of them.
    assert!(
        !report.leader_loss.is_empty(),
        "no new leader was seen after a kill"
    );
    assert_eq!(report.validated_files, 3);
    assert!(report.validated_steps > 50, "{}", report.validated_steps);
    assert!(
        report.acknowledged_writes > 10,
        "{}",
        report.acknowledged_writes
    );
}
