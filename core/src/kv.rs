//! The key-value store: the state machine `raft-node` replicates, with its per-client session
//! table, its commands, requests and answers. It is one implementation of [`StateMachine`]; the
//! protocol (`lib.rs`) knows nothing of keys, values or sessions beyond that trait.
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
//!
//! Through the trait: `propose` answers a retry from the session table at the leader (the last
//! command's answer, `Stale`, or `SessionExpired`) instead of appending it again; `apply` runs
//! the command through the session table and makes the leader's `ClientReply`; `query` serves a
//! ReadIndex read from the map. The mutants `Bug::NoDedup` and `Bug::ReopenExpiredSession`
//! (feature `mutants`) act here, in `propose` and `apply`.

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use im::OrdMap;
use serde::{Deserialize, Serialize};

use super::ids::{Index, NodeId};
use super::log::Log;
use super::membership::Membership;
use super::params::{Bug, Params};
use super::ready::{HardState, Input};
use super::snapshot::Snapshot;
use super::state_machine::StateMachine;
use super::RaftCore;

/// A key or a value. Immutable and shared: the log, every AppendEntries that carries the entry,
/// the state machine and the client's answer all hold the same allocation, so replicating or
/// applying a command never copies its payload.
pub type Text = Arc<str>;

/// A key-value operation. The model uses `Put` and `Get`; the node also has `Delete` and `Cas`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Set `key` to `value`; answers `Answer::Ok`.
    Put { key: Text, value: Text },
    /// Read `key` through the log; answers `Answer::Value`.
    Get { key: Text },
    /// Remove `key`; answers `Answer::Ok`.
    Delete { key: Text },
    /// Set `key` to `new` iff its value is `expected` (`None`: absent / delete);
    /// answers `Answer::Cas`.
    Cas {
        key: Text,
        expected: Option<Text>,
        new: Option<Text>,
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
    /// A client command. `client_id` is the index of the client's `Register` entry, or
    /// `NO_SESSION` for a write that takes no session (applied once per entry, never retried).
    Client {
        client_id: ClientId,
        seq: u64,
        op: Op,
    },
    /// Opens a client session whose id is this entry's index (Raft thesis §6.3), so an id is
    /// never reused and a command of an evicted session can be told from a new client's.
    /// `nonce`, chosen by the requester, only routes the answer back to it.
    Register { nonce: u64 },
    /// A configuration entry: the cluster's membership from this index on (the core tracks
    /// it; the store applies it as a no-op). Last among the variants, so the encodings of the
    /// others stay as they were.
    Membership(Membership),
}

/// A client id: the index of the client's `Register` entry (so never 0).
pub type ClientId = u64;
/// The `client_id` of a write that takes no session: it is applied once per log entry and is
/// not safe to retry. Its `seq` is a nonce that only routes the answer.
pub const NO_SESSION: ClientId = 0;

/// A client command: `(client_id, seq)` identifies it; a retry carries the same pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRequest {
    pub client_id: ClientId,
    pub seq: u64,
    pub op: Op,
}

/// What a key-value client submits: the store's [`StateMachine::Request`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvRequest {
    /// A command, appended as `Command::Client` unless the session table answers it.
    Command(ClientRequest),
    /// A client asks for a session (`Command::Register { nonce }`).
    Register { nonce: u64 },
}

/// A linearizable read served by ReadIndex (not through the log).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadRequest {
    pub client_id: ClientId,
    /// Chosen by the client; echoed in the answer.
    pub read_id: u64,
    pub key: Text,
}

/// The answer of an applied op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Answer {
    /// `Put` and `Delete`.
    Ok,
    /// `Get`: the value, or `None`.
    Value(Option<Text>),
    /// `Cas`: whether it swapped, and the value before the op.
    Cas {
        swapped: bool,
        previous: Option<Text>,
    },
    /// The command's client has no session: it was evicted (or the id was never registered).
    /// Nothing was applied; the command may or may not have taken effect under an earlier
    /// attempt, and the client must register again before it sends anything else.
    SessionExpired,
}

/// `ClientResponse { client_id, seq, answer }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientResponse {
    pub client_id: ClientId,
    pub seq: u64,
    pub answer: Answer,
}

/// What a server sends back to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientReply {
    /// The answer of an applied command.
    Response(ClientResponse),
    /// `NotLeader { hint }` for a command or a registration, with the `(client_id, seq)` (or
    /// `(NO_SESSION, nonce)`) of the request it answers so the runtime can route it.
    NotLeader {
        client_id: ClientId,
        seq: u64,
        hint: Option<NodeId>,
    },
    /// The answer of a ReadIndex read.
    Read {
        client_id: ClientId,
        read_id: u64,
        value: Option<Text>,
    },
    /// A `Register` entry was applied: the session `client_id` is open. Routed by `nonce`.
    Registered { nonce: u64, client_id: ClientId },
    /// A request whose `seq` is below its session's last applied seq: its answer is no longer
    /// kept, and it is never applied. Answered at once rather than left to time out.
    Stale {
        client_id: ClientId,
        seq: u64,
        last_seq: u64,
    },
    /// `NotLeader { hint }` for a ReadIndex read: a server that is not the leader, or a leader
    /// that stepped down before the read was safe to serve. Kept apart from `NotLeader` so
    /// read ids and command sequence numbers never share a namespace.
    ReadNotLeader {
        client_id: ClientId,
        read_id: u64,
        hint: Option<NodeId>,
    },
}

impl ClientReply {
    /// The client the reply is for.
    pub fn client_id(&self) -> ClientId {
        match self {
            ClientReply::Response(r) => r.client_id,
            ClientReply::NotLeader { client_id, .. }
            | ClientReply::Read { client_id, .. }
            | ClientReply::Stale { client_id, .. }
            | ClientReply::ReadNotLeader { client_id, .. } => *client_id,
            ClientReply::Registered { .. } => NO_SESSION,
        }
    }
}

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
    pub fn apply_command(
        &mut self,
        index: Index,
        command: &Command,
        max_sessions: Option<usize>,
        dedup: bool,
        reopen_expired: bool,
    ) -> Applied {
        let (client_id, seq, op) = match command {
            Command::Noop | Command::Membership(_) => return Applied::Noop,
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

impl StateMachine for KvStateMachine {
    type Command = Command;
    type Request = KvRequest;
    type Query = ReadRequest;
    type Reply = ClientReply;

    fn noop() -> Command {
        Command::Noop
    }

    fn propose(
        &self,
        request: KvRequest,
        last_applied: Index,
        params: &Params,
    ) -> Result<Command, ClientReply> {
        match request {
            KvRequest::Register { nonce } => Ok(Command::Register { nonce }),
            KvRequest::Command(req) => {
                if req.client_id != NO_SESSION && !params.has_bug(Bug::NoDedup) {
                    if let Some(reply) = self.answer_from_sessions(&req, last_applied, params) {
                        return Err(reply);
                    }
                }
                Ok(Command::Client {
                    client_id: req.client_id,
                    seq: req.seq,
                    op: req.op,
                })
            }
        }
    }

    fn apply(&mut self, index: Index, command: &Command, params: &Params) -> Option<ClientReply> {
        let applied = self.apply_command(
            index,
            command,
            params.max_sessions,
            !params.has_bug(Bug::NoDedup),
            params.has_bug(Bug::ReopenExpiredSession),
        );
        self.reply_of(applied)
    }

    fn query(&self, query: ReadRequest) -> ClientReply {
        ClientReply::Read {
            client_id: query.client_id,
            read_id: query.read_id,
            value: self.get(&query.key).cloned(),
        }
    }

    fn not_leader(request: KvRequest, hint: Option<NodeId>) -> ClientReply {
        let (client_id, seq) = match request {
            KvRequest::Command(req) => (req.client_id, req.seq),
            KvRequest::Register { nonce } => (NO_SESSION, nonce),
        };
        ClientReply::NotLeader {
            client_id,
            seq,
            hint,
        }
    }

    fn membership_command(membership: Membership) -> Option<Command> {
        Some(Command::Membership(membership))
    }

    fn as_membership(command: &Command) -> Option<&Membership> {
        match command {
            Command::Membership(m) => Some(m),
            _ => None,
        }
    }

    fn query_not_leader(query: ReadRequest, hint: Option<NodeId>) -> ClientReply {
        ClientReply::ReadNotLeader {
            client_id: query.client_id,
            read_id: query.read_id,
            hint,
        }
    }

    fn command_size(command: &Command) -> usize {
        match command {
            Command::Noop | Command::Register { .. } => 0,
            Command::Membership(m) => 8 * (m.voters.len() + m.learners.len()),
            Command::Client { op, .. } => {
                16 + match op {
                    Op::Put { key, value } => key.len() + value.len(),
                    Op::Get { key } | Op::Delete { key } => key.len(),
                    Op::Cas { key, expected, new } => {
                        key.len()
                            + expected.as_ref().map_or(0, |t| t.len())
                            + new.as_ref().map_or(0, |t| t.len())
                    }
                }
            }
        }
    }
}

impl KvStateMachine {
    /// The answer a leader gives without appending, from its session table: a duplicate of
    /// the last applied command gets its answer, an older one is stale, and a session that is
    /// gone stays gone (ids are never reused, so once `last_applied` covers the `Register`
    /// entry the session can only have been evicted). `None`: append the command.
    fn answer_from_sessions(
        &self,
        req: &ClientRequest,
        last_applied: Index,
        params: &Params,
    ) -> Option<ClientReply> {
        let (client_id, seq) = (req.client_id, req.seq);
        match self.session(client_id) {
            Some(s) if s.last_seq == seq => Some(ClientReply::Response(ClientResponse {
                client_id,
                seq,
                answer: s.answer.clone(),
            })),
            Some(s) if s.last_seq > seq => Some(ClientReply::Stale {
                client_id,
                seq,
                last_seq: s.last_seq,
            }),
            None if client_id <= last_applied && !params.has_bug(Bug::ReopenExpiredSession) => {
                Some(ClientReply::Response(ClientResponse {
                    client_id,
                    seq,
                    answer: Answer::SessionExpired,
                }))
            }
            _ => None,
        }
    }

    /// What the leader tells the client about an entry it applied.
    fn reply_of(&self, applied: Applied) -> Option<ClientReply> {
        match applied {
            Applied::Noop => None,
            Applied::Registered { nonce, client_id } => {
                Some(ClientReply::Registered { nonce, client_id })
            }
            Applied::Client {
                client_id,
                seq,
                answer: Some(answer),
                ..
            } => Some(ClientReply::Response(ClientResponse {
                client_id,
                seq,
                answer,
            })),
            // A stale duplicate committed behind a newer command of its client.
            Applied::Client {
                client_id,
                seq,
                answer: None,
                ..
            } => Some(ClientReply::Stale {
                client_id,
                seq,
                last_seq: self.session(client_id).map_or(seq, |s| s.last_seq),
            }),
        }
    }
}

// The key-value store's constructors keep their names from before the state machine was a
// parameter; they are not generic because a call such as `RaftCore::new(..)` could not infer
// the machine (a default type parameter does not guide inference in expressions).
impl RaftCore<KvStateMachine> {
    /// A brand-new key-value server (empty log, term 0) in a cluster of `peers` (self may be
    /// included). Another machine: [`RaftCore::with_state_machine`].
    pub fn new(id: NodeId, peers: &[NodeId], params: Params) -> Self {
        Self::with_state_machine(id, peers, params, KvStateMachine::default())
    }

    /// A key-value server restarted from its durable state, without a snapshot: a `Follower`
    /// with `commit_index = 0`, an empty state machine and `leader_id = None`.
    pub fn from_durable(
        id: NodeId,
        peers: &[NodeId],
        params: Params,
        hard_state: HardState,
        log: Log<Command>,
    ) -> Self {
        let initial = Membership::voters(peers.iter().copied().chain([id]));
        Self::restore(id, initial, params, hard_state, Snapshot::default(), log)
    }

    /// The key-value map.
    pub fn kv(&self) -> &Kv {
        self.sm.kv()
    }
    /// `sessions`: per client, the last applied seq and its answer.
    pub fn sessions(&self) -> &im::OrdMap<ClientId, Session> {
        self.sm.sessions()
    }
}

impl Input<KvStateMachine> {
    /// A key-value client command (`Input::Client(KvRequest::Command(request))`).
    pub fn client(request: ClientRequest) -> Self {
        Input::Client(KvRequest::Command(request))
    }
    /// A key-value client asks for a session (`Input::Client(KvRequest::Register { nonce })`).
    pub fn register(nonce: u64) -> Self {
        Input::Client(KvRequest::Register { nonce })
    }
}
