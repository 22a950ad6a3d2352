//! The contract between the Raft protocol and the state machine it replicates.

use std::fmt::Debug;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ids::{Index, NodeId};
use super::membership::Membership;
use super::params::Params;

/// A replicated state machine: what a [`RaftCore`](crate::RaftCore) applies its committed log
/// entries to. The key-value store [`KvStateMachine`](crate::KvStateMachine) is the one
/// `raft-node` runs (and the default type parameter everywhere); any other machine plugs in the
/// same way.
///
/// # The contract
///
/// **Determinism.** `apply` must be a pure function of the machine's state, the entry's index,
/// the command and `params`: no clock, randomness, I/O, thread, address-dependent order (a
/// `std::collections::HashMap` with its per-process random seed iterates differently on every
/// replica) or anything else that can differ between servers. Raft guarantees only that every
/// server applies the same commands in the same order; replicas agree on the *state* only if
/// the same state and the same entry always give the same new state and the same answer. A
/// machine that breaks this diverges silently: a follower that later becomes leader answers
/// from a different state, and a snapshot shipped from one server differs from what another
/// would have computed. The same holds for `propose` and `query`, which the leader runs on
/// its applied state, and for `Eq`/`Hash` (the simulator and the conformance suite compare
/// and hash whole cores).
///
/// **Exactly once, in order.** The core calls `apply` once per committed entry, at indexes
/// `last_applied + 1, last_applied + 2, ...`, on every server. It never applies an entry twice,
/// and never one that is not committed; after a restart it starts again from the snapshot.
/// Client retries are a different matter: a command proposed twice is two entries, applied
/// twice, unless the machine deduplicates (the key-value store does, with its sessions).
///
/// **Snapshots are clones.** A snapshot is `self.clone()` taken at `last_applied` (on
/// `Input::Compact`), stored with serde by the runtime, and sent whole in `InstallSnapshot`;
/// restoring one replaces the machine by the snapshot's `state`. So `Clone` should be cheap
/// (persistent data structures such as `im`'s make it constant time, and the compaction step
/// does not stall the core), and `Serialize`/`Deserialize` must round-trip the full state. The
/// [`Default`] value is the state before the first entry (the empty snapshot at index 0).
///
/// **The no-op.** A new leader appends [`StateMachine::noop`] (with
/// `Params::noop_on_election`) to commit the entries of earlier terms; applying it must change
/// nothing and answer nobody. The no-op is one of the machine's own commands, rather than a
/// wrapper the protocol puts around them, so that a log stores one enum per entry and the
/// key-value store's entries encode exactly as they did before the machine was pluggable.
///
/// **Who answers whom.** Every server applies, but only the leader hands the `Reply` of
/// `apply` to [`Ready::replies`](crate::Ready); a follower's is dropped. A reply must
/// therefore say whom it is for (the key-value store carries the client id and sequence
/// number; the runtime routes by them).
///
/// # Example
///
/// A register that holds the last value written:
///
/// ```
/// use raft_core::{Index, NodeId, Params, StateMachine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
/// struct Register(u64);
///
/// #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
/// enum Cmd {
///     Noop,
///     /// Write `value`; `id` routes the answer back to the writer.
///     Write { id: u64, value: u64 },
/// }
///
/// #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
/// enum Reply {
///     Written { id: u64, index: Index },
///     Value(u64),
///     NotLeader { hint: Option<NodeId> },
/// }
///
/// impl StateMachine for Register {
///     type Command = Cmd;
///     type Request = Cmd;
///     type Query = ();
///     type Reply = Reply;
///     fn noop() -> Cmd {
///         Cmd::Noop
///     }
///     fn propose(&self, request: Cmd, _: Index, _: &Params) -> Result<Cmd, Reply> {
///         Ok(request)
///     }
///     fn apply(&mut self, index: Index, command: &Cmd, _: &Params) -> Option<Reply> {
///         match *command {
///             Cmd::Noop => None,
///             Cmd::Write { id, value } => {
///                 self.0 = value;
///                 Some(Reply::Written { id, index })
///             }
///         }
///     }
///     fn query(&self, _: ()) -> Reply {
///         Reply::Value(self.0)
///     }
///     fn not_leader(_: Cmd, hint: Option<NodeId>) -> Reply {
///         Reply::NotLeader { hint }
///     }
///     fn query_not_leader(_: (), hint: Option<NodeId>) -> Reply {
///         Reply::NotLeader { hint }
///     }
/// }
///
/// let mut r = Register::default();
/// let reply = r.apply(1, &Cmd::Write { id: 7, value: 42 }, &Params::default());
/// assert_eq!(reply, Some(Reply::Written { id: 7, index: 1 }));
/// assert_eq!(r.query(()), Reply::Value(42));
/// ```
///
/// `core/examples/counter.rs` runs a machine like this on a three-server cluster.
pub trait StateMachine:
    Clone + Debug + Default + PartialEq + Eq + Hash + Serialize + DeserializeOwned
{
    /// What a log entry carries: written to the log, sent in `AppendEntries`, applied.
    type Command: Clone + Debug + PartialEq + Eq + Hash + Serialize + DeserializeOwned;
    /// What a client submits (`Input::Client`); the leader turns it into a command.
    type Request: Clone + Debug + PartialEq + Eq + Hash + Serialize + DeserializeOwned;
    /// A read served by ReadIndex (`Input::Read`), without a log entry.
    type Query: Clone + Debug + PartialEq + Eq + Hash + Serialize + DeserializeOwned;
    /// What a client gets back (`Ready::replies`).
    type Reply: Clone + Debug + PartialEq + Eq + Hash + Serialize + DeserializeOwned;

    /// The command a new leader appends to commit the entries of earlier terms. Applying it
    /// must change nothing and return `None`.
    fn noop() -> Self::Command;

    /// At the leader: the command to append for `request`, or `Err(reply)` to answer at once
    /// without appending (the key-value store answers a retry it has already applied from its
    /// session table). `last_applied` is the index the machine's state reflects.
    fn propose(
        &self,
        request: Self::Request,
        last_applied: Index,
        params: &Params,
    ) -> Result<Self::Command, Self::Reply>;

    /// Apply the committed `command` at log `index`; the answer for the client that proposed
    /// it, if any (delivered only by the leader). Deterministic: see the trait documentation.
    fn apply(
        &mut self,
        index: Index,
        command: &Self::Command,
        params: &Params,
    ) -> Option<Self::Reply>;

    /// Answer a read on the applied state (the core calls it once the read is linearizable).
    fn query(&self, query: Self::Query) -> Self::Reply;

    /// The answer to a request that reached a server which is not the leader (`hint`: the
    /// leader it knows of).
    fn not_leader(request: Self::Request, hint: Option<NodeId>) -> Self::Reply;

    /// The answer to a read that reached a server which is not the leader, or whose leader
    /// stepped down before serving it.
    fn query_not_leader(query: Self::Query, hint: Option<NodeId>) -> Self::Reply;

    /// The configuration entry that makes `membership` the cluster's, or `None` when this
    /// machine's commands cannot carry one (the default): its cluster's membership is then
    /// fixed at start, and the core refuses membership changes. A machine that supports them
    /// applies such a command as a no-op (the core tracks the configuration itself) and
    /// recognizes it in [`StateMachine::as_membership`].
    fn membership_command(_membership: Membership) -> Option<Self::Command> {
        None
    }

    /// The configuration a command carries, if it is a configuration entry.
    fn as_membership(_command: &Self::Command) -> Option<&Membership> {
        None
    }

    /// Approximate encoded size of a command in bytes, for `Params::max_bytes_per_append`
    /// (each entry counts 16 bytes more for its term and framing). The default, 0, caps
    /// appends by entry count only.
    fn command_size(_command: &Self::Command) -> usize {
        0
    }
}
