//! Snapshots with real `raft-node` processes on loopback: with a small `snapshot_entries` the
//! nodes compact their logs; a follower that was down while the leader compacted past its log
//! catches up through InstallSnapshot; a node killed with `kill -9` after compacting restarts
//! from its snapshot. Every acknowledged write is read back from every node. Every wait is
//! bounded.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_node::runtime::client::Client;
use raft_node::runtime::config::{Config, PeerConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_raft-node");
const WAIT: Duration = Duration::from_secs(20);

fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn configs(n: u64, dir: &Path) -> Vec<Config> {
    let ports = free_ports(2 * n as usize);
    let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
    let all: Vec<PeerConfig> = (0..n)
        .map(|i| PeerConfig {
            id: i + 1,
            peer_addr: addr(ports[2 * i as usize]),
            http_addr: addr(ports[2 * i as usize + 1]),
        })
        .collect();
    let mut v = Config::local_cluster(n, dir, 7000, "snapshots");
    for c in &mut v {
        let me = &all[c.id as usize - 1];
        c.peer_addr = me.peer_addr;
        c.http_addr = me.http_addr;
        c.peers = all.iter().filter(|p| p.id != c.id).cloned().collect();
        c.snapshot_entries = 20;
        // Small segments, so that compaction has whole segments to delete.
        c.wal_segment_bytes = 4096;
    }
    v
}

struct Cluster {
    dir: PathBuf,
    cfgs: Vec<Config>,
    procs: Vec<Option<Child>>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let cfgs = configs(n, &dir);
        let mut c = Cluster {
            dir,
            cfgs,
            procs: (0..n).map(|_| None).collect(),
            _tmp: tmp,
        };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    fn log(&self, id: u64) -> String {
        fs::read_to_string(self.dir.join(format!("node{id}.log"))).unwrap_or_default()
    }

    fn start(&mut self, id: u64) {
        let cfg = &self.cfgs[id as usize - 1];
        let path = self.dir.join(format!("node{id}.toml"));
        fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{id}.log")))
            .unwrap();
        let ch = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs[id as usize - 1] = Some(ch);
    }

    fn kill9(&mut self, id: u64) {
        if let Some(mut ch) = self.procs[id as usize - 1].take() {
            ch.kill().unwrap();
            ch.wait().unwrap();
        }
    }

    fn http(&self, id: u64) -> String {
        self.cfgs[id as usize - 1].http_addr.to_string()
    }

    fn all_http(&self) -> Vec<String> {
        (1..=self.cfgs.len() as u64).map(|i| self.http(i)).collect()
    }

    fn status(&self, id: u64) -> Option<Value> {
        ureq::get(&format!("http://{}/status", self.http(id)))
            .timeout(Duration::from_secs(1))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    /// The value of metric `name` on node `id`.
    fn metric(&self, id: u64, name: &str) -> u64 {
        let text = ureq::get(&format!("http://{}/metrics", self.http(id)))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let prefix = format!("{name}{{node=\"{id}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// A leader that every running node agrees on.
    fn wait_leader(&self) -> u64 {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            let live: Vec<u64> = (1..=self.cfgs.len() as u64)
                .filter(|&i| self.procs[i as usize - 1].is_some())
                .collect();
            let sts: Vec<Option<Value>> = live.iter().map(|&i| self.status(i)).collect();
            if let Some(Some(first)) = sts.first() {
                if let Some(l) = first["leader"].as_u64() {
                    let agree = sts
                        .iter()
                        .all(|s| s.as_ref().is_some_and(|s| s["leader"].as_u64() == Some(l)));
                    let leads =
                        live.contains(&l) && self.status(l).is_some_and(|s| s["role"] == "Leader");
                    if agree && leads {
                        return l;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader within {WAIT:?}");
    }

    fn wait_applied(&self, id: u64, index: u64) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if self
                .status(id)
                .is_some_and(|s| s["last_applied"].as_u64().unwrap_or(0) >= index)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "node {id} did not apply index {index}: {:?}\n{}",
            self.status(id),
            self.log(id)
        );
    }

    fn wal_segments(&self, id: u64) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.dir.join(format!("node{id}/wal")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Every acknowledged write, read from node `id`'s own state machine.
    fn check_reads(&self, id: u64, acked: &[(String, String)]) {
        let mut local = Client::new(vec![self.http(id)]);
        local.set_deadline(WAIT);
        for (k, v) in acked {
            assert_eq!(
                local.get_stale(k).unwrap().as_deref(),
                Some(v.as_str()),
                "node {id}, key {k}"
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.iter_mut() {
            if let Some(mut ch) = p.take() {
                let _ = ch.kill();
                let _ = ch.wait();
            }
        }
    }
}

#[test]
fn a_lagging_follower_installs_a_snapshot_and_a_compacted_node_recovers_from_one() {
    let mut c = Cluster::new(3);
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
    assert_eq!(c.metric(leader, "raft_snapshot_index"), snap);
    let first: u64 = c.wal_segments(leader)[0][..20].parse().unwrap();
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
        c.check_reads(id, &acked);
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
        c.check_reads(id, &acked);
    }
}
