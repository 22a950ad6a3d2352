//! Composed faults (a kill or a pause during a partition, an asymmetric cut, a bridge, loss or
//! delay) and long partitions (10-15 s, long enough for the nodes' redial backoff to grow),
//! each on a cluster under load: no anomaly, no lost acknowledged write, and the time to heal
//! measured after the faults.

mod common;

use std::time::Duration;

use raft_nemesis::schedule::Kind;

#[test]
fn kills_and_pauses_during_network_faults_have_no_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("composed_faults", dir.path());
    cfg.max_time = Duration::from_secs(30);
    cfg.faults = vec![Kind::Composed];
    let seed = cfg.seed;
    let report = common::run_clean(&cfg);
    let n = report.faults.get("composed").copied().unwrap_or(0);
    assert!(n >= 4, "only {n} composed faults (seed {seed})");
    assert_eq!(report.composed.values().sum::<u64>(), n);
    let h = &report.heal["composed"];
    assert!(!h.commit.is_empty() && !h.caught_up.is_empty(), "{h:?}");
}

#[test]
fn long_partitions_heal_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("composed_faults", dir.path());
    cfg.max_time = Duration::from_secs(30);
    cfg.faults = vec![Kind::LongPartition];
    cfg.long_ms = 10_000;
    let seed = cfg.seed;
    let report = common::run_clean(&cfg);
    let n = report.faults.get("long-partition").copied().unwrap_or(0);
    assert!(n >= 1, "no long partition (seed {seed})");
    // The cut-off side caught up after the heal, and the cluster committed.
    let h = &report.heal["long-partition"];
    assert!(!h.commit.is_empty() && !h.caught_up.is_empty(), "{h:?}");
    assert!(report.acknowledged_writes > 100);
    // In a refusing cut the nodes keep redialing; the redials are counted.
    if !report.redials.is_empty() {
        assert!(report.refused_dials > 0);
    }
}
