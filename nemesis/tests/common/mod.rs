//! Shared by the nemesis tests: the `raft-node` binary, a seed that replays, and the run they
//! start from.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `$RAFT_NODE_BIN`, else the `raft-node` binary as `cargo test --workspace` builds it for
/// raft-node's own integration tests (test profile, workspace features), so under `cargo test
/// --workspace` this build is a no-op; `cargo test -p raft-nemesis` alone builds it here.
pub fn raft_node() -> PathBuf {
    if let Some(p) = std::env::var_os("RAFT_NODE_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--workspace",
            "--profile",
            "test",
            "--bin",
            "raft-node",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo build --bin raft-node");
    assert!(
        out.status.success(),
        "cargo build --bin raft-node failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .find(|p| p.file_name().is_some_and(|n| n == "raft-node"))
        .expect("cargo reported no raft-node executable")
}

/// `$NEMESIS_SEED` (replay), else a random seed; printed either way.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("NEMESIS_SEED")
        .ok()
        .map(|s| s.parse().expect("NEMESIS_SEED must be a number"))
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (replay: NEMESIS_SEED={seed} cargo test -p raft-nemesis --test {test})");
    seed
}

/// Move `cfg.seed` on (from the seed drawn or replayed) to the first one whose schedule has at
/// least `n` faults of each `(kind, n)`: a test that checks what a kind does must not depend on
/// a random schedule happening to draw it (two kinds over seven faults miss one 1.6 % of the
/// time). Prints the seed it settles on, which replays as it is.
pub fn seed_drawing(
    test: &str,
    cfg: &mut raft_nemesis::run::RunConfig,
    at_least: &[(raft_nemesis::schedule::Kind, usize)],
) {
    let first = cfg.seed;
    for _ in 0..10_000 {
        let planned = raft_nemesis::run::planned_faults(cfg);
        let enough = at_least
            .iter()
            .all(|&(kind, n)| planned.iter().filter(|f| f.kind == kind).count() >= n);
        if enough {
            if cfg.seed != first {
                println!(
                    "{test}: seed {} draws every kind the test needs (replay: NEMESIS_SEED={} cargo test -p raft-nemesis --test {test})",
                    cfg.seed, cfg.seed
                );
            }
            return;
        }
        cfg.seed = cfg.seed.wrapping_add(1);
    }
    panic!("no seed from {first} on draws {at_least:?}");
}

/// The run every test starts from: three nodes of the `raft-node` binary, six clients with
/// put/get/delete/cas on six keys, the classic fault kinds (`schedule::CLASSIC`) for 45 s, no
/// recording; `test` names the seed's replay command.
pub fn base_run(test: &str, dir: &std::path::Path) -> raft_nemesis::run::RunConfig {
    use raft_nemesis::workload::{Vocabulary, Workload};
    use std::time::Duration;
    raft_nemesis::run::RunConfig {
        bin: raft_node(),
        dir: dir.join("run"),
        nodes: 3,
        seed: seed(test),
        workload: Workload {
            clients: 6,
            keys: 6,
            vocabulary: Vocabulary::Full,
            max_ops: 1_000_000,
            max_writes: 0,
            op_timeout: Duration::from_secs(5),
            think: Duration::ZERO,
            stale_reads: false,
            churn: None,
        },
        max_time: Duration::from_secs(45),
        faults: raft_nemesis::schedule::CLASSIC.to_vec(),
        record: false,
        warmup_ms: 1000,
        target_leader: false,
        verbose: true,
        max_sessions: None,
        fd_conns: 1100,
        slowloris_conns: 64,
        http_header_timeout_ms: None,
        long_ms: 12_000,
        snapshot_entries: 0,
        client_proxies: false,
    }
}

/// Eviction pressure: the nodes keep `clients + 2` sessions, a churn thread registers a
/// session and sends a write without a session every 50 ms, and client 0 idles between its
/// operations, so sessions are evicted during the run.
pub fn eviction_pressure(cfg: &mut raft_nemesis::run::RunConfig) {
    cfg.max_sessions = Some(cfg.workload.clients as usize + 2);
    cfg.workload.churn = Some(std::time::Duration::from_millis(50));
}

/// Recording on, for `time`: `clients` clients in the model's vocabulary (two keys, put and
/// get) writing at most `writes` times, spread over the run so that the validator's bounds hold.
pub fn recorded(
    cfg: &mut raft_nemesis::run::RunConfig,
    time: std::time::Duration,
    clients: u64,
    writes: u64,
) {
    use raft_nemesis::workload::{spread, Vocabulary};
    cfg.max_time = time;
    cfg.record = true;
    cfg.workload.clients = clients;
    cfg.workload.keys = 2;
    cfg.workload.vocabulary = Vocabulary::Model;
    cfg.workload.max_writes = writes;
    cfg.workload.think = spread(time, clients, writes);
}

/// Runs `cfg` and asserts it was clean: no anomaly, no lost acknowledged write, the history
/// checked for linearizability. The report (printed) is returned for the test's own checks.
pub fn run_clean(cfg: &raft_nemesis::run::RunConfig) -> raft_nemesis::run::Report {
    let seed = cfg.seed;
    let report = raft_nemesis::run::run(cfg).expect("the run could not be carried out");
    println!("{}", report.render());
    assert!(report.anomalies.is_empty(), "anomalies (seed {seed})");
    assert_eq!(
        report.lost_writes, 0,
        "lost acknowledged writes (seed {seed})"
    );
    assert!(
        report.lin.is_some(),
        "linearizability not checked (seed {seed})"
    );
    report
}
