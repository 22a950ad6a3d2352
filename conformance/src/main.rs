//! `raft-conformance`: replay model traces on the node core, or walk the model's whole state
//! space with the cores in lockstep.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use raft_conformance::lockstep::{self, LockstepOptions};
use raft_conformance::mutants;
use raft_conformance::replay::{collect_files, replay};
use raft_model::config::{Backoff, Network};
use raft_model::trace::{ACTION_KINDS, ACTION_VARIANTS, F_PROPERTIES};
use raft_model::Config;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "raft-conformance",
    version,
    about = "Hold raftright's node core to its model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay trace files (or directories of `.jsonl` traces) on the node core. Exit 1 on a
    /// divergence or an unusable (stale) trace.
    Replay {
        /// Trace files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also report coverage and fail when an action kind or F1-F6 was never exercised.
        #[arg(long)]
        require_coverage: bool,
    },
    /// Walk the model's whole reachable state space with the cores carried along every edge.
    /// Exit 0 only when the walk was exhaustive and found no divergence.
    Lockstep(LockstepArgs),
    /// Mutation score: each core mutant against the corpus, then the lockstep walk.
    Mutants {
        /// Trace files or directories (default: the committed corpus).
        files: Vec<PathBuf>,
    },
    /// Check recordings of running nodes (`record = "FILE"` in `raft-node` configs): every
    /// recorded step must be a transition the model allows. Exit 1 at the first that is not.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Bounds: `Config::small()` (with the in-flight bound `lockstep::small_config` adds), or with
/// `--runtime` the node's parameters (`lockstep::runtime_config`), unless overridden.
#[derive(Args)]
struct LockstepArgs {
    /// Start from the node's own parameters (PreVote, CheckQuorum, reads by ReadIndex, 64
    /// entries per append) at the bounds `cargo test` walks.
    #[arg(long)]
    runtime: bool,
    #[arg(long)]
    servers: Option<u8>,
    #[arg(long)]
    max_term: Option<u8>,
    #[arg(long)]
    max_log_len: Option<u8>,
    #[arg(long)]
    max_restarts: Option<u8>,
    #[arg(long)]
    max_retries: Option<u8>,
    /// Most messages in flight (0: unbounded).
    #[arg(long)]
    max_in_flight: Option<u8>,
    /// One client per comma-separated item, each a sequence of `p` (put), `g` (get), `d`
    /// (delete) and `c` (compare-and-swap: create the key if absent).
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<String>>,
    #[arg(long)]
    pre_vote: bool,
    #[arg(long)]
    check_quorum: bool,
    /// Gets are ReadIndex reads (`Input::Read`), not log entries.
    #[arg(long)]
    read_index: bool,
    #[arg(long)]
    max_entries_per_append: Option<u8>,
    /// Pipelining: at most this many appends with entries in flight to a follower (0: off).
    #[arg(long)]
    max_inflight_appends: Option<u8>,
    #[arg(long, value_enum)]
    backoff: Option<Backoff>,
    #[arg(long)]
    no_noop_on_election: bool,
    #[arg(long, value_enum)]
    network: Option<Network>,
    #[arg(long)]
    drops: bool,
    /// Servers may compact their logs; leaders send InstallSnapshot.
    #[arg(long)]
    snapshots: bool,
    /// Stop after this many states (the run is then not exhaustive).
    #[arg(long)]
    max_states: Option<usize>,
    /// Count every divergence instead of stopping at the first.
    #[arg(long)]
    keep_going: bool,
}

impl LockstepArgs {
    fn config(&self) -> Result<Config, String> {
        let mut cfg = if self.runtime {
            lockstep::runtime_config()
        } else {
            lockstep::small_config()
        };
        if let Some(x) = self.servers {
            cfg.servers = x;
        }
        if let Some(x) = self.max_term {
            cfg.max_term = x;
        }
        if let Some(x) = self.max_log_len {
            cfg.max_log_len = x;
        }
        if let Some(x) = self.max_restarts {
            cfg.max_restarts = x;
        }
        if let Some(x) = self.max_retries {
            cfg.max_retries = x;
        }
        if let Some(x) = self.max_in_flight {
            cfg.max_in_flight = x;
        }
        cfg.snapshots |= self.snapshots;
        if let Some(clients) = &self.clients {
            cfg.client_ops = clients
                .iter()
                .enumerate()
                .map(|(c, ops)| {
                    ops.chars()
                        .map(|o| match o {
                            'p' => Ok(raft_model::config::put(c as u8)),
                            'g' => Ok(raft_model::config::get()),
                            'd' => Ok(raft_model::config::delete()),
                            'c' => Ok(raft_model::config::cas(c as u8)),
                            other => Err(format!("unknown operation '{other}': use p, g, d or c")),
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<_, _>>()?;
        }
        if !(2..=5).contains(&cfg.servers) {
            return Err("--servers must be 2 to 5".into());
        }
        cfg.params.pre_vote |= self.pre_vote;
        cfg.params.check_quorum |= self.check_quorum;
        cfg.params.read_index |= self.read_index;
        if let Some(x) = self.max_entries_per_append {
            if x == 0 {
                return Err("--max-entries-per-append must be at least 1".into());
            }
            cfg.params.max_entries_per_append = x;
        }
        if let Some(x) = self.max_inflight_appends {
            cfg.params.max_inflight_appends = x;
        }
        if let Some(b) = self.backoff {
            cfg.params.backoff = b;
        }
        if self.no_noop_on_election {
            cfg.params.noop_on_election = false;
        }
        if let Some(n) = self.network {
            cfg.network = n;
        }
        cfg.drops |= self.drops;
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Replay {
            files,
            require_coverage,
        } => cmd_replay(&files, require_coverage),
        Command::Lockstep(args) => cmd_lockstep(&args),
        Command::Mutants { files } => cmd_mutants(&files),
        Command::Validate { files } => cmd_validate(&files),
    }
}

fn cmd_replay(args: &[PathBuf], require_coverage: bool) -> ExitCode {
    let files = match collect_files(args).and_then(|f| mutants::load(&f)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let start = Instant::now();
    let mut steps = 0;
    let mut failed = false;
    let mut variants = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut witnesses = BTreeSet::new();
    for (name, trace) in &files {
        match replay(trace, None) {
            Err(e) => {
                println!("{name}: UNUSABLE: {e}");
                failed = true;
            }
            Ok(r) => {
                steps += r.steps;
                variants.extend(r.variants);
                kinds.extend(r.kinds);
                witnesses.extend(r.witnesses);
                match r.divergence {
                    Some(d) => {
                        println!("{name}: {d}");
                        failed = true;
                    }
                    None => println!("{name}: ok ({} steps)", r.steps),
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\n{} traces, {steps} steps replayed in {secs:.2}s ({:.0} steps/s)",
        files.len(),
        steps as f64 / secs.max(1e-9)
    );
    let missing_variants: Vec<_> = ACTION_VARIANTS
        .iter()
        .filter(|v| !variants.contains(*v))
        .collect();
    let missing_kinds: Vec<_> = ACTION_KINDS
        .iter()
        .filter(|k| !kinds.contains(*k))
        .collect();
    let missing_f: Vec<_> = F_PROPERTIES
        .iter()
        .filter(|f| !witnesses.contains(*f))
        .collect();
    println!(
        "coverage: {}/{} action variants, {}/{} action kinds, {} witnesses, {}/6 of F1-F6",
        variants.len(),
        ACTION_VARIANTS.len(),
        kinds.len(),
        ACTION_KINDS.len(),
        witnesses.len(),
        6 - missing_f.len()
    );
    for w in &witnesses {
        println!("  witness exercised: {w}");
    }
    for k in &missing_kinds {
        println!("  action kind never exercised: {k}");
    }
    for v in &missing_variants {
        println!("  action variant never exercised: {v}");
    }
    for f in &missing_f {
        println!("  scenario never exercised: {f}");
    }
    if require_coverage
        && (!missing_variants.is_empty() || !missing_kinds.is_empty() || !missing_f.is_empty())
    {
        failed = true;
    }
    if failed {
        println!("FAILED");
        ExitCode::from(1)
    } else {
        println!("OK");
        ExitCode::SUCCESS
    }
}

fn cmd_lockstep(args: &LockstepArgs) -> ExitCode {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("Bounds:\n{cfg}\n");
    let opts = LockstepOptions {
        max_states: args.max_states,
        stop_at_first: !args.keep_going,
        progress: true,
        ..LockstepOptions::new(cfg)
    };
    let r = lockstep::run(&opts);
    println!(
        "{} lockstep: {} states, {} edges checked ({} into states beyond the bounds), depth {}, {:.1}s, {:.0} states/s, {:.0} edges/s",
        if r.complete { "Exhaustive" } else { "INCOMPLETE" },
        r.states,
        r.edges,
        r.edges_out_of_bounds,
        r.max_depth,
        r.seconds,
        r.states_per_second(),
        r.edges_per_second()
    );
    println!("divergences: {}", r.divergences);
    println!(
        "action kinds exercised: {}/{}; witnesses reached: {}",
        r.kinds.len(),
        ACTION_KINDS.len(),
        r.witnesses.len()
    );
    for w in &r.witnesses {
        println!("  {w}");
    }
    if let Some((d, path)) = &r.first {
        println!("\nfirst divergence, path from the initial state:");
        for (i, a) in path.iter().enumerate() {
            println!("  {:>3}. {a:?}", i + 1);
        }
        println!("{d}");
    }
    if r.divergences == 0 && r.complete {
        println!("OK: the core conforms on every behaviour within the bounds");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn cmd_mutants(args: &[PathBuf]) -> ExitCode {
    let dirs = if args.is_empty() {
        vec![mutants::corpus_dir()]
    } else {
        args.to_vec()
    };
    let traces = match collect_files(&dirs).and_then(|f| mutants::load(&f)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let results = mutants::score(&traces, &lockstep::small_config());
    let mut survived = 0;
    for r in &results {
        match &r.caught_by {
            Some(by) => println!("{:?}: caught by {by}", r.bug),
            None => {
                survived += 1;
                println!("{:?}: SURVIVED", r.bug)
            }
        }
    }
    println!(
        "mutation score: {}/{}",
        results.len() - survived,
        results.len()
    );
    if survived == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn cmd_validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        match raft_conformance::validate::validate_file(f) {
            Ok(r) => println!(
                "{}: ok ({} steps checked against the model, {} starts, {} checkpoints)",
                f.display(),
                r.steps_checked,
                r.chains,
                r.checkpoints
            ),
            Err(e) => {
                println!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        println!("FAILED");
        ExitCode::from(1)
    } else {
        println!("OK");
        ExitCode::SUCCESS
    }
}
