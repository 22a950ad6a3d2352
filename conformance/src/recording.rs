//! A recording's lines ([`Record`]) turned into full steps: the state before and after each.
//!
//! A step line carries its input, messages and replies, and the state after it only at a
//! checkpoint (see `raft_core::record`). The core is deterministic and the runtime changes it
//! only through `RaftCore::step`, so the state after a step is the state before it stepped
//! with the recorded input. That re-step is checked twice over: its `Ready` must send the
//! recorded messages and replies (a recording altered between checkpoints, or a core that no
//! longer behaves as the one that recorded, is caught at the line where it shows), and at a
//! checkpoint the rebuilt state must equal the recorded one (the runtime changed its core some
//! other way, or another core version recorded it). A recording with the state on every line
//! (the format before checkpoints) is one whose every step is a checkpoint.

use raft_core::record::Record;
use raft_core::{ClientReply, Envelope, Input, RaftCore};
use std::rc::Rc;

/// One recorded line, with the states it leads from and to.
pub enum Line<'a> {
    /// A start line: a chain begins from the recorded state.
    Start,
    /// A step line.
    Step(FullStep<'a>),
}

/// A recorded step with the full state before and after it.
pub struct FullStep<'a> {
    /// 1-based line number.
    pub line: usize,
    pub node: u64,
    pub input: &'a Input,
    pub messages: &'a [Envelope],
    pub replies: &'a [ClientReply],
    /// Shared with the previous step's `after`: one copy of the state per step, not two.
    pub before: Rc<RaftCore>,
    pub after: Rc<RaftCore>,
    /// The line carried the state after it, and the rebuilt state equals it.
    pub checkpoint: bool,
}

/// The full steps of `records`, in order; `Err` at the first line the core does not explain.
pub fn steps(records: &[Record]) -> Steps<'_> {
    Steps {
        records: records.iter().enumerate(),
        state: None,
    }
}

/// See [`steps`].
pub struct Steps<'a> {
    records: std::iter::Enumerate<std::slice::Iter<'a, Record>>,
    /// The state after the last line, and the line of the last recorded state it was rebuilt
    /// from (for the error message of a checkpoint that disagrees).
    state: Option<(Rc<RaftCore>, usize)>,
}

impl<'a> Iterator for Steps<'a> {
    type Item = Result<Line<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let (k, r) = self.records.next()?;
        Some(self.line(k + 1, r))
    }
}

impl<'a> Steps<'a> {
    fn line(&mut self, line: usize, r: &'a Record) -> Result<Line<'a>, String> {
        let (node, input, messages, replies, recorded) = match r {
            Record::Start { node, after } => {
                if *node != after.id() {
                    return Err(format!(
                        "line {line}: a start line of node {node} holds the state of node {}",
                        after.id()
                    ));
                }
                self.state = Some((Rc::new(after.clone()), line));
                return Ok(Line::Start);
            }
            Record::Step {
                node,
                input,
                messages,
                replies,
                after,
            } => (*node, input, messages, replies, after),
        };
        let Some((before, from)) = self.state.take() else {
            return Err(format!("line {line}: a step before any start line"));
        };
        let fail = |what: String| format!("line {line} (node {node}, input {input:?}): {what}");
        if node != before.id() {
            return Err(fail(format!(
                "a step of node {node} in the chain of node {} (started at line {from})",
                before.id()
            )));
        }
        let mut after = RaftCore::clone(&before);
        let ready = after.step(input.clone());
        if ready.messages != *messages {
            return Err(fail(format!(
                "the core stepped with the recorded input sends other messages than recorded\n  \
                 stepped:  {:?}\n  recorded: {messages:?}",
                ready.messages
            )));
        }
        if ready.replies != *replies {
            return Err(fail(format!(
                "the core stepped with the recorded input answers otherwise than recorded\n  \
                 stepped:  {:?}\n  recorded: {replies:?}",
                ready.replies
            )));
        }
        let from = match recorded {
            Some(recorded) if *recorded != after => {
                return Err(fail(format!(
                    "the recorded state after the step differs from the state rebuilt from line \
                     {from} by stepping the core with the recorded inputs ({}): the runtime \
                     changed its core outside `step`, or another core version recorded it",
                    difference(recorded, &after)
                )));
            }
            Some(_) => line,
            None => from,
        };
        let after = Rc::new(after);
        self.state = Some((after.clone(), from));
        Ok(Line::Step(FullStep {
            line,
            node,
            input,
            messages,
            replies,
            before,
            after,
            checkpoint: recorded.is_some(),
        }))
    }
}

/// Where two states differ, in a few words (the states themselves may be megabytes).
fn difference(recorded: &RaftCore, rebuilt: &RaftCore) -> String {
    let mut parts = Vec::new();
    let mut part = |name: &str, differs: bool, show: String| {
        if differs {
            parts.push(format!("{name}: {show}"));
        }
    };
    let (a, b) = (recorded, rebuilt);
    macro_rules! scalar {
        ($name:literal, $f:ident) => {
            part(
                $name,
                a.$f() != b.$f(),
                format!("recorded {:?}, rebuilt {:?}", a.$f(), b.$f()),
            )
        };
    }
    scalar!("id", id);
    scalar!("initial_membership", initial_membership);
    scalar!("membership", membership);
    scalar!("params", params);
    scalar!("current_term", current_term);
    scalar!("voted_for", voted_for);
    scalar!("role", role);
    scalar!("leader_id", leader_id);
    scalar!("commit_index", commit_index);
    scalar!("last_applied", last_applied);
    scalar!("votes", votes);
    scalar!("recent_active", recent_active);
    scalar!("progress", progress);
    let (la, lb) = (a.log(), b.log());
    let first = (la.snapshot_index() + 1..=la.last_index().max(lb.last_index()))
        .find(|&i| la.get(i) != lb.get(i));
    part(
        "log",
        la != lb,
        format!(
            "recorded ({}, {}], rebuilt ({}, {}], first differing index {first:?}",
            la.snapshot_index(),
            la.last_index(),
            lb.snapshot_index(),
            lb.last_index()
        ),
    );
    part(
        "snapshot",
        a.snapshot() != b.snapshot(),
        format!(
            "recorded at index {}, rebuilt at index {}",
            a.snapshot().last_included_index,
            b.snapshot().last_included_index
        ),
    );
    let mut keys = std::collections::BTreeSet::new();
    for (x, y) in [(a, b), (b, a)] {
        for (k, v) in x.kv() {
            if y.kv().get(k) != Some(v) {
                keys.insert(k.to_string());
            }
        }
    }
    let sessions = (a.sessions().iter())
        .chain(b.sessions())
        .filter(|&(id, s)| a.sessions().get(id) != Some(s) || b.sessions().get(id) != Some(s))
        .map(|(id, _)| *id)
        .collect::<std::collections::BTreeSet<_>>();
    part(
        "state machine",
        a.state_machine() != b.state_machine(),
        format!("keys {keys:?} and sessions {sessions:?} differ"),
    );
    scalar!("read_state", read_state);
    if parts.is_empty() {
        // Not visible through accessors: what the core has handed to storage.
        "the persistence bookkeeping (persisted hard state, first unstable index)".into()
    } else {
        parts.join("; ")
    }
}
