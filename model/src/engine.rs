//! The model checker's own search over a stateright `Model`: exhaustive parallel depth-first
//! search, and seeded random walks.
//!
//! Why not stateright's `Checker`: its depth-first search carries, with every pending state, a
//! copy of the whole path of action indices that led to it (copying paths was the top item of
//! the profile), fingerprints every new state twice, and counts every generated state on one
//! shared atomic. Here:
//! - the visited set (`Visited`) keeps, per state, two 64-bit numbers, its fingerprint and its
//!   parent's, in a lock-free open-addressing table;
//! - each worker searches its own stack, last in first out, and hands the bottom half of it
//!   (the shallowest states, the largest subtrees) to the shared `Pool` when a peer is idle;
//!   counts are kept per worker and added up every block of states;
//! - a path is built only for a state that needs one (a violation, a witness), after the
//!   search, by replaying the model from the initial state along the chain of parents.
//!
//! What it counts and checks follows stateright's DFS (`checker/dfs.rs`) so that the two agree:
//! - a state outside `within_boundary` is dropped as it is generated: not counted, not checked,
//!   not expanded;
//! - `total_states` counts the initial states and every successor within the boundary;
//!   `unique_states` counts distinct fingerprints, of the symmetry representative when
//!   symmetry is on; the search goes on from the state itself, not from its representative;
//! - properties are evaluated on every unique state as it is expanded, the initial states
//!   included; a state in which every always-property fails and every sometimes-property holds
//!   is not expanded (stateright's "nothing left to discover" rule);
//! - on one thread the order is stateright's too (last pushed, first expanded; successors pushed
//!   in action order), which matters for a reduction whose representative is not a canonical
//!   form: how many representatives a search meets then depends on its order. (This model's,
//!   `symmetry::representative`, is canonical; the engine does not rely on it.)
//!
//! Eventually-properties are not supported: `check` and `simulate` refuse models that have any.

use ahash::RandomState;
use stateright::{Expectation, Model, Property};
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// How to search.
#[derive(Clone, Debug)]
pub struct Options<S: Clone> {
    /// Worker threads (0 is taken as 1).
    pub threads: usize,
    /// Maps a state to the representative of its symmetry class: states are told apart by the
    /// representative's fingerprint. None: no symmetry reduction. (A `Cow`, so that a state
    /// that is its own representative need not be cloned to be hashed.)
    pub symmetry: Option<Canon<S>>,
    pub timeout: Option<Duration>,
    /// Stop once this many states were generated (`total_states`).
    pub max_states: Option<usize>,
    /// Stop at the first state that violates an always-property.
    pub stop_on_violation: bool,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// A symmetry reduction: the representative of a state's class.
pub type Canon<S> = for<'s> fn(&'s S) -> Cow<'s, S>;

/// What a search found.
#[derive(Clone, Debug)]
pub struct Report<A> {
    pub unique_states: usize,
    pub total_states: usize,
    /// States on the longest path explored, the initial state included.
    pub max_depth: usize,
    pub seconds: f64,
    /// None only for a search that ran to an empty frontier: no limit, no early stop, no
    /// worker panic. Random walks are never exhaustive.
    pub incomplete_reason: Option<String>,
    /// One per property, in `Model::properties` order.
    pub discoveries: Vec<Discovery<A>>,
}

impl<A> Report<A> {
    pub fn complete(&self) -> bool {
        self.incomplete_reason.is_none()
    }
}

/// A property and, if one was found, the path to a state that violates it (always) or
/// witnesses it (sometimes).
#[derive(Clone, Debug)]
pub struct Discovery<A> {
    pub name: &'static str,
    pub expectation: Expectation,
    pub trail: Option<Trail<A>>,
}

/// A path from an initial state: the index of the initial state in `Model::init_states`, then
/// each step as the index of its action in `Model::actions` of the state it was taken in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trail<A> {
    pub init: usize,
    pub steps: Vec<(usize, A)>,
}

impl<A> Trail<A> {
    /// The indices joined by `/`, as stateright's explorer takes them (`#/steps/<this>`).
    pub fn encode(&self) -> String {
        std::iter::once(self.init)
            .chain(self.steps.iter().map(|(i, _)| *i))
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    pub fn actions(&self) -> impl Iterator<Item = &A> {
        self.steps.iter().map(|(_, a)| a)
    }
}

/// Why the engine will not run: a property it cannot check, or random walks without a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Exhaustive search: every state reachable within the boundary, unless a limit or a
/// violation (with `stop_on_violation`) stops it first.
pub fn check<M>(model: &M, opts: &Options<M::State>) -> Result<Report<M::Action>, Refused>
where
    M: Model + Sync,
    M::State: Clone + Hash + Send + Sync,
    M::Action: Clone,
{
    let search = Search::new(model, opts)?;
    search.seed_frontier();
    let ends = search.run_workers(|_| search.explore());
    let incomplete_reason = search.exhaustive_verdict(&ends);
    Ok(search.report(incomplete_reason))
}

/// Seeded random walks on every thread (thread `t` draws from `seed + t`), each from a random
/// initial state until no step is enabled, it comes back to a state it went through, or it
/// holds `WALK_DEPTH` states; until the time or state limit, which the caller must set. Never
/// exhaustive.
pub fn simulate<M>(
    model: &M,
    opts: &Options<M::State>,
    seed: u64,
) -> Result<Report<M::Action>, Refused>
where
    M: Model + Sync,
    M::State: Clone + Hash + Send + Sync,
    M::Action: Clone,
{
    if opts.timeout.is_none() && opts.max_states.is_none() {
        return Err(Refused(
            "random walks need a time or state limit".to_string(),
        ));
    }
    let search = Search::new(model, opts)?;
    let ends = search.run_workers(|t| search.walk_until_limit(seed.wrapping_add(t as u64)));
    let panics: Vec<String> = ends.into_iter().filter_map(Result::err).collect();
    let mut reason = "simulation samples random walks; it is never exhaustive".to_string();
    if !panics.is_empty() {
        reason = format!("{}; {reason}", panics.join("; "));
    }
    Ok(search.report(Some(reason)))
}

/// States on one random walk at most: a bound on a walk's cost (and its path's length) that is
/// deeper than the exhaustive searches of the bounded configurations go.
pub const WALK_DEPTH: usize = 200;

/// States a worker expands between looks at the limits and at idle peers.
const BLOCK: usize = 64;

/// 64-bit fingerprints of states, or of their symmetry representatives. Never 0: 0 marks an
/// empty slot of the visited set and the parent of an initial state.
struct Fingerprints<S: Clone> {
    canon: Option<Canon<S>>,
    seeded: RandomState,
}

impl<S: Clone + Hash> Fingerprints<S> {
    fn new(canon: Option<Canon<S>>) -> Self {
        // Fixed seeds: the same state gets the same fingerprint in every run.
        Fingerprints {
            canon,
            seeded: RandomState::with_seeds(0x5eed_0001, 0x5eed_0002, 0x5eed_0003, 0x5eed_0004),
        }
    }

    fn of(&self, state: &S) -> u64 {
        let h = match self.canon {
            Some(canon) => self.seeded.hash_one(&*canon(state)),
            None => self.seeded.hash_one(state),
        };
        h.max(1)
    }
}

/// Visited states as fingerprint → parent fingerprint, 16 bytes a slot, in open-addressing
/// shards with linear probing. Lock-free: a lookup is plain loads and a new state claims its
/// slot with one compare-and-swap, so threads never wait for each other and one lookup's cache
/// miss does not hold up the next. It grows by stopping the world: searchers hold a read guard
/// (`Visited::table`) for a block of work, and the grower takes the write guard and rehashes
/// shard by shard, so that growing needs one shard's worth of memory on top of the table.
pub struct Visited {
    shards: RwLock<Vec<Shard>>,
    /// Slots over all shards.
    slots: AtomicUsize,
}

/// 2^6 shards: a grower's extra memory is a 64th of the table.
const SHARD_BITS: u32 = 6;

/// The most new states a worker adds under one read guard; with the minimum size below, the
/// table cannot fill up between two growth checks (see `Visited::with_room_for`).
const GUARDED_INSERTS: usize = 1024;

struct Shard {
    keys: Box<[AtomicU64]>,
    parents: Box<[AtomicU64]>,
}

/// A read guard on the visited set: inserts and lookups.
pub struct Table<'v>(RwLockReadGuard<'v, Vec<Shard>>);

impl Visited {
    /// An empty set for `threads` workers. Growth is checked between blocks of work, in which
    /// each worker adds at most `GUARDED_INSERTS` states plus one state's successors: the
    /// quarter of the table left free at a check is many times that.
    pub fn with_room_for(threads: usize) -> Self {
        let slots = (1 << 20).max(threads * GUARDED_INSERTS * 32);
        let per_shard = slots >> SHARD_BITS;
        Visited {
            shards: RwLock::new(
                (0..1 << SHARD_BITS)
                    .map(|_| Shard::zeroed(per_shard))
                    .collect(),
            ),
            slots: AtomicUsize::new(per_shard << SHARD_BITS),
        }
    }

    pub fn table(&self) -> Table<'_> {
        // Poisoned only if a grower panicked; the shards it had not rebuilt are intact and
        // the one it was rebuilding is replaced whole, so the set is still consistent.
        Table(self.shards.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Grows the table, by half, if `len` states load it above 3/4: probes stay short, and the
    /// load stays above 1/2, which bounds memory at 32 bytes a state.
    pub fn make_room(&self, len: usize) {
        if len * 4 <= self.slots.load(Ordering::Relaxed) * 3 {
            return;
        }
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        // Another worker may have grown it while this one waited.
        if len * 4 <= self.slots.load(Ordering::Relaxed) * 3 {
            return;
        }
        for shard in shards.iter_mut() {
            shard.grow();
        }
        let slots = shards.iter().map(|s| s.keys.len()).sum();
        self.slots.store(slots, Ordering::Relaxed);
    }

    /// The parent of a visited fingerprint (0 for an initial state).
    pub fn parent(&self, fp: u64) -> Option<u64> {
        self.table().parent(fp)
    }
}

impl Table<'_> {
    fn shard(&self, fp: u64) -> &Shard {
        &self.0[(fp >> (64 - SHARD_BITS)) as usize]
    }

    /// Adds a nonzero fingerprint with its parent (0 for an initial state); false if it was
    /// there already.
    pub fn insert(&self, fp: u64, parent: u64) -> bool {
        let shard = self.shard(fp);
        let mut slot = shard.home(fp);
        for _ in 0..shard.keys.len() {
            let key = &shard.keys[slot];
            let mut found = key.load(Ordering::Relaxed);
            if found == 0 {
                match key.compare_exchange(0, fp, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // Read only after the workers are joined, or under the write guard:
                        // both order this store before the read.
                        shard.parents[slot].store(parent, Ordering::Relaxed);
                        return true;
                    }
                    Err(other) => found = other,
                }
            }
            if found == fp {
                return false;
            }
            slot = shard.next(slot);
        }
        panic!("the visited set is full: it did not grow in time");
    }

    pub fn parent(&self, fp: u64) -> Option<u64> {
        let shard = self.shard(fp);
        let mut slot = shard.home(fp);
        for _ in 0..shard.keys.len() {
            match shard.keys[slot].load(Ordering::Relaxed) {
                0 => return None,
                k if k == fp => return Some(shard.parents[slot].load(Ordering::Relaxed)),
                _ => slot = shard.next(slot),
            }
        }
        None
    }
}

impl Shard {
    fn zeroed(slots: usize) -> Self {
        let zeros = || (0..slots).map(|_| AtomicU64::new(0)).collect();
        Shard {
            keys: zeros(),
            parents: zeros(),
        }
    }

    /// Where a fingerprint's probe starts: its bits below the shard bits scaled to the shard
    /// (any size works, so shards grow by half, not double, which bounds memory).
    fn home(&self, fp: u64) -> usize {
        (((fp << SHARD_BITS) as u128 * self.keys.len() as u128) >> 64) as usize
    }

    fn next(&self, slot: usize) -> usize {
        if slot + 1 == self.keys.len() {
            0
        } else {
            slot + 1
        }
    }

    /// Rehashes into a shard half as large again (exclusive access: under the write guard).
    fn grow(&mut self) {
        let old = std::mem::replace(self, Shard::zeroed(self.keys.len() * 3 / 2));
        for (key, parent) in old.keys.into_vec().into_iter().zip(old.parents.into_vec()) {
            let fp = key.into_inner();
            if fp != 0 {
                let mut slot = self.home(fp);
                while *self.keys[slot].get_mut() != 0 {
                    slot = self.next(slot);
                }
                *self.keys[slot].get_mut() = fp;
                *self.parents[slot].get_mut() = parent.into_inner();
            }
        }
    }
}

/// A state waiting to be expanded.
struct Node<S> {
    state: S,
    /// Its fingerprint: the parent of its successors.
    fp: u64,
    depth: usize,
}

/// Work sharing: each worker searches its own stack; when a peer runs dry, a busy worker hands
/// over the bottom half of its stack (the shallowest states, the largest subtrees).
struct Pool<S> {
    queue: Mutex<Queue<S>>,
    wake: Condvar,
    threads: usize,
    /// Read without the lock by busy workers deciding whether to share: share while more
    /// workers wait than batches do.
    waiting: AtomicUsize,
    queued: AtomicUsize,
    stopped: AtomicBool,
}

struct Queue<S> {
    batches: Vec<Vec<Node<S>>>,
    idle: usize,
    /// Every worker was idle with nothing queued: the frontier is empty.
    drained: bool,
}

impl<S> Pool<S> {
    fn new(threads: usize) -> Self {
        Pool {
            queue: Mutex::new(Queue {
                batches: Vec::new(),
                idle: 0,
                drained: false,
            }),
            wake: Condvar::new(),
            threads,
            waiting: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<S>> {
        // Poisoned only by a panic in this file's few lines under the lock, none of which
        // leaves the queue half-updated.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn give(&self, batch: Vec<Node<S>>) {
        let mut q = self.lock();
        q.batches.push(batch);
        self.queued.store(q.batches.len(), Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// A batch to search, or None when the search is over: stopped, or every worker idle
    /// with nothing queued.
    fn take(&self) -> Option<Vec<Node<S>>> {
        let mut q = self.lock();
        loop {
            if self.is_stopped() || q.drained {
                return None;
            }
            if let Some(batch) = q.batches.pop() {
                self.queued.store(q.batches.len(), Ordering::Relaxed);
                return Some(batch);
            }
            q.idle += 1;
            if q.idle == self.threads {
                q.drained = true;
                self.wake.notify_all();
                return None;
            }
            self.waiting.fetch_add(1, Ordering::Relaxed);
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            q.idle -= 1;
        }
    }

    fn wants_work(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > self.queued.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Under the lock, so that no worker goes to sleep between its check and its wait.
        let _q = self.lock();
        self.wake.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn queued_states(&self) -> usize {
        self.lock().batches.iter().map(Vec::len).sum()
    }
}

/// Why a search stopped before its frontier was empty (the first reason wins).
enum Halt {
    TimeLimit(Duration),
    StateLimit(usize),
    Violation,
    Panic,
}

/// How a discovery is remembered until its path is built.
enum Found {
    /// The fingerprint of the state, in the visited set with its chain of parents.
    Fingerprint(u64),
    /// The action indices of a random walk, the initial state's index first.
    Walk(Vec<usize>),
}

/// Counts a worker keeps to itself between flushes.
#[derive(Default)]
struct Tally {
    generated: usize,
    unique: usize,
    max_depth: usize,
}

/// What every worker shares.
struct Search<'a, M: Model>
where
    M::State: Clone,
{
    model: &'a M,
    opts: &'a Options<M::State>,
    threads: usize,
    started: Instant,
    fingerprints: Fingerprints<M::State>,
    properties: Vec<Property<M>>,
    always: Vec<usize>,
    sometimes: Vec<usize>,
    /// The first discovery of each property (first in time).
    found: Vec<OnceLock<Found>>,
    /// The initial states within the boundary, with their index in `init_states`.
    inits: Vec<(usize, M::State)>,
    visited: Visited,
    pool: Pool<M::State>,
    generated: AtomicUsize,
    unique: AtomicUsize,
    max_depth: AtomicUsize,
    halt: OnceLock<Halt>,
}

impl<'a, M> Search<'a, M>
where
    M: Model + Sync,
    M::State: Clone + Hash + Send + Sync,
    M::Action: Clone,
{
    fn new(model: &'a M, opts: &'a Options<M::State>) -> Result<Self, Refused> {
        let properties = model.properties();
        if let Some(p) = (properties.iter()).find(|p| p.expectation == Expectation::Eventually) {
            return Err(Refused(format!(
                "the engine does not check eventually-properties (\"{}\"): use stateright's \
                 checker (--strategy stateright-dfs)",
                p.name
            )));
        }
        let indices_of = |e: Expectation| -> Vec<usize> {
            (0..properties.len())
                .filter(|&i| properties[i].expectation == e)
                .collect()
        };
        let threads = opts.threads.max(1);
        Ok(Search {
            model,
            opts,
            threads,
            started: Instant::now(),
            fingerprints: Fingerprints::new(opts.symmetry),
            always: indices_of(Expectation::Always),
            sometimes: indices_of(Expectation::Sometimes),
            found: properties.iter().map(|_| OnceLock::new()).collect(),
            properties,
            inits: (model.init_states().into_iter().enumerate())
                .filter(|(_, s)| model.within_boundary(s))
                .collect(),
            visited: Visited::with_room_for(threads),
            pool: Pool::new(threads),
            generated: AtomicUsize::new(0),
            unique: AtomicUsize::new(0),
            max_depth: AtomicUsize::new(0),
            halt: OnceLock::new(),
        })
    }

    /// Puts the initial states in the pool, each counted and visited (like stateright, every
    /// one is expanded even if two share a fingerprint).
    fn seed_frontier(&self) {
        let mut tally = Tally::default();
        let mut batch = Vec::new();
        self.visited.make_room(self.inits.len());
        let table = self.visited.table();
        for (_, state) in &self.inits {
            let fp = self.fingerprints.of(state);
            tally.generated += 1;
            tally.unique += usize::from(table.insert(fp, 0));
            batch.push(Node {
                state: state.clone(),
                fp,
                depth: 1,
            });
        }
        self.flush(&mut tally);
        if !batch.is_empty() {
            self.pool.give(batch);
        }
    }

    fn halt(&self, why: Halt) {
        let _ = self.halt.set(why);
        self.pool.stop();
    }

    fn flush(&self, tally: &mut Tally) {
        self.generated.fetch_add(tally.generated, Ordering::Relaxed);
        self.unique.fetch_add(tally.unique, Ordering::Relaxed);
        self.max_depth.fetch_max(tally.max_depth, Ordering::Relaxed);
        *tally = Tally::default();
    }

    /// Stops the search at the time or state limit; true if it is stopped, for any reason.
    fn stop_at_limits(&self) -> bool {
        if let Some(t) = self.opts.timeout.filter(|&t| self.started.elapsed() >= t) {
            self.halt(Halt::TimeLimit(t));
        }
        if let Some(n) =
            (self.opts.max_states).filter(|&n| self.generated.load(Ordering::Relaxed) >= n)
        {
            self.halt(Halt::StateLimit(n));
        }
        self.pool.is_stopped()
    }

    /// One worker of the exhaustive search; returns how many states it left unexpanded.
    fn explore(&self) -> usize {
        let mut stack = Vec::new();
        let mut actions = Vec::new();
        let mut tally = Tally::default();
        loop {
            if stack.is_empty() {
                match self.pool.take() {
                    Some(batch) => stack = batch,
                    None => break,
                }
            }
            let table = self.visited.table();
            for _ in 0..BLOCK {
                if self.pool.is_stopped() || tally.unique >= GUARDED_INSERTS {
                    break;
                }
                let Some(node) = stack.pop() else { break };
                self.expand(node, &table, &mut stack, &mut actions, &mut tally);
            }
            drop(table);
            self.flush(&mut tally);
            self.visited.make_room(self.unique.load(Ordering::Relaxed));
            if self.stop_at_limits() {
                break;
            }
            if stack.len() > 1 && self.pool.wants_work() {
                let shallow = stack.drain(..stack.len() / 2).collect();
                self.pool.give(shallow);
            }
        }
        self.flush(&mut tally);
        stack.len()
    }

    fn expand(
        &self,
        node: Node<M::State>,
        table: &Table,
        stack: &mut Vec<Node<M::State>>,
        actions: &mut Vec<M::Action>,
        tally: &mut Tally,
    ) {
        tally.max_depth = tally.max_depth.max(node.depth);
        if !self.check_properties(&node.state, || Found::Fingerprint(node.fp)) {
            return;
        }
        self.model.actions(&node.state, actions);
        for action in actions.drain(..) {
            let Some(next) = self.model.next_state(&node.state, action) else {
                continue;
            };
            if !self.model.within_boundary(&next) {
                continue;
            }
            tally.generated += 1;
            let fp = self.fingerprints.of(&next);
            if table.insert(fp, node.fp) {
                tally.unique += 1;
                stack.push(Node {
                    state: next,
                    fp,
                    depth: node.depth + 1,
                });
            }
        }
    }

    /// Evaluates the properties on a state and records its discoveries. Returns false when
    /// nothing is left to discover below the state (stateright's rule, kept so that the counts
    /// agree): every always-property fails in it and every sometimes-property holds.
    fn check_properties(&self, state: &M::State, found: impl Fn() -> Found) -> bool {
        let mut awaiting = false;
        for &i in &self.always {
            if (self.properties[i].condition)(self.model, state) {
                awaiting = true;
            } else {
                self.discover(i, &found);
                if self.opts.stop_on_violation {
                    self.halt(Halt::Violation);
                }
            }
        }
        for &i in &self.sometimes {
            // A witness already found only matters here for the rule above.
            if awaiting && self.found[i].get().is_some() {
                continue;
            }
            if (self.properties[i].condition)(self.model, state) {
                self.discover(i, &found);
            } else {
                awaiting = true;
            }
        }
        awaiting
    }

    fn discover(&self, property: usize, found: &impl Fn() -> Found) {
        if self.found[property].get().is_none() {
            let _ = self.found[property].set(found());
        }
    }

    /// One worker of the random walks.
    fn walk_until_limit(&self, seed: u64) -> usize {
        let mut rng = SplitMix64(seed);
        let mut tally = Tally::default();
        while !self.inits.is_empty() && !self.stop_at_limits() {
            self.walk(&mut rng, &self.visited.table(), &mut tally);
            self.flush(&mut tally);
            self.visited.make_room(self.unique.load(Ordering::Relaxed));
        }
        0
    }

    fn walk(&self, rng: &mut SplitMix64, table: &Table, tally: &mut Tally) {
        let (init, state) = &self.inits[rng.below(self.inits.len())];
        let mut path = vec![*init];
        let mut state = state.clone();
        let mut actions = Vec::new();
        let mut on_walk = Vec::new();
        loop {
            // A walk that comes back to a state it went through ends there (as stateright's
            // do): Raft always has a step that changes nothing lasting (a heartbeat answered),
            // and walks spent going round such cycles see little.
            let fp = self.fingerprints.of(&state);
            if on_walk.contains(&fp) {
                return;
            }
            on_walk.push(fp);
            tally.generated += 1;
            tally.unique += usize::from(table.insert(fp, 0));
            tally.max_depth = tally.max_depth.max(path.len());
            self.check_properties(&state, || Found::Walk(path.clone()));
            if path.len() >= WALK_DEPTH || self.pool.is_stopped() {
                return;
            }
            match self.random_step(&state, rng, &mut actions) {
                Some((index, next)) => {
                    path.push(index);
                    state = next;
                }
                None => return,
            }
        }
    }

    /// A step chosen uniformly among those enabled that stay within the boundary.
    fn random_step(
        &self,
        state: &M::State,
        rng: &mut SplitMix64,
        actions: &mut Vec<M::Action>,
    ) -> Option<(usize, M::State)> {
        actions.clear();
        self.model.actions(state, actions);
        let mut untried: Vec<usize> = (0..actions.len()).collect();
        while !untried.is_empty() {
            let index = untried.swap_remove(rng.below(untried.len()));
            if let Some(next) = self.model.next_state(state, actions[index].clone()) {
                if self.model.within_boundary(&next) {
                    return Some((index, next));
                }
            }
        }
        None
    }

    /// Runs `work` on every thread, printing progress meanwhile; each worker's result, or the
    /// message of its panic.
    fn run_workers(&self, work: impl Fn(usize) -> usize + Sync) -> Vec<Result<usize, String>> {
        thread::scope(|scope| {
            let handles: Vec<_> = (0..self.threads)
                .map(|t| {
                    let work = &work;
                    thread::Builder::new()
                        .name(format!("engine-{t}"))
                        .spawn_scoped(scope, move || {
                            let _guard = HaltOnPanic(self);
                            work(t)
                        })
                        .expect("spawn a worker thread")
                })
                .collect();
            self.monitor(&handles);
            (handles.into_iter().enumerate())
                .map(|(t, h)| h.join().map_err(|e| panic_message(t, e.as_ref())))
                .collect()
        })
    }

    fn monitor(&self, handles: &[ScopedJoinHandle<'_, usize>]) {
        let mut last = (Instant::now(), 0);
        while !handles.iter().all(|h| h.is_finished()) {
            thread::sleep(Duration::from_millis(20));
            if self.opts.progress && last.0.elapsed() >= Duration::from_secs(1) {
                let unique = self.unique.load(Ordering::Relaxed);
                let rate = (unique - last.1.min(unique)) as f64 / last.0.elapsed().as_secs_f64();
                eprintln!(
                    "[{:>6.1}s] states={} unique={} unique/s={:.0} depth={} rss={}MiB",
                    self.started.elapsed().as_secs_f64(),
                    self.generated.load(Ordering::Relaxed),
                    unique,
                    rate,
                    self.max_depth.load(Ordering::Relaxed),
                    peak_rss_bytes() >> 20
                );
                let _ = std::io::stderr().flush();
                last = (Instant::now(), unique);
            }
        }
    }

    /// Why the exhaustive search is not exhaustive, or None: verified, not assumed, from how
    /// every worker ended and what is left in the frontier.
    fn exhaustive_verdict(&self, ends: &[Result<usize, String>]) -> Option<String> {
        let panics: Vec<&str> = ends
            .iter()
            .filter_map(|e| e.as_ref().err())
            .map(String::as_str)
            .collect();
        if !panics.is_empty() {
            return Some(panics.join("; "));
        }
        match self.halt.get() {
            Some(Halt::TimeLimit(t)) => {
                return Some(format!("stopped by the time limit ({}s)", t.as_secs()))
            }
            Some(Halt::StateLimit(n)) => return Some(format!("stopped at the state limit ({n})")),
            Some(Halt::Violation) => return Some("stopped at the first violation".to_string()),
            Some(Halt::Panic) => return Some("a worker thread panicked".to_string()),
            None => {}
        }
        let left: usize = ends.iter().flatten().sum::<usize>() + self.pool.queued_states();
        (left > 0).then(|| format!("the search ended with {left} states unexplored"))
    }

    fn report(&self, incomplete_reason: Option<String>) -> Report<M::Action> {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut incomplete_reason = incomplete_reason;
        let discoveries = (self.properties.iter().enumerate())
            .map(|(i, p)| {
                let trail = self.found[i].get().map(|f| self.trail(i, f));
                let trail = trail.and_then(|t| {
                    t.map_err(|e| {
                        // A path that cannot be rebuilt means the model is not deterministic
                        // or two states collided: nothing this run says can be trusted.
                        let why = format!("no path to the discovery of \"{}\": {e}", p.name);
                        incomplete_reason = Some(match incomplete_reason.take() {
                            Some(r) => format!("{r}; {why}"),
                            None => why,
                        });
                    })
                    .ok()
                });
                Discovery {
                    name: p.name,
                    expectation: p.expectation.clone(),
                    trail,
                }
            })
            .collect();
        Report {
            unique_states: self.unique.load(Ordering::Relaxed),
            total_states: self.generated.load(Ordering::Relaxed),
            max_depth: self.max_depth.load(Ordering::Relaxed),
            seconds,
            incomplete_reason,
            discoveries,
        }
    }

    /// The path to the discovery of `property`.
    fn trail(&self, property: usize, found: &Found) -> Result<Trail<M::Action>, String> {
        let indices = match found {
            Found::Walk(indices) => indices.clone(),
            Found::Fingerprint(fp) => self.indices_to(*fp, property)?,
        };
        self.replay(&indices)
    }

    /// The action indices to a state with fingerprint `fp` in which `property` has its
    /// discovery, following the chain of parents in the visited set.
    ///
    /// With symmetry on, the chain holds representatives' fingerprints: at each step the path
    /// takes an action whose successor's representative is the next on the chain and goes on
    /// from the successor itself, so the indices are valid from the real states. Two actions
    /// may lead to such successors (symmetric steps), and where the representative is not a
    /// canonical form a choice can turn out a dead end: the search backtracks. It always
    /// succeeds for a deterministic model, because the states the search took are one answer.
    fn indices_to(&self, fp: u64, property: usize) -> Result<Vec<usize>, String> {
        let chain = self.chain(fp)?;
        let inits = (self.inits.iter())
            .filter(|(_, s)| self.fingerprints.of(s) == chain[0])
            .map(|(i, s)| (*i, s.clone()));
        // `untried[k]`: the candidates for the state at depth k not tried yet, each with the
        // index of the action (or initial state) that leads to it.
        let mut untried = vec![inits.rev().collect::<Vec<_>>()];
        let mut path = Vec::new();
        while let Some(depth) = untried.len().checked_sub(1) {
            let Some((index, state)) = untried[depth].pop() else {
                untried.pop();
                continue;
            };
            path.truncate(depth);
            path.push(index);
            match chain.get(depth + 1) {
                Some(&next) => untried.push(self.successors_with(&state, next)),
                None if self.has_discovery(property, &state) => return Ok(path),
                None => {}
            }
        }
        Err("no path from the initial states follows the chain of parents".to_string())
    }

    /// The successors of `state` within the boundary whose fingerprint is `fp`, with their
    /// action indices, the first action last.
    fn successors_with(&self, state: &M::State, fp: u64) -> Vec<(usize, M::State)> {
        let mut actions = Vec::new();
        self.model.actions(state, &mut actions);
        let mut found: Vec<_> = (actions.into_iter().enumerate())
            .filter_map(|(i, a)| Some((i, self.model.next_state(state, a)?)))
            .filter(|(_, next)| {
                self.model.within_boundary(next) && self.fingerprints.of(next) == fp
            })
            .collect();
        found.reverse();
        found
    }

    /// The fingerprints from an initial state to `fp`.
    fn chain(&self, mut fp: u64) -> Result<Vec<u64>, String> {
        let mut chain = vec![fp];
        loop {
            let parent = (self.visited.parent(fp))
                .ok_or_else(|| format!("fingerprint {fp:#x} is not in the visited set"))?;
            if parent == 0 {
                break;
            }
            chain.push(parent);
            fp = parent;
        }
        chain.reverse();
        Ok(chain)
    }

    /// The state violates `property` (always) or witnesses it (sometimes).
    fn has_discovery(&self, property: usize, state: &M::State) -> bool {
        let p = &self.properties[property];
        (p.condition)(self.model, state) == (p.expectation == Expectation::Sometimes)
    }

    /// Takes the steps of `indices` from the initial state they name.
    fn replay(&self, indices: &[usize]) -> Result<Trail<M::Action>, String> {
        let (&init, steps) = indices.split_first().ok_or("an empty path")?;
        let mut state = (self.model.init_states().into_iter().nth(init))
            .ok_or_else(|| format!("no initial state {init}"))?;
        let mut trail = Trail {
            init,
            steps: Vec::new(),
        };
        for &i in steps {
            let mut actions = Vec::new();
            self.model.actions(&state, &mut actions);
            let action = actions
                .into_iter()
                .nth(i)
                .ok_or("an action index out of range")?;
            state = (self.model.next_state(&state, action.clone())).ok_or("a step not enabled")?;
            trail.steps.push((i, action));
        }
        Ok(trail)
    }
}

/// Stops the search when a worker unwinds, so that its peers do not wait for ever for the
/// work it held.
struct HaltOnPanic<'s, 'a, M: Model>(&'s Search<'a, M>)
where
    M::State: Clone;

impl<M: Model> Drop for HaltOnPanic<'_, '_, M>
where
    M::State: Clone,
{
    fn drop(&mut self) {
        if thread::panicking() {
            let _ = self.0.halt.set(Halt::Panic);
            self.0.pool.stop();
        }
    }
}

fn panic_message(thread: usize, payload: &(dyn std::any::Any + Send)) -> String {
    let msg = (payload.downcast_ref::<&str>().copied())
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("worker thread {thread} panicked: {msg}")
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, and the same sequence for a seed on every
/// platform and version, which a reproducible `--seed` needs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by scaling rather than modulo.
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

/// Peak resident memory of this process, from /proc (0 where it cannot be read).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visited_set_keeps_parents_across_growth() {
        let visited = Visited::with_room_for(1);
        let n = 3 << 20;
        // Spread over every shard: the top bits pick the shard.
        let fp = |i: usize| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for i in 0..n {
            visited.make_room(i + 1);
            assert!(visited.table().insert(fp(i), i as u64));
        }
        let table = visited.table();
        for i in 0..n {
            assert!(!table.insert(fp(i), 0));
            assert_eq!(table.parent(fp(i)), Some(i as u64));
        }
        assert_eq!(table.parent(2), None);
    }

    #[test]
    fn splitmix_is_uniform_enough_and_reproducible() {
        let mut a = SplitMix64(7);
        let mut b = SplitMix64(7);
        let mut counts = [0; 4];
        for _ in 0..4000 {
            let x = a.below(4);
            assert_eq!(x, b.below(4));
            counts[x] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
