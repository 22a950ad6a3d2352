//! raftright nemesis: a real cluster of `raft-node` processes on loopback, concurrent clients
//! recording every operation, and a seeded fault schedule (kill -9, pauses, partitions of every
//! shape, message loss and delay, leader isolation) injected through per-link TCP proxies; then
//! the history is checked for linearizability, the nodes' logs for convergence, lost
//! acknowledged writes and double application, and (when recorded) every node step against
//! the model.
//!
//! - [`history`]: what a client did and saw;
//! - [`lin`]: the per-key linearizability checker;
//! - [`proxy`]: the fault-injecting link proxies;
//! - [`attack`]: descriptor exhaustion and slowloris on a node's HTTP port;
//! - [`cluster`]: the node processes;
//! - [`schedule`]: the fault schedule drawn from the seed;
//! - [`workload`]: the clients;
//! - [`monitor`]: leaders and leader-loss times from `/status`;
//! - [`membership`]: membership changes and leadership transfers, as an operator makes them;
//! - [`checks`]: the checks on the nodes' logs;
//! - [`run`]: one run and its report.
#![forbid(unsafe_code)]

pub mod attack;
pub mod checks;
pub mod cluster;
pub mod history;
pub mod lin;
pub mod membership;
pub mod monitor;
pub mod proxy;
pub mod run;
pub mod schedule;
pub mod workload;

use std::path::PathBuf;

/// Find the `raft-node` binary: `explicit`, else `$RAFT_NODE_BIN`, else next to the running
/// executable (a `cargo build` puts both in the same target directory).
pub fn find_raft_node(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit.or_else(|| std::env::var_os("RAFT_NODE_BIN").map(PathBuf::from)) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("raft-node binary {} not found", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for dir in exe.ancestors().skip(1).take(2) {
        let p = dir.join("raft-node");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "no raft-node binary next to {}; build it (cargo build --release -p raft-node) or pass --raft-node PATH",
        exe.display()
    ))
}
