//! The record of a server's core steps, as a runtime writes it and `raft-conformance validate`
//! reads it: the core state a server started from, then each input with what it sent and the
//! full core state after it. The format lives beside the core so a checker needs the core
//! only; writing it (to a file, as JSON lines) is the runtime's job.

use serde::{Deserialize, Serialize};

use crate::{ClientReply, Envelope, Input, RaftCore};

/// One recorded line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Start {
        node: u64,
        after: RaftCore,
    },
    Step {
        node: u64,
        input: Input,
        messages: Vec<Envelope>,
        replies: Vec<ClientReply>,
        after: RaftCore,
    },
}
