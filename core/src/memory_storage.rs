//! Storage in memory: the reference implementation of the `Ready` persistence contract.

use crate::{
    Entry, HardState, KvStateMachine, Log, Membership, NodeId, Params, RaftCore, Ready, Snapshot,
    StateMachine,
};

/// What a server has made durable, kept in memory: the [`Ready`] contract applied exactly as
/// the runtime applies it to disk. The simulator and the conformance suite keep one per server,
/// and an embedder can start from it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoryStorage<S: StateMachine = KvStateMachine> {
    pub hard_state: HardState,
    pub snapshot: Snapshot<S>,
    /// The entries after the snapshot.
    pub log: Vec<Entry<S::Command>>,
}

impl<S: StateMachine> Default for MemoryStorage<S> {
    fn default() -> Self {
        MemoryStorage {
            hard_state: HardState::default(),
            snapshot: Snapshot::default(),
            log: Vec::new(),
        }
    }
}

impl<S: StateMachine> MemoryStorage<S> {
    /// Make a `Ready`'s snapshot, hard state and log write durable, in the order the runtime
    /// does: the snapshot first (it drops the entries it covers), then the log write. `core`
    /// produced the `Ready` and was not stepped since.
    pub fn persist(&mut self, core: &RaftCore<S>, ready: &Ready<S>) {
        if let Some(index) = ready.snapshot {
            let covered = index - self.snapshot.last_included_index;
            self.log.drain(..(covered as usize).min(self.log.len()));
            self.snapshot = core.snapshot().clone();
        }
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
        if let Some(w) = ready.log_write {
            let first = self.snapshot.last_included_index + 1;
            self.log
                .truncate(w.from_index.saturating_sub(first) as usize);
            self.log
                .extend_from_slice(core.log().slice(w.from_index, w.last_index));
        }
    }

    /// The core a restart rebuilds from this storage, in a cluster that started as `initial`.
    pub fn restore(&self, id: NodeId, initial: &Membership, params: Params) -> RaftCore<S> {
        let snap = self.snapshot.clone();
        let log = Log::after_snapshot(
            snap.last_included_index,
            snap.last_included_term,
            self.log.clone(),
        );
        RaftCore::restore(id, initial.clone(), params, self.hard_state, snap, log)
    }
}
