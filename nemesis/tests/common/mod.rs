//! Shared by the nemesis tests: the `raft-node` binary and a seed that replays.

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
