//! Deterministic simulation of a cluster with faults and retrying clients.
//!
//! One seed decides everything: the cluster size, the parameters, the network's loss,
//! duplication and delay, packets held back across elections, lagging links, partitions
//! (symmetric and asymmetric), crashes (between steps, before a `Ready` is persisted, or after
//! persisting but before sending) and restarts, and the clients' operations. After every step the five safety properties are checked
//! ([`safety`]); at the end the client history is checked for linearizability and
//! exactly-once ([`history`]). A failure carries the seed and the trace of steps; running the
//! same seed again replays it exactly.

pub mod cluster;
pub mod history;
pub mod network;
pub mod safety;
pub mod scenario;

use std::fmt;

use raft_core::driver::{SimRng, Timing};
use raft_core::{
    Answer, Backoff, ClientId, ClientReply, ClientRequest, Entry, Input, NodeId, Op, Params,
    ReadRequest, Text,
};

use self::cluster::{Cluster, CrashPoint};
use self::history::{check_history, check_state_machine, OpKind, OpRecord};
use self::network::NetConfig;

/// Everything one simulated run uses; derived from the seed by [`SimConfig::from_seed`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub servers: u64,
    pub params: Params,
    pub timing: Timing,
    pub net: NetConfig,
    pub clients: u64,
    pub ops_per_client: u64,
    /// Ticks with faults on.
    pub fault_ticks: u64,
    /// Ticks after healing everything, for clients to finish.
    pub settle_ticks: u64,
    /// Per-tick fault probability scale (0 disables faults).
    pub fault_rate: f64,
    /// Ticks before a client retries an unanswered request.
    pub retry_ticks: u64,
    /// Per tick and running server: the chance it compacts its log (`Input::Compact`).
    pub compact_chance: f64,
    /// Per fault tick: the chance every link into one server starts to lag, for a time uniform
    /// in `[lag_min, 4 * lag_max]` ticks (a server whose inbox is handled late).
    pub lag_chance: f64,
    /// The lag of such links, in ticks: uniform in `[lag_min, lag_max]`.
    pub lag_min: u64,
    /// See `lag_min`.
    pub lag_max: u64,
}

impl SimConfig {
    /// Draw a configuration from a seed, optionally forcing parameters.
    pub fn from_seed(seed: u64, base: Option<Params>) -> Self {
        let mut rng = SimRng::new(seed ^ 0xC0FF_EE00);
        let random_params = base.is_none();
        let params = base.unwrap_or_else(|| Params {
            pre_vote: rng.chance(0.5),
            check_quorum: rng.chance(0.5),
            max_entries_per_append: [1, 2, 64][rng.index(3)],
            backoff: if rng.chance(0.5) {
                Backoff::ConflictHint
            } else {
                Backoff::Decrement
            },
            noop_on_election: rng.chance(0.8),
            max_inflight_appends: if rng.chance(0.5) {
                Some(1 + rng.index(4))
            } else {
                None
            },
            max_bytes_per_append: if rng.chance(0.3) { Some(64) } else { None },
            max_sessions: None,
            ..Params::default()
        });
        let max_delay = 1 + rng.range(0, 4);
        let mut cfg = SimConfig {
            servers: if rng.chance(0.7) { 3 } else { 5 },
            params,
            timing: Timing {
                election_ticks: 10,
                heartbeat_ticks: 2,
            },
            net: NetConfig {
                loss: [0.0, 0.02, 0.1][rng.index(3)],
                duplicate: [0.0, 0.02, 0.1][rng.index(3)],
                min_delay: 1,
                max_delay,
                hold: 0.0,
                hold_min: 0,
                hold_max: 0,
            },
            clients: 1 + rng.range(0, 3),
            ops_per_client: 10 + rng.range(0, 20),
            fault_ticks: 300,
            settle_ticks: 300,
            fault_rate: 1.0,
            retry_ticks: 15 + 2 * max_delay,
            compact_chance: [0.0, 0.02, 0.2][rng.index(3)],
            lag_chance: 0.0,
            lag_min: 0,
            lag_max: 0,
        };
        // A third of the seeds bound the session table at or below the number of clients, so
        // sessions are evicted under the clients' feet (drawn last: the rest of a seed's
        // configuration is what it was before the bound existed).
        if random_params && rng.chance(0.3) {
            cfg.params.max_sessions = Some(1 + rng.range(0, cfg.clients) as usize);
        }
        // Messages that cross elections (drawn last, like the session bound; a seed with
        // neither holds nor lags replays as it did before they existed). Half the seeds hold a
        // fraction of the packets back for up to several election timeouts: a vote response
        // reaches its candidate after the candidate's next election, an append its follower
        // after a new leader's. Half the seeds (independently) let every link into a server lag
        // by more than an election timeout for a while: its votes come back after it started
        // its next election, while the others vote in that term without it hearing of it. Holds
        // and lags stop at the heal, so every delayed packet lands within `hold_max + lag_max`
        // (90) ticks of it.
        let e = cfg.timing.election_ticks;
        if rng.chance(0.5) {
            cfg.net.hold = [0.02, 0.05, 0.2][rng.index(3)];
            cfg.net.hold_min = e / 2;
            cfg.net.hold_max = e * [2, 3, 6][rng.index(3)];
        }
        if rng.chance(0.5) {
            cfg.lag_chance = [0.01, 0.02, 0.04][rng.index(3)];
            cfg.lag_min = e + e / 2;
            cfg.lag_max = 3 * e;
        }
        cfg
    }
}

/// A failed run: the seed, the reason, and the steps that led there.
#[derive(Clone, Debug)]
pub struct SimFailure {
    pub seed: u64,
    pub reason: String,
    pub config: String,
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation failed, seed {}: {}", self.seed, self.reason)?;
        writeln!(f, "config: {}", self.config)?;
        writeln!(
            f,
            "replay: SIM_SEED={} cargo test -p raft-node --test sim -- replay_seed --nocapture",
            self.seed
        )?;
        let skip = self.trace.len().saturating_sub(400);
        writeln!(
            f,
            "steps ({} total, last {} shown):",
            self.trace.len(),
            self.trace.len() - skip
        )?;
        for line in &self.trace[skip..] {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// What a successful run did.
#[derive(Clone, Debug, Default)]
pub struct SimStats {
    pub ops_answered: u64,
    pub ops_invoked: u64,
    pub committed: u64,
    pub crashes: u64,
    pub compactions: u64,
    /// Operations answered `SessionExpired` (outcome unknown; the client registered again).
    pub sessions_expired: u64,
}

struct Client {
    /// Which client this is (1..).
    name: u64,
    /// Routes the answer of the current registration. A new one for every registration, so a
    /// late answer to an earlier one (a new leader applying an old `Register` answers again)
    /// is never taken for it.
    nonce: u64,
    /// The open session, once a registration was answered.
    session: Option<ClientId>,
    /// When the pending registration was last sent (0: not yet).
    register_sent_at: u64,
    next_seq: u64,
    ops_left: u64,
    /// Index in the history of the op in flight.
    pending: Option<usize>,
    sent_at: u64,
    hint: Option<NodeId>,
    last_seen: Option<Text>,
}

/// Run one seed with the configuration drawn from it.
pub fn run_seed(seed: u64) -> Result<SimStats, SimFailure> {
    run_with(seed, &SimConfig::from_seed(seed, None))
}

/// Run one seed with a given configuration. On failure the run is repeated with tracing on,
/// so the failure carries the full list of steps.
pub fn run_with(seed: u64, cfg: &SimConfig) -> Result<SimStats, SimFailure> {
    match run_inner(seed, cfg, false) {
        Ok(s) => Ok(s),
        Err(_) => match run_inner(seed, cfg, true) {
            Err((reason, trace)) => Err(SimFailure {
                seed,
                reason,
                config: format!("{cfg:?}"),
                trace,
            }),
            Ok(_) => Err(SimFailure {
                seed,
                reason: "nondeterminism: the traced replay passed".into(),
                config: format!("{cfg:?}"),
                trace: vec![],
            }),
        },
    }
}

fn run_inner(seed: u64, cfg: &SimConfig, tracing: bool) -> Result<SimStats, (String, Vec<String>)> {
    let mut c = Cluster::new(cfg.servers, cfg.params.clone(), cfg.timing, cfg.net, seed);
    c.tracing = tracing;
    let mut stats = SimStats::default();
    let mut history: Vec<OpRecord> = Vec::new();
    let mut clients: Vec<Client> = (1..=cfg.clients)
        .map(|name| Client {
            name,
            nonce: name << 32,
            session: None,
            register_sent_at: 0,
            next_seq: 1,
            ops_left: cfg.ops_per_client,
            pending: None,
            sent_at: 0,
            hint: None,
            last_seen: None,
        })
        .collect();
    let mut down_until: Vec<(NodeId, u64)> = Vec::new();
    let total = cfg.fault_ticks + cfg.settle_ticks;
    let res: Result<(), String> = (|| {
        for tick in 0..total {
            let faulty = tick < cfg.fault_ticks && cfg.fault_rate > 0.0;
            if faulty {
                inject_faults(&mut c, cfg, &mut down_until, &mut stats);
            } else if tick == cfg.fault_ticks {
                c.net.heal();
                c.net.lag.clear();
                c.net.config.loss = 0.0;
                c.net.config.duplicate = 0.0;
                c.net.config.hold = 0.0;
                for id in c.ids.clone() {
                    c.restart(id);
                }
                down_until.clear();
            }
            let now = c.now;
            down_until.retain(|&(id, until)| {
                if until <= now {
                    c.restart(id);
                    false
                } else {
                    true
                }
            });
            if cfg.compact_chance > 0.0 {
                for id in c.ids.clone() {
                    if c.is_up(id) && c.rng.chance(cfg.compact_chance) {
                        c.input(id, Input::Compact)?;
                        stats.compactions += 1;
                    }
                }
            }
            c.tick()?;
            let replies = std::mem::take(&mut c.delivered_replies);
            for (_, from, reply) in replies {
                on_reply(&mut c, &mut clients, &mut history, from, reply, &mut stats);
            }
            for cl in &mut clients {
                drive_client(&mut c, cl, &mut history, cfg, &mut stats);
            }
            if clients
                .iter()
                .all(|cl| cl.pending.is_none() && cl.ops_left == 0)
                && tick > cfg.fault_ticks
            {
                break;
            }
        }
        let committed: Vec<Entry> = c.checker.committed().cloned().collect();
        check_history(&history, &committed, cfg.params.max_sessions)?;
        for &id in &c.ids {
            if let Some(core) = c.core(id) {
                check_state_machine(
                    id,
                    core.state_machine(),
                    core.last_applied(),
                    &committed,
                    cfg.params.max_sessions,
                )?;
            }
        }
        stats.committed = committed.len() as u64;
        Ok(())
    })();
    match res {
        Ok(()) => Ok(stats),
        Err(e) => Err((e, std::mem::take(&mut c.trace))),
    }
}

fn inject_faults(
    c: &mut Cluster,
    cfg: &SimConfig,
    down: &mut Vec<(NodeId, u64)>,
    stats: &mut SimStats,
) {
    let r = cfg.fault_rate;
    let n = c.ids.len();
    if c.rng.chance(0.02 * r) {
        let id = c.ids[c.rng.index(n)];
        if c.is_up(id) {
            let at = [
                CrashPoint::Now,
                CrashPoint::BeforePersist,
                CrashPoint::BeforeSend,
            ][c.rng.index(3)];
            c.crash(id, at);
            let back = c.now + 5 + c.rng.range(0, 40);
            down.push((id, back));
            stats.crashes += 1;
        }
    }
    if c.rng.chance(0.015 * r) {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for &id in &c.ids {
            if c.rng.chance(0.5) {
                a.push(id)
            } else {
                b.push(id)
            }
        }
        c.log_fault(format!("PARTITION {a:?} | {b:?}"));
        c.net.partition(&a, &b);
    }
    if c.rng.chance(0.015 * r) {
        let from = c.ids[c.rng.index(n)];
        let to = c.ids[c.rng.index(n)];
        if from != to {
            c.log_fault(format!("CUT n{from} -> n{to}"));
            c.net.cut.insert((from, to));
        }
    }
    if c.rng.chance(0.005 * r) {
        let id = c.ids[c.rng.index(n)];
        c.log_fault(format!("n{id} UNREACHABLE by clients"));
        c.net.unreachable_by_clients.insert(id);
    }
    if c.rng.chance(cfg.lag_chance * r) {
        let id = c.ids[c.rng.index(n)];
        let ticks = c.rng.range(cfg.lag_min, cfg.lag_max + 1);
        let until = c.now + c.rng.range(cfg.lag_min, 4 * cfg.lag_max + 1);
        c.log_fault(format!("LAG -> n{id} by {ticks} ticks until t={until}"));
        let ids = c.ids.clone();
        c.net.lag_into(id, &ids, ticks, until);
    }
    if c.rng.chance(0.03 * r) {
        c.log_fault("HEAL".into());
        c.net.heal();
    }
}

fn on_reply(
    c: &mut Cluster,
    clients: &mut [Client],
    history: &mut [OpRecord],
    _from: NodeId,
    reply: ClientReply,
    stats: &mut SimStats,
) {
    if let ClientReply::Registered { nonce, client_id } = reply {
        // A retried registration may open a second session; the client keeps the first.
        if let Some(cl) = clients.iter_mut().find(|cl| cl.nonce == nonce) {
            if cl.session.is_none() && cl.register_sent_at != 0 {
                cl.session = Some(client_id);
                cl.next_seq = 1;
            }
        }
        return;
    }
    let Some(cl) = clients
        .iter_mut()
        .find(|cl| cl.session.is_some_and(|s| s == reply.client_id()))
    else {
        if let ClientReply::NotLeader { seq, hint, .. } = reply {
            if let Some(cl) = clients
                .iter_mut()
                .find(|cl| cl.session.is_none() && cl.nonce == seq)
            {
                cl.hint = hint;
                cl.register_sent_at = 0;
            }
        }
        return;
    };
    let Some(h) = cl.pending else { return };
    let op = &mut history[h];
    match reply {
        ClientReply::Response(r)
            if r.seq == op.seq
                && r.answer == Answer::SessionExpired
                && matches!(op.kind, OpKind::Write(_)) =>
        {
            // The outcome is unknown (an earlier attempt may have been applied): the op stays
            // unanswered in the history, and the client opens a new session.
            cl.pending = None;
            cl.session = None;
            cl.nonce += 1;
            cl.register_sent_at = 0;
            stats.sessions_expired += 1;
            return;
        }
        ClientReply::Response(r) if r.seq == op.seq && matches!(op.kind, OpKind::Write(_)) => {
            if let Answer::Value(v) | Answer::Cas { previous: v, .. } = &r.answer {
                cl.last_seen = v.clone();
            }
            op.answer = Some(r.answer);
        }
        ClientReply::Read { read_id, value, .. }
            if read_id == op.seq && matches!(op.kind, OpKind::Read(_)) =>
        {
            cl.last_seen = value.clone();
            op.read_value = Some(value);
        }
        ClientReply::NotLeader { seq, hint, .. }
        | ClientReply::ReadNotLeader {
            read_id: seq, hint, ..
        } if seq == op.seq => {
            cl.hint = hint;
            cl.sent_at = 0; // resend at once
            return;
        }
        _ => return,
    }
    op.responded_at = Some(c.now);
    op.committed_at_response = c.checker.committed_len();
    cl.pending = None;
    stats.ops_answered += 1;
}

/// Sends (or re-sends) a client's registration; true while the client has no session.
fn register(c: &mut Cluster, cl: &mut Client, cfg: &SimConfig) -> bool {
    if cl.session.is_some() {
        return false;
    }
    if cl.register_sent_at != 0 && c.now < cl.register_sent_at + cfg.retry_ticks {
        return true;
    }
    let target = match cl.hint.take() {
        Some(t) if cl.register_sent_at == 0 => t,
        _ => c.ids[c.rng.index(c.ids.len())],
    };
    cl.register_sent_at = c.now.max(1);
    c.client_send(target, Input::register(cl.nonce));
    true
}

fn drive_client(
    c: &mut Cluster,
    cl: &mut Client,
    history: &mut Vec<OpRecord>,
    cfg: &SimConfig,
    stats: &mut SimStats,
) {
    let n = c.ids.len();
    if cl.pending.is_none() {
        if cl.ops_left == 0 || register(c, cl, cfg) || !c.rng.chance(0.3) {
            return;
        }
        let session = cl.session.expect("registered");
        cl.ops_left -= 1;
        let seq = cl.next_seq;
        cl.next_seq += 1;
        let key: Text = ["a", "b", "c"][c.rng.index(3)].into();
        let value: Text = format!("c{}-{}-{}", cl.name, session, seq).into();
        let kind = match c.rng.index(10) {
            0..=3 => OpKind::Write(Op::Put { key, value }),
            4 => OpKind::Write(Op::Get { key }),
            5 => OpKind::Write(Op::Delete { key }),
            6 | 7 => OpKind::Write(Op::Cas {
                key,
                expected: cl.last_seen.clone(),
                new: Some(value),
            }),
            _ => OpKind::Read(key),
        };
        history.push(OpRecord {
            client_id: session,
            seq,
            kind,
            invoked_at: c.now,
            responded_at: None,
            answer: None,
            read_value: None,
            committed_at_response: 0,
        });
        cl.pending = Some(history.len() - 1);
        cl.sent_at = 0;
        stats.ops_invoked += 1;
    }
    let Some(h) = cl.pending else { return };
    if cl.sent_at != 0 && c.now < cl.sent_at + cfg.retry_ticks {
        return;
    }
    let target = match cl.hint.take() {
        Some(t) if cl.sent_at == 0 => t,
        _ => c.ids[c.rng.index(n)],
    };
    cl.sent_at = c.now.max(1);
    let op = &history[h];
    let input = match &op.kind {
        OpKind::Write(o) => Input::client(ClientRequest {
            client_id: op.client_id,
            seq: op.seq,
            op: o.clone(),
        }),
        OpKind::Read(k) => Input::Read(ReadRequest {
            client_id: op.client_id,
            read_id: op.seq,
            key: k.clone(),
        }),
    };
    c.client_send(target, input);
}
