//! The runtime: a durable, networked key-value server around the sans-IO core.
//!
//! - `framing`: the one encoding (bincode under a size limit, CRC32C) of every byte written
//!   or sent;
//! - [`wal`], [`storage`]: the durable log (segments, CRC32C, group commit), the hard state and
//!   recovery;
//! - [`codec`], [`transport`], [`handshake`]: framed, versioned peer messages over TCP, opened
//!   by a handshake that checks the cluster id, the node ids and (optionally) a shared secret;
//! - [`snapshot_transfer`]: an `InstallSnapshot` streamed in chunks on a connection of its
//!   own, one transfer per follower at a time, received into a durable file;
//! - [`config`]: the TOML configuration;
//! - [`node_input`]: what the node loop takes in (peer messages, ticks, client requests);
//!   [`status`]: what it publishes (`/status`);
//! - [`server`]: the node loop (inputs → core → persist → send → answer) and its wiring;
//!   `outbound`, its sync stage: each batch's fsync, then its messages (coalesced), on a
//!   thread of its own;
//! - [`health`]: the leader's view of its followers (lag, stuck) for `/status` and `/metrics`;
//! - [`http`]: the HTTP/JSON client API;
//! - [`limits`]: the open-file limit, the HTTP accept loop with its connection cap and
//!   timeouts;
//! - [`metrics`]: Prometheus text metrics.
//!
//! The client library and the load generator talk to a node over HTTP like any client and are
//! beside the runtime, not in it (`raft_node::client`, `raft_node::loadgen`).

pub mod codec;
pub mod config;
mod disk;
mod framing;
pub mod handshake;
pub mod health;
pub mod http;
pub mod identity;
pub mod limits;
mod lost_log;
pub mod metrics;
pub mod node_input;
mod outbound;
pub mod record;
pub mod server;
pub mod snapshot_transfer;
pub mod status;
pub mod storage;
pub mod transport;
pub mod wal;
