//! Issue 16, item 4: the leader shows each follower's match index and lag in `/status` and
//! `/metrics`, and reports a follower that stopped catching up as stuck. Real `raft-node`
//! processes: a follower of three is killed, the leader reports it lagging, then stuck (and
//! logs it once), and after a restart caught up again.

use std::time::Duration;

mod process_cluster;

use process_cluster::{Cluster, WAIT};
use raft_node::client::Client;
use serde_json::Value;

/// 10 maximal election timeouts of 2 × 10 ticks of 10 ms.
const STUCK_AFTER_MS: u64 = 2000;

/// Follower `peer` in the `/status` of node `id`.
fn follower(c: &Cluster, id: u64, peer: u64) -> Option<Value> {
    let s = c.status(id)?;
    (s["followers"].as_array()?.iter())
        .find(|f| f["id"].as_u64() == Some(peer))
        .cloned()
}

/// The value of `name{node="id",peer="peer"}` on node `id`.
fn peer_metric(c: &Cluster, id: u64, name: &str, peer: u64) -> Option<u64> {
    let text = ureq::get(&format!("http://{}/metrics", c.http(id)))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let prefix = format!("{name}{{node=\"{id}\",peer=\"{peer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[test]
fn the_leader_reports_a_lagging_then_stuck_follower_and_its_recovery() {
    let mut c = Cluster::new(3, "health", |cfg| {
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 2;
        cfg.follower_stuck_elections = 10;
    });
    let leader = c.wait_leader();
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let (up, down) = (others[0], others[1]);
    let mut cl = Client::new(vec![c.http(leader)]);
    cl.set_deadline(WAIT);
    cl.put("k0", "v").unwrap();
    let caught_up = |c: &Cluster, peer: u64| {
        follower(c, leader, peer).is_some_and(|f| f["lag"] == 0 && f["stuck"] == false)
    };
    c.wait_for(
        || others.iter().all(|&p| caught_up(&c, p)),
        || format!("followers never caught up: {:?}", c.status(leader)),
    );
    // Only the leader reports followers.
    let st = c.status(up).unwrap();
    assert_eq!(st["followers"], serde_json::json!([]), "{st}");
    assert_eq!(c.metric(up, "raft_followers_stuck"), 0);

    c.kill9(down);
    for k in 1..=5 {
        cl.put(&format!("k{k}"), "v").unwrap();
    }
    // Lagging: behind by at least the 5 writes, stuck only once 2 s passed without progress.
    let mut lagging = None;
    c.wait_for(
        || {
            lagging = follower(&c, leader, down).filter(|f| f["lag"].as_u64() >= Some(5));
            lagging.is_some()
        },
        || format!("node {down} not reported lagging: {:?}", c.status(leader)),
    );
    let f = lagging.unwrap();
    let since = f["since_progress_ms"].as_u64().unwrap();
    assert_eq!(f["stuck"] == true, since >= STUCK_AFTER_MS, "{f}");
    let st = c.status(leader).unwrap();
    let last = st["last_log_index"].as_u64().unwrap();
    let behind = f["match_index"].as_u64().unwrap();
    assert!(behind < last && behind >= 1, "{f} {st}");
    assert!(caught_up(&c, up), "{st}");
    assert!(peer_metric(&c, leader, "raft_follower_lag_entries", down) >= Some(5));
    assert_eq!(
        peer_metric(&c, leader, "raft_follower_match_index", down),
        Some(behind)
    );

    // Stuck: no progress for 2 s, in /status, /metrics and the log (once).
    c.wait_for(
        || follower(&c, leader, down).is_some_and(|f| f["stuck"] == true),
        || format!("node {down} never reported stuck: {:?}", c.status(leader)),
    );
    let f = follower(&c, leader, down).unwrap();
    assert!(
        f["since_progress_ms"].as_u64().unwrap() >= STUCK_AFTER_MS,
        "{f}"
    );
    assert_eq!(c.metric(leader, "raft_followers_stuck"), 1);
    assert_eq!(
        peer_metric(&c, leader, "raft_follower_stuck", down),
        Some(1)
    );
    assert_eq!(peer_metric(&c, leader, "raft_follower_stuck", up), Some(0));
    c.wait_log(leader, "follower stuck");
    std::thread::sleep(Duration::from_millis(300));
    let warned = c.log(leader).matches("follower stuck").count();
    assert_eq!(warned, 1, "{}", c.log(leader));

    // Restarted, it catches up and is reported so.
    c.start(down);
    c.wait_for(
        || caught_up(&c, down),
        || format!("node {down} never recovered: {:?}", c.status(leader)),
    );
    assert_eq!(c.metric(leader, "raft_followers_stuck"), 0);
    assert_eq!(
        peer_metric(&c, leader, "raft_follower_lag_entries", down),
        Some(0)
    );
    c.wait_log(leader, "follower progressing again");
    c.sigterm_all();
}

/// A follower whose disk is wiped (its data directory gone) comes back empty: its rejections
/// are below what it had acknowledged, and the leader says so (logged, counted). Repairing it
/// safely (the leader's `next_index` never drops below the old `match_index`, and the empty
/// node must not count toward commits or votes) is the lost-disk part of the membership issue.
#[test]
fn the_leader_reports_a_follower_that_lost_its_log() {
    let mut c = Cluster::new(3, "lost-log", |cfg| {
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 2;
    });
    let leader = c.wait_leader();
    let wiped = leader % 3 + 1;
    let mut cl = Client::new(vec![c.http(leader)]);
    cl.set_deadline(WAIT);
    for k in 0..5 {
        cl.put(&format!("k{k}"), "v").unwrap();
    }
    let commit = c.status(leader).unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(wiped, commit);
    c.wait_for(
        || follower(&c, leader, wiped).is_some_and(|f| f["match_index"].as_u64() >= Some(commit)),
        || format!("the leader never saw {wiped} match: {:?}", c.status(leader)),
    );
    assert_eq!(c.metric(leader, "raft_followers_lost_log_total"), 0);
    c.kill9(wiped);
    std::fs::remove_dir_all(c.dir.join(format!("node{wiped}"))).unwrap();
    c.start(wiped);
    c.wait_for(
        || c.metric(leader, "raft_followers_lost_log_total") >= 1,
        || format!("the leader never noticed:\n{}", c.log(leader)),
    );
    assert!(c
        .log(leader)
        .contains("a follower lost log entries it had acknowledged"));
}
