//! One nemesis run: start the cluster, run the clients and the fault schedule, heal, wait for
//! the nodes to converge, stop them, and check everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft_core::Text;
use raft_node::client::Client;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::checks;
use crate::cluster::Cluster;
use crate::history::{Cmd, Op, Outcome, Ret};
use crate::lin;
use crate::monitor::{self, Monitor};
use crate::proxy::Policy;
use crate::schedule::{self, Fault, Kind, Target};
use crate::workload::{self, Shared, Vocabulary, Workload};

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The `raft-node` binary.
    pub bin: PathBuf,
    /// Node data, configurations, logs, recordings and the history go here.
    pub dir: PathBuf,
    pub nodes: u64,
    pub seed: u64,
    pub workload: Workload,
    /// The clients stop after this long even if `max_ops` is not reached.
    pub max_time: Duration,
    pub faults: Vec<Kind>,
    /// Record every node's core steps and validate them against the model (needs the model
    /// vocabulary).
    pub record: bool,
    /// Quiet time before the first fault.
    pub warmup_ms: u64,
    /// Every kill and pause hits the leader (instead of the leader or a random node).
    pub target_leader: bool,
    /// Print each fault as it starts.
    pub verbose: bool,
    /// The nodes' `max_sessions` (`None`: their default, 16,384). Small, with
    /// `workload.churn`, to put the clients' sessions under eviction pressure.
    pub max_sessions: Option<usize>,
}

/// The run's session bound: the configured one, or the nodes' default.
fn max_sessions(cfg: &RunConfig) -> usize {
    cfg.max_sessions
        .unwrap_or_else(raft_node::runtime::config::default_max_sessions)
}

/// The figures and verdicts of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub elapsed: Duration,
    pub ops: usize,
    pub ops_ok: usize,
    pub ops_fail: usize,
    pub ops_unknown: usize,
    pub faults: BTreeMap<&'static str, u64>,
    pub leader_changes: usize,
    pub leader_loss: Vec<Duration>,
    pub leader_loss_unresolved: usize,
    pub acknowledged_writes: usize,
    pub lost_writes: usize,
    pub unknown_applied: usize,
    pub unknown_not_applied: usize,
    pub duplicate_log_entries: usize,
    /// Writes answered "session expired" (counted as unknown outcomes).
    pub ops_expired: usize,
    /// Registrations in the committed log, sessions they evicted, and the entries of clients
    /// without a session (not applied), of which retries of an applied `(client_id, seq)`.
    pub registrations: usize,
    pub evictions: usize,
    pub expired_entries: usize,
    pub refused_retries: usize,
    /// Writes without a session in the committed log (the churn thread's).
    pub sessionless_entries: usize,
    /// The churn thread's registrations and sessionless writes that were answered.
    pub churn: (u64, u64),
    pub committed_entries: u64,
    pub lin: Option<lin::Stats>,
    pub validated_steps: usize,
    pub validated_files: usize,
    pub proxy_frames: (u64, u64, u64, u64),
    pub anomalies: Vec<String>,
}

fn nap_until(t: Instant, done: &dyn Fn() -> bool) {
    while Instant::now() < t && !done() {
        std::thread::sleep(Duration::from_millis(10).min(t - Instant::now()));
    }
}

/// An applied fault, to be healed.
struct Applied {
    kind: Kind,
    node: Option<u64>,
    /// The leader it took away: (term, when).
    leader_lost: Option<(u64, Instant)>,
}

fn apply(
    f: &Fault,
    cluster: &mut Cluster,
    mon: &Monitor,
    rng: &mut StdRng,
) -> Result<(Applied, String), String> {
    let ids = cluster.ids();
    let leader = mon.leader(Duration::from_millis(500));
    let resolve = |t: Target, rng: &mut StdRng| match t {
        Target::Node(n) => n,
        Target::Leader => leader.map_or_else(|| *ids.choose(rng).unwrap(), |l| l.0),
    };
    let policy = |blackhole: bool| Policy {
        blackhole,
        refuse: !blackhole,
        ..Policy::default()
    };
    let px = &cluster.proxies;
    let mut node = None;
    let what;
    match f.kind {
        Kind::Kill | Kind::Pause | Kind::IsolateLeader => {
            let n = resolve(f.target, rng);
            node = Some(n);
            match f.kind {
                Kind::Kill => cluster.kill(n),
                Kind::Pause => cluster.pause(n)?,
                _ => {
                    for m in ids.iter().filter(|&&m| m != n) {
                        px.set(n, *m, policy(f.blackhole));
                        px.set(*m, n, policy(f.blackhole));
                    }
                }
            }
            what = format!("node {n}");
        }
        Kind::Partition | Kind::Asymmetric | Kind::Bridge => {
            let a: BTreeSet<u64> = f.side_a.iter().copied().collect();
            let b: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|x| !a.contains(x) && Some(*x) != f.bridge)
                .collect();
            for &x in &a {
                for &y in &b {
                    px.set(x, y, policy(f.blackhole));
                    if f.kind != Kind::Asymmetric {
                        px.set(y, x, policy(f.blackhole));
                    }
                }
            }
            what = format!("{a:?} / {b:?}");
        }
        Kind::Loss | Kind::Delay => {
            for (x, y) in px.links() {
                px.set(
                    x,
                    y,
                    Policy {
                        loss: if f.kind == Kind::Loss { f.loss } else { 0.0 },
                        delay_ms: if f.kind == Kind::Delay {
                            f.delay_ms
                        } else {
                            (0, 0)
                        },
                        ..Policy::default()
                    },
                );
            }
            what = "all links".into();
        }
    }
    let leader_lost = match (leader, node) {
        (Some((l, term)), Some(n)) if l == n => Some((term, Instant::now())),
        _ => None,
    };
    Ok((
        Applied {
            kind: f.kind,
            node,
            leader_lost,
        },
        what,
    ))
}

fn heal(a: &Applied, cluster: &mut Cluster) -> Result<(), String> {
    match a.kind {
        Kind::Kill => cluster.start(a.node.unwrap()),
        Kind::Pause => cluster.resume(a.node.unwrap()),
        _ => {
            cluster.proxies.heal();
            Ok(())
        }
    }
}

/// Wait until every node answers with the same term and leader and the same commit, applied
/// and last log index. Returns that index.
fn converge(https: &[String], within: Duration) -> Result<u64, String> {
    let agent = monitor::agent(Duration::from_secs(1));
    let until = Instant::now() + within;
    let mut stable = 0;
    loop {
        let st: Vec<Option<serde_json::Value>> =
            https.iter().map(|h| monitor::status(&agent, h)).collect();
        let key = |v: &serde_json::Value| {
            (
                v["term"].as_u64(),
                v["leader"].as_u64(),
                v["commit_index"].as_u64(),
                v["last_applied"].as_u64(),
                v["last_log_index"].as_u64(),
            )
        };
        let keys: Vec<_> = st.iter().map(|s| s.as_ref().map(key)).collect();
        let last = format!("{keys:?}");
        let ok = keys
            .iter()
            .all(|k| k.is_some_and(|k| k.1.is_some() && k.2 == k.3 && k.3 == k.4) && *k == keys[0]);
        stable = if ok { stable + 1 } else { 0 };
        if stable >= 3 {
            return Ok(keys[0].unwrap().2.unwrap());
        }
        if Instant::now() > until {
            return Err(format!(
                "nodes did not converge within {within:?}; last (term, leader, commit, applied, last_log) per node: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Run once. `Err` only when the run could not be carried out at all (the binary does not
/// start, no leader is ever elected); anomalies are in the report.
pub fn run(cfg: &RunConfig) -> Result<Report, String> {
    if cfg.record && cfg.workload.vocabulary != Vocabulary::Model {
        return Err("recording is validated only in the model vocabulary".into());
    }
    let started = Instant::now();
    // The link proxies run on this runtime, so it is declared before the cluster and dropped
    // after it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let schedule = Schedule::draw(cfg);
    let mut report = Report {
        seed: cfg.seed,
        ..Report::default()
    };
    let mut cluster = start_cluster(cfg, rt.handle())?;
    let https = cluster.http_addrs();
    let mon = await_first_leader(cfg, &mut cluster, Monitor::start(https.clone()))?;

    let load = Load::start(cfg, &https);
    inject_faults(cfg, schedule, &mut cluster, &mon, &load, &mut report)?;
    let shared = load.finish(&mut report);
    heal_everything(&mut cluster)?;
    collect_fault_figures(mon, &cluster, &mut report);

    let mut history = std::mem::take(&mut *shared.history.lock().unwrap());
    let commit = await_convergence(&https, &mut report);
    let keys = workload::keys(&cfg.workload);
    read_final_values(cfg, &https, &shared, &keys, &mut history, &mut report);
    let node_states = read_node_states(cfg, &https, &keys, &mut report);
    stop_nodes(&mut cluster, &mut report);
    save_history(cfg, &history);

    count_outcomes(&history, &mut report);
    check_logs(cfg, &cluster, commit, &node_states, &history, &mut report);
    check_linearizability(&history, &mut report);
    if cfg.record {
        validate_recordings(&cluster, &mut report);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The fault schedule and the generator it was drawn from, which then resolves the faults'
/// random targets: a seed replays both only as long as nothing else draws from it.
struct Schedule {
    faults: Vec<Fault>,
    rng: StdRng,
}

impl Schedule {
    fn draw(cfg: &RunConfig) -> Schedule {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut faults = schedule::draw(
            &mut rng,
            cfg.nodes,
            &cfg.faults,
            cfg.warmup_ms,
            cfg.max_time.as_millis() as u64,
        );
        if cfg.target_leader {
            for f in &mut faults {
                f.target = Target::Leader;
            }
        }
        Schedule { faults, rng }
    }
}

fn start_cluster(cfg: &RunConfig, rt: &tokio::runtime::Handle) -> Result<Cluster, String> {
    let mut cluster = Cluster::new(
        &cfg.bin,
        &cfg.dir,
        cfg.nodes,
        cfg.record,
        cfg.max_sessions,
        rt,
        cfg.seed,
    )?;
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    Ok(cluster)
}

/// Returns `mon` once it has seen a leader; stops it when none comes.
fn await_first_leader(
    cfg: &RunConfig,
    cluster: &mut Cluster,
    mon: Monitor,
) -> Result<Monitor, String> {
    let until = Instant::now() + Duration::from_secs(30);
    while mon.leader(Duration::from_secs(1)).is_none() {
        if Instant::now() > until {
            mon.stop();
            return Err(format!(
                "no leader elected within 30 s; node logs in {}",
                cfg.dir.display()
            ));
        }
        if let Some((id, st)) = cluster.exited().first() {
            mon.stop();
            return Err(format!(
                "node {id} exited at start ({st}); see {}",
                cluster.log_path(*id).display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(mon)
}

/// The client threads and, under eviction pressure, the churn thread.
struct Load {
    epoch: Instant,
    shared: Arc<Shared>,
    finished: Arc<AtomicU64>,
    clients: u64,
    max_time: Duration,
    threads: Vec<JoinHandle<()>>,
    churn: Option<JoinHandle<()>>,
}

impl Load {
    /// The epoch (time 0 of the history and of the schedule) is now.
    fn start(cfg: &RunConfig, https: &[String]) -> Load {
        let epoch = Instant::now();
        let shared = Shared::new(epoch);
        let finished = Arc::new(AtomicU64::new(0));
        let threads = (0..cfg.workload.clients)
            .map(|c| {
                let (w, sh, fin, nodes) = (
                    cfg.workload.clone(),
                    shared.clone(),
                    finished.clone(),
                    https.to_vec(),
                );
                let seed = cfg.seed;
                std::thread::spawn(move || {
                    workload::client(&w, c, nodes, seed, &sh);
                    fin.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        let churn = cfg.workload.churn.map(|every| {
            let (sh, nodes, seed) = (shared.clone(), https.to_vec(), cfg.seed);
            std::thread::spawn(move || workload::churn(every, nodes, seed, &sh))
        });
        Load {
            epoch,
            shared,
            finished,
            clients: cfg.workload.clients,
            max_time: cfg.max_time,
            threads,
            churn,
        }
    }

    fn all_clients_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed) >= self.clients
    }

    fn over(&self) -> bool {
        self.all_clients_finished() || self.epoch.elapsed() >= self.max_time
    }

    /// Waits for the end of the run's time (or of every client), stops and joins the threads.
    fn finish(self, report: &mut Report) -> Arc<Shared> {
        nap_until(self.epoch + self.max_time, &|| self.all_clients_finished());
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(t) = self.churn {
            let _ = t.join();
        }
        report.churn = (
            self.shared.churn_registrations.load(Ordering::Relaxed),
            self.shared.churn_writes.load(Ordering::Relaxed),
        );
        self.shared
    }
}

/// One fault at a time, each healed before the next; the schedule is cut short when the
/// load is over.
fn inject_faults(
    cfg: &RunConfig,
    mut schedule: Schedule,
    cluster: &mut Cluster,
    mon: &Monitor,
    load: &Load,
    report: &mut Report,
) -> Result<(), String> {
    let done = || load.over();
    for f in &schedule.faults {
        nap_until(load.epoch + Duration::from_millis(f.start_ms), &done);
        if done() {
            break;
        }
        let (applied, what) = apply(f, cluster, mon, &mut schedule.rng)?;
        *report.faults.entry(f.kind.name()).or_default() += 1;
        if cfg.verbose {
            eprintln!(
                "[{:>7.3}s] {f} -> {what}",
                load.epoch.elapsed().as_secs_f64()
            );
        }
        nap_until(Instant::now() + Duration::from_millis(f.duration_ms), &done);
        // Looked up before healing, so that a leader elected only after the heal does not
        // count as recovery from the loss.
        if let Some((term, t0)) = applied.leader_lost {
            match mon.leader_after(term) {
                Some((_, _, at)) if at >= t0 => report.leader_loss.push(at - t0),
                _ => report.leader_loss_unresolved += 1,
            }
        }
        heal(&applied, cluster)?;
        restart_exited(cluster, report)?;
    }
    Ok(())
}

fn restart_exited(cluster: &mut Cluster, report: &mut Report) -> Result<(), String> {
    for (id, st) in cluster.exited() {
        report
            .anomalies
            .push(format!("node {id} exited by itself ({st}); restarted"));
        cluster.start(id)?;
    }
    Ok(())
}

/// The last fault is already healed; this covers a crash.
fn heal_everything(cluster: &mut Cluster) -> Result<(), String> {
    cluster.proxies.heal();
    for id in cluster.ids() {
        cluster.resume(id)?;
        if !cluster.is_running(id) {
            cluster.start(id)?;
        }
    }
    Ok(())
}

/// Stops the monitor.
fn collect_fault_figures(mon: Monitor, cluster: &Cluster, report: &mut Report) {
    report.leader_changes = mon.leaders().len().saturating_sub(1);
    mon.stop();
    report.proxy_frames = cluster.proxies.totals();
}

/// The commit index every node agreed on, or `None` (an anomaly) if they never did.
fn await_convergence(https: &[String], report: &mut Report) -> Option<u64> {
    let commit = match converge(https, Duration::from_secs(60)) {
        Ok(c) => Some(c),
        Err(e) => {
            report.anomalies.push(e);
            None
        }
    };
    report.committed_entries = commit.unwrap_or(0);
    commit
}

/// One linearizable read of every key after healing, appended to the checked history.
fn read_final_values(
    cfg: &RunConfig,
    https: &[String],
    shared: &Shared,
    keys: &[String],
    history: &mut Vec<Op>,
    report: &mut Report,
) {
    let final_client = cfg.workload.clients;
    let mut reader = Client::new(https.to_vec());
    reader.set_deadline(Duration::from_secs(20));
    for k in keys {
        let call_ns = shared.ns();
        let r = reader.get(k);
        let ret_ns = shared.ns();
        history.push(Op {
            client: final_client,
            client_id: reader.client_id(),
            seq: None,
            key: k.clone(),
            cmd: Cmd::Get,
            call_ns,
            ret_ns,
            outcome: match r {
                Ok(v) => Outcome::Ok(Ret::Value(v)),
                Err(e) => {
                    report
                        .anomalies
                        .push(format!("final read of {k} after healing failed: {e}"));
                    Outcome::Unknown(e.to_string())
                }
            },
        });
    }
}

/// Each node's own state, by stale reads from that node, to compare with the replayed log.
fn read_node_states(
    cfg: &RunConfig,
    https: &[String],
    keys: &[String],
    report: &mut Report,
) -> Vec<(u64, BTreeMap<Text, Text>)> {
    let mut node_states = Vec::new();
    let mut state_keys = keys.to_vec();
    if cfg.workload.churn.is_some() {
        state_keys.push(workload::NOISE_KEY.to_string());
    }
    for (k, h) in https.iter().enumerate() {
        let mut c = Client::new(vec![h.clone()]);
        c.set_deadline(Duration::from_secs(5));
        let mut kv = BTreeMap::new();
        for key in &state_keys {
            match c.get_stale(key) {
                Ok(Some(v)) => {
                    kv.insert(key.as_str().into(), v.into());
                }
                Ok(None) => {}
                Err(e) => report
                    .anomalies
                    .push(format!("node {}: stale read of {key} failed: {e}", k + 1)),
            }
        }
        node_states.push((k as u64 + 1, kv));
    }
    node_states
}

fn stop_nodes(cluster: &mut Cluster, report: &mut Report) {
    for (id, st) in cluster.stop_all(Duration::from_secs(15)) {
        report
            .anomalies
            .push(format!("node {id} did not stop cleanly on SIGTERM: {st}"));
    }
}

fn save_history(cfg: &RunConfig, history: &[Op]) {
    let _ = std::fs::write(
        cfg.dir.join("history.jsonl"),
        history
            .iter()
            .map(|o| serde_json::to_string(o).unwrap() + "\n")
            .collect::<String>(),
    );
}

fn count_outcomes(history: &[Op], report: &mut Report) {
    report.ops = history.len();
    for o in history {
        match &o.outcome {
            Outcome::Ok(_) => report.ops_ok += 1,
            Outcome::Fail(_) => report.ops_fail += 1,
            Outcome::Unknown(why) => {
                report.ops_unknown += 1;
                if why.starts_with("session expired") {
                    report.ops_expired += 1;
                }
            }
        }
    }
}

/// The same committed prefix everywhere; its replay is every node's state and holds every
/// acknowledged write.
fn check_logs(
    cfg: &RunConfig,
    cluster: &Cluster,
    commit: Option<u64>,
    node_states: &[(u64, BTreeMap<Text, Text>)],
    history: &[Op],
    report: &mut Report,
) {
    let mut logs = Vec::new();
    for id in cluster.ids() {
        match checks::read_log(&cluster.config(id).data_dir) {
            Ok(l) => logs.push((id, l)),
            Err(e) => report.anomalies.push(e),
        }
    }
    // Without convergence there is no agreed commit index to compare up to.
    let Some(c) = commit else {
        return;
    };
    report.anomalies.extend(checks::compare_logs(&logs, c));
    let Some((_, log)) = logs.first() else {
        return;
    };
    let committed = &log[..(c as usize).min(log.len())];
    let r = checks::replay(committed, Some(max_sessions(cfg)));
    report.duplicate_log_entries = r.duplicate_entries;
    report.registrations = r.registrations;
    report.evictions = r.evictions;
    report.expired_entries = r.expired_entries;
    report.refused_retries = r.refused_retries;
    report.sessionless_entries = r.sessionless;
    for (id, kv) in node_states {
        if *kv != r.kv {
            report.anomalies.push(format!(
                "node {id}'s state differs from the committed log applied once per (client_id, seq) with the session rules:\n  node: {kv:?}\n  log:  {:?}",
                r.kv
            ));
        }
    }
    check_acknowledged_writes(history, &r, report);
}

fn check_acknowledged_writes(history: &[Op], r: &checks::Replay, report: &mut Report) {
    let w = checks::check_writes(history, r);
    report.acknowledged_writes = w.acknowledged;
    report.lost_writes = w.lost.len();
    report.unknown_applied = w.unknown_applied;
    report.unknown_not_applied = w.unknown_not_applied;
    for l in &w.lost {
        report
            .anomalies
            .push(format!("acknowledged write lost: {l}"));
    }
    for l in &w.wrong_answer {
        report.anomalies.push(format!("wrong answer: {l}"));
    }
    for l in &w.refused_but_applied {
        report.anomalies.push(format!("refused write applied: {l}"));
    }
}

fn check_linearizability(history: &[Op], report: &mut Report) {
    match lin::check(history, 200_000_000) {
        Ok(s) => report.lin = Some(s),
        Err(v) => {
            for x in v {
                report.anomalies.push(format!(
                    "{} on key {}: {}",
                    if x.inconclusive {
                        "linearizability undecided"
                    } else {
                        "not linearizable"
                    },
                    x.key,
                    x.detail
                ));
            }
        }
    }
}

fn validate_recordings(cluster: &Cluster, report: &mut Report) {
    for f in cluster.record_files() {
        match raft_conformance::validate::validate_file(&f) {
            Ok(r) => {
                report.validated_files += 1;
                report.validated_steps += r.steps_checked;
            }
            Err(e) => report
                .anomalies
                .push(format!("recorded events rejected by the validator: {e}")),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

impl Report {
    /// The printed summary.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "seed {} ({:.1} s)",
            self.seed,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "operations: {} ({} ok, {} failed, {} unknown/timed out, of which {} session expired)",
            self.ops, self.ops_ok, self.ops_fail, self.ops_unknown, self.ops_expired
        );
        let total: u64 = self.faults.values().sum();
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(s, "faults injected: {total} ({})", kinds.join(", "));
        let (fw, dr, dl, cn) = self.proxy_frames;
        let _ = writeln!(
            s,
            "peer frames: {fw} forwarded, {dr} dropped, {dl} delayed; {cn} peer connections"
        );
        let _ = writeln!(s, "leader changes: {}", self.leader_changes);
        let mut l = self.leader_loss.clone();
        l.sort();
        if l.is_empty() {
            let _ = writeln!(
                s,
                "time to a new leader after leader loss: no measurement ({} leader faults healed before a new leader)",
                self.leader_loss_unresolved
            );
        } else {
            let _ = writeln!(
                s,
                "time to a new leader after leader loss: median {}, max {} over {} losses ({} healed before a new leader was seen)",
                ms(l[l.len() / 2]),
                ms(*l.last().unwrap()),
                l.len(),
                self.leader_loss_unresolved
            );
        }
        let _ = writeln!(
            s,
            "committed log: {} entries; {} duplicate entries skipped at apply; unanswered writes: {} applied, {} not",
            self.committed_entries, self.duplicate_log_entries, self.unknown_applied, self.unknown_not_applied
        );
        let _ = writeln!(
            s,
            "sessions: {} registrations committed, {} evicted; {} entries of clients without a session not applied ({} of them retries of an applied write); {} writes without a session",
            self.registrations,
            self.evictions,
            self.expired_entries,
            self.refused_retries,
            self.sessionless_entries,
        );
        if self.churn != (0, 0) {
            let _ = writeln!(
                s,
                "churn thread: {} registrations and {} writes without a session answered",
                self.churn.0, self.churn.1
            );
        }
        if let Some(x) = &self.lin {
            let _ = writeln!(
                s,
                "linearizability: {} operations on {} keys checked ({} unanswered writes), {} search steps",
                x.ops_checked, x.keys, x.unknown_writes, x.search_steps
            );
        }
        if self.validated_files > 0 {
            let _ = writeln!(
                s,
                "recorded node events: {} files, {} steps checked against the model",
                self.validated_files, self.validated_steps
            );
        }
        let _ = writeln!(
            s,
            "lost acknowledged writes: {} (of {})",
            self.lost_writes, self.acknowledged_writes
        );
        let _ = writeln!(s, "anomalies: {}", self.anomalies.len());
        for a in &self.anomalies {
            let _ = writeln!(s, "  - {a}");
        }
        s
    }
}
