//! The replicated key-value state machine and its per-client session table.
//!
//! Session expiry is deterministic: it is driven by the log, never by a clock. Every session
//! remembers the log index at which it was last applied. With `Params::max_sessions = Some(n)`,
//! applying a command of a client that has no session while `n` sessions exist first evicts the
//! session with the lowest such index (least recently used by log index). A client whose
//! session was evicted loses its dedup guarantee for a retry still in flight, so `n` must exceed
//! the number of clients that can have a request outstanding at once. `None` (the model's
//! setting) keeps every session.

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use im::OrdMap;
use serde::{Deserialize, Serialize};

use super::log::{Command, Op, Text};
use super::message::{Answer, ClientId, Index};

/// `sessions[client_id]`: the last applied seq and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    pub last_seq: u64,
    pub answer: Answer,
    /// Log index at which `last_seq` was applied (drives LRU eviction).
    pub last_index: Index,
}

/// What applying one entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A `Noop`.
    Noop,
    /// A client command that ran (`duplicate == false`) or was found in the session table.
    /// `answer` is `None` for a stale duplicate (seq below the session's last seq).
    Client {
        client_id: ClientId,
        seq: u64,
        answer: Option<Answer>,
        duplicate: bool,
    },
}

/// The key-value map. Hashed rather than ordered (the node serves no range reads): a lookup
/// hashes the key once, where a B-tree of 100 000 keys compared it with about twenty others
/// (18 % of the throughput of `raft-node bench`, BENCHMARKS.md section 7). The hasher is std's
/// SipHash with its fixed keys, so a build makes the same map from the same commands on every
/// replica and in every replay (no per-process random seed).
pub type Kv = im::HashMap<Text, Text, BuildHasherDefault<DefaultHasher>>;

/// The key-value map and the session table. The maps are persistent (`im`): a snapshot is a
/// clone that shares them, taken in constant time however large the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvStateMachine {
    kv: Kv,
    sessions: OrdMap<ClientId, Session>,
}

impl KvStateMachine {
    /// A state machine holding exactly these maps (conformance builds the model's snapshots
    /// with it).
    pub fn from_parts(kv: Kv, sessions: OrdMap<ClientId, Session>) -> Self {
        KvStateMachine { kv, sessions }
    }
    /// The key-value map.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }
    /// The session table.
    pub fn sessions(&self) -> &OrdMap<ClientId, Session> {
        &self.sessions
    }
    /// A key's value.
    pub fn get(&self, key: &str) -> Option<&Text> {
        self.kv.get(key)
    }
    /// Session of a client.
    pub fn session(&self, client_id: ClientId) -> Option<&Session> {
        self.sessions.get(&client_id)
    }

    /// Apply the entry at `index`. `dedup == false` skips the session check (a mutant).
    pub fn apply(
        &mut self,
        index: Index,
        command: &Command,
        max_sessions: Option<usize>,
        dedup: bool,
    ) -> Applied {
        let (client_id, seq, op) = match command {
            Command::Noop => return Applied::Noop,
            Command::Client { client_id, seq, op } => (*client_id, *seq, op),
        };
        if dedup {
            if let Some(s) = self.sessions.get(&client_id) {
                if seq <= s.last_seq {
                    let answer = (seq == s.last_seq).then(|| s.answer.clone());
                    return Applied::Client {
                        client_id,
                        seq,
                        answer,
                        duplicate: true,
                    };
                }
            }
        }
        let answer = self.run(op);
        // Updating in place is the common case (a known client) and skips the map's insert path.
        if let Some(s) = self.sessions.get_mut(&client_id) {
            s.last_seq = seq;
            s.answer = answer.clone();
            s.last_index = index;
        } else {
            if let Some(max) = max_sessions {
                if self.sessions.len() >= max.max(1) {
                    let victim = self
                        .sessions
                        .iter()
                        .min_by_key(|(id, s)| (s.last_index, **id))
                        .map(|(id, _)| *id);
                    if let Some(v) = victim {
                        self.sessions.remove(&v);
                    }
                }
            }
            self.sessions.insert(
                client_id,
                Session {
                    last_seq: seq,
                    answer: answer.clone(),
                    last_index: index,
                },
            );
        }
        Applied::Client {
            client_id,
            seq,
            answer: Some(answer),
            duplicate: false,
        }
    }

    fn run(&mut self, op: &Op) -> Answer {
        match op {
            Op::Put { key, value } => {
                self.set(key, value);
                Answer::Ok
            }
            Op::Get { key } => Answer::Value(self.kv.get(key).cloned()),
            Op::Delete { key } => {
                self.kv.remove(key);
                Answer::Ok
            }
            Op::Cas { key, expected, new } => {
                let previous = self.kv.get(key).cloned();
                let swapped = previous == *expected;
                if swapped {
                    match new {
                        Some(v) => self.set(key, v),
                        None => {
                            self.kv.remove(key);
                        }
                    }
                }
                Answer::Cas { swapped, previous }
            }
        }
    }

    /// `kv[key] = value`, in place when the key exists.
    fn set(&mut self, key: &Text, value: &Text) {
        match self.kv.get_mut(key) {
            Some(v) => *v = value.clone(),
            None => {
                self.kv.insert(key.clone(), value.clone());
            }
        }
    }
}
