//! The conformance suite `cargo test --workspace` runs: the committed corpus is fresh against
//! the model and replays without divergence, covering every action kind and F1-F6; the small
//! configuration's whole state space is walked in lockstep; every core mutant is caught.

use raft_conformance::lockstep::{self, LockstepOptions};
use raft_conformance::map;
use raft_conformance::mutants::{self, corpus_dir};
use raft_conformance::replay::{collect_files, replay};
use raft_core::{Command, KvStateMachine, Op, Params, StateMachine};
use raft_model::trace::{
    config_hash, cover_configs, scenario_configs, Trace, ACTION_KINDS, ACTION_VARIANTS,
    F_PROPERTIES,
};
use raft_node::runtime::config::default_max_sessions;
use raft_node::runtime::server::runtime_params;
use std::collections::BTreeSet;
use std::time::Instant;

const REGENERATE: &str =
    "regenerate it with: cargo run --release -p raft-model -- traces --out conformance/corpus";

fn corpus() -> Vec<(String, Trace)> {
    let files = collect_files(&[corpus_dir()]).expect("corpus directory");
    assert!(!files.is_empty(), "the corpus is empty; {REGENERATE}");
    mutants::load(&files).unwrap_or_else(|e| panic!("corpus unreadable: {e}; {REGENERATE}"))
}

#[test]
fn corpus_is_fresh_against_the_model() {
    let traces = corpus();
    let mut stale = Vec::new();
    for (name, t) in &traces {
        if let Err(e) = t.check_fresh() {
            stale.push(format!("{name}: {e}"));
        }
    }
    // The corpus holds the configurations the exporter uses now, and every one of them.
    let expected: BTreeSet<String> = scenario_configs()
        .into_iter()
        .chain(cover_configs())
        .map(|(_, c)| config_hash(&c))
        .collect();
    let present: BTreeSet<String> = traces
        .iter()
        .map(|(_, t)| t.header.config_hash.clone())
        .collect();
    for h in present.difference(&expected) {
        stale.push(format!("configuration {h} is no longer exported"));
    }
    for h in expected.difference(&present) {
        stale.push(format!(
            "exported configuration {h} has no trace in the corpus"
        ));
    }
    assert!(
        stale.is_empty(),
        "the corpus is stale:\n{}\n{REGENERATE}",
        stale.join("\n")
    );
}

#[test]
fn corpus_replays_without_divergence_and_covers_every_action_kind_and_f1_f6() {
    let traces = corpus();
    let start = Instant::now();
    let mut steps = 0;
    let mut variants = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut witnesses = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, t) in &traces {
        match replay(t, None) {
            Err(e) => failures.push(format!("{name}: unusable: {e}; {REGENERATE}")),
            Ok(r) => {
                steps += r.steps;
                variants.extend(r.variants);
                kinds.extend(r.kinds);
                witnesses.extend(r.witnesses);
                if let Some(d) = r.divergence {
                    failures.push(format!("{name}: {d}"));
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} traces, {steps} steps in {secs:.3}s ({:.0} steps/s)",
        traces.len(),
        steps as f64 / secs.max(1e-9)
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<&str> = ACTION_VARIANTS
        .iter()
        .chain(ACTION_KINDS.iter())
        .chain(F_PROPERTIES.iter())
        .filter(|x| !variants.contains(*x) && !kinds.contains(*x) && !witnesses.contains(*x))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "never exercised by the corpus: {missing:?}"
    );
}

#[test]
fn lockstep_small_configuration_is_exhaustive_without_divergence() {
    let cfg = lockstep::small_config();
    let r = lockstep::run(&LockstepOptions::new(cfg.clone()));
    println!(
        "lockstep {cfg:?}: {} states, {} edges, {} divergences, complete={}, {:.1}s ({:.0} states/s)",
        r.states,
        r.edges,
        r.divergences,
        r.complete,
        r.seconds,
        r.states_per_second()
    );
    if let Some((d, path)) = &r.first {
        panic!("{d}\npath: {path:?}");
    }
    assert!(r.complete, "the lockstep walk was not exhaustive");
    assert_eq!(r.divergences, 0);
}

#[test]
fn lockstep_snapshot_configuration_is_exhaustive_without_divergence() {
    assert_conforms_exhaustively("snapshots", lockstep::snapshot_config());
}

/// Walks every behaviour of `cfg` with the cores in lockstep and asserts none diverges.
fn assert_conforms_exhaustively(name: &str, cfg: raft_model::Config) {
    let r = lockstep::run(&LockstepOptions::new(cfg));
    println!(
        "lockstep {name}: {} states, {} divergences, complete={}, {:.1}s",
        r.states, r.divergences, r.complete, r.seconds
    );
    if let Some((d, path)) = &r.first {
        panic!("{d}\npath: {path:?}");
    }
    assert!(r.complete, "the lockstep walk was not exhaustive");
    assert_eq!(r.divergences, 0);
}

#[test]
fn lockstep_runtime_configuration_is_exhaustive_without_divergence() {
    // The parameters the node runs with, reads by ReadIndex among them.
    assert_conforms_exhaustively("runtime", lockstep::runtime_config());
}

/// Membership, one operation kind a walk: a learner added and promoted (a spare joins), the
/// leader removing itself, a leadership transfer, and a voter removed then added again.
#[test]
fn lockstep_membership_changes_are_exhaustive_without_divergence() {
    for (servers, spares, admin) in [(3, 1, "l2,p2"), (3, 0, "r0"), (3, 0, "t1"), (2, 0, "r1,a1")] {
        assert_conforms_exhaustively(
            &format!("membership {admin}"),
            raft_model::Config::operator_only(servers, spares, admin),
        );
    }
}

#[test]
fn lockstep_pipelined_configuration_is_exhaustive_without_divergence() {
    assert_conforms_exhaustively("pipelined", lockstep::pipelined_config());
}

#[test]
fn every_core_mutant_is_caught() {
    let traces = corpus();
    let results = mutants::score(&traces, &lockstep::small_config());
    let mut survived = Vec::new();
    for r in &results {
        match &r.caught_by {
            Some(by) => println!("{:?}: caught by {by}", r.bug),
            None => survived.push(r.bug),
        }
    }
    assert!(survived.is_empty(), "mutants not caught: {survived:?}");
}

#[test]
fn lockstep_sessions_configuration_is_exhaustive_without_divergence() {
    // Registration, LRU eviction from a one-session table and the refusal of a retry whose
    // session is gone, on every behaviour of the model's sessions configuration.
    let cfg = raft_model::Config {
        max_term: 2,
        ..raft_model::Config::sessions()
    };
    assert_conforms_exhaustively("sessions", cfg);
}

/// A candidate that counts a vote granted in its previous term: the model keeps stale
/// responses in flight, so the exhaustive walk delivers one to a candidate of the next term and
/// the core, which becomes leader where the model does not, diverges.
#[test]
fn lockstep_catches_a_stale_vote_counted_by_the_core() {
    let opts = LockstepOptions {
        core_bug: Some(Some(raft_core::Bug::StaleVoteCounted)),
        stop_at_first: true,
        ..LockstepOptions::new(lockstep::small_config())
    };
    let r = lockstep::run(&opts);
    let (d, path) = r
        .first
        .expect("the stale-vote mutant was not caught by the lockstep walk");
    println!(
        "caught after {} states, {} steps: {d}",
        r.states,
        path.len()
    );
}

/// `raft-model check --config runtime` checks the parameters the node runs with: every field of
/// the node's `Params` either equals the model's or, where the model has no value of its own,
/// is shown here to behave the same within the model's vocabulary. A field added to `Params`
/// fails to compile below until it is thought about.
#[test]
fn the_runtime_configuration_checks_the_nodes_parameters() {
    let model_cfg = raft_model::Config::runtime();
    let model = map::params(&model_cfg);
    let node = runtime_params();
    assert_eq!(
        node.max_sessions,
        Some(default_max_sessions()),
        "a node configured with the default session bound runs these parameters"
    );
    let Params {
        pre_vote,
        check_quorum,
        max_entries_per_append,
        backoff,
        noop_on_election,
        max_bytes_per_append,
        max_inflight_appends,
        max_sessions,
        bug,
    } = node;
    assert_eq!(model.pre_vote, pre_vote);
    assert_eq!(model.check_quorum, check_quorum);
    assert_eq!(model.max_entries_per_append, max_entries_per_append);
    assert_eq!(model.backoff, backoff);
    assert_eq!(model.noop_on_election, noop_on_election);
    assert_eq!(model.max_inflight_appends, max_inflight_appends);
    assert_eq!(bug, None);
    assert!(model.bug.is_none());

    // The session bound: the model's clients are few, so a table of the node's size never
    // evicts; the model's "no bound" is the same behaviour.
    let clients = model_cfg.client_ops.len();
    let bound = max_sessions.expect("the node bounds its session table");
    assert!(
        bound > clients,
        "{bound} sessions would evict among {clients} clients"
    );
    assert_eq!(model.max_sessions, None);

    // The byte cap: the largest append the model can send (every entry of the longest log, each
    // the largest command of the model's vocabulary) stays under it, so it never splits one.
    let cap = max_bytes_per_append.expect("the node caps an append's bytes");
    let v = Some(map::value(u8::MAX));
    let largest = Command::Client {
        client_id: u64::from(u8::MAX),
        seq: u64::from(u8::MAX),
        op: Op::Cas {
            key: map::key(u8::MAX),
            expected: v.clone(),
            new: v,
        },
    };
    let per_entry = KvStateMachine::command_size(&largest) + 16;
    let entries = max_entries_per_append.min(model_cfg.max_log_len as usize);
    assert!(
        per_entry * entries < cap,
        "{entries} entries of {per_entry} bytes reach the {cap}-byte cap"
    );
    assert_eq!(model.max_bytes_per_append, None);

    // Reads: the node serves every read by ReadIndex (its HTTP GET), as the model's clients do
    // under `read_index`; a `Get` never enters its log.
    assert!(model_cfg.params.read_index);
}
