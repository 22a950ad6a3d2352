//! Watches `/status` of every node (one polling thread per node, so a paused node delays only
//! its own poller): the leader of each term as first seen, the current leader for faults that
//! target it, and the time from a leader's loss to the first leader of a later term.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The last answer of one node.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub at: Option<Instant>,
    pub term: u64,
    pub leader_role: bool,
    pub commit: u64,
    pub applied: u64,
    pub last_log: u64,
    pub leader: Option<u64>,
}

#[derive(Default)]
struct State {
    nodes: Vec<Seen>,
    /// `(term, leader)` of every leader seen, with when it was first seen.
    leaders: Vec<(u64, u64, Instant)>,
    leader_set: BTreeSet<(u64, u64)>,
}

/// The pollers and what they saw.
pub struct Monitor {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// One `/status` request with a short timeout.
pub fn status(agent: &ureq::Agent, http: &str) -> Option<Value> {
    agent
        .get(&format!("http://{http}/status"))
        .call()
        .ok()?
        .into_json::<Value>()
        .ok()
}

pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build()
}

impl Monitor {
    pub fn start(https: Vec<String>) -> Monitor {
        let state = Arc::new(Mutex::new(State {
            nodes: vec![Seen::default(); https.len()],
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = https
            .into_iter()
            .enumerate()
            .map(|(k, http)| {
                let state = state.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let agent = agent(Duration::from_millis(250));
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(v) = status(&agent, &http) {
                            let now = Instant::now();
                            let seen = Seen {
                                at: Some(now),
                                term: v["term"].as_u64().unwrap_or(0),
                                leader_role: v["role"].as_str() == Some("Leader"),
                                commit: v["commit_index"].as_u64().unwrap_or(0),
                                applied: v["last_applied"].as_u64().unwrap_or(0),
                                last_log: v["last_log_index"].as_u64().unwrap_or(0),
                                leader: v["leader"].as_u64(),
                            };
                            let mut s = state.lock().unwrap();
                            if seen.leader_role && s.leader_set.insert((seen.term, k as u64 + 1)) {
                                s.leaders.push((seen.term, k as u64 + 1, now));
                            }
                            s.nodes[k] = seen;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        Monitor {
            state,
            stop,
            threads,
        }
    }

    /// The leader with the highest term among nodes that answered within `fresh`, and its term.
    pub fn leader(&self, fresh: Duration) -> Option<(u64, u64)> {
        let s = self.state.lock().unwrap();
        s.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.leader_role && n.at.is_some_and(|t| t.elapsed() < fresh))
            .map(|(k, n)| (n.term, k as u64 + 1))
            .max()
            .map(|(t, id)| (id, t))
    }

    /// The last answer of every node.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().nodes.clone()
    }

    /// The first leader seen with a term above `term`, and when.
    pub fn leader_after(&self, term: u64) -> Option<(u64, u64, Instant)> {
        let s = self.state.lock().unwrap();
        s.leaders
            .iter()
            .filter(|l| l.0 > term)
            .min_by_key(|l| l.2)
            .copied()
    }

    /// Every `(term, leader)` seen.
    pub fn leaders(&self) -> Vec<(u64, u64)> {
        self.state
            .lock()
            .unwrap()
            .leader_set
            .iter()
            .copied()
            .collect()
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
