//! Membership changes and leadership transfers as an operator makes them: `POST
//! /membership/{op}/{id}` at the leader (found from every node's `/status`), retried while the
//! leader answers `503` (busy: its term's first entry or a change not committed yet, a transfer
//! target behind) until a deadline. Each operation is driven by its goal, read from the
//! leader's committed configuration: a change whose answer was lost (`503` "leadership
//! changed", `504`, a cut connection) is not sent again once the configuration shows it, and a
//! `409` (does not apply) is final only if the goal is still not reached.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::monitor;

/// What the leader says the configuration is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub leader: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The configuration in effect at the leader is committed.
    pub committed: bool,
}

impl Config {
    pub fn is_member(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
}

/// An operation (the path segment of `POST /membership/{op}/{id}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    TransferLeader,
    Remove,
    AddLearner,
    Promote,
}

impl Op {
    pub fn path(self) -> &'static str {
        match self {
            Op::TransferLeader => "transfer-leader",
            Op::Remove => "remove",
            Op::AddLearner => "add-learner",
            Op::Promote => "promote",
        }
    }

    /// The operation on `id` has taken effect (for a change: committed) in `c`.
    fn reached(self, id: u64, c: &Config) -> bool {
        match self {
            Op::TransferLeader => c.leader == id,
            Op::Remove => c.committed && !c.is_member(id),
            Op::AddLearner => c.committed && c.is_member(id),
            Op::Promote => c.committed && c.voters.contains(&id),
        }
    }
}

/// Counts of the operations of a run.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Per operation: answered `200` by the leader.
    pub done: BTreeMap<&'static str, u64>,
    /// Per operation: found already in effect (a lost answer, or a change made before).
    pub found_done: BTreeMap<&'static str, u64>,
    /// Per operation: answers `503` (busy, retried).
    pub busy: BTreeMap<&'static str, u64>,
    /// Per operation: answers that left the outcome open (`503` "leadership changed", `504`,
    /// no answer), after which the configuration was read again.
    pub unknown: BTreeMap<&'static str, u64>,
    /// Operations that failed (deadline, refused): not safety failures, logged.
    pub failures: Vec<String>,
}

impl Counts {
    pub fn done(&self, op: Op) -> u64 {
        self.done.get(op.path()).copied().unwrap_or(0)
            + self.found_done.get(op.path()).copied().unwrap_or(0)
    }

    pub fn busy_total(&self) -> u64 {
        self.busy.values().sum()
    }
}

/// The nodes' HTTP addresses (node `i` at index `i - 1`), asked directly.
pub struct Operator {
    https: Vec<String>,
    agent: ureq::Agent,
}

/// How an operation ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// Answered `200` by the leader, in `term`.
    Answered { term: u64 },
    /// Already in effect when looked at.
    Found,
}

impl Operator {
    pub fn new(https: Vec<String>) -> Operator {
        Operator {
            https,
            agent: monitor::agent(Duration::from_secs(2)),
        }
    }

    /// The configuration of the node that says it leads with the highest term, if one does.
    pub fn config(&self) -> Option<Config> {
        let ids = |v: &Value| -> Vec<u64> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect()
        };
        self.https
            .iter()
            .enumerate()
            .filter_map(|(k, h)| {
                let v = monitor::status(&self.agent, h)?;
                (v["role"].as_str() == Some("Leader")).then(|| Config {
                    leader: k as u64 + 1,
                    term: v["term"].as_u64().unwrap_or(0),
                    voters: ids(&v["voters"]),
                    learners: ids(&v["learners"]),
                    committed: v["membership_committed"].as_bool().unwrap_or(false),
                })
            })
            .max_by_key(|c| c.term)
    }

    /// Do `op` on node `id` within `deadline`, counting into `counts`. `Err` (also logged in
    /// `counts.failures`) when it did not happen: no leader, refused, out of time.
    pub fn run(
        &self,
        op: Op,
        id: u64,
        deadline: Duration,
        counts: &mut Counts,
    ) -> Result<Done, String> {
        let r = self.attempt(op, id, deadline, counts);
        match &r {
            Ok(Done::Answered { .. }) => *counts.done.entry(op.path()).or_default() += 1,
            Ok(Done::Found) => *counts.found_done.entry(op.path()).or_default() += 1,
            Err(e) => counts.failures.push(format!("{} {id}: {e}", op.path())),
        }
        r
    }

    fn attempt(
        &self,
        op: Op,
        id: u64,
        deadline: Duration,
        counts: &mut Counts,
    ) -> Result<Done, String> {
        let until = Instant::now() + deadline;
        let mut last = String::from("no leader seen");
        let pause = Duration::from_millis(50);
        while Instant::now() < until {
            let Some(c) = self.config() else {
                last = "no leader seen".into();
                std::thread::sleep(pause);
                continue;
            };
            if op.reached(id, &c) {
                return Ok(Done::Found);
            }
            if !c.committed {
                // Wait for the change in progress to commit before judging or asking.
                last = format!("configuration at leader {} not committed", c.leader);
                std::thread::sleep(pause);
                continue;
            }
            let sent = Instant::now();
            let url = format!(
                "http://{}/membership/{}/{id}",
                self.https[c.leader as usize - 1],
                op.path()
            );
            let (code, body, why) = loop {
                let (code, body) = match self.agent.post(&url).call() {
                    Ok(r) => (r.status(), r.into_json::<Value>().unwrap_or(Value::Null)),
                    Err(ureq::Error::Status(code, r)) => {
                        (code, r.into_json::<Value>().unwrap_or(Value::Null))
                    }
                    Err(e) => break (0, Value::String(e.to_string()), String::new()),
                };
                let why = body["error"].as_str().unwrap_or_default().to_string();
                // The leader lets a transfer go only at a moment when the target holds its
                // whole log; under a steady write load such moments are short: ask the same
                // leader again at once (for at most a second before looking at the cluster).
                if code == 503 && why.contains("transfer target") && Instant::now() < until {
                    *counts.busy.entry(op.path()).or_default() += 1;
                    if Instant::now() < sent + Duration::from_secs(1) {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    last = format!("node {}: {code} {body}", c.leader);
                    break (0, Value::Null, String::new());
                }
                break (code, body, why);
            };
            match code {
                200 => return Ok(Done::Answered { term: c.term }),
                409 => {
                    // Maybe a lost answer's change took effect meanwhile: look again.
                    if self.config().is_some_and(|c| op.reached(id, &c)) {
                        return Ok(Done::Found);
                    }
                    return Err(format!("refused by node {}: {why}", c.leader));
                }
                503 if why.contains("leadership changed") => {
                    *counts.unknown.entry(op.path()).or_default() += 1;
                }
                503 => *counts.busy.entry(op.path()).or_default() += 1,
                504 => *counts.unknown.entry(op.path()).or_default() += 1,
                // No answer (a cut connection): the outcome is open.
                0 if body.is_string() => {
                    *counts.unknown.entry(op.path()).or_default() += 1;
                    last = format!("node {}: {body}", c.leader);
                    std::thread::sleep(pause);
                    continue;
                }
                // A second of busy transfers: look at the cluster again.
                0 => continue,
                // A redirect: the node no longer leads; look for the leader again.
                _ => {}
            }
            last = format!("node {}: {code} {body}", c.leader);
            std::thread::sleep(pause);
        }
        Err(format!("not done within {deadline:?}; last: {last}"))
    }

    /// Make every node of `ids` a voter again (a learner promoted, a removed node added as a
    /// learner and promoted), within `deadline` in all. Returns the operations it made, or the
    /// first failure.
    pub fn restore(
        &self,
        ids: &[u64],
        deadline: Duration,
        counts: &mut Counts,
    ) -> Result<u64, String> {
        let until = Instant::now() + deadline;
        let mut made = 0;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("configuration not restored in time".into());
            }
            let Some(c) = self.config().filter(|c| c.committed) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let Some(&id) = ids.iter().find(|&&id| !c.voters.contains(&id)) else {
                return Ok(made);
            };
            let op = if c.learners.contains(&id) {
                Op::Promote
            } else {
                Op::AddLearner
            };
            if let Ok(Done::Answered { .. }) = self.run(op, id, left, counts) {
                made += 1;
            } else if Instant::now() >= until {
                return Err(format!("node {id} not restored as a voter in time"));
            }
        }
    }
}

/// The voter an operation on "node `n`, or the next one" picks among `c`'s voters other than
/// the leader: `n` itself if it is one, else the next such voter by id (cyclically).
pub fn pick(c: &Config, n: u64) -> Option<u64> {
    let mut candidates: Vec<u64> = c
        .voters
        .iter()
        .copied()
        .filter(|&v| v != c.leader)
        .collect();
    candidates.sort_unstable();
    candidates
        .iter()
        .copied()
        .find(|&v| v >= n)
        .or_else(|| candidates.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(leader: u64, voters: &[u64], learners: &[u64]) -> Config {
        Config {
            leader,
            term: 3,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            committed: true,
        }
    }

    #[test]
    fn a_pick_is_a_voter_other_than_the_leader() {
        let c = cfg(2, &[1, 2, 3], &[]);
        assert_eq!(pick(&c, 1), Some(1));
        assert_eq!(pick(&c, 2), Some(3));
        assert_eq!(pick(&c, 3), Some(3));
        let c = cfg(3, &[1, 3], &[2]);
        assert_eq!(pick(&c, 2), Some(1));
        assert_eq!(pick(&cfg(1, &[1], &[2, 3]), 2), None);
    }

    #[test]
    fn goals_read_from_the_committed_configuration() {
        let c = cfg(1, &[1, 2], &[3]);
        assert!(Op::Remove.reached(4, &c));
        assert!(!Op::Remove.reached(3, &c));
        assert!(Op::AddLearner.reached(3, &c));
        assert!(!Op::Promote.reached(3, &c));
        assert!(Op::Promote.reached(2, &c));
        assert!(Op::TransferLeader.reached(1, &c));
        let pending = Config {
            committed: false,
            ..c
        };
        assert!(!Op::Remove.reached(4, &pending));
    }
}
