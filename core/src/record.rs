//! The record of a server's core steps, as a runtime writes it and `raft-conformance validate`
//! reads it: the core state a server started from, then each input with what it sent, and the
//! full core state after a step only now and then (a checkpoint). The core is deterministic,
//! so the states in between are the previous state stepped with the recorded input; writing
//! each of them out made a recording grow with the state times the steps (gigabytes a minute
//! at full speed). The format lives beside the core so a checker needs the core only; writing
//! it (to a file, as JSON lines) is the runtime's job.

use serde::{Deserialize, Serialize};

use crate::{ClientReply, Envelope, Input, RaftCore};

/// One recorded line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The state the server (re)started from: a chain of steps begins here.
    Start { node: u64, after: RaftCore },
    /// One `RaftCore::step`: its input and the messages and replies of its `Ready`.
    Step {
        node: u64,
        input: Input,
        messages: Vec<Envelope>,
        replies: Vec<ClientReply>,
        /// The full state after the step, at a checkpoint only. Recordings made before
        /// checkpoints carry it on every step, and still read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<RaftCore>,
    },
}
