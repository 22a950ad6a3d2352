//! The engine (`raft_model::engine`, the default `Strategy::Dfs`) agrees with stateright's DFS
//! on what it counts and what it finds, its paths replay, and it never calls a run exhaustive
//! that was not.
//!
//! `symmetry::representative` is a canonical form, so with or without symmetry every class of
//! reachable states is counted once whatever the search order: both checkers agree on two
//! threads. On one thread their orders are the same too, so the depths agree as well.

use raft_model::config::{Bug, Config};
use raft_model::engine::{self, Options};
use raft_model::runner::{run, PropertyResult, RunOptions, Status, Strategy, Summary};
use raft_model::RaftModel;
use stateright::{Checker, Model, Property};

fn options(strategy: Strategy, threads: usize, symmetry: bool, stop: bool) -> RunOptions {
    RunOptions {
        strategy,
        threads,
        symmetry,
        stop_on_violation: stop,
        ..RunOptions::default()
    }
}

fn verdicts(s: &Summary) -> Vec<(&'static str, Status)> {
    s.properties.iter().map(|p| (p.name, p.status)).collect()
}

/// Both checkers explore `cfg` exhaustively, with and without symmetry: the same states, the
/// same verdicts.
fn assert_agree(name: &str, cfg: Config) {
    for (symmetry, threads) in [(true, 1), (true, 2), (false, 2)] {
        let run_with = |strategy| run(cfg.clone(), &options(strategy, threads, symmetry, false));
        let ours = run_with(Strategy::Dfs);
        let theirs = run_with(Strategy::StaterightDfs);
        let what = format!("{name}, symmetry {symmetry}, {threads} threads");
        assert!(ours.complete, "{what}: {:?}", ours.incomplete_reason);
        assert!(theirs.complete, "{what}: {:?}", theirs.incomplete_reason);
        assert_eq!(
            (ours.unique_states, ours.total_states),
            (theirs.unique_states, theirs.total_states),
            "{what}: unique and generated states"
        );
        if threads == 1 {
            assert_eq!(ours.max_depth, theirs.max_depth, "{what}: depth");
        }
        assert_eq!(verdicts(&ours), verdicts(&theirs), "{what}");
        for p in &ours.properties {
            if p.status == Status::Violated || p.status == Status::Found {
                assert_replays(&cfg, p);
            }
        }
        println!(
            "{what}: {} unique states, {} generated, in {:.2}s (stateright {:.2}s)",
            ours.unique_states, ours.total_states, ours.seconds, theirs.seconds
        );
    }
}

/// The property's explorer path, replayed from the initial state by action index (as
/// tests/mutants.rs does), takes the steps of its `path` to a state that violates it (always)
/// or witnesses it (sometimes).
fn assert_replays(cfg: &Config, result: &PropertyResult) {
    let model = RaftModel::new(cfg.clone());
    let encoded = result
        .explorer_path
        .as_ref()
        .expect("a discovery has a path");
    let mut indices = encoded.split('/').map(|i| i.parse::<usize>().unwrap());
    let mut state = model.init_states().remove(indices.next().unwrap());
    let mut steps = Vec::new();
    for i in indices {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        steps.push(model.format_action(&actions[i]));
        state = model
            .next_state(&state, actions[i].clone())
            .expect("path step is enabled");
        assert!(model.within_boundary(&state));
    }
    assert_eq!(Some(&steps), result.path.as_ref(), "{}", result.name);
    let prop = (model.properties().into_iter())
        .find(|p| p.name == result.name)
        .unwrap();
    let holds = (prop.condition)(&model, &state);
    assert_eq!(
        holds,
        result.expectation == "sometimes",
        "\"{}\" at the end of {encoded}:\n{state:?}",
        result.name
    );
}

/// The small configuration without restarts and retries, two messages in flight.
fn tiny() -> Config {
    Config {
        max_restarts: 0,
        max_retries: 0,
        max_in_flight: 2,
        ..Config::small()
    }
}

/// A known bug that the tiny configuration reaches.
fn buggy() -> Config {
    Config {
        bug: Some(Bug::VoteWithoutUpToDateCheck),
        ..tiny()
    }
}

#[test]
fn agrees_with_stateright_on_the_small_configuration_in_one_term() {
    assert_agree(
        "small, one term, two messages in flight",
        Config {
            max_term: 1,
            max_in_flight: 2,
            ..Config::small()
        },
    );
}

#[test]
fn agrees_with_stateright_on_the_sessions_configuration() {
    assert_agree("sessions", Config::sessions());
}

#[test]
fn agrees_with_stateright_without_restarts_or_retries() {
    assert_agree("tiny", tiny());
}

#[test]
fn agrees_with_stateright_with_snapshots() {
    assert_agree(
        "snapshots",
        Config {
            snapshots: true,
            max_term: 1,
            ..tiny()
        },
    );
}

#[test]
fn agrees_with_stateright_on_violations_when_it_keeps_going() {
    assert_agree("vote without up-to-date check", buggy());
}

#[test]
fn stops_at_a_violation_stateright_also_finds() {
    let cfg = buggy();
    for symmetry in [true, false] {
        let ours = run(cfg.clone(), &options(Strategy::Dfs, 1, symmetry, true));
        let theirs = run(
            cfg.clone(),
            &options(Strategy::StaterightDfs, 1, symmetry, true),
        );
        let violated = |s: &Summary| -> Vec<&str> {
            (s.properties.iter())
                .filter(|p| p.status == Status::Violated)
                .map(|p| p.name)
                .collect()
        };
        assert!(!ours.complete);
        assert_eq!(
            ours.incomplete_reason.as_deref(),
            Some("stopped at the first violation")
        );
        // Stateright looks at the rest of its block of states before it stops, so it may
        // find more; on one thread both meet the first violating state in the same order.
        assert!(!violated(&ours).is_empty(), "{ours:#?}");
        for name in violated(&ours) {
            assert!(violated(&theirs).contains(&name), "{name}: {theirs:#?}");
        }
        for p in ours
            .properties
            .iter()
            .filter(|p| p.status == Status::Violated)
        {
            assert_replays(&cfg, p);
        }
    }
}

#[test]
fn paths_replay_from_real_states_on_two_threads_with_symmetry() {
    let cfg = buggy();
    let summary = run(cfg.clone(), &options(Strategy::Dfs, 2, true, false));
    assert!(summary.complete, "{:?}", summary.incomplete_reason);
    let discovered: Vec<_> = (summary.properties.iter())
        .filter(|p| matches!(p.status, Status::Violated | Status::Found))
        .collect();
    assert!(discovered.iter().any(|p| p.status == Status::Violated));
    for p in discovered {
        assert_replays(&cfg, p);
    }
}

#[test]
fn simulation_walks_reproducibly_and_is_never_exhaustive() {
    let opts = RunOptions {
        strategy: Strategy::Simulation,
        threads: 1,
        seed: 7,
        max_states: Some(20_000),
        stop_on_violation: false,
        ..RunOptions::default()
    };
    let first = run(tiny(), &opts);
    let again = run(tiny(), &opts);
    assert!(!first.complete);
    assert!(first.total_states >= 20_000 && first.unique_states > 0);
    assert_eq!(
        (first.unique_states, first.total_states, verdicts(&first)),
        (again.unique_states, again.total_states, verdicts(&again))
    );
    assert!(first.properties.iter().all(|p| p.status != Status::Holds));
    assert_eq!(first.status_of("leader elected"), Some(Status::Found));
    for p in first
        .properties
        .iter()
        .filter(|p| p.status == Status::Found)
    {
        assert_eq!(p.explorer_path, explorer_path_of(&again, p.name));
        assert_replays(&tiny(), p);
    }
}

fn explorer_path_of(s: &Summary, name: &str) -> Option<String> {
    let p = s.properties.iter().find(|p| p.name == name)?;
    p.explorer_path.clone()
}

#[test]
fn simulation_finds_a_violation_with_a_path_that_replays() {
    // Random walks need message loss here: without it they keep meeting the in-flight bound.
    let cfg = Config {
        max_term: 2,
        max_log_len: 2,
        bug: Some(Bug::VoteWithoutUpToDateCheck),
        ..Config::default()
    };
    let summary = run(
        cfg.clone(),
        &RunOptions {
            strategy: Strategy::Simulation,
            threads: 2,
            max_states: Some(2_000_000),
            ..RunOptions::default()
        },
    );
    let violation = (summary.properties.iter())
        .find(|p| p.status == Status::Violated)
        .unwrap_or_else(|| panic!("random walks found no violation: {summary:#?}"));
    assert_replays(&cfg, violation);
}

/// A counter that adds 1 or 2 up to `top`: `top + 1` states.
struct Counter {
    top: u32,
    panic_at: Option<u32>,
}

impl Model for Counter {
    type State = u32;
    type Action = u32;

    fn init_states(&self) -> Vec<u32> {
        vec![0]
    }

    fn actions(&self, _: &u32, actions: &mut Vec<u32>) {
        actions.extend([1, 2]);
    }

    fn next_state(&self, n: &u32, step: u32) -> Option<u32> {
        assert_ne!(Some(*n), self.panic_at, "the model breaks at {n}");
        Some(n + step)
    }

    fn within_boundary(&self, n: &u32) -> bool {
        *n <= self.top
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("within the boundary", |m: &Counter, n: &u32| *n <= m.top),
            Property::sometimes("half way", |m: &Counter, n: &u32| *n == m.top / 2),
        ]
    }
}

fn counter_options(threads: usize) -> Options<u32> {
    Options {
        threads,
        symmetry: None,
        timeout: None,
        max_states: None,
        stop_on_violation: true,
        progress: false,
    }
}

#[test]
fn a_generic_model_is_counted_as_stateright_counts_it() {
    let model = Counter {
        top: 20_000,
        panic_at: None,
    };
    let report = engine::check(&model, &counter_options(2)).unwrap();
    let theirs = Counter {
        top: 20_000,
        panic_at: None,
    }
    .checker()
    .threads(2)
    .spawn_dfs()
    .join();
    assert!(report.complete(), "{:?}", report.incomplete_reason);
    assert_eq!(report.unique_states, 20_001);
    assert_eq!(report.unique_states, theirs.unique_state_count());
    assert_eq!(report.total_states, theirs.state_count());
    let half_way = report.discoveries[1].trail.as_ref().expect("a witness");
    assert_eq!(half_way.actions().sum::<u32>(), 10_000);
    assert!(report.discoveries[0].trail.is_none());
}

#[test]
fn a_worker_panic_makes_the_run_incomplete() {
    let model = Counter {
        top: 20_000,
        panic_at: Some(15_000),
    };
    let report = engine::check(&model, &counter_options(2)).unwrap();
    assert!(!report.complete());
    let reason = report.incomplete_reason.unwrap();
    assert!(reason.contains("panicked"), "{reason}");
    assert!(reason.contains("the model breaks at 15000"), "{reason}");
}

#[test]
fn eventually_properties_are_refused() {
    struct Eventually;
    impl Model for Eventually {
        type State = u8;
        type Action = u8;
        fn init_states(&self) -> Vec<u8> {
            vec![0]
        }
        fn actions(&self, _: &u8, _: &mut Vec<u8>) {}
        fn next_state(&self, _: &u8, _: u8) -> Option<u8> {
            None
        }
        fn properties(&self) -> Vec<Property<Self>> {
            vec![Property::eventually("done", |_, n| *n > 0)]
        }
    }
    let opts = Options {
        threads: 1,
        symmetry: None,
        timeout: None,
        max_states: Some(10),
        stop_on_violation: true,
        progress: false,
    };
    let refused = engine::check(&Eventually, &opts).unwrap_err();
    assert!(refused.to_string().contains("eventually"), "{refused}");
    assert!(engine::simulate(&Eventually, &opts, 0).is_err());
}

#[test]
fn limits_make_the_run_incomplete() {
    let model = Counter {
        top: 20_000,
        panic_at: None,
    };
    let at_most = engine::check(
        &model,
        &Options {
            max_states: Some(100),
            ..counter_options(2)
        },
    )
    .unwrap();
    assert_eq!(
        at_most.incomplete_reason.as_deref(),
        Some("stopped at the state limit (100)")
    );
    assert!(at_most.total_states >= 100 && at_most.unique_states < 20_001);
    let no_time = engine::check(
        &model,
        &Options {
            timeout: Some(std::time::Duration::ZERO),
            ..counter_options(2)
        },
    )
    .unwrap();
    assert_eq!(
        no_time.incomplete_reason.as_deref(),
        Some("stopped by the time limit (0s)")
    );
}
