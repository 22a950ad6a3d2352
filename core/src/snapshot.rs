//! Snapshots: the state machine as of a log index, which replaces the log up to that index.

use serde::{Deserialize, Serialize};

use super::ids::{Index, Term};
use super::membership::Membership;
use super::state_machine::StateMachine;

/// The state machine after applying `1..=last_included_index`.
/// `last_included_index = 0` is the empty snapshot every server starts with. Cloning costs what
/// cloning the machine costs: the key-value store's maps are persistent (`im`), so its snapshot
/// shares them with the live state until either changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Snapshot<S: StateMachine> {
    pub last_included_index: Index,
    pub last_included_term: Term,
    pub state: S,
    /// The configuration in effect at `last_included_index` when a configuration entry is
    /// among the entries the snapshot replaced (`None`: the cluster's initial one).
    #[serde(default)]
    pub membership: Option<Membership>,
}
