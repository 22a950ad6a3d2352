//! Runs the checker and says honestly what it found: whether the run was exhaustive, what held,
//! what was violated (with a path), which witnesses were found and which are missing.

use crate::engine::{self, Report};
use crate::model::RaftModel;
use crate::symmetry::representative;
use crate::{Config, State};
use serde::Serialize;
use stateright::{Checker, Expectation, HasDiscoveries, Model, Property};
use std::io::Write;
use std::time::{Duration, Instant};

pub use crate::engine::peak_rss_bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Depth-first, with symmetry reduction, on raftright's own engine (src/engine.rs): the
    /// exhaustive default.
    Dfs,
    /// Stateright's depth-first checker, with symmetry reduction: slower, kept to cross-check
    /// the engine.
    #[serde(rename = "stateright-dfs")]
    StaterightDfs,
    /// Stateright's breadth-first checker: shortest counterexamples, no symmetry reduction
    /// (stateright's BFS ignores it).
    Bfs,
    /// Seeded random walks on every thread (thread i from seed + i), every property checked on
    /// every state: never exhaustive. A walk ends when no step is enabled, when it comes back
    /// to a state it went through, or at 200 states. Runs until --timeout or --max-states, or
    /// for 60 s when neither is given.
    Simulation,
}

/// How long random walks run when neither a time nor a state limit is given.
pub const SIMULATION_BUDGET: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub strategy: Strategy,
    pub threads: usize,
    /// Seed of the random walks: thread `i` walks from `seed + i`.
    pub seed: u64,
    pub symmetry: bool,
    pub timeout: Option<Duration>,
    pub max_states: Option<usize>,
    /// Stop at the first violated always-property (the run is then not exhaustive).
    pub stop_on_violation: bool,
    /// Print a progress line every second to stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            strategy: Strategy::Dfs,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 0,
            symmetry: true,
            timeout: None,
            max_states: None,
            stop_on_violation: true,
            progress: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Holds,
    Violated,
    Found,
    Missing,
    /// An always-property not violated in a run that was not exhaustive: nothing is claimed.
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct PropertyResult {
    pub name: &'static str,
    pub expectation: &'static str,
    pub status: Status,
    /// The steps from the initial state to the violating state or the witness.
    pub path: Option<Vec<String>>,
    /// Action indices from the initial state: `http://localhost:<port>/#/steps/<path>` on the
    /// explorer of the same configuration (`ExplorerLinks`).
    pub explorer_path: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub config: Config,
    pub strategy: Strategy,
    pub threads: usize,
    pub symmetry: bool,
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub unique_states_per_second: f64,
    pub peak_rss_bytes: u64,
    pub properties: Vec<PropertyResult>,
}

impl Summary {
    /// True only for an exhaustive run in which every always-property held and every witness
    /// was found.
    pub fn ok(&self) -> bool {
        self.complete
            && self
                .properties
                .iter()
                .all(|p| matches!(p.status, Status::Holds | Status::Found))
    }

    pub fn status_of(&self, name: &str) -> Option<Status> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.status)
    }

    /// Why the exit status is not 0, or None.
    pub fn failure_reason(&self) -> Option<String> {
        let violated: Vec<_> = self
            .properties
            .iter()
            .filter(|p| p.status == Status::Violated)
            .map(|p| p.name)
            .collect();
        let missing: Vec<_> = self
            .properties
            .iter()
            .filter(|p| p.status == Status::Missing)
            .map(|p| p.name)
            .collect();
        let mut why = Vec::new();
        if !violated.is_empty() {
            why.push(format!("violated: {}", violated.join(", ")));
        }
        if let Some(r) = &self.incomplete_reason {
            why.push(format!("not exhaustive: {r}"));
        }
        if !missing.is_empty() {
            why.push(format!("witnesses missing: {}", missing.join(", ")));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

pub fn run(cfg: Config, opts: &RunOptions) -> Summary {
    // Membership names servers (the operator's operations, the spares), so renaming ids would
    // change behaviour: symmetry reduction is off for those configurations.
    let opts = &RunOptions {
        symmetry: opts.symmetry && cfg.is_symmetric(),
        ..opts.clone()
    };
    match opts.strategy {
        Strategy::Dfs | Strategy::Simulation => run_engine(cfg, opts),
        Strategy::StaterightDfs | Strategy::Bfs => run_stateright(cfg, opts),
    }
}

/// The engine's exhaustive search or random walks.
fn run_engine(cfg: Config, opts: &RunOptions) -> Summary {
    let model = RaftModel::new(cfg.clone());
    let engine_opts = engine_options(opts);
    let report = if opts.strategy == Strategy::Simulation {
        engine::simulate(&model, &engine_opts, opts.seed)
    } else {
        engine::check(&model, &engine_opts)
    };
    // A refusal (a property the engine cannot check) is a run that proved nothing.
    let report = report.unwrap_or_else(|refused| Report {
        unique_states: 0,
        total_states: 0,
        max_depth: 0,
        seconds: 0.0,
        incomplete_reason: Some(refused.to_string()),
        discoveries: Vec::new(),
    });
    let complete = report.complete();
    let mut found: Vec<_> = (report.discoveries.iter())
        .map(|d| {
            d.trail.as_ref().map(|t| {
                let steps = t.actions().map(|a| model.format_action(a)).collect();
                (steps, t.encode())
            })
        })
        .collect();
    found.resize(model.properties().len(), None);
    let properties = (model.properties().iter().zip(found))
        .map(|(p, found)| property_result(p, found, complete))
        .collect();
    Summary {
        config: cfg,
        strategy: opts.strategy,
        threads: opts.threads,
        symmetry: opts.symmetry,
        complete,
        incomplete_reason: report.incomplete_reason,
        unique_states: report.unique_states,
        total_states: report.total_states,
        max_depth: report.max_depth,
        seconds: report.seconds,
        unique_states_per_second: report.unique_states as f64 / report.seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
        properties,
    }
}

fn engine_options(opts: &RunOptions) -> engine::Options<State> {
    let unlimited = opts.timeout.is_none() && opts.max_states.is_none();
    engine::Options {
        threads: opts.threads.max(1),
        symmetry: opts
            .symmetry
            .then_some(representative as engine::Canon<State>),
        timeout: if opts.strategy == Strategy::Simulation && unlimited {
            Some(SIMULATION_BUDGET)
        } else {
            opts.timeout
        },
        max_states: opts.max_states,
        stop_on_violation: opts.stop_on_violation,
        progress: opts.progress,
    }
}

/// A property's verdict; `found` is the path to its discovery, as formatted steps and
/// explorer indices.
fn property_result(
    p: &Property<RaftModel>,
    found: Option<(Vec<String>, String)>,
    complete: bool,
) -> PropertyResult {
    let (expectation, status) = match (&p.expectation, found.is_some()) {
        (Expectation::Always, true) => ("always", Status::Violated),
        (Expectation::Always, false) if complete => ("always", Status::Holds),
        (Expectation::Always, false) => ("always", Status::Unknown),
        (Expectation::Sometimes, true) => ("sometimes", Status::Found),
        (Expectation::Sometimes, false) => ("sometimes", Status::Missing),
        (Expectation::Eventually, true) => ("eventually", Status::Violated),
        (Expectation::Eventually, false) => ("eventually", Status::Unknown),
    };
    let (path, explorer_path) = found.unzip();
    PropertyResult {
        name: p.name,
        expectation,
        status,
        path,
        explorer_path,
    }
}

/// Stateright's DFS (with symmetry reduction) or BFS.
fn run_stateright(cfg: Config, opts: &RunOptions) -> Summary {
    let model = RaftModel::new(cfg.clone());
    let mut builder = model.checker().threads(opts.threads.max(1));
    if opts.stop_on_violation {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    if let Some(t) = opts.timeout {
        builder = builder.timeout(t);
    }
    if let Some(n) = opts.max_states {
        builder = builder.target_state_count(n);
    }
    let symmetry = opts.symmetry && opts.strategy != Strategy::Bfs;
    if symmetry {
        builder = builder.symmetry_fn(|s| representative(s).into_owned());
    }
    let start = Instant::now();
    if opts.strategy == Strategy::Bfs {
        drive(builder.spawn_bfs(), cfg, opts, symmetry, start)
    } else {
        drive(builder.spawn_dfs(), cfg, opts, symmetry, start)
    }
}

fn drive<C: Checker<RaftModel>>(
    mut checker: C,
    cfg: Config,
    opts: &RunOptions,
    symmetry: bool,
    start: Instant,
) -> Summary {
    let handles = checker.handles();
    // The run is over when the market closes or when any worker stops: a worker that stops on a
    // discovery or a state limit leaves its peers waiting for work that never comes.
    let finished = || checker.is_done() || handles.iter().any(|h| h.is_finished());
    let mut last_count = 0;
    let mut last_tick = Instant::now();
    while !finished() {
        std::thread::sleep(Duration::from_millis(50));
        if opts.progress && last_tick.elapsed() >= Duration::from_secs(1) {
            let unique = checker.unique_state_count();
            let rate = (unique - last_count.min(unique)) as f64 / last_tick.elapsed().as_secs_f64();
            eprintln!(
                "[{:>6.1}s] states={} unique={} unique/s={:.0} depth={} rss={}MiB",
                start.elapsed().as_secs_f64(),
                checker.state_count(),
                unique,
                rate,
                checker.max_depth(),
                peak_rss_bytes() >> 20
            );
            let _ = std::io::stderr().flush();
            last_count = unique;
            last_tick = Instant::now();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    summarize(cfg, opts, symmetry, &checker, seconds)
}

fn summarize<C: Checker<RaftModel>>(
    cfg: Config,
    opts: &RunOptions,
    symmetry: bool,
    checker: &C,
    seconds: f64,
) -> Summary {
    let model = checker.model();
    let discoveries = checker.discoveries();
    let violated_any = model
        .properties()
        .iter()
        .any(|p| p.expectation == Expectation::Always && discoveries.contains_key(p.name));
    let total_states = checker.state_count();
    let incomplete_reason = if opts.timeout.is_some_and(|t| seconds >= t.as_secs_f64()) {
        Some(format!(
            "stopped by the time limit ({}s)",
            opts.timeout.unwrap().as_secs()
        ))
    } else if opts.max_states.is_some_and(|n| total_states >= n) {
        Some(format!(
            "stopped at the state limit ({})",
            opts.max_states.unwrap()
        ))
    } else if opts.stop_on_violation && violated_any {
        Some("stopped at the first violation".to_string())
    } else {
        None
    };
    let complete = incomplete_reason.is_none();
    let properties = model
        .properties()
        .iter()
        .map(|p| {
            let found = discoveries.get(p.name).map(|path| {
                let steps = (path.clone().into_actions().iter())
                    .map(|a| format!("{a:?}"))
                    .collect();
                (steps, path.encode(model))
            });
            property_result(p, found, complete)
        })
        .collect();
    let unique_states = checker.unique_state_count();
    Summary {
        config: cfg,
        strategy: opts.strategy,
        threads: opts.threads,
        symmetry,
        complete,
        incomplete_reason,
        unique_states,
        total_states,
        max_depth: checker.max_depth(),
        seconds,
        unique_states_per_second: unique_states as f64 / seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
        properties,
    }
}

/// How to open a path in the explorer: the command that serves it on the checked
/// configuration, and the link. Both come from the same configuration and port, so a printed
/// link is one the printed command serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplorerLinks {
    /// What runs `raft-model`, e.g. `raft-model` or `cargo run --release -p raft-model --`.
    pub program: String,
    pub port: u16,
}

impl ExplorerLinks {
    pub fn command(&self, cfg: &Config) -> String {
        let mut words = vec![self.program.clone(), "explore".to_string()];
        words.extend(cfg.flags());
        if self.port != 3000 {
            words.push(format!("--port {}", self.port));
        }
        words.join(" ")
    }

    /// The flags ride along so that the page can tell when it is opened on an explorer of
    /// other flags (`explorer.rs`).
    pub fn link(&self, cfg: &Config, explorer_path: &str) -> String {
        format!(
            "http://localhost:{}/#/steps/{explorer_path}?flags={}",
            self.port,
            encode_flags(cfg)
        )
    }
}

/// The human-readable report `raft-model check` prints.
pub fn render(summary: &Summary, links: &ExplorerLinks) -> String {
    let mut out = String::new();
    let s = summary;
    out += &format!(
        "\n{} run: {} unique states ({} generated), depth {}, {:.1}s, {:.0} unique states/s, peak RSS {} MiB\n",
        if s.complete { "Exhaustive" } else { "INCOMPLETE" },
        s.unique_states,
        s.total_states,
        s.max_depth,
        s.seconds,
        s.unique_states_per_second,
        s.peak_rss_bytes >> 20
    );
    if let Some(r) = &s.incomplete_reason {
        out += &format!("  not exhaustive: {r}\n");
    }
    out += "\nProperties:\n";
    for p in &s.properties {
        let label = match p.status {
            Status::Holds => "holds",
            Status::Violated => "VIOLATED",
            Status::Found => "witness found",
            Status::Missing => "WITNESS MISSING",
            Status::Unknown => "not violated (run incomplete: unproven)",
        };
        out += &format!("  {:<9} {:<66} {}\n", p.expectation, p.name, label);
    }
    let command = links.command(&s.config);
    let found: Vec<_> = (s.properties.iter())
        .filter(|p| p.status == Status::Found)
        .filter_map(|p| Some((p, p.explorer_path.as_ref()?)))
        .collect();
    if !found.is_empty() {
        out += &format!("\nWitnesses, to browse with: {command}\n");
        for (p, e) in found {
            let steps = p.path.as_ref().map_or(0, Vec::len);
            out += &format!(
                "  {:<66} {steps:>3} steps  {}\n",
                p.name,
                links.link(&s.config, e)
            );
        }
    }
    for p in s.properties.iter().filter(|p| p.status == Status::Violated) {
        out += &format!("\nCounterexample for \"{}\":\n", p.name);
        for (i, step) in p.path.iter().flatten().enumerate() {
            out += &format!("  {:>3}. {step}\n", i + 1);
        }
        if let Some(e) = &p.explorer_path {
            out += &format!("  explore:  {command}\n");
            out += &format!("  explorer: {}\n", links.link(&s.config, e));
        }
    }
    match s.failure_reason() {
        None => out += "\nOK: exhaustive, every always-property holds, every witness found.\n",
        Some(why) => out += &format!("\nFAILED: {why}\n"),
    }
    out
}

/// The flags as a link carries them: `?flags=` percent-encoded.
pub fn encode_flags(cfg: &Config) -> String {
    let flags = cfg.flags().join(" ");
    flags
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(cfg: Config) -> Summary {
        run(
            cfg,
            &RunOptions {
                strategy: Strategy::Bfs,
                threads: 1,
                ..RunOptions::default()
            },
        )
    }

    /// Each counterexample and the witnesses come with the command that serves the same
    /// configuration on the same port as the link.
    #[test]
    fn the_report_prints_the_explore_command_with_each_link() {
        let cfg = Config {
            max_term: 1,
            client_ops: vec![],
            drops: false,
            max_in_flight: 5,
            bug: Some(crate::Bug::ForgetVoteOnRestart),
            ..Config::default()
        };
        let s = summary(cfg);
        let links = ExplorerLinks {
            program: "raft-model".into(),
            port: 8080,
        };
        let report = render(&s, &links);
        let command = "raft-model explore --max-term 1 --max-in-flight 5 --clients= --no-drops \
                       --bug forget-vote-on-restart --port 8080";
        let violated = s
            .properties
            .iter()
            .find(|p| p.status == Status::Violated)
            .unwrap();
        let flags = "--max-term%201%20--max-in-flight%205%20--clients%3D%20--no-drops%20--bug%20forget-vote-on-restart";
        let link = format!(
            "http://localhost:8080/#/steps/{}?flags={flags}",
            violated.explorer_path.as_ref().unwrap()
        );
        assert!(
            report.contains(&format!("  explore:  {command}\n  explorer: {link}\n")),
            "{report}"
        );
        assert!(
            report.contains(&format!("Witnesses, to browse with: {command}\n")),
            "{report}"
        );
        let elected = s
            .properties
            .iter()
            .find(|p| p.name == "leader elected")
            .unwrap();
        assert_eq!(elected.status, Status::Found);
        assert!(
            report.contains(&format!(
                "http://localhost:8080/#/steps/{}?flags={flags}\n",
                elected.explorer_path.as_ref().unwrap()
            )),
            "{report}"
        );
        assert!(!report.contains("3000"), "{report}");
    }

    #[test]
    fn the_default_port_is_left_out_of_the_command() {
        let links = ExplorerLinks {
            program: "raft-model".into(),
            port: 3000,
        };
        assert_eq!(links.command(&Config::default()), "raft-model explore");
        assert_eq!(
            links.link(&Config::default(), "0/1"),
            "http://localhost:3000/#/steps/0/1?flags="
        );
    }
}
