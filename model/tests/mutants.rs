//! Each known Raft bug, switched on in the model, is caught by the property it breaks, and the
//! checker hands back a counterexample that replays to the violation.

use raft_model::config::{put, Bug, Config};
use raft_model::properties::*;
use raft_model::runner::{run, RunOptions, Status};
use raft_model::RaftModel;
use stateright::Model;

/// Runs the checker with `bug` on and asserts it stops on a violation of one of `properties`
/// (the first one the search meets), with a path that replays to a violating state.
fn catches(bug: Bug, properties: &[&str], cfg: Config) {
    let cfg = Config {
        bug: Some(bug),
        ..cfg
    };
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

fn base() -> Config {
    Config {
        max_term: 2,
        max_log_len: 2,
        max_restarts: 0,
        client_ops: vec![vec![put(0)]],
        max_retries: 0,
        max_in_flight: 2,
        drops: true,
        ..Config::default()
    }
}

#[test]
fn vote_without_up_to_date_check_breaks_leader_completeness() {
    catches(
        Bug::VoteWithoutUpToDateCheck,
        &[LEADER_COMPLETENESS, STATE_MACHINE_SAFETY],
        base(),
    );
}

#[test]
fn figure8_commit_breaks_leader_completeness() {
    // s0 leads term 1 alone; s1 leads term 2 alone; s0 leads term 3 and commits its term-1
    // entry by counting s2's copy; s1, elected in term 4 with s2's vote, lacks it.
    let cfg = Config {
        max_term: 4,
        max_log_len: 3,
        ..base()
    };
    catches(
        Bug::Figure8Commit,
        &[LEADER_COMPLETENESS, STATE_MACHINE_SAFETY],
        cfg,
    );
}

#[test]
fn forgetting_the_vote_on_restart_breaks_election_safety() {
    let cfg = Config {
        max_term: 1,
        max_restarts: 1,
        client_ops: vec![],
        max_in_flight: 5,
        drops: false,
        ..base()
    };
    catches(Bug::ForgetVoteOnRestart, &[ELECTION_SAFETY], cfg);
}

#[test]
fn skipping_dedup_breaks_exactly_once() {
    let cfg = Config {
        max_retries: 1,
        max_log_len: 3,
        ..base()
    };
    catches(Bug::NoDedup, &[EXACTLY_ONCE, LINEARIZABLE], cfg);
}

#[test]
fn skipping_the_prev_log_term_check_breaks_log_matching() {
    // Logs diverge at index 1 over terms 1 and 2; the term-3 leader's AppendEntries with a
    // mismatching prev_log_term is accepted and glues its entry onto the wrong prefix.
    let cfg = Config {
        max_term: 3,
        client_ops: vec![vec![put(0)], vec![put(1)]],
        max_in_flight: 3,
        ..base()
    };
    catches(
        Bug::NoPrevLogTermCheck,
        &[LOG_MATCHING, STATE_MACHINE_SAFETY],
        cfg,
    );
}

#[test]
fn installing_a_snapshot_without_its_state_machine_breaks_snapshot_safety() {
    // A follower behind a leader that compacted gets the snapshot but keeps its own (empty)
    // key-value map: its state machine no longer is the committed log applied.
    let cfg = Config {
        max_log_len: 2,
        snapshots: true,
        drops: false,
        ..base()
    };
    catches(
        Bug::InstallSnapshotKeepsStateMachine,
        &[SNAPSHOT_SAFETY],
        cfg,
    );
}

#[test]
fn reopening_an_expired_session_breaks_exactly_once() {
    // The put is applied, a registration evicts its session, the retry runs again.
    catches(
        Bug::ReopenExpiredSession,
        &[EXACTLY_ONCE, LINEARIZABLE],
        Config::sessions(),
    );
}
