//! The node configuration (TOML), validated before anything starts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use raft_core::NodeId;

/// One other member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: NodeId,
    /// Where its peer (Raft) listener is.
    pub peer_addr: SocketAddr,
    /// Where its HTTP API is (for redirects).
    pub http_addr: SocketAddr,
}

/// `raft-node serve --config FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's id (non-zero, unique in the cluster).
    pub id: NodeId,
    /// Peers refuse connections carrying another cluster id.
    pub cluster_id: String,
    /// Where the log and hard state live.
    pub data_dir: PathBuf,
    /// Listen address for peers.
    pub peer_addr: SocketAddr,
    /// Listen address of the HTTP API.
    pub http_addr: SocketAddr,
    /// Every other node this one may exchange messages with: the members, and the nodes an
    /// operator may add later (their addresses must be known to every node that will lead).
    pub peers: Vec<PeerConfig>,
    /// The cluster's voters at its first start, recorded in the data directory by `raft-node
    /// init` (default: this node and every peer). Every node of a new cluster must give the
    /// same list; peers outside it are spares an operator may add later. Read only at `init`:
    /// listing more peers later never changes a running cluster's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_voters: Option<Vec<NodeId>>,
    /// Clock tick.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Base election timeout in ticks (randomized in `[e, 2e)`).
    #[serde(default = "default_election_ticks")]
    pub election_ticks: u64,
    /// Leader heartbeat interval in ticks.
    #[serde(default = "default_heartbeat_ticks")]
    pub heartbeat_ticks: u64,
    /// How long the HTTP API waits for a command to commit before answering 504.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Messages queued per peer before new ones are dropped (Raft retransmits).
    #[serde(default = "default_peer_queue")]
    pub peer_queue: usize,
    /// Opt-in: append every core input and what it produced to this file as JSON lines, with
    /// the resulting state at checkpoints (`raft-conformance validate FILE` checks them against
    /// the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<PathBuf>,
    /// With `record`: a step line carries the full core state after it (a checkpoint the
    /// validator checks its rebuilt state against) while the lines with a state stay within
    /// `1 / ratio` of the others, counting the next one as large as the last (0: every step).
    /// The other lines carry only what the step took and produced, so this bounds the file to
    /// about `1 + 1 / ratio` times them (plus the last state's growth), however large the
    /// state grows.
    #[serde(default = "default_record_checkpoint_ratio")]
    pub record_checkpoint_ratio: u64,
    /// Shared secret every member must prove in the peer handshake (HMAC-SHA256
    /// challenge-response; at least 16 bytes). Without it (and without `peer_secret_file`),
    /// peers are checked by cluster id and node id only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_secret: Option<String>,
    /// The same secret read from a file (its trailing newline dropped), so that it can stay out
    /// of the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_secret_file: Option<PathBuf>,
    /// Opt-in: every HTTP request must carry `Authorization: Bearer <api_token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// Compact the log into a snapshot once this many applied entries are not covered by the
    /// latest snapshot (0: never compact).
    #[serde(default = "default_snapshot_entries")]
    pub snapshot_entries: u64,
    /// Size at which the log starts a new segment file; compaction deletes whole segments, so
    /// this bounds what a compacted log keeps on disk besides the snapshot.
    #[serde(default = "default_wal_segment_bytes")]
    pub wal_segment_bytes: u64,
    /// Most client sessions the state machine keeps (default 16,384). Only a registration
    /// (`POST /register`) evicts, and then the session used least recently (by log index):
    /// a client loses its session only after more than this many other clients registered or
    /// wrote after its last request. Every node of a cluster must have the same value (it is
    /// part of the replicated state machine's rules).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Pipelining: most AppendEntries with entries in flight to one follower, each sent
    /// before the previous one is acknowledged (0: off, one append per follower per round
    /// trip). A leader-only setting: nodes of a cluster may differ.
    #[serde(default = "default_max_inflight_appends")]
    pub max_inflight_appends: usize,
    /// Most client (HTTP) connections served at once. A connection beyond it waits in the
    /// kernel's accept queue until one closes. Default (unset): the lower of 512 and half of
    /// what the open-file limit leaves after the storage reserve
    /// ([`max_http_connections_for`]); a larger value is lowered to that bound at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_connections: Option<usize>,
    /// A request's head (request line and headers) must arrive within this many milliseconds
    /// of the connection being ready for it: of its opening, or of the previous response on a
    /// keep-alive connection (so this is also how long an idle keep-alive connection is kept).
    #[serde(default = "default_http_header_timeout_ms")]
    pub http_header_timeout_ms: u64,
    /// A whole request (its body read and its answer) must be done within this many
    /// milliseconds, or it is answered `408` (must exceed `request_timeout_ms`).
    #[serde(default = "default_http_request_timeout_ms")]
    pub http_request_timeout_ms: u64,
    /// Largest request body accepted, forwarded or not; a larger one is answered `413`.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Bytes per chunk of a snapshot transfer (64 bytes to 8 MiB; tests use tiny chunks to make
    /// small snapshots travel in many). A snapshot of any size is sent as a stream of such
    /// chunks; this, not the state's size, bounds a frame.
    #[serde(default = "default_snapshot_chunk_bytes")]
    pub snapshot_chunk_bytes: usize,
    /// A group-commit fsync at least this long is logged as slow (rate-limited) and counted in
    /// `raft_slow_fsyncs_total` (0: never).
    #[serde(default = "default_slow_fsync_ms")]
    pub slow_fsync_ms: u64,
    /// On the leader, a follower that is behind and has not advanced for this many maximal
    /// election timeouts (`2 × election_ticks × tick_ms` each) is reported stuck (`/status`,
    /// `raft_followers_stuck`, a warning). Every acknowledged append, and every chunk of a
    /// snapshot transfer to it, is progress, so a follower that catches up slowly is not
    /// reported.
    #[serde(default = "default_follower_stuck_elections")]
    pub follower_stuck_elections: u64,
}

/// Descriptors kept for storage (log segments, the hard state, snapshot files, the data
/// directory), peer connections and the process itself, outside every HTTP connection.
pub const FD_RESERVE: u64 = 128;

/// The node's default pipeline depth (`max_inflight_appends`), chosen by measurement
/// (BENCHMARKS.md, "Pipelining").
pub const DEFAULT_MAX_INFLIGHT_APPENDS: usize = 0;

/// The most HTTP connections that fit under an open-file limit of `nofile`: each connection
/// may hold a second descriptor (a request it forwards to the leader), and [`FD_RESERVE`] stays
/// free; by default no more than 512.
pub fn max_http_connections_for(nofile: u64, configured: Option<usize>) -> usize {
    let fits = (nofile.saturating_sub(FD_RESERVE) / 2).max(1) as usize;
    configured.unwrap_or(512).min(fits)
}

fn default_slow_fsync_ms() -> u64 {
    200
}

fn default_snapshot_chunk_bytes() -> usize {
    1 << 20
}

fn default_tick_ms() -> u64 {
    10
}
fn default_election_ticks() -> u64 {
    30
}
fn default_heartbeat_ticks() -> u64 {
    5
}
fn default_request_timeout_ms() -> u64 {
    2000
}
fn default_peer_queue() -> usize {
    1024
}
fn default_snapshot_entries() -> u64 {
    100_000
}
fn default_wal_segment_bytes() -> u64 {
    crate::runtime::wal::SEGMENT_BYTES
}
fn default_http_header_timeout_ms() -> u64 {
    10_000
}
fn default_http_request_timeout_ms() -> u64 {
    30_000
}
fn default_max_body_bytes() -> usize {
    2 << 20
}
fn default_follower_stuck_elections() -> u64 {
    5
}
fn default_record_checkpoint_ratio() -> u64 {
    4
}
pub fn default_max_inflight_appends() -> usize {
    DEFAULT_MAX_INFLIGHT_APPENDS
}
/// The core's default bound (16,384).
pub fn default_max_sessions() -> usize {
    raft_core::Params::default().max_sessions.unwrap_or(16_384)
}

impl Config {
    /// Read and validate a TOML file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))?;
        cfg.validate()
            .map_err(|e| format!("invalid config {}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Initialize this node's data directory (see [`super::identity::init`]): once, before the
    /// node's first start.
    pub fn init_data_dir(&self) -> Result<super::identity::Meta, String> {
        super::identity::init(
            &self.data_dir,
            &self.cluster_id,
            self.id,
            self.initial_voters
                .clone()
                .unwrap_or_else(|| self.members()),
        )
        .map_err(|e| e.to_string())
    }

    /// Initialize this node's data directory as a node joining a running cluster: it is no
    /// member until an operator adds it (`raft-node member add-learner` or `add`), and never
    /// stands for election before.
    pub fn init_joining_data_dir(&self) -> Result<super::identity::Meta, String> {
        super::identity::init(&self.data_dir, &self.cluster_id, self.id, Vec::new())
            .map_err(|e| e.to_string())
    }

    /// Check the configuration before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("id must be non-zero".into());
        }
        if self.cluster_id.is_empty() {
            return Err("cluster_id must not be empty".into());
        }
        let mut ids = BTreeSet::from([self.id]);
        let mut addrs = BTreeSet::from([self.peer_addr, self.http_addr]);
        if self.peer_addr == self.http_addr {
            return Err("peer_addr and http_addr must differ".into());
        }
        for p in &self.peers {
            if !ids.insert(p.id) {
                return Err(format!("node id {} appears twice", p.id));
            }
            if p.id == 0 {
                return Err("peer ids must be non-zero".into());
            }
            if !addrs.insert(p.peer_addr) || !addrs.insert(p.http_addr) {
                return Err(format!("peer {} reuses an address", p.id));
            }
        }
        if let Some(voters) = &self.initial_voters {
            if voters.is_empty() {
                return Err("initial_voters must name at least one node".into());
            }
            if let Some(v) = voters.iter().find(|v| !ids.contains(v)) {
                return Err(format!(
                    "initial_voters names node {v}, which is neither this node nor a peer"
                ));
            }
        }
        if self.tick_ms == 0 || self.heartbeat_ticks == 0 {
            return Err("tick_ms and heartbeat_ticks must be at least 1".into());
        }
        if self.election_ticks <= 2 * self.heartbeat_ticks {
            return Err("election_ticks must exceed twice heartbeat_ticks".into());
        }
        if let Some(t) = &self.api_token {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("api_token must be non-empty printable ASCII without spaces".into());
            }
        }
        if self.wal_segment_bytes < 4096 {
            return Err("wal_segment_bytes must be at least 4096".into());
        }
        if self.request_timeout_ms == 0 || self.peer_queue == 0 {
            return Err("request_timeout_ms and peer_queue must be at least 1".into());
        }
        if self.max_http_connections == Some(0) {
            return Err("max_http_connections must be at least 1".into());
        }
        if self.http_header_timeout_ms == 0 {
            return Err("http_header_timeout_ms must be at least 1".into());
        }
        if self.http_request_timeout_ms <= self.request_timeout_ms {
            return Err(format!(
                "http_request_timeout_ms ({}) must exceed request_timeout_ms ({})",
                self.http_request_timeout_ms, self.request_timeout_ms
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > super::codec::MAX_FRAME / 2 {
            return Err(format!(
                "max_body_bytes must be between 1 and {} (half the frame limit)",
                super::codec::MAX_FRAME / 2
            ));
        }
        if !(64..=super::codec::MAX_FRAME / 2).contains(&self.snapshot_chunk_bytes) {
            return Err(format!(
                "snapshot_chunk_bytes must be between 64 and {} (half the frame limit)",
                super::codec::MAX_FRAME / 2
            ));
        }
        if self.max_sessions == 0 {
            return Err("max_sessions must be at least 1".into());
        }
        if self.follower_stuck_elections == 0 {
            return Err("follower_stuck_elections must be at least 1".into());
        }
        if self.peer_secret.is_some() && self.peer_secret_file.is_some() {
            return Err("set peer_secret or peer_secret_file, not both".into());
        }
        if let Some(s) = &self.peer_secret {
            check_secret(s.as_bytes())?;
        }
        Ok(())
    }

    /// How long a follower may stay behind without progress before its leader reports it
    /// stuck: `follower_stuck_elections` maximal election timeouts.
    pub fn follower_stuck_after(&self) -> std::time::Duration {
        let ms = (self.follower_stuck_elections)
            .saturating_mul(2 * self.election_ticks)
            .saturating_mul(self.tick_ms);
        std::time::Duration::from_millis(ms)
    }

    /// Every member's id, this node included.
    pub fn members(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.peers.iter().map(|p| p.id).collect();
        v.push(self.id);
        v.sort_unstable();
        v
    }

    /// The peer secret, read from `peer_secret_file` if that is how it is given.
    pub fn load_peer_secret(&self) -> Result<Option<Vec<u8>>, String> {
        if let Some(s) = &self.peer_secret {
            return Ok(Some(s.as_bytes().to_vec()));
        }
        let Some(path) = &self.peer_secret_file else {
            return Ok(None);
        };
        let mut data = std::fs::read(path)
            .map_err(|e| format!("cannot read peer_secret_file {}: {e}", path.display()))?;
        while data.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            data.pop();
        }
        check_secret(&data).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(data))
    }

    /// The HTTP address of a member.
    pub fn http_of(&self, id: NodeId) -> Option<SocketAddr> {
        if id == self.id {
            return Some(self.http_addr);
        }
        self.peers.iter().find(|p| p.id == id).map(|p| p.http_addr)
    }

    /// The configurations of a local cluster of `n` nodes on loopback: node `i` (1-based)
    /// listens for peers on `base_port + i` and for HTTP on `base_port + 100 + i`. The nodes
    /// share a fresh random `peer_secret`, so that nothing else on the machine can join.
    pub fn local_cluster(n: u64, data: &Path, base_port: u16, cluster_id: &str) -> Vec<Config> {
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let addr = |port: u64| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
        let all: Vec<PeerConfig> = (1..=n)
            .map(|i| PeerConfig {
                id: i,
                peer_addr: addr(base_port as u64 + i),
                http_addr: addr(base_port as u64 + 100 + i),
            })
            .collect();
        all.iter()
            .map(|me| Config {
                id: me.id,
                cluster_id: cluster_id.to_string(),
                data_dir: data.join(format!("node{}", me.id)),
                peer_addr: me.peer_addr,
                http_addr: me.http_addr,
                peers: all.iter().filter(|p| p.id != me.id).cloned().collect(),
                initial_voters: None,
                tick_ms: default_tick_ms(),
                election_ticks: default_election_ticks(),
                heartbeat_ticks: default_heartbeat_ticks(),
                request_timeout_ms: default_request_timeout_ms(),
                peer_queue: default_peer_queue(),
                record: None,
                record_checkpoint_ratio: default_record_checkpoint_ratio(),
                peer_secret: Some(secret.clone()),
                peer_secret_file: None,
                api_token: None,
                snapshot_entries: default_snapshot_entries(),
                wal_segment_bytes: default_wal_segment_bytes(),
                max_sessions: default_max_sessions(),
                max_inflight_appends: default_max_inflight_appends(),
                max_http_connections: None,
                http_header_timeout_ms: default_http_header_timeout_ms(),
                http_request_timeout_ms: default_http_request_timeout_ms(),
                max_body_bytes: default_max_body_bytes(),
                snapshot_chunk_bytes: default_snapshot_chunk_bytes(),
                slow_fsync_ms: default_slow_fsync_ms(),
                follower_stuck_elections: default_follower_stuck_elections(),
            })
            .collect()
    }
}

/// Shortest peer secret accepted.
pub const MIN_SECRET: usize = 16;

fn check_secret(s: &[u8]) -> Result<(), String> {
    if s.len() < MIN_SECRET {
        return Err(format!(
            "the peer secret must be at least {MIN_SECRET} bytes (it has {})",
            s.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cluster_configs_round_trip_and_bad_ones_are_rejected() {
        let cfgs = Config::local_cluster(3, Path::new("/tmp/x"), 7000, "c");
        for c in &cfgs {
            c.validate().unwrap();
            let text = toml::to_string(c).unwrap();
            assert_eq!(&toml::from_str::<Config>(&text).unwrap(), c);
        }
        let mut bad = cfgs[0].clone();
        bad.peers[0].id = 1;
        assert!(bad.validate().unwrap_err().contains("twice"));
        let mut bad = cfgs[0].clone();
        bad.election_ticks = 2;
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Config>("id = 1\nbogus = 2").is_err());
        let mut bad = cfgs[0].clone();
        bad.peer_secret = Some("short".into());
        assert!(bad.validate().unwrap_err().contains("at least 16"));
        bad.peer_secret_file = Some("/x".into());
        assert!(bad.validate().unwrap_err().contains("not both"));
        let mut bad = cfgs[0].clone();
        bad.max_sessions = 0;
        assert!(bad.validate().unwrap_err().contains("max_sessions"));
        assert_eq!(cfgs[0].max_sessions, 16_384);
        // Older configuration files, without the setting, get the default.
        let mut old = toml::to_string(&cfgs[0]).unwrap();
        old = old.replace("max_sessions = 16384\n", "");
        assert_eq!(toml::from_str::<Config>(&old).unwrap().max_sessions, 16_384);
        let mut bad = cfgs[0].clone();
        bad.max_http_connections = Some(0);
        assert!(bad.validate().unwrap_err().contains("max_http_connections"));
        let mut bad = cfgs[0].clone();
        bad.http_request_timeout_ms = bad.request_timeout_ms;
        assert!(bad.validate().unwrap_err().contains("must exceed"));
        let mut bad = cfgs[0].clone();
        bad.max_body_bytes = 0;
        assert!(bad.validate().unwrap_err().contains("max_body_bytes"));
        let mut bad = cfgs[0].clone();
        bad.follower_stuck_elections = 0;
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("follower_stuck_elections"));
        // 5 × the longest election timeout (2 × 30 ticks of 10 ms).
        assert_eq!(cfgs[0].follower_stuck_after().as_millis(), 3000);
        let text = toml::to_string(&cfgs[0]).unwrap();
        assert!(text.contains("follower_stuck_elections = 5\n"));
        let old: Config =
            toml::from_str(&text.replace("follower_stuck_elections = 5\n", "")).unwrap();
        assert_eq!(old.follower_stuck_elections, 5);
        let old: Config =
            toml::from_str(&text.replace("record_checkpoint_ratio = 4\n", "")).unwrap();
        assert_eq!(old.record_checkpoint_ratio, 4);
    }

    #[test]
    fn http_connections_fit_under_the_open_file_limit() {
        assert_eq!(max_http_connections_for(1024, None), 448);
        assert_eq!(max_http_connections_for(1 << 20, None), 512);
        assert_eq!(max_http_connections_for(1 << 20, Some(5000)), 5000);
        assert_eq!(max_http_connections_for(256, Some(5000)), 64);
        assert_eq!(max_http_connections_for(100, None), 1);
    }

    #[test]
    fn the_peer_secret_comes_from_the_config_or_a_file() {
        let mut c = Config::local_cluster(3, Path::new("/tmp/x"), 7000, "c").remove(0);
        assert_eq!(c.peer_secret.as_ref().unwrap().len(), 64);
        let from_toml = c.load_peer_secret().unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, format!("{}\n", c.peer_secret.take().unwrap())).unwrap();
        c.peer_secret_file = Some(f.clone());
        c.validate().unwrap();
        assert_eq!(c.load_peer_secret().unwrap().unwrap(), from_toml);
        std::fs::write(&f, "tiny\n").unwrap();
        assert!(c.load_peer_secret().unwrap_err().contains("at least 16"));
        c.peer_secret_file = Some(dir.path().join("absent"));
        assert!(c.load_peer_secret().unwrap_err().contains("cannot read"));
        c.peer_secret_file = None;
        assert_eq!(c.load_peer_secret().unwrap(), None);
    }
}
