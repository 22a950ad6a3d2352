//! A leader's view of one follower: `next_index`, `match_index` and, with pipelining, the
//! AppendEntries still in flight.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ids::Index;
use super::params::Backoff;

/// Replication progress of one peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Progress {
    pub next_index: Index,
    pub match_index: Index,
    /// Pipelining only: last index of each AppendEntries with entries still unacknowledged.
    inflight: VecDeque<Index>,
    /// Pipelining only: a heartbeat found appends in flight, and nothing acknowledged new
    /// entries since.
    stalled: bool,
}

impl Progress {
    /// A fresh progress for a new leader with the given last log index.
    pub fn new(last_log_index: Index) -> Self {
        Progress {
            next_index: last_log_index + 1,
            match_index: 0,
            inflight: VecDeque::new(),
            stalled: false,
        }
    }

    /// Number of AppendEntries with entries in flight (pipelining only).
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// The last index of each AppendEntries with entries in flight, oldest first (pipelining
    /// only).
    pub fn inflight_lasts(&self) -> impl Iterator<Item = Index> + '_ {
        self.inflight.iter().copied()
    }

    /// A heartbeat found appends in flight and nothing new was acknowledged since (pipelining
    /// only): the next heartbeat falls back to `match_index + 1`.
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// Pipelining: record a sent append ending at `last` and move `next_index` optimistically.
    pub(crate) fn sent_optimistic(&mut self, last: Index) {
        self.inflight.push_back(last);
        self.next_index = self.next_index.max(last + 1);
    }

    /// A success acknowledging `last_index`.
    pub(crate) fn on_success(&mut self, last_index: Index) {
        if last_index > self.match_index {
            self.stalled = false;
        }
        self.match_index = self.match_index.max(last_index);
        self.next_index = self.next_index.max(last_index + 1);
        while self.inflight.front().is_some_and(|&l| l <= last_index) {
            self.inflight.pop_front();
        }
    }

    /// A rejection carrying the follower's hint `last_index`.
    pub(crate) fn on_reject(&mut self, last_index: Index, backoff: Backoff) {
        let floor = self.match_index + 1;
        self.next_index = match backoff {
            Backoff::ConflictHint => {
                floor.max(self.next_index.saturating_sub(1).min(last_index + 1))
            }
            Backoff::Decrement => floor.max(self.next_index.saturating_sub(1)),
        };
        self.inflight.clear();
        self.stalled = false;
    }

    /// Pipelining, at each heartbeat: appends in flight over two heartbeats with no new entry
    /// acknowledged were lost (a follower that was down or cut off), and the optimistic
    /// `next_index` points past what the follower holds, so only a rejection could ever bring
    /// it back, and empty heartbeats at `match_index` are never rejected. Fall back to
    /// `next_index = match_index + 1`, which the next append starts from.
    pub(crate) fn on_heartbeat(&mut self) {
        if self.inflight.is_empty() {
            self.stalled = false;
        } else if self.stalled {
            self.inflight.clear();
            self.next_index = self.match_index + 1;
            self.stalled = false;
        } else {
            self.stalled = true;
        }
    }
}
