//! Compaction on during a nemesis run: the nodes snapshot every 200 applied entries and drop
//! the covered log segments (64 KiB each), while kills, partitions and the other classic
//! faults come and go (a node cut off or killed long enough catches up by InstallSnapshot).
//! The post-run checks start from the oldest snapshot: the logs after every snapshot agree,
//! every other node's snapshot equals the replayed state at its index, every acknowledged
//! write is there (applied after the start, or at or below its session's last seq in the
//! starting snapshot), and the history is linearizable.

mod common;

use std::time::Duration;

#[test]
fn compaction_during_a_run_has_no_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("compaction_run", dir.path());
    cfg.max_time = Duration::from_secs(30);
    cfg.snapshot_entries = 200;
    let report = common::run_clean(&cfg);
    // Every node compacted, and the checks started from a snapshot, not from index 1.
    assert!(
        report.snapshots.iter().all(|(_, base)| *base > 0),
        "{:?}",
        report.snapshots
    );
    assert!(report.replay_start.1 > 0);
    // The two other nodes' snapshots equal the replayed state at their indexes.
    assert_eq!(report.snapshots_checked, 2);
    // Most acknowledged writes lie before the oldest snapshot and were found through their
    // sessions there.
    assert!(
        report.acked_in_snapshot > 100,
        "{}",
        report.acked_in_snapshot
    );
}
