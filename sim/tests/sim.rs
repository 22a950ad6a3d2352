//! The randomized deterministic simulation.
//!
//! - `cargo test -p raft-node --test sim` runs `SIM_SEEDS` seeds (default 10000) starting at
//!   `SIM_SEED_BASE` (default 0).
//! - `SIM_SEED=123 cargo test -p raft-node --test sim -- replay_seed --nocapture` replays one
//!   seed and prints its steps.

use raft_sim::{run_seed, SimStats};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn many_seeds() {
    let n = env_u64("SIM_SEEDS").unwrap_or(10000);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
    println!("simulation: seeds {base}..{}", base + n);
    let mut total = SimStats::default();
    for seed in base..base + n {
        match run_seed(seed) {
            Ok(s) => {
                total.ops_answered += s.ops_answered;
                total.ops_invoked += s.ops_invoked;
                total.committed += s.committed;
                total.crashes += s.crashes;
                total.compactions += s.compactions;
                total.sessions_expired += s.sessions_expired;
            }
            Err(f) => panic!("{f}"),
        }
    }
    println!(
        "simulation: {n} seeds ok; {} of {} client ops answered, {} entries committed, {} crashes, {} compactions, {} ops answered session-expired",
        total.ops_answered, total.ops_invoked, total.committed, total.crashes, total.compactions, total.sessions_expired
    );
    assert!(total.compactions > 0, "no seed compacted a log");
    assert!(
        n < 100 || total.sessions_expired > 0,
        "no seed evicted a session under a client"
    );
    assert!(
        (total.ops_answered + total.sessions_expired) * 10 >= total.ops_invoked * 9,
        "too few client ops completed"
    );
}

#[test]
fn replay_seed() {
    let Some(seed) = env_u64("SIM_SEED") else {
        return;
    };
    println!("replaying seed {seed}");
    match run_seed(seed) {
        Ok(s) => println!("seed {seed} ok: {s:?}"),
        Err(f) => panic!("{f}"),
    }
}
