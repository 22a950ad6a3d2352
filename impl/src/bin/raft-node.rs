//! `raft-node`: serve one node, start a local cluster, or talk to a cluster.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Child, Command as Proc, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use raft_node::runtime::client::Client;
use raft_node::runtime::config::Config;
use raft_node::runtime::server;

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
    /// Run one node from a TOML configuration.
    Serve {
        #[arg(long)]
        config: PathBuf,
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
        /// Client id (default: random). With it, pass --seq: one more than the last one used.
        #[arg(long, requires = "seq")]
        client_id: Option<u64>,
        /// Sequence number of this command (with --client-id; a retry reuses it).
        #[arg(long, requires = "client_id", value_parser = clap::value_parser!(u64).range(1..))]
        seq: Option<u64>,
        #[command(subcommand)]
        op: KvOp,
    },
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
    /// Status of every node.
    Status,
    /// Measure write latency: CLIENTS threads, each putting COUNT keys one after another.
    Bench {
        #[arg(long, default_value_t = 500)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        clients: usize,
    },
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
        Cmd::Serve { config } => serve(config),
        Cmd::Cluster {
            nodes,
            data,
            base_port,
            cluster_id,
            record,
        } => cluster(nodes, data, base_port, cluster_id, record),
        Cmd::Kv {
            nodes,
            timeout_ms,
            client_id,
            seq,
            op,
        } => kv(nodes, timeout_ms, client_id.zip(seq), op),
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

fn serve(path: PathBuf) -> ExitCode {
    init_tracing();
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
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

fn cluster(n: u64, data: PathBuf, base_port: u16, cluster_id: String, record: bool) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&data) {
        eprintln!("error: cannot create {}: {e}", data.display());
        return ExitCode::from(2);
    }
    let data = data.canonicalize().unwrap_or(data);
    let exe = std::env::current_exe().expect("own executable");
    let mut cfgs = Config::local_cluster(n, &data, base_port, &cluster_id);
    if record {
        for c in &mut cfgs {
            c.record = Some(data.join(format!("node{}.jsonl", c.id)));
        }
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
    println!("try:");
    println!(
        "  curl -L -X PUT --data world http://{}/kv/hello",
        cfgs[0].http_addr
    );
    println!("  curl -L http://{}/kv/hello", cfgs[0].http_addr);
    println!("  raft-node kv --nodes {} status", list.join(","));
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

fn kv(nodes: Vec<String>, timeout_ms: u64, id: Option<(u64, u64)>, op: KvOp) -> ExitCode {
    let mut c = match id {
        Some((client_id, seq)) => Client::with_id(nodes, client_id, seq - 1),
        None => Client::new(nodes),
    };
    c.set_deadline(Duration::from_millis(timeout_ms));
    let out: Result<String, String> =
        match op {
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
            KvOp::Cas { key, expected, new } => c
                .cas(&key, expected.as_deref(), new.as_deref())
                .map(|(swapped, prev)| {
                    format!(
                        "{} (previous: {})",
                        if swapped { "swapped" } else { "not swapped" },
                        prev.unwrap_or_else(|| "(none)".into())
                    )
                }),
            KvOp::Bench { count, clients } => {
                return bench(c.nodes().to_vec(), timeout_ms, count, clients);
            }
            KvOp::Status => {
                for (node, r) in c.status() {
                    match r {
                        Ok(v) => {
                            println!(
                        "{node}: id {} {} term {} leader {} commit {} applied {} last_log {}",
                        v["id"], v["role"].as_str().unwrap_or("?"), v["term"], v["leader"],
                        v["commit_index"], v["last_applied"], v["last_log_index"]
                    )
                        }
                        Err(e) => println!("{node}: unreachable ({e})"),
                    }
                }
                return ExitCode::SUCCESS;
            }
        }
        .map_err(|e| e.to_string());
    match out {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn bench(nodes: Vec<String>, timeout_ms: u64, count: usize, clients: usize) -> ExitCode {
    let start = Instant::now();
    let handles: Vec<_> = (0..clients.max(1))
        .map(|t| {
            let nodes = nodes.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut c = Client::new(nodes);
                c.set_deadline(Duration::from_millis(timeout_ms));
                let mut lat = Vec::with_capacity(count);
                for k in 0..count {
                    let t0 = Instant::now();
                    c.put(&format!("bench-{t}-{k}"), "0123456789abcdef")
                        .map_err(|e| e.to_string())?;
                    lat.push(t0.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        match h.join().expect("bench thread") {
            Ok(l) => all.extend(l),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} writes by {} client(s) in {secs:.2}s: {:.0} writes/s; latency p50 {:?} p99 {:?} max {:?}",
        all.len(),
        clients.max(1),
        all.len() as f64 / secs,
        pct(0.5),
        pct(0.99),
        all[all.len() - 1]
    );
    ExitCode::SUCCESS
}
