//! `Params`: every policy that shapes the content of a message (PROTOCOL.md, "Parameters").

use serde::{Deserialize, Serialize};

/// How `next_index` moves after a rejected AppendEntries (PROTOCOL.md, "Replication").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Backoff {
    /// `next_index = max(match_index + 1, min(next_index - 1, last_index + 1))`.
    ConflictHint,
    /// `next_index = max(match_index + 1, next_index - 1)`.
    Decrement,
}

/// A known protocol bug that tests can switch on to prove the checks catch it. The enum always
/// exists (the core names the bug where it acts); only the `mutants` feature adds the
/// `Params::bug` switch, so a build without it cannot turn one on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// Grant votes (and pre-votes) without the up-to-date check.
    VoteWithoutUpToDateCheck,
    /// Commit an earlier-term entry by counting replicas (the paper's Figure 8).
    Figure8Commit,
    /// `from_durable` forgets `voted_for`.
    ForgetVoteOnRestart,
    /// The session table is not consulted: duplicates are appended and applied again.
    NoDedup,
    /// A follower accepts AppendEntries without checking `prev_log_term`.
    NoPrevLogTermCheck,
    /// A follower installing a snapshot keeps its own state machine.
    InstallSnapshotKeepsStateMachine,
    /// A command whose session is gone is applied under a new session (how the node lost
    /// updates before sessions were registered: an evicted retry ran twice).
    ReopenExpiredSession,
    /// A candidate counts a granted vote from an earlier term of its own.
    StaleVoteCounted,
    /// A leader serves a ReadIndex read without a majority's confirmation.
    ReadWithoutQuorum,
    /// A new leader serves reads before committing an entry of its term.
    ReadBeforeTermCommit,
    /// With pipelining, a success sets `match_index` from the optimistic `next_index` (all
    /// that was sent) instead of the index the follower acknowledged.
    MatchFromOptimisticNextIndex,
    /// A leader proposes a membership change before it has committed an entry of its term
    /// (the single-server change bug: two changes from one configuration by two leaders).
    ChangeBeforeTermCommit,
}

/// The node's default session bound. A session costs its last answer plus about 100 bytes;
/// only registrations evict, so this many clients can work at once without one losing its
/// session.
pub const DEFAULT_MAX_SESSIONS: usize = 16_384;

/// Protocol parameters. The first five fields have exactly the PROTOCOL.md names and meaning;
/// the rest are node-only features (conformance gaps when switched on).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Params {
    /// Elections start with a pre-vote round.
    pub pre_vote: bool,
    /// Leaders step down without a recently active majority; followers that know a leader refuse pre-votes.
    pub check_quorum: bool,
    /// Most entries in one AppendEntries (at least 1).
    pub max_entries_per_append: usize,
    /// How `next_index` backs off after a rejection.
    pub backoff: Backoff,
    /// A new leader appends a `Noop` of its term.
    pub noop_on_election: bool,
    /// Node-only: most bytes of entries in one AppendEntries (`None`: unlimited). One entry is
    /// always sent even when it alone exceeds the cap.
    pub max_bytes_per_append: Option<usize>,
    /// Node-only: pipelining. `Some(n)`: up to `n` AppendEntries with entries in flight per
    /// follower, with `next_index` advanced optimistically on send. `None`: PROTOCOL.md
    /// behaviour (sending never moves `next_index`).
    pub max_inflight_appends: Option<usize>,
    /// Most client sessions kept by the key-value store (`KvStateMachine`, which reads it
    /// through `StateMachine::apply`'s `params`): applying a `Register` while the table is full
    /// first evicts the session used at the lowest log index (`None`: unlimited). The model's
    /// `--max-sessions`. Other state machines ignore it.
    pub max_sessions: Option<usize>,
    /// Test-only: inject a known bug.
    #[cfg(feature = "mutants")]
    pub bug: Option<Bug>,
}

impl Params {
    /// The model's defaults (PROTOCOL.md "model default" column), node-only features off.
    pub fn model_defaults() -> Self {
        Params {
            pre_vote: false,
            check_quorum: false,
            max_entries_per_append: 1,
            backoff: Backoff::ConflictHint,
            noop_on_election: true,
            ..Self::conformance_off()
        }
    }

    /// The node's defaults with every node-only feature switched off: the core then emits
    /// exactly the messages PROTOCOL.md specifies.
    pub fn conformance_off() -> Self {
        Params {
            max_bytes_per_append: None,
            max_inflight_appends: None,
            max_sessions: None,
            ..Self::default()
        }
    }

    /// True when the given bug is switched on (always false without the `mutants` feature).
    #[inline]
    pub(crate) fn has_bug(&self, bug: Bug) -> bool {
        #[cfg(feature = "mutants")]
        {
            self.bug == Some(bug)
        }
        #[cfg(not(feature = "mutants"))]
        {
            let _ = bug;
            false
        }
    }
}

impl Default for Params {
    /// The node's defaults (PROTOCOL.md "node default" column), pipelining on.
    fn default() -> Self {
        Params {
            pre_vote: true,
            check_quorum: true,
            max_entries_per_append: 64,
            backoff: Backoff::ConflictHint,
            noop_on_election: true,
            max_bytes_per_append: Some(1 << 20),
            max_inflight_appends: Some(8),
            max_sessions: Some(DEFAULT_MAX_SESSIONS),
            #[cfg(feature = "mutants")]
            bug: None,
        }
    }
}
