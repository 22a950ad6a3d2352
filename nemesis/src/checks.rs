//! The checks after a run that read the nodes' logs: every node holds the same committed log,
//! that log replayed (each `(client_id, seq)` applied at most once, by this module's own
//! state machine, not the node's) gives the state every node reports, every acknowledged
//! write is in it with the answer its client received, and no refused write is.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use raft_node::core::{Answer, Command, Entry, Op as NOp, Text};
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
    /// The answer of each applied `(client_id, seq)`.
    pub answers: HashMap<(u64, u64), Answer>,
    /// Entries skipped because their `(client_id, seq)` was already applied (a retry that
    /// reached the log twice).
    pub duplicate_entries: usize,
    pub noops: usize,
}

/// Apply `entries` with the exactly-once rule: a command whose seq is not above its client's
/// last applied seq is skipped.
pub fn replay(entries: &[Entry]) -> Replay {
    let mut r = Replay::default();
    let mut last: HashMap<u64, u64> = HashMap::new();
    for e in entries {
        let Command::Client { client_id, seq, op } = &e.command else {
            r.noops += 1;
            continue;
        };
        if last.get(client_id).is_some_and(|&l| *seq <= l) {
            r.duplicate_entries += 1;
            continue;
        }
        last.insert(*client_id, *seq);
        let answer = match op {
            NOp::Put { key, value } => {
                r.kv.insert(key.clone(), value.clone());
                Answer::Ok
            }
            NOp::Get { key } => Answer::Value(r.kv.get(key).cloned()),
            NOp::Delete { key } => {
                r.kv.remove(key);
                Answer::Ok
            }
            NOp::Cas { key, expected, new } => {
                let previous = r.kv.get(key).cloned();
                let swapped = previous == *expected;
                if swapped {
                    match new {
                        Some(v) => r.kv.insert(key.clone(), v.clone()),
                        None => r.kv.remove(key),
                    };
                }
                Answer::Cas { swapped, previous }
            }
        };
        r.answers.insert((*client_id, *seq), answer);
    }
    r
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

    fn put(c: u64, s: u64, k: &str, v: &str) -> Entry {
        Entry {
            term: 1,
            command: Command::Client {
                client_id: c,
                seq: s,
                op: NOp::Put {
                    key: k.into(),
                    value: v.into(),
                },
            },
        }
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
        let log = vec![
            put(1, 1, "x", "a"),
            put(2, 1, "x", "b"),
            // The retry of (1, 1) reached the log again: it must not bring "a" back.
            put(1, 1, "x", "a"),
        ];
        let r = replay(&log);
        assert_eq!(r.kv["x"], "b".into());
        assert_eq!(r.duplicate_entries, 1);
        let w = check_writes(&[acked(1, 1, "a"), acked(2, 1, "b"), acked(3, 1, "c")], &r);
        assert_eq!(w.acknowledged, 3);
        assert_eq!(w.lost.len(), 1, "{w:?}");
        assert!(w.lost[0].contains("client_id: 3"));
        let mut other = log.clone();
        other[1] = put(2, 1, "x", "B");
        assert_eq!(
            compare_logs(&[(1, log.clone()), (2, other.clone())], 1),
            Vec::<String>::new()
        );
        assert_eq!(compare_logs(&[(1, log), (2, other)], 3).len(), 1);
    }
}
