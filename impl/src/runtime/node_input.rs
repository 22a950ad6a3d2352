//! The node loop's vocabulary: every input the loop takes (from peers, the ticker and the HTTP
//! API) and the status it publishes. The transport and the HTTP API produce these and the loop
//! consumes them, so both depend on this module and neither on the loop.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use raft_core::{ClientReply, ClientRequest, Envelope, NodeId, ReadRequest, Text};

/// Everything the node loop handles.
#[derive(Debug)]
pub enum NodeInput {
    Peer(Envelope),
    /// An `InstallSnapshot` whose snapshot arrived by a transfer, and the durable file holding
    /// it in the snapshot file format (see `snapshot_transfer`); the node loop owns the file.
    InstallSnapshot {
        env: Envelope,
        file: PathBuf,
    },
    Tick,
    Client(ClientRequest, oneshot::Sender<ClientReply>),
    /// `POST /register` with its nonce; answered by `ClientReply::Registered` (or `NotLeader`).
    Register(u64, oneshot::Sender<ClientReply>),
    Read(ReadRequest, oneshot::Sender<ClientReply>),
    StaleRead(String, oneshot::Sender<Option<Text>>),
    Shutdown,
}

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
    pub members: Vec<NodeId>,
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
    pub snapshot_transfers: Vec<super::snapshot_transfer::TransferStatus>,
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
