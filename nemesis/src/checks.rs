//! The checks after a run that read the nodes' logs: every node holds the same committed log,
//! that log replayed (each `(client_id, seq)` applied at most once, by this module's own
//! state machine, not the node's) gives the state every node reports, every acknowledged
//! write is in it with the answer its client received, and no refused write is.
//!
//! The replay follows the session rules of the Raft thesis §6.3 on its own: a `Register` entry
//! opens the session whose id is its index, evicting the least recently used session (lowest
//! index of its last applied command) when `max_sessions` are open; a command applies only
//! through its session (none: it is skipped, as the node answers "session expired"), once per
//! seq; a write without a session (`client_id` 0) applies once per entry.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use raft_core::{Answer, Command, Entry, Op as NOp, Text, NO_SESSION};
use raft_node::runtime::wal::Wal;

use crate::history::{Cmd, Op, Outcome, Ret};

/// Read the log of a stopped node from its data directory.
pub fn read_log(data_dir: &Path) -> Result<Vec<Entry>, String> {
    let (_, entries, torn) = Wal::open(&data_dir.join("wal"))
        .map_err(|e| format!("{}: cannot read the log: {e}", data_dir.display()))?;
    if let Some(t) = torn {
        return Err(format!(
            "{}: torn log tail after a graceful stop: {t:?}",
            data_dir.display()
        ));
    }
    Ok(entries)
}

/// The first `commit` entries must be the same on every node. Returns the differences.
pub fn compare_logs(logs: &[(u64, Vec<Entry>)], commit: u64) -> Vec<String> {
    let mut out = Vec::new();
    let Some((first_id, first)) = logs.first() else {
        return out;
    };
    let c = commit as usize;
    for (id, log) in logs {
        if log.len() < c {
            out.push(format!(
                "node {id} holds {} entries, fewer than the commit index {c}",
                log.len()
            ));
            continue;
        }
        if let Some(k) = (0..c).find(|&k| log[k] != first[k]) {
            out.push(format!(
                "node {id} and node {first_id} differ at committed index {}: {:?} vs {:?}",
                k + 1,
                log[k],
                first[k]
            ));
        }
    }
    out
}

/// The committed log applied by the harness.
#[derive(Debug, Default)]
pub struct Replay {
    pub kv: BTreeMap<Text, Text>,
    /// The answer of each applied `(client_id, seq)` (session commands only).
    pub answers: HashMap<(u64, u64), Answer>,
    /// Entries skipped because their `(client_id, seq)` was already applied (a retry that
    /// reached the log twice).
    pub duplicate_entries: usize,
    /// Entries of a client without a session (evicted, or never registered): not applied.
    pub expired_entries: usize,
    /// Of those, the entries whose `(client_id, seq)` had been applied before: retries that
    /// a table without sessions would have applied a second time.
    pub refused_retries: usize,
    /// `Register` entries (sessions opened).
    pub registrations: usize,
    /// Sessions evicted by registrations.
    pub evictions: usize,
    /// Writes without a session, each applied once.
    pub sessionless: usize,
    pub noops: usize,
}

/// One open session: the last applied seq and the log index it was applied at.
struct Session {
    last_seq: u64,
    last_index: u64,
}

/// Apply `entries` (the log from index 1) with the session rules, keeping at most
/// `max_sessions` sessions (`None`: unbounded).
pub fn replay(entries: &[Entry], max_sessions: Option<usize>) -> Replay {
    let mut r = Replay::default();
    let mut sessions: HashMap<u64, Session> = HashMap::new();
    // Every (client_id, seq) ever applied, evicted sessions included.
    let mut applied: HashMap<u64, u64> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let index = i as u64 + 1;
        let (client_id, seq, op) = match &e.command {
            Command::Noop => {
                r.noops += 1;
                continue;
            }
            Command::Register { .. } => {
                r.registrations += 1;
                if let Some(max) = max_sessions {
                    while sessions.len() >= max.max(1) {
                        let victim = sessions
                            .iter()
                            .min_by_key(|(id, s)| (s.last_index, **id))
                            .map(|(id, _)| *id)
                            .expect("a full table is not empty");
                        sessions.remove(&victim);
                        r.evictions += 1;
                    }
                }
                sessions.insert(
                    index,
                    Session {
                        last_seq: 0,
                        last_index: index,
                    },
                );
                continue;
            }
            Command::Client { client_id, seq, op } => (*client_id, *seq, op),
        };
        if client_id == NO_SESSION {
            r.sessionless += 1;
            apply(&mut r.kv, op);
            continue;
        }
        let Some(s) = sessions.get_mut(&client_id) else {
            r.expired_entries += 1;
            if applied.get(&client_id).is_some_and(|&l| seq <= l) {
                r.refused_retries += 1;
            }
            continue;
        };
        if seq <= s.last_seq {
            r.duplicate_entries += 1;
            continue;
        }
        s.last_seq = seq;
        s.last_index = index;
        applied.insert(client_id, seq);
        let answer = apply(&mut r.kv, op);
        r.answers.insert((client_id, seq), answer);
    }
    r
}

fn apply(kv: &mut BTreeMap<Text, Text>, op: &NOp) -> Answer {
    match op {
        NOp::Put { key, value } => {
            kv.insert(key.clone(), value.clone());
            Answer::Ok
        }
        NOp::Get { key } => Answer::Value(kv.get(key).cloned()),
        NOp::Delete { key } => {
            kv.remove(key);
            Answer::Ok
        }
        NOp::Cas { key, expected, new } => {
            let previous = kv.get(key).cloned();
            let swapped = previous == *expected;
            if swapped {
                match new {
                    Some(v) => kv.insert(key.clone(), v.clone()),
                    None => kv.remove(key),
                };
            }
            Answer::Cas { swapped, previous }
        }
    }
}

/// What the history says about the replayed log.
#[derive(Debug, Default)]
pub struct WriteCheck {
    pub acknowledged: usize,
    /// Acknowledged writes missing from the committed log.
    pub lost: Vec<String>,
    /// Acknowledged writes whose answer differs from the replay's.
    pub wrong_answer: Vec<String>,
    /// Refused writes that are in the log anyway.
    pub refused_but_applied: Vec<String>,
    /// Writes without an answer that turned out applied / not applied.
    pub unknown_applied: usize,
    pub unknown_not_applied: usize,
}

pub fn check_writes(history: &[Op], r: &Replay) -> WriteCheck {
    let mut w = WriteCheck::default();
    for op in history.iter().filter(|o| o.cmd.is_write()) {
        let Some(seq) = op.seq else { continue };
        let applied = r.answers.get(&(op.client_id, seq));
        match (&op.outcome, applied) {
            (Outcome::Ok(ret), Some(a)) => {
                w.acknowledged += 1;
                let same = match (&op.cmd, ret, a) {
                    (Cmd::Put(_) | Cmd::Delete, Ret::Ok, Answer::Ok) => true,
                    (
                        Cmd::Cas { .. },
                        Ret::Cas { swapped, previous },
                        Answer::Cas {
                            swapped: s,
                            previous: p,
                        },
                    ) => swapped == s && previous.as_deref() == p.as_deref(),
                    _ => false,
                };
                if !same {
                    w.wrong_answer
                        .push(format!("{op:?}: the log's answer is {a:?}"));
                }
            }
            (Outcome::Ok(_), None) => {
                w.acknowledged += 1;
                w.lost.push(format!("{op:?}"));
            }
            (Outcome::Fail(_), Some(a)) => w
                .refused_but_applied
                .push(format!("{op:?}: applied with answer {a:?}")),
            (Outcome::Fail(_), None) => {}
            (Outcome::Unknown(_), Some(_)) => w.unknown_applied += 1,
            (Outcome::Unknown(_), None) => w.unknown_not_applied += 1,
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(command: Command) -> Entry {
        Entry { term: 1, command }
    }

    fn put(c: u64, s: u64, k: &str, v: &str) -> Entry {
        entry(Command::Client {
            client_id: c,
            seq: s,
            op: NOp::Put {
                key: k.into(),
                value: v.into(),
            },
        })
    }

    fn register() -> Entry {
        entry(Command::Register { nonce: 7 })
    }

    fn acked(c: u64, s: u64, v: &str) -> Op {
        Op {
            client: c,
            client_id: c,
            seq: Some(s),
            key: "x".into(),
            cmd: Cmd::Put(v.into()),
            call_ns: 0,
            ret_ns: 1,
            outcome: Outcome::Ok(Ret::Ok),
        }
    }

    #[test]
    fn a_retried_entry_applies_once_and_a_missing_acknowledged_write_is_lost() {
        // Sessions 1 and 2 are the Register entries at indexes 1 and 2.
        let log = vec![
            register(),
            register(),
            put(1, 1, "x", "a"),
            put(2, 1, "x", "b"),
            // The retry of (1, 1) reached the log again: it must not bring "a" back.
            put(1, 1, "x", "a"),
        ];
        let r = replay(&log, None);
        assert_eq!(r.kv["x"], "b".into());
        assert_eq!((r.duplicate_entries, r.registrations), (1, 2));
        let w = check_writes(&[acked(1, 1, "a"), acked(2, 1, "b"), acked(3, 1, "c")], &r);
        assert_eq!(w.acknowledged, 3);
        assert_eq!(w.lost.len(), 1, "{w:?}");
        assert!(w.lost[0].contains("client_id: 3"));
        let mut other = log.clone();
        other[3] = put(2, 1, "x", "B");
        assert_eq!(
            compare_logs(&[(1, log.clone()), (2, other.clone())], 3),
            Vec::<String>::new()
        );
        assert_eq!(compare_logs(&[(1, log), (2, other)], 5).len(), 1);
    }

    #[test]
    fn only_registrations_evict_and_an_evicted_retry_is_not_applied_again() {
        let log = vec![
            register(),           // 1: session A
            put(1, 1, "x", "a"),  // A's write
            register(),           // 3: session B
            put(3, 1, "x", "b"),  // B's write
            put(0, 91, "n", "1"), // sessionless writes: no session, no eviction
            put(0, 92, "n", "2"),
            put(1, 1, "x", "a"), // A's retry: a duplicate, skipped
            register(),          // 8: the table (2) is full: A (least recently used) goes
            put(1, 1, "x", "a"), // A's retry again: no session, not applied
            put(7, 1, "x", "z"), // never registered
        ];
        let r = replay(&log, Some(2));
        assert_eq!(r.kv["x"], "b".into());
        assert_eq!(r.kv["n"], "2".into());
        assert_eq!(r.sessionless, 2);
        assert_eq!((r.registrations, r.evictions), (3, 1));
        assert_eq!((r.duplicate_entries, r.expired_entries), (1, 2));
        assert_eq!(r.refused_retries, 1);
        assert_eq!(r.answers.len(), 2);
        // Unbounded, A keeps its session and its retry is a duplicate.
        let r = replay(&log, None);
        assert_eq!(
            (r.evictions, r.duplicate_entries, r.expired_entries),
            (0, 2, 1)
        );
        assert_eq!(r.kv["x"], "b".into());
    }
}
