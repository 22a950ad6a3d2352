//! `raft-model`: check the Raft specification exhaustively, or browse it in stateright's
//! explorer.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};

// The checker clones a state per step; the system allocator spends a third of the time there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use raft_model::config::{Backoff, Bug, Network};
use raft_model::runner::{self, RunOptions, Strategy};
use raft_model::Config;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "raft-model",
    version,
    about = "Model-check raftright's Raft specification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every reachable state within the bounds. Exit 0 only when the run was exhaustive,
    /// every always-property held and every witness was found; 1 on a violation or a missing
    /// witness; 2 when the run was not exhaustive.
    Check(CheckArgs),
    /// Serve stateright's web explorer on the same configuration.
    Explore(ExploreArgs),
    /// Export traces for conformance: checker discoveries, a breadth-first cover of every
    /// action kind and witness, seeded random walks, and the F1-F6 scenarios.
    Traces(raft_model::trace::TracesArgs),
}

#[derive(Args, Clone)]
struct Bounds {
    /// Number of servers (2 to 5).
    #[arg(long, default_value_t = Config::default().servers, value_parser = clap::value_parser!(u8).range(2..=5))]
    servers: u8,
    /// Highest term any server may reach (1 to 9).
    #[arg(long, default_value_t = Config::default().max_term, value_parser = clap::value_parser!(u8).range(1..=9))]
    max_term: u8,
    /// Longest log any server may hold (1 to 9).
    #[arg(long, default_value_t = Config::default().max_log_len, value_parser = clap::value_parser!(u8).range(1..=9))]
    max_log_len: u8,
    /// Crash-and-restart steps in a run.
    #[arg(long, default_value_t = Config::default().max_restarts)]
    max_restarts: u8,
    /// Client workload: one client per comma-separated item, each a sequence of `p` (put its own
    /// value), `g` (get), `d` (delete) and `c` (compare-and-swap: create the key with its own
    /// value if absent), e.g. `p,g` (two clients) or `pg` (one client, put then get). An
    /// item starting with `r` registers its session through the log first; the others have a
    /// session opened before the run. `pg,r`: a client that puts then gets, and a second one
    /// that only registers (with `--max-sessions 1` its registration evicts the first).
    #[arg(long, default_value = "pg", value_delimiter = ',', value_parser = parse_clients)]
    clients: Vec<(bool, Vec<raft_model::types::Op>)>,
    /// Most sessions the state machine keeps (0: no bound); a registration into a full table
    /// evicts the least recently used session.
    #[arg(long, default_value_t = Config::default().params.max_sessions)]
    max_sessions: u8,
    /// Re-sends of one operation beyond its first send.
    #[arg(long, default_value_t = Config::default().max_retries)]
    max_retries: u8,
    /// Most server-to-server messages in flight at once; 0 means no bound.
    #[arg(long, default_value_t = Config::default().max_in_flight)]
    max_in_flight: u8,
    /// Most messages in flight to any one server; 0 means no bound.
    #[arg(long, default_value_t = Config::default().max_inbox)]
    max_inbox: u8,
    /// Network semantics.
    #[arg(long, value_enum, default_value_t = Network::Unordered)]
    network: Network,
    /// Loss only as messages that stay in flight forever, with no explicit Drop step (for
    /// safety the same behaviours, but lost messages then hold their in-flight slots).
    #[arg(long)]
    no_drops: bool,
    /// Elections begin with a pre-vote round.
    #[arg(long)]
    pre_vote: bool,
    /// Leaders step down without a quorum; followers that know a leader refuse pre-votes.
    #[arg(long)]
    check_quorum: bool,
    /// Gets are served by ReadIndex (a leadership-confirming round), not through the log.
    #[arg(long)]
    read_index: bool,
    /// Most entries in one AppendEntries.
    #[arg(long, default_value_t = Config::default().params.max_entries_per_append, value_parser = clap::value_parser!(u8).range(1..))]
    max_entries_per_append: u8,
    /// Pipelining: most AppendEntries with entries in flight per peer, `next_index` moved
    /// optimistically as each is sent (0: off).
    #[arg(long, default_value_t = Config::default().params.max_inflight_appends)]
    max_inflight_appends: u8,
    /// How next_index moves after a rejection.
    #[arg(long, value_enum, default_value_t = Backoff::ConflictHint)]
    backoff: Backoff,
    /// New leaders do not append an empty entry of their term.
    #[arg(long)]
    no_noop_on_election: bool,
    /// Servers may compact their committed log into a snapshot; leaders send InstallSnapshot
    /// to peers that need compacted entries.
    #[arg(long)]
    snapshots: bool,
    /// The highest-numbered N servers start outside the cluster, for --admin to add.
    #[arg(long, default_value_t = Config::default().spares)]
    spares: u8,
    /// The operator's membership changes and transfers, in order, each sent to any server
    /// until a leader takes it: `a2` add server 2 as a voter, `l2` as a learner, `p2`
    /// promote learner 2, `r2` remove server 2, `t2` transfer leadership to server 2; e.g.
    /// `r0,a0,t1`.
    #[arg(long, value_delimiter = ',', value_parser = raft_model::config::parse_admin_op)]
    admin: Vec<raft_model::types::AdminOp>,
    /// Switch on a known Raft bug (the check must catch it).
    #[arg(long, value_enum)]
    bug: Option<Bug>,
}

fn parse_clients(s: &str) -> Result<(bool, Vec<raft_model::types::Op>), String> {
    // clap calls this once per comma-separated item.
    let (registers, s) = match s.strip_prefix('r') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    s.chars()
        .map(|c| match c {
            // Put and Cas are made client 0's here and each client's own in `config`.
            'p' => Ok(raft_model::config::put(0)),
            'g' => Ok(raft_model::config::get()),
            'd' => Ok(raft_model::config::delete()),
            'c' => Ok(raft_model::config::cas(0)),
            other => Err(format!(
                "unknown operation '{other}': use p (put), g (get), d (delete) or c (cas), after an optional leading r (register)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|ops| (registers, ops))
}

impl Bounds {
    fn config(&self) -> Config {
        // An item with no operation that does not register is no client at all: `--clients=`
        // means none, as the configurations built in code (`Config::deep`) do, so their
        // printed flags rebuild them.
        let clients: Vec<_> = (self.clients.iter())
            .filter(|(registers, ops)| *registers || !ops.is_empty())
            .collect();
        // Each client puts its own value, so writes are distinguishable.
        let client_ops = clients
            .iter()
            .enumerate()
            .map(|(c, (_, ops))| {
                ops.iter()
                    .map(|op| match op {
                        raft_model::types::Op::Put { .. } => raft_model::config::put(c as u8),
                        raft_model::types::Op::Cas { .. } => raft_model::config::cas(c as u8),
                        other => *other,
                    })
                    .collect()
            })
            .collect();
        let registering = (clients.iter().enumerate())
            .filter(|(_, (r, _))| *r)
            .fold(0u8, |m, (c, _)| m | 1 << c);
        let mut cfg = Config {
            registering,
            servers: self.servers,
            max_term: self.max_term,
            max_log_len: self.max_log_len,
            max_restarts: self.max_restarts,
            client_ops,
            max_retries: self.max_retries,
            max_in_flight: self.max_in_flight,
            max_inbox: self.max_inbox,
            network: self.network,
            drops: !self.no_drops,
            snapshots: self.snapshots,
            params: raft_model::Params {
                pre_vote: self.pre_vote,
                check_quorum: self.check_quorum,
                max_entries_per_append: self.max_entries_per_append,
                backoff: self.backoff,
                noop_on_election: !self.no_noop_on_election,
                max_sessions: self.max_sessions,
                read_index: self.read_index,
                max_inflight_appends: self.max_inflight_appends,
            },
            collect_dead_answers: true,
            spares: self.spares,
            admin_ops: self.admin.clone(),
            bug: self.bug,
        };
        if let Some(bug) = self.bug {
            bug.enable_feature(&mut cfg);
        }
        cfg
    }
}

/// A named configuration that `check` runs in place of the bound flags.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Preset {
    /// The parameters `raft-node` runs with: PreVote, CheckQuorum, reads by ReadIndex, 64
    /// entries per append (`Config::runtime`).
    Runtime,
    /// `runtime` with pipelining on, 8 appends in flight per follower
    /// (`Config::runtime_pipelined`): a node with `max_inflight_appends = 8`.
    RuntimePipelined,
    /// Membership changes and leadership transfer (`Config::membership`); `--membership`
    /// is the same.
    Membership,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    bounds: Bounds,
    /// Check a named configuration instead of the bound flags (only --bug combines with it).
    #[arg(long, value_enum, conflicts_with_all = DEEP_FIXES, conflicts_with = "deep")]
    config: Option<Preset>,
    /// Check the membership configuration: single-server changes, learners, leadership
    /// transfer (the same as `--config membership`).
    #[arg(long, conflicts_with_all = DEEP_FIXES, conflicts_with_all = ["deep", "config"])]
    membership: bool,
    /// Search strategy.
    #[arg(long, value_enum, default_value_t = Strategy::Dfs)]
    strategy: Strategy,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed for `--strategy simulation`: worker thread i walks from seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Explore without symmetry reduction.
    #[arg(long)]
    no_symmetry: bool,
    /// Stop after this many seconds (the run is then reported incomplete). `--strategy
    /// simulation` runs for 60 s when neither this nor --max-states is given.
    #[arg(long)]
    timeout: Option<u64>,
    /// Stop after this many generated states (the run is then reported incomplete).
    #[arg(long)]
    max_states: Option<usize>,
    /// Keep exploring after a violation.
    #[arg(long)]
    keep_going: bool,
    /// Print a machine-readable JSON summary on stdout instead of the report.
    #[arg(long)]
    json: bool,
    /// Run the deep tier instead: ten configurations, each deeper than the default in one or
    /// two dimensions (four terms, five and six messages in flight, two restarts, four and five
    /// servers, two clients, the duplicating network, concurrent membership changes, the
    /// node's parameters), each exhaustive.
    /// Only --bug, --only, --threads and --json combine with it.
    #[arg(long, conflicts_with_all = DEEP_FIXES)]
    deep: bool,
    /// With --deep: run only the configuration of this name (e.g. "five servers").
    #[arg(long, requires = "deep")]
    only: Option<String>,
    /// Port of the explorer that the printed `explore` commands serve on and the links open.
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

/// The flags whose values the deep tier fixes itself.
const DEEP_FIXES: [&str; 26] = [
    "spares",
    "admin",
    "servers",
    "max_term",
    "max_log_len",
    "max_restarts",
    "clients",
    "max_sessions",
    "max_retries",
    "max_in_flight",
    "max_inbox",
    "network",
    "no_drops",
    "pre_vote",
    "check_quorum",
    "read_index",
    "max_entries_per_append",
    "max_inflight_appends",
    "backoff",
    "no_noop_on_election",
    "snapshots",
    "strategy",
    "seed",
    "no_symmetry",
    "max_states",
    "keep_going",
];

#[derive(Args)]
struct ExploreArgs {
    #[command(flatten)]
    bounds: Bounds,
    /// Address to serve on.
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Worker threads of the explorer's search ("Run to completion"; default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => check(args),
        Command::Traces(args) => match raft_model::trace::run_cli(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Explore(args) => {
            let cfg = args.bounds.config();
            if let Err(e) = cfg.check_membership() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let addr = format!("{}:{}", args.host, args.port);
            println!("Bounds:\n{cfg}\n");
            println!("Explorer: http://{addr}/  (Ctrl-C to stop)");
            println!(
                "Each state shows its own verdicts and these flags: {}",
                match cfg.flags() {
                    f if f.is_empty() => "(none: the default bounds)".to_string(),
                    f => f.join(" "),
                }
            );
            let threads = args
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            // stateright's on-demand search, which "Run to completion" starts: no symmetry
            // reduction, so on the default bounds it runs for hours; `check` is the verdict.
            match raft_model::explorer::serve(cfg, &addr, threads) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// How the report's commands start: the way this one was started, so that a printed command
/// can be pasted as it is (`cargo run` sets CARGO for what it runs; otherwise the program as
/// the shell was given it).
fn explorer_links(args: &CheckArgs) -> runner::ExplorerLinks {
    let program = if std::env::var_os("CARGO").is_some() {
        "cargo run --release -p raft-model --".to_string()
    } else {
        std::env::args()
            .next()
            .unwrap_or_else(|| "raft-model".to_string())
    };
    runner::ExplorerLinks {
        program,
        port: args.port,
    }
}

fn run_options(args: &CheckArgs) -> RunOptions {
    RunOptions {
        strategy: args.strategy,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        seed: args.seed,
        symmetry: !args.no_symmetry,
        timeout: args.timeout.map(Duration::from_secs),
        max_states: args.max_states,
        stop_on_violation: !args.keep_going,
        progress: true,
    }
}

fn exit_code(summary: &runner::Summary) -> ExitCode {
    if summary.ok() {
        ExitCode::SUCCESS
    } else if summary.complete
        || summary
            .properties
            .iter()
            .any(|p| p.status == runner::Status::Violated)
    {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}

fn check(args: CheckArgs) -> ExitCode {
    if args.deep {
        return deep(args);
    }
    let preset = args
        .config
        .or(args.membership.then_some(Preset::Membership));
    let cfg = match preset {
        Some(preset) => {
            let mut cfg = match preset {
                Preset::Runtime => Config::runtime(),
                Preset::RuntimePipelined => Config::runtime_pipelined(),
                Preset::Membership => Config::membership(),
            };
            cfg.bug = args.bounds.bug;
            if let Some(bug) = cfg.bug {
                bug.enable_feature(&mut cfg);
            }
            cfg
        }
        None => args.bounds.config(),
    };
    if let Err(e) = cfg.check_membership() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if cfg.network == Network::Duplicating && !cfg.drops && cfg.max_in_flight > 0 {
        eprintln!(
            "error: --network duplicating with --no-drops: a delivered message never leaves, so \
             the in-flight bound fills after the first messages and the check would explore \
             almost nothing; keep drops on, or lift the bound with --max-in-flight 0"
        );
        return ExitCode::from(2);
    }
    let opts = run_options(&args);
    if !args.json {
        println!("Bounds:\n{cfg}");
        println!(
            "Strategy: {:?}, threads: {}, symmetry: {}{}\n",
            opts.strategy,
            opts.threads,
            opts.symmetry && opts.strategy != Strategy::Bfs && cfg.is_symmetric(),
            if opts.strategy == Strategy::Bfs && opts.symmetry {
                " (BFS cannot use symmetry reduction)"
            } else {
                ""
            }
        );
    }
    let summary = runner::run(cfg, &opts);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        );
    } else {
        print!("{}", runner::render(&summary, &explorer_links(&args)));
    }
    exit_code(&summary)
}

/// The deep tier: each configuration of `Config::deep` explored exhaustively. It passes when
/// every run is exhaustive and every always-property holds in each; witnesses are reported,
/// not required (each configuration trades some dimension for depth in another, and some
/// witnesses need the dimension traded away: the default check requires them all).
fn deep(args: CheckArgs) -> ExitCode {
    let mut suite = Config::deep();
    if let Some(only) = &args.only {
        suite.retain(|(name, _)| name == only);
        if suite.is_empty() {
            let names: Vec<&str> = Config::deep().iter().map(|(n, _)| *n).collect();
            eprintln!("error: no deep configuration named {only:?}; there are: {names:?}");
            return ExitCode::from(2);
        }
    }
    let opts = RunOptions {
        strategy: Strategy::Dfs,
        symmetry: true,
        ..run_options(&args)
    };
    let mut rows = Vec::new();
    let mut summaries = Vec::new();
    for (i, (name, mut cfg)) in suite.iter().cloned().enumerate() {
        cfg.bug = args.bounds.bug;
        if let Some(bug) = cfg.bug {
            bug.enable_feature(&mut cfg);
        }
        if !args.json {
            println!("== deep {}/{}: {name}\nBounds:\n{cfg}", i + 1, suite.len());
        }
        let summary = runner::run(cfg, &opts);
        let violated = summary
            .properties
            .iter()
            .any(|p| p.status == runner::Status::Violated);
        if !args.json {
            // The single-run verdict line counts a missing witness as a failure; here it is
            // not one, so the tier prints its own verdict instead.
            let report = runner::render(&summary, &explorer_links(&args));
            let body = report
                .trim_end()
                .rsplit_once('\n')
                .map_or(report.as_str(), |(body, _)| body);
            println!("{body}");
            println!(
                "{}\n",
                if violated {
                    "deep: VIOLATED"
                } else if summary.complete {
                    "deep: exhaustive, every always-property holds (witnesses not required here)"
                } else {
                    "deep: NOT EXHAUSTIVE"
                }
            );
        }
        let witnesses = summary
            .properties
            .iter()
            .filter(|p| p.expectation == "sometimes");
        let found = witnesses
            .clone()
            .filter(|p| p.status == runner::Status::Found)
            .count();
        rows.push(format!(
            "  {:<20} {:>12} {:>13} {:>8.1} {:>9} {:>7}/{:<2} {}",
            name,
            summary.unique_states,
            summary.total_states,
            summary.seconds,
            summary.peak_rss_bytes >> 20,
            found,
            witnesses.count(),
            if violated {
                "VIOLATED"
            } else if summary.complete {
                "holds"
            } else {
                "INCOMPLETE"
            }
        ));
        let stop = violated && opts.stop_on_violation;
        summaries.push(summary);
        if stop {
            break;
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summaries).expect("summaries serialize")
        );
    } else {
        println!("Deep tier:");
        println!(
            "  {:<20} {:>12} {:>13} {:>8} {:>9} {:>10} always-properties",
            "configuration", "unique", "generated", "seconds", "peak MiB", "witnesses"
        );
        for row in &rows {
            println!("{row}");
        }
        let seconds: f64 = summaries.iter().map(|s| s.seconds).sum();
        println!("  total {seconds:.0} s");
    }
    let violated = summaries.iter().any(|s| {
        s.properties
            .iter()
            .any(|p| p.status == runner::Status::Violated)
    });
    if violated {
        ExitCode::from(1)
    } else if summaries.iter().all(|s| s.complete) && summaries.len() == suite.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// The configuration `raft-model explore <flags>` builds.
    use raft_model::types::AdminOp;

    fn explore_config(flags: &[String]) -> Config {
        let words = flags.iter().flat_map(|f| f.split_whitespace());
        let cli = Cli::try_parse_from(["raft-model", "explore"].into_iter().chain(words))
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        match cli.command {
            Command::Explore(args) => args.bounds.config(),
            _ => unreachable!(),
        }
    }

    /// A printed `explore` command must rebuild the checked configuration exactly, or its
    /// links' action indices would name other steps.
    #[test]
    fn flags_rebuild_the_configuration() {
        let mut configs: Vec<Config> = Config::deep().into_iter().map(|(_, c)| c).collect();
        configs.push(Config::default());
        configs.push(Config::sessions());
        configs.push(Config::membership());
        configs.push(Config {
            spares: 1,
            admin_ops: vec![AdminOp::AddLearner(2), AdminOp::Promote(2)],
            ..Config::default()
        });
        for bug in Bug::value_variants() {
            let mut cfg = Config {
                max_term: 2,
                ..Config::default()
            };
            cfg.bug = Some(*bug);
            bug.enable_feature(&mut cfg);
            configs.push(cfg);
        }
        for cfg in configs {
            let flags = cfg.flags();
            assert_eq!(explore_config(&flags), cfg, "{flags:?}");
        }
        assert!(Config::default().flags().is_empty());
    }

    #[test]
    fn a_bad_admin_item_is_refused_with_what_is_expected() {
        let err = |flag: &str| match Cli::try_parse_from(["raft-model", "check", "--admin", flag]) {
            Ok(_) => panic!("{flag} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err("x1").contains("unknown operation 'x'"), "{}", err("x1"));
        assert!(err("r").contains("a server number"), "{}", err("r"));
        assert!(err("a300").contains("a server number"), "{}", err("a300"));
    }
}
