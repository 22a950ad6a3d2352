//! The leader's pace towards a follower that lost log entries it had acknowledged.
//!
//! Such a follower (its data directory restored from an older copy of its own, or a disk that
//! acknowledged an fsync it did not do) rejects every append: its log ends below the leader's
//! `match_index` for it, and the leader's `next_index` never goes below `match_index + 1`
//! (a rejection below it is indistinguishable from a stale one, so the core, like etcd's raft,
//! does not follow it). The core answers each rejection with another append at once: without
//! a pace, thousands of messages a second each way for as long as the leader lasts.
//!
//! So the node loop lets at most one append a heartbeat interval through to a follower marked
//! here, and holds back the rest. Holding a message back is what a lossy network does, which
//! the model checks (messages are dropped in every configuration), so no protocol rule
//! changes; the follower is not repaired by this leader (a new leader starts it from its own
//! log end, backs off and repairs it), and it never counts toward a commit above what it
//! holds, since its acknowledgements stop at its log's end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use raft_core::{Envelope, Message, NodeId, Term};

/// Followers of this leader's term seen rejecting below their `match_index`, and when an
/// append last went to each.
#[derive(Debug)]
pub(crate) struct LostLogPacer {
    every: Duration,
    term: Term,
    last_sent: HashMap<NodeId, Option<Instant>>,
}

impl LostLogPacer {
    /// At most one append every `every` to a marked follower.
    pub(crate) fn new(every: Duration) -> LostLogPacer {
        LostLogPacer {
            every,
            term: 0,
            last_sent: HashMap::new(),
        }
    }

    /// `peer` rejected, in `term`, below the index it had acknowledged.
    pub(crate) fn mark(&mut self, peer: NodeId, term: Term) {
        if term != self.term {
            self.last_sent.clear();
            self.term = term;
        }
        self.last_sent.entry(peer).or_insert(None);
    }

    /// `peer` acknowledged again: back to the core's pace.
    pub(crate) fn caught_up(&mut self, peer: NodeId) {
        self.last_sent.remove(&peer);
    }

    /// This node is no longer leader of the term it marked followers in.
    pub(crate) fn forget(&mut self) {
        self.last_sent.clear();
    }

    /// Drop from `msgs` the appends to marked followers beyond one per interval; returns how
    /// many were held back.
    pub(crate) fn pace(&mut self, msgs: &mut Vec<Envelope>, now: Instant) -> u64 {
        if self.last_sent.is_empty() {
            return 0;
        }
        let before = msgs.len();
        msgs.retain(|m| {
            if !matches!(m.msg, Message::AppendEntries { .. }) {
                return true;
            }
            let Some(last) = self.last_sent.get_mut(&m.to) else {
                return true;
            };
            let due = last.is_none_or(|t| now.duration_since(t) >= self.every);
            if due {
                *last = Some(now);
            }
            due
        });
        (before - msgs.len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(to: NodeId) -> Envelope {
        Envelope {
            from: 1,
            to,
            msg: Message::AppendEntries {
                term: 2,
                leader: 1,
                prev_log_index: 5,
                prev_log_term: 1,
                entries: Default::default(),
                leader_commit: 5,
            },
        }
    }

    #[test]
    fn one_append_an_interval_goes_to_a_marked_follower_and_the_rest_is_untouched() {
        let mut p = LostLogPacer::new(Duration::from_millis(50));
        let t0 = Instant::now();
        let mut msgs = vec![append(2), append(3)];
        assert_eq!(p.pace(&mut msgs, t0), 0, "nothing marked: nothing held");
        p.mark(3, 2);
        let mut msgs = vec![append(2), append(3), append(3)];
        assert_eq!(p.pace(&mut msgs, t0), 1);
        assert_eq!(msgs.iter().map(|m| m.to).collect::<Vec<_>>(), vec![2, 3]);
        let mut msgs = vec![append(3)];
        assert_eq!(p.pace(&mut msgs, t0 + Duration::from_millis(10)), 1);
        let mut msgs = vec![append(3)];
        assert_eq!(p.pace(&mut msgs, t0 + Duration::from_millis(60)), 0);
        // Caught up, a new term, or no longer leader: the core's pace again.
        p.caught_up(3);
        let mut msgs = vec![append(3), append(3)];
        assert_eq!(p.pace(&mut msgs, t0 + Duration::from_millis(61)), 0);
        p.mark(3, 2);
        p.mark(2, 3);
        let mut msgs = vec![append(3), append(3), append(2), append(2)];
        assert_eq!(
            p.pace(&mut msgs, t0 + Duration::from_millis(62)),
            1,
            "only node 2, of term 3"
        );
        p.forget();
        let mut msgs = vec![append(2), append(2)];
        assert_eq!(p.pace(&mut msgs, t0 + Duration::from_millis(63)), 0);
    }
}
