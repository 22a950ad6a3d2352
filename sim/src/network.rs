//! The simulated network: loss, duplication, reordering (random delay), long holds (a
//! fraction of packets held back for several election timeouts, so they cross elections),
//! lagging links (every packet sent on the link meanwhile arrives a fixed number of ticks late,
//! as into an overloaded server), and directed link cuts (a symmetric partition cuts both
//! directions, an asymmetric one a single direction).

use std::collections::{BTreeMap, BTreeSet};

use raft_core::driver::SimRng;
use raft_core::{ClientReply, Envelope, Input, NodeId};

/// Fault probabilities and delays of the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Delay in ticks, uniform in `[min_delay, max_delay]` (reordering when they differ).
    pub min_delay: u64,
    /// See `min_delay`.
    pub max_delay: u64,
    /// Probability a packet (each copy of it) is held back: its delay is then drawn uniformly
    /// from `[hold_min, hold_max]` instead. With holds spanning several election timeouts a vote
    /// response or an append reaches its sender's peer after later elections.
    pub hold: f64,
    /// See `hold`.
    pub hold_min: u64,
    /// See `hold`.
    pub hold_max: u64,
}

impl NetConfig {
    /// A perfect network with unit delay: FIFO, no loss.
    pub fn reliable() -> Self {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: 1,
            max_delay: 1,
            hold: 0.0,
            hold_min: 0,
            hold_max: 0,
        }
    }
}

/// What travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Server to server.
    Peer(Envelope),
    /// Client to server (a command or a read).
    ToServer { to: NodeId, input: Input },
    /// Server to client.
    ToClient { from: NodeId, reply: ClientReply },
}

/// A packet in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub deliver_at: u64,
    pub seq: u64,
    pub payload: Payload,
}

/// The network.
#[derive(Clone, Debug)]
pub struct Network {
    pub config: NetConfig,
    /// Cut directed links `(from, to)` between servers.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Lagging directed links `(from, to)` between servers: `(ticks, until)` adds `ticks` to the
    /// delay of every packet sent on the link before time `until` (after any hold).
    pub lag: BTreeMap<(NodeId, NodeId), (u64, u64)>,
    /// Servers clients cannot reach (both directions).
    pub unreachable_by_clients: BTreeSet<NodeId>,
    in_flight: Vec<Packet>,
    next_seq: u64,
}

impl Network {
    /// An empty network.
    pub fn new(config: NetConfig) -> Self {
        Network {
            config,
            cut: BTreeSet::new(),
            lag: BTreeMap::new(),
            unreachable_by_clients: BTreeSet::new(),
            in_flight: Vec::new(),
            next_seq: 0,
        }
    }

    /// Packets in flight.
    pub fn in_flight(&self) -> &[Packet] {
        &self.in_flight
    }

    /// True if nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    fn blocked(&self, p: &Payload) -> bool {
        match p {
            Payload::Peer(e) => self.cut.contains(&(e.from, e.to)),
            Payload::ToServer { to, .. } => self.unreachable_by_clients.contains(to),
            Payload::ToClient { from, .. } => self.unreachable_by_clients.contains(from),
        }
    }

    /// Send a packet at time `now`.
    pub fn send(&mut self, now: u64, payload: Payload, rng: &mut SimRng) {
        if self.blocked(&payload) || rng.chance(self.config.loss) {
            return;
        }
        let copies = if rng.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        let lag = match &payload {
            Payload::Peer(e) => match self.lag.get(&(e.from, e.to)) {
                Some(&(ticks, until)) if now < until => ticks,
                _ => 0,
            },
            _ => 0,
        };
        for _ in 0..copies {
            let mut delay = rng.range(self.config.min_delay, self.config.max_delay + 1);
            // `chance(0.0)` draws nothing: a network without holds replays as it did before.
            if rng.chance(self.config.hold) {
                delay = rng.range(self.config.hold_min, self.config.hold_max + 1);
            }
            self.next_seq += 1;
            self.in_flight.push(Packet {
                deliver_at: now + delay + lag,
                seq: self.next_seq,
                payload: payload.clone(),
            });
        }
    }

    /// Remove and return the packets due at `now`, in delivery order; packets on a link cut
    /// meanwhile are dropped.
    pub fn take_due(&mut self, now: u64) -> Vec<Packet> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].deliver_at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.deliver_at, p.seq));
        due.retain(|p| !self.blocked(&p.payload));
        due
    }

    /// Drop every packet addressed to or sent by server `id` for which `pred` holds.
    pub fn drop_where(&mut self, mut pred: impl FnMut(&Packet) -> bool) {
        self.in_flight.retain(|p| !pred(p));
    }

    /// Take one specific packet out (scenarios use this to hold and replay messages).
    pub fn take_matching(&mut self, mut pred: impl FnMut(&Packet) -> bool) -> Vec<Packet> {
        let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|p| pred(p));
        self.in_flight = rest;
        taken
    }

    /// Put a packet back in flight, due at `at`.
    pub fn inject(&mut self, at: u64, payload: Payload) {
        self.next_seq += 1;
        self.in_flight.push(Packet {
            deliver_at: at,
            seq: self.next_seq,
            payload,
        });
    }

    /// Cut both directions between every member of `a` and every member of `b`.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Make every link from `from` into server `to` lag by `ticks` until time `until` (packets
    /// already in flight keep their time). A lag is not a cut: [`Network::heal`] keeps it.
    pub fn lag_into(&mut self, to: NodeId, from: &[NodeId], ticks: u64, until: u64) {
        for &f in from {
            if f != to {
                self.lag.insert((f, to), (ticks, until));
            }
        }
    }

    /// Restore every server link and client reachability (lags run until they end).
    pub fn heal(&mut self) {
        self.cut.clear();
        self.unreachable_by_clients.clear();
    }
}
