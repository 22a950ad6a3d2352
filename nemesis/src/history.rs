//! The client history of a run: one record per operation, with the time it was invoked, the
//! time it completed and its outcome. Times are nanoseconds since the start of the run, read
//! from one monotonic clock in the harness process.

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    Put(String),
    Get,
    Delete,
    Cas {
        expected: Option<String>,
        new: Option<String>,
    },
}

impl Cmd {
    pub fn is_write(&self) -> bool {
        !matches!(self, Cmd::Get)
    }
}

/// What the cluster answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// `Put` and `Delete`.
    Ok,
    /// `Get`.
    Value(Option<String>),
    /// `Cas`: whether it swapped and the value before.
    Cas {
        swapped: bool,
        previous: Option<String>,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Answered: it took effect exactly once, between invocation and completion.
    Ok(Ret),
    /// Refused before it was proposed: it took no effect.
    Fail(String),
    /// No answer before the deadline: it may have taken effect at any time after invocation,
    /// or never.
    Unknown(String),
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Harness-side client number.
    pub client: u64,
    /// The `(client_id, seq)` a write was sent with (reads have no seq).
    pub client_id: u64,
    pub seq: Option<u64>,
    pub key: String,
    pub cmd: Cmd,
    /// Invocation time.
    pub call_ns: u64,
    /// Completion time (for `Unknown`, when the client gave up).
    pub ret_ns: u64,
    pub outcome: Outcome,
}
