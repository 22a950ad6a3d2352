//! raftright side by side with etcd: a 3-member etcd (Debian's `etcd-server`) and a 3-node
//! raftright cluster on loopback, both durable (fsync on), driven by the same load generator
//! (`raft_node::loadgen`, etcd through its gRPC v3 API), runs interleaved, medians and ratios
//! printed; and, in the same rounds, the HTTP floor (`http_floor`: the node's HTTP stack
//! answering every write at once), the most raftright's client protocol can carry here.
//! See BENCHMARKS.md, section 10. One command builds and runs it all:
//!
//! ```text
//! benches/vs-etcd [--duration 10] [--rounds 3] [--clients 1,64,256,1024]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use raft_benches::etcd::EtcdClient;
use raft_node::loadgen::{self, LoadConfig, Summary};

#[derive(Parser)]
#[command(about = "raftright and etcd side by side, same load generator, runs interleaved")]
struct Args {
    /// Client counts to measure, each with one operation in flight.
    #[arg(long, value_delimiter = ',', default_value = "1,64,256,1024")]
    clients: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Runs of each system per client count (alternating which goes first).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Fraction of reads in the read-heavy mix (linearizable reads on both), run at
    /// `--mixed-clients` (0: no mixed runs).
    #[arg(long, default_value_t = 0.9)]
    mixed_reads: f64,
    #[arg(long, default_value_t = 64)]
    mixed_clients: usize,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// The raft-node binary (default: the release build beside this example).
    #[arg(long)]
    raft_node: Option<PathBuf>,
    /// The http_floor example binary (default: the one beside this example; without it, no
    /// floor is measured).
    #[arg(long)]
    http_floor: Option<PathBuf>,
    /// Where both clusters keep their data and logs (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// etcd uses ports BASE..BASE+5, raftright BASE+1000+1.. (peers) and BASE+1100+1.. (HTTP),
    /// the floor BASE+2000.
    #[arg(long, default_value_t = 23000)]
    base_port: u16,
}

/// Processes killed (SIGTERM, then SIGKILL) when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let until = Instant::now() + Duration::from_secs(10);
        for c in &mut self.0 {
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_etcd(bin: &Path, dir: &Path, base: u16) -> Result<(Procs, Vec<String>), String> {
    let peer = |i: u16| format!("http://127.0.0.1:{}", base + 3 + i);
    let client = |i: u16| format!("127.0.0.1:{}", base + i);
    let cluster: Vec<String> = (0..3).map(|i| format!("e{i}={}", peer(i))).collect();
    let mut procs = Procs(Vec::new());
    for i in 0..3u16 {
        let log = std::fs::File::create(dir.join(format!("etcd{i}.log")))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new(bin)
            .arg("--name")
            .arg(format!("e{i}"))
            .arg("--data-dir")
            .arg(dir.join(format!("etcd{i}")))
            .arg("--listen-client-urls")
            .arg(format!("http://{}", client(i)))
            .arg("--advertise-client-urls")
            .arg(format!("http://{}", client(i)))
            .arg("--listen-peer-urls")
            .arg(peer(i))
            .arg("--initial-advertise-peer-urls")
            .arg(peer(i))
            .arg("--initial-cluster")
            .arg(cluster.join(","))
            .arg("--initial-cluster-token")
            .arg("raftright-vs-etcd")
            .arg("--initial-cluster-state")
            .arg("new")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (Debian: apt-get install etcd-server)",
                    bin.display()
                )
            })?;
        procs.0.push(child);
    }
    Ok((procs, (0..3).map(client).collect()))
}

fn start_raftright(bin: &Path, dir: &Path, base: u16) -> Result<(Procs, Vec<String>), String> {
    let base = base + 1000;
    let log = std::fs::File::create(dir.join("raftright.out"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let child = Command::new(bin)
        .args(["cluster", "--nodes", "3", "--data"])
        .arg(dir.join("raftright"))
        .args(["--base-port", &base.to_string()])
        // Room for 1024 clients (each with its own connection) and the forwarded ones.
        .args(["--max-http-connections", "4096"])
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (build it: cargo build --release -p raft-node)",
                bin.display()
            )
        })?;
    let https = (1..=3)
        .map(|i| format!("127.0.0.1:{}", base + 100 + i))
        .collect();
    Ok((Procs(vec![child]), https))
}

fn start_floor(bin: &Path, dir: &Path, base: u16) -> Result<(Procs, Vec<String>), String> {
    let addr = format!("127.0.0.1:{}", base + 2000);
    let log = std::fs::File::create(dir.join("http_floor.log"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let child = Command::new(bin)
        .arg(&addr)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok((Procs(vec![child]), vec![addr]))
}

fn load(nodes: &[String], clients: usize, reads: f64, args: &Args, seed: u64) -> LoadConfig {
    LoadConfig {
        nodes: nodes.to_vec(),
        clients,
        reads,
        stale_reads: false,
        value_size: args.value_size,
        keys: args.keys,
        duration: Some(Duration::from_secs(args.duration)),
        ops: None,
        op_timeout: Duration::from_secs(10),
        token: None,
        seed,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    Raftright,
    Etcd,
    /// The HTTP floor: raftright's client protocol with nothing behind it.
    Floor,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Raftright => "raftright",
            System::Etcd => "etcd",
            System::Floor => "floor",
        }
    }
}

fn run(rt: &tokio::runtime::Runtime, system: System, cfg: LoadConfig) -> Result<Summary, String> {
    let shared = Arc::new(cfg.clone());
    rt.block_on(async {
        match system {
            System::Raftright | System::Floor => loadgen::run(cfg, |_, _| {}).await,
            System::Etcd => {
                loadgen::run_targets(
                    cfg,
                    |i, counters| EtcdClient::new(&shared, counters, i),
                    |_, _| {},
                )
                .await
            }
        }
    })
}

/// Wait until `system` acknowledges a write (its cluster has a leader).
fn wait_ready(
    rt: &tokio::runtime::Runtime,
    system: System,
    nodes: &[String],
    args: &Args,
) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let mut cfg = LoadConfig {
            duration: None,
            ops: Some(1),
            op_timeout: Duration::from_secs(2),
            ..load(nodes, 1, 0.0, args, 0)
        };
        cfg.keys = 1;
        if let Ok(s) = run(rt, system, cfg) {
            if s.writes.count == 1 {
                return Ok(());
            }
        }
        if Instant::now() > until {
            return Err(format!(
                "{} did not accept a write within 60 s",
                system.name()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The medians of a set of runs: p50, p99, p99.9 in ms (of writes, or of reads when `reads`).
fn medians(runs: &[Summary], reads: bool) -> (f64, f64, f64) {
    let lat = |s: &Summary| {
        if reads {
            s.reads.clone()
        } else {
            s.writes.clone()
        }
    };
    (
        median(runs.iter().map(|s| lat(s).p50_us as f64 / 1e3).collect()),
        median(runs.iter().map(|s| lat(s).p99_us as f64 / 1e3).collect()),
        median(runs.iter().map(|s| lat(s).p999_us as f64 / 1e3).collect()),
    )
}

fn main() {
    let args = Args::parse();
    if let Err(e) = real_main(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: &Args) -> Result<(), String> {
    if Command::new(&args.etcd).arg("--version").output().is_err() {
        return Err(format!(
            "{} not found: install etcd (Debian: apt-get install etcd-server), or pass --etcd PATH",
            args.etcd.display()
        ));
    }
    let raft_node = match &args.raft_node {
        Some(p) => p.clone(),
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/release/examples/vs_etcd -> target/release/raft-node
            let p = exe
                .parent()
                .and_then(Path::parent)
                .map(|d| d.join("raft-node"))
                .ok_or("cannot locate raft-node; pass --raft-node PATH")?;
            if !p.exists() {
                return Err(format!(
                    "{} does not exist: cargo build --release -p raft-node first, or pass --raft-node PATH",
                    p.display()
                ));
            }
            p
        }
    };
    let sibling = |name: &str| -> Option<PathBuf> {
        let p = std::env::current_exe().ok()?.parent()?.join(name);
        p.exists().then_some(p)
    };
    let floor_bin = args.http_floor.clone().or_else(|| sibling("http_floor"));
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (_etcd, etcd_nodes) = start_etcd(&args.etcd, &dir, args.base_port)?;
    let (_raftright, rr_nodes) = start_raftright(&raft_node, &dir, args.base_port)?;
    let (_floor, floor_nodes) = match &floor_bin {
        Some(bin) => {
            let (p, n) = start_floor(bin, &dir, args.base_port)?;
            (Some(p), n)
        }
        None => {
            println!("no http_floor binary beside this one (--http-floor PATH): no floor measured");
            (None, Vec::new())
        }
    };
    wait_ready(&rt, System::Etcd, &etcd_nodes, args)?;
    wait_ready(&rt, System::Raftright, &rr_nodes, args)?;
    if !floor_nodes.is_empty() {
        wait_ready(&rt, System::Floor, &floor_nodes, args)?;
    }
    let nodes = |s: System| match s {
        System::Raftright => &rr_nodes,
        System::Etcd => &etcd_nodes,
        System::Floor => &floor_nodes,
    };
    println!(
        "3 etcd members ({}) and 3 raftright nodes, loopback, fsync on, {}-byte values, {} keys, \
         {} s per run, {} runs each, interleaved; data in {}",
        String::from_utf8_lossy(
            &Command::new(&args.etcd)
                .arg("--version")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .lines()
        .next()
        .unwrap_or("etcd"),
        args.value_size,
        args.keys,
        args.duration,
        args.rounds,
        dir.display()
    );
    let mut rows = Vec::new();
    let mut plan: Vec<(usize, f64)> = args.clients.iter().map(|&c| (c, 0.0)).collect();
    if args.mixed_reads > 0.0 {
        plan.push((args.mixed_clients, args.mixed_reads));
    }
    for (clients, reads) in plan {
        let mut runs = [Vec::new(), Vec::new(), Vec::new()];
        // The floor answers writes only.
        let floor = !floor_nodes.is_empty() && reads == 0.0;
        for round in 0..args.rounds {
            let mut order = vec![System::Raftright, System::Etcd];
            if floor {
                order.push(System::Floor);
            }
            // Each system first, middle and last in turn.
            let first = round % order.len();
            order.rotate_left(first);
            for system in order {
                let cfg = load(nodes(system), clients, reads, args, round as u64 * 1000);
                let s = run(&rt, system, cfg)?;
                println!(
                    "  {:>9} clients {clients:>4} reads {reads:.1} round {round}: {:>8.0} ops/s \
                     ({:.0} writes/s), write p50 {:.2} p99 {:.2} ms, read p99 {:.2} ms, {} errors",
                    system.name(),
                    s.ops_per_s,
                    s.writes_per_s,
                    s.writes.p50_us as f64 / 1e3,
                    s.writes.p99_us as f64 / 1e3,
                    s.reads.p99_us as f64 / 1e3,
                    s.errors
                );
                runs[system as usize].push(s);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        rows.push((clients, reads, runs));
    }
    println!();
    println!("| clients | reads | raftright ops/s | etcd ops/s | ratio | raftright p50 / p99 / p99.9 ms | etcd p50 / p99 / p99.9 ms | floor writes/s | raftright / floor |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (clients, reads, runs) in rows {
        // Write latency for the write-only runs, read latency for the mixed ones.
        let latency_of_reads = reads > 0.0;
        let r = medians(&runs[0], latency_of_reads);
        let e = medians(&runs[1], latency_of_reads);
        let rate = |runs: &[Summary]| {
            if latency_of_reads {
                median(runs.iter().map(|s| s.ops_per_s).collect())
            } else {
                median(runs.iter().map(|s| s.writes_per_s).collect())
            }
        };
        let (rr, er) = (rate(&runs[0]), rate(&runs[1]));
        let floor = if runs[2].is_empty() {
            "- | -".to_string()
        } else {
            let f = rate(&runs[2]);
            format!("{f:.0} | {:.2}", rr / f)
        };
        println!(
            "| {clients} | {:.0} % | {rr:.0} | {er:.0} | {:.2}× | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {floor} |",
            reads * 100.0,
            rr / er,
            r.0,
            r.1,
            r.2,
            e.0,
            e.1,
            e.2
        );
    }
    Ok(())
}
