//! Replaying a trace on the node cores.

use crate::cluster::{compare_initial, compare_step, Cluster, Divergence};
use raft_core as c;
use raft_model::model::RaftModel;
use raft_model::state::State;
use raft_model::trace::{action_kind, action_variant, Trace};
use raft_model::types::Role;
use std::collections::BTreeSet;

/// What one replay exercised and found.
#[derive(Clone, Debug, Default)]
pub struct ReplayReport {
    pub steps: usize,
    pub divergence: Option<Box<Divergence>>,
    /// `Action` variants taken.
    pub variants: BTreeSet<&'static str>,
    /// Fine-grained action kinds taken (`raft_model::trace::action_kind`).
    pub kinds: BTreeSet<&'static str>,
    /// Sometimes-properties whose witness condition held at some replayed state.
    pub witnesses: BTreeSet<&'static str>,
    /// Roles the cores took.
    pub roles: BTreeSet<String>,
}

/// Replays `trace` on fresh cores. `core_bug`: `Some(b)` overrides the bug the core runs with
/// (`Some(None)`: no bug), for the mutation score; `None` uses the trace's configuration.
///
/// `Err` means the trace itself is unusable against the current model (an action no longer
/// enabled, or a recorded state the model no longer produces: a stale trace); a divergence
/// between model and core is `Ok` with `divergence` set.
pub fn replay(trace: &Trace, core_bug: Option<Option<c::Bug>>) -> Result<ReplayReport, String> {
    let cfg = &trace.header.config;
    let model = RaftModel::new(cfg.clone());
    let props = raft_model::properties::witnesses(cfg);
    let mut report = ReplayReport::default();
    let mut state = State::new(cfg);
    let mut cluster = Cluster::new(cfg, core_bug);
    if let Err(d) = compare_initial(&state, &cluster) {
        report.divergence = Some(d);
        return Ok(report);
    }
    let recorded = trace.server_states();
    for (i, (step, servers)) in trace.steps.iter().zip(&recorded).enumerate() {
        let n = i + 1;
        let (next, record) = model
            .step(&state, &step.action)
            .ok_or_else(|| format!("step {n}: {:?} is not enabled in the model", step.action))?;
        if record != step.record || next.servers != *servers {
            return Err(format!(
                "step {n}: the model no longer produces the recorded state (stale trace: regenerate it)"
            ));
        }
        report.variants.insert(action_variant(&step.action));
        report
            .kinds
            .insert(action_kind(&state, &step.action, &record));
        let emitted = cluster.apply(&model, &state, &step.action);
        report.steps = n;
        if let Err(d) = compare_step(
            &model,
            n,
            &state,
            &step.action,
            &step.record,
            servers,
            &cluster,
            &emitted,
            true,
        ) {
            report.divergence = Some(d);
            return Ok(report);
        }
        for p in &props {
            if (p.condition)(&model, &next) {
                report.witnesses.insert(p.name);
            }
        }
        for s in &next.servers {
            if s.role != Role::Follower {
                report.roles.insert(format!("{:?}", s.role));
            }
        }
        state = next;
    }
    Ok(report)
}

/// Reads every `.jsonl` file named, or found in a named directory (sorted).
pub fn collect_files(args: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, String> {
    let mut files = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut in_dir: Vec<_> = std::fs::read_dir(a)
                .map_err(|e| format!("{}: {e}", a.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(a.clone());
        }
    }
    Ok(files)
}
