//! Follower health on the leader: how far each follower is behind, and whether it has stopped
//! catching up.
//!
//! A cluster of three keeps committing with one follower gone or wedged (say a pre-candidate
//! whose pre-votes are refused forever), so nothing in the commit path shows it; the leader's
//! own view of its followers' `match_index` is the only place where it is visible. This module
//! is pure (the caller passes the clock) so that its timing can be tested without waiting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raft_core::NodeId;

use super::status::FollowerHealth;

/// What the leader knows of one follower, from its `Progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub next_index: u64,
    pub match_index: u64,
    /// Bytes of the snapshot transfer to it that is running now (0: none). A follower that
    /// receives a large snapshot makes progress while its `match_index` stands still.
    pub snapshot_bytes: u64,
}

/// A follower that became stuck or recovered in the last [`FollowerTracker::observe`], so
/// that the caller logs each change once rather than every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Stuck(FollowerHealth),
    Recovered(FollowerHealth),
}

#[derive(Clone, Debug)]
struct Track {
    next_index: u64,
    match_index: u64,
    snapshot_bytes: u64,
    /// When its `match_index` last advanced or it was last caught up (or when this leadership
    /// began): a follower is judged from then.
    progressed: Instant,
    lag: u64,
    stuck: bool,
}

/// Per-follower progress over time, for one leadership at a time.
#[derive(Clone, Debug)]
pub struct FollowerTracker {
    stuck_after: Duration,
    /// The term this node leads in; `None` when it does not lead.
    term: Option<u64>,
    followers: BTreeMap<NodeId, Track>,
}

impl FollowerTracker {
    /// A follower behind the leader that has not advanced for `stuck_after` is stuck.
    pub fn new(stuck_after: Duration) -> FollowerTracker {
        FollowerTracker {
            stuck_after,
            term: None,
            followers: BTreeMap::new(),
        }
    }

    /// Take the leader's view at `now`. `leading` is the term when this node is leader (`None`
    /// otherwise). A new term or the loss of leadership starts afresh: another leader's
    /// `match_index` starts from 0 and says nothing about the follower, and a stale "stuck"
    /// would be reported against a follower that merely had not been heard by this leader yet.
    pub fn observe(
        &mut self,
        now: Instant,
        leading: Option<u64>,
        last_index: u64,
        progress: impl IntoIterator<Item = (NodeId, Observed)>,
    ) -> Vec<Transition> {
        if leading != self.term {
            self.term = leading;
            self.followers.clear();
        }
        if leading.is_none() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        for (id, p) in progress {
            let lag = last_index.saturating_sub(p.match_index);
            let t = self.followers.entry(id).or_insert(Track {
                next_index: p.next_index,
                match_index: p.match_index,
                snapshot_bytes: p.snapshot_bytes,
                progressed: now,
                lag,
                stuck: false,
            });
            if p.match_index > t.match_index || lag == 0 || p.snapshot_bytes != t.snapshot_bytes {
                t.progressed = now;
            }
            t.snapshot_bytes = p.snapshot_bytes;
            t.next_index = p.next_index;
            t.match_index = p.match_index;
            t.lag = lag;
            let stuck = lag > 0 && now.saturating_duration_since(t.progressed) >= self.stuck_after;
            if stuck != t.stuck {
                t.stuck = stuck;
                let h = health(id, t, now);
                changes.push(if stuck {
                    Transition::Stuck(h)
                } else {
                    Transition::Recovered(h)
                });
            }
        }
        changes
    }

    /// Every follower as of the last `observe` (empty when not leader), by id.
    pub fn report(&self, now: Instant) -> Vec<FollowerHealth> {
        (self.followers.iter())
            .map(|(id, t)| health(*id, t, now))
            .collect()
    }
}

fn health(id: NodeId, t: &Track, now: Instant) -> FollowerHealth {
    FollowerHealth {
        id,
        match_index: t.match_index,
        next_index: t.next_index,
        lag: t.lag,
        stuck: t.stuck,
        since_progress_ms: now.saturating_duration_since(t.progressed).as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(3);

    fn at(p: &[(NodeId, u64)]) -> Vec<(NodeId, Observed)> {
        p.iter()
            .map(|&(id, m)| {
                let o = Observed {
                    next_index: m + 1,
                    match_index: m,
                    snapshot_bytes: 0,
                };
                (id, o)
            })
            .collect()
    }

    fn stuck_ids(t: &FollowerTracker, now: Instant) -> Vec<NodeId> {
        t.report(now)
            .iter()
            .filter(|f| f.stuck)
            .map(|f| f.id)
            .collect()
    }

    #[test]
    fn a_follower_that_advances_or_is_caught_up_is_never_stuck() {
        let t0 = Instant::now();
        let mut t = FollowerTracker::new(AFTER);
        // Follower 2 creeps forward, always behind; follower 3 is always caught up.
        for k in 0..20u64 {
            let now = t0 + Duration::from_secs(k);
            let ch = t.observe(now, Some(1), 100 + k, at(&[(2, k), (3, 100 + k)]));
            assert!(ch.is_empty(), "{ch:?}");
        }
        let now = t0 + Duration::from_secs(19);
        let r = t.report(now);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].id, r[0].match_index, r[0].lag), (2, 19, 100));
        assert_eq!((r[0].next_index, r[0].since_progress_ms), (20, 0));
        assert_eq!((r[1].id, r[1].lag, r[1].stuck), (3, 0, false));
        // Caught up, then idle for a long time: no lag, not stuck.
        let later = now + AFTER * 10;
        assert!(t.observe(later, Some(1), 119, at(&[(2, 119)])).is_empty());
        assert!(stuck_ids(&t, later).is_empty());
    }

    #[test]
    fn a_follower_receiving_a_snapshot_is_progressing_until_the_transfer_stalls() {
        let t0 = Instant::now();
        let mut t = FollowerTracker::new(AFTER);
        let receiving = |bytes| {
            let o = Observed {
                next_index: 1,
                match_index: 0,
                snapshot_bytes: bytes,
            };
            vec![(2, o)]
        };
        assert!(t.observe(t0, Some(1), 900, receiving(0)).is_empty());
        for k in 1..10u64 {
            let now = t0 + Duration::from_secs(2 * k);
            assert!(t.observe(now, Some(1), 900, receiving(k << 20)).is_empty());
        }
        // The bytes stop moving: stuck one threshold later.
        let now = t0 + Duration::from_secs(18);
        assert!(t
            .observe(now + AFTER / 2, Some(1), 900, receiving(9 << 20))
            .is_empty());
        let ch = t.observe(now + AFTER, Some(1), 900, receiving(9 << 20));
        assert!(
            matches!(&ch[..], [Transition::Stuck(h)] if h.id == 2),
            "{ch:?}"
        );
    }

    #[test]
    fn a_follower_behind_without_progress_is_stuck_once_then_recovers() {
        let t0 = Instant::now();
        let mut t = FollowerTracker::new(AFTER);
        assert!(t
            .observe(t0, Some(2), 10, at(&[(1, 10), (3, 10)]))
            .is_empty());
        // Follower 3 stops at 10 while the leader goes on.
        let s = |k: u64| t0 + Duration::from_millis(k);
        assert!(t
            .observe(s(1000), Some(2), 15, at(&[(1, 15), (3, 10)]))
            .is_empty());
        let r = t.report(s(1000));
        assert_eq!(
            (r[1].lag, r[1].stuck, r[1].since_progress_ms),
            (5, false, 1000)
        );
        assert!(t
            .observe(s(2999), Some(2), 20, at(&[(1, 20), (3, 10)]))
            .is_empty());
        // It was last caught up at t0: stuck from t0 + AFTER, reported once.
        let ch = t.observe(s(3000), Some(2), 21, at(&[(1, 21), (3, 10)]));
        assert_eq!(ch.len(), 1);
        let Transition::Stuck(h) = &ch[0] else {
            panic!("{ch:?}")
        };
        assert_eq!(
            (h.id, h.lag, h.match_index, h.since_progress_ms),
            (3, 11, 10, 3000)
        );
        assert!(t
            .observe(s(5000), Some(2), 22, at(&[(1, 22), (3, 10)]))
            .is_empty());
        assert_eq!(stuck_ids(&t, s(5000)), vec![3]);
        // One acknowledged entry is progress: no longer stuck, though still behind.
        let ch = t.observe(s(6000), Some(2), 22, at(&[(1, 22), (3, 11)]));
        assert!(
            matches!(&ch[..], [Transition::Recovered(h)] if h.id == 3 && h.lag == 11 && !h.stuck),
            "{ch:?}"
        );
        // And stuck again if that was all.
        assert!(t
            .observe(s(8999), Some(2), 22, at(&[(1, 22), (3, 11)]))
            .is_empty());
        let ch = t.observe(s(9000), Some(2), 22, at(&[(1, 22), (3, 11)]));
        assert!(
            matches!(&ch[..], [Transition::Stuck(h)] if h.id == 3),
            "{ch:?}"
        );
        // Caught up: recovered.
        let ch = t.observe(s(9500), Some(2), 22, at(&[(1, 22), (3, 22)]));
        assert!(
            matches!(&ch[..], [Transition::Recovered(h)] if h.lag == 0),
            "{ch:?}"
        );
    }

    #[test]
    fn a_leadership_change_starts_afresh() {
        let t0 = Instant::now();
        let s = |k: u64| t0 + Duration::from_secs(k);
        let mut t = FollowerTracker::new(AFTER);
        t.observe(t0, Some(1), 5, at(&[(2, 5), (3, 5)]));
        t.observe(s(4), Some(1), 9, at(&[(2, 9), (3, 5)]));
        assert_eq!(stuck_ids(&t, s(4)), vec![3]);
        // Stepping down: nothing to report, and no transition for the follower that was stuck.
        assert!(t.observe(s(5), None, 9, at(&[(2, 9), (3, 5)])).is_empty());
        assert!(t.report(s(5)).is_empty());
        // Leader again in a later term: a new leader's match_index starts at 0 and follower 3
        // gets a full `stuck_after` before it is reported again.
        assert!(t
            .observe(s(20), Some(3), 10, at(&[(2, 0), (3, 0)]))
            .is_empty());
        assert!(t
            .observe(s(22), Some(3), 10, at(&[(2, 10), (3, 0)]))
            .is_empty());
        assert!(stuck_ids(&t, s(22)).is_empty());
        assert_eq!(t.report(s(22))[1].since_progress_ms, 2000);
        let ch = t.observe(s(23), Some(3), 10, at(&[(2, 10), (3, 0)]));
        assert!(
            matches!(&ch[..], [Transition::Stuck(h)] if h.id == 3),
            "{ch:?}"
        );
        // A new term while stuck (re-elected after a partition, say) also starts afresh.
        assert!(t
            .observe(s(24), Some(4), 11, at(&[(2, 0), (3, 0)]))
            .is_empty());
        assert!(stuck_ids(&t, s(24)).is_empty());
    }
}
