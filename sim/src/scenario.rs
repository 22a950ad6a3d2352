//! A small DSL for scenario tests that read like stories.
//!
//! A [`Story`] is a cluster on a reliable network (unit delay, no loss) whose timers fire only
//! when the story says so (`timeout`, `heartbeat`) or when it lets the clock run (`run`).
//! Every step runs the safety checker; the first violation or failed expectation is kept and
//! returned by [`Story::outcome`] together with the trace (so a test can also assert that a
//! mutant is caught).
//!
//! ```
//! use raft_core::Params;
//! use raft_sim::scenario::Story;
//!
//! let mut s = Story::new(3, Params::conformance_off());
//! s.timeout(1).settle()
//!     .expect("server 1 leads", |c| c.leader() == Some(1))
//!     .register(1, 7)
//!     .put(1, 7, 1, "x", "1")
//!     .expect("x = 1 everywhere after a heartbeat", |c| c.node(1).kv().get("x").is_some());
//! s.outcome().unwrap();
//! ```
//!
//! A client is named by a small number of the story's choosing (`7` above); `register` opens
//! its session, and from then on the story's client steps and queries use that session's id
//! (the `Register` entry's index) wherever they are given the name.

use std::collections::BTreeMap;

use raft_core::driver::Timing;
use raft_core::{Answer, ClientId, ClientReply, ClientRequest, Input, NodeId, Op, Params};

use super::cluster::{Cluster, CrashPoint};
use super::network::NetConfig;

/// A scripted scenario.
pub struct Story {
    /// The cluster under test.
    pub c: Cluster,
    failure: Option<String>,
    /// Client name -> session id, once registered.
    sessions: BTreeMap<u64, ClientId>,
}

impl Story {
    /// `n` servers (ids `1..=n`) with the given parameters.
    pub fn new(n: u64, params: Params) -> Self {
        let c = Cluster::new(n, params, Timing::default(), NetConfig::reliable(), 42);
        Story {
            c,
            failure: None,
            sessions: BTreeMap::new(),
        }
    }

    /// A story with a given seed for the timers (used by `run`).
    pub fn with_seed(n: u64, params: Params, seed: u64) -> Self {
        let c = Cluster::new(n, params, Timing::default(), NetConfig::reliable(), seed);
        Story {
            c,
            failure: None,
            sessions: BTreeMap::new(),
        }
    }

    fn record(&mut self, r: Result<(), String>) -> &mut Self {
        if self.failure.is_none() {
            if let Err(e) = r {
                self.failure = Some(e);
            }
        }
        self
    }

    /// True once a step violated safety or an expectation failed.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// `Ok` or the first failure with the trace of steps.
    pub fn outcome(&self) -> Result<(), String> {
        match &self.failure {
            None => Ok(()),
            Some(f) => Err(format!("{f}\nsteps:\n  {}", self.c.trace.join("\n  "))),
        }
    }

    /// Fire the election timer of `id` (nothing delivered yet).
    pub fn timeout(&mut self, id: NodeId) -> &mut Self {
        let r = self.c.input(id, Input::ElectionTimeout);
        self.record(r)
    }

    /// Fire the heartbeat timer of `id` and deliver everything that follows.
    pub fn heartbeat(&mut self, id: NodeId) -> &mut Self {
        let r = self.c.input(id, Input::HeartbeatTimeout);
        self.record(r).settle()
    }

    /// Deliver messages (timers frozen) until the network is quiet.
    pub fn settle(&mut self) -> &mut Self {
        for _ in 0..1000 {
            if self.c.net.is_empty() || self.failed() {
                break;
            }
            let r = self.c.advance_without_timers();
            self.record(r);
        }
        self
    }

    /// `timeout(id)` then `settle()`, twice when pre-vote is on (the pre-vote round, then the
    /// real one, happen in one settle).
    pub fn elect(&mut self, id: NodeId) -> &mut Self {
        self.timeout(id).settle()
    }

    /// Let the clock run `ticks` ticks with every timer live.
    pub fn run(&mut self, ticks: u64) -> &mut Self {
        for _ in 0..ticks {
            if self.failed() {
                break;
            }
            let r = self.c.tick();
            self.record(r);
        }
        self
    }

    /// Client `client` asks server `to` for a session (using its name as the nonce) and the
    /// network settles; the story fails if no session was opened.
    pub fn register(&mut self, to: NodeId, client: u64) -> &mut Self {
        let r = self.c.input(to, Input::register(client));
        self.record(r).settle();
        let opened = self
            .c
            .delivered_replies
            .iter()
            .find_map(|(_, _, r)| match r {
                ClientReply::Registered { nonce, client_id } if *nonce == client => {
                    Some(*client_id)
                }
                _ => None,
            });
        match opened {
            Some(id) => {
                self.sessions.insert(client, id);
            }
            None if self.failure.is_none() => {
                self.failure = Some(format!("client {client} got no session from n{to}"));
            }
            None => {}
        }
        self
    }

    /// The session id of client `client` (its name when it has not registered).
    pub fn client_id(&self, client: u64) -> ClientId {
        self.sessions.get(&client).copied().unwrap_or(client)
    }

    /// Client `client` sends `op` with `seq` straight to server `to`, then the network settles.
    pub fn request(&mut self, to: NodeId, client: u64, seq: u64, op: Op) -> &mut Self {
        let client = self.client_id(client);
        let r = self.c.input(
            to,
            Input::client(ClientRequest {
                client_id: client,
                seq,
                op,
            }),
        );
        self.record(r).settle()
    }

    /// `request(to, client, seq, Put { key, value })`.
    pub fn put(&mut self, to: NodeId, client: u64, seq: u64, key: &str, value: &str) -> &mut Self {
        self.request(
            to,
            client,
            seq,
            Op::Put {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    /// Cut both directions between server `id` and every other server.
    pub fn isolate(&mut self, id: NodeId) -> &mut Self {
        let others: Vec<NodeId> = self.c.ids.iter().copied().filter(|&o| o != id).collect();
        self.c.net.partition(&[id], &others);
        self.c.log_fault(format!("ISOLATE n{id}"));
        self
    }

    /// Cut both directions between groups `a` and `b`.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) -> &mut Self {
        self.c.net.partition(a, b);
        self.c.log_fault(format!("PARTITION {a:?} | {b:?}"));
        self
    }

    /// Cut the directed link `from -> to` only.
    pub fn cut(&mut self, from: NodeId, to: NodeId) -> &mut Self {
        self.c.net.cut.insert((from, to));
        self.c.log_fault(format!("CUT n{from} -> n{to}"));
        self
    }

    /// Make server `id` unreachable by clients (requests and replies are lost).
    pub fn unreachable_by_clients(&mut self, id: NodeId) -> &mut Self {
        self.c.net.unreachable_by_clients.insert(id);
        self.c.log_fault(format!("n{id} UNREACHABLE by clients"));
        self
    }

    /// Restore every link.
    pub fn heal(&mut self) -> &mut Self {
        self.c.net.heal();
        self.c.log_fault("HEAL".into());
        self
    }

    /// Crash `id` now: volatile state lost, durable state kept.
    pub fn crash(&mut self, id: NodeId) -> &mut Self {
        self.c.crash(id, CrashPoint::Now);
        self
    }

    /// Restart `id` from its durable state.
    pub fn restart(&mut self, id: NodeId) -> &mut Self {
        self.c.restart(id);
        self
    }

    /// Deliver an arbitrary input to a server (e.g. a stale message).
    pub fn inject(&mut self, to: NodeId, input: Input) -> &mut Self {
        let r = self.c.input(to, input);
        self.record(r)
    }

    /// Check a condition on the cluster; a false one fails the story with `what`.
    pub fn expect(&mut self, what: &str, f: impl FnOnce(&Cluster) -> bool) -> &mut Self {
        if self.failure.is_none() && !f(&self.c) {
            self.failure = Some(format!("expectation failed: {what}"));
        }
        self
    }

    /// The answers client `client` received for `seq`, in order.
    pub fn answers(&self, client: u64, seq: u64) -> Vec<Answer> {
        let client = self.client_id(client);
        self.c
            .delivered_replies
            .iter()
            .filter_map(|(_, _, r)| match r {
                ClientReply::Response(r) if r.client_id == client && r.seq == seq => {
                    Some(r.answer.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The `NotLeader` hints client `client` received for `seq`.
    pub fn not_leader_hints(&self, client: u64, seq: u64) -> Vec<Option<NodeId>> {
        let client = self.client_id(client);
        self.c
            .delivered_replies
            .iter()
            .filter_map(|(_, _, r)| match r {
                ClientReply::NotLeader {
                    client_id,
                    seq: s,
                    hint,
                } if *client_id == client && *s == seq => Some(*hint),
                _ => None,
            })
            .collect()
    }
}
