//! # raft-node
//!
//! The running side of raftright: the [`runtime`] that drives a `raft-core` server with a
//! durable log, a TCP transport, an HTTP API for clients and a key-value store, plus the
//! `raft-node` binary; beside it, the blocking [`client`] library (what the CLI and the nemesis
//! use) and the [`loadgen`] behind `raft-node bench`, which speak HTTP to a node like any
//! client. The protocol itself lives in `raft-core`; the simulator in `raft-sim`.
#![forbid(unsafe_code)]

pub mod client;
pub mod loadgen;
pub mod runtime;
