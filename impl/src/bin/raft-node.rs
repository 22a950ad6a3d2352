//! `raft-node`: serve one node, start a local cluster, or talk to a cluster.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Child, Command as Proc, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use raft_node::client::{Client, ClientError};
use raft_node::loadgen::{self, LoadConfig};
use raft_node::runtime::config::Config;
use raft_node::runtime::identity;
use raft_node::runtime::server;

// A node allocates for every request, entry copy and frame; glibc malloc was about a quarter
// of the leader's profile under load (impl/RUNTIME.md, "Throughput").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "raft-node",
    version,
    about = "raftright: a Raft key-value node"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Initialize a node's data directory (once, before its first start) with a fresh
    /// incarnation. `serve` refuses a directory that was never initialized, so that a node
    /// whose disk came back empty cannot rejoin as the voter it was.
    Init {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one node from a TOML configuration (its data directory initialized by `init`).
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// A new node joining a running cluster: initialize its empty data directory as no
        /// member (it never stands for election) and wait for an operator to add it
        /// (`raft-node member add-learner ID`, then `promote ID`). Harmless on later starts.
        #[arg(long)]
        join: bool,
    },
    /// Start a local cluster on loopback (one process per node) and wait for Ctrl-C / SIGTERM.
    Cluster {
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
        nodes: u64,
        /// Data directory (node i keeps its state in DIR/node<i>).
        #[arg(long)]
        data: PathBuf,
        /// Node i listens for peers on BASE+i and for HTTP on BASE+100+i.
        #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1024..=65000))]
        base_port: u16,
        #[arg(long, default_value = "raftright-local")]
        cluster_id: String,
        /// Record every node's core steps to DIR/node<i>.jsonl (for `raft-conformance validate`).
        #[arg(long)]
        record: bool,
        /// Require this bearer token on every HTTP request (`api_token` in each node's config).
        #[arg(long, env = "RAFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Client sessions each node keeps (`max_sessions`; default 16384). Only registrations
        /// evict, the least recently used session first.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_sessions: Option<u64>,
        /// Most HTTP connections each node serves at once (`max_http_connections`; default the
        /// lower of 512 and half of the open-file limit less a storage reserve of 128).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_http_connections: Option<u64>,
        /// Pipelining: most appends in flight to one follower (`max_inflight_appends`;
        /// default 0: off; 8 is the depth `raft-model check --config runtime-pipelined` checks).
        #[arg(long)]
        max_inflight_appends: Option<u64>,
    },
    /// Client commands.
    Kv {
        /// HTTP addresses of some nodes, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
        )]
        nodes: Vec<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Write through this session (from `raft-node kv register`) instead of registering a
        /// new one. With it, pass --seq: one more than the last one used, or the same seq to
        /// retry a write whose outcome is unknown.
        #[arg(long, requires = "seq", value_parser = clap::value_parser!(u64).range(1..))]
        client_id: Option<u64>,
        /// Sequence number of this command (with --client-id; a retry reuses it).
        #[arg(long, requires = "client_id", value_parser = clap::value_parser!(u64).range(1..))]
        seq: Option<u64>,
        /// Bearer token of the cluster's API (also read from RAFT_TOKEN).
        #[arg(long, env = "RAFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Membership: list the configuration, add or remove members, promote learners, hand the
    /// leadership to another voter (at the leader, found as for writes).
    Member {
        /// HTTP addresses of some nodes, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
        )]
        nodes: Vec<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Bearer token of the cluster's API (also read from RAFT_TOKEN).
        #[arg(long, env = "RAFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        op: MemberOp,
    },
    /// Load generator: concurrent clients against a running cluster; throughput and latency.
    Bench(BenchArgs),
}

#[derive(Subcommand)]
enum MemberOp {
    /// Every node's view of the configuration: voters, learners, whether it is committed.
    List,
    /// Add node ID as a voter (a learner is promoted). Prefer add-learner, then promote once
    /// it has caught up: a new voter that lags can stall commits.
    Add { id: u64 },
    /// Add node ID as a learner: it receives the log but neither votes nor counts for commit.
    AddLearner { id: u64 },
    /// Make learner ID a voter.
    Promote { id: u64 },
    /// Remove voter or learner ID (the leader too: it steps down once the change commits).
    Remove { id: u64 },
    /// Make voter ID the leader (it must hold the leader's whole log; retried until it does).
    TransferLeader { id: u64 },
}

#[derive(Subcommand)]
enum KvOp {
    /// Set KEY to VALUE.
    Put { key: String, value: String },
    /// Read KEY (linearizable unless --stale).
    Get {
        key: String,
        #[arg(long)]
        stale: bool,
    },
    /// Delete KEY.
    Del { key: String },
    /// Set KEY to --new iff it holds --expected (omit either for "absent").
    Cas {
        key: String,
        #[arg(long)]
        expected: Option<String>,
        #[arg(long)]
        new: Option<String>,
    },
    /// Open a client session and print its client id (for --client-id/--seq).
    Register,
    /// Status of every node.
    Status,
}

fn member(nodes: Vec<String>, timeout_ms: u64, token: Option<String>, op: MemberOp) -> ExitCode {
    let mut c = Client::new(nodes);
    let deadline = Duration::from_millis(timeout_ms);
    c.set_deadline(deadline);
    c.set_token(token);
    let ids = |v: &serde_json::Value| {
        let list: Vec<String> = (v.as_array().into_iter().flatten())
            .map(|x| x.to_string())
            .collect();
        format!("[{}]", list.join(", "))
    };
    let (name, id) = match op {
        MemberOp::List => {
            for (node, r) in c.membership() {
                match r {
                    Ok(v) => println!(
                        "{node}: node {} leader {} voters {} learners {}{}",
                        v["id"],
                        v["leader"],
                        ids(&v["voters"]),
                        ids(&v["learners"]),
                        if v["committed"] == true {
                            ""
                        } else {
                            " (uncommitted)"
                        }
                    ),
                    Err(e) => println!("{node}: unreachable ({e})"),
                }
            }
            return ExitCode::SUCCESS;
        }
        MemberOp::Add { id } => ("add-voter", id),
        MemberOp::AddLearner { id } => ("add-learner", id),
        MemberOp::Promote { id } => ("promote", id),
        MemberOp::Remove { id } => ("remove", id),
        MemberOp::TransferLeader { id } => ("transfer-leader", id),
    };
    let v = match c.change_membership(name, id) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if name != "transfer-leader" {
        println!(
            "committed at index {}: voters {} learners {}",
            v["index"],
            ids(&v["voters"]),
            ids(&v["learners"])
        );
        return ExitCode::SUCCESS;
    }
    // The target stands at once; wait until a node names it leader.
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        let leads = (c.status().into_iter()).find_map(|(_, r)| {
            r.ok()
                .filter(|s| s["leader"] == id)
                .map(|s| s["term"].clone())
        });
        if let Some(term) = leads {
            println!("node {id} leads (term {term})");
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("error: TimeoutNow was sent to node {id}, but no node reports it leading within {timeout_ms} ms");
    ExitCode::from(1)
}

/// `raft-node bench`: the load generator.
#[derive(clap::Args)]
struct BenchArgs {
    /// HTTP addresses of some nodes, comma-separated (default: `raft-node cluster`'s).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
    )]
    nodes: Vec<String>,
    /// Concurrent clients (each one keep-alive connection, one request in flight).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Fraction of operations that are reads (0.0 = writes only, 1.0 = reads only).
    #[arg(long, default_value_t = 0.0)]
    reads: f64,
    /// Reads skip the leader round trip (`?stale=true`) instead of ReadIndex.
    #[arg(long)]
    stale_reads: bool,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Number of distinct keys (`bench-0` .. `bench-{N-1}`), chosen uniformly.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Run for this many seconds (default 10 when --ops is not given).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many operations.
    #[arg(long)]
    ops: Option<u64>,
    /// Count an operation as an error when it is not answered within this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    op_timeout_ms: u64,
    /// Bearer token of the cluster's API (also read from RAFT_TOKEN).
    #[arg(long, env = "RAFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seed of the key and read/write choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Print the summary as JSON on stdout (progress lines still go to stderr).
    #[arg(long)]
    json: bool,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Init { config } => init(config),
        Cmd::Serve { config, join } => serve(config, join),
        Cmd::Cluster {
            nodes,
            data,
            base_port,
            cluster_id,
            record,
            token,
            max_sessions,
            max_http_connections,
            max_inflight_appends,
        } => cluster(
            nodes,
            data,
            base_port,
            cluster_id,
            record,
            token,
            Knobs {
                max_sessions,
                max_http_connections,
                max_inflight_appends,
            },
        ),
        Cmd::Kv {
            nodes,
            timeout_ms,
            client_id,
            seq,
            token,
            op,
        } => kv(nodes, timeout_ms, client_id.zip(seq), token, op),
        Cmd::Member {
            nodes,
            timeout_ms,
            token,
            op,
        } => member(nodes, timeout_ms, token, op),
        Cmd::Bench(args) => bench(args),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init(path: PathBuf) -> ExitCode {
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cfg.init_data_dir() {
        Ok(meta) => {
            println!(
                "initialized {} for node {} of cluster {:?} (incarnation {:016x})",
                cfg.data_dir.display(),
                meta.node_id,
                meta.cluster_id,
                meta.incarnation
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A new local cluster initializes every node's directory; an existing one must have them all:
/// a node whose directory is gone lost its votes and log and must not be re-created as itself.
fn init_local_cluster(cfgs: &[Config]) -> Result<(), String> {
    let mut missing = Vec::new();
    for c in cfgs {
        if identity::read(&c.data_dir)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            missing.push(c);
        }
    }
    if missing.len() == cfgs.len() {
        for c in cfgs {
            c.init_data_dir()?;
        }
    } else if let Some(c) = missing.first() {
        return Err(format!(
            "node {} has no initialized data directory ({}) but other nodes of this cluster \
             do. If it lost its data directory, {}.",
            c.id,
            c.data_dir.display(),
            identity::REJOIN_HINT
        ));
    }
    Ok(())
}

fn serve(path: PathBuf, join: bool) -> ExitCode {
    init_tracing();
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if join {
        let fresh = match identity::read(&cfg.data_dir) {
            Ok(meta) => meta.is_none(),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        if fresh {
            match cfg.init_joining_data_dir() {
                Ok(meta) => tracing::info!(
                    incarnation = format!("{:016x}", meta.incarnation),
                    "joining: initialized an empty data directory as no member; waiting to \
                     be added (raft-node member add-learner {})",
                    cfg.id
                ),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(server::run(cfg, shutdown_signal())) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Settings `raft-node cluster` passes to every node's configuration.
struct Knobs {
    max_sessions: Option<u64>,
    max_http_connections: Option<u64>,
    max_inflight_appends: Option<u64>,
}

fn cluster(
    n: u64,
    data: PathBuf,
    base_port: u16,
    cluster_id: String,
    record: bool,
    token: Option<String>,
    knobs: Knobs,
) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&data) {
        eprintln!("error: cannot create {}: {e}", data.display());
        return ExitCode::from(2);
    }
    let data = data.canonicalize().unwrap_or(data);
    let exe = std::env::current_exe().expect("own executable");
    let mut cfgs = Config::local_cluster(n, &data, base_port, &cluster_id);
    for c in &mut cfgs {
        if record {
            c.record = Some(data.join(format!("node{}.jsonl", c.id)));
        }
        c.api_token = token.clone();
        if let Some(m) = knobs.max_sessions {
            c.max_sessions = m as usize;
        }
        if let Some(m) = knobs.max_http_connections {
            c.max_http_connections = Some(m as usize);
        }
        if let Some(m) = knobs.max_inflight_appends {
            c.max_inflight_appends = m as usize;
        }
        if let Err(e) = c.validate() {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = init_local_cluster(&cfgs) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    let mut children: Vec<(u64, Child)> = Vec::new();
    for c in &cfgs {
        let path = data.join(format!("node{}.toml", c.id));
        let log = data.join(format!("node{}.log", c.id));
        let written = toml::to_string(c)
            .map_err(|e| e.to_string())
            .and_then(|t| std::fs::write(&path, t).map_err(|e| e.to_string()))
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .map_err(|e| e.to_string())
            });
        let log = match written {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: node {}: {e}", c.id);
                stop_all(&mut children);
                return ExitCode::from(1);
            }
        };
        match Proc::new(&exe)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
        {
            Ok(ch) => children.push((c.id, ch)),
            Err(e) => {
                eprintln!("error: cannot start node {}: {e}", c.id);
                stop_all(&mut children);
                return ExitCode::from(1);
            }
        }
    }
    println!("raftright cluster {cluster_id:?}: {n} nodes on 127.0.0.1");
    for c in &cfgs {
        println!(
            "  node {}: http://{}  (peers: {}, data: {}, log: {})",
            c.id,
            c.http_addr,
            c.peer_addr,
            c.data_dir.display(),
            data.join(format!("node{}.log", c.id)).display()
        );
    }
    let list: Vec<String> = cfgs.iter().map(|c| c.http_addr.to_string()).collect();
    // With a token, curl must resend it on the redirect to another port (--location-trusted).
    let (curl, kv) = if token.is_some() {
        (
            "curl --location-trusted -H \"Authorization: Bearer $RAFT_TOKEN\"",
            "RAFT_TOKEN=... raft-node kv",
        )
    } else {
        ("curl -L", "raft-node kv")
    };
    println!("try:");
    println!(
        "  {curl} -X PUT --data world http://{}/kv/hello",
        cfgs[0].http_addr
    );
    println!("  {curl} http://{}/kv/hello", cfgs[0].http_addr);
    println!("  {kv} --nodes {} status", list.join(","));
    println!("  raft-node bench --nodes {} --duration 5", list.join(","));
    println!("Ctrl-C stops the cluster.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    for (id, ch) in children.iter_mut() {
                        if let Ok(Some(st)) = ch.try_wait() {
                            eprintln!("node {id} exited ({st}); see its log");
                        }
                    }
                    if children.iter_mut().all(|(_, c)| matches!(c.try_wait(), Ok(Some(_)))) {
                        return;
                    }
                }
            } => {}
        }
    });
    println!("stopping the cluster");
    stop_all(&mut children);
    ExitCode::SUCCESS
}

/// SIGTERM every child, wait up to 5 s, then kill what is left.
fn stop_all(children: &mut [(u64, Child)]) {
    for (_, ch) in children.iter() {
        let _ = Proc::new("kill")
            .args(["-TERM", &ch.id().to_string()])
            .status();
    }
    let until = Instant::now() + Duration::from_secs(5);
    for (id, ch) in children.iter_mut() {
        loop {
            match ch.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > until => {
                    eprintln!("node {id} did not stop; killing it");
                    let _ = ch.kill();
                    let _ = ch.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

fn kv(
    nodes: Vec<String>,
    timeout_ms: u64,
    id: Option<(u64, u64)>,
    token: Option<String>,
    op: KvOp,
) -> ExitCode {
    let mut c = match id {
        Some((client_id, seq)) => Client::with_id(nodes, client_id, seq - 1),
        None => Client::new(nodes),
    };
    c.set_deadline(Duration::from_millis(timeout_ms));
    c.set_token(token);
    let write = matches!(op, KvOp::Put { .. } | KvOp::Del { .. } | KvOp::Cas { .. });
    let out: Result<String, ClientError> = match op {
        KvOp::Register => c.register().map(|id| id.to_string()),
        KvOp::Put { key, value } => c.put(&key, &value).map(|_| "OK".into()),
        KvOp::Get { key, stale } => {
            let r = if stale {
                c.get_stale(&key)
            } else {
                c.get(&key)
            };
            r.map(|v| v.unwrap_or_else(|| "(none)".into()))
        }
        KvOp::Del { key } => c.delete(&key).map(|_| "OK".into()),
        KvOp::Cas { key, expected, new } => {
            c.cas(&key, expected.as_deref(), new.as_deref())
                .map(|(swapped, prev)| {
                    format!(
                        "{} (previous: {})",
                        if swapped { "swapped" } else { "not swapped" },
                        prev.unwrap_or_else(|| "(none)".into())
                    )
                })
        }
        KvOp::Status => {
            for (node, r) in c.status() {
                match r {
                    Ok(v) => {
                        println!(
                        "{node}: id {} {} term {} leader {} commit {} applied {} last_log {} sessions {}",
                        v["id"], v["role"].as_str().unwrap_or("?"), v["term"], v["leader"],
                        v["commit_index"], v["last_applied"], v["last_log_index"], v["sessions"]
                    )
                    }
                    Err(e) => println!("{node}: unreachable ({e})"),
                }
            }
            return ExitCode::SUCCESS;
        }
    };
    match out {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            // The outcome of a write that timed out is unknown: say how to retry it safely.
            if write && matches!(e, ClientError::Timeout(..)) && c.seq() > 0 {
                eprintln!(
                    "the write may or may not have been applied; retry it safely (applied at most once) with --client-id {} --seq {}",
                    c.client_id(),
                    c.seq()
                );
            }
            ExitCode::from(1)
        }
    }
}

fn bench(a: BenchArgs) -> ExitCode {
    let duration = match (a.duration, a.ops) {
        (Some(d), _) if !(d.is_finite() && d > 0.0) => {
            eprintln!("error: --duration must be a positive number of seconds, got {d}");
            return ExitCode::from(2);
        }
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, None) => Some(Duration::from_secs(10)),
        (None, Some(_)) => None,
    };
    let cfg = LoadConfig {
        nodes: a.nodes,
        clients: a.clients,
        reads: a.reads,
        stale_reads: a.stale_reads,
        value_size: a.value_size,
        keys: a.keys,
        duration,
        ops: a.ops,
        op_timeout: Duration::from_millis(a.op_timeout_ms),
        token: a.token,
        seed: a.seed,
    };
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    eprintln!(
        "bench: {} clients, {:.0}% reads{}, {} B values, {} keys, {} against {}",
        cfg.clients,
        cfg.reads * 100.0,
        if cfg.stale_reads { " (stale)" } else { "" },
        cfg.value_size,
        cfg.keys,
        match (cfg.duration, cfg.ops) {
            (Some(d), Some(n)) => format!("{:.1} s or {n} ops", d.as_secs_f64()),
            (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
            (None, Some(n)) => format!("{n} ops"),
            (None, None) => unreachable!("validated"),
        },
        cfg.nodes.join(",")
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads as usize)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut last = (0u64, 0u64);
    let result = rt.block_on(loadgen::run(cfg, move |t, p| {
        let w = p.writes.load(Ordering::Relaxed);
        let r = p.reads.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4.0}s] {:>7} ops/s (writes {:>7}/s, reads {:>7}/s)  total {:>9}  errors {}  retries {}",
            t.as_secs_f64(),
            (w - last.0) + (r - last.1),
            w - last.0,
            r - last.1,
            w + r,
            p.errors.load(Ordering::Relaxed),
            p.retries.load(Ordering::Relaxed),
        );
        last = (w, r);
    }));
    let s = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("summary serializes")
        );
    } else {
        println!(
            "{} ops in {:.2} s by {} clients: {:.0} ops/s ({:.0} writes/s), {} errors, {} retries",
            s.ops, s.elapsed_s, s.clients, s.ops_per_s, s.writes_per_s, s.errors, s.retries
        );
        if s.expired > 0 {
            println!(
                "  {} writes answered \"session expired\" (counted as errors; their clients registered again)",
                s.expired
            );
        }
        for (name, l) in [("writes", &s.writes), ("reads", &s.reads)] {
            if l.count > 0 {
                println!(
                    "  {name:<6} {:>9}  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  max {:>6.2} ms",
                    l.count,
                    l.p50_us as f64 / 1e3,
                    l.p99_us as f64 / 1e3,
                    l.p999_us as f64 / 1e3,
                    l.max_us as f64 / 1e3
                );
            }
        }
    }
    if s.errors > 0 {
        eprintln!(
            "error: {} operations were not answered in time or lost their session",
            s.errors
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
