//! `raft-nemesis`: one seeded nemesis run against real `raft-node` processes; prints the figures
//! and exits 1 on any anomaly (2 when the run could not be carried out).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use raft_nemesis::run::{run, RunConfig};
use raft_nemesis::schedule::{self, Kind};
use raft_nemesis::workload::{self, Vocabulary, Workload};
use rand::SeedableRng;

#[derive(Parser, Debug)]
#[command(
    name = "raft-nemesis",
    about = "Run a raft-node cluster under faults and check the history"
)]
struct Args {
    /// The raft-node binary (default: $RAFT_NODE_BIN, else next to this executable).
    #[arg(long)]
    raft_node: Option<PathBuf>,
    /// 3 or 5.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Seed of the fault schedule and the clients' choices (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many operations.
    #[arg(long, default_value_t = 20_000)]
    ops: u64,
    /// Stop after this many seconds even if the operations are not done.
    #[arg(long, default_value_t = 60)]
    time: u64,
    #[arg(long, default_value_t = 8)]
    clients: u64,
    /// Keys (the model vocabulary of --record has two).
    #[arg(long, default_value_t = 8)]
    keys: u64,
    /// A client gives up on an operation after this many ms (its outcome is then unknown).
    #[arg(long, default_value_t = 5000)]
    op_timeout_ms: u64,
    /// Comma-separated fault kinds (default: all): kill,pause,partition,asymmetric,bridge,
    /// loss,delay,isolate-leader,fd-exhaust,slowloris,long-partition,composed,
    /// transfer-leader,membership-churn, and with --client-proxies client-cut.
    #[arg(long)]
    faults: Option<String>,
    /// Record every node's core steps and validate them against the model. Uses the model's
    /// vocabulary: keys k0/k1, put/get, at most --max-writes writes (log indexes stay < 256).
    #[arg(long)]
    record: bool,
    /// With --record: the write budget.
    #[arg(long, default_value_t = 120)]
    max_writes: u64,
    /// Where node data, logs and the history go (default: a fresh directory under /tmp, kept).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Reads are stale reads from a random node: NOT linearizable, to see the checker catch
    /// it (expect exit 1).
    #[arg(long)]
    stale_reads: bool,
    /// Every kill and pause hits the leader.
    #[arg(long)]
    target_leader: bool,
    /// Print the fault schedule and exit.
    #[arg(long)]
    print_schedule: bool,
    /// Print each fault as it is injected.
    #[arg(long, short)]
    verbose: bool,
    /// The nodes' session bound (default: theirs, 16,384; with --eviction-pressure: the
    /// number of clients plus 2).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_sessions: Option<u64>,
    /// Put the clients' sessions under eviction pressure: a small --max-sessions, a thread
    /// that registers a session nobody uses and sends a write without a session every 50 ms,
    /// and client 0 idling 1 s between operations. Writes answered "session expired" count as
    /// unknown outcomes; the exactly-once checks must still pass.
    #[arg(long)]
    eviction_pressure: bool,
    /// fd-exhaust: idle connections opened to the node's HTTP port (its cap is 512).
    #[arg(long, default_value_t = 1100)]
    fd_conns: usize,
    /// slowloris: connections trickling a request head, one byte a second.
    #[arg(long, default_value_t = 64)]
    slowloris_conns: usize,
    /// The nodes' http_header_timeout_ms (default: 2000 when slowloris is among the faults,
    /// else the node's own, 10,000). A slowloris fault lasts this plus 1.5 s at least.
    #[arg(long)]
    http_header_timeout_ms: Option<u64>,
    /// long-partition lasts from this to 1.5 times this, in ms.
    #[arg(long, default_value_t = 12_000)]
    long_ms: u64,
    /// Compaction: the nodes' snapshot_entries (0: none, the default); with it their log
    /// segments are 64 KiB, and the post-run checks start from the snapshots.
    #[arg(long, default_value_t = 0)]
    snapshot_entries: u64,
    /// Client traffic through a proxy in front of each node's HTTP port (redirects and
    /// forwards between nodes too): enables client-cut faults, and delay faults delay it.
    #[arg(long)]
    client_proxies: bool,
}

/// The churn thread's interval under `--eviction-pressure`.
const CHURN: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let a = Args::parse();
    match go(a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn go(a: Args) -> Result<bool, String> {
    if a.nodes != 3 && a.nodes != 5 {
        return Err("--nodes must be 3 or 5".into());
    }
    if a.clients == 0 || a.keys == 0 || a.ops == 0 || a.time == 0 {
        return Err("--clients, --keys, --ops and --time must be at least 1".into());
    }
    if a.record && !(1..=250).contains(&a.max_writes) {
        return Err("--max-writes must be in 1..=250 (model values are below 256)".into());
    }
    let faults: Vec<Kind> = match &a.faults {
        // client-cut only with client proxies, so that without them the default draws the
        // schedule it drew before client-cut existed.
        None => schedule::ALL
            .into_iter()
            .filter(|k| a.client_proxies || *k != Kind::ClientCut)
            .collect(),
        Some(s) => s
            .split(',')
            .map(|x| Kind::parse(x.trim()))
            .collect::<Result<_, _>>()?,
    };
    if faults.is_empty() {
        return Err("--faults names no fault".into());
    }
    if faults.contains(&Kind::ClientCut) && !a.client_proxies {
        return Err("client-cut faults need --client-proxies".into());
    }
    if a.long_ms < 1000 {
        return Err("--long-ms must be at least 1000".into());
    }
    let seed = a.seed.unwrap_or_else(rand::random);
    println!(
        "raft-nemesis seed {seed} (replay: --seed {seed}), {} nodes, {} clients, up to {} ops / {} s{}{}",
        a.nodes,
        a.clients,
        a.ops,
        a.time,
        if a.record { ", recording" } else { "" },
        if a.eviction_pressure { ", eviction pressure" } else { "" }
    );
    let warmup_ms = 1000;
    let header_timeout = a
        .http_header_timeout_ms
        .or_else(|| faults.contains(&Kind::Slowloris).then_some(2000));
    if a.print_schedule {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let lengths = raft_nemesis::run::lengths(a.long_ms, header_timeout);
        for mut f in schedule::draw(
            &mut rng,
            a.nodes,
            &faults,
            warmup_ms,
            a.time * 1000,
            lengths,
        ) {
            if a.target_leader && !f.kind.is_membership() {
                f.target = schedule::Target::Leader;
                if let Some(parts) = f.composed.as_deref_mut() {
                    parts[1].target = schedule::Target::Leader;
                }
            }
            println!("{f}");
        }
        return Ok(true);
    }
    let bin = raft_nemesis::find_raft_node(a.raft_node)?;
    let dir = match a.dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(&d)
                    .map_err(|e| e.to_string())?
                    .next()
                    .is_some()
            {
                return Err(format!("{} is not empty", d.display()));
            }
            d
        }
        None => std::env::temp_dir().join(format!("raft-nemesis-{seed}-{}", std::process::id())),
    };
    let cfg = RunConfig {
        bin,
        dir: dir.clone(),
        nodes: a.nodes,
        seed,
        workload: Workload {
            clients: a.clients,
            keys: if a.record { 2 } else { a.keys },
            vocabulary: if a.record {
                Vocabulary::Model
            } else {
                Vocabulary::Full
            },
            max_ops: a.ops,
            max_writes: a.max_writes,
            op_timeout: Duration::from_millis(a.op_timeout_ms),
            think: if a.record {
                workload::spread(Duration::from_secs(a.time), a.clients, a.max_writes)
            } else {
                Duration::ZERO
            },
            stale_reads: a.stale_reads,
            churn: a.eviction_pressure.then_some(CHURN),
        },
        max_time: Duration::from_secs(a.time),
        faults,
        record: a.record,
        warmup_ms,
        target_leader: a.target_leader,
        verbose: a.verbose,
        max_sessions: match (a.max_sessions, a.eviction_pressure) {
            (Some(m), _) => Some(m as usize),
            (None, true) => Some(a.clients as usize + 2),
            (None, false) => None,
        },
        fd_conns: a.fd_conns,
        slowloris_conns: a.slowloris_conns,
        http_header_timeout_ms: a.http_header_timeout_ms,
        long_ms: a.long_ms,
        snapshot_entries: a.snapshot_entries,
        client_proxies: a.client_proxies,
    };
    let report = run(&cfg)?;
    print!("{}", report.render());
    println!("data, node logs and history.jsonl: {}", dir.display());
    Ok(report.anomalies.is_empty())
}
