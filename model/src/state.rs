//! The whole system's state: servers, the network, clients, the client history, and the ghost
//! records that the history-dependent properties need.

use crate::config::Config;
use crate::kv_spec::KvSpec;
use crate::server::Server;
use crate::types::*;
use stateright::semantics::LinearizabilityTester;
use std::fmt;

/// A client: at most one operation in flight, retried with the same `(client_id, seq)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Client {
    /// Its session id (0: it has none yet and registers first).
    pub session: ClientId,
    /// Its session expired: the operation in hand has an unknown outcome and the client stops.
    pub expired: bool,
    /// Operations completed; the one in hand has `seq = done + 1`.
    pub done: u8,
    /// Sends of the operation in hand (0: not yet invoked).
    pub attempts: u8,
    /// The first send of the operation in hand landed on a server that was not the leader.
    pub missed: bool,
}

pub type History = LinearizabilityTester<ClientId, KvSpec>;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct State {
    pub servers: Vec<Server>,
    /// Server-to-server messages in flight, a set kept sorted (see `insert_in_flight`).
    pub network: Vec<Envelope>,
    /// Answers in flight to clients, a set kept sorted.
    pub responses: Vec<ClientResponse>,
    pub clients: Vec<Client>,
    /// Shared between states until a client step changes it: most steps never touch it.
    pub history: std::sync::Arc<History>,
    pub restarts: u8,
    /// The operator's administrative operations taken so far (`Config::admin_ops`).
    pub admin_done: u8,
    /// Ghost: `elected[t]` has bit `i` set when server `i` became leader in term `t`.
    pub elected: Vec<u8>,
    /// Ghost: the committed log as first seen by any server, each entry with the term of the
    /// server that first committed it.
    pub committed: Vec<(Entry, Term)>,
    /// Ghost: for each committed index, the voters (a mask) of the membership it was
    /// committed under: the majority that must hold it is a majority of these.
    pub committed_by: Vec<u8>,
    /// Ghost: properties checked on transitions that a step broke (`properties::broken`).
    pub broken: u8,
    /// Ghost: witness events of the step that led here (`server::event`), not carried on.
    pub events: u32,
}

/// Puts a message in flight. A message identical to one already in flight is absorbed: the
/// network holds a set, not a multiset. On the unordered network this is the lossy multiset
/// network losing the second copy at once (a behaviour it has anyway), and it is what keeps
/// repeated heartbeats from growing the state without bound; the duplicating network
/// delivers a message any number of times, which covers the copies absorbed here.
pub fn insert_in_flight<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(at) = v.binary_search(&x) {
        v.insert(at, x);
    }
}

impl State {
    pub fn new(cfg: &Config) -> Self {
        State {
            servers: (0..cfg.servers).map(|_| Server::new(cfg)).collect(),
            network: Vec::new(),
            responses: Vec::new(),
            clients: (0..cfg.client_ops.len() as ClientId)
                .map(|c| Client {
                    session: if cfg.registers(c) {
                        0
                    } else {
                        PRE_REGISTERED + c
                    },
                    ..Client::default()
                })
                .collect(),
            history: std::sync::Arc::new(History::new(KvSpec::default())),
            restarts: 0,
            admin_done: 0,
            elected: vec![0; cfg.max_term as usize + 1],
            committed: Vec::new(),
            committed_by: Vec::new(),
            broken: 0,
            events: 0,
        }
    }
}

fn write_opt_id(f: &mut fmt::Formatter, id: Option<Id>) -> fmt::Result {
    match id {
        Some(i) => write!(f, "s{i}"),
        None => write!(f, "-"),
    }
}

fn write_mask(f: &mut fmt::Formatter, mask: u8) -> fmt::Result {
    write!(f, "{{")?;
    let mut first = true;
    for i in 0..8 {
        if mask & (1 << i) != 0 {
            write!(f, "{}s{i}", if first { "" } else { "," })?;
            first = false;
        }
    }
    write!(f, "}}")
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:?} t{} vote=", self.role, self.current_term)?;
        write_opt_id(f, self.voted_for)?;
        write!(f, " leader=")?;
        write_opt_id(f, self.leader_id)?;
        if self.snapshot.last_included_index > 0 {
            write!(f, " {:?}", self.snapshot)?;
        }
        write!(f, " commit={} log={:?}", self.commit_index, self.log)?;
        if self.votes != 0 {
            write!(f, " votes=")?;
            write_mask(f, self.votes)?;
        }
        if !self.next_index.is_empty() {
            write!(
                f,
                " next={:?} match={:?}",
                self.next_index, self.match_index
            )?;
        }
        if self.inflight.iter().any(|l| !l.is_empty()) {
            write!(f, " inflight={:?}", self.inflight)?;
        }
        if self.stalled != 0 {
            write!(f, " stalled=")?;
            write_mask(f, self.stalled)?;
        }
        if self.recent_active != 0 {
            write!(f, " active=")?;
            write_mask(f, self.recent_active)?;
        }
        if self.kv.iter().any(Option::is_some) {
            let pairs: Vec<String> = (self.kv.iter().enumerate())
                .filter_map(|(k, v)| v.map(|v| format!("k{k}={v}")))
                .collect();
            write!(f, " kv=[{}]", pairs.join(" "))?;
        }
        if !self.sessions.is_empty() {
            write!(f, " sessions={:?}", self.sessions)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "session={} done={} attempts={}{}{}",
            self.session,
            self.done,
            self.attempts,
            if self.missed { " missed-leader" } else { "" },
            if self.expired { " EXPIRED" } else { "" }
        )
    }
}

/// One line per server, message and client: what a person follows in the explorer.
impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, s) in self.servers.iter().enumerate() {
            writeln!(f, "s{i}: {s:?}")?;
        }
        for e in &self.network {
            writeln!(f, "net: {e:?}")?;
        }
        for r in &self.responses {
            // Apart from `net:`: the in-flight bounds count server messages only.
            writeln!(f, "answer: {r:?}")?;
        }
        for (c, cl) in self.clients.iter().enumerate() {
            writeln!(f, "c{c}: {cl:?}")?;
        }
        writeln!(f, "restarts: {}", self.restarts)?;
        if self.admin_done > 0 {
            writeln!(f, "admin: {} operations taken", self.admin_done)?;
        }
        match self.history.serialized_history() {
            Some(order) => {
                write!(
                    f,
                    "history: {} ops invoked, linearizable as [",
                    self.history.len()
                )?;
                for (i, (op, ret)) in order.iter().enumerate() {
                    write!(f, "{}{op:?}→{ret:?}", if i == 0 { "" } else { ", " })?;
                }
                write!(f, "]")
            }
            None => write!(f, "history: NOT LINEARIZABLE {:?}", self.history),
        }
    }
}

/// Bits of `State::broken`: properties of transitions, checked as the step is taken.
pub mod broken {
    pub const TERM_MONOTONIC: u8 = 1 << 0;
    pub const LEADER_APPEND_ONLY: u8 = 1 << 1;
    pub const COMMIT_MONOTONIC: u8 = 1 << 2;
    pub const MATCH_MONOTONIC: u8 = 1 << 3;
    pub const TERM_RULE: u8 = 1 << 4;
}
