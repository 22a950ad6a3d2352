//! What a node publishes about itself (`/status`): plain data, written by the node loop and
//! read by the HTTP API and the metrics, so it depends on nothing else in the runtime.

use serde::{Deserialize, Serialize};

use raft_core::{Index, NodeId, Term};

/// What `/status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub cluster_id: String,
    pub role: String,
    pub term: u64,
    pub voted_for: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_http: Option<String>,
    pub commit_index: u64,
    pub last_applied: u64,
    pub last_log_index: u64,
    /// The nodes this one knows the addresses of (itself and its configuration's peers).
    pub members: Vec<NodeId>,
    /// The configuration in effect here: its voters and learners (the last configuration
    /// entry in this node's log, committed or not).
    #[serde(default)]
    pub voters: Vec<NodeId>,
    #[serde(default)]
    pub learners: Vec<NodeId>,
    /// Whether that configuration is committed (as far as this node knows).
    #[serde(default)]
    pub membership_committed: bool,
    /// Index of the latest durable snapshot (0: none).
    #[serde(default)]
    pub snapshot_index: u64,
    /// Client sessions in this node's state machine.
    #[serde(default)]
    pub sessions: u64,
    /// The soft open-file limit in force (raised to the hard limit at start).
    #[serde(default)]
    pub open_files_limit: u64,
    /// Most HTTP connections served at once.
    #[serde(default)]
    pub max_http_connections: u64,
    /// On a leader: the snapshot transfers to followers running now.
    #[serde(default)]
    pub snapshot_transfers: Vec<TransferStatus>,
    /// On the leader, each follower as the leader sees it (empty on any other node).
    #[serde(default)]
    pub followers: Vec<FollowerHealth>,
}

/// One follower, as its leader sees it (`/status` `followers`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerHealth {
    pub id: NodeId,
    /// Highest index known to be replicated on it.
    pub match_index: u64,
    /// Next index the leader sends it.
    pub next_index: u64,
    /// Entries it is behind the leader's last index.
    pub lag: u64,
    /// Behind, and no progress for `follower_stuck_elections` maximal election timeouts.
    pub stuck: bool,
    /// Milliseconds since its `match_index` last advanced or it was last caught up (or since
    /// this node became leader, if later).
    pub since_progress_ms: u64,
}

/// A transfer shown in `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStatus {
    pub peer: NodeId,
    pub term: Term,
    pub last_included_index: Index,
    pub bytes_sent: u64,
    pub chunks_sent: u64,
    pub elapsed_ms: u64,
}
