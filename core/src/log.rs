//! The replicated log: entries and index arithmetic (indexes start at 1).

use serde::{Deserialize, Serialize};

use super::ids::{Index, Term};

/// A log entry `{ term, command }`. `C` is the state machine's command type
/// ([`StateMachine::Command`](crate::StateMachine::Command)); the key-value store's by default.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry<C> {
    pub term: Term,
    pub command: C,
}

/// The log, 1-indexed. Entries up to `snapshot_index` have been compacted into a snapshot;
/// the log holds `snapshot_index + 1 ..= last_index` and remembers the term at
/// `snapshot_index` so that an AppendEntries right after the snapshot can still be checked.
/// `term_at(0) == 0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Log<C> {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: Vec<Entry<C>>,
}

// A derived `Default` would ask for `C: Default`, which a command type need not be.
impl<C> Default for Log<C> {
    fn default() -> Self {
        Log::from_entries(Vec::new())
    }
}

impl<C> Log<C> {
    /// A log holding `entries` at indexes `1..=entries.len()`.
    pub fn from_entries(entries: Vec<Entry<C>>) -> Self {
        Log {
            snapshot_index: 0,
            snapshot_term: 0,
            entries,
        }
    }
    /// A log after a snapshot at `(snapshot_index, snapshot_term)`, holding `entries` at
    /// `snapshot_index + 1 ..`.
    pub fn after_snapshot(
        snapshot_index: Index,
        snapshot_term: Term,
        entries: Vec<Entry<C>>,
    ) -> Self {
        Log {
            snapshot_index,
            snapshot_term,
            entries,
        }
    }
    /// The last compacted index (0: nothing compacted).
    #[inline]
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }
    /// The term of the entry at `snapshot_index`.
    #[inline]
    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }
    /// The first index the log still holds (`last_index + 1` when it holds none).
    #[inline]
    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }
    /// `last_log_index`.
    #[inline]
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }
    /// `last_log_term`: term of the last entry, or of the snapshot.
    #[inline]
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }
    /// Term of the entry at `index` (the snapshot's term at `snapshot_index`); `None` past the
    /// end or below the snapshot.
    #[inline]
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            Some(self.snapshot_term)
        } else {
            self.get(index).map(|e| e.term)
        }
    }
    /// The entry at `index`, if the log holds it.
    #[inline]
    pub fn get(&self, index: Index) -> Option<&Entry<C>> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(offset as usize)
    }
    /// The entries the log holds, `first_index()` first.
    #[inline]
    pub fn entries(&self) -> &[Entry<C>] {
        &self.entries
    }
    /// Entries `from..=to` (inclusive; empty if `from > to`; `from` must not be compacted).
    #[inline]
    pub fn slice(&self, from: Index, to: Index) -> &[Entry<C>] {
        if from > to || from == 0 {
            return &[];
        }
        let base = self.first_index();
        assert!(
            from >= base,
            "slice from {from} below the snapshot at {}",
            self.snapshot_index
        );
        &self.entries[(from - base) as usize..(to + 1 - base) as usize]
    }
    /// Append one entry; returns its index.
    #[inline]
    pub fn push(&mut self, entry: Entry<C>) -> Index {
        self.entries.push(entry);
        self.last_index()
    }
    /// Remove every entry at index `>= from` (never a compacted one).
    #[inline]
    pub fn truncate_from(&mut self, from: Index) {
        let keep = from.max(self.first_index()) - self.first_index();
        self.entries.truncate(keep as usize);
    }
    /// Compaction: drop the entries up to `index` (held, and at most `last_index`), which a
    /// snapshot now covers.
    pub fn compact_to(&mut self, index: Index) {
        if index <= self.snapshot_index {
            return;
        }
        let term = self.term_at(index).expect("compact within the log");
        self.entries.drain(..(index - self.snapshot_index) as usize);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }
    /// An installed snapshot at `(index, term)`: keep the entries after it when the log holds
    /// a matching entry at `index`, otherwise drop them all. Returns true when entries were
    /// dropped that were not covered by the snapshot.
    pub fn install_snapshot(&mut self, index: Index, term: Term) -> bool {
        if index >= self.snapshot_index && self.term_at(index) == Some(term) {
            self.compact_to(index);
            return false;
        }
        self.entries.clear();
        self.snapshot_index = index;
        self.snapshot_term = term;
        true
    }
    /// `(last_log_term, last_log_index) >= (term, index)` seen from the other side: true when a
    /// candidate with this last term and index is at least as up to date as this log.
    #[inline]
    pub fn candidate_up_to_date(&self, last_term: Term, last_index: Index) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}
