//! The replicated key-value state machine and its per-client session table.
//!
//! Sessions follow the Raft thesis §6.3. A client opens one with a `Register` entry, and the
//! entry's log index is its client id, so ids are never reused. A command applies only through
//! its session: a client whose session is gone (evicted, or an id never registered) gets
//! `SessionExpired` and nothing is applied, so a retry can never be applied twice.
//!
//! Eviction is deterministic, driven by the log and never by a clock: with
//! `Params::max_sessions = Some(n)`, applying a `Register` while `n` sessions exist first evicts
//! the session whose last command was applied at the lowest log index (least recently used).
//! Only a registration evicts, so a busy cluster of registered clients evicts nobody; a client
//! loses its session only after `n` other registrations or sessions were more recent than its
//! own last request. Writes without a session (`NO_SESSION`) never touch the table.

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use im::OrdMap;
use serde::{Deserialize, Serialize};

use super::log::{Command, Op, Text};
use super::message::{Answer, ClientId, Index, NO_SESSION};

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
    /// A `Register`: the session `client_id` (the entry's index) is open.
    Registered { nonce: u64, client_id: ClientId },
    /// A client command that ran (`duplicate == false`) or was found in the session table.
    /// `answer` is `None` for a stale duplicate (seq below the session's last seq), and
    /// `Answer::SessionExpired` for a command whose client has no session.
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

    /// Apply the entry at `index`. `dedup == false` skips the session check and
    /// `reopen_expired` runs a command whose session is gone under a new one (both mutants).
    pub fn apply(
        &mut self,
        index: Index,
        command: &Command,
        max_sessions: Option<usize>,
        dedup: bool,
        reopen_expired: bool,
    ) -> Applied {
        let (client_id, seq, op) = match command {
            Command::Noop => return Applied::Noop,
            Command::Register { nonce } => {
                self.register(index, max_sessions);
                return Applied::Registered {
                    nonce: *nonce,
                    client_id: index,
                };
            }
            Command::Client { client_id, seq, op } => (*client_id, *seq, op),
        };
        let client = |answer, duplicate| Applied::Client {
            client_id,
            seq,
            answer,
            duplicate,
        };
        if client_id == NO_SESSION {
            return client(Some(self.run(op)), false);
        }
        if reopen_expired && !self.sessions.contains_key(&client_id) {
            self.sessions.insert(
                client_id,
                Session {
                    last_seq: 0,
                    answer: Answer::Ok,
                    last_index: index,
                },
            );
        }
        let Some(s) = self.sessions.get(&client_id) else {
            return client(Some(Answer::SessionExpired), false);
        };
        if dedup && seq <= s.last_seq {
            let answer = (seq == s.last_seq).then(|| s.answer.clone());
            return client(answer, true);
        }
        let answer = self.run(op);
        let s = self.sessions.get_mut(&client_id).expect("looked up above");
        s.last_seq = seq;
        s.answer = answer.clone();
        s.last_index = index;
        client(Some(answer), false)
    }

    /// Opens the session `index`, first evicting the least recently used one if the table is
    /// full.
    fn register(&mut self, index: Index, max_sessions: Option<usize>) {
        if let Some(max) = max_sessions {
            while self.sessions.len() >= max.max(1) {
                let victim = self
                    .sessions
                    .iter()
                    .min_by_key(|(id, s)| (s.last_index, **id))
                    .map(|(id, _)| *id)
                    .expect("a full table is not empty");
                self.sessions.remove(&victim);
            }
        }
        self.sessions.insert(
            index,
            Session {
                last_seq: 0,
                answer: Answer::Ok,
                last_index: index,
            },
        );
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
