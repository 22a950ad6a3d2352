//! The runtime: a durable, networked key-value server around the sans-IO core.
//!
//! - [`wal`], [`storage`]: the durable log (segments, CRC32C, group commit), the hard state and
//!   recovery;
//! - [`codec`], [`transport`], [`handshake`]: framed, versioned peer messages over TCP, opened
//!   by a handshake that checks the cluster id, the node ids and (optionally) a shared secret;
//! - [`config`]: the TOML configuration;
//! - [`server`]: the node loop (inputs → core → persist → send → answer) and its wiring;
//!   `outbound`, its sync stage: each batch's fsync, then its messages, on a thread of its own;
//! - [`http`]: the HTTP/JSON client API;
//! - [`metrics`]: Prometheus text metrics;
//! - [`client`]: the blocking client library used by the CLI;
//! - [`loadgen`]: the load generator behind `raft-node bench`.

pub mod client;
pub mod codec;
pub mod config;
pub mod handshake;
pub mod http;
pub mod loadgen;
pub mod metrics;
mod outbound;
pub mod record;
pub mod server;
pub mod storage;
pub mod transport;
pub mod wal;
