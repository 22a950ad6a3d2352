//! A short recorded nemesis run in CI: every fault kind, clients in the model's vocabulary,
//! and every step every node recorded must be a transition the model allows
//! (`raft-conformance validate`), besides the checks of every run.

mod common;

use std::time::Duration;

use raft_nemesis::run::run;

#[test]
fn recorded_nemesis_run_passes_the_validator() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("recorded_run", dir.path());
    common::recorded(&mut cfg, Duration::from_secs(25), 6, 120);
    let seed = cfg.seed;
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
