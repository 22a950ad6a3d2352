//! Client traffic through proxies: every client request, and every redirect and forward
//! between nodes, goes through a proxy in front of the node's HTTP port, and the schedule
//! cuts those links (a node's clients refused or stalled while its peers still reach it),
//! delays them with the peer links, and kills nodes. No anomaly, no lost acknowledged write.

mod common;

use std::time::Duration;

use raft_nemesis::schedule::Kind;

#[test]
fn client_links_cut_and_delayed_have_no_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_run("client_proxies", dir.path());
    cfg.max_time = Duration::from_secs(30);
    cfg.client_proxies = true;
    cfg.faults = vec![Kind::ClientCut, Kind::ClientCut, Kind::Delay, Kind::Kill];
    common::seed_drawing("client_proxies", &mut cfg, &[(Kind::ClientCut, 3)]);
    let seed = cfg.seed;
    let report = common::run_clean(&cfg);
    let cuts = report.faults.get("client-cut").copied().unwrap_or(0);
    assert!(cuts >= 3, "only {cuts} client cuts (seed {seed})");
    let (forwarded, _, connections, _) = report.client_links.expect("client proxies");
    // Every client operation went through the proxies.
    assert!(
        connections >= 6 && forwarded as usize >= report.ops,
        "{:?}",
        report.client_links
    );
    assert!(report.acknowledged_writes > 100);
}
