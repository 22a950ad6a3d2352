//! The runtime: a durable, networked key-value server around the sans-IO core.
//!
//! - [`wal`], [`storage`]: the durable log (segments, CRC32C, group commit), the hard state and
//!   recovery;
//! - [`codec`], [`transport`], [`handshake`]: framed, versioned peer messages over TCP, opened
//!   by a handshake that checks the cluster id, the node ids and (optionally) a shared secret;
//! - [`config`]: the TOML configuration;
//! - [`server`]: the node loop (inputs → core → persist → send → answer) and its wiring;
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
pub mod record;
pub mod server;
pub mod storage;
pub mod transport;
pub mod wal;
