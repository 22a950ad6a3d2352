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

use crate::attack::{self, Exhaust, ExhaustEnd, Probe, Slowloris, SlowlorisEnd};
use crate::checks;
use crate::cluster::{Cluster, Knobs};
use crate::history::{Cmd, Op, Outcome, Ret};
use crate::lin;
use crate::membership::{self, Done, Operator};
use crate::monitor::{self, Monitor};
use crate::proxy::Policy;
use crate::schedule::{self, Fault, Kind, Lengths, Target};
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
    /// `fd-exhaust`: idle connections opened to the node's HTTP port (more than its cap).
    pub fd_conns: usize,
    /// `slowloris`: connections trickling a request head.
    pub slowloris_conns: usize,
    /// The nodes' `http_header_timeout_ms` (`None`: 2,000 when `slowloris` is among the
    /// faults, so that a slowloris fault sees it act, else the node's default).
    pub http_header_timeout_ms: Option<u64>,
    /// `long-partition` lasts from this to 1.5 times this (ms).
    pub long_ms: u64,
    /// Client traffic (and the nodes' redirects and forwards) through a proxy in front of each
    /// node's HTTP port; `client-cut` faults need it, and `delay` faults delay it too.
    pub client_proxies: bool,
    /// The nodes' `snapshot_entries` (0: no compaction); with compaction the nodes' log
    /// segments are [`COMPACTION_SEGMENT_BYTES`] so that compaction deletes some.
    pub snapshot_entries: u64,
}

/// The nodes' `wal_segment_bytes` when compaction is on.
pub const COMPACTION_SEGMENT_BYTES: u64 = 64 << 10;

/// The header timeout a run gives its nodes, if it sets one.
pub fn header_timeout_ms(cfg: &RunConfig) -> Option<u64> {
    cfg.http_header_timeout_ms
        .or_else(|| cfg.faults.contains(&Kind::Slowloris).then_some(2000))
}

/// The durations of the kinds with their own: a slowloris fault lasts the header timeout and
/// 1.5 s more, at least.
pub fn lengths(long_ms: u64, header_timeout_ms: Option<u64>) -> Lengths {
    Lengths {
        long_ms,
        slowloris_min_ms: header_timeout_ms.unwrap_or(10_000) + 1500,
    }
}

/// How late after the header timeout a slowloris connection may be closed.
const SLOWLORIS_SLACK: Duration = Duration::from_millis(2000);

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
    /// Each node's snapshot index at the end (0: none), the replay's start (node, index), the
    /// other snapshots checked against the replay, acknowledged writes found only through
    /// their session in the starting snapshot, and writes of sessions gone from it.
    pub snapshots: Vec<(u64, u64)>,
    pub replay_start: (u64, u64),
    pub snapshots_checked: usize,
    pub acked_in_snapshot: usize,
    pub uncheckable_writes: usize,
    /// Client links (with client proxies): chunks forwarded, chunks delayed, connections,
    /// connections refused.
    pub client_links: Option<(u64, u64, u64, u64)>,
    /// Long partitions that refuse connections: the dials refused in their first and in their
    /// last second.
    pub redials: Vec<(u64, u64)>,
    /// Peer connections refused by a cut link (the nodes' redials during cuts).
    pub refused_dials: u64,
    /// Composed faults by their parts (`kill+partition`).
    pub composed: BTreeMap<String, u64>,
    /// Descriptor exhaustion: how each ended, the probes of the node while it was on, and
    /// how long after the connections closed the node answered `200` again.
    pub exhaust: Vec<ExhaustEnd>,
    pub exhaust_probes: Vec<Probe>,
    pub exhaust_served_again: Vec<Duration>,
    /// Slowloris: how each ended, and the probes of the node while it was on.
    pub slowloris: Vec<SlowlorisEnd>,
    pub slowloris_probes: Vec<Probe>,
    /// The header timeout the nodes ran with, when the run set it.
    pub header_timeout_ms: Option<u64>,
    /// Per fault kind: time from healing to the first commit past the commit index at the
    /// heal, time until every node has applied that index, and faults after which neither
    /// was seen within [`HEAL_GRACE`] of the next fault's time (or before the end of the load).
    pub heal: BTreeMap<&'static str, HealTimes>,
    /// Membership changes and transfers (`transfer-leader`, `membership-churn`): what was
    /// done, found done, answered busy and failed (a failure is logged, not an anomaly).
    pub membership: membership::Counts,
    /// Transfers answered `200`: the time from the answer until the monitor saw the first
    /// leader of a later term, when that was the target, when it was another node; and those
    /// after which no new leader was seen within 3 s.
    pub transfer_took_over: Vec<Duration>,
    pub transfer_other_leader: Vec<Duration>,
    pub transfer_not_taken: usize,
    /// Operations made after the run to bring every node back as a voter (`None`: not
    /// attempted, the run has no membership kinds).
    pub restored_at_end: Option<u64>,
    /// The configuration at the end (voters, learners), as the leader saw it after the restore.
    pub final_config: Option<(Vec<u64>, Vec<u64>)>,
    pub anomalies: Vec<String>,
}

/// Times to heal of one fault kind.
#[derive(Clone, Debug, Default)]
pub struct HealTimes {
    pub commit: Vec<Duration>,
    pub caught_up: Vec<Duration>,
    /// Not seen within [`HEAL_GRACE`] of the next fault's time (or before the end of the load).
    pub commit_unresolved: usize,
    pub caught_up_unresolved: usize,
}

/// `median m, max x over n` of some durations (sorted here).
pub fn spread_of(d: &[Duration]) -> String {
    let mut d = d.to_vec();
    d.sort();
    match d.last() {
        None => "none".into(),
        Some(max) => format!(
            "median {}, max {} over {}",
            ms(d[d.len() / 2]),
            ms(*max),
            d.len()
        ),
    }
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
    /// `fd-exhaust`, `slowloris`: the connections.
    exhaust: Option<Exhaust>,
    slowloris: Option<Slowloris>,
    /// `transfer-leader` answered `200`: (the target, the term it was asked in, when).
    transfer: Option<(u64, u64, Instant)>,
}

/// How long one membership operation (or a transfer) may take, retries included.
pub const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(10);
/// How long bringing every node back as a voter may take (at a churn's heal and at the end).
pub const RESTORE_DEADLINE: Duration = Duration::from_secs(30);

fn apply(
    cfg: &RunConfig,
    f: &Fault,
    cluster: &mut Cluster,
    mon: &Monitor,
    rng: &mut StdRng,
    report: &mut Report,
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
    let mut exhaust = None;
    let mut slowloris = None;
    let mut transfer = None;
    let what;
    match f.kind {
        Kind::TransferLeader | Kind::MembershipChurn => {
            let Target::Node(n) = f.target else {
                unreachable!("membership faults name a node")
            };
            let op = Operator::new(cluster.http_addrs());
            let until = Instant::now() + Duration::from_secs(2);
            let mut c = op.config().filter(|c| c.committed);
            while c.is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
                c = op.config().filter(|c| c.committed);
            }
            let counts = &mut report.membership;
            match c.as_ref().map(|c| (c, membership::pick(c, n))) {
                None => {
                    counts.failures.push(format!(
                        "{}: skipped, no leader with a committed configuration",
                        f.kind.name()
                    ));
                    what = "skipped: no leader".into();
                }
                Some((c, None)) => {
                    counts.failures.push(format!(
                        "{}: skipped, no voter besides leader {} (voters {:?})",
                        f.kind.name(),
                        c.leader,
                        c.voters
                    ));
                    what = format!("skipped: voters {:?}", c.voters);
                }
                Some((c, Some(m))) if f.kind == Kind::TransferLeader => {
                    let r = op.run(
                        membership::Op::TransferLeader,
                        m,
                        MEMBERSHIP_DEADLINE,
                        counts,
                    );
                    if let Ok(Done::Answered { term }) = r {
                        transfer = Some((m, term, Instant::now()));
                    }
                    what = format!("leader {} -> node {m}: {r:?}", c.leader);
                }
                Some((c, Some(m))) => {
                    let r = op.run(membership::Op::Remove, m, MEMBERSHIP_DEADLINE, counts);
                    // Healed by bringing every node back as a voter, whatever the answer was.
                    node = Some(m);
                    what = format!("node {m} removed (leader {}): {r:?}", c.leader);
                }
            }
        }
        Kind::FdExhaust | Kind::Slowloris => {
            let n = resolve(f.target, rng);
            node = Some(n);
            let addr = cluster.http_addr(n);
            if f.kind == Kind::FdExhaust {
                let ex = Exhaust::start(addr, cfg.fd_conns);
                what = format!(
                    "node {n}: {} connections open ({} failed) in {}",
                    ex.opened(),
                    ex.failed,
                    ms(ex.opened_in)
                );
                exhaust = Some(ex);
                // The node answers at once even with every slot of its cap taken (a 503 to
                // a connection beyond it).
                let p = attack::probe(addr, Duration::from_secs(5));
                if let Probe::Unanswered(e) = &p {
                    report.anomalies.push(format!(
                        "node {n} did not answer under descriptor exhaustion ({} idle connections): {e}",
                        cfg.fd_conns
                    ));
                }
                report.exhaust_probes.push(p);
            } else {
                slowloris = Some(Slowloris::start(addr, cfg.slowloris_conns));
                // Well below the cap, the trickling connections leave room: the node serves.
                let p = attack::probe(addr, Duration::from_secs(5));
                if !matches!(p, Probe::Answered(200, _)) {
                    report.anomalies.push(format!(
                        "node {n} did not serve /status during a slowloris attack ({} connections): {p:?}",
                        cfg.slowloris_conns
                    ));
                }
                report.slowloris_probes.push(p);
                what = format!("node {n}: {} trickling connections", cfg.slowloris_conns);
            }
        }
        Kind::Composed => unreachable!("a composed fault is applied part by part"),
        Kind::ClientCut => {
            let n = resolve(f.target, rng);
            node = Some(n);
            if let Some(c) = &cluster.client_proxies {
                c.set(n, policy(f.blackhole));
            }
            what = format!(
                "node {n}'s client link {}",
                if f.blackhole { "stalled" } else { "refused" }
            );
        }
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
        Kind::Partition | Kind::LongPartition | Kind::Asymmetric | Kind::Bridge => {
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
            if f.kind == Kind::Delay {
                if let Some(c) = &cluster.client_proxies {
                    for id in c.ids() {
                        c.set(
                            id,
                            Policy {
                                delay_ms: f.delay_ms,
                                ..Policy::default()
                            },
                        );
                    }
                }
            }
            what = "all links".into();
        }
    }
    let leader_lost = match (leader, node) {
        (Some((l, term)), Some(n)) if l == n && !f.kind.is_membership() => {
            Some((term, Instant::now()))
        }
        _ => None,
    };
    Ok((
        Applied {
            kind: f.kind,
            node,
            leader_lost,
            exhaust,
            slowloris,
            transfer,
        },
        what,
    ))
}

fn heal(
    a: Applied,
    cluster: &mut Cluster,
    header_timeout_ms: Option<u64>,
    report: &mut Report,
) -> Result<(), String> {
    match a.kind {
        Kind::TransferLeader => Ok(()),
        Kind::MembershipChurn => {
            if a.node.is_some() {
                // The removed node (and any other not a voter) back as a learner, then
                // promoted; a failure here is retried at the end of the run.
                let op = Operator::new(cluster.http_addrs());
                let _ = op.restore(&cluster.ids(), RESTORE_DEADLINE, &mut report.membership);
            }
            Ok(())
        }
        Kind::Kill => cluster.start(a.node.unwrap()),
        Kind::Pause => cluster.resume(a.node.unwrap()),
        Kind::FdExhaust => {
            let n = a.node.unwrap();
            let end = a.exhaust.expect("the connections").stop();
            // Once they are closed, the node serves again.
            let t = Instant::now();
            let addr = cluster.http_addr(n);
            let served = loop {
                match attack::probe(addr, Duration::from_secs(1)) {
                    Probe::Answered(200, _) => break Some(t.elapsed()),
                    _ if t.elapsed() > Duration::from_secs(10) => break None,
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            match served {
                Some(d) => report.exhaust_served_again.push(d),
                None => report.anomalies.push(format!(
                    "node {n} did not serve /status within 10 s of the end of a descriptor exhaustion ({end:?})"
                )),
            }
            report.exhaust.push(end);
            Ok(())
        }
        Kind::Slowloris => {
            let n = a.node.unwrap();
            let end = a.slowloris.expect("the connections").stop();
            let limit =
                Duration::from_millis(header_timeout_ms.unwrap_or(10_000)) + SLOWLORIS_SLACK;
            let late = end.closed_after.iter().filter(|d| **d > limit).count();
            let kept = end.open_for.iter().filter(|d| **d > limit).count();
            if late + kept > 0 {
                report.anomalies.push(format!(
                    "node {n} kept slowloris connections open past its header timeout ({} ms) and {} ms: {late} closed late, {kept} still open ({end:?})",
                    header_timeout_ms.unwrap_or(10_000),
                    SLOWLORIS_SLACK.as_millis()
                ));
            }
            report.slowloris.push(end);
            Ok(())
        }
        _ => {
            cluster.proxies.heal();
            if let Some(c) = &cluster.client_proxies {
                c.heal();
            }
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
                v["voters"].clone(),
                v["learners"].clone(),
            )
        };
        let keys: Vec<_> = st.iter().map(|s| s.as_ref().map(key)).collect();
        let last = format!("{keys:?}");
        let ok = keys.iter().all(|k| {
            k.as_ref()
                .is_some_and(|k| k.1.is_some() && k.2 == k.3 && k.3 == k.4)
                && *k == keys[0]
        });
        stable = if ok { stable + 1 } else { 0 };
        if stable >= 3 {
            return Ok(keys[0].as_ref().unwrap().2.unwrap());
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
    if cfg.faults.contains(&Kind::ClientCut) && !cfg.client_proxies {
        return Err("client-cut faults need client proxies".into());
    }
    let started = Instant::now();
    // Descriptor exhaustion opens more connections than a common soft limit of 1,024 allows.
    if cfg.faults.contains(&Kind::FdExhaust) {
        raft_node::runtime::limits::raise_open_files();
    }
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
        header_timeout_ms: header_timeout_ms(cfg),
        ..Report::default()
    };
    let mut cluster = start_cluster(cfg, rt.handle())?;
    let https = cluster.http_addrs();
    let mon = await_first_leader(cfg, &mut cluster, Monitor::start(https.clone()))?;

    let load = Load::start(cfg, &cluster.client_addrs());
    inject_faults(cfg, schedule, &mut cluster, &mon, &load, &mut report)?;
    let shared = load.finish(&mut report);
    heal_everything(&mut cluster)?;
    if cfg.faults.iter().any(|k| k.is_membership()) {
        restore_membership(&cluster, &mut report);
    }
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

/// The faults a run of `cfg` will inject, in order (drawn from its seed as the run draws them).
pub fn planned_faults(cfg: &RunConfig) -> Vec<Fault> {
    Schedule::draw(cfg).faults
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
            lengths(cfg.long_ms, header_timeout_ms(cfg)),
        );
        if cfg.target_leader {
            for f in faults.iter_mut().filter(|f| !f.kind.is_membership()) {
                f.target = Target::Leader;
                if let Some(parts) = f.composed.as_deref_mut() {
                    parts[1].target = Target::Leader;
                }
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
        &Knobs {
            max_sessions: cfg.max_sessions,
            http_header_timeout_ms: header_timeout_ms(cfg),
            snapshot_entries: cfg.snapshot_entries,
            wal_segment_bytes: (cfg.snapshot_entries > 0).then_some(COMPACTION_SEGMENT_BYTES),
            client_proxies: cfg.client_proxies,
        },
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

/// One fault at a time, each healed before the next (a composed fault: the node fault inside
/// the network fault); the schedule is cut short when the load is over. Between faults, the
/// time the cluster takes to heal is measured.
fn inject_faults(
    cfg: &RunConfig,
    mut schedule: Schedule,
    cluster: &mut Cluster,
    mon: &Monitor,
    load: &Load,
    report: &mut Report,
) -> Result<(), String> {
    let done = || load.over();
    let starts: Vec<u64> = schedule.faults.iter().map(|f| f.start_ms).collect();
    // How much later than scheduled the faults start, from waiting for heals.
    let mut shift = Duration::ZERO;
    for (i, f) in schedule.faults.iter().enumerate() {
        nap_until(
            load.epoch + shift + Duration::from_millis(f.start_ms),
            &done,
        );
        if done() {
            break;
        }
        *report.faults.entry(f.kind.name()).or_default() += 1;
        let t0 = Instant::now();
        match f.composed.as_deref() {
            Some([outer, inner]) => {
                *report.composed.entry(f.label()).or_default() += 1;
                let (net, what) = apply(cfg, outer, cluster, mon, &mut schedule.rng, report)?;
                say(cfg, load, f, &format!("{}: {what}", outer.kind.name()));
                let t1 = t0 + Duration::from_millis(inner.start_ms);
                nap_until(t1, &done);
                hold(
                    cfg,
                    inner,
                    t1,
                    cluster,
                    mon,
                    &mut schedule.rng,
                    load,
                    report,
                )?;
                nap_until(t0 + Duration::from_millis(f.duration_ms), &done);
                heal(net, cluster, report.header_timeout_ms, report)?;
            }
            None => hold(cfg, f, t0, cluster, mon, &mut schedule.rng, load, report)?,
        }
        restart_exited(cluster, report)?;
        let next = starts.get(i + 1).map_or(load.epoch + cfg.max_time, |s| {
            load.epoch + shift + Duration::from_millis(*s)
        });
        shift += watch_heal(f.kind, mon, next, &done, report);
    }
    Ok(())
}

fn say(cfg: &RunConfig, load: &Load, f: &Fault, what: &str) {
    if cfg.verbose {
        eprintln!(
            "[{:>7.3}s] {f} -> {what}",
            load.epoch.elapsed().as_secs_f64()
        );
    }
}

/// Apply `f` (due at `t0`), keep it until `t0` plus its duration, heal it.
#[allow(clippy::too_many_arguments)]
fn hold(
    cfg: &RunConfig,
    f: &Fault,
    t0: Instant,
    cluster: &mut Cluster,
    mon: &Monitor,
    rng: &mut StdRng,
    load: &Load,
    report: &mut Report,
) -> Result<(), String> {
    let done = || load.over();
    let (applied, what) = apply(cfg, f, cluster, mon, rng, report)?;
    say(cfg, load, f, &what);
    let end = t0 + Duration::from_millis(f.duration_ms);
    if f.kind == Kind::LongPartition && !f.blackhole {
        // The dials the cut refuses in its first and in its last second: the nodes' redial
        // backoff, once it has grown.
        let second = Duration::from_secs(1);
        let r0 = cluster.proxies.refused();
        nap_until(t0 + second, &done);
        let r1 = cluster.proxies.refused();
        nap_until(end - second, &done);
        let r2 = cluster.proxies.refused();
        nap_until(end, &done);
        let r3 = cluster.proxies.refused();
        if !done() {
            report.redials.push((r1 - r0, r3 - r2));
        }
    }
    nap_until(end, &done);
    // Looked up before healing, so that a leader elected only after the heal does not
    // count as recovery from the loss.
    if let Some((to, term, at)) = applied.transfer {
        // The target stands at once; when the run ends (or the fault is shorter) right after
        // the answer, give the monitor up to 3 s to see a new leader.
        let until = at + Duration::from_secs(3);
        while mon.leader_after(term).is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        match mon.leader_after(term) {
            // (Zero when the monitor saw the target lead before the answer came back.)
            Some((_, l, seen)) if l == to => report
                .transfer_took_over
                .push(seen.saturating_duration_since(at)),
            Some((_, _, seen)) => report
                .transfer_other_leader
                .push(seen.saturating_duration_since(at)),
            None => report.transfer_not_taken += 1,
        }
    }
    if let Some((term, t0)) = applied.leader_lost {
        match mon.leader_after(term) {
            Some((_, _, at)) if at >= t0 => report.leader_loss.push(at - t0),
            _ => report.leader_loss_unresolved += 1,
        }
    }
    heal(applied, cluster, report.header_timeout_ms, report)
}

/// How long past the next fault's scheduled start the watch of a heal may go on (the next
/// faults then start that much later).
pub const HEAL_GRACE: Duration = Duration::from_secs(5);

/// From the heal of a fault of `kind` (now) until `until` (the next fault) and, if the heal is
/// not seen by then, for up to [`HEAL_GRACE`] more: the time to the first commit past the
/// highest commit index any node reported at the heal, and until every node has applied that
/// index (a restarted or cut-off node caught up), as the monitor sees them (20 ms polls).
/// Returns how far past `until` it went.
fn watch_heal(
    kind: Kind,
    mon: &Monitor,
    until: Instant,
    done: &dyn Fn() -> bool,
    report: &mut Report,
) -> Duration {
    let healed = Instant::now();
    let target = mon.seen().iter().map(|s| s.commit).max().unwrap_or(0);
    let mut commit: Option<Instant> = None;
    // Per node: its first answer after the heal with that index applied.
    let mut applied: Vec<Option<Instant>> = vec![None; mon.seen().len()];
    let next = until.max(healed);
    while Instant::now() < next + HEAL_GRACE && !done() {
        for (k, s) in mon.seen().iter().enumerate() {
            let Some(at) = s.at.filter(|t| *t > healed) else {
                continue;
            };
            if s.commit > target && commit.is_none_or(|c| at < c) {
                commit = Some(at);
            }
            if s.applied >= target && applied[k].is_none() {
                applied[k] = Some(at);
            }
        }
        if commit.is_some() && applied.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let h = report.heal.entry(kind.name()).or_default();
    match commit {
        Some(c) => h.commit.push(c - healed),
        None => h.commit_unresolved += 1,
    }
    match applied.iter().copied().collect::<Option<Vec<Instant>>>() {
        Some(v) => h
            .caught_up
            .push(v.into_iter().max().unwrap_or(healed) - healed),
        None => h.caught_up_unresolved += 1,
    }
    Instant::now().saturating_duration_since(next)
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
    if let Some(c) = &cluster.client_proxies {
        c.heal();
    }
    for id in cluster.ids() {
        cluster.resume(id)?;
        if !cluster.is_running(id) {
            cluster.start(id)?;
        }
    }
    Ok(())
}

/// Every node a voter again before the end-of-run checks (a node removed by a churn whose
/// heal did not finish added back as a learner and promoted), and the configuration then.
fn restore_membership(cluster: &Cluster, report: &mut Report) {
    let op = Operator::new(cluster.http_addrs());
    match op.restore(&cluster.ids(), RESTORE_DEADLINE, &mut report.membership) {
        Ok(n) => report.restored_at_end = Some(n),
        Err(e) => report
            .membership
            .failures
            .push(format!("restoring the configuration at the end: {e}")),
    }
    report.final_config = op.config().map(|c| (c.voters, c.learners));
}

/// Stops the monitor.
fn collect_fault_figures(mon: Monitor, cluster: &Cluster, report: &mut Report) {
    report.leader_changes = mon.leaders().len().saturating_sub(1);
    mon.stop();
    report.proxy_frames = cluster.proxies.totals();
    report.refused_dials = cluster.proxies.refused();
    report.client_links = cluster.client_proxies.as_ref().map(|c| c.totals());
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

/// The same committed log everywhere (after each node's snapshot); its replay (from the
/// oldest snapshot) is every node's state, equals every other snapshot at its index, and holds
/// every acknowledged write.
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
    report.snapshots = logs.iter().map(|(id, l)| (*id, l.base)).collect();
    // Without convergence there is no agreed commit index to compare up to.
    let Some(c) = commit else {
        return;
    };
    report.anomalies.extend(checks::compare_logs(&logs, c));
    let Some((start_id, start)) = checks::oldest(&logs) else {
        return;
    };
    let held = c.saturating_sub(start.base) as usize;
    let committed = &start.entries[..held.min(start.entries.len())];
    let checkpoints: Vec<u64> = logs
        .iter()
        .filter(|(_, l)| l.snapshot.is_some() && l.base <= c)
        .map(|(_, l)| l.base)
        .collect();
    let r = checks::replay_from(
        start.snapshot.as_ref(),
        start.base,
        committed,
        Some(max_sessions(cfg)),
        &checkpoints,
    );
    report.replay_start = (*start_id, start.base);
    for (id, l) in logs.iter().filter(|(id, _)| id != start_id) {
        let (Some(sm), Some(at)) = (&l.snapshot, r.states_at.get(&l.base)) else {
            continue;
        };
        report.snapshots_checked += 1;
        if checks::snapshot_state(sm) != *at {
            report.anomalies.push(format!(
                "node {id}'s snapshot at index {} differs from the replayed state there:\n  snapshot: {:?}\n  replay:   {at:?}",
                l.base,
                checks::snapshot_state(sm)
            ));
        }
    }
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
    report.acked_in_snapshot = w.in_snapshot;
    report.uncheckable_writes = w.uncheckable;
    report.unknown_applied += w.unknown_before_snapshot;
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

fn unresolved(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} not seen within 5 s of the next fault's time)")
    }
}

/// `N answered (code: count), latency …; U unanswered`.
fn probes(p: &[Probe]) -> String {
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    let mut lat = Vec::new();
    let mut unanswered = 0;
    for x in p {
        match x {
            Probe::Answered(c, d) => {
                *codes.entry(*c).or_default() += 1;
                lat.push(*d);
            }
            Probe::Unanswered(_) => unanswered += 1,
        }
    }
    let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    format!(
        "{} answered ({}), in {}; {unanswered} unanswered",
        lat.len(),
        codes.join(", "),
        spread_of(&lat)
    )
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
            "peer frames: {fw} forwarded, {dr} dropped, {dl} delayed; {cn} peer connections, {} dials refused by cut links",
            self.refused_dials
        );
        if let Some((fw, dl, cn, rf)) = self.client_links {
            let _ = writeln!(
                s,
                "client links (proxied): {cn} connections, {rf} refused by a cut; {fw} chunks forwarded, {dl} delayed"
            );
        }
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
        if !self.composed.is_empty() {
            let c: Vec<String> = self
                .composed
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "composed faults (node fault + network fault): {}",
                c.join(", ")
            );
        }
        if !self.heal.is_empty() {
            let _ = writeln!(
                s,
                "time to heal, from each fault's end: to the first commit past the commit index at that moment / until every node applied that index"
            );
            for (k, h) in &self.heal {
                let _ = writeln!(
                    s,
                    "  {k}: commit {}{}; caught up {}{}",
                    spread_of(&h.commit),
                    unresolved(h.commit_unresolved),
                    spread_of(&h.caught_up),
                    unresolved(h.caught_up_unresolved),
                );
            }
        }
        if !self.redials.is_empty() {
            let first: u64 = self.redials.iter().map(|r| r.0).sum();
            let last: u64 = self.redials.iter().map(|r| r.1).sum();
            let _ = writeln!(
                s,
                "long partitions refusing connections: {} faults, dials refused in their first second {first} in all, in their last second {last} in all",
                self.redials.len()
            );
        }
        if !self.exhaust.is_empty() {
            let sum = |f: fn(&ExhaustEnd) -> usize| self.exhaust.iter().map(f).sum::<usize>();
            let _ = writeln!(
                s,
                "descriptor exhaustion: {} faults, {} idle connections opened ({} failed): {} answered 503 by the node (its cap), {} held, {} closed silently; probes during: {}; served again after the connections closed: {}",
                self.exhaust.len(),
                sum(|e| e.opened),
                sum(|e| e.failed),
                sum(|e| e.refused),
                sum(|e| e.held),
                sum(|e| e.closed_silently),
                probes(&self.exhaust_probes),
                spread_of(&self.exhaust_served_again)
            );
        }
        if !self.slowloris.is_empty() {
            let closed: Vec<Duration> = self
                .slowloris
                .iter()
                .flat_map(|e| e.closed_after.iter().copied())
                .collect();
            let _ = writeln!(
                s,
                "slowloris (header timeout {} ms): {} faults, {} connections opened ({} failed), {} closed by the node after {}, {} open at the end; probes during: {}",
                self.header_timeout_ms.map_or("default".into(), |t| t.to_string()),
                self.slowloris.len(),
                self.slowloris.iter().map(|e| e.opened).sum::<usize>(),
                self.slowloris.iter().map(|e| e.failed).sum::<usize>(),
                closed.len(),
                spread_of(&closed),
                self.slowloris.iter().map(|e| e.open_for.len()).sum::<usize>(),
                probes(&self.slowloris_probes)
            );
        }
        if !self.membership.done.is_empty()
            || !self.membership.failures.is_empty()
            || self.restored_at_end.is_some()
        {
            let m = &self.membership;
            let per = |x: &BTreeMap<&'static str, u64>| -> String {
                let v: Vec<String> = x.iter().map(|(k, n)| format!("{k} {n}")).collect();
                if v.is_empty() {
                    "none".into()
                } else {
                    v.join(", ")
                }
            };
            let _ = writeln!(
                s,
                "membership: done {}; found already done {}; answered busy (503, retried) {} ({}); outcome unknown, looked again {}; failed {}",
                per(&m.done),
                per(&m.found_done),
                m.busy_total(),
                per(&m.busy),
                per(&m.unknown),
                m.failures.len()
            );
            let _ = writeln!(
                s,
                "transfers answered: the target was the next leader, seen after {}; another node was, seen after {}; no new leader within 3 s: {}",
                spread_of(&self.transfer_took_over),
                spread_of(&self.transfer_other_leader),
                self.transfer_not_taken
            );
            if let Some(n) = self.restored_at_end {
                let _ = writeln!(
                    s,
                    "configuration restored at the end with {n} operations; then voters {:?}, learners {:?}",
                    self.final_config.as_ref().map(|c| &c.0),
                    self.final_config.as_ref().map(|c| &c.1)
                );
            }
            for f in &m.failures {
                let _ = writeln!(s, "  membership operation failed (not an anomaly): {f}");
            }
        }
        let _ = writeln!(
            s,
            "committed log: {} entries; {} duplicate entries skipped at apply; unanswered writes: {} applied, {} not",
            self.committed_entries, self.duplicate_log_entries, self.unknown_applied, self.unknown_not_applied
        );
        if self.snapshots.iter().any(|(_, b)| *b > 0) {
            let per: Vec<String> = self
                .snapshots
                .iter()
                .map(|(id, b)| format!("node {id} at {b}"))
                .collect();
            let _ = writeln!(
                s,
                "snapshots at the end: {}; replayed from node {}'s (index {}), the {} other snapshots equal to the replay at their index; {} acknowledged writes found through their session in it, {} writes of sessions gone from it",
                per.join(", "),
                self.replay_start.0,
                self.replay_start.1,
                self.snapshots_checked,
                self.acked_in_snapshot,
                self.uncheckable_writes
            );
        }
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
