//! Snapshots: the state machine as of a log index, which replaces the log up to that index.

use serde::{Deserialize, Serialize};

use super::message::{Index, Term};
use super::state_machine::KvStateMachine;

/// The key-value map and session table after applying `1..=last_included_index`.
/// `last_included_index = 0` is the empty snapshot every server starts with. Cloning is cheap:
/// the state machine's maps are persistent (`im`), so a snapshot shares them with the live
/// state until either changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub last_included_index: Index,
    pub last_included_term: Term,
    pub state: KvStateMachine,
}
