//! Recorded steps of a real (in-process) cluster that compacts its logs and installs a
//! snapshot on a follower that fell behind are transitions the model allows: the runtime's
//! snapshot policy steps `Input::Compact` like any other input, and a restarted follower is
//! brought up to date by `InstallSnapshot`.

use raft_conformance::validate::validate_file;
use raft_node::runtime::client::Client;
use raft_node::runtime::config::Config;
use raft_node::runtime::server::NodeHandle;
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn status(http: &str) -> Option<serde_json::Value> {
    Client::new(vec![http.to_string()])
        .status()
        .pop()
        .and_then(|(_, r)| r.ok())
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn recorded_compactions_and_snapshot_installs_are_model_transitions() {
    let dir = std::env::temp_dir().join(format!("raftright-validate-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ls: Vec<TcpListener> = (0..6)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    drop(ls);
    let mut cfgs = Config::local_cluster(3, &dir, 7000, "validate-snap");
    let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
    for c in cfgs.iter_mut() {
        let i = c.id as usize - 1;
        c.peer_addr = addr(ports[2 * i]);
        c.http_addr = addr(ports[2 * i + 1]);
        c.record = Some(dir.join(format!("node{}.jsonl", c.id)));
        c.snapshot_entries = 3;
    }
    let all = cfgs.clone();
    for c in cfgs.iter_mut() {
        for p in c.peers.iter_mut() {
            let o = &all[p.id as usize - 1];
            p.peer_addr = o.peer_addr;
            p.http_addr = o.http_addr;
        }
    }
    let https: Vec<String> = cfgs.iter().map(|c| c.http_addr.to_string()).collect();
    let mut nodes: Vec<Option<NodeHandle>> = cfgs
        .iter()
        .map(|c| Some(NodeHandle::spawn(c.clone())))
        .collect();
    // The validator speaks the model's vocabulary: clients from 100, keys k0/k1, small values.
    let mut a = Client::with_id(https.clone(), 100, 0);
    let mut b = Client::with_id(https.clone(), 101, 0);
    a.set_deadline(Duration::from_secs(20));
    b.set_deadline(Duration::from_secs(20));
    a.put("k0", "1").unwrap();
    let leader = status(&https[0])
        .and_then(|s| s["leader"].as_u64())
        .unwrap();
    let follower = leader % 3 + 1;
    let fi = follower as usize - 1;
    nodes[fi].take().unwrap().stop().unwrap();
    for v in 2..=7 {
        a.put("k0", &v.to_string()).unwrap();
        b.put("k1", &(v + 10).to_string()).unwrap();
    }
    let snap = status(&https[leader as usize - 1]).unwrap()["snapshot_index"]
        .as_u64()
        .unwrap();
    assert!(snap > 3, "the leader compacted (snapshot at {snap})");
    nodes[fi] = Some(NodeHandle::spawn(cfgs[fi].clone()));
    let commit = status(&https[leader as usize - 1]).unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    wait_for("the restarted follower to catch up", || {
        status(&https[fi]).is_some_and(|s| s["last_applied"].as_u64() >= Some(commit))
    });
    assert_eq!(b.get("k1").unwrap().as_deref(), Some("17"));
    for n in nodes.iter_mut() {
        n.take().unwrap().stop().unwrap();
    }
    let mut checked = 0;
    let (mut compactions, mut installs) = (0, 0);
    for c in &cfgs {
        let path = c.record.as_ref().unwrap();
        let r = validate_file(path).unwrap();
        checked += r.steps_checked;
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let input = &v["step"]["input"];
            if input == "Compact" {
                compactions += 1;
            }
            if input["Message"]["msg"]["InstallSnapshot"].is_object() {
                assert_eq!(c.id, follower, "only the restarted follower installs");
                installs += 1;
            }
        }
    }
    eprintln!("validated {checked} steps: {compactions} compactions, {installs} snapshot installs");
    assert!(compactions >= 3, "{compactions} compactions recorded");
    assert!(installs >= 1, "no InstallSnapshot recorded");
    let _ = std::fs::remove_dir_all(&dir);
}
