//! The attacks on a node's client port as fault kinds, on a cluster under load: descriptor
//! exhaustion (1,100 idle connections, more than the node's cap of 512, held for the fault)
//! and slowloris (64 connections trickling a request head, the nodes' header timeout 2 s).
//! The attacked node must answer while it lasts (a 503 at the cap, a 200 beside the trickling
//! connections), serve again once the idle connections close, close every trickling
//! connection within its header timeout (and 2 s), and the run must have no anomaly.

mod common;

use std::time::Duration;

use raft_nemesis::attack::Probe;
use raft_nemesis::schedule::Kind;

#[test]
fn descriptor_exhaustion_and_slowloris_leave_the_cluster_correct() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("http_attacks", dir.path());
    cfg.max_time = Duration::from_secs(30);
    cfg.faults = vec![Kind::FdExhaust, Kind::Slowloris];
    common::seed_drawing(
        "http_attacks",
        &mut cfg,
        &[(Kind::FdExhaust, 1), (Kind::Slowloris, 1)],
    );
    let seed = cfg.seed;
    let report = common::run_clean(&cfg);
    assert!(
        report.acknowledged_writes > 100,
        "{}",
        report.acknowledged_writes
    );
    let ex = report.faults.get("fd-exhaust").copied().unwrap_or(0);
    let sl = report.faults.get("slowloris").copied().unwrap_or(0);
    assert!(
        ex >= 1 && sl >= 1,
        "fd-exhaust {ex}, slowloris {sl} (seed {seed})"
    );
    // Exhaustion: the connections were opened, the node refused those beyond its cap with a
    // 503 and took the rest, answered the probe, and served again. The connections it took
    // are held to the end of the fault or, when the fault outlasts the header timeout (2 s
    // here, which is also the idle limit), closed by the node without an answer: either way
    // never more than its cap.
    for e in &report.exhaust {
        assert!(e.opened >= 1000, "{e:?}");
        let taken = e.held + e.closed_silently;
        assert!(e.refused > 0 && taken > 0, "{e:?}");
        assert!(
            taken <= 512,
            "more idle connections taken than the cap: {e:?}"
        );
    }
    assert!(report
        .exhaust_probes
        .iter()
        .all(|p| matches!(p, Probe::Answered(503 | 200, _))));
    assert_eq!(report.exhaust_served_again.len(), report.exhaust.len());
    // Slowloris: every trickling connection was closed by the node, none before 1.5 s (the
    // timeout is 2 s), none kept open; the node served /status meanwhile.
    for e in &report.slowloris {
        assert_eq!(e.opened, 64, "{e:?}");
        assert_eq!(e.closed_after.len(), 64, "{e:?}");
        assert!(e.open_for.is_empty(), "{e:?}");
        for d in &e.closed_after {
            assert!(
                *d >= Duration::from_millis(1500) && *d <= Duration::from_millis(4000),
                "{d:?}"
            );
        }
    }
    assert!(report
        .slowloris_probes
        .iter()
        .all(|p| matches!(p, Probe::Answered(200, _))));
    // The time to heal was measured after the faults.
    let heal: usize = report.heal.values().map(|h| h.commit.len()).sum();
    assert!(heal >= 1, "{:?}", report.heal);
}
