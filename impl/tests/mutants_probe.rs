use raft_node::core::Bug;
use raft_node::sim::{run_with, SimConfig};
#[test]
fn probe() {
    for bug in [Bug::VoteWithoutUpToDateCheck, Bug::Figure8Commit, Bug::ForgetVoteOnRestart, Bug::NoDedup, Bug::NoPrevLogTermCheck] {
        let mut found = None;
        for seed in 0..3000 {
            let mut cfg = SimConfig::from_seed(seed, None);
            cfg.params.bug = Some(bug);
            if let Err(f) = run_with(seed, &cfg) { found = Some((seed, f.reason)); break; }
        }
        println!("{bug:?}: {found:?}");
    }
}
