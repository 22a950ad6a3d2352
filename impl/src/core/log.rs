//! The replicated log: entries, commands and index arithmetic (indexes start at 1).

use serde::{Deserialize, Serialize};

use super::message::{ClientId, Index, Term};

/// A key-value operation. The model uses `Put` and `Get`; the node also has `Delete` and `Cas`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Set `key` to `value`; answers `Answer::Ok`.
    Put { key: String, value: String },
    /// Read `key` through the log; answers `Answer::Value`.
    Get { key: String },
    /// Remove `key`; answers `Answer::Ok`.
    Delete { key: String },
    /// Set `key` to `new` iff its value is `expected` (`None`: absent / delete);
    /// answers `Answer::Cas`.
    Cas {
        key: String,
        expected: Option<String>,
        new: Option<String>,
    },
}

impl Op {
    /// The key the op touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } | Op::Cas { key, .. } => key,
        }
    }
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// The empty entry a new leader appends (`noop_on_election`).
    Noop,
    /// A client command.
    Client {
        client_id: ClientId,
        seq: u64,
        op: Op,
    },
}

/// A log entry `{ term, command }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub command: Command,
}

impl Entry {
    /// Approximate encoded size, used by `max_bytes_per_append`.
    pub fn approx_size(&self) -> usize {
        16 + match &self.command {
            Command::Noop => 0,
            Command::Client { op, .. } => {
                16 + match op {
                    Op::Put { key, value } => key.len() + value.len(),
                    Op::Get { key } | Op::Delete { key } => key.len(),
                    Op::Cas { key, expected, new } => {
                        key.len()
                            + expected.as_ref().map_or(0, String::len)
                            + new.as_ref().map_or(0, String::len)
                    }
                }
            }
        }
    }
}

/// The log, 1-indexed. `term_at(0) == 0`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Log {
    entries: Vec<Entry>,
}

impl Log {
    /// A log holding `entries` at indexes `1..=entries.len()`.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        Log { entries }
    }
    /// `last_log_index`: the length.
    #[inline]
    pub fn last_index(&self) -> Index {
        self.entries.len() as Index
    }
    /// `last_log_term`: term of the last entry, or 0.
    #[inline]
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(0, |e| e.term)
    }
    /// Term of the entry at `index` (0 for index 0); `None` past the end.
    #[inline]
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            Some(0)
        } else {
            self.entries.get(index as usize - 1).map(|e| e.term)
        }
    }
    /// The entry at `index` (1-based).
    #[inline]
    pub fn get(&self, index: Index) -> Option<&Entry> {
        if index == 0 {
            None
        } else {
            self.entries.get(index as usize - 1)
        }
    }
    /// All entries, index 1 first.
    #[inline]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    /// Entries `from..=to` (1-based, inclusive; empty if `from > to`).
    #[inline]
    pub fn slice(&self, from: Index, to: Index) -> &[Entry] {
        if from > to || from == 0 {
            return &[];
        }
        &self.entries[from as usize - 1..to as usize]
    }
    /// Append one entry; returns its index.
    #[inline]
    pub fn push(&mut self, entry: Entry) -> Index {
        self.entries.push(entry);
        self.last_index()
    }
    /// Remove every entry at index `>= from`.
    #[inline]
    pub fn truncate_from(&mut self, from: Index) {
        self.entries.truncate(from.saturating_sub(1) as usize);
    }
    /// `(last_log_term, last_log_index) >= (term, index)` seen from the other side: true when a
    /// candidate with this last term and index is at least as up to date as this log.
    #[inline]
    pub fn candidate_up_to_date(&self, last_term: Term, last_index: Index) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}
