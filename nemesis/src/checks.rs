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
//!
//! With compaction, a node keeps a snapshot (the state machine at its index: the map and the
//! session table) and the log after it. The replay then starts from the snapshot with the
//! lowest index (or from index 1 where a node has none), every node's log after its own
//! snapshot must agree with the others up to the commit index, and every other node's snapshot
//! must equal the replayed state at its index. An acknowledged write applied before the
//! replay's start is checked through its session in the starting snapshot: its seq at or below
//! the session's last one (and the answer, when it is that last one).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use raft_core::{Answer, Command, Entry, KvStateMachine, Op as NOp, Text, NO_SESSION};
use raft_node::runtime::storage::{read_snapshot_file, SNAPSHOT};
use raft_node::runtime::wal::{Wal, WalOptions};

use crate::history::{Cmd, Op, Outcome, Ret};

/// What a stopped node keeps: its snapshot (if any) and the log after it.
#[derive(Clone, Debug, Default)]
pub struct NodeLog {
    /// The snapshot's last included index (0: none) and state.
    pub base: u64,
    pub snapshot: Option<KvStateMachine>,
    /// The entries from `base + 1` on.
    pub entries: Vec<Entry>,
}

impl NodeLog {
    /// A log from index 1, without a snapshot.
    pub fn full(entries: Vec<Entry>) -> NodeLog {
        NodeLog {
            base: 0,
            snapshot: None,
            entries,
        }
    }

    /// The index of the last entry held.
    pub fn last_index(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// The entry at `index`, if held after the snapshot.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        if index <= self.base {
            return None;
        }
        self.entries.get((index - self.base - 1) as usize)
    }
}

/// Read what a stopped node keeps from its data directory: the snapshot file, then the log
/// after it.
pub fn read_log(data_dir: &Path) -> Result<NodeLog, String> {
    let snap_path = data_dir.join(SNAPSHOT);
    let (base, snapshot) = if snap_path.exists() {
        let s = read_snapshot_file(&snap_path)
            .map_err(|e| format!("{}: cannot read the snapshot: {e}", data_dir.display()))?;
        (s.last_included_index, Some(s.state))
    } else {
        (0, None)
    };
    let (_, entries, torn) = Wal::open_after(&data_dir.join("wal"), WalOptions::default(), base)
        .map_err(|e| format!("{}: cannot read the log: {e}", data_dir.display()))?;
    if let Some(t) = torn {
        return Err(format!(
            "{}: torn log tail after a graceful stop: {t:?}",
            data_dir.display()
        ));
    }
    Ok(NodeLog {
        base,
        snapshot,
        entries,
    })
}

/// The node whose log reaches back furthest (the lowest snapshot index): the replay's start.
pub fn oldest(logs: &[(u64, NodeLog)]) -> Option<&(u64, NodeLog)> {
    logs.iter().min_by_key(|(id, l)| (l.base, *id))
}

/// Up to `commit`, every node must hold the log after its snapshot, and the entries held by
/// two nodes must be the same. Returns the differences.
pub fn compare_logs(logs: &[(u64, NodeLog)], commit: u64) -> Vec<String> {
    let mut out = Vec::new();
    let Some((ref_id, reference)) = oldest(logs) else {
        return out;
    };
    for (id, log) in logs {
        if log.base > commit {
            out.push(format!(
                "node {id}'s snapshot ends at {}, past the commit index {commit}",
                log.base
            ));
            continue;
        }
        if log.last_index() < commit {
            out.push(format!(
                "node {id} holds entries up to {} (snapshot at {}), short of the commit index {commit}",
                log.last_index(),
                log.base
            ));
            continue;
        }
        let from = log.base.max(reference.base) + 1;
        if let Some(k) = (from..=commit).find(|&k| log.get(k) != reference.get(k)) {
            out.push(format!(
                "node {id} and node {ref_id} differ at committed index {k}: {:?} vs {:?}",
                log.get(k),
                reference.get(k)
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
    /// The index the replay started after (the starting snapshot's; 0: from index 1).
    pub base: u64,
    /// The starting snapshot's sessions: client id and last seq (commands up to it were
    /// applied before the replay's start).
    pub covered: HashMap<u64, u64>,
    /// The replayed state (map and sessions) at the indexes asked for.
    pub states_at: BTreeMap<u64, SmState>,
}

/// One open session: the last applied seq, the log index it was applied at and its answer.
struct Session {
    last_seq: u64,
    last_index: u64,
    answer: Answer,
}

/// Apply `entries` (the log from index 1) with the session rules, keeping at most
/// `max_sessions` sessions (`None`: unbounded).
pub fn replay(entries: &[Entry], max_sessions: Option<usize>) -> Replay {
    replay_from(None, 0, entries, max_sessions, &[])
}

/// A state machine's map and session table (client id: last seq, its index, its answer).
pub type SmState = (BTreeMap<Text, Text>, BTreeMap<u64, (u64, u64, Answer)>);

/// The map and session table of a snapshot.
pub fn snapshot_state(sm: &KvStateMachine) -> SmState {
    (
        sm.kv()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        sm.sessions()
            .iter()
            .map(|(id, s)| (*id, (s.last_seq, s.last_index, s.answer.clone())))
            .collect(),
    )
}

/// [`replay`] from the state `start` at index `base` (a snapshot; `None`: empty, `base` 0)
/// of the entries from `base + 1` on, keeping the state at each of `checkpoints`.
pub fn replay_from(
    start: Option<&KvStateMachine>,
    base: u64,
    entries: &[Entry],
    max_sessions: Option<usize>,
    checkpoints: &[u64],
) -> Replay {
    let mut r = Replay {
        base,
        ..Replay::default()
    };
    let mut sessions: HashMap<u64, Session> = HashMap::new();
    // Every (client_id, seq) ever applied, evicted sessions included.
    let mut applied: HashMap<u64, u64> = HashMap::new();
    if let Some(sm) = start {
        let (kv, table) = snapshot_state(sm);
        r.kv = kv;
        for (id, (last_seq, last_index, answer)) in table {
            r.covered.insert(id, last_seq);
            applied.insert(id, last_seq);
            r.answers.insert((id, last_seq), answer.clone());
            sessions.insert(
                id,
                Session {
                    last_seq,
                    last_index,
                    answer,
                },
            );
        }
    }
    let keep = |r: &mut Replay, sessions: &HashMap<u64, Session>, index: u64| {
        if checkpoints.contains(&index) {
            let table = sessions
                .iter()
                .map(|(id, s)| (*id, (s.last_seq, s.last_index, s.answer.clone())))
                .collect();
            r.states_at.insert(index, (r.kv.clone(), table));
        }
    };
    keep(&mut r, &sessions, base);
    for (i, e) in entries.iter().enumerate() {
        let index = base + i as u64 + 1;
        r.apply_entry(&mut sessions, &mut applied, index, e, max_sessions);
        keep(&mut r, &sessions, index);
    }
    r
}

impl Replay {
    fn apply_entry(
        &mut self,
        sessions: &mut HashMap<u64, Session>,
        applied: &mut HashMap<u64, u64>,
        index: u64,
        e: &Entry,
        max_sessions: Option<usize>,
    ) {
        let r = self;
        let (client_id, seq, op) = match &e.command {
            // A configuration entry changes no key and no session.
            Command::Noop | Command::Membership(_) => {
                r.noops += 1;
                return;
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
                        answer: Answer::Ok,
                    },
                );
                return;
            }
            Command::Client { client_id, seq, op } => (*client_id, *seq, op),
        };
        if client_id == NO_SESSION {
            r.sessionless += 1;
            apply(&mut r.kv, op);
            return;
        }
        let Some(s) = sessions.get_mut(&client_id) else {
            r.expired_entries += 1;
            if applied.get(&client_id).is_some_and(|&l| seq <= l) {
                r.refused_retries += 1;
            }
            return;
        };
        if seq <= s.last_seq {
            r.duplicate_entries += 1;
            return;
        }
        s.last_seq = seq;
        s.last_index = index;
        applied.insert(client_id, seq);
        let answer = apply(&mut r.kv, op);
        s.answer = answer.clone();
        r.answers.insert((client_id, seq), answer);
    }
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
    /// Acknowledged writes applied before the replay's starting snapshot: their seq is at or
    /// below their session's last one there (the answer checked when it is that one).
    pub in_snapshot: usize,
    /// Writes of a session gone from the starting snapshot (evicted before it): neither
    /// found nor missing.
    pub uncheckable: usize,
    /// Unanswered writes at or below their session's last seq in the starting snapshot.
    pub unknown_before_snapshot: usize,
}

pub fn check_writes(history: &[Op], r: &Replay) -> WriteCheck {
    let mut w = WriteCheck::default();
    for op in history.iter().filter(|o| o.cmd.is_write()) {
        let Some(seq) = op.seq else { continue };
        let applied = r.answers.get(&(op.client_id, seq));
        if applied.is_none() && op.client_id <= r.base {
            // Registered before the replay's start: what the starting snapshot says.
            match r.covered.get(&op.client_id) {
                Some(&last) if seq <= last => {
                    match &op.outcome {
                        Outcome::Ok(_) => {
                            w.acknowledged += 1;
                            w.in_snapshot += 1;
                        }
                        Outcome::Fail(_) => w.refused_but_applied.push(format!(
                            "{op:?}: at or below its session's last seq {last} in the snapshot at {}",
                            r.base
                        )),
                        Outcome::Unknown(_) => w.unknown_before_snapshot += 1,
                    }
                    continue;
                }
                Some(_) => {}
                None => {
                    w.uncheckable += 1;
                    continue;
                }
            }
        }
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
        let full = |l: &Vec<Entry>| NodeLog::full(l.clone());
        assert_eq!(
            compare_logs(&[(1, full(&log)), (2, full(&other))], 3),
            Vec::<String>::new()
        );
        assert_eq!(
            compare_logs(&[(1, full(&log)), (2, full(&other))], 5).len(),
            1
        );
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

    /// The replay from a snapshot: the state at a later node's snapshot index is kept, the
    /// writes applied before the start are found through their sessions, and the logs after
    /// each node's snapshot are compared where both hold entries.
    #[test]
    fn a_replay_from_a_snapshot_checks_writes_through_the_sessions() {
        let log = vec![
            register(),          // 1: session 1
            put(1, 1, "x", "a"), // 2
            put(1, 2, "x", "b"), // 3
            register(),          // 4: session 4
            put(4, 1, "y", "c"), // 5
            put(1, 3, "x", "d"), // 6
        ];
        let full = replay_from(None, 0, &log, None, &[3]);
        // The node's own state machine, run to index 3, is the snapshot.
        let mut sm = KvStateMachine::default();
        for (i, e) in log[..3].iter().enumerate() {
            sm.apply_command(i as u64 + 1, &e.command, None, true, false);
        }
        assert_eq!(snapshot_state(&sm), full.states_at[&3]);
        let r = replay_from(Some(&sm), 3, &log[3..], None, &[6]);
        assert_eq!(r.kv, full.kv);
        assert_eq!(
            r.states_at[&6],
            (full.kv.clone(), {
                let mut t = full.states_at[&3].1.clone();
                t.insert(1, (3, 6, Answer::Ok));
                t.insert(4, (1, 5, Answer::Ok));
                t
            })
        );
        // (1, 1) is before the snapshot: found through session 1's last seq (2); (1, 5)
        // was never written: lost; (9, 1) belongs to a session registered after the start
        // and never written: lost too.
        let w = check_writes(
            &[
                acked(1, 1, "a"),
                acked(1, 3, "d"),
                acked(1, 5, "z"),
                acked(9, 1, "q"),
            ],
            &r,
        );
        assert_eq!(
            (w.acknowledged, w.in_snapshot, w.lost.len()),
            (4, 1, 2),
            "{w:?}"
        );
        // Node 2 compacted to 3, node 1 keeps everything; a difference after 3 is found,
        // one at or before it is not compared (the snapshot covers it).
        let mut tail = log[3..].to_vec();
        let n2 = NodeLog {
            base: 3,
            snapshot: Some(sm.clone()),
            entries: tail.clone(),
        };
        assert!(compare_logs(&[(1, NodeLog::full(log.clone())), (2, n2)], 6).is_empty());
        tail[1] = put(4, 1, "y", "C");
        let n2 = NodeLog {
            base: 3,
            snapshot: Some(sm),
            entries: tail,
        };
        let d = compare_logs(&[(1, NodeLog::full(log)), (2, n2)], 6);
        assert!(d.len() == 1 && d[0].contains("index 5"), "{d:?}");
    }
}
