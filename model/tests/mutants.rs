//! Each known Raft bug, switched on in the model, is caught by the property it breaks at the
//! default bounds (the configuration `raft-model check --bug NAME` runs), and the checker hands
//! back a counterexample that replays to the violation.

use raft_model::config::{Bug, Config};
use raft_model::properties::*;
use raft_model::runner::{run, RunOptions, Status};
use raft_model::RaftModel;
use stateright::Model;

/// Runs the checker with `bug` on and asserts it stops on a violation of one of `properties`
/// (the first one the search meets), with a path that replays to a violating state.
fn catches(bug: Bug, properties: &[&str]) {
    let mut cfg = Config {
        bug: Some(bug),
        ..Config::default()
    };
    bug.enable_feature(&mut cfg);
    let summary = run(cfg.clone(), &RunOptions::default());
    let result = summary
        .properties
        .iter()
        .find(|p| p.status == Status::Violated)
        .unwrap_or_else(|| panic!("{bug:?} broke nothing: {summary:#?}"));
    let property = result.name;
    assert!(
        properties.contains(&property),
        "{bug:?} should break one of {properties:?}, broke \"{property}\""
    );
    // The counterexample is real: replaying its actions from the initial state reaches a state
    // that breaks the property.
    let model = RaftModel::new(cfg);
    let mut state = model.init_states().remove(0);
    let indices: Vec<usize> = result
        .explorer_path
        .as_ref()
        .expect("a violation has a path")
        .split('/')
        .skip(1)
        .map(|i| i.parse().unwrap())
        .collect();
    for i in indices {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        state = model
            .next_state(&state, actions[i].clone())
            .expect("path step is enabled");
    }
    let prop = model
        .properties()
        .into_iter()
        .find(|p| p.name == property)
        .unwrap();
    assert!(
        !(prop.condition)(&model, &state),
        "replayed counterexample for {bug:?} does not break \"{property}\":\n{state:?}"
    );
    println!(
        "{bug:?} broke \"{property}\" in {} steps ({} states explored)",
        result.path.as_ref().unwrap().len(),
        summary.unique_states
    );
}

/// One test per bug, each named for what the bug breaks.
macro_rules! mutant {
    ($name:ident, $bug:expr, $($property:expr),+) => {
        #[test]
        fn $name() {
            catches($bug, &[$($property),+]);
        }
    };
    // A bug whose first violation lies millions of states deep: too slow for the unoptimised
    // test profile, so `cargo test` skips it and `.ci/run` runs this file again with
    // `--release`, where it takes a minute or two.
    (release $name:ident, $bug:expr, $($property:expr),+) => {
        #[test]
        #[cfg_attr(debug_assertions, ignore = "millions of states: run with --release")]
        fn $name() {
            catches($bug, &[$($property),+]);
        }
    };
}

mutant!(
    vote_without_up_to_date_check_breaks_leader_completeness,
    Bug::VoteWithoutUpToDateCheck,
    LEADER_COMPLETENESS,
    STATE_MACHINE_SAFETY,
    COMMIT_SOUNDNESS
);
// s0 leads term 1 alone; s1 leads term 2 alone; s0 leads term 3 and commits its term-1 entry
// by counting a copy on a server whose last log term is 1: unsound the moment it commits.
mutant!(
    figure8_commit_breaks_commit_soundness,
    Bug::Figure8Commit,
    COMMIT_SOUNDNESS,
    LEADER_COMPLETENESS
);
mutant!(
    forgetting_the_vote_on_restart_breaks_election_safety,
    Bug::ForgetVoteOnRestart,
    ELECTION_SAFETY
);
mutant!(
    release skipping_dedup_breaks_exactly_once,
    Bug::NoDedup,
    EXACTLY_ONCE,
    LINEARIZABLE
);
mutant!(
    skipping_the_prev_log_term_check_breaks_log_matching,
    Bug::NoPrevLogTermCheck,
    LOG_MATCHING,
    STATE_MACHINE_SAFETY,
    COMMIT_SOUNDNESS
);
mutant!(
    release installing_a_snapshot_without_its_state_machine_breaks_the_applied_state,
    Bug::InstallSnapshotKeepsStateMachine,
    APPLIED_STATE,
    SNAPSHOT_SAFETY
);
mutant!(
    release reopening_an_expired_session_breaks_exactly_once,
    Bug::ReopenExpiredSession,
    EXACTLY_ONCE,
    LINEARIZABLE,
    APPLIED_STATE
);
mutant!(
    counting_a_stale_vote_breaks_election_safety,
    Bug::StaleVoteCounted,
    ELECTION_SAFETY
);
mutant!(
    applying_before_commit_breaks_the_applied_state,
    Bug::ApplyBeforeCommit,
    APPLIED_STATE
);
mutant!(
    a_majority_off_by_one_breaks_election_safety,
    Bug::MajorityOffByOne,
    ELECTION_SAFETY,
    COMMIT_SOUNDNESS
);
mutant!(
    ignoring_a_higher_term_response_breaks_the_term_rule,
    Bug::NoStepDownOnHigherTermResponse,
    TERM_RULE
);
mutant!(
    forgetting_the_log_on_restart_breaks_commit_soundness,
    Bug::ForgetLogOnRestart,
    COMMIT_SOUNDNESS,
    LEADER_COMPLETENESS,
    STATE_MACHINE_SAFETY
);
mutant!(
    voting_twice_in_a_term_breaks_election_safety,
    Bug::VoteTwiceInTerm,
    ELECTION_SAFETY
);

// Invisible on three servers, where (3 + 1) / 2 = 2 is the majority; `--bug` runs it on four,
// where two votes of four elect two leaders in one term.
mutant!(
    a_majority_of_half_an_even_cluster_breaks_election_safety,
    Bug::MajorityOfEvenCluster,
    ELECTION_SAFETY,
    COMMIT_SOUNDNESS
);

mutant!(
    serving_a_read_without_a_quorum_breaks_linearizability,
    Bug::ReadWithoutQuorum,
    LINEARIZABLE
);
mutant!(
    serving_a_read_before_the_terms_first_commit_breaks_linearizability,
    Bug::ReadBeforeTermCommit,
    LINEARIZABLE
);

// Two appends in flight to one follower: an answer is counted as if it covered everything
// sent. The in-flight invariant (what is in flight lies above `match_index`) sees it first;
// without it, commit soundness breaks in 23 steps (the leader commits what the follower never
// stored).
mutant!(
    a_match_index_taken_from_the_optimistic_next_index_breaks_commit_soundness,
    Bug::MatchFromOptimisticNextIndex,
    INDEX_INVARIANTS,
    COMMIT_SOUNDNESS,
    LEADER_COMPLETENESS,
    STATE_MACHINE_SAFETY
);

// The single-server-change bug, at `Config::concurrent_changes`: one leader removes s0 and
// another, elected by three of the original four, removes s3 before committing anything of its
// term, and commits that; a server whose configuration is the first change's wins a later term
// with a majority of that configuration and leads without the committed entries. (Which
// servers play which part depends on the parallel search's order; README.md has one run's.)
mutant!(
    release a_change_before_the_terms_first_commit_breaks_leader_completeness,
    Bug::ChangeBeforeTermCommit,
    LEADER_COMPLETENESS,
    STATE_MACHINE_SAFETY,
    COMMIT_SOUNDNESS,
    ELECTION_SAFETY
);

#[test]
fn every_bug_has_a_test() {
    let source = include_str!("mutants.rs");
    for bug in Bug::ALL {
        assert!(
            source.contains(&format!("Bug::{bug:?},")),
            "{bug:?} has no mutant test"
        );
    }
}
