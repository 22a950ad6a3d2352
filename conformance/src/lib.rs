//! raftright conformance: the node core (`raft-node`) held to the model (`raft-model`).
//!
//! - [`map`]: the one mapping between the model's vocabulary and the core's, both ways;
//! - [`view`]: the abstraction compared after every step;
//! - [`cluster`]: the cores (with durable storage) driven by model actions, and the comparison;
//! - [`replay`]: replaying a trace file (`raft_model::trace`);
//! - [`lockstep`]: the exhaustive walk of the model's state space with the cores carried along;
//! - [`mutants`]: the mutation score;
//! - [`recording`]: a node's recorded steps with the full state before and after each;
//! - [`validate`]: recorded steps of running nodes checked against the model.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod lockstep;
pub mod map;
pub mod mutants;
pub mod recording;
pub mod replay;
pub mod validate;
pub mod view;
