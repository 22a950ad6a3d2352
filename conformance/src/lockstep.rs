//! Lockstep, exhaustive: a breadth-first walk of the model's whole reachable state space (no
//! symmetry reduction: the cores are not permuted) with the node cores carried along every
//! edge, the abstraction compared after every step.
//!
//! States are deduplicated by a hash of the full model state. Every edge is checked, including
//! edges into states already visited (the cores then come from the first path that reached the
//! parent). Edges into states outside the model's bounds are checked too, but not expanded
//! (stateright drops such states the same way).

use crate::cluster::{compare_initial, compare_refused_admin, compare_step, Cluster, Divergence};
use raft_core as c;
use raft_model::model::{Action, RaftModel};
use raft_model::state::State;
use raft_model::trace::action_kind;
use raft_model::Config;
use stateright::Model;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct LockstepOptions {
    pub cfg: Config,
    /// `Some(b)`: the core runs with bug `b` whatever the model does (mutation score).
    pub core_bug: Option<Option<c::Bug>>,
    /// Stop after this many unique states (the run is then not exhaustive).
    pub max_states: Option<usize>,
    /// Stop at the first divergence.
    pub stop_at_first: bool,
    /// Print a progress line to stderr every few seconds.
    pub progress: bool,
}

impl LockstepOptions {
    pub fn new(cfg: Config) -> Self {
        LockstepOptions {
            cfg,
            core_bug: None,
            max_states: None,
            stop_at_first: true,
            progress: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct LockstepReport {
    /// Unique model states reached within the bounds (each checked on arrival).
    pub states: usize,
    /// Edges (model steps) checked.
    pub edges: usize,
    /// Checked edges that lead outside the bounds (not expanded).
    pub edges_out_of_bounds: usize,
    pub divergences: usize,
    /// The first divergence and the action path from the initial state to it.
    pub first: Option<(Box<Divergence>, Vec<Action>)>,
    pub max_depth: usize,
    pub complete: bool,
    pub seconds: f64,
    pub kinds: BTreeSet<&'static str>,
    pub witnesses: BTreeSet<&'static str>,
}

impl LockstepReport {
    pub fn states_per_second(&self) -> f64 {
        self.states as f64 / self.seconds.max(1e-9)
    }
    pub fn edges_per_second(&self) -> f64 {
        self.edges as f64 / self.seconds.max(1e-9)
    }
}

/// Passes an already computed 64-bit hash through.
#[derive(Default)]
struct PassThrough(u64);
impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

fn state_hash(s: &State) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

struct Item {
    state: State,
    cluster: Cluster,
    at: u32,
    depth: u16,
}

pub fn run(opts: &LockstepOptions) -> LockstepReport {
    let start = Instant::now();
    let cfg = &opts.cfg;
    let model = RaftModel::new(cfg.clone());
    let props = raft_model::properties::witnesses(cfg);
    let mut report = LockstepReport::default();
    let mut visited: HashSet<u64, BuildHasherDefault<PassThrough>> = HashSet::default();
    // (parent, index of the action among the parent's enabled actions)
    let mut arena: Vec<(u32, u16)> = vec![(u32::MAX, 0)];
    let init = State::new(cfg);
    let cluster = Cluster::new(cfg, opts.core_bug);
    if let Err(d) = compare_initial(&init, &cluster) {
        report.divergences = 1;
        report.first = Some((d, Vec::new()));
        report.seconds = start.elapsed().as_secs_f64();
        return report;
    }
    visited.insert(state_hash(&init));
    let mut queue = VecDeque::new();
    queue.push_back(Item {
        state: init,
        cluster,
        at: 0,
        depth: 0,
    });
    let mut actions = Vec::new();
    let mut last_progress = Instant::now();
    let mut stopped = false;
    'bfs: while let Some(item) = queue.pop_front() {
        report.max_depth = report.max_depth.max(item.depth as usize);
        actions.clear();
        model.actions(&item.state, &mut actions);
        for (idx, action) in actions.iter().enumerate() {
            let Some((next, record)) = model.step(&item.state, action) else {
                // The model takes no step for an operation its leader refuses (busy) or for
                // one sent to a server that is no leader: the core must refuse it too, and
                // change nothing.
                if let Action::Admin { server } = action {
                    report.edges += 1;
                    let mut cluster = item.cluster.clone();
                    let emitted = cluster.apply(&model, &item.state, action);
                    let step = item.depth as usize + 1;
                    let refused =
                        compare_refused_admin(step, &item.state, *server, &cluster, &emitted);
                    if let Err(d) = refused {
                        let path = || path_with(&model, &arena, item.at, action);
                        if diverged(&mut report, d, path, opts.stop_at_first) {
                            stopped = true;
                            break 'bfs;
                        }
                    }
                }
                continue;
            };
            report.edges += 1;
            report
                .kinds
                .insert(action_kind(&item.state, action, &record));
            let mut cluster = item.cluster.clone();
            let emitted = cluster.apply(&model, &item.state, action);
            if let Err(d) = compare_step(
                &model,
                item.depth as usize + 1,
                &item.state,
                action,
                &record,
                &next.servers,
                &cluster,
                &emitted,
                false,
            ) {
                let path = || path_with(&model, &arena, item.at, action);
                if diverged(&mut report, d, path, opts.stop_at_first) {
                    stopped = true;
                    break 'bfs;
                }
                continue;
            }
            if !model.within_boundary(&next) {
                report.edges_out_of_bounds += 1;
                continue;
            }
            if !visited.insert(state_hash(&next)) {
                continue;
            }
            for p in &props {
                if (p.condition)(&model, &next) {
                    report.witnesses.insert(p.name);
                }
            }
            arena.push((item.at, idx as u16));
            queue.push_back(Item {
                state: next,
                cluster,
                at: arena.len() as u32 - 1,
                depth: item.depth + 1,
            });
            if opts.max_states.is_some_and(|n| visited.len() >= n) {
                stopped = true;
                break 'bfs;
            }
        }
        if opts.progress && last_progress.elapsed().as_secs() >= 5 {
            last_progress = Instant::now();
            eprintln!(
                "[{:>6.1}s] states={} edges={} queue={} depth={} divergences={}",
                start.elapsed().as_secs_f64(),
                visited.len(),
                report.edges,
                queue.len(),
                item.depth,
                report.divergences
            );
        }
    }
    report.states = visited.len();
    report.complete = !stopped && queue.is_empty();
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// Counts a divergence and keeps the first with the path to it; true when the walk stops.
fn diverged(
    report: &mut LockstepReport,
    d: Box<Divergence>,
    path: impl FnOnce() -> Vec<Action>,
    stop_at_first: bool,
) -> bool {
    report.divergences += 1;
    if report.first.is_none() {
        report.first = Some((d, path()));
    }
    stop_at_first
}

/// The actions from the initial state to arena entry `at`, then `last`.
fn path_with(model: &RaftModel, arena: &[(u32, u16)], at: u32, last: &Action) -> Vec<Action> {
    let mut path = path_to(model, arena, at);
    path.push(last.clone());
    path
}

/// The actions from the initial state to arena entry `at`.
fn path_to(model: &RaftModel, arena: &[(u32, u16)], mut at: u32) -> Vec<Action> {
    let mut indices = Vec::new();
    while at != 0 {
        let (parent, idx) = arena[at as usize];
        indices.push(idx);
        at = parent;
    }
    indices.reverse();
    let mut state = State::new(&model.cfg);
    let mut path = Vec::new();
    let mut actions = Vec::new();
    for idx in indices {
        actions.clear();
        model.actions(&state, &mut actions);
        let a = actions[idx as usize].clone();
        state = model.step(&state, &a).expect("recorded edge").0;
        path.push(a);
    }
    path
}

/// Snapshots on: a committed log of up to three entries that servers compact, with the
/// in-flight bound that keeps the walk to seconds.
/// Compaction, InstallSnapshot and restore from a snapshot all fit a 2-entry log; retries are
/// off because they only repeat what the small configuration walks already (the model keeps
/// every stale message in flight, so each extra bound multiplies the walk).
pub fn snapshot_config() -> Config {
    Config {
        snapshots: true,
        max_log_len: 2,
        max_retries: 0,
        max_in_flight: 2,
        ..Config::small()
    }
}

/// The node's own parameters (`Config::runtime`: PreVote, CheckQuorum, reads by ReadIndex,
/// 64 entries per append) at the bounds of a walk that takes seconds: one put and one read
/// with a retry, two terms, a restart (which loses a leader's reads unanswered), two messages
/// in flight. 648,645 states; without the restart 9,597.
pub fn runtime_config() -> Config {
    Config {
        max_log_len: 2,
        max_restarts: 1,
        max_in_flight: 2,
        drops: false,
        ..Config::runtime()
    }
}

/// Pipelining, two appends deep, on a network that loses messages: a full pipeline, the
/// optimistic `next_index`, and the fallback to `match_index` after a lost append. One term
/// keeps it to 1,454,397 walked states (242,804 for the checker, which folds symmetric states;
/// two terms: 2.8 M there); the rejections a second term brings are in
/// the corpus (`pipeline2-drops-log3`).
pub fn pipelined_config() -> Config {
    let mut cfg = Config {
        max_term: 1,
        max_restarts: 0,
        drops: true,
        ..small_config()
    };
    cfg.params.max_inflight_appends = 2;
    cfg
}

/// The lockstep configuration `cargo test` runs: `Config::small()` with two messages in
/// flight. The model keeps every stale message until it is delivered, so three in flight is 7.9 M states (minutes in the test profile) where two is
/// 302 k; a stale vote still reaches a candidate of the next term (the `StaleVoteCounted`
/// mutant is caught here), and the failover cases that need more room are in the corpus.
pub fn small_config() -> Config {
    Config {
        max_in_flight: 2,
        ..Config::small()
    }
}
