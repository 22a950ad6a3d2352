//! The load generator behind `raft-node bench`: N concurrent clients on one tokio runtime, each
//! with one operation in flight, issuing a read/write mix against a running cluster and recording
//! every operation's latency.
//!
//! The engine (this module) draws the operations, times them and sums them up; what one client
//! does to perform an operation is a [`Target`]. The raftright one ([`raftright`]) is below; the
//! comparison with etcd (`raft-benches`, feature `etcd`) drives etcd with the same engine through
//! a target of its own, so both systems see the same clients, keys, values and timing.
//!
//! Each raftright client has its own keep-alive HTTP/1.1 connection and behaves like the library
//! client: it registers a session (`POST /register`)
//! before its first operation, follows the leader's redirect, rotates through the nodes on
//! failures, and retries a write with the same `(client_id, seq)` until it is answered, so a
//! retried write is never applied twice. An operation that is still not answered after
//! `op_timeout` counts as an error; so does a write whose session expired (409; the client
//! registers again); any other 4xx answer (bad token, bad request) stops the run, since
//! retrying it cannot succeed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::Future;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub mod raftright;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// HTTP addresses (`host:port`) of some nodes.
    pub nodes: Vec<String>,
    /// Concurrent clients, each with one request in flight.
    pub clients: usize,
    /// Fraction of operations that are reads, in `[0, 1]`.
    pub reads: f64,
    /// Reads are served without the leader round trip (`?stale=true`).
    pub stale_reads: bool,
    /// Bytes per written value.
    pub value_size: usize,
    /// Keys are drawn uniformly from `bench-0 .. bench-{keys-1}`.
    pub keys: u64,
    /// Stop after this long (whichever of `duration` and `ops` comes first).
    pub duration: Option<Duration>,
    /// Stop after this many operations.
    pub ops: Option<u64>,
    /// Give up on one operation (and count an error) after this long.
    pub op_timeout: Duration,
    /// `Authorization: Bearer` token, if the cluster requires one.
    pub token: Option<String>,
    /// Seed of the key and read/write choices (client `i` uses `seed + i`).
    pub seed: u64,
}

impl LoadConfig {
    /// Check the settings; every problem is named.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() || self.nodes.iter().any(|n| n.trim().is_empty()) {
            return Err("--nodes needs at least one host:port".into());
        }
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.reads) {
            return Err(format!("--reads must be in 0.0..=1.0, got {}", self.reads));
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.duration.is_none() && self.ops.is_none() {
            return Err("give --duration or --ops".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) || self.ops == Some(0) {
            return Err("--duration and --ops must be positive".into());
        }
        Ok(())
    }
}

/// Latency percentiles of one kind of operation, in microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: u64,
}

impl Latency {
    fn of(mut v: Vec<u32>) -> Latency {
        if v.is_empty() {
            return Latency::default();
        }
        v.sort_unstable();
        let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as u64;
        Latency {
            count: v.len() as u64,
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: *v.last().unwrap() as u64,
            mean_us: v.iter().map(|&x| x as u64).sum::<u64>() / v.len() as u64,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub clients: usize,
    pub elapsed_s: f64,
    /// Operations answered (writes acknowledged, reads answered).
    pub ops: u64,
    pub ops_per_s: f64,
    pub writes_per_s: f64,
    /// Operations given up on after `op_timeout`, or whose session expired.
    pub errors: u64,
    /// Writes answered "session expired" (409): their client registered again.
    pub expired: u64,
    /// Attempts repeated (redirects, 503/504, connection errors); each retried write kept its
    /// `(client_id, seq)`.
    pub retries: u64,
    pub writes: Latency,
    pub reads: Latency,
}

/// Counters shared with the progress reporter.
#[derive(Default)]
pub struct Progress {
    pub writes: AtomicU64,
    pub reads: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
    pub expired: AtomicU64,
}

/// How one operation ended, as a [`Target`] reports it.
#[derive(Debug)]
pub enum Outcome {
    /// Answered: a write acknowledged, a read answered.
    Done,
    /// A write's session is gone (raftright's 409 "session expired"): counted as an error and
    /// as expired; the target registers again before its next write.
    Expired,
    /// Not answered within the operation timeout (counted as an error; the run goes on).
    GaveUp,
    /// The system refuses this request outright (a bad token, a bad request): the run stops,
    /// since retrying cannot succeed.
    Refused(String),
}

/// One client of the system under load: it performs one operation at a time, retrying inside
/// the operation as the system's own clients would, within `LoadConfig::op_timeout`.
pub trait Target: Send + 'static {
    /// Whatever must happen before a write is timed (raftright: registering a session). An
    /// error is the outcome of the write that could not start.
    fn ready_to_write(&mut self) -> impl Future<Output = Result<(), Outcome>> + Send {
        async { Ok(()) }
    }
    /// Write `value` under `key`.
    fn write(&mut self, key: &str, value: Bytes) -> impl Future<Output = Outcome> + Send;
    /// A read of `key` (linearizable unless the target was built otherwise).
    fn read(&mut self, key: &str) -> impl Future<Output = Outcome> + Send;
}

/// Run the load against raftright; `progress` receives the shared counters once a second until
/// the run ends.
pub async fn run(
    cfg: LoadConfig,
    progress: impl FnMut(Duration, &Progress) + Send,
) -> Result<Summary, String> {
    let shared = Arc::new(cfg.clone());
    run_targets(
        cfg,
        |i, counters| raftright::Worker::new(shared.clone(), counters, i),
        progress,
    )
    .await
}

/// Run the load with client `i` being `target(i, counters)`; `progress` receives the shared
/// counters once a second until the run ends.
pub async fn run_targets<T: Target>(
    cfg: LoadConfig,
    mut target: impl FnMut(usize, Arc<Progress>) -> T,
    mut progress: impl FnMut(Duration, &Progress) + Send,
) -> Result<Summary, String> {
    cfg.validate()?;
    let cfg = Arc::new(cfg);
    let counters = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let fatal: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients {
        let client = Client {
            cfg: cfg.clone(),
            counters: counters.clone(),
            rng: StdRng::seed_from_u64(cfg.seed.wrapping_add(i as u64)),
            value: Bytes::from(vec![b'v'; cfg.value_size]),
            target: target(i, counters.clone()),
        };
        let (stop, issued, fatal) = (stop.clone(), issued.clone(), fatal.clone());
        tasks.push(tokio::spawn(async move {
            client.run(stop, issued, fatal).await
        }));
    }
    let deadline = cfg.duration.map(|d| start + d);
    let mut next = start + Duration::from_secs(1);
    let mut all = tokio::spawn(async move {
        let mut lat = (Vec::new(), Vec::new());
        for t in tasks {
            if let Ok((w, r)) = t.await {
                lat.0.extend(w);
                lat.1.extend(r);
            }
        }
        lat
    });
    let (w, r) = loop {
        let wake = deadline.map_or(next, |d| d.min(next));
        tokio::select! {
            res = &mut all => break res.map_err(|e| format!("load generator failed: {e}"))?,
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    stop.store(true, Ordering::Relaxed);
                }
                if now >= next {
                    progress(now - start, &counters);
                    next += Duration::from_secs(1);
                }
            }
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(e) = fatal.lock().unwrap().take() {
        return Err(e);
    }
    let writes = Latency::of(w);
    let reads = Latency::of(r);
    let ops = writes.count + reads.count;
    Ok(Summary {
        clients: cfg.clients,
        elapsed_s: elapsed,
        ops,
        ops_per_s: ops as f64 / elapsed,
        writes_per_s: writes.count as f64 / elapsed,
        errors: counters.errors.load(Ordering::Relaxed),
        expired: counters.expired.load(Ordering::Relaxed),
        retries: counters.retries.load(Ordering::Relaxed),
        writes,
        reads,
    })
}

/// One client of the engine: draws its operations and times them; `target` performs them.
struct Client<T> {
    cfg: Arc<LoadConfig>,
    counters: Arc<Progress>,
    rng: StdRng,
    value: Bytes,
    target: T,
}

impl<T: Target> Client<T> {
    async fn run(
        mut self,
        stop: Arc<AtomicBool>,
        issued: Arc<AtomicU64>,
        fatal: Arc<Mutex<Option<String>>>,
    ) -> (Vec<u32>, Vec<u32>) {
        let (mut wl, mut rl) = (Vec::new(), Vec::new());
        while !stop.load(Ordering::Relaxed) {
            if let Some(max) = self.cfg.ops {
                if issued.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
            }
            let key = format!("bench-{}", self.rng.gen_range(0..self.cfg.keys));
            let read = self.rng.gen_bool(self.cfg.reads);
            let ready = if read {
                Ok(())
            } else {
                self.target.ready_to_write().await
            };
            let t0 = Instant::now();
            let outcome = match ready {
                Err(o) => o,
                Ok(()) if read => self.target.read(&key).await,
                Ok(()) => self.target.write(&key, self.value.clone()).await,
            };
            let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
            match outcome {
                Outcome::Done if read => {
                    rl.push(us);
                    self.counters.reads.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Done => {
                    wl.push(us);
                    self.counters.writes.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::GaveUp => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Expired => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    self.counters.expired.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Refused(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    fatal.lock().unwrap().get_or_insert(e);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        (wl, rl)
    }
}

#[cfg(test)]
mod tests {
    use super::raftright::authority;
    use super::*;

    fn cfg() -> LoadConfig {
        LoadConfig {
            nodes: vec!["127.0.0.1:1".into()],
            clients: 1,
            reads: 0.0,
            stale_reads: false,
            value_size: 16,
            keys: 10,
            duration: Some(Duration::from_secs(1)),
            ops: None,
            op_timeout: Duration::from_secs(1),
            token: None,
            seed: 1,
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = cfg();
        c.reads = 1.5;
        assert!(c.validate().unwrap_err().contains("--reads"));
        let mut c = cfg();
        c.clients = 0;
        assert!(c.validate().unwrap_err().contains("--clients"));
        let mut c = cfg();
        c.duration = None;
        assert!(c.validate().unwrap_err().contains("--duration or --ops"));
        let mut c = cfg();
        c.keys = 0;
        assert!(c.validate().unwrap_err().contains("--keys"));
        assert!(cfg().validate().is_ok());
    }

    #[test]
    fn a_node_that_never_answers_costs_errors_not_a_hang() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            // Every connection accepted and held, never answered: what a stopped process
            // (SIGSTOP) looks like to a client, since the kernel still accepts for it.
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((s, _)) = l.accept().await {
                    held.push(s);
                }
            });
            let mut c = cfg();
            c.nodes = vec![addr];
            c.op_timeout = Duration::from_millis(300);
            c.duration = Some(Duration::from_millis(200));
            let run = run(c, |_, _| {});
            let r = tokio::time::timeout(Duration::from_secs(10), run).await;
            let r = r.expect("the load generator gave up within its op timeout");
            // The session registration itself is never answered: that is the error reported.
            match r {
                Ok(s) => assert!(s.errors > 0 && s.ops == 0, "{s:?}"),
                Err(e) => assert!(e.contains("regist"), "{e}"),
            }
        });
    }

    #[test]
    fn percentiles() {
        let l = Latency::of((1..=1000).collect());
        assert_eq!(
            (l.p50_us, l.p99_us, l.p999_us, l.max_us),
            (501, 991, 1000, 1000)
        );
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }

    #[test]
    fn redirect_authority() {
        assert_eq!(
            authority("http://127.0.0.1:7102/kv/a?x=1"),
            Some("127.0.0.1:7102")
        );
        assert_eq!(authority("https://x/"), None);
    }
}
