//! The node loop's vocabulary: every input the loop takes (from peers, the ticker and the HTTP
//! API). The transport and the HTTP API produce these and the loop consumes them, so both
//! depend on this module and neither on the loop. What the loop publishes is in
//! [`super::status`].

use std::path::PathBuf;

use tokio::sync::oneshot;

use raft_core::{
    AdminOp, AdminOutcome, ClientReply, ClientRequest, Envelope, Index, Membership, ReadRequest,
    Text,
};

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
    /// An operator's membership change or leadership transfer (`POST /membership/...`).
    Admin(AdminOp, oneshot::Sender<AdminAnswer>),
    Shutdown,
}

/// What became of an operator's operation.
#[derive(Debug)]
pub enum AdminAnswer {
    /// The leader's outcome, final: not the leader, busy, refused, or a transfer's
    /// `TimeoutNow` sent.
    Outcome(AdminOutcome),
    /// The change appended at `index` is committed: `membership` is the cluster's.
    Committed {
        index: Index,
        membership: Membership,
    },
    /// This node stopped leading, or the entry at `index` was replaced, before it committed:
    /// whether it takes effect is unknown here.
    Unknown { index: Index },
}
