//! raftright's specification: Raft as a stateright model.
//!
//! The model is the first place to learn the protocol: `server.rs` holds the rules of
//! PROTOCOL.md for one server, `model.rs` the steps the system can take, `properties.rs` what
//! must hold, `stateright_model.rs` ties them together as stateright's `Model`. `runner.rs`
//! drives the checker for the `raft-model` command and the tests.
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod explorer;
pub mod kv_spec;
pub mod model;
mod pack;
pub mod properties;
pub mod runner;
pub mod server;
pub mod state;
mod stateright_model;
pub mod svg;
pub mod symmetry;
pub mod trace;
pub mod types;

pub use config::{Bug, Config, Params};
pub use model::{Action, RaftModel};
pub use state::State;
