//! A short nemesis run in CI with the clients' sessions under eviction pressure: every fault
//! kind for 15 s, nodes keeping only `clients + 2` sessions, a churn thread registering a
//! session nobody uses and sending a write without a session every 50 ms, and client 0 idling
//! 1 s between operations, so its session is evicted again and again. A write answered
//! "session expired" is an unknown outcome; the history must still be linearizable, the
//! committed log applied with the session rules must give every node's state, and no
//! acknowledged write may be lost or applied twice.

mod common;

use std::time::Duration;

#[test]
fn eviction_pressure_run_has_no_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("eviction_pressure", dir.path());
    cfg.max_time = Duration::from_secs(15);
    common::eviction_pressure(&mut cfg);
    let report = common::run_clean(&cfg);
    // The churn thread registered (a new leader is found within seconds of every fault).
    assert!(
        report.registrations > 20,
        "only {} registrations",
        report.registrations
    );
    assert!(report.evictions > 0, "no session was evicted");
    assert!(
        report.sessionless_entries > 20,
        "{}",
        report.sessionless_entries
    );
}
