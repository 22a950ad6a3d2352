//! Concurrent clients, one thread each, using `raft_node::client::Client` (a session
//! registered before the first write and again after it expires, leader discovery, redirects,
//! retries of a write with the same `(client_id, seq)`). Every operation is recorded with its
//! invocation and completion time and its outcome; a write refused with "session expired" has
//! an unknown outcome (an earlier attempt may have been applied).
//!
//! Two vocabularies: `Full` (keys `key0..`, put/get/delete/cas, values unique per write), and
//! `Model` (what `raft-conformance validate` can check: keys `k0`/`k1`, put/get only, numeric
//! values below 256 drawn from one shared counter, so every write is unique and the log stays
//! below 256 entries; client ids are the indexes of their `Register` entries).
//!
//! Eviction pressure ([`Workload::churn`]): besides the clients, a churn thread registers a
//! session nobody uses and sends a write without a session (key [`NOISE_KEY`]) every interval,
//! and client 0 pauses [`IDLE`] between its operations, so that with a small `max_sessions`
//! the sessions of idle or stalled clients are evicted during the run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft_node::client::{Client, ClientError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::history::{Cmd, Op, Outcome, Ret};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vocabulary {
    Full,
    Model,
}

/// The client side of a run.
#[derive(Clone, Debug)]
pub struct Workload {
    pub clients: u64,
    pub keys: u64,
    pub vocabulary: Vocabulary,
    /// Stop after this many operations in total.
    pub max_ops: u64,
    /// `Model`: at most this many writes (values `1..=max_writes`).
    pub max_writes: u64,
    /// A client gives up on an operation after this long (outcome `Unknown`).
    pub op_timeout: Duration,
    /// Pause between a client's operations (spreads the model vocabulary's few writes over
    /// the run).
    pub think: Duration,
    /// Reads are stale reads (`?stale=true`) from a random node instead of linearizable
    /// reads: not linearizable by design, so a run with it shows the checks catch a real
    /// anomaly end to end.
    pub stale_reads: bool,
    /// Eviction pressure: the churn thread's interval (`None`: no churn thread, client 0 does
    /// not idle).
    pub churn: Option<Duration>,
}

/// The key of the churn thread's writes without a session (outside the checked history).
pub const NOISE_KEY: &str = "noise";
/// Under eviction pressure, client 0's pause between operations.
pub const IDLE: Duration = Duration::from_millis(1000);

/// Shared between the client threads.
pub struct Shared {
    pub history: Mutex<Vec<Op>>,
    pub stop: AtomicBool,
    pub started_ops: AtomicU64,
    pub writes: AtomicU64,
    /// The churn thread's registrations and writes without a session that were answered.
    pub churn_registrations: AtomicU64,
    pub churn_writes: AtomicU64,
    pub epoch: Instant,
}

impl Shared {
    pub fn new(epoch: Instant) -> Arc<Shared> {
        Arc::new(Shared {
            history: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            started_ops: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            churn_registrations: AtomicU64::new(0),
            churn_writes: AtomicU64::new(0),
            epoch,
        })
    }

    pub fn ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// The pause between a client's operations that makes `max_writes` last about `time` in the
/// model vocabulary (half the operations are writes).
pub fn spread(time: Duration, clients: u64, max_writes: u64) -> Duration {
    time * clients as u32 / (2 * max_writes.max(1) as u32)
}

pub fn key_name(w: &Workload, k: u64) -> String {
    match w.vocabulary {
        Vocabulary::Model => format!("k{k}"),
        Vocabulary::Full => format!("key{k}"),
    }
}

pub fn keys(w: &Workload) -> Vec<String> {
    (0..w.keys).map(|k| key_name(w, k)).collect()
}

/// Run client `c` until the shared stop flag, `max_ops`, or (in `Model`) the end of the write
/// budget.
pub fn client(w: &Workload, c: u64, nodes: Vec<String>, seed: u64, sh: &Shared) {
    let mut rng = StdRng::seed_from_u64(seed ^ (c + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    // Each client starts at a different node, so writes enter through every node (followers
    // redirect them to the leader).
    let mut nodes = nodes;
    let k = c as usize % nodes.len();
    nodes.rotate_left(k);
    let mut stale: Vec<Client> = nodes
        .iter()
        .map(|n| {
            let mut c = Client::new(vec![n.clone()]);
            c.set_deadline(w.op_timeout);
            c
        })
        .collect();
    let mut cl = Client::new(nodes);
    cl.set_deadline(w.op_timeout);
    let mut n = 0u64;
    let mut last_value: Option<String> = None;
    while !sh.stop.load(Ordering::Relaxed) {
        if sh.started_ops.fetch_add(1, Ordering::Relaxed) >= w.max_ops {
            break;
        }
        n += 1;
        let think = match w.churn {
            Some(_) if c == 0 => w.think.max(IDLE),
            _ => w.think,
        };
        if !think.is_zero() {
            std::thread::sleep(think);
        }
        let key = key_name(w, rng.gen_range(0..w.keys));
        let roll = rng.gen_range(0..100);
        let cmd = match w.vocabulary {
            Vocabulary::Model => {
                if roll < 50 {
                    Cmd::Get
                } else {
                    let v = sh.writes.fetch_add(1, Ordering::Relaxed) + 1;
                    if v > w.max_writes {
                        break;
                    }
                    Cmd::Put(v.to_string())
                }
            }
            Vocabulary::Full => {
                let fresh = format!("{c}.{n}");
                match roll {
                    0..=44 => Cmd::Get,
                    45..=74 => Cmd::Put(fresh),
                    75..=84 => Cmd::Delete,
                    // CAS from a value this client saw (often still current), or from absent.
                    _ => Cmd::Cas {
                        expected: if rng.gen_bool(0.8) {
                            last_value.clone()
                        } else {
                            None
                        },
                        new: if rng.gen_bool(0.9) { Some(fresh) } else { None },
                    },
                }
            }
        };
        // A session first (the first write, or after "session expired"): a registration that
        // fails is no operation; the write is not sent.
        if cmd.is_write() && !cl.has_session() && cl.register().is_err() {
            continue;
        }
        let call_ns = sh.ns();
        let res: Result<Ret, ClientError> = match &cmd {
            Cmd::Put(v) => cl.put(&key, v).map(|_| Ret::Ok),
            Cmd::Get if w.stale_reads => {
                let k = rng.gen_range(0..stale.len());
                stale[k].get_stale(&key).map(Ret::Value)
            }
            Cmd::Get => cl.get(&key).map(Ret::Value),
            Cmd::Delete => cl.delete(&key).map(|_| Ret::Ok),
            Cmd::Cas { expected, new } => cl
                .cas(&key, expected.as_deref(), new.as_deref())
                .map(|(swapped, previous)| Ret::Cas { swapped, previous }),
        };
        let ret_ns = sh.ns();
        match &res {
            Ok(Ret::Value(v)) => last_value = v.clone(),
            Ok(Ret::Cas { previous, .. }) => last_value = previous.clone(),
            _ => {}
        }
        let outcome = match res {
            Ok(r) => Outcome::Ok(r),
            // A 4xx answer comes before the command is proposed.
            Err(ClientError::Rejected(e)) => Outcome::Fail(e),
            // Not applied by the attempt that got this answer, but maybe by an earlier one.
            Err(
                e @ (ClientError::Timeout(..)
                | ClientError::SessionExpired { .. }
                | ClientError::Stale { .. }),
            ) => Outcome::Unknown(e.to_string()),
        };
        let seq = cmd.is_write().then(|| cl.seq());
        sh.history.lock().unwrap().push(Op {
            client: c,
            client_id: cl.client_id(),
            seq,
            key,
            cmd,
            call_ns,
            ret_ns,
            outcome,
        });
    }
}

/// Eviction pressure until the stop flag: every `every`, one registration nobody uses and one
/// write without a session of [`NOISE_KEY`] (value `n<k>`), each sent once to a random node
/// with `?forward=true` and never retried (a write without a session is not retry-safe).
pub fn churn(every: Duration, nodes: Vec<String>, seed: u64, sh: &Shared) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_C4A2);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build();
    let mut k = 0u64;
    let ok = |r: Result<ureq::Response, ureq::Error>| {
        r.ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .is_some_and(|v| v.get("error").is_none())
    };
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(every);
        let node = &nodes[rng.gen_range(0..nodes.len())];
        if ok(agent
            .post(&format!("http://{node}/register?forward=true"))
            .call())
        {
            sh.churn_registrations.fetch_add(1, Ordering::Relaxed);
        }
        k += 1;
        if ok(agent
            .put(&format!("http://{node}/kv/{NOISE_KEY}?forward=true"))
            .send_string(&format!("n{k}")))
        {
            sh.churn_writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}
