//! The fault schedule, drawn from the seed before the run starts: one fault at a time (a
//! composed fault is one: a node fault inside a network fault), each with a start, a duration
//! and its targets. Targets are node numbers, node groups, or "the
//! leader" (resolved when the fault starts, since which node leads depends on timing). The same
//! seed gives the same schedule; the interleaving of a real cluster is not replayed.

use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Kinds of faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `kill -9`, then restart after the duration.
    Kill,
    /// SIGSTOP, then SIGCONT after the duration.
    Pause,
    /// Two sides that cannot reach each other in either direction.
    Partition,
    /// One side's messages to the other vanish; the other direction works.
    Asymmetric,
    /// Partial connectivity: two sides cut from each other, one bridge node reaching both.
    Bridge,
    /// Every link loses frames with a probability.
    Loss,
    /// Every link delays frames.
    Delay,
    /// The leader cut from every peer (both directions); clients can still reach it.
    IsolateLeader,
    /// Many idle connections to a node's HTTP port (more than its connection cap), held for
    /// the fault's duration.
    FdExhaust,
    /// Connections to a node's HTTP port trickling a request head one byte a second; the node
    /// must close them after its header timeout.
    Slowloris,
    /// A partition that lasts long (`Lengths::long_ms` and up), so that the nodes' redial
    /// backoff grows.
    LongPartition,
    /// A node fault (kill, pause) during a network fault (partition, asymmetric cut, bridge,
    /// loss, delay): see [`Fault::composed`].
    Composed,
    /// The clients' link to one node (through its client proxy) refused or stalled; the
    /// node's peers still reach it. Needs client proxies.
    ClientCut,
    /// The leader hands its leadership to another voter (`POST
    /// /membership/transfer-leader/{id}`); nothing to heal.
    TransferLeader,
    /// A voter other than the leader removed from the configuration, then, after the
    /// duration, added back as a learner and promoted (`remove`, `add-learner`, `promote`).
    MembershipChurn,
}

pub const ALL: [Kind; 15] = [
    Kind::Kill,
    Kind::Pause,
    Kind::Partition,
    Kind::Asymmetric,
    Kind::Bridge,
    Kind::Loss,
    Kind::Delay,
    Kind::IsolateLeader,
    Kind::FdExhaust,
    Kind::Slowloris,
    Kind::LongPartition,
    Kind::Composed,
    Kind::ClientCut,
    Kind::TransferLeader,
    Kind::MembershipChurn,
];

/// The membership kinds: changes made through the nodes' HTTP API as an operator would.
pub const MEMBERSHIP: [Kind; 2] = [Kind::TransferLeader, Kind::MembershipChurn];

/// The kinds of the harness before `fd-exhaust`, `slowloris`, `long-partition` and
/// `composed`: a run with exactly these draws the same schedule from a seed as it did then.
pub const CLASSIC: [Kind; 8] = [
    Kind::Kill,
    Kind::Pause,
    Kind::Partition,
    Kind::Asymmetric,
    Kind::Bridge,
    Kind::Loss,
    Kind::Delay,
    Kind::IsolateLeader,
];

/// The network faults a composed fault draws its outer fault from, and the node faults it
/// draws its inner one from.
pub const COMPOSED_OUTER: [Kind; 5] = [
    Kind::Partition,
    Kind::Asymmetric,
    Kind::Bridge,
    Kind::Loss,
    Kind::Delay,
];
pub const COMPOSED_INNER: [Kind; 2] = [Kind::Kill, Kind::Pause];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Asymmetric => "asymmetric",
            Kind::Bridge => "bridge",
            Kind::Loss => "loss",
            Kind::Delay => "delay",
            Kind::IsolateLeader => "isolate-leader",
            Kind::FdExhaust => "fd-exhaust",
            Kind::Slowloris => "slowloris",
            Kind::LongPartition => "long-partition",
            Kind::Composed => "composed",
            Kind::ClientCut => "client-cut",
            Kind::TransferLeader => "transfer-leader",
            Kind::MembershipChurn => "membership-churn",
        }
    }

    /// A membership change or transfer (aimed at a voter other than the leader, whatever
    /// `--target-leader` says).
    pub fn is_membership(self) -> bool {
        MEMBERSHIP.contains(&self)
    }

    pub fn parse(s: &str) -> Result<Kind, String> {
        ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            format!(
                "unknown fault {s:?}; known: {}",
                ALL.map(Kind::name).join(",")
            )
        })
    }
}

/// Who a node fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Leader,
    Node(u64),
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub start_ms: u64,
    pub duration_ms: u64,
    pub kind: Kind,
    /// `Kill`, `Pause`: the node. `IsolateLeader`: always the leader.
    pub target: Target,
    /// `Partition`, `Asymmetric`, `Bridge`: side A (the rest is side B; for `Bridge`, the
    /// bridge node is `bridge`). `Asymmetric`: A's messages to B vanish.
    pub side_a: Vec<u64>,
    pub bridge: Option<u64>,
    /// `Partition`, `Asymmetric`: black-hole (frames vanish) instead of refusing connections.
    pub blackhole: bool,
    /// `Loss`: drop probability.
    pub loss: f64,
    /// `Delay`: per-frame delay range in ms.
    pub delay_ms: (u64, u64),
    /// `Composed`: the outer (network) fault, lasting the whole duration from offset 0, and
    /// the inner (node) fault, whose `start_ms` is its offset from the outer one's start.
    pub composed: Option<Box<[Fault; 2]>>,
}

/// Durations of the kinds that do not use the common 300-3000 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lengths {
    /// `LongPartition` lasts from this to 1.5 times this.
    pub long_ms: u64,
    /// `Slowloris` lasts at least this (the nodes' header timeout and some, so that the
    /// timeout is seen to act).
    pub slowloris_min_ms: u64,
}

impl Default for Lengths {
    fn default() -> Lengths {
        Lengths {
            long_ms: 12_000,
            slowloris_min_ms: 3_500,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {:>6} ms for {:>5} ms: {:<14}",
            self.start_ms,
            self.duration_ms,
            self.kind.name()
        )?;
        let how = if self.blackhole {
            "black-hole"
        } else {
            "refuse"
        };
        match self.kind {
            Kind::Kill | Kind::Pause | Kind::FdExhaust | Kind::Slowloris => match self.target {
                Target::Leader => write!(f, " the leader"),
                Target::Node(n) => write!(f, " node {n}"),
            },
            Kind::ClientCut => match self.target {
                Target::Leader => write!(f, " the leader ({how})"),
                Target::Node(n) => write!(f, " node {n} ({how})"),
            },
            Kind::Partition | Kind::LongPartition => {
                write!(f, " {:?} | rest ({how})", self.side_a)
            }
            Kind::Asymmetric => write!(f, " {:?} -> rest cut ({how})", self.side_a),
            Kind::Bridge => write!(
                f,
                " {:?} | rest, bridge node {}",
                self.side_a,
                self.bridge.unwrap_or(0)
            ),
            Kind::Loss => write!(f, " {:.0}% of frames", self.loss * 100.0),
            Kind::Delay => write!(f, " {}..{} ms per frame", self.delay_ms.0, self.delay_ms.1),
            Kind::IsolateLeader => write!(f, " the leader"),
            Kind::TransferLeader => match self.target {
                Target::Node(n) => write!(f, " the leader -> node {n} (or the next voter)"),
                Target::Leader => write!(f, " the leader -> another voter"),
            },
            Kind::MembershipChurn => match self.target {
                Target::Node(n) => write!(
                    f,
                    " node {n} (or the next voter not leading) removed, re-added as learner, promoted"
                ),
                Target::Leader => write!(f, " a voter removed, re-added as learner, promoted"),
            },
            Kind::Composed => match self.composed.as_deref() {
                Some([outer, inner]) => write!(f, " [{outer}] with [{inner}]"),
                None => write!(f, " (nothing)"),
            },
        }
    }
}

impl Fault {
    /// The name of a composed fault's parts (`kill+partition`), else the kind's name.
    pub fn label(&self) -> String {
        match self.composed.as_deref() {
            Some([outer, inner]) => format!("{}+{}", inner.kind.name(), outer.kind.name()),
            None => self.kind.name().to_string(),
        }
    }
}

/// Draw a schedule for `nodes` nodes covering `total_ms` (after a quiet `warmup_ms`), using only
/// `kinds`. With only [`CLASSIC`] kinds the schedule is the one the harness drew before the
/// other kinds existed (they draw their extra figures after the common ones).
pub fn draw(
    rng: &mut StdRng,
    nodes: u64,
    kinds: &[Kind],
    warmup_ms: u64,
    total_ms: u64,
    lengths: Lengths,
) -> Vec<Fault> {
    let mut out = Vec::new();
    let mut t = warmup_ms;
    loop {
        t += rng.gen_range(200..=900);
        let kind = *kinds.choose(rng).expect("at least one fault kind");
        // Long enough for an election (timeouts are 300-600 ms) in most faults, sometimes
        // shorter than one.
        let mut duration_ms = rng.gen_range(300..=3000);
        match kind {
            Kind::LongPartition => {
                duration_ms = lengths.long_ms + duration_ms * lengths.long_ms / 6000;
            }
            Kind::Slowloris => duration_ms = duration_ms.max(lengths.slowloris_min_ms),
            // Room for a node fault inside.
            Kind::Composed => duration_ms += 1500,
            _ => {}
        }
        if t + duration_ms > total_ms {
            break;
        }
        let mut f = one(rng, nodes, kind, t, duration_ms);
        if kind == Kind::Composed {
            let outer_kind = *COMPOSED_OUTER.choose(rng).unwrap();
            let inner_kind = *COMPOSED_INNER.choose(rng).unwrap();
            let outer = one(rng, nodes, outer_kind, 0, duration_ms);
            // The node fault starts in the first third and ends at least 200 ms before the
            // network heals.
            let offset = rng.gen_range(0..=duration_ms / 3);
            let inner_ms = rng.gen_range(300..=duration_ms - offset - 200);
            let inner = one(rng, nodes, inner_kind, offset, inner_ms);
            f.composed = Some(Box::new([outer, inner]));
        }
        out.push(f);
        t += duration_ms;
    }
    out
}

/// One fault of `kind` at `start_ms`: its targets, sides and figures.
fn one(rng: &mut StdRng, nodes: u64, kind: Kind, start_ms: u64, duration_ms: u64) -> Fault {
    let ids: Vec<u64> = (1..=nodes).collect();
    let mut shuffled = ids.clone();
    shuffled.shuffle(rng);
    let minority = rng.gen_range(1..=(nodes as usize - 1) / 2);
    let target = if rng.gen_bool(0.5) {
        Target::Leader
    } else {
        Target::Node(*ids.choose(rng).unwrap())
    };
    let mut f = Fault {
        start_ms,
        duration_ms,
        kind,
        target,
        side_a: Vec::new(),
        bridge: None,
        blackhole: rng.gen_bool(0.5),
        loss: rng.gen_range(0.05..0.5),
        delay_ms: {
            let a = rng.gen_range(0..40);
            (a, a + rng.gen_range(1..120))
        },
        composed: None,
    };
    match kind {
        Kind::Partition | Kind::Asymmetric | Kind::LongPartition => {
            // Either side may be the minority; an asymmetric cut from the majority side is
            // the interesting case as often as the other.
            let k = if rng.gen_bool(0.5) {
                minority
            } else {
                nodes as usize - minority
            };
            f.side_a = shuffled[..k].to_vec();
            f.side_a.sort_unstable();
        }
        Kind::Bridge => {
            f.bridge = Some(shuffled[0]);
            let rest = &shuffled[1..];
            f.side_a = rest[..rest.len() / 2].to_vec();
            f.side_a.sort_unstable();
        }
        Kind::IsolateLeader => f.target = Target::Leader,
        // A voter other than the leader, resolved when the fault starts: the drawn node, or
        // the next voter by id if it leads (no extra draw, so that the other kinds' figures
        // stay as they are).
        Kind::TransferLeader | Kind::MembershipChurn => f.target = Target::Node(shuffled[0]),
        _ => {}
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_every_kind_appears() {
        let a = draw(
            &mut StdRng::seed_from_u64(7),
            5,
            &ALL,
            1000,
            600_000,
            Lengths::default(),
        );
        let b = draw(
            &mut StdRng::seed_from_u64(7),
            5,
            &ALL,
            1000,
            600_000,
            Lengths::default(),
        );
        assert_eq!(a, b);
        for k in ALL {
            assert!(a.iter().any(|f| f.kind == k), "{k:?} missing");
        }
        for w in a.windows(2) {
            assert!(w[0].start_ms + w[0].duration_ms < w[1].start_ms);
        }
        for f in &a {
            if f.kind == Kind::Partition {
                assert!(!f.side_a.is_empty() && f.side_a.len() < 5);
            }
            if f.kind == Kind::Bridge {
                assert!(!f.side_a.contains(&f.bridge.unwrap()));
            }
        }
        let c = draw(
            &mut StdRng::seed_from_u64(8),
            5,
            &ALL,
            1000,
            600_000,
            Lengths::default(),
        );
        assert_ne!(a, c);
    }

    /// The new kinds' durations, and composed faults: a node fault inside a network fault.
    #[test]
    fn long_slowloris_and_composed_faults_have_their_shapes() {
        let lengths = Lengths {
            long_ms: 10_000,
            slowloris_min_ms: 4_000,
        };
        let s = draw(
            &mut StdRng::seed_from_u64(3),
            3,
            &[Kind::LongPartition, Kind::Slowloris, Kind::Composed],
            1000,
            2_000_000,
            lengths,
        );
        let mut labels = std::collections::BTreeSet::new();
        for f in &s {
            match f.kind {
                Kind::LongPartition => {
                    assert!((10_000..=15_000).contains(&f.duration_ms), "{f}");
                    assert!(!f.side_a.is_empty() && f.side_a.len() < 3);
                }
                Kind::Slowloris => assert!(f.duration_ms >= 4_000, "{f}"),
                Kind::Composed => {
                    let [outer, inner] = f.composed.as_deref().expect("parts");
                    assert!(COMPOSED_OUTER.contains(&outer.kind), "{f}");
                    assert!(COMPOSED_INNER.contains(&inner.kind), "{f}");
                    assert_eq!((outer.start_ms, outer.duration_ms), (0, f.duration_ms));
                    assert!(
                        inner.start_ms + inner.duration_ms + 200 <= f.duration_ms,
                        "{f}"
                    );
                    labels.insert(f.label());
                }
                k => panic!("{k:?} drawn"),
            }
        }
        // Every pairing turns up: kill during a partition, a pause during loss, ...
        assert_eq!(
            labels.len(),
            COMPOSED_OUTER.len() * COMPOSED_INNER.len(),
            "{labels:?}"
        );
        assert!(labels.contains("kill+partition") && labels.contains("pause+loss"));
    }

    /// Transfers and membership churn name a node (the one to aim at, or the next voter), drawn
    /// from the seed like the others.
    #[test]
    fn membership_kinds_name_a_node() {
        let s = draw(
            &mut StdRng::seed_from_u64(5),
            5,
            &MEMBERSHIP,
            1000,
            200_000,
            Lengths::default(),
        );
        assert!(s.len() > 50);
        let mut nodes = std::collections::BTreeSet::new();
        for f in &s {
            assert!(f.kind.is_membership(), "{f}");
            assert!((300..=3000).contains(&f.duration_ms), "{f}");
            match f.target {
                Target::Node(n) => nodes.insert(n),
                Target::Leader => panic!("{f}"),
            };
        }
        assert_eq!(nodes.len(), 5);
        for k in MEMBERSHIP {
            assert!(s.iter().any(|f| f.kind == k), "{k:?} missing");
        }
    }

    /// The schedule drawing as it was before the new kinds (commit 6d59c7a), kept to check
    /// that the classic kinds still draw the same schedules.
    fn draw_before(
        rng: &mut StdRng,
        nodes: u64,
        kinds: &[Kind],
        warmup_ms: u64,
        total_ms: u64,
    ) -> Vec<Fault> {
        let ids: Vec<u64> = (1..=nodes).collect();
        let mut out = Vec::new();
        let mut t = warmup_ms;
        loop {
            t += rng.gen_range(200..=900);
            let kind = *kinds.choose(rng).expect("at least one fault kind");
            // Long enough for an election (timeouts are 300-600 ms) in most faults, sometimes
            // shorter than one.
            let duration_ms = rng.gen_range(300..=3000);
            if t + duration_ms > total_ms {
                break;
            }
            let mut shuffled = ids.clone();
            shuffled.shuffle(rng);
            let minority = rng.gen_range(1..=(nodes as usize - 1) / 2);
            let target = if rng.gen_bool(0.5) {
                Target::Leader
            } else {
                Target::Node(*ids.choose(rng).unwrap())
            };
            let mut f = Fault {
                start_ms: t,
                duration_ms,
                kind,
                target,
                side_a: Vec::new(),
                bridge: None,
                blackhole: rng.gen_bool(0.5),
                loss: rng.gen_range(0.05..0.5),
                delay_ms: {
                    let a = rng.gen_range(0..40);
                    (a, a + rng.gen_range(1..120))
                },
                composed: None,
            };
            match kind {
                Kind::Partition | Kind::Asymmetric => {
                    // Either side may be the minority; an asymmetric cut from the majority side is
                    // the interesting case as often as the other.
                    let k = if rng.gen_bool(0.5) {
                        minority
                    } else {
                        nodes as usize - minority
                    };
                    f.side_a = shuffled[..k].to_vec();
                    f.side_a.sort_unstable();
                }
                Kind::Bridge => {
                    f.bridge = Some(shuffled[0]);
                    let rest = &shuffled[1..];
                    f.side_a = rest[..rest.len() / 2].to_vec();
                    f.side_a.sort_unstable();
                }
                Kind::IsolateLeader => f.target = Target::Leader,
                _ => {}
            }
            out.push(f);
            t += duration_ms;
        }
        out
    }

    /// With the classic kinds only (or a subset), a seed draws the schedule it drew before the
    /// new kinds, so the figures measured then can be reproduced.
    #[test]
    fn classic_kinds_draw_what_they_drew_before() {
        for seed in [7, 20261125, 99] {
            for nodes in [3, 5] {
                for kinds in [&CLASSIC[..], &CLASSIC[..3]] {
                    let now = draw(
                        &mut StdRng::seed_from_u64(seed),
                        nodes,
                        kinds,
                        1000,
                        400_000,
                        Lengths::default(),
                    );
                    let before = draw_before(
                        &mut StdRng::seed_from_u64(seed),
                        nodes,
                        kinds,
                        1000,
                        400_000,
                    );
                    assert!(now.len() > 100);
                    assert_eq!(now, before, "seed {seed}, {nodes} nodes");
                }
            }
        }
    }
}
