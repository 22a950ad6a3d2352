//! Mutants caught by the random simulation (the first failing seed is printed). Figure8Commit
//! needs the paper's exact schedule and is caught by the Figure 8 scenario in `scenarios.rs`,
//! which also catches ForgetVoteOnRestart and NoDedup deterministically.

use raft_core::Bug;
use raft_sim::{run_with, SimConfig};

fn caught_by_simulation(bug: Bug, seeds: u64) -> Option<(u64, String)> {
    for seed in 0..seeds {
        let mut cfg = SimConfig::from_seed(seed, None);
        cfg.params.bug = Some(bug);
        if let Err(f) = run_with(seed, &cfg) {
            println!(
                "{bug:?} caught at seed {seed}: {}",
                f.reason.lines().next().unwrap_or("")
            );
            return Some((seed, f.reason));
        }
    }
    None
}

#[test]
fn simulation_catches_vote_without_up_to_date_check() {
    assert!(caught_by_simulation(Bug::VoteWithoutUpToDateCheck, 500).is_some());
}

#[test]
fn simulation_catches_forget_vote_on_restart() {
    assert!(caught_by_simulation(Bug::ForgetVoteOnRestart, 3000).is_some());
}

#[test]
fn simulation_catches_no_dedup() {
    assert!(caught_by_simulation(Bug::NoDedup, 500).is_some());
}

#[test]
fn simulation_catches_no_prev_log_term_check() {
    assert!(caught_by_simulation(Bug::NoPrevLogTermCheck, 500).is_some());
}

#[test]
fn simulation_catches_stale_vote_counted() {
    // Needs a granted vote response that reaches its candidate after the candidate's next
    // election: the network's holds and lagging links (see `SimConfig::from_seed`).
    assert!(caught_by_simulation(Bug::StaleVoteCounted, 500).is_some());
}

/// How often each mutant is caught: `MUTANT_SEEDS=2000 cargo test -p raft-node --test mutants
/// -- catch_rate --nocapture` counts the failing seeds among the first `MUTANT_SEEDS`.
#[test]
fn catch_rate() {
    let Some(n) = std::env::var("MUTANT_SEEDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    for bug in [
        Bug::VoteWithoutUpToDateCheck,
        Bug::ForgetVoteOnRestart,
        Bug::NoDedup,
        Bug::NoPrevLogTermCheck,
        Bug::StaleVoteCounted,
    ] {
        let caught: Vec<u64> = (0..n)
            .filter(|&seed| {
                let mut cfg = SimConfig::from_seed(seed, None);
                cfg.params.bug = Some(bug);
                run_with(seed, &cfg).is_err()
            })
            .collect();
        println!(
            "{bug:?}: caught by {} of seeds 0..{n}, first {:?}",
            caught.len(),
            caught.first()
        );
    }
}
