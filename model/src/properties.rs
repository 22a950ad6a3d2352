//! What must always hold, and what must be reachable.
//!
//! Safety properties read only live state plus the ghost records in `State`, so a restarted
//! server's lost volatile state can never raise a false alarm: it is gone, not stale.

use crate::model::RaftModel;
use crate::server::event;
use crate::state::State;
use crate::types::Role;
use stateright::Property;

/// Bits of `State::broken`: properties of transitions, checked as the step is taken.
pub mod broken {
    pub const TERM_MONOTONIC: u8 = 1 << 0;
    pub const LEADER_APPEND_ONLY: u8 = 1 << 1;
}

pub const ELECTION_SAFETY: &str = "election safety";
pub const LEADER_APPEND_ONLY: &str = "leader append-only";
pub const LOG_MATCHING: &str = "log matching";
pub const LEADER_COMPLETENESS: &str = "leader completeness";
pub const STATE_MACHINE_SAFETY: &str = "state machine safety";
pub const LINEARIZABLE: &str = "linearizable";
pub const EXACTLY_ONCE: &str = "exactly once";
pub const SANITY: &str = "sanity";
pub const F1: &str = "F1 client retries after missing the leader";
pub const F2: &str = "F2 lost uncommitted entry overwritten by the retried command";
pub const F3: &str = "F3 entry outlives its leader, successor commits it during retry";
pub const F4: &str = "F4 retry after commit answered by a new leader's session table";
pub const F5: &str = "F5 new leader commits an entry only some followers knew committed";
pub const F6: &str = "F6 minority leader cannot commit and steps down";
/// The failure cases of DESIGN.md §1, as witnesses.
pub const F_WITNESSES: [&str; 6] = [F1, F2, F3, F4, F5, F6];

pub fn all() -> Vec<Property<RaftModel>> {
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
            s.servers.iter().all(|v| v.applied.iter().all(|&n| n <= 1))
        }),
        Property::always(SANITY, |_, s: &State| sanity(s)),
        Property::sometimes("leader elected", |_, s: &State| {
            s.servers.iter().any(|v| v.role == Role::Leader)
        }),
        Property::sometimes("client entry committed", |_, s: &State| {
            s.committed
                .iter()
                .any(|(e, _)| !matches!(e.command, crate::types::Command::Noop))
        }),
        Property::sometimes("two leaders at once", |_, s: &State| two_leaders(s)),
        Property::sometimes("uncommitted entry overwritten", |_, s: &State| {
            s.events & event::OVERWRITE != 0
        }),
        Property::sometimes("duplicate answered from session table", |_, s: &State| {
            s.events & event::DEDUP_ANSWER != 0
        }),
        Property::sometimes(F1, |_, s: &State| s.events & event::F1 != 0),
        Property::sometimes(F2, |_, s: &State| s.events & event::F2 != 0),
        Property::sometimes(F3, |_, s: &State| s.events & event::F3 != 0),
        Property::sometimes(F4, |_, s: &State| s.events & event::F4 != 0),
        Property::sometimes(F5, |_, s: &State| s.events & event::F5 != 0),
        Property::sometimes(F6, |_, s: &State| s.events & event::F6 != 0),
    ]
}

/// The sometimes-properties (witnesses), in `all()` order.
pub fn witnesses() -> Vec<Property<RaftModel>> {
    all()
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Sometimes)
        .collect()
}

/// At most one leader per term, over the whole history (ghost `elected`).
fn election_safety(s: &State) -> bool {
    s.elected.iter().all(|m| m.count_ones() <= 1)
}

/// If two logs hold an entry of the same term at the same index, they agree up to it.
fn log_matching(s: &State) -> bool {
    for (i, a) in s.servers.iter().enumerate() {
        for b in &s.servers[i + 1..] {
            let common = a.log.len().min(b.log.len());
            if let Some(k) = (0..common).rev().find(|&k| a.log[k].term == b.log[k].term) {
                if a.log[..=k] != b.log[..=k] {
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
            s.committed
                .iter()
                .enumerate()
                .all(|(i, &(e, t))| v.current_term <= t || v.log.get(i) == Some(&e))
        })
}

/// Every server's committed prefix is the one committed log.
fn state_machine_safety(s: &State) -> bool {
    s.servers.iter().all(|v| {
        v.log[..v.commit_index as usize]
            .iter()
            .zip(&s.committed)
            .all(|(e, (c, _))| e == c)
    })
}

fn sanity(s: &State) -> bool {
    s.broken & broken::TERM_MONOTONIC == 0
        && s.servers.iter().all(|v| {
            v.commit_index as usize <= v.log.len()
                && v.log.windows(2).all(|w| w[0].term <= w[1].term)
                && v.log.last().is_none_or(|e| e.term <= v.current_term)
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
