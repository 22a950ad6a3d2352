//! The `raft-node serve` processes of a run: their configurations (peers reached through the
//! link proxies), start, `kill -9`, SIGSTOP/SIGCONT, restart and graceful stop.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_node::runtime::config::{Config, PeerConfig};
use tokio::runtime::Handle;

use crate::proxy::{ClientProxies, Proxies};

/// One node process and what it needs to be restarted.
struct Node {
    cfg: Config,
    cfg_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

/// Node settings a run chooses (every node gets the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `max_sessions` (`None`: the node's default).
    pub max_sessions: Option<usize>,
    /// `http_header_timeout_ms` (`None`: the node's default).
    pub http_header_timeout_ms: Option<u64>,
    /// `snapshot_entries` (0: no compaction, the harness's default).
    pub snapshot_entries: u64,
    /// `wal_segment_bytes` (`None`: the node's default); small with compaction, since
    /// compaction deletes whole segments.
    pub wal_segment_bytes: Option<u64>,
    /// Client traffic through a proxy in front of each node's HTTP port (the nodes are told
    /// their peers' HTTP addresses are those proxies, so redirects and forwards go through
    /// them too).
    pub client_proxies: bool,
}

/// A cluster of `raft-node` processes on loopback behind per-link proxies.
pub struct Cluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    pub proxies: Proxies,
    /// With [`Knobs::client_proxies`].
    pub client_proxies: Option<ClientProxies>,
}

/// Ports for the nodes, held (bound) until the proxies have their own, so a proxy cannot be
/// given one of them.
fn reserve_ports(n: usize) -> std::io::Result<(Vec<TcpListener>, Vec<u16>)> {
    let ls = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let ports = ls
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((ls, ports))
}

impl Cluster {
    /// Write the configurations of `n` nodes under `dir` and start the link proxies (not the
    /// nodes). With `record`, each node records its core steps to `dir/node<i>.jsonl`;
    /// `knobs` sets the nodes' session bound, header timeout and compaction.
    pub fn new(
        bin: &Path,
        dir: &Path,
        n: u64,
        record: bool,
        knobs: &Knobs,
        rt: &Handle,
        seed: u64,
    ) -> Result<Cluster, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (held, ports) =
            reserve_ports(2 * n as usize).map_err(|e| format!("free ports: {e}"))?;
        let addr = |p: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], p)) };
        let real: Vec<PeerConfig> = (0..n)
            .map(|i| PeerConfig {
                id: i + 1,
                peer_addr: addr(ports[2 * i as usize]),
                http_addr: addr(ports[2 * i as usize + 1]),
            })
            .collect();
        let mut links = Vec::new();
        for a in &real {
            for b in &real {
                if a.id != b.id {
                    links.push((a.id, b.id, b.peer_addr));
                }
            }
        }
        let proxies =
            Proxies::start(rt, &links, seed).map_err(|e| format!("starting proxies: {e}"))?;
        let client_proxies = if knobs.client_proxies {
            let targets: Vec<(u64, SocketAddr)> =
                real.iter().map(|p| (p.id, p.http_addr)).collect();
            Some(
                ClientProxies::start(rt, &targets, seed)
                    .map_err(|e| format!("starting client proxies: {e}"))?,
            )
        } else {
            None
        };
        drop(held);
        let mut nodes = Vec::new();
        // One call: every member must get the same generated peer secret.
        let base = Config::local_cluster(n, dir, 7000, "nemesis");
        for me in &real {
            let mut cfg = base[me.id as usize - 1].clone();
            // No compaction unless asked for (then the post-run checks start from the
            // snapshots, see `checks`).
            cfg.snapshot_entries = knobs.snapshot_entries;
            if let Some(b) = knobs.wal_segment_bytes {
                cfg.wal_segment_bytes = b;
            }
            if let Some(m) = knobs.max_sessions {
                cfg.max_sessions = m;
            }
            if let Some(t) = knobs.http_header_timeout_ms {
                cfg.http_header_timeout_ms = t;
            }
            cfg.peer_addr = me.peer_addr;
            cfg.http_addr = me.http_addr;
            cfg.peers = real
                .iter()
                .filter(|p| p.id != me.id)
                .map(|p| PeerConfig {
                    id: p.id,
                    peer_addr: proxies.addr(me.id, p.id),
                    http_addr: client_proxies
                        .as_ref()
                        .map_or(p.http_addr, |c| c.addr(p.id)),
                })
                .collect();
            if record {
                cfg.record = Some(dir.join(format!("node{}.jsonl", me.id)));
            }
            cfg.validate()?;
            cfg.init_data_dir()?;
            let cfg_path = dir.join(format!("node{}.toml", me.id));
            let text = toml::to_string(&cfg).map_err(|e| e.to_string())?;
            fs::write(&cfg_path, text).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
            nodes.push(Node {
                log_path: dir.join(format!("node{}.log", me.id)),
                cfg,
                cfg_path,
                child: None,
                paused: false,
                starts: 0,
            });
        }
        Ok(Cluster {
            bin: bin.to_path_buf(),
            nodes,
            proxies,
            client_proxies,
        })
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.cfg.id).collect()
    }

    /// Where clients reach the nodes: their client proxies, else their own listeners.
    pub fn client_addrs(&self) -> Vec<String> {
        match &self.client_proxies {
            Some(c) => c.ids().iter().map(|id| c.addr(*id).to_string()).collect(),
            None => self.http_addrs(),
        }
    }

    /// The nodes' own HTTP listeners.
    pub fn http_addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.cfg.http_addr.to_string())
            .collect()
    }

    /// Node `id`'s own HTTP listener.
    pub fn http_addr(&self, id: u64) -> SocketAddr {
        self.node(id).cfg.http_addr
    }

    pub fn config(&self, id: u64) -> &Config {
        &self.node(id).cfg
    }

    pub fn record_files(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .filter_map(|n| n.cfg.record.clone())
            .collect()
    }

    pub fn log_path(&self, id: u64) -> &Path {
        &self.node(id).log_path
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// Start node `id` (its log is appended to).
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        let bin = self.bin.clone();
        let n = self.node_mut(id);
        if n.child.is_some() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&n.log_path)
            .map_err(|e| format!("{}: {e}", n.log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&n.cfg_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        n.child = Some(child);
        n.paused = false;
        n.starts += 1;
        Ok(())
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.node(id).paused
    }

    /// `kill -9`, and reap the process.
    pub fn kill(&mut self, id: u64) {
        let n = self.node_mut(id);
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        n.paused = false;
    }

    fn signal(&mut self, id: u64, sig: &str) -> Result<(), String> {
        let n = self.node_mut(id);
        let Some(c) = &n.child else {
            return Ok(());
        };
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(c.id().to_string())
            .status()
            .map_err(|e| format!("kill -{sig}: {e}"))?;
        if !st.success() {
            return Err(format!("kill -{sig} {} failed: {st}", c.id()));
        }
        Ok(())
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn pause(&mut self, id: u64) -> Result<(), String> {
        self.signal(id, "STOP")?;
        self.node_mut(id).paused = self.is_running(id);
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) -> Result<(), String> {
        if self.node(id).paused {
            self.signal(id, "CONT")?;
            self.node_mut(id).paused = false;
        }
        Ok(())
    }

    /// Did a node process exit by itself (a crash)? Returns `(id, status)` of each.
    pub fn exited(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                if let Ok(Some(st)) = c.try_wait() {
                    out.push((n.cfg.id, st.to_string()));
                    n.child = None;
                }
            }
        }
        out
    }

    /// SIGTERM every node and wait for it (`timeout`, then `kill -9`). Returns the nodes that
    /// did not exit 0 by themselves.
    pub fn stop_all(&mut self, timeout: Duration) -> Vec<(u64, String)> {
        let ids = self.ids();
        for &id in &ids {
            let _ = self.resume(id);
            let _ = self.signal(id, "TERM");
        }
        let mut bad = Vec::new();
        let until = Instant::now() + timeout;
        for id in ids {
            let n = self.node_mut(id);
            let Some(mut c) = n.child.take() else {
                continue;
            };
            loop {
                match c.try_wait() {
                    Ok(Some(st)) => {
                        if !st.success() {
                            bad.push((id, st.to_string()));
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        bad.push((id, "did not stop on SIGTERM; killed".into()));
                        break;
                    }
                }
            }
        }
        bad
    }

    /// How often each node was started.
    pub fn starts(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.starts).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
