//! The fault schedule, drawn from the seed before the run starts: one fault at a time, each
//! with a start, a duration and its targets. Targets are node numbers, node groups, or "the
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
}

pub const ALL: [Kind; 8] = [
    Kind::Kill,
    Kind::Pause,
    Kind::Partition,
    Kind::Asymmetric,
    Kind::Bridge,
    Kind::Loss,
    Kind::Delay,
    Kind::IsolateLeader,
];

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
        }
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
            Kind::Kill | Kind::Pause => match self.target {
                Target::Leader => write!(f, " the leader"),
                Target::Node(n) => write!(f, " node {n}"),
            },
            Kind::Partition => write!(f, " {:?} | rest ({how})", self.side_a),
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
        }
    }
}

/// Draw a schedule for `nodes` nodes covering `total_ms` (after a quiet `warmup_ms`), using only
/// `kinds`.
pub fn draw(
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_every_kind_appears() {
        let a = draw(&mut StdRng::seed_from_u64(7), 5, &ALL, 1000, 600_000);
        let b = draw(&mut StdRng::seed_from_u64(7), 5, &ALL, 1000, 600_000);
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
        let c = draw(&mut StdRng::seed_from_u64(8), 5, &ALL, 1000, 600_000);
        assert_ne!(a, c);
    }
}
