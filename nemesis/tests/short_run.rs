//! A short nemesis run in CI: three real nodes, six clients with put/get/delete/cas, every
//! fault kind for 30 s; the history must be linearizable, no acknowledged write lost, the
//! nodes converged, and no other anomaly. (`eviction_pressure.rs` runs the same for 15 s with
//! the sessions under eviction pressure.)

mod common;

use raft_nemesis::run::run;

#[test]
fn short_nemesis_run_has_no_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("short_run", dir.path());
    cfg.max_time = std::time::Duration::from_secs(30);
    let seed = cfg.seed;
    let report = run(&cfg).expect("the run could not be carried out");
    println!("{}", report.render());
    assert!(report.anomalies.is_empty(), "anomalies (seed {seed})");
    assert_eq!(report.lost_writes, 0);
    let faults: u64 = report.faults.values().sum();
    assert!(faults >= 8, "only {faults} faults were injected");
    assert!(report.ops > 1000, "only {} operations", report.ops);
    assert!(report.lin.is_some());
}
