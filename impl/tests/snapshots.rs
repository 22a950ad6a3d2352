//! Snapshots with real `raft-node` processes on loopback: with a small `snapshot_entries` the
//! nodes compact their logs; a follower that was down while the leader compacted past its log
//! catches up through InstallSnapshot; a node killed with `kill -9` after compacting restarts
//! from its snapshot. Every acknowledged write is read back from every node. Every wait is
//! bounded.

mod process_cluster;

use process_cluster::{Cluster, WAIT};
use raft_node::client::Client;

/// Every acknowledged write, read from node `id`'s own state machine.
fn check_reads(c: &Cluster, id: u64, acked: &[(String, String)]) {
    let mut local = Client::new(vec![c.http(id)]);
    local.set_deadline(WAIT);
    for (k, v) in acked {
        assert_eq!(
            local.get_stale(k).unwrap().as_deref(),
            Some(v.as_str()),
            "node {id}, key {k}"
        );
    }
}

/// The first index of a segment file (named by its first index).
fn first_index(segment: &std::path::Path) -> u64 {
    segment.file_name().unwrap().to_string_lossy()[..20]
        .parse()
        .unwrap()
}

#[test]
fn a_lagging_follower_installs_a_snapshot_and_a_compacted_node_recovers_from_one() {
    let mut c = Cluster::new(3, "snapshots", |cfg| {
        cfg.snapshot_entries = 20;
        // Small segments, so that compaction has whole segments to delete.
        cfg.wal_segment_bytes = 4096;
    });
    let leader = c.wait_leader();
    let follower = leader % 3 + 1;
    let mut cl = Client::new(c.all_http());
    cl.set_deadline(WAIT);
    let mut acked = Vec::new();
    for k in 0..10 {
        let (key, val) = (format!("a{k}"), format!("v{k}"));
        cl.put(&key, &val).unwrap();
        acked.push((key, val));
    }
    c.kill9(follower);
    for k in 0..200 {
        let (key, val) = (format!("k{k}"), format!("w{k}"));
        cl.put(&key, &val).unwrap();
        acked.push((key, val));
    }
    // The leader compacted past everything the stopped follower holds.
    let snap = c.status(leader).unwrap()["snapshot_index"]
        .as_u64()
        .unwrap();
    assert!(snap > 20, "leader snapshot at {snap}");
    assert!(c.metric(leader, "raft_snapshots_total") >= 5);
    // Both name the latest durable snapshot; the metric is read second and never goes back.
    assert!(c.metric(leader, "raft_snapshot_index") >= snap);
    let first = first_index(&c.wal_segments(leader)[0]);
    assert!(
        first > 20,
        "covered segments deleted: {:?}",
        c.wal_segments(leader)
    );
    assert!(c.dir.join(format!("node{leader}/snapshot")).exists());

    c.start(follower);
    let commit = c.status(leader).unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(follower, commit);
    assert!(c.metric(follower, "raft_snapshots_installed_total") >= 1);
    assert!(c
        .log(follower)
        .contains("snapshot installed from the leader"));
    for id in 1..=3 {
        check_reads(&c, id, &acked);
    }

    // kill -9 a node that compacted; it restarts from its snapshot and the log after it.
    let victim = c.wait_leader() % 3 + 1;
    let snap = c.status(victim).unwrap()["snapshot_index"]
        .as_u64()
        .unwrap();
    assert!(snap > 0, "node {victim} compacted");
    c.kill9(victim);
    for k in 0..30 {
        let (key, val) = (format!("b{k}"), format!("x{k}"));
        cl.put(&key, &val).unwrap();
        acked.push((key, val));
    }
    c.start(victim);
    let commit = c.status(c.wait_leader()).unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    c.wait_applied(victim, commit);
    let recovered = c
        .log(victim)
        .lines()
        .rfind(|l| l.contains("recovered"))
        .unwrap()
        .to_string();
    let recovered_at: u64 = recovered
        .split("snapshot_index=")
        .nth(1)
        .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot index in {recovered:?}"));
    assert!(recovered_at >= snap, "{recovered}");
    eprintln!("node {victim} restarted from its snapshot at {recovered_at}: {recovered}");
    for id in 1..=3 {
        check_reads(&c, id, &acked);
    }
}
