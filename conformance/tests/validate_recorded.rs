//! Recorded steps of real (in-process) clusters are transitions the model allows
//! (`raft-conformance validate`): writes and a leader restart; and compactions with an
//! `InstallSnapshot` on a follower that fell behind, sent in chunks (the runtime's snapshot
//! policy steps `Input::Compact` like any other input). A step the model does not allow is reported with its
//! line.

use raft_conformance::validate::validate_file;
use raft_node::client::Client;
use raft_node::runtime::config::Config;
use raft_node::runtime::server::NodeHandle;
use std::net::TcpListener;
use std::path::PathBuf;
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

/// Three in-process nodes on loopback ports, each recording to `dir/node{id}.jsonl`.
struct Recorded {
    dir: PathBuf,
    cfgs: Vec<Config>,
    https: Vec<String>,
    nodes: Vec<Option<NodeHandle>>,
}

impl Recorded {
    fn start(name: &str, tweak: impl Fn(&mut Config)) -> Recorded {
        let dir = std::env::temp_dir().join(format!("raftright-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ls: Vec<TcpListener> = (0..6)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(ls);
        let mut cfgs = Config::local_cluster(3, &dir, 7000, name);
        let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
        for c in cfgs.iter_mut() {
            let i = c.id as usize - 1;
            c.peer_addr = addr(ports[2 * i]);
            c.http_addr = addr(ports[2 * i + 1]);
            c.record = Some(dir.join(format!("node{}.jsonl", c.id)));
            tweak(c);
        }
        let all = cfgs.clone();
        for c in cfgs.iter_mut() {
            for p in c.peers.iter_mut() {
                let o = &all[p.id as usize - 1];
                p.peer_addr = o.peer_addr;
                p.http_addr = o.http_addr;
            }
        }
        let https = cfgs.iter().map(|c| c.http_addr.to_string()).collect();
        let nodes = cfgs
            .iter()
            .map(|c| Some(NodeHandle::spawn(c.clone())))
            .collect();
        Recorded {
            dir,
            cfgs,
            https,
            nodes,
        }
    }

    /// A client that registers its session through the log (its id is that entry's index).
    fn client(&self) -> Client {
        let mut c = Client::new(self.https.clone());
        c.set_deadline(Duration::from_secs(20));
        c
    }

    fn stop(&mut self, id: u64) {
        self.nodes[id as usize - 1].take().unwrap().stop().unwrap();
    }

    fn restart(&mut self, id: u64) {
        let i = id as usize - 1;
        self.nodes[i] = Some(NodeHandle::spawn(self.cfgs[i].clone()));
    }

    fn wait_applied(&self, id: u64, index: u64) {
        wait_for(&format!("node {id} to apply {index}"), || {
            status(&self.https[id as usize - 1])
                .is_some_and(|s| s["last_applied"].as_u64() >= Some(index))
        });
    }

    fn stop_all(&mut self) {
        for n in self.nodes.iter_mut() {
            n.take().unwrap().stop().unwrap();
        }
    }

    /// Validate every node's recording; the number of steps checked.
    fn validate(&self) -> usize {
        (self.cfgs.iter())
            .map(|c| {
                validate_file(c.record.as_ref().unwrap())
                    .unwrap()
                    .steps_checked
            })
            .sum()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn recorded_steps_of_a_real_cluster_are_model_transitions() {
    let mut r = Recorded::start("validate", |_| {});
    let (mut a, mut b) = (r.client(), r.client());
    for v in 1..=4 {
        a.put("k0", &v.to_string()).unwrap();
    }
    b.put("k1", "7").unwrap();
    // Restart the leader gracefully; the others elect a new one.
    let leader = status(&r.https[0])
        .and_then(|s| s["leader"].as_u64())
        .unwrap();
    r.stop(leader);
    a.put("k0", "5").unwrap();
    b.put("k1", "8").unwrap();
    r.restart(leader);
    assert_eq!(a.get("k0").unwrap().as_deref(), Some("5"));
    r.wait_applied(leader, 7);
    r.stop_all();
    let checked = r.validate();
    assert!(checked > 20, "{checked}");
    // A recorded step the model does not allow is reported with its line.
    let path = r.cfgs[0].record.clone().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let k = lines
        .iter()
        .position(|l| l.starts_with("{\"step\"") && l.contains("\"voted_for\":"))
        .unwrap();
    lines[k] = lines[k].replacen("\"current_term\":", "\"current_term\":9", 1);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let e = validate_file(&path).unwrap_err();
    assert!(e.contains(&format!("line {}", k + 1)), "{e}");
}

#[test]
fn recorded_compactions_and_snapshot_installs_are_model_transitions() {
    // Chunks far smaller than the snapshot (the model's values are small), so the install
    // that is validated arrived in pieces.
    let mut r = Recorded::start("validate-snap", |c| {
        c.snapshot_entries = 3;
        c.snapshot_chunk_bytes = 64;
    });
    let (mut a, mut b) = (r.client(), r.client());
    a.put("k0", "1").unwrap();
    let leader = status(&r.https[0])
        .and_then(|s| s["leader"].as_u64())
        .unwrap();
    let follower = leader % 3 + 1;
    r.stop(follower);
    for v in 2..=7 {
        a.put("k0", &v.to_string()).unwrap();
        b.put("k1", &(v + 10).to_string()).unwrap();
    }
    let leader_status = status(&r.https[leader as usize - 1]).unwrap();
    let snap = leader_status["snapshot_index"].as_u64().unwrap();
    assert!(snap > 3, "the leader compacted (snapshot at {snap})");
    r.restart(follower);
    let commit = status(&r.https[leader as usize - 1]).unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    r.wait_applied(follower, commit);
    assert_eq!(b.get("k1").unwrap().as_deref(), Some("17"));
    let metrics = ureq::get(&format!("http://{}/metrics", r.https[leader as usize - 1]))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let chunks = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "raft_snapshot_chunks_sent_total{{node=\"{leader}\"}} "
            ))
            .map(|n| n.parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(chunks >= 2, "the snapshot went in {chunks} chunks");
    r.stop_all();
    let checked = r.validate();
    let (mut compactions, mut installs) = (0, 0);
    for c in &r.cfgs {
        let text = std::fs::read_to_string(c.record.as_ref().unwrap()).unwrap();
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
}
