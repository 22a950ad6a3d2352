//! The node loop's vocabulary: every input the loop takes (from peers, the ticker and the HTTP
//! API). The transport and the HTTP API produce these and the loop consumes them, so both
//! depend on this module and neither on the loop. What the loop publishes is in
//! [`super::status`].

use std::path::PathBuf;

use tokio::sync::oneshot;

use raft_core::{ClientReply, ClientRequest, Envelope, ReadRequest, Text};

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
