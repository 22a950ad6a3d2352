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

/// A small configuration with the forgotten-vote bug, and the explorer path (shortest, by
/// BFS) of its election-safety counterexample.
fn forgotten_vote_counterexample() -> (Config, String) {
    let cfg = Config {
        max_term: 1,
        client_ops: vec![],
        drops: false,
        max_in_flight: 5,
        bug: Some(raft_model::Bug::ForgetVoteOnRestart),
        ..Config::default()
    };
    let opts = RunOptions {
        strategy: raft_model::runner::Strategy::Bfs,
        ..RunOptions::default()
    };
    let link = (run(cfg.clone(), &opts).properties.iter())
        .find(|p| p.name == "election safety" && p.status == Status::Violated)
        .and_then(|p| p.explorer_path.clone())
        .expect("the bug is caught");
    (cfg, link)
}

/// A counterexample's deep link, loaded through the endpoint the page uses (`/.states/` and
/// the path up to the last step, whose successors include the state the link shows): the
/// state's text starts with what it violates and the explorer's flags, and its picture is
/// there. A path with an index the explorer has no step for is refused.
#[test]
fn explorer_deep_link_shows_verdicts_and_picture() {
    let (cfg, link) = forgotten_vote_counterexample();
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

/// "Run to completion" on the page runs raftright's engine, with symmetry, as `check` does:
/// the explorer answers the page's request and reports the same exhaustive count.
#[test]
fn run_to_completion_is_the_checkers_engine() {
    let cfg = Config::small();
    let addr = serve_explorer(cfg.clone());
    let (status, body) = get(&addr, "/.raftright-run");
    assert!(status.contains(" 404 "), "{status} {body}");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /.runtocompletion HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 202") || answer.starts_with("HTTP/1.0 202"),
        "{answer}"
    );
    let want = run(cfg, &RunOptions::default()).unique_states;
    let start = std::time::Instant::now();
    let report = loop {
        let (status, body) = get(&addr, "/.raftright-run");
        if status.contains(" 200 ") {
            break body;
        }
        assert!(status.contains(" 202 "), "{status} {body}");
        assert!(body.contains("raftright's engine"), "{body}");
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "still running: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        report.contains(&format!("Exhaustive run: {want} unique states")),
        "{report}"
    );
}

/// The first Chromium on `PATH` (`RAFT_CHROMIUM` names another).
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("RAFT_CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Headless Chromium on `url` with `args`, stopped after 90 s; its stdout.
fn run_chromium(bin: &std::path::Path, args: &[&str], url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("raftright-chromium-{}", std::process::id()));
    let mut child = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        // Lets the page's fetches and scripts finish before the DOM or the picture is taken.
        .arg("--virtual-time-budget=10000")
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Chromium starts");
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("Chromium did not finish with {url} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap()
}

/// The explorer in a real browser (headless Chromium, where installed): a counterexample's
/// link shows the state's verdicts and picture, a link printed for other flags and a link to
/// a step that does not exist both show the banner, and the screenshot is the rendered page.
#[test]
fn explorer_in_a_real_browser_shows_verdicts_picture_and_refusals() {
    let Some(bin) = chromium() else {
        println!("skipped: no Chromium on PATH (apt-get install chromium, or set RAFT_CHROMIUM)");
        return;
    };
    let (cfg, link) = forgotten_vote_counterexample();
    let addr = serve_explorer(cfg.clone());
    get(&addr, "/.status");
    let flags = raft_model::explorer::encode_flags(&cfg);
    let url = format!("http://{addr}/#/steps/{link}?flags={flags}");

    let dom = run_chromium(&bin, &["--dump-dom"], &url);
    assert!(
        dom.contains("verdict: VIOLATES election safety"),
        "{url}\n{dom}"
    );
    assert!(
        dom.contains(&format!("explorer flags: {}", cfg.flags().join(" "))),
        "{dom}"
    );
    assert!(dom.contains("<svg"), "no picture in\n{dom}");
    assert!(
        !dom.contains("raftright-banner"),
        "a banner on a good link:\n{dom}"
    );

    let other = format!("http://{addr}/#/steps/{link}?flags=--max-term%202");
    let dom = run_chromium(&bin, &["--dump-dom"], &other);
    assert!(
        dom.contains("This link is for an explorer started with flags \"--max-term 2\""),
        "{dom}"
    );
    let missing = format!("http://{addr}/#/steps/0/999/0");
    let dom = run_chromium(&bin, &["--dump-dom"], &missing);
    assert!(
        dom.contains("This explorer has no step 999 after /0"),
        "{dom}"
    );

    let shot = std::env::temp_dir().join(format!("raftright-explorer-{}.png", std::process::id()));
    let arg = format!("--screenshot={}", shot.display());
    run_chromium(&bin, &[&arg, "--window-size=1400,1400"], &url);
    let png = std::fs::read(&shot).expect("Chromium wrote the screenshot");
    let _ = std::fs::remove_file(&shot);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!(
        (size(16), size(20)),
        (1400, 1400),
        "the IHDR's width and height"
    );
    // A blank page of that size compresses to a few kilobytes; the rendered state, its text
    // and its picture to a few hundred.
    assert!(png.len() > 100_000, "{} bytes: a blank page?", png.len());
    println!("browser check: {} bytes of screenshot", png.len());
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

/// Pipelining with a pipeline of one and of two appends, so that a full pipeline (a broadcast
/// that becomes an empty append at `match_index`, a response follow-up that sends nothing) is
/// reached: 29,214 and 63,887 states on a reliable network.
#[test]
fn pipelined_configurations_are_safe_and_exhaustive() {
    for depth in [1, 2] {
        let mut cfg = pipelined(depth);
        cfg.drops = false;
        let mut witnesses = vec!["client entry committed"];
        if depth >= 2 {
            witnesses.push(raft_model::properties::PIPELINED);
        }
        assert_safe_and_exhaustive(&format!("pipelined, depth {depth}"), cfg, &witnesses);
    }
}

/// A pipeline of two on a network that loses messages: appends lost in flight stall the
/// pipeline until the heartbeat fallback resends from `match_index`. 2,811,423 states, about
/// 40 s in a release build: `.ci/run` runs it with `--release`.
#[test]
#[cfg_attr(debug_assertions, ignore = "millions of states: run with --release")]
fn pipelined_configuration_with_losses_is_safe_and_recovers_stalls() {
    assert_safe_and_exhaustive(
        "pipelined, depth 2, drops",
        pipelined(2),
        &[
            "client entry committed",
            raft_model::properties::PIPELINED,
            raft_model::properties::PIPELINE_FALLBACK,
        ],
    );
}

fn pipelined(depth: u8) -> Config {
    let mut cfg = Config {
        max_log_len: 2,
        max_restarts: 0,
        max_in_flight: 2,
        drops: true,
        ..Config::small()
    };
    cfg.params.max_inflight_appends = depth;
    cfg
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

/// Membership at bounds the test profile checks in seconds, one operation kind each: every
/// always-property holds across configurations and the operation's witness is found.
fn membership(servers: u8, spares: u8, admin: &str) -> Config {
    Config {
        max_in_flight: 3,
        ..Config::operator_only(servers, spares, admin)
    }
}

#[test]
fn a_learner_is_added_and_promoted() {
    assert_safe_and_exhaustive(
        "learner",
        membership(3, 1, "l2,p2"),
        &["leader elected", raft_model::properties::VOTER_ADDED],
    );
}

#[test]
fn a_leader_removes_itself_and_steps_down() {
    assert_safe_and_exhaustive(
        "remove",
        membership(3, 0, "r0"),
        &[
            "leader elected",
            raft_model::properties::LEADER_REMOVED_ITSELF,
        ],
    );
}

#[test]
fn leadership_is_transferred() {
    assert_safe_and_exhaustive(
        "transfer",
        membership(3, 0, "t1"),
        &["leader elected", raft_model::properties::TRANSFER],
    );
}

/// A leader that is its membership's only voter commits on its own copy: s0, left alone by
/// removing s1, commits that change by itself and can then add s1 back.
#[test]
fn a_sole_voter_commits_alone() {
    assert_safe_and_exhaustive(
        "sole voter",
        membership(2, 0, "r1,a1"),
        &[raft_model::properties::VOTER_ADDED],
    );
}

/// Every witness the configuration can produce (`properties::witnesses` leaves out those it
/// cannot, e.g. the client witnesses without a client).
fn every_witness(cfg: &Config) -> Vec<&'static str> {
    (raft_model::properties::witnesses(cfg).iter())
        .map(|p| p.name)
        .collect()
}

/// A membership change across a client's put and its retry: linearizability, exactly-once and
/// State Machine Safety hold while the configuration changes under the client's operation.
/// Removing s0 (the first leader in the runs where s0 wins term 1): every witness of the
/// configuration is found, the failure cases F1 to F6 and the leader's own removal among
/// them. Two voters adding a spare, s2, as a voter while the put is in flight (76,679
/// states): every witness but F2 and F6, which two voters cannot reach (the one holding an
/// entry the other lacks refuses it its vote; a leader without the other has no majority of
/// its own).
#[test]
fn membership_with_a_client_is_safe_and_exhaustive() {
    let cfg = Config::membership_with_client();
    assert_safe_and_exhaustive(
        "membership with a client",
        cfg.clone(),
        &every_witness(&cfg),
    );
    let add = Config {
        spares: 1,
        admin_ops: vec![raft_model::types::AdminOp::AddVoter(2)],
        ..cfg
    };
    assert_safe_and_exhaustive(
        "membership with a client, a spare added",
        add,
        &[
            "client entry committed",
            "duplicate answered from session table",
            raft_model::properties::F4,
            raft_model::properties::VOTER_ADDED,
        ],
    );
}

/// Membership with compaction: every always-property holds (snapshot safety among them), a
/// follower catches up by InstallSnapshot, a restart restores from a snapshot and the
/// configuration adding s2 is committed; and, searched apart (`SpareSnapshot`), the spare s2
/// installs a snapshot that carries the configuration naming it a member, which it can have
/// from nowhere else once the entry is compacted.
#[test]
fn membership_with_snapshots_is_safe_and_hands_the_configuration_over() {
    let cfg = Config::membership_with_snapshots();
    assert_safe_and_exhaustive(
        "membership with snapshots",
        cfg.clone(),
        &[
            "leader elected",
            raft_model::properties::VOTER_ADDED,
            raft_model::properties::SNAPSHOT_INSTALLED,
            raft_model::properties::RESTORED_FROM_SNAPSHOT,
        ],
    );
    let model = SpareSnapshot(raft_model::RaftModel::new(cfg));
    let report = raft_model::engine::check(
        &model,
        &raft_model::engine::Options {
            threads: 2,
            symmetry: None,
            timeout: None,
            max_states: None,
            stop_on_violation: false,
            progress: false,
        },
    )
    .unwrap();
    assert!(report.complete(), "{:?}", report.incomplete_reason);
    let found = &report.discoveries[0];
    let trail = found.trail.as_ref().expect(found.name);
    println!(
        "{}: {} steps ({} unique states)",
        found.name,
        trail.steps.len(),
        report.unique_states
    );
}

/// `RaftModel` with one more witness, which a state alone cannot tell: a spare (a server that
/// started outside the cluster) installs an InstallSnapshot whose configuration names it a
/// member. The flag beside the state records that it happened on the way.
struct SpareSnapshot(raft_model::RaftModel);

impl stateright::Model for SpareSnapshot {
    type State = (raft_model::State, bool);
    type Action = raft_model::Action;

    fn init_states(&self) -> Vec<Self::State> {
        (self.0.init_states().into_iter())
            .map(|s| (s, false))
            .collect()
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        self.0.actions(&state.0, actions);
    }

    fn next_state(&self, last: &Self::State, action: Self::Action) -> Option<Self::State> {
        use raft_model::types::Msg;
        let cfg = &self.0.cfg;
        let carried = match &action {
            raft_model::Action::Deliver(env) => match &env.msg {
                Msg::InstallSnapshot { snapshot, .. }
                    if env.dst >= cfg.servers - cfg.spares
                        && (snapshot.membership).is_some_and(|m| {
                            m.members() & raft_model::server::bit(env.dst) != 0
                        }) =>
                {
                    Some((env.dst, snapshot.clone()))
                }
                _ => None,
            },
            _ => None,
        };
        let next = self.0.next_state(&last.0, action)?;
        let installed = carried.is_some_and(|(dst, snapshot)| {
            let i = dst as usize;
            last.0.servers[i].snapshot != snapshot && next.servers[i].snapshot == snapshot
        });
        Some((next, last.1 || installed))
    }

    fn within_boundary(&self, state: &Self::State) -> bool {
        self.0.within_boundary(&state.0)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        vec![stateright::Property::sometimes(
            "a spare installs a snapshot carrying the configuration that adds it",
            |_, s: &Self::State| s.1,
        )]
    }
}

/// The client configuration catches a bug that only a change of membership exposes: a
/// majority taken as `(voters + 1) / 2` is right for the three voters it starts with and one
/// short once removing s0 leaves two, so a leader of the two commits alone. (Run on these
/// bounds, not through `Bug::enable_feature`, which would make the cluster even from the
/// start.) The path goes through the operator's removal.
#[test]
fn membership_with_a_client_catches_a_majority_wrong_after_the_change() {
    let summary = run(
        Config {
            bug: Some(raft_model::Bug::MajorityOfEvenCluster),
            ..Config::membership_with_client()
        },
        &RunOptions::default(),
    );
    let broken = (summary.properties.iter())
        .find(|p| p.status == Status::Violated)
        .expect("the bug is caught");
    assert_eq!(broken.name, raft_model::properties::COMMIT_SOUNDNESS);
    let path = broken.path.as_ref().unwrap();
    println!(
        "{}: {} steps, {} unique states\n{}",
        broken.name,
        path.len(),
        summary.unique_states,
        path.join("\n")
    );
    assert!(
        path.iter().any(|step| step.starts_with("Admin")),
        "{path:?}"
    );
}
