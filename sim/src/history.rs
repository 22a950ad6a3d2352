//! The client history and its end-of-run checks: linearizability and exactly-once.
//!
//! The committed log is the linearization order of commands. The check replays it with the
//! session rule (a command runs the first time its `(client_id, seq)` appears) and demands:
//! every answer a client received equals the replayed answer of that command; if command A
//! was answered before command B was first sent, A precedes B in the log (real-time order);
//! a ReadIndex read returns the key's value at some log position between the last command
//! answered before the read was sent and the committed length when it was answered; and every
//! server's state machine equals the replay of its applied prefix (a command applied twice
//! shows up there).

use std::collections::{BTreeMap, HashMap};

use raft_core::{Answer, ClientId, Command, Entry, Index, KvStateMachine, Op, Text};

/// What the client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A command through the log.
    Write(Op),
    /// A ReadIndex read of a key.
    Read(Text),
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct OpRecord {
    pub client_id: ClientId,
    pub seq: u64,
    pub kind: OpKind,
    pub invoked_at: u64,
    pub responded_at: Option<u64>,
    pub answer: Option<Answer>,
    pub read_value: Option<Option<Text>>,
    /// Committed length (global) when the answer arrived.
    pub committed_at_response: Index,
}

/// The result of replaying the committed log.
struct Replay {
    first: HashMap<(ClientId, u64), (Index, Answer)>,
    changes: HashMap<Text, Vec<(Index, Option<Text>)>>,
}

fn replay(committed: &[Entry], max_sessions: Option<usize>) -> Replay {
    let mut sm = KvStateMachine::default();
    let mut first = HashMap::new();
    let mut changes: HashMap<Text, Vec<(Index, Option<Text>)>> = HashMap::new();
    for (i, e) in committed.iter().enumerate() {
        let index = i as Index + 1;
        let Command::Client { client_id, seq, op } = &e.command else {
            sm.apply_command(index, &e.command, max_sessions, true, false);
            continue;
        };
        {
            let before = sm.get(op.key()).cloned();
            let applied = sm.apply_command(index, &e.command, max_sessions, true, false);
            if let raft_core::Applied::Client {
                answer: Some(a),
                duplicate: false,
                ..
            } = applied
            {
                if a != Answer::SessionExpired {
                    first.insert((*client_id, *seq), (index, a));
                }
            }
            let after = sm.get(op.key()).cloned();
            if before != after {
                changes
                    .entry(op.key().into())
                    .or_default()
                    .push((index, after));
            }
        }
    }
    Replay { first, changes }
}

/// Check the client history against the committed log.
pub fn check_history(
    history: &[OpRecord],
    committed: &[Entry],
    max_sessions: Option<usize>,
) -> Result<(), String> {
    let r = replay(committed, max_sessions);
    // Writes answered, by answer time, with the running max of their log index.
    let mut answered: Vec<(u64, Index)> = Vec::new();
    for op in history {
        if let (OpKind::Write(_), Some(t)) = (&op.kind, op.responded_at) {
            let Some((index, expected)) = r.first.get(&(op.client_id, op.seq)) else {
                return Err(format!(
                    "client {} seq {} was answered but never committed",
                    op.client_id, op.seq
                ));
            };
            if op.answer.as_ref() != Some(expected) {
                return Err(format!(
                    "client {} seq {}: answered {:?}, the log says {:?} (index {index})",
                    op.client_id, op.seq, op.answer, expected
                ));
            }
            answered.push((t, *index));
        }
    }
    answered.sort_unstable();
    let mut prefix_max = Vec::with_capacity(answered.len());
    let mut m = 0;
    for &(_, i) in &answered {
        m = m.max(i);
        prefix_max.push(m);
    }
    let lower_bound = |t: u64| -> Index {
        let k = answered.partition_point(|&(rt, _)| rt < t);
        if k == 0 {
            0
        } else {
            prefix_max[k - 1]
        }
    };
    for op in history {
        match &op.kind {
            OpKind::Write(_) => {
                if let Some((index, _)) = r.first.get(&(op.client_id, op.seq)) {
                    let lb = lower_bound(op.invoked_at);
                    if *index <= lb {
                        return Err(format!(
                            "real-time order: client {} seq {} sent at t={} sits at index {index}, before index {lb} answered earlier",
                            op.client_id, op.seq, op.invoked_at
                        ));
                    }
                }
            }
            OpKind::Read(key) => {
                let Some(value) = &op.read_value else {
                    continue;
                };
                let lo = lower_bound(op.invoked_at);
                let hi = op.committed_at_response;
                let ch = r.changes.get(key).map(Vec::as_slice).unwrap_or(&[]);
                let value_at = |k: Index| -> Option<Text> {
                    ch.iter()
                        .take_while(|(i, _)| *i <= k)
                        .last()
                        .and_then(|(_, v)| v.clone())
                };
                let mut ok = value_at(lo) == *value;
                ok |= ch.iter().any(|(i, v)| *i > lo && *i <= hi && v == value);
                if !ok {
                    return Err(format!(
                        "linearizability: read {} of client {} on {key:?} returned {value:?}, not a value between index {lo} and {hi}",
                        op.seq, op.client_id
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Check a server's state machine against the replay of its applied prefix.
pub fn check_state_machine(
    id: u64,
    sm: &KvStateMachine,
    applied: Index,
    committed: &[Entry],
    max_sessions: Option<usize>,
) -> Result<(), String> {
    let mut expected = KvStateMachine::default();
    for (i, e) in committed.iter().take(applied as usize).enumerate() {
        expected.apply_command(i as Index + 1, &e.command, max_sessions, true, false);
    }
    if expected.kv() != sm.kv() {
        return Err(format!(
            "exactly-once: server {id} state {:?} differs from the log replay {:?} (a command applied twice?)",
            sm.kv(),
            expected.kv()
        ));
    }
    let strip = |s: &KvStateMachine| -> BTreeMap<ClientId, (u64, Answer)> {
        s.sessions()
            .iter()
            .map(|(c, s)| (*c, (s.last_seq, s.answer.clone())))
            .collect()
    };
    if strip(&expected) != strip(sm) {
        return Err(format!(
            "exactly-once: server {id} session table differs from the log replay"
        ));
    }
    Ok(())
}
