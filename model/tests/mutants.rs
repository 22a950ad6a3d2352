//! Each known Raft bug, switched on in the model, is caught by the property it breaks, and the
//! checker hands back a counterexample that replays to the violation.

use raft_model::config::{get, put, Bug, Config};
use raft_model::properties::*;
use raft_model::runner::{run, RunOptions, Status};
use raft_model::RaftModel;
use stateright::Model;

fn catches(bug: Bug, property: &str, cfg: Config) {
    let cfg = Config {
        bug: Some(bug),
        ..cfg
    };
    let summary = run(cfg.clone(), &RunOptions::default());
    let result = summary
        .properties
        .iter()
        .find(|p| p.name == property)
        .expect("property exists");
    assert_eq!(
        result.status,
        Status::Violated,
        "{bug:?} should break \"{property}\"; got {result:?}"
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
        max_in_flight: 3,
        ..Config::default()
    }
}

#[test]
fn vote_without_up_to_date_check_breaks_leader_completeness() {
    catches(Bug::VoteWithoutUpToDateCheck, LEADER_COMPLETENESS, base());
}

#[test]
fn figure8_commit_breaks_state_machine_safety() {
    let mut cfg = base();
    cfg.max_term = 4;
    cfg.max_log_len = 3;
    cfg.max_restarts = 0;
    cfg.params.noop_on_election = false;
    cfg.client_ops = vec![vec![put(0)], vec![put(1)]];
    catches(Bug::Figure8Commit, STATE_MACHINE_SAFETY, cfg);
}

#[test]
fn forgetting_the_vote_on_restart_breaks_election_safety() {
    let cfg = Config {
        max_term: 1,
        max_restarts: 1,
        client_ops: vec![],
        ..base()
    };
    catches(Bug::ForgetVoteOnRestart, ELECTION_SAFETY, cfg);
}

#[test]
fn skipping_dedup_breaks_exactly_once() {
    let cfg = Config {
        max_retries: 1,
        max_log_len: 3,
        ..base()
    };
    catches(Bug::NoDedup, EXACTLY_ONCE, cfg);
}

#[test]
fn skipping_the_prev_log_term_check_breaks_log_matching() {
    let cfg = Config {
        client_ops: vec![vec![put(0)], vec![get()]],
        ..base()
    };
    catches(Bug::NoPrevLogTermCheck, LOG_MATCHING, cfg);
}
