//! Mutation score: with each known bug switched on in the core only (the model stays correct),
//! conformance must fail. Each mutant is first replayed against the trace corpus; a mutant no
//! trace catches is then run through the lockstep walk.

use crate::lockstep::{self, LockstepOptions};
use crate::replay::replay;
use raft_core as c;
use raft_model::trace::Trace;
use raft_model::Config;

#[derive(Clone, Debug)]
pub struct MutantResult {
    pub bug: c::Bug,
    /// What caught it: a trace file and step, or a lockstep path; `None`: it survived.
    pub caught_by: Option<String>,
    /// The divergence, as printed.
    pub divergence: Option<String>,
}

/// Runs every mutant against `traces` (named), then against a lockstep walk of `lockstep_cfg`
/// (with the mutant's feature switched on).
pub fn score(traces: &[(String, Trace)], lockstep_cfg: &Config) -> Vec<MutantResult> {
    crate::map::CORE_BUGS
        .iter()
        .map(|&bug| {
            for (name, t) in traces.iter().filter(|(_, t)| t.header.config.bug.is_none()) {
                if let Ok(r) = replay(t, Some(Some(bug))) {
                    if let Some(d) = r.divergence {
                        return MutantResult {
                            bug,
                            caught_by: Some(format!("trace {name}, step {}", d.step)),
                            divergence: Some(d.to_string()),
                        };
                    }
                }
            }
            // A mutant in a feature the walk leaves off (pipelining) is walked with that
            // feature on, as `raft-model check --bug` runs the model's. A membership mutant is
            // walked where the operator acts: a leader's change refused while its term has
            // committed nothing is a step the model never takes, and the walk asks the core
            // about it (the model's own mutant needs two changes by two leaders to break a
            // property, far beyond a lockstep walk).
            let mut cfg = lockstep_cfg.clone();
            if bug == c::Bug::ChangeBeforeTermCommit {
                cfg = Config::operator_only(3, 0, "r0");
            } else if let Some(m) = (raft_model::config::Bug::ALL.into_iter())
                .find(|&m| crate::map::bug(m) == Some(bug))
            {
                m.enable_feature(&mut cfg);
            }
            let opts = LockstepOptions {
                core_bug: Some(Some(bug)),
                ..LockstepOptions::new(cfg)
            };
            let r = lockstep::run(&opts);
            match r.first {
                Some((d, path)) => MutantResult {
                    bug,
                    caught_by: Some(format!(
                        "lockstep after {} states, path: {}",
                        r.states,
                        path.iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join(" / ")
                    )),
                    divergence: Some(d.to_string()),
                },
                None => MutantResult {
                    bug,
                    caught_by: None,
                    divergence: None,
                },
            }
        })
        .collect()
}

/// The committed corpus: `conformance/corpus/*.jsonl`, by file name.
pub fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

pub fn load(files: &[std::path::PathBuf]) -> Result<Vec<(String, Trace)>, String> {
    files
        .iter()
        .map(|f| {
            let name = f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Trace::read(f).map(|t| (name, t))
        })
        .collect()
}
