//! Real processes, `kill -9` of the leader again and again while clients write through any
//! node: a new leader is elected each time, every acknowledged write is in the converged log,
//! each killed node restarts from disk and catches up, and the events every node recorded
//! (across its restarts) pass `raft-conformance validate`.

mod common;

use std::time::Duration;

use raft_nemesis::run::run;
use raft_nemesis::schedule::Kind;

#[test]
fn kill_9_of_the_leader_recorded_events_pass_the_validator() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("kill9_validated", dir.path());
    common::recorded(&mut cfg, Duration::from_secs(15), 4, 80);
    cfg.faults = vec![Kind::Kill];
    cfg.target_leader = true;
    let seed = cfg.seed;
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
