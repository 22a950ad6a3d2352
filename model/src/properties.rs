//! What must always hold, and what must be reachable.
//!
//! Safety properties read only live state plus the ghost records in `State`, so a restarted
//! server's lost volatile state can never raise a false alarm: it is gone, not stale.

use crate::config::Config;
use crate::model::RaftModel;
use crate::server::event;
use crate::server::{register, run};
use crate::state::{broken, State};
use crate::types::{Command, Index, Role, Session, Value};
use stateright::Property;

pub const ELECTION_SAFETY: &str = "election safety";
pub const LEADER_APPEND_ONLY: &str = "leader append-only";
pub const LOG_MATCHING: &str = "log matching";
pub const LEADER_COMPLETENESS: &str = "leader completeness";
pub const STATE_MACHINE_SAFETY: &str = "state machine safety";
pub const LINEARIZABLE: &str = "linearizable";
pub const EXACTLY_ONCE: &str = "exactly once";
pub const SANITY: &str = "sanity";
pub const APPLIED_STATE: &str = "applied state is the committed log replayed";
pub const COMMIT_SOUNDNESS: &str = "committed entries held by an up-to-date majority";
pub const INDEX_INVARIANTS: &str = "index invariants";
pub const TERM_RULE: &str = "term rule";
pub const STEP_DOWN_ON_RESPONSE: &str = "a server steps down on a higher-term response";
pub const FOLLOWERS_HOLD_UNCOMMITTED: &str = "every follower holds an uncommitted entry";
pub const SNAPSHOT_SAFETY: &str = "snapshot safety";
pub const SNAPSHOT_INSTALLED: &str = "follower catches up by InstallSnapshot";
pub const RESTORED_FROM_SNAPSHOT: &str = "restart restores from a snapshot";
pub const EXPIRED_RETRY_REFUSED: &str = "retry refused after its session was evicted";
pub const READ_INDEX_SERVED: &str = "read served by ReadIndex";
pub const PIPELINED: &str = "two appends in flight to one follower";
pub const PIPELINE_FALLBACK: &str = "pipeline stalled, resent from match_index";
pub const VOTER_ADDED: &str = "a configuration adding a voter is committed";
pub const LEADER_REMOVED_ITSELF: &str = "a leader commits its own removal and steps down";
pub const TRANSFER: &str = "leadership transfer: TimeoutNow starts the target's election";
pub const F1: &str = "F1 client retries after missing the leader";
pub const F2: &str = "F2 lost uncommitted entry overwritten by the retried command";
pub const F3: &str = "F3 entry outlives its leader, successor commits it during retry";
pub const F4: &str = "F4 retry after commit answered by a new leader's session table";
pub const F5: &str = "F5 new leader commits an entry only some followers knew committed";
pub const F6: &str = "F6 minority leader cannot commit and steps down";
/// The failure cases of DESIGN.md §1, as witnesses.
pub const F_WITNESSES: [&str; 6] = [F1, F2, F3, F4, F5, F6];

/// The properties of a configuration: the snapshot ones only when snapshots are on (a witness
/// that cannot happen would be reported as missing).
pub fn all(cfg: &Config) -> Vec<Property<RaftModel>> {
    let mut all = always_and_witnesses();
    // Without clients there are no client entries, answers or retries to witness.
    if cfg.client_ops.is_empty() {
        all.retain(|p| !CLIENT_WITNESSES.contains(&p.name));
    }
    if cfg.membership_changes() {
        all.extend(membership_witnesses(cfg));
    }
    // Eviction needs a bound and a registration through the log.
    if cfg.params.max_sessions > 0 && cfg.registering != 0 {
        all.push(Property::sometimes(
            EXPIRED_RETRY_REFUSED,
            |_, s: &State| s.events & event::EXPIRED_RETRY_REFUSED != 0,
        ));
    }
    if cfg.params.read_index && cfg.client_ops.iter().flatten().any(|op| op.is_read()) {
        all.push(Property::sometimes(READ_INDEX_SERVED, |_, s: &State| {
            s.events & event::READ_INDEX_SERVED != 0
        }));
    }
    if cfg.params.max_inflight_appends >= 2 {
        all.push(Property::sometimes(PIPELINED, |_, s: &State| {
            (s.servers.iter()).any(|v| v.inflight.iter().any(|sent| sent.len() >= 2))
        }));
    }
    // Appends are lost where the network drops them.
    if cfg.params.max_inflight_appends > 0 && cfg.drops {
        all.push(Property::sometimes(PIPELINE_FALLBACK, |_, s: &State| {
            s.events & event::PIPELINE_FALLBACK != 0
        }));
    }
    if cfg.snapshots {
        all.push(Property::always(
            SNAPSHOT_SAFETY,
            |m: &RaftModel, s: &State| snapshot_safety(&m.cfg, s),
        ));
        all.push(Property::sometimes(SNAPSHOT_INSTALLED, |_, s: &State| {
            s.events & event::SNAPSHOT_INSTALLED != 0
        }));
        all.push(Property::sometimes(
            RESTORED_FROM_SNAPSHOT,
            |_, s: &State| s.events & event::RESTORED_FROM_SNAPSHOT != 0,
        ));
    }
    all
}

fn always_and_witnesses() -> Vec<Property<RaftModel>> {
    vec![
        Property::always(ELECTION_SAFETY, |_, s: &State| election_safety(s)),
        Property::always(LEADER_APPEND_ONLY, |_, s: &State| {
            s.broken & broken::LEADER_APPEND_ONLY == 0
        }),
        Property::always(LOG_MATCHING, |_, s: &State| log_matching(s)),
        Property::always(LEADER_COMPLETENESS, |_, s: &State| leader_completeness(s)),
        Property::always(STATE_MACHINE_SAFETY, |_, s: &State| state_machine_safety(s)),
        Property::always(LINEARIZABLE, |_, s: &State| {
            s.history.serialized_history().is_some()
        }),
        Property::always(EXACTLY_ONCE, |_, s: &State| {
            s.servers
                .iter()
                .all(|v| v.applied.iter().all(|&(_, _, n)| n <= 1))
        }),
        Property::always(SANITY, |_, s: &State| sanity(s)),
        Property::always(APPLIED_STATE, |m: &RaftModel, s: &State| {
            applied_state(&m.cfg, s)
        }),
        Property::always(COMMIT_SOUNDNESS, |_, s: &State| commit_soundness(s)),
        Property::always(INDEX_INVARIANTS, |m: &RaftModel, s: &State| {
            index_invariants(&m.cfg, s)
        }),
        Property::always(TERM_RULE, |_, s: &State| s.broken & broken::TERM_RULE == 0),
        Property::sometimes("leader elected", |_, s: &State| {
            s.servers.iter().any(|v| v.role == Role::Leader)
        }),
        Property::sometimes("client entry committed", |_, s: &State| {
            s.committed.iter().any(|(e, _)| {
                matches!(e.command, Command::Client { .. } | Command::Register { .. })
            })
        }),
        Property::sometimes("two leaders at once", |_, s: &State| two_leaders(s)),
        Property::sometimes("uncommitted entry overwritten", |_, s: &State| {
            s.events & event::OVERWRITE != 0
        }),
        Property::sometimes("duplicate answered from session table", |_, s: &State| {
            s.events & event::DEDUP_ANSWER != 0
        }),
        Property::sometimes(STEP_DOWN_ON_RESPONSE, |_, s: &State| {
            s.events & event::STEP_DOWN_ON_RESPONSE != 0
        }),
        Property::sometimes(FOLLOWERS_HOLD_UNCOMMITTED, |_, s: &State| {
            followers_hold_uncommitted(s)
        }),
        Property::sometimes(F1, |_, s: &State| s.events & event::F1 != 0),
        Property::sometimes(F2, |_, s: &State| s.events & event::F2 != 0),
        Property::sometimes(F3, |_, s: &State| s.events & event::F3 != 0),
        Property::sometimes(F4, |_, s: &State| s.events & event::F4 != 0),
        Property::sometimes(F5, |_, s: &State| s.events & event::F5 != 0),
        Property::sometimes(F6, |_, s: &State| s.events & event::F6 != 0),
    ]
}

/// The witnesses that need a client.
const CLIENT_WITNESSES: [&str; 8] = [
    "client entry committed",
    "duplicate answered from session table",
    F1,
    F2,
    F3,
    F4,
    F5,
    F6,
];

/// A witness per kind of operation the operator's list holds.
fn membership_witnesses(cfg: &Config) -> Vec<Property<RaftModel>> {
    use crate::types::AdminOp;
    let has = |f: fn(&AdminOp) -> bool| cfg.admin_ops.iter().any(f);
    let mut out = Vec::new();
    if has(|op| matches!(op, AdminOp::AddVoter(_) | AdminOp::Promote(_))) {
        out.push(Property::sometimes(VOTER_ADDED, |_, s: &State| {
            s.events & event::VOTER_ADDED != 0
        }));
    }
    if has(|op| matches!(op, AdminOp::Remove(_))) {
        out.push(Property::sometimes(
            LEADER_REMOVED_ITSELF,
            |_, s: &State| s.events & event::LEADER_REMOVED_ITSELF != 0,
        ));
    }
    if has(|op| matches!(op, AdminOp::Transfer(_))) {
        out.push(Property::sometimes(TRANSFER, |_, s: &State| {
            s.events & event::TRANSFER != 0
        }));
    }
    out
}

/// The sometimes-properties (witnesses), in `all()` order.
pub fn witnesses(cfg: &Config) -> Vec<Property<RaftModel>> {
    all(cfg)
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Sometimes)
        .collect()
}

/// At most one leader per term, over the whole history (ghost `elected`).
fn election_safety(s: &State) -> bool {
    s.elected.iter().all(|m| m.count_ones() <= 1)
}

/// If two logs hold an entry of the same term at the same index, they agree up to it (on the
/// indexes neither has compacted).
fn log_matching(s: &State) -> bool {
    for (i, a) in s.servers.iter().enumerate() {
        for b in &s.servers[i + 1..] {
            let first = a.snapshot_index().max(b.snapshot_index()) + 1;
            let last = a.last_log_index().min(b.last_log_index());
            if let Some(k) = (first..=last)
                .rev()
                .find(|&k| a.entry(k).map(|e| e.term) == b.entry(k).map(|e| e.term))
            {
                if (first..=k).any(|j| a.entry(j) != b.entry(j)) {
                    return false;
                }
            }
        }
    }
    true
}

/// A leader of a term at or after the one in which an entry was committed holds that entry.
fn leader_completeness(s: &State) -> bool {
    s.servers
        .iter()
        .filter(|v| v.role == Role::Leader)
        .all(|v| {
            s.committed.iter().enumerate().all(|(i, &(e, t))| {
                let index = i as Index + 1;
                v.current_term <= t || index <= v.snapshot_index() || v.entry(index) == Some(&e)
            })
        })
}

/// Every server's committed prefix is the one committed log.
fn state_machine_safety(s: &State) -> bool {
    s.servers.iter().all(|v| {
        (v.snapshot_index() + 1..=v.commit_index)
            .all(|i| v.entry(i) == s.committed.get(i as usize - 1).map(|(c, _)| c))
    })
}

/// The committed log applied from the start: the key-value map and the session table as of
/// each index.
fn replay_committed(cfg: &Config, s: &State, upto: Index) -> ([Option<Value>; 2], Vec<Session>) {
    let mut kv = [None; 2];
    let mut sessions = cfg.initial_sessions();
    for (i, (e, _)) in s.committed[..upto as usize].iter().enumerate() {
        let index = i as Index + 1;
        match e.command {
            Command::Noop | Command::Membership(_) => {}
            Command::Register { .. } => register(&mut sessions, cfg, index),
            Command::Client { client_id, seq, op } => {
                let Some(session) = sessions.iter_mut().find(|s| s.client_id == client_id) else {
                    continue;
                };
                if seq <= session.last_seq {
                    continue;
                }
                *session = Session {
                    client_id,
                    last_seq: seq,
                    answer: run(&mut kv, op),
                    last_index: index,
                };
            }
        }
    }
    (kv, sessions)
}

/// Every snapshot is the committed log applied up to its index: a snapshot installed or
/// restored from brings exactly the state the log would have.
fn snapshot_safety(cfg: &Config, s: &State) -> bool {
    s.servers.iter().all(|v| {
        let snap = &v.snapshot;
        let upto = snap.last_included_index;
        upto == 0
            || (s.committed.len() >= upto as usize
                && s.committed[upto as usize - 1].0.term == snap.last_included_term
                && replay_committed(cfg, s, upto) == (snap.kv, snap.sessions.clone()))
    })
}

/// Every server's key-value map and session table are the committed log applied up to its
/// `commit_index` (the model applies as it commits): nothing is applied early, late, twice or
/// differently.
fn applied_state(cfg: &Config, s: &State) -> bool {
    s.servers.iter().all(|v| {
        s.committed.len() >= v.commit_index as usize
            && replay_committed(cfg, s, v.commit_index) == (v.kv, v.sessions.clone())
    })
}

/// Every committed entry is held by a majority of servers whose last log term is at least the
/// term in which it was committed: a majority of the voters it was committed under. That
/// majority's votes are what stops a leader without the entry from being elected; a commit
/// that does not have it (the paper's Figure 8) is unsound at the moment it happens, before
/// any leader loses the entry. (The majority is the true one, whatever majority bug the
/// configuration runs.)
fn commit_soundness(s: &State) -> bool {
    (s.committed.iter().zip(&s.committed_by))
        .enumerate()
        .all(|(i, (&(e, t), &voters))| {
            let index = i as Index + 1;
            let holders = (s.servers.iter().enumerate())
                .filter(|&(id, v)| {
                    let holds = index <= v.snapshot_index() || v.entry(index) == Some(&e);
                    voters & (1 << id) != 0 && holds && v.last_log_term() >= t
                })
                .count();
            holders > voters.count_ones() as usize / 2
        })
}

/// The indexes only move forward (checked on each step: a server's `commit_index`, except
/// through a restart; a leader's `match_index` within its term), and a leader's view of each
/// peer is consistent: `match_index < next_index <= last_log_index + 1`.
/// Beside `match_index < next_index <= last + 1`: what a pipelining leader has in flight to a
/// follower lies strictly between the two, in the order it was sent, never more than the depth.
fn index_invariants(cfg: &Config, s: &State) -> bool {
    let depth = cfg.params.max_inflight_appends as usize;
    s.broken & (broken::COMMIT_MONOTONIC | broken::MATCH_MONOTONIC) == 0
        && s.servers.iter().all(|v| {
            (v.next_index.iter().zip(&v.match_index))
                .all(|(&n, &m)| m < n && n <= v.last_log_index() + 1)
                && v.inflight.iter().enumerate().all(|(p, sent)| {
                    sent.len() <= depth
                        && sent.windows(2).all(|w| w[0] < w[1])
                        && sent
                            .iter()
                            .all(|&l| v.match_index[p] < l && l < v.next_index[p])
                })
        })
}

/// A leader whose every follower holds an entry nobody has committed: the state the failover
/// cases start from.
fn followers_hold_uncommitted(s: &State) -> bool {
    let committed = s.committed.len() as Index;
    s.servers.iter().any(|l| l.role == Role::Leader)
        && (s.servers.iter())
            .filter(|v| v.role != Role::Leader)
            .all(|v| v.last_log_index() > committed)
}

fn sanity(s: &State) -> bool {
    s.broken & broken::TERM_MONOTONIC == 0
        && s.servers.iter().all(|v| {
            v.snapshot_index() <= v.commit_index
                && v.commit_index <= v.last_log_index()
                && v.log
                    .first()
                    .is_none_or(|e| e.term >= v.snapshot.last_included_term)
                && v.log.windows(2).all(|w| w[0].term <= w[1].term)
                && v.last_log_term() <= v.current_term
        })
}

fn two_leaders(s: &State) -> bool {
    let mut terms = s
        .servers
        .iter()
        .filter(|v| v.role == Role::Leader)
        .map(|v| v.current_term);
    match terms.next() {
        Some(first) => terms.any(|t| t != first),
        None => false,
    }
}

/// What one state says about the properties on its own: the always-properties it violates and
/// the witnesses it satisfies. The explorer's per-state panel is derived from the global
/// search's discovery paths, so it cannot say this; the explorer computes it as it renders a
/// state, never during a check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub violated: Vec<&'static str>,
    pub satisfied: Vec<&'static str>,
}

pub fn verdicts(model: &RaftModel, s: &State) -> Verdicts {
    let mut v = Verdicts::default();
    for p in all(&model.cfg) {
        let holds = (p.condition)(model, s);
        match p.expectation {
            stateright::Expectation::Always if !holds => v.violated.push(p.name),
            stateright::Expectation::Sometimes if holds => v.satisfied.push(p.name),
            _ => {}
        }
    }
    v
}

impl std::fmt::Display for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.violated.is_empty() {
            writeln!(f, "verdict: every always-property holds in this state")?;
        } else {
            writeln!(f, "verdict: VIOLATES {}", self.violated.join(", "))?;
        }
        if self.satisfied.is_empty() {
            write!(f, "witnesses here: none")
        } else {
            write!(f, "witnesses here: {}", self.satisfied.join(", "))
        }
    }
}

/// The header the explorer shows above a state: what the state violates and witnesses on its
/// own, and the flags the explorer runs with (a link from a `check` with other flags names
/// other steps).
pub fn explorer_header(model: &RaftModel, state: &State) -> String {
    let flags = model.cfg.flags();
    format!(
        "{}\nexplorer flags: {}",
        verdicts(model, state),
        if flags.is_empty() {
            "(none: the default bounds)".to_string()
        } else {
            flags.join(" ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Model;

    #[test]
    fn verdicts_of_the_initial_state_are_empty() {
        let model = RaftModel::new(Config::small());
        let init = &model.init_states()[0];
        assert_eq!(verdicts(&model, init), Verdicts::default());
    }

    #[test]
    fn verdicts_name_the_violated_and_the_witnessed() {
        let model = RaftModel::new(Config::small());
        let mut s = model.init_states()[0].clone();
        s.servers[0].role = Role::Leader;
        s.servers[0].current_term = 1;
        s.servers[1].role = Role::Leader;
        s.servers[1].current_term = 2;
        s.elected[1] = 0b011;
        let v = verdicts(&model, &s);
        assert!(v.violated.contains(&ELECTION_SAFETY), "{v:?}");
        assert!(!v.violated.contains(&LOG_MATCHING), "{v:?}");
        assert!(v.satisfied.contains(&"leader elected"), "{v:?}");
        assert!(v.satisfied.contains(&"two leaders at once"), "{v:?}");
        let text = v.to_string();
        assert!(
            text.starts_with("verdict: VIOLATES election safety"),
            "{text}"
        );
        assert!(text.contains("witnesses here: leader elected"), "{text}");
    }
}
