//! # raft-node
//!
//! The node side of raftright: a deterministic, sans-IO Raft core that follows PROTOCOL.md
//! rule by rule ([`core`]), a [`driver`] that turns clock ticks into timeout events with
//! seeded randomized election timeouts, and a deterministic cluster simulator ([`sim`]) that
//! checks the Raft safety properties after every step and the client history at the end.
//!
//! ## Driving the core
//!
//! ```
//! use raft_node::core::{Input, Params, RaftCore, Role};
//!
//! // A one-server cluster elects itself on its first election timeout.
//! let mut node = RaftCore::new(1, &[1], Params::default());
//! let ready = node.step(Input::ElectionTimeout);
//! assert_eq!(node.role(), Role::Leader);
//! // Persist first, then send: the new term and vote must be durable before any message.
//! assert!(ready.hard_state.is_some());
//! let write = ready.log_write.expect("the leader's no-op entry");
//! let to_store = node.log().slice(write.from_index, write.last_index);
//! assert_eq!(to_store.len(), 1);
//! ```
#![forbid(unsafe_code)]

pub mod core;
pub mod driver;
pub mod runtime;
pub mod sim;
