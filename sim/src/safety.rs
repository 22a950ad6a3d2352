//! The five Raft safety properties, checked incrementally after every step.
//!
//! - Election Safety: at most one leader per term (every leader ever seen is remembered).
//! - Leader Append-Only: while a server leads a term its log only grows (what it held stays).
//! - Log Matching: every `(index, term)` ever stored anywhere names one entry with one
//!   predecessor term (checked on each written range, which implies the whole property).
//! - Leader Completeness: a new leader holds every entry already known committed in an
//!   earlier term (the term in which an entry is first seen committed is an upper bound of the
//!   term that committed it, so this check never reports a false violation).
//! - State Machine Safety: every server's committed prefix agrees with one global committed
//!   sequence, and no server truncates below its commit index.

use std::collections::{BTreeMap, HashMap};

use raft_core::{Entry, Index, NodeId, RaftCore, Ready, Role, Term};

/// The global knowledge accumulated by the checker.
#[derive(Clone, Debug, Default)]
pub struct SafetyChecker {
    leaders: BTreeMap<Term, NodeId>,
    /// Per server leading a term: (term, log length, last entry) at the last check.
    leading: BTreeMap<NodeId, (Term, Index, Option<Entry>)>,
    /// `(index, term)` -> (entry, previous term).
    seen: HashMap<(Index, Term), (Entry, Term)>,
    /// The committed sequence, with the term it was first seen committed in.
    committed: Vec<(Entry, Term)>,
    /// Per server: commit index already checked.
    checked_commit: BTreeMap<NodeId, Index>,
}

impl SafetyChecker {
    /// The committed sequence known so far.
    pub fn committed(&self) -> impl Iterator<Item = &Entry> {
        self.committed.iter().map(|(e, _)| e)
    }
    /// Length of the committed sequence.
    pub fn committed_len(&self) -> Index {
        self.committed.len() as Index
    }

    /// A server restarted: its volatile commit index is 0 again.
    pub fn restarted(&mut self, id: NodeId) {
        self.checked_commit.insert(id, 0);
        self.leading.remove(&id);
    }

    /// Check after `core` (whose state before the step had `before_role`, `before_commit`)
    /// handled an input producing `ready`.
    pub fn check_step(
        &mut self,
        core: &RaftCore,
        before_role: Role,
        before_commit: Index,
        ready: &Ready,
    ) -> Result<(), String> {
        let id = core.id();
        let log = core.log();
        // State Machine Safety: never truncate below the commit index.
        if let Some(w) = ready.log_write {
            if w.from_index <= before_commit {
                return Err(format!(
                    "State Machine Safety: server {id} rewrote from index {} at or below its commit index {}",
                    w.from_index, before_commit
                ));
            }
            // Log Matching on the written range.
            for index in w.from_index..=w.last_index {
                let e = log.get(index).expect("written entry");
                let prev_term = log.term_at(index - 1).unwrap_or(0);
                match self.seen.get(&(index, e.term)) {
                    Some((e0, p0)) if e0 != e || *p0 != prev_term => {
                        return Err(format!(
                            "Log Matching: server {id} holds {e:?} after term {prev_term} at index {index}, \
                             another server held {e0:?} after term {p0}"
                        ))
                    }
                    Some(_) => {}
                    None => {
                        self.seen.insert((index, e.term), (e.clone(), prev_term));
                    }
                }
            }
        }
        // Election Safety and Leader Append-Only.
        if core.role() == Role::Leader {
            let term = core.current_term();
            match self.leaders.get(&term) {
                Some(&other) if other != id => {
                    return Err(format!(
                        "Election Safety: servers {other} and {id} both lead term {term}"
                    ))
                }
                _ => {
                    self.leaders.insert(term, id);
                }
            }
            if let Some((t, len, last)) = self.leading.get(&id) {
                let compacted = *len <= log.snapshot_index();
                if *t == term
                    && (log.last_index() < *len
                        || (!compacted && log.get(*len).cloned() != last.clone()))
                {
                    return Err(format!(
                        "Leader Append-Only: leader {id} of term {term} lost or changed entry {len}"
                    ));
                }
            }
            self.leading.insert(
                id,
                (term, log.last_index(), log.get(log.last_index()).cloned()),
            );
            if before_role != Role::Leader {
                // Leader Completeness.
                for (i, (e, commit_term)) in self.committed.iter().enumerate() {
                    let index = i as Index + 1;
                    let compacted = index <= log.snapshot_index();
                    if *commit_term < term && !compacted && log.get(index) != Some(e) {
                        return Err(format!(
                            "Leader Completeness: new leader {id} of term {term} lacks entry {index} {e:?} committed by term {commit_term}"
                        ));
                    }
                }
            }
        } else {
            self.leading.remove(&id);
        }
        // State Machine Safety: the committed prefix agrees with everybody's.
        let commit = core.commit_index();
        let checked = self.checked_commit.get(&id).copied().unwrap_or(0);
        if commit > checked {
            // A snapshot holds only entries some server committed (and this checker saw).
            if log.snapshot_index() > self.committed_len() {
                return Err(format!(
                    "server {id} holds a snapshot at {} beyond the committed {}",
                    log.snapshot_index(),
                    self.committed_len()
                ));
            }
            for index in (checked + 1).max(log.first_index())..=commit {
                let e = log.get(index).expect("committed entry exists");
                let i = index as usize - 1;
                if i < self.committed.len() {
                    if &self.committed[i].0 != e {
                        return Err(format!(
                            "State Machine Safety: server {id} committed {e:?} at index {index}, \
                             another committed {:?}",
                            self.committed[i].0
                        ));
                    }
                } else {
                    self.committed.push((e.clone(), core.current_term()));
                }
            }
            self.checked_commit.insert(id, commit);
        }
        if core.last_applied() != commit {
            return Err(format!(
                "server {id} applied {} of {commit} committed",
                core.last_applied()
            ));
        }
        Ok(())
    }
}
