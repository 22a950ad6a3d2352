//! Traces: model behaviours written down for conformance (`conformance/`, crate
//! `raft-conformance`) to replay on the node core.
//!
//! A trace is a JSON-lines file: the first line is a [`TraceHeader`] (format name and version,
//! the model's crate version, the whole [`Config`] with its bounds, and a hash of both), every
//! further line a [`TraceStep`]: the model action, what the acting server sent and answered
//! ([`StepRecord`]), and every server's state after the step.
//!
//! `raft-model traces --out DIR` writes four families of traces ([`export`]):
//! - `check-*`: every counterexample and witness stateright's checker discovers (BFS);
//! - `cover-*`: a breadth-first cover, the shortest path to every action kind
//!   ([`action_kind`]) and to every property witness;
//! - `walk-*`: seeded random walks weighted toward elections;
//! - `scenario-F*`: the F1-F6 scenarios, the shortest witness paths of the F1-F6
//!   sometimes-properties (each searched in the configuration listed in [`scenario_configs`]).

use crate::config::{Backoff, Config};
use crate::model::{Action, RaftModel, StepRecord};
use crate::server::{AdminOutcome, Server};
use crate::state::State;
use crate::types::{Answer, Id, Msg, Role};
use serde::{Deserialize, Serialize};
use stateright::{Checker, Expectation, Model};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const FORMAT: &str = "raftright-trace";
/// Bumped whenever the header or step layout changes.
pub const FORMAT_VERSION: u32 = 1;

/// The first line of a trace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub format: String,
    pub format_version: u32,
    /// `raft-model`'s crate version when the trace was written.
    pub model_version: String,
    /// The configuration the trace was taken in: servers, parameters, bounds.
    pub config: Config,
    /// [`config_hash`] of `config`: a trace whose hash differs from the current one is stale.
    pub config_hash: String,
    /// `check`, `cover`, `walk` or `scenario`.
    pub family: String,
    /// What the trace reaches (a property name, an action kind, a seed).
    pub name: String,
    pub steps: usize,
}

/// One step of a trace: the action and the model's state after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    /// 1-based.
    pub step: usize,
    pub action: Action,
    /// What the acting server sent and answered, before the network absorbed anything.
    pub record: StepRecord,
    /// The servers whose state the step changed, by id, each as it is after the step (every
    /// other server is as after the previous step; before step 1 every server is
    /// `Server::new(config)`). [`Trace::server_states`] gives every server after every step.
    pub changed: Vec<(Id, Server)>,
    /// Messages in flight after the step (after absorption and garbage collection).
    pub in_flight: usize,
    pub restarts: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub header: TraceHeader,
    pub steps: Vec<TraceStep>,
}

/// A stable hash (FNV-1a, 64 bits) of the trace format, the model's crate version and the
/// configuration: it changes whenever any of them does.
pub fn config_hash(cfg: &Config) -> String {
    let text = format!(
        "{FORMAT}/{FORMAT_VERSION}/{}/{}",
        env!("CARGO_PKG_VERSION"),
        serde_json::to_string(cfg).expect("config serializes")
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Trace {
    /// Runs `actions` through the model from the initial state and records every step.
    /// Fails at the first action that is not enabled.
    pub fn record(
        cfg: &Config,
        family: &str,
        name: &str,
        actions: &[Action],
    ) -> Result<Trace, String> {
        let model = RaftModel::new(cfg.clone());
        let mut state = State::new(cfg);
        let mut steps = Vec::with_capacity(actions.len());
        for (i, action) in actions.iter().enumerate() {
            let (next, record) = model
                .step(&state, action)
                .ok_or_else(|| format!("step {}: {action:?} is not enabled", i + 1))?;
            let changed = next
                .servers
                .iter()
                .enumerate()
                .filter(|(j, s)| state.servers[*j] != **s)
                .map(|(j, s)| (j as Id, s.clone()))
                .collect();
            steps.push(TraceStep {
                step: i + 1,
                action: action.clone(),
                record,
                changed,
                in_flight: next.network.len(),
                restarts: next.restarts,
            });
            state = next;
        }
        Ok(Trace {
            header: TraceHeader {
                format: FORMAT.to_string(),
                format_version: FORMAT_VERSION,
                model_version: env!("CARGO_PKG_VERSION").to_string(),
                config: cfg.clone(),
                config_hash: config_hash(cfg),
                family: family.to_string(),
                name: name.to_string(),
                steps: steps.len(),
            },
            steps,
        })
    }

    /// Every server after every step (`[k]` is after step `k + 1`), from the recorded changes.
    pub fn server_states(&self) -> Vec<Vec<Server>> {
        let cfg = &self.header.config;
        let mut servers: Vec<Server> = (0..cfg.servers).map(|_| Server::new(cfg)).collect();
        self.steps
            .iter()
            .map(|s| {
                for (id, server) in &s.changed {
                    servers[*id as usize] = server.clone();
                }
                servers.clone()
            })
            .collect()
    }

    pub fn actions(&self) -> Vec<Action> {
        self.steps.iter().map(|s| s.action.clone()).collect()
    }

    /// The model states along the trace, re-computed by the current model (initial state first).
    pub fn model_states(&self) -> Result<Vec<(State, Option<StepRecord>)>, String> {
        let cfg = &self.header.config;
        let model = RaftModel::new(cfg.clone());
        let mut out = vec![(State::new(cfg), None)];
        for s in &self.steps {
            let last = &out.last().expect("non-empty").0;
            let (next, record) = model
                .step(last, &s.action)
                .ok_or_else(|| format!("step {}: {:?} is no longer enabled", s.step, s.action))?;
            out.push((next, Some(record)));
        }
        Ok(out)
    }

    /// Checks the trace against the current model: the header's format and hash, and every
    /// recorded step re-computed. `Err` says what is stale.
    pub fn check_fresh(&self) -> Result<(), String> {
        let h = &self.header;
        if h.format != FORMAT || h.format_version != FORMAT_VERSION {
            return Err(format!(
                "format {} v{} (current: {FORMAT} v{FORMAT_VERSION})",
                h.format, h.format_version
            ));
        }
        let now = config_hash(&h.config);
        if h.config_hash != now {
            return Err(format!(
                "config hash {} (model {}), current {now} (model {})",
                h.config_hash,
                h.model_version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        if h.steps != self.steps.len() {
            return Err(format!(
                "header says {} steps, file has {}",
                h.steps,
                self.steps.len()
            ));
        }
        let fresh = Trace::record(&h.config, &h.family, &h.name, &self.actions())?;
        for (old, new) in self.steps.iter().zip(&fresh.steps) {
            if old != new {
                return Err(format!(
                    "step {} ({:?}): recorded\n{}\nmodel now gives\n{}",
                    old.step,
                    old.action,
                    serde_json::to_string(old).unwrap_or_default(),
                    serde_json::to_string(new).unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    pub fn to_jsonl(&self) -> String {
        let mut out = serde_json::to_string(&self.header).expect("header serializes");
        out.push('\n');
        for s in &self.steps {
            out += &serde_json::to_string(s).expect("step serializes");
            out.push('\n');
        }
        out
    }

    pub fn from_jsonl(text: &str) -> Result<Trace, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, first) = lines.next().ok_or("empty trace file")?;
        let header: TraceHeader =
            serde_json::from_str(first).map_err(|e| format!("line 1 (header): {e}"))?;
        if header.format != FORMAT {
            return Err(format!("not a {FORMAT} file (format {:?})", header.format));
        }
        if header.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                header.format_version
            ));
        }
        let mut steps = Vec::new();
        for (i, line) in lines {
            steps.push(serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
        Ok(Trace { header, steps })
    }

    pub fn read(path: &Path) -> Result<Trace, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = String::new();
        for line in std::io::BufReader::new(file).lines() {
            text += &line.map_err(|e| format!("{}: {e}", path.display()))?;
            text.push('\n');
        }
        Trace::from_jsonl(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(self.to_jsonl().as_bytes())
    }
}

/// A fine-grained name for what a step does: the unit of action coverage. `before` is the
/// state the action is taken in.
pub fn action_kind(before: &State, action: &Action, record: &StepRecord) -> &'static str {
    // A refusal is named before the action that caused it: a pre-registered session is refused
    // when its command applies (a leader's commit, on any delivery), a registered one already at
    // the request, and both are the same rule.
    if (record.answered.iter()).any(|r| r.answer == Answer::SessionExpired) {
        return "command refused: session expired";
    }
    match action {
        Action::Deliver(env) => match &env.msg {
            Msg::RequestVote {
                pre_vote: false, ..
            } => "deliver RequestVote",
            Msg::RequestVote { pre_vote: true, .. } => "deliver PreVote",
            Msg::RequestVoteResponse {
                pre_vote: false,
                granted: true,
                ..
            } => "deliver RequestVoteResponse granted",
            Msg::RequestVoteResponse {
                pre_vote: false,
                granted: false,
                ..
            } => "deliver RequestVoteResponse rejected",
            Msg::RequestVoteResponse {
                pre_vote: true,
                granted: true,
                ..
            } => "deliver PreVoteResponse granted",
            Msg::RequestVoteResponse {
                pre_vote: true,
                granted: false,
                ..
            } => "deliver PreVoteResponse rejected",
            Msg::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                ..
            } if {
                let dst = &before.servers[env.dst as usize];
                *term >= dst.current_term
                    && *prev_log_index <= dst.last_log_index()
                    && *prev_log_index >= dst.snapshot_index()
                    && dst.term_at(*prev_log_index) != *prev_log_term
            } =>
            {
                "deliver AppendEntries with mismatched prev_log_term"
            }
            Msg::AppendEntries { entries, .. } if entries.is_empty() => {
                "deliver AppendEntries heartbeat"
            }
            Msg::AppendEntries { .. } => "deliver AppendEntries with entries",
            Msg::AppendEntriesResponse { success: true, .. } => {
                "deliver AppendEntriesResponse success"
            }
            Msg::AppendEntriesResponse { success: false, .. } => {
                "deliver AppendEntriesResponse rejection"
            }
            Msg::InstallSnapshot { .. } => "deliver InstallSnapshot",
            Msg::ReadIndex { .. } => "deliver ReadIndex",
            Msg::ReadIndexResponse { ok: true, .. } => "deliver ReadIndexResponse confirming",
            Msg::ReadIndexResponse { ok: false, .. } => "deliver ReadIndexResponse refusing",
            Msg::TimeoutNow { .. } => "deliver TimeoutNow",
        },
        Action::Admin { .. } => match record.admin {
            Some(AdminOutcome::Invalid) => "operator's operation refused as invalid",
            _ if (record.sent.iter()).any(|e| matches!(e.msg, Msg::TimeoutNow { .. })) => {
                "operator's transfer sends TimeoutNow"
            }
            _ => "operator's change appended",
        },
        Action::Drop(_) => "drop message",
        Action::ElectionTimeout(id) => match before.servers[*id as usize].role {
            Role::Leader => "election timeout at leader (check quorum)",
            Role::Follower => "election timeout at follower",
            Role::PreCandidate | Role::Candidate => "election timeout at candidate",
        },
        Action::HeartbeatTimeout(_) => "heartbeat timeout",
        Action::Restart(_) => "restart",
        Action::Compact(_) => "compact",
        Action::ClientRequest { client_id, .. }
            if before.clients[*client_id as usize].session == 0 =>
        {
            if record.not_leader {
                "client registration at non-leader"
            } else {
                "client registration appended"
            }
        }
        Action::ClientRequest { .. } if record.not_leader => "client request at non-leader",
        Action::ClientRequest { .. } if record.read && record.sent.is_empty() => {
            "client read held for the leader's first commit"
        }
        Action::ClientRequest { .. } if record.read => "client read starts a ReadIndex round",
        Action::ClientRequest { .. } if record.sent.is_empty() => {
            "client request answered from session table"
        }
        Action::ClientRequest { .. } => "client request appended",
        Action::DeliverResponse(_) => "deliver client response",
        Action::DropResponse(_) => "drop client response",
    }
}

/// The coarse action kinds: one per `Action` variant.
pub fn action_variant(action: &Action) -> &'static str {
    match action {
        Action::Deliver(_) => "Deliver",
        Action::Drop(_) => "Drop",
        Action::ElectionTimeout(_) => "ElectionTimeout",
        Action::HeartbeatTimeout(_) => "HeartbeatTimeout",
        Action::Restart(_) => "Restart",
        Action::Compact(_) => "Compact",
        Action::ClientRequest { .. } => "ClientRequest",
        Action::DeliverResponse(_) => "DeliverResponse",
        Action::DropResponse(_) => "DropResponse",
        Action::Admin { .. } => "Admin",
    }
}

/// The action variants conformance must cover. `Admin` (membership changes and leadership
/// transfer) is not among them: the node has no membership changes yet, so no trace with one
/// can be replayed (conformance/README.md, "Conformance gaps").
pub const ACTION_VARIANTS: [&str; 10] = [
    "Deliver",
    "Drop",
    "ElectionTimeout",
    "HeartbeatTimeout",
    "Restart",
    "Compact",
    "ClientRequest",
    "DeliverResponse",
    "DropResponse",
    "Admin",
];

/// Every fine-grained action kind [`action_kind`] can name.
pub const ACTION_KINDS: [&str; 36] = [
    "deliver RequestVote",
    "deliver PreVote",
    "deliver RequestVoteResponse granted",
    "deliver RequestVoteResponse rejected",
    "deliver PreVoteResponse granted",
    "deliver PreVoteResponse rejected",
    "deliver AppendEntries heartbeat",
    "deliver AppendEntries with entries",
    "deliver AppendEntries with mismatched prev_log_term",
    "deliver AppendEntriesResponse success",
    "deliver AppendEntriesResponse rejection",
    "deliver InstallSnapshot",
    "deliver ReadIndex",
    "deliver ReadIndexResponse confirming",
    "deliver ReadIndexResponse refusing",
    "compact",
    "drop message",
    "election timeout at leader (check quorum)",
    "election timeout at follower",
    "election timeout at candidate",
    "heartbeat timeout",
    "restart",
    "client request at non-leader",
    "client request answered from session table",
    "client request appended",
    "client read held for the leader's first commit",
    "client read starts a ReadIndex round",
    "client registration at non-leader",
    "client registration appended",
    "command refused: session expired",
    "deliver client response",
    "drop client response",
    "deliver TimeoutNow",
    "operator's change appended",
    "operator's transfer sends TimeoutNow",
    "operator's operation refused as invalid",
];

/// The names of the properties whose condition holds in `state` (a sometimes-property's
/// witness, or an always-property's violation).
pub fn properties_hit(model: &RaftModel, state: &State) -> Vec<(&'static str, Expectation)> {
    model
        .properties()
        .into_iter()
        .filter_map(|p| {
            let holds = (p.condition)(model, state);
            match p.expectation {
                Expectation::Sometimes if holds => Some((p.name, p.expectation)),
                Expectation::Always if !holds => Some((p.name, p.expectation)),
                _ => None,
            }
        })
        .collect()
}

fn state_hash(state: &State) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    state.hash(&mut h);
    h.finish()
}

/// What a breadth-first search looks for; each target is reached by its shortest path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// An [`action_kind`] taken.
    Kind(&'static str),
    /// A sometimes-property's witness, or an always-property's violation.
    Property(&'static str),
}

pub struct SearchResult {
    pub found: BTreeMap<Target, Vec<Action>>,
    pub states: usize,
    pub complete: bool,
    pub seconds: f64,
}

/// Breadth-first search over the model's states (no symmetry reduction) for the shortest path
/// to each target; stops when all are found, or after `max_states` states.
pub fn bfs_search(cfg: &Config, targets: &BTreeSet<Target>, max_states: usize) -> SearchResult {
    let start = Instant::now();
    let model = RaftModel::new(cfg.clone());
    let props = model.properties();
    let mut found: BTreeMap<Target, Vec<Action>> = BTreeMap::new();
    // Arena of (parent, action) for path reconstruction.
    let mut arena: Vec<(u32, Action)> = Vec::new();
    let mut visited: HashSet<u64> = HashSet::new();
    let mut queue: VecDeque<(State, u32)> = VecDeque::new();
    let init = State::new(cfg);
    visited.insert(state_hash(&init));
    arena.push((u32::MAX, Action::Restart(0)));
    queue.push_back((init, 0));
    let path_to = |arena: &Vec<(u32, Action)>, mut at: u32| {
        let mut path = Vec::new();
        while at != 0 {
            let (parent, a) = &arena[at as usize];
            path.push(a.clone());
            at = *parent;
        }
        path.reverse();
        path
    };
    let mut actions = Vec::new();
    let mut complete = true;
    'outer: while let Some((state, at)) = queue.pop_front() {
        if targets.iter().all(|t| found.contains_key(t)) {
            break;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some((next, record)) = model.step(&state, &action) else {
                continue;
            };
            if !model.within_boundary(&next) {
                continue;
            }
            let mut hits: Vec<Target> = vec![Target::Kind(action_kind(&state, &action, &record))];
            for p in &props {
                let holds = (p.condition)(&model, &next);
                let hit = match p.expectation {
                    Expectation::Sometimes => holds,
                    Expectation::Always => !holds,
                    Expectation::Eventually => false,
                };
                if hit {
                    hits.push(Target::Property(p.name));
                }
            }
            let new_hits: Vec<Target> = hits
                .into_iter()
                .filter(|t| targets.contains(t) && !found.contains_key(t))
                .collect();
            if !new_hits.is_empty() {
                let mut path = path_to(&arena, at);
                path.push(action.clone());
                for t in new_hits {
                    found.insert(t, path.clone());
                }
            }
            if visited.insert(state_hash(&next)) {
                if visited.len() >= max_states {
                    complete = false;
                    break 'outer;
                }
                arena.push((at, action));
                queue.push_back((next, arena.len() as u32 - 1));
            }
        }
    }
    SearchResult {
        found,
        states: visited.len(),
        complete: complete && queue.is_empty(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// SplitMix64: a small seeded generator, so walks are reproducible everywhere.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// How much a random walk prefers an action: elections (timeouts and vote messages) weigh
/// most, since uniform random runs rarely complete one.
pub fn walk_weight(action: &Action) -> u64 {
    match action {
        Action::ElectionTimeout(_) => 6,
        Action::Deliver(env) => match env.msg {
            Msg::RequestVote { .. } | Msg::RequestVoteResponse { .. } => 6,
            _ => 3,
        },
        Action::ClientRequest { .. } => 2,
        Action::Restart(_) | Action::Compact(_) => 1,
        Action::HeartbeatTimeout(_) => 1,
        Action::Drop(_) | Action::DropResponse(_) => 1,
        Action::DeliverResponse(_) => 2,
        Action::Admin { .. } => 2,
    }
}

/// A seeded random walk of at most `max_steps` steps, weighted by [`walk_weight`], staying
/// within the model's bounds.
pub fn random_walk(cfg: &Config, seed: u64, max_steps: usize) -> Vec<Action> {
    let model = RaftModel::new(cfg.clone());
    let mut rng = SplitMix64(seed);
    let mut state = State::new(cfg);
    let mut path = Vec::new();
    let mut actions = Vec::new();
    for _ in 0..max_steps {
        actions.clear();
        model.actions(&state, &mut actions);
        let mut options: Vec<(Action, State, u64)> = Vec::new();
        for a in actions.drain(..) {
            if let Some((next, _)) = model.step(&state, &a) {
                if model.within_boundary(&next) {
                    let w = walk_weight(&a);
                    options.push((a, next, w));
                }
            }
        }
        let total: u64 = options.iter().map(|o| o.2).sum();
        if total == 0 {
            break;
        }
        let mut pick = rng.below(total);
        let mut chosen = None;
        for (a, next, w) in options {
            if pick < w {
                chosen = Some((a, next));
                break;
            }
            pick -= w;
        }
        let (a, next) = chosen.expect("weights add up");
        path.push(a);
        state = next;
    }
    path
}

/// The configurations the F1-F6 scenarios are searched in, in order: each scenario's trace is
/// its shortest witness path in the first configuration where breadth-first search finds it.
pub fn scenario_configs() -> Vec<(&'static str, Config)> {
    // No restarts: every scenario has a leader cut off rather than crashed, and a crash
    // budget makes the breadth-first search too wide to reach the failover cases.
    let base = Config {
        max_log_len: 3,
        max_restarts: 0,
        ..Config::small()
    };
    vec![("log3-norestart", base)]
}

pub const F_PROPERTIES: [&str; 6] = crate::properties::F_WITNESSES;

/// The configurations the breadth-first cover runs in: between them every action kind is
/// reachable (drops need `drops`, pre-votes `pre_vote`, a leader's election timeout
/// `check_quorum`).
pub fn cover_configs() -> Vec<(&'static str, Config)> {
    let small = Config {
        max_in_flight: 3,
        ..Config::small()
    };
    let features = Config {
        drops: true,
        params: crate::Params {
            pre_vote: true,
            check_quorum: true,
            ..small.params.clone()
        },
        ..small.clone()
    };
    let decrement = Config {
        params: crate::Params {
            backoff: Backoff::Decrement,
            max_entries_per_append: 2,
            ..small.params.clone()
        },
        max_log_len: 3,
        ..small.clone()
    };
    // A log that disagrees with its leader at `prev_log_index` needs three terms (two leaders
    // before the one that sends); no clients or restarts keep the state space small.
    let term3 = Config {
        max_term: 3,
        max_restarts: 0,
        client_ops: vec![],
        max_in_flight: 4,
        drops: true,
        ..small.clone()
    };
    // A follower needs a snapshot when the leader compacted what it lacks; a restart from a
    // snapshot needs a compaction first.
    let snapshots = Config {
        snapshots: true,
        max_log_len: 3,
        max_in_flight: 2,
        ..small.clone()
    };
    // Reads by ReadIndex beside writes of every kind: a put then a read, a compare-and-swap
    // then a delete. A refused confirmation needs a deposed leader's round to reach a server
    // of the next term.
    let reads = Config {
        params: crate::Params {
            read_index: true,
            ..small.params.clone()
        },
        client_ops: vec![
            vec![crate::config::put(0), crate::config::get()],
            vec![crate::config::cas(1), crate::config::delete()],
        ],
        max_log_len: 3,
        max_retries: 0,
        ..small.clone()
    };
    // Two appends in flight to a follower, a full pipeline, and the fallback after appends
    // lost in flight.
    let pipelined = Config {
        params: crate::Params {
            max_inflight_appends: 2,
            ..small.params.clone()
        },
        drops: true,
        max_log_len: 3,
        ..small.clone()
    };
    vec![
        ("default", small),
        ("pipeline2-drops-log3", pipelined),
        ("reads-cas-delete", reads),
        ("snapshots-log3", snapshots),
        ("term3-noclients", term3),
        ("prevote-checkquorum-drops", features),
        ("decrement-batch2-log3", decrement),
        // Registration, eviction and the refusal of a retry whose session is gone.
        ("sessions-evict", Config::sessions()),
        // A spare joins as a learner, is promoted, and takes the leadership by transfer.
        (
            "membership-learner-transfer",
            membership(3, 1, "l2,p2,t2", 4),
        ),
        // The leader removes itself, then an operation that no longer applies is refused.
        ("membership-remove-leader", membership(3, 0, "r0,r0", 3)),
    ]
}

/// Membership changes at cover bounds.
fn membership(servers: u8, spares: u8, admin: &str, max_log_len: u8) -> Config {
    Config {
        max_log_len,
        ..Config::operator_only(servers, spares, admin)
    }
}

/// What [`export`] writes.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub out: PathBuf,
    /// Random walks per cover configuration.
    pub walks: usize,
    pub walk_len: usize,
    pub seed: u64,
    /// State limit of each breadth-first search.
    pub max_states: usize,
    /// Also run stateright's checker on each cover configuration and export its discoveries.
    pub check: bool,
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Writes the traces; returns one line per file written plus a summary, for the CLI.
pub fn export(opts: &ExportOptions) -> Result<Vec<String>, String> {
    clear_out_dir(&opts.out)?;
    let mut log = Vec::new();
    // 1. The F1-F6 scenarios.
    let missing = export_scenarios(opts, &mut log)?;
    // 2. The breadth-first cover, 3. stateright's discoveries, 4. random walks.
    for (cname, cfg) in cover_configs() {
        let model = RaftModel::new(cfg.clone());
        export_cover(opts, cname, &cfg, &model, &mut log)?;
        if opts.check {
            export_discoveries(opts, cname, &cfg, &model, &mut log)?;
        }
        export_walks(opts, cname, &cfg, &mut log)?;
    }
    if !missing.is_empty() {
        return Err(format!(
            "{}\nscenarios not found (raise --max-states): {missing:?}",
            log.join("\n")
        ));
    }
    Ok(log)
}

/// Creates `out` if missing. The directory holds exactly this export: earlier `.jsonl`
/// traces are removed first.
fn clear_out_dir(out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for entry in std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "jsonl") {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes `trace` to `file` in `out` and logs it.
fn write_trace(
    out: &Path,
    trace: Trace,
    file: String,
    log: &mut Vec<String>,
) -> Result<(), String> {
    let path = out.join(&file);
    trace
        .write(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    log.push(format!("  {file} ({} steps)", trace.steps.len()));
    Ok(())
}

/// One trace per F1-F6 scenario, searched for in the scenario configurations in turn; returns
/// the scenarios none of them reached.
fn export_scenarios(
    opts: &ExportOptions,
    log: &mut Vec<String>,
) -> Result<BTreeSet<Target>, String> {
    let mut missing: BTreeSet<Target> = F_PROPERTIES.iter().map(|p| Target::Property(p)).collect();
    for (cname, cfg) in scenario_configs() {
        if missing.is_empty() {
            break;
        }
        let r = bfs_search(&cfg, &missing, opts.max_states);
        log.push(format!(
            "scenarios in {cname}: {} states, {:.1}s, found {}/{}",
            r.states,
            r.seconds,
            r.found.len(),
            missing.len()
        ));
        for (t, path) in r.found {
            let Target::Property(name) = t else { continue };
            missing.remove(&t);
            let trace = Trace::record(&cfg, "scenario", name, &path)?;
            let f = name.split_whitespace().next().unwrap_or(name);
            write_trace(&opts.out, trace, format!("scenario-{f}.jsonl"), log)?;
        }
    }
    Ok(missing)
}

/// The breadth-first cover of one configuration: every action kind and every
/// sometimes-property, in as few traces as the paths that reach them allow.
fn export_cover(
    opts: &ExportOptions,
    cname: &str,
    cfg: &Config,
    model: &RaftModel,
    log: &mut Vec<String>,
) -> Result<(), String> {
    let mut targets: BTreeSet<Target> = BTreeSet::new();
    for kind in ACTION_KINDS {
        targets.insert(Target::Kind(kind));
    }
    for p in model.properties() {
        if p.expectation == Expectation::Sometimes {
            targets.insert(Target::Property(p.name));
        }
    }
    let r = bfs_search(cfg, &targets, opts.max_states);
    log.push(format!(
        "cover {cname}: {} states, {:.1}s, {}, reached {}/{} targets",
        r.states,
        r.seconds,
        if r.complete {
            "exhaustive"
        } else {
            "state limit"
        },
        r.found.len(),
        targets.len()
    ));
    for (i, (path, names)) in cover_paths(&r.found).into_iter().enumerate() {
        let trace = Trace::record(cfg, "cover", &names.join("; "), &path)?;
        write_trace(&opts.out, trace, format!("cover-{cname}-{i:02}.jsonl"), log)?;
    }
    Ok(())
}

/// The paths to record for the targets `found`, each with the names of the targets it
/// reaches, shortest first.
fn cover_paths(found: &BTreeMap<Target, Vec<Action>>) -> Vec<(Vec<Action>, Vec<String>)> {
    // One trace per distinct path (several targets often share one).
    let mut by_path: BTreeMap<String, (Vec<Action>, Vec<String>)> = BTreeMap::new();
    for (t, path) in found {
        let key = format!("{path:?}");
        let name = match t {
            Target::Kind(k) => format!("kind: {k}"),
            Target::Property(p) => format!("property: {p}"),
        };
        by_path
            .entry(key)
            .or_insert_with(|| (path.clone(), Vec::new()))
            .1
            .push(name);
    }
    // Drop paths that are a prefix of another path: the longer one exercises them too.
    let paths: Vec<(Vec<Action>, Vec<String>)> = by_path.into_values().collect();
    let mut kept: Vec<(Vec<Action>, Vec<String>)> = Vec::new();
    for (i, (p, names)) in paths.iter().enumerate() {
        let covering = paths
            .iter()
            .enumerate()
            .find(|(j, (q, _))| *j != i && q.len() > p.len() && q.starts_with(p));
        match covering {
            Some(_) => {}
            None => kept.push((p.clone(), names.clone())),
        }
    }
    // Names of the dropped prefixes go to a trace that covers them.
    for (p, names) in &paths {
        if kept.iter().any(|(q, _)| q == p) {
            continue;
        }
        if let Some(k) = kept
            .iter_mut()
            .find(|(q, _)| q.len() > p.len() && q.starts_with(p))
        {
            k.1.extend(names.iter().cloned());
        }
    }
    kept.sort_by_key(|(p, _)| p.len());
    kept
}

/// Stateright's own breadth-first check of one configuration: one trace per discovery
/// (a counterexample to an always-property, or a witness of a sometimes-property).
fn export_discoveries(
    opts: &ExportOptions,
    cname: &str,
    cfg: &Config,
    model: &RaftModel,
    log: &mut Vec<String>,
) -> Result<(), String> {
    let checker = model
        .clone()
        .checker()
        .target_state_count(opts.max_states)
        .spawn_bfs()
        .join();
    for (name, path) in checker.discoveries() {
        let expectation = model
            .properties()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.expectation);
        let family = match expectation {
            Some(Expectation::Always) => "counterexample",
            _ => "witness",
        };
        let trace = Trace::record(cfg, "check", name, &path.into_actions())?;
        write_trace(
            &opts.out,
            trace,
            format!("check-{cname}-{family}-{}.jsonl", slug(name)),
            log,
        )?;
    }
    Ok(())
}

/// `opts.walks` random walks in one configuration, seeded from `opts.seed` on.
fn export_walks(
    opts: &ExportOptions,
    cname: &str,
    cfg: &Config,
    log: &mut Vec<String>,
) -> Result<(), String> {
    for w in 0..opts.walks {
        let seed = opts.seed.wrapping_add(w as u64);
        let path = random_walk(cfg, seed, opts.walk_len);
        let trace = Trace::record(cfg, "walk", &format!("seed {seed}"), &path)?;
        write_trace(&opts.out, trace, format!("walk-{cname}-{seed}.jsonl"), log)?;
    }
    Ok(())
}

/// `raft-model traces`: the command-line arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct TracesArgs {
    /// Directory to write the traces to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Random walks per cover configuration.
    #[arg(long, default_value_t = 1)]
    pub walks: usize,
    /// Longest random walk.
    #[arg(long, default_value_t = 30)]
    pub walk_len: usize,
    /// Seed of the first random walk.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// State limit of each breadth-first search.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_states: usize,
    /// Also export the discoveries of stateright's BFS checker on each cover configuration.
    #[arg(long)]
    pub check: bool,
}

/// Runs `raft-model traces`.
pub fn run_cli(args: &TracesArgs) -> Result<(), String> {
    let start = Instant::now();
    let opts = ExportOptions {
        out: args.out.clone(),
        walks: args.walks,
        walk_len: args.walk_len,
        seed: args.seed,
        max_states: args.max_states,
        check: args.check,
    };
    let log = export(&opts)?;
    for line in log {
        println!("{line}");
    }
    println!(
        "traces written to {} in {:.1}s",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
