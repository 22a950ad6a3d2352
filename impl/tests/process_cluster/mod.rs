//! The real-process harness the integration tests share: `raft-node serve` processes on
//! loopback ports, their configs, logs and status, and bounded waits. Each test binary uses a
//! part of it.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_node::runtime::config::{Config, PeerConfig};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_raft-node");
/// The bound of every wait.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// `Config::local_cluster`, on free loopback ports.
pub fn configs(n: u64, dir: &Path, cluster_id: &str) -> Vec<Config> {
    let ports = free_ports(2 * n as usize);
    let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
    let all: Vec<PeerConfig> = (0..n)
        .map(|i| PeerConfig {
            id: i + 1,
            peer_addr: addr(ports[2 * i as usize]),
            http_addr: addr(ports[2 * i as usize + 1]),
        })
        .collect();
    let mut v = Config::local_cluster(n, dir, 7000, cluster_id);
    for c in &mut v {
        let me = &all[c.id as usize - 1];
        c.peer_addr = me.peer_addr;
        c.http_addr = me.http_addr;
        c.peers = all.iter().filter(|p| p.id != c.id).cloned().collect();
    }
    v
}

/// Initialize the data directories of a new cluster (`raft-node init`), once, before the
/// nodes' first start.
pub fn init_all(cfgs: &[Config]) {
    for c in cfgs {
        c.init_data_dir()
            .unwrap_or_else(|e| panic!("node {}: {e}", c.id));
    }
}

/// Start `raft-node serve` on `cfg`, written to `dir/node{id}.toml`, logging (info) to
/// `dir/node{id}.log`.
pub fn spawn(cfg: &Config, dir: &Path) -> Child {
    spawn_limited(cfg, dir, None)
}

/// [`spawn`] under `ulimit ARGS` (say `-n 256`, or `-S -n 256` for the soft limit only), set
/// by `sh` before it `exec`s the node.
pub fn spawn_limited(cfg: &Config, dir: &Path, ulimit: Option<&str>) -> Child {
    spawn_in(cfg, dir, ulimit, &[])
}

/// [`spawn_limited`], the node run through `prefix` (say `ip netns exec NS`) when not empty.
pub fn spawn_in(cfg: &Config, dir: &Path, ulimit: Option<&str>, prefix: &[String]) -> Child {
    spawn_with(cfg, dir, ulimit, prefix, &[])
}

/// [`spawn_in`] with more arguments to `serve` (say `--join`).
pub fn spawn_with(
    cfg: &Config,
    dir: &Path,
    ulimit: Option<&str>,
    prefix: &[String],
    serve_args: &[&str],
) -> Child {
    let path = dir.join(format!("node{}.toml", cfg.id));
    fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("node{}.log", cfg.id)))
        .unwrap();
    let mut cmd = match (ulimit, prefix.split_first()) {
        (None, None) => Command::new(BIN),
        (None, Some((program, args))) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        (Some(u), _) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit {u} && exec \"$@\""), "sh"])
                .args(prefix)
                .arg(BIN);
            c
        }
    };
    cmd.args(["serve", "--config"])
        .arg(&path)
        .args(serve_args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A cluster of `raft-node` processes in a temporary directory, killed on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub cfgs: Vec<Config>,
    pub procs: Vec<Option<Child>>,
    /// `ulimit` arguments node `i + 1` is started under (none: the test's own limits).
    pub ulimits: Vec<Option<String>>,
    /// What node `i + 1` is started through (say `ip netns exec NS`; empty: directly).
    pub prefixes: Vec<Vec<String>>,
    /// Nodes started with `serve --join` (not initialized as members of the new cluster).
    pub joining: Vec<u64>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes of cluster `cluster_id`, each config passed through `tweak`, all started.
    pub fn new(n: u64, cluster_id: &str, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::new_limited(n, cluster_id, vec![], tweak)
    }

    /// [`Cluster::new`], node `i + 1` started under `ulimit ulimits[i]` where given.
    pub fn new_limited(
        n: u64,
        cluster_id: &str,
        ulimits: Vec<Option<String>>,
        tweak: impl Fn(&mut Config),
    ) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut cfgs = configs(n, &dir, cluster_id);
        cfgs.iter_mut().for_each(tweak);
        Cluster::start_all(tmp, cfgs, ulimits, vec![])
    }

    /// `n` nodes of cluster `cluster_id` whose first configuration is `voters`; every other
    /// node starts with `serve --join`, no member until an operator adds it. All started.
    pub fn with_joiners(n: u64, cluster_id: &str, voters: &[u64]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut cfgs = configs(n, &dir, cluster_id);
        for c in &mut cfgs {
            c.initial_voters = Some(voters.to_vec());
        }
        let first: Vec<Config> = (cfgs.iter())
            .filter(|c| voters.contains(&c.id))
            .cloned()
            .collect();
        init_all(&first);
        let mut c = Cluster {
            dir,
            cfgs,
            procs: (0..n).map(|_| None).collect(),
            ulimits: vec![],
            prefixes: vec![],
            joining: (1..=n).filter(|i| !voters.contains(i)).collect(),
            _tmp: tmp,
        };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    /// `cfgs` (data directories under `tmp`), node `i + 1` started through `prefixes[i]`.
    pub fn from_configs(
        tmp: tempfile::TempDir,
        cfgs: Vec<Config>,
        prefixes: Vec<Vec<String>>,
    ) -> Cluster {
        Cluster::start_all(tmp, cfgs, vec![], prefixes)
    }

    fn start_all(
        tmp: tempfile::TempDir,
        cfgs: Vec<Config>,
        ulimits: Vec<Option<String>>,
        prefixes: Vec<Vec<String>>,
    ) -> Cluster {
        let n = cfgs.len() as u64;
        init_all(&cfgs);
        let mut c = Cluster {
            dir: tmp.path().to_path_buf(),
            cfgs,
            procs: (0..n).map(|_| None).collect(),
            ulimits,
            prefixes,
            joining: vec![],
            _tmp: tmp,
        };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node{id}.log"))
    }

    pub fn log(&self, id: u64) -> String {
        fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn spawn(&self, id: u64) -> Child {
        let u = self.ulimits.get(id as usize - 1).cloned().flatten();
        let prefix = self
            .prefixes
            .get(id as usize - 1)
            .cloned()
            .unwrap_or_default();
        let join: &[&str] = if self.joining.contains(&id) {
            &["--join"]
        } else {
            &[]
        };
        spawn_with(
            &self.cfgs[id as usize - 1],
            &self.dir,
            u.as_deref(),
            &prefix,
            join,
        )
    }

    pub fn start(&mut self, id: u64) {
        let ch = self.spawn(id);
        self.procs[id as usize - 1] = Some(ch);
    }

    pub fn kill9(&mut self, id: u64) {
        if let Some(mut ch) = self.procs[id as usize - 1].take() {
            ch.kill().unwrap();
            ch.wait().unwrap();
        }
    }

    pub fn http(&self, id: u64) -> String {
        self.cfgs[id as usize - 1].http_addr.to_string()
    }

    pub fn all_http(&self) -> Vec<String> {
        (1..=self.cfgs.len() as u64).map(|i| self.http(i)).collect()
    }

    pub fn status(&self, id: u64) -> Option<Value> {
        ureq::get(&format!("http://{}/status", self.http(id)))
            .timeout(Duration::from_secs(1))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    /// The value of metric `name` on node `id`.
    pub fn metric(&self, id: u64, name: &str) -> u64 {
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

    /// Poll `done` every 50 ms until it holds; panic with `what()` after [`WAIT`].
    pub fn wait_for(&self, mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}", what());
    }

    /// A leader that every running node agrees on.
    pub fn wait_leader(&self) -> u64 {
        let mut leader = None;
        self.wait_for(
            || {
                let live: Vec<u64> = (1..=self.cfgs.len() as u64)
                    .filter(|&i| self.procs[i as usize - 1].is_some())
                    .collect();
                let sts: Vec<Option<Value>> = live.iter().map(|&i| self.status(i)).collect();
                let Some(Some(l)) = sts
                    .first()
                    .map(|s| s.as_ref().and_then(|s| s["leader"].as_u64()))
                else {
                    return false;
                };
                let agree = sts
                    .iter()
                    .all(|s| s.as_ref().is_some_and(|s| s["leader"].as_u64() == Some(l)));
                let leads =
                    live.contains(&l) && self.status(l).is_some_and(|s| s["role"] == "Leader");
                leader = Some(l);
                agree && leads
            },
            || format!("no leader within {WAIT:?}"),
        );
        leader.unwrap()
    }

    /// Wait until node `id` has applied at least `index`.
    pub fn wait_applied(&self, id: u64, index: u64) {
        self.wait_for(
            || {
                self.status(id)
                    .is_some_and(|s| s["last_applied"].as_u64().unwrap_or(0) >= index)
            },
            || {
                format!(
                    "node {id} did not apply index {index}: {:?}\n{}",
                    self.status(id),
                    self.log(id)
                )
            },
        );
    }

    /// Wait until node `id`'s log contains `needle`.
    pub fn wait_log(&self, id: u64, needle: &str) {
        self.wait_for(
            || self.log(id).contains(needle),
            || format!("node {id} never logged {needle:?}:\n{}", self.log(id)),
        );
    }

    /// SIGTERM every running node; each must exit 0 within 10 s.
    pub fn sigterm_all(&mut self) {
        for (k, p) in self.procs.iter_mut().enumerate() {
            if let Some(mut ch) = p.take() {
                Command::new("kill")
                    .args(["-TERM", &ch.id().to_string()])
                    .status()
                    .unwrap();
                let until = Instant::now() + Duration::from_secs(10);
                loop {
                    if let Some(st) = ch.try_wait().unwrap() {
                        assert!(st.success(), "node {} exited with {st}", k + 1);
                        break;
                    }
                    assert!(Instant::now() < until, "node {} ignored SIGTERM", k + 1);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Node `id`'s log segment files, in index order.
    pub fn wal_segments(&self, id: u64) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir.join(format!("node{id}/wal")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
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
