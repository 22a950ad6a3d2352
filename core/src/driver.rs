//! The driver: turns clock ticks into the core's timeout events.
//!
//! A follower or candidate fires `ElectionTimeout` after a randomized number of ticks drawn
//! from `[election_ticks, 2 * election_ticks)` by a seeded RNG; hearing from a leader or
//! granting a vote restarts the count. A leader fires `HeartbeatTimeout` every
//! `heartbeat_ticks` and `ElectionTimeout` every `election_ticks` (the CheckQuorum window).
//! The same driver serves the runtime (one tick per wall-clock interval) and the simulator.

use serde::{Deserialize, Serialize};

use crate::{Input, KvStateMachine, RaftCore, Ready, Role, StateMachine};

/// A small, fast, seedable PRNG (SplitMix64). Deterministic across platforms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SimRng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// A uniformly chosen index below `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Timer settings, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timing {
    /// Base election timeout; the randomized timeout is in `[election_ticks, 2*election_ticks)`.
    pub election_ticks: u64,
    /// Heartbeat interval of a leader (should be well below `election_ticks`).
    pub heartbeat_ticks: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            election_ticks: 10,
            heartbeat_ticks: 2,
        }
    }
}

/// A core plus its timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Driver<S: StateMachine = KvStateMachine> {
    core: RaftCore<S>,
    timing: Timing,
    rng: SimRng,
    election_elapsed: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
}

impl<S: StateMachine> Driver<S> {
    /// Wrap a core; `seed` feeds the election-timeout randomization.
    pub fn new(core: RaftCore<S>, timing: Timing, seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let election_timeout = rng.range(timing.election_ticks, 2 * timing.election_ticks);
        Driver {
            core,
            timing,
            rng,
            election_elapsed: 0,
            election_timeout,
            heartbeat_elapsed: 0,
        }
    }
    /// The core.
    pub fn core(&self) -> &RaftCore<S> {
        &self.core
    }
    /// Consume the driver, returning the core.
    pub fn into_core(self) -> RaftCore<S> {
        self.core
    }
    /// The current randomized election timeout, in ticks.
    pub fn election_timeout(&self) -> u64 {
        self.election_timeout
    }

    /// Feed one input to the core, keeping the timers in step with what happened.
    pub fn step(&mut self, input: Input<S>) -> Ready<S> {
        let was_leader = self.core.role() == Role::Leader;
        let ready = self.core.step(input);
        if ready.reset_election_timer {
            self.reset_election_timer();
        }
        if !was_leader && self.core.role() == Role::Leader {
            self.heartbeat_elapsed = 0;
            self.reset_election_timer();
        }
        ready
    }

    /// Advance the clock by one tick; returns the `Ready`s of the timeouts that fired.
    pub fn tick(&mut self) -> Vec<Ready<S>> {
        self.tick_observed(|_, _, _| {})
    }

    /// [`Driver::tick`], calling `observe(input, ready, core)` right after each timeout the tick
    /// fires is handled (for recording).
    pub fn tick_observed(
        &mut self,
        mut observe: impl FnMut(&Input<S>, &Ready<S>, &RaftCore<S>),
    ) -> Vec<Ready<S>> {
        let mut out = Vec::new();
        let mut fire = |d: &mut Self, input: Input<S>| {
            let r = d.step(input.clone());
            observe(&input, &r, &d.core);
            out.push(r);
        };
        self.election_elapsed += 1;
        if self.core.role() == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.timing.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                fire(self, Input::HeartbeatTimeout);
            }
            if self.election_elapsed >= self.timing.election_ticks {
                self.election_elapsed = 0;
                fire(self, Input::ElectionTimeout);
            }
        } else if self.election_elapsed >= self.election_timeout {
            self.reset_election_timer();
            fire(self, Input::ElectionTimeout);
        }
        out
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self
            .rng
            .range(self.timing.election_ticks, 2 * self.timing.election_ticks);
    }
}
