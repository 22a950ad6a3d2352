//! A cluster of drivers over the simulated network, with durable storage per server, crash
//! and restart, and the safety checker run after every step. The random simulation and the
//! scenario tests are both built on it.

use std::collections::BTreeMap;

use raft_core::driver::{Driver, SimRng, Timing};
use raft_core::{
    ClientReply, Input, Membership, MemoryStorage, NodeId, Params, RaftCore, Ready, Role,
};

use super::network::{NetConfig, Network, Payload};
use super::safety::SafetyChecker;

/// Where a crash hits relative to the next input's `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Between two inputs.
    Now,
    /// After the next input is handled, before its `Ready` is persisted (all of it is lost).
    BeforePersist,
    /// After the next `Ready` is persisted, before its messages are sent.
    BeforeSend,
}

/// The cluster.
#[derive(Debug)]
pub struct Cluster {
    pub params: Params,
    pub timing: Timing,
    pub ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Option<Driver>>,
    durable: BTreeMap<NodeId, MemoryStorage>,
    pending_crash: BTreeMap<NodeId, CrashPoint>,
    restarts: u64,
    pub net: Network,
    pub rng: SimRng,
    pub checker: SafetyChecker,
    pub now: u64,
    /// Client replies delivered, with the server that sent them and the time.
    pub delivered_replies: Vec<(u64, NodeId, ClientReply)>,
    /// One line per event.
    pub trace: Vec<String>,
    /// Record the trace (the random simulation keeps it to print on failure).
    pub tracing: bool,
    seed: u64,
}

impl Cluster {
    /// `n` servers with ids `1..=n`.
    pub fn new(n: u64, params: Params, timing: Timing, net: NetConfig, seed: u64) -> Self {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        let mut durable = BTreeMap::new();
        for &id in &ids {
            let core = RaftCore::new(id, &ids, params.clone());
            nodes.insert(
                id,
                Some(Driver::new(
                    core,
                    timing,
                    seed.wrapping_mul(31).wrapping_add(id),
                )),
            );
            durable.insert(id, MemoryStorage::default());
        }
        Cluster {
            params,
            timing,
            ids,
            nodes,
            durable,
            pending_crash: BTreeMap::new(),
            restarts: 0,
            net: Network::new(net),
            rng: SimRng::new(seed),
            checker: SafetyChecker::default(),
            now: 0,
            delivered_replies: Vec::new(),
            trace: Vec::new(),
            tracing: true,
            seed,
        }
    }

    fn log_event(&mut self, f: impl FnOnce() -> String) {
        if self.tracing {
            let line = format!("t={} {}", self.now, f());
            self.trace.push(line);
        }
    }

    /// Record a fault in the trace.
    pub fn log_fault(&mut self, what: String) {
        self.log_event(|| what);
    }

    /// The core of a running server.
    pub fn core(&self, id: NodeId) -> Option<&RaftCore> {
        self.nodes
            .get(&id)
            .and_then(|d| d.as_ref())
            .map(Driver::core)
    }
    /// The core of a running server (panics when crashed).
    pub fn node(&self, id: NodeId) -> &RaftCore {
        self.core(id)
            .unwrap_or_else(|| panic!("server {id} is down"))
    }
    /// True if the server is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.core(id).is_some()
    }
    /// What the server has on disk.
    pub fn durable(&self, id: NodeId) -> &MemoryStorage {
        &self.durable[&id]
    }
    /// Running servers that are leaders, by id.
    pub fn leaders(&self) -> Vec<NodeId> {
        self.ids
            .iter()
            .copied()
            .filter(|&i| self.core(i).is_some_and(|c| c.role() == Role::Leader))
            .collect()
    }
    /// The leader of the highest term among running servers.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&i| self.node(i).current_term())
    }

    /// Feed an input to a server and handle its `Ready` (persist, send, reply), then check safety.
    pub fn input(&mut self, id: NodeId, input: Input) -> Result<(), String> {
        let Some(Some(driver)) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let before = (driver.core().role(), driver.core().commit_index());
        let trace_in = self.tracing.then(|| describe_input(&input));
        let ready = driver.step(input);
        if let Some(s) = trace_in {
            self.log_event(|| format!("n{id} <- {s}"));
        }
        self.handle_ready(id, before, ready)
    }

    fn handle_ready(
        &mut self,
        id: NodeId,
        before: (Role, u64),
        ready: Ready,
    ) -> Result<(), String> {
        let crash = self.pending_crash.remove(&id);
        if crash == Some(CrashPoint::BeforePersist) {
            self.log_event(|| format!("n{id} CRASH before persisting its ready"));
            self.crash_now(id);
            return Ok(());
        }
        let core = self.nodes[&id].as_ref().expect("up").core();
        self.checker
            .check_step(core, before.0, before.1, &ready)
            .map_err(|e| format!("{e}\n  at n{id}: {}", summary(core)))?;
        let core = self.nodes[&id].as_ref().expect("up").core();
        self.durable
            .get_mut(&id)
            .expect("durable")
            .persist(core, &ready);
        if crash == Some(CrashPoint::BeforeSend) {
            self.log_event(|| format!("n{id} CRASH after persisting, before sending"));
            self.crash_now(id);
            return Ok(());
        }
        for env in ready.messages {
            if self.tracing {
                let line = format!("n{id} -> n{}: {:?}", env.to, short(&env.msg));
                self.log_event(|| line);
            }
            let now = self.now;
            self.net.send(now, Payload::Peer(env), &mut self.rng);
        }
        for reply in ready.replies {
            self.log_event(|| format!("n{id} => client: {reply:?}"));
            let now = self.now;
            self.net
                .send(now, Payload::ToClient { from: id, reply }, &mut self.rng);
        }
        Ok(())
    }

    /// Advance time by one tick: tick every running server, then deliver due packets.
    /// Client replies are collected into `delivered_replies`.
    pub fn tick(&mut self) -> Result<(), String> {
        self.now += 1;
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            let Some(Some(driver)) = self.nodes.get_mut(&id) else {
                continue;
            };
            let mut before = (driver.core().role(), driver.core().commit_index());
            let readies = driver.tick();
            for ready in readies {
                self.log_event(|| format!("n{id} timeout"));
                self.handle_ready(id, before, ready)?;
                match self.core(id) {
                    Some(c) => before = (c.role(), c.commit_index()),
                    None => break,
                }
            }
        }
        self.deliver_due()
    }

    /// Advance time by one tick without firing any timer, delivering what is due.
    pub fn advance_without_timers(&mut self) -> Result<(), String> {
        self.now += 1;
        self.deliver_due()
    }

    /// Deliver every packet due now.
    pub fn deliver_due(&mut self) -> Result<(), String> {
        for p in self.net.take_due(self.now) {
            match p.payload {
                Payload::Peer(env) => {
                    let to = env.to;
                    self.input(to, Input::Message(env))?;
                }
                Payload::ToServer { to, input } => self.input(to, input)?,
                Payload::ToClient { from, reply } => {
                    self.delivered_replies.push((self.now, from, reply));
                }
            }
        }
        Ok(())
    }

    /// Send a client request or read to a server over the network.
    pub fn client_send(&mut self, to: NodeId, input: Input) {
        let now = self.now;
        self.log_event(|| format!("client -> n{to}: {}", describe_input(&input)));
        self.net
            .send(now, Payload::ToServer { to, input }, &mut self.rng);
    }

    /// Crash a server at the given point.
    pub fn crash(&mut self, id: NodeId, at: CrashPoint) {
        if at == CrashPoint::Now {
            self.log_event(|| format!("n{id} CRASH"));
            self.crash_now(id);
        } else {
            self.pending_crash.insert(id, at);
        }
    }

    fn crash_now(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
        self.pending_crash.remove(&id);
    }

    /// Restart a crashed server from its durable state.
    pub fn restart(&mut self, id: NodeId) {
        if self.is_up(id) {
            return;
        }
        self.restarts += 1;
        let core = self.durable[&id].restore(
            id,
            &Membership::voters(self.ids.iter().copied()),
            self.params.clone(),
        );
        let seed = self
            .seed
            .wrapping_mul(7919)
            .wrapping_add(self.restarts * 1000 + id);
        self.nodes
            .insert(id, Some(Driver::new(core, self.timing, seed)));
        self.checker.restarted(id);
        let (hs, len) = (self.durable[&id].hard_state, self.durable[&id].log.len());
        self.log_event(|| {
            format!(
                "n{id} RESTART term={} voted_for={:?} log_len={len}",
                hs.current_term, hs.voted_for
            )
        });
    }
}

/// A one-line summary of a server (used in traces).
fn summary(core: &RaftCore) -> String {
    format!(
        "{:?} term={} voted_for={:?} leader={:?} commit={} log=[{}]",
        core.role(),
        core.current_term(),
        core.voted_for(),
        core.leader_id(),
        core.commit_index(),
        core.log()
            .entries()
            .iter()
            .map(|e| e.term.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// A short rendering of an input.
pub fn describe_input(input: &Input) -> String {
    match input {
        Input::Message(env) => format!("n{}: {}", env.from, short(&env.msg)),
        other => format!("{other:?}"),
    }
}

/// A short rendering of a message (entries shown by term only).
pub fn short(msg: &raft_core::Message) -> String {
    match msg {
        raft_core::Message::AppendEntries { term, leader, prev_log_index, prev_log_term, entries, leader_commit } => format!(
            "AE(t{term} l{leader} prev={prev_log_index}/{prev_log_term} entries={:?} commit={leader_commit})",
            entries.iter().map(|e| e.term).collect::<Vec<_>>()
        ),
        other => format!("{other:?}"),
    }
}
