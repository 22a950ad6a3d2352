//! The node configuration (TOML), validated before anything starts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::NodeId;

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
    /// Every other member.
    pub peers: Vec<PeerConfig>,
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
    /// Opt-in: append every core input and the resulting state to this file as JSON lines
    /// (`raft-conformance validate FILE` checks them against the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<PathBuf>,
    /// Opt-in: every HTTP request must carry `Authorization: Bearer <api_token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
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
        if self.request_timeout_ms == 0 || self.peer_queue == 0 {
            return Err("request_timeout_ms and peer_queue must be at least 1".into());
        }
        Ok(())
    }

    /// Every member's id, this node included.
    pub fn members(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.peers.iter().map(|p| p.id).collect();
        v.push(self.id);
        v.sort_unstable();
        v
    }

    /// The HTTP address of a member.
    pub fn http_of(&self, id: NodeId) -> Option<SocketAddr> {
        if id == self.id {
            return Some(self.http_addr);
        }
        self.peers.iter().find(|p| p.id == id).map(|p| p.http_addr)
    }

    /// The configurations of a local cluster of `n` nodes on loopback: node `i` (1-based)
    /// listens for peers on `base_port + i` and for HTTP on `base_port + 100 + i`.
    pub fn local_cluster(n: u64, data: &Path, base_port: u16, cluster_id: &str) -> Vec<Config> {
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
                tick_ms: default_tick_ms(),
                election_ticks: default_election_ticks(),
                heartbeat_ticks: default_heartbeat_ticks(),
                request_timeout_ms: default_request_timeout_ms(),
                peer_queue: default_peer_queue(),
                record: None,
                api_token: None,
            })
            .collect()
    }
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
    }
}
