//! The reduced configuration is checked exhaustively, symmetry reduction changes no verdict,
//! and the explorer answers.

use raft_model::runner::{run, RunOptions, Status};
use raft_model::Config;
use std::io::{Read, Write};
use std::time::Duration;

/// Checks `cfg` and asserts the run was exhaustive, every always-property held and every
/// named witness was found.
fn assert_safe_and_exhaustive(name: &str, cfg: Config, witnesses: &[&str]) {
    let summary = run(cfg, &RunOptions::default());
    println!(
        "{name}: {} unique states in {:.1}s",
        summary.unique_states, summary.seconds
    );
    assert!(summary.complete, "{:?}", summary.incomplete_reason);
    for p in &summary.properties {
        if p.expectation == "always" {
            assert_eq!(p.status, Status::Holds, "{} on {:?}", p.name, p.path);
        }
    }
    for witness in witnesses {
        assert_eq!(summary.status_of(witness), Some(Status::Found), "{witness}");
    }
}

#[test]
fn reduced_configuration_is_safe_and_exhaustive() {
    assert_safe_and_exhaustive(
        "small",
        Config::small(),
        &[
            "leader elected",
            "client entry committed",
            "two leaders at once",
        ],
    );
}

/// The duplicating network (a delivered message stays in flight and may be delivered again):
/// every always-property holds exhaustively, the witnesses of the reduced configuration are
/// found, and it is not a network on which nothing happens: a bug is caught on it too. With
/// drops: without them a delivered message never leaves, the in-flight bound fills at once and
/// no client entry is ever committed (915 states). Two in flight and no restart keep it to
/// 106,202 states (three in flight ran past two minutes in a release build).
#[test]
fn duplicating_network_is_safe_and_catches_a_bug() {
    let cfg = Config {
        network: raft_model::config::Network::Duplicating,
        drops: true,
        max_in_flight: 2,
        max_restarts: 0,
        ..Config::small()
    };
    assert_safe_and_exhaustive(
        "duplicating",
        cfg.clone(),
        &[
            "leader elected",
            "client entry committed",
            "two leaders at once",
        ],
    );
    let buggy = run(
        Config {
            bug: Some(raft_model::config::Bug::VoteWithoutUpToDateCheck),
            ..cfg
        },
        &RunOptions::default(),
    );
    assert!(
        buggy
            .properties
            .iter()
            .any(|p| p.expectation == "always" && p.status == Status::Violated),
        "the duplicating network hides a vote granted without the up-to-date check"
    );
}

#[test]
fn symmetry_reduction_changes_no_verdict() {
    let cfg = Config {
        max_term: 2,
        max_log_len: 2,
        max_restarts: 0,
        max_retries: 0,
        ..Config::small()
    };
    let verdicts = |symmetry| {
        let s = run(
            cfg.clone(),
            &RunOptions {
                symmetry,
                ..RunOptions::default()
            },
        );
        assert!(s.complete);
        let v: Vec<_> = s.properties.iter().map(|p| (p.name, p.status)).collect();
        (v, s.unique_states)
    };
    let (with, reduced) = verdicts(true);
    let (without, full) = verdicts(false);
    assert_eq!(with, without);
    assert!(
        reduced < full,
        "symmetry reduced nothing: {reduced} vs {full}"
    );
    println!("symmetry: {full} -> {reduced} unique states");
}

/// The one reduction besides symmetry: client answers no client can take are collected. The
/// verdicts with and without it must agree. Identical answers are absorbed by the network (a
/// set), so answers die only where a client moves on through another answer: a second
/// registration's `Registered`, or answers after `SessionExpired`; the sessions configuration
/// has both.
#[test]
fn collecting_dead_client_answers_changes_no_verdict() {
    let cfg = Config::sessions();
    let verdicts = |collect| {
        let s = run(
            Config {
                collect_dead_answers: collect,
                ..cfg.clone()
            },
            // Without symmetry the counts are exact, so the comparison of sizes is too.
            &RunOptions {
                symmetry: false,
                stop_on_violation: false,
                ..RunOptions::default()
            },
        );
        assert!(s.complete, "{:?}", s.incomplete_reason);
        let v: Vec<_> = s.properties.iter().map(|p| (p.name, p.status)).collect();
        (v, s.unique_states)
    };
    let (with, reduced) = verdicts(true);
    let (without, full) = verdicts(false);
    assert_eq!(with, without);
    assert!(reduced < full, "collected nothing: {reduced} vs {full}");
    println!("dead client answers: {full} -> {reduced} unique states");
}

/// Serves the explorer for `cfg` on a free port, as `raft-model explore` does.
fn serve_explorer(cfg: Config) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let serve_addr = addr.clone();
    std::thread::spawn(move || raft_model::explorer::serve(cfg, &serve_addr, 1));
    addr
}

/// The status line and body of a GET, retried while the server is starting. HTTP/1.0, so the
/// body comes whole rather than chunked.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut last_err = None;
    for _ in 0..100 {
        match std::net::TcpStream::connect(addr) {
            Ok(mut conn) => {
                conn.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                write!(
                    conn,
                    "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut response = String::new();
                let _ = conn.read_to_string(&mut response);
                let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
                let status = head.lines().next().unwrap_or("").to_string();
                return (status, body.to_string());
            }
            Err(e) => last_err = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("explorer never answered on {addr}: {last_err:?}");
}

#[test]
fn explorer_answers_status() {
    let addr = serve_explorer(Config::small());
    let (status, body) = get(&addr, "/.status");
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("election safety"), "{body}");
}

/// A counterexample's deep link, loaded through the endpoint the page uses (`/.states/` and
/// the path up to the last step, whose successors include the state the link shows): the
/// state's text starts with what it violates and the explorer's flags, and its picture is
/// there. A path with an index the explorer has no step for is refused.
#[test]
fn explorer_deep_link_shows_verdicts_and_picture() {
    let cfg = Config {
        max_term: 1,
        client_ops: vec![],
        drops: false,
        max_in_flight: 5,
        bug: Some(raft_model::Bug::ForgetVoteOnRestart),
        ..Config::default()
    };
    let summary = run(
        cfg.clone(),
        &RunOptions {
            strategy: raft_model::runner::Strategy::Bfs,
            ..RunOptions::default()
        },
    );
    let link = summary
        .properties
        .iter()
        .find(|p| p.name == "election safety" && p.status == Status::Violated)
        .and_then(|p| p.explorer_path.clone())
        .expect("the bug is caught");
    let (prefix, last) = link.rsplit_once('/').unwrap();
    let addr = serve_explorer(cfg.clone());
    let (status, body) = get(&addr, &format!("/.states/{prefix}"));
    assert!(status.contains(" 200 "), "{status} {body}");
    let steps: serde_json::Value = serde_json::from_str(&body).unwrap();
    let last: u64 = last.parse().unwrap();
    let step = (steps.as_array().unwrap().iter())
        .find(|s| s["actionIndex"].as_u64() == Some(last))
        .unwrap_or_else(|| panic!("no step {last} in {body}"));
    let text = step["outcome"].as_str().unwrap();
    let flags = format!("explorer flags: {}", cfg.flags().join(" "));
    assert!(
        text.starts_with("verdict: VIOLATES election safety\n"),
        "{text}"
    );
    assert!(text.contains(&flags), "{text}");
    let svg = step["svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.contains("verdict: VIOLATES election safety"), "{svg}");
    assert_eq!(svg.matches(" Leader t1<").count(), 2, "{svg}");
    assert!(svg.contains(&flags), "{svg}");
    let steps_in_link = link.split('/').count() - 1;
    assert!(
        svg.contains(&format!("path so far: {steps_in_link} steps")),
        "{svg}"
    );

    let (status, body) = get(&addr, &format!("/.states/{prefix}/999"));
    assert!(status.contains(" 404 "), "{status} {body}");
    assert!(body.contains("Unable to find state"), "{body}");

    // What the page does with the two: shows a refused path, and compares a link's flags
    // with these.
    let (status, script) = get(&addr, "/app.js");
    assert!(status.contains(" 200 "), "{status}");
    assert!(script.contains(".then(raftrightChecked)"), "{script}");
    let (_, served_flags) = get(&addr, "/.flags");
    assert_eq!(served_flags, cfg.flags().join(" "));
}

#[test]
fn snapshot_configuration_is_safe_and_reaches_install_and_restore() {
    let cfg = Config {
        snapshots: true,
        max_log_len: 3,
        max_in_flight: 2,
        ..Config::small()
    };
    assert_safe_and_exhaustive(
        "snapshots",
        cfg,
        &[
            raft_model::properties::SNAPSHOT_INSTALLED,
            raft_model::properties::RESTORED_FROM_SNAPSHOT,
            "client entry committed",
        ],
    );
}

#[test]
fn sessions_configuration_is_safe_and_refuses_a_retry_after_eviction() {
    // One leader, then two terms: a pre-registered client's retry meets the session that a
    // registration evicted from a one-session table, and is refused, never applied again.
    for max_term in [1, 2] {
        assert_safe_and_exhaustive(
            &format!("sessions, max_term {max_term}"),
            Config {
                max_term,
                ..Config::sessions()
            },
            &[
                raft_model::properties::EXPIRED_RETRY_REFUSED,
                "duplicate answered from session table",
                "client entry committed",
            ],
        );
    }
}

/// Every deep-tier configuration is one the checker accepts and starts exploring without an
/// early violation (the whole tier takes tens of minutes: `raft-model check --deep`), and the
/// names `--only` selects by are distinct.
#[test]
fn deep_tier_configurations_run() {
    let tier = Config::deep();
    let mut names: Vec<&str> = tier.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), tier.len(), "duplicate names in the deep tier");
    for (name, cfg) in tier {
        let summary = run(
            cfg,
            &RunOptions {
                max_states: Some(20_000),
                ..RunOptions::default()
            },
        );
        // `max_states` bounds the generated states; a configuration that cannot move would
        // end exhaustive long before.
        assert!(
            !summary.complete && summary.total_states >= 20_000,
            "{name}: ended after {} states ({} unique)",
            summary.total_states,
            summary.unique_states
        );
        for p in &summary.properties {
            assert_ne!(
                p.status,
                Status::Violated,
                "{name}: {} on {:?}",
                p.name,
                p.path
            );
        }
    }
}
