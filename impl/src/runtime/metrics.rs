//! Counters, gauges and the fsync-latency histogram, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::status::FollowerHealth;

/// Upper bounds of the fsync histogram buckets, in seconds.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Most distinct refusal reasons remembered for [`Metrics::refusal_to_log`].
pub const REASONS_KEPT: usize = 64;

/// Every metric of one node.
#[derive(Debug, Default)]
pub struct Metrics {
    pub term: AtomicU64,
    /// 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
    pub role: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub last_log_index: AtomicU64,
    pub proposals: AtomicU64,
    pub reads: AtomicU64,
    pub leader_changes: AtomicU64,
    pub batches: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub handshakes_refused: AtomicU64,
    pub snapshot_index: AtomicU64,
    pub snapshots: AtomicU64,
    pub snapshots_installed: AtomicU64,
    pub messages_too_large: AtomicU64,
    pub registrations: AtomicU64,
    pub sessions: AtomicU64,
    /// The soft open-file limit in force (after the raise at start).
    pub open_files_limit: AtomicU64,
    /// The cap on concurrent HTTP connections.
    pub http_connections_max: AtomicU64,
    /// HTTP connections open now.
    pub http_connections: AtomicU64,
    /// HTTP connections refused (503) for being beyond the cap.
    pub http_connections_refused: AtomicU64,
    /// HTTP accepts that failed for want of file descriptors.
    pub http_accept_errors: AtomicU64,
    /// HTTP connections closed because a request head did not arrive in time.
    pub http_header_timeouts: AtomicU64,
    /// HTTP requests answered 408 (not done within `http_request_timeout_ms`).
    pub http_request_timeouts: AtomicU64,
    /// HTTP requests answered 413 (body over `max_body_bytes`).
    pub http_bodies_too_large: AtomicU64,
    /// An fsync at least this long (nanoseconds; 0: never) is slow: counted and logged.
    pub slow_fsync_ns: AtomicU64,
    pub slow_fsyncs: AtomicU64,
    /// Role changes of this node, and leaderships lost.
    pub role_changes: AtomicU64,
    pub step_downs: AtomicU64,
    /// Rejections from a follower below the index it had acknowledged: it lost log entries.
    pub followers_lost_log: AtomicU64,
    /// Appends to such a follower not sent: at most one a heartbeat interval goes (see
    /// `lost_log`).
    pub lost_log_appends_held: AtomicU64,
    /// Outbound peer connections dropped for an error or for silence (then redialed).
    pub peer_connections_lost: AtomicU64,
    /// Snapshot transfers to followers started, finished, and failed.
    pub snapshot_transfers_started: AtomicU64,
    pub snapshot_transfers_completed: AtomicU64,
    pub snapshot_transfers_failed: AtomicU64,
    /// Snapshot transfers running now.
    pub snapshot_transfers_active: AtomicU64,
    /// Bytes and chunks of snapshot encodings sent to followers.
    pub snapshot_bytes_sent: AtomicU64,
    pub snapshot_chunks_sent: AtomicU64,
    /// `InstallSnapshot` messages the core repeated while a transfer to that follower ran (or
    /// had just finished), and that therefore did not start another.
    pub snapshot_sends_suppressed: AtomicU64,
    /// Snapshot transfers received whole from a leader, and their bytes.
    pub snapshot_transfers_received: AtomicU64,
    pub snapshot_bytes_received: AtomicU64,
    /// Snapshot transfers this node refused or lost part-way (bad offset, size or checksum,
    /// connection closed before the end).
    pub snapshot_receives_failed: AtomicU64,
    /// Reasons of refused peer handshakes already logged (at most [`REASONS_KEPT`]).
    refusal_reasons: std::sync::Mutex<std::collections::BTreeSet<String>>,
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS.len()],
    fsync_count: AtomicU64,
    fsync_sum_ns: AtomicU64,
    /// The leader's followers as of the last batch (empty on any other node).
    followers: Mutex<Vec<FollowerHealth>>,
}

impl Metrics {
    /// Add one.
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    /// Add `n`.
    pub fn add(&self, c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
    /// Set a gauge.
    pub fn set(&self, g: &AtomicU64, v: u64) {
        g.store(v, Ordering::Relaxed);
    }
    /// Count a refused peer handshake; true when it should be logged: the first time each
    /// reason is seen (up to [`REASONS_KEPT`] reasons), and at the 1st, 2nd, 4th... refusal,
    /// so that a peer redialing every few hundred milliseconds does not flood the log and a
    /// new kind of refusal is never hidden behind an old one.
    pub fn refusal_to_log(&self, reason: &str) -> (bool, u64) {
        let n = self.handshakes_refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut seen = self.refusal_reasons.lock().unwrap();
        let new = seen.len() < REASONS_KEPT && seen.insert(reason.to_string());
        (new || n.is_power_of_two(), n)
    }

    /// Record one fsync (a whole group commit); a slow one is counted and logged (at the 1st,
    /// 2nd, 4th, 8th... so that a failing disk does not flood the log).
    pub fn observe_fsync(&self, d: Duration) {
        let slow = self.slow_fsync_ns.load(Ordering::Relaxed);
        if slow > 0 && d.as_nanos() as u64 >= slow {
            let n = self.slow_fsyncs.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    took_ms = d.as_secs_f64() * 1e3,
                    threshold_ms = slow as f64 / 1e6,
                    slow_so_far = n,
                    "slow fsync"
                );
            }
        }
        let s = d.as_secs_f64();
        for (k, le) in FSYNC_BUCKETS.iter().enumerate() {
            if s <= *le {
                self.fsync_buckets[k].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fsync_count.fetch_add(1, Ordering::Relaxed);
        self.fsync_sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Replace the followers shown (after every batch; empty when not leader).
    pub fn set_followers(&self, followers: Vec<FollowerHealth>) {
        *self.followers.lock().unwrap() = followers;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, node: u64) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP raft_{name} {help}\n# TYPE raft_{name} {kind}");
            let _ = writeln!(out, "raft_{name}{{node=\"{node}\"}} {v}");
        };
        one("term", "gauge", "Current term.", g(&self.term));
        one(
            "role",
            "gauge",
            "0 follower, 1 pre-candidate, 2 candidate, 3 leader.",
            g(&self.role),
        );
        one(
            "commit_index",
            "gauge",
            "Commit index.",
            g(&self.commit_index),
        );
        one(
            "applied_index",
            "gauge",
            "Last applied index.",
            g(&self.applied_index),
        );
        one(
            "last_log_index",
            "gauge",
            "Last log index.",
            g(&self.last_log_index),
        );
        one(
            "proposals_total",
            "counter",
            "Client commands received.",
            g(&self.proposals),
        );
        one("reads_total", "counter", "Reads received.", g(&self.reads));
        one(
            "registrations_total",
            "counter",
            "Session registrations received (POST /register).",
            g(&self.registrations),
        );
        one(
            "sessions",
            "gauge",
            "Client sessions in the state machine.",
            g(&self.sessions),
        );
        one(
            "leader_changes_total",
            "counter",
            "Times the known leader changed.",
            g(&self.leader_changes),
        );
        one(
            "batches_total",
            "counter",
            "Input batches handled.",
            g(&self.batches),
        );
        one(
            "messages_sent_total",
            "counter",
            "Peer messages queued.",
            g(&self.messages_sent),
        );
        one(
            "messages_received_total",
            "counter",
            "Peer messages received.",
            g(&self.messages_received),
        );
        one(
            "messages_dropped_total",
            "counter",
            "Messages dropped on full queues.",
            g(&self.messages_dropped),
        );
        one(
            "handshakes_refused_total",
            "counter",
            "Peer handshakes refused.",
            g(&self.handshakes_refused),
        );
        one(
            "snapshot_index",
            "gauge",
            "Index of the latest durable snapshot.",
            g(&self.snapshot_index),
        );
        one(
            "snapshots_total",
            "counter",
            "Snapshots made durable (compactions and installs).",
            g(&self.snapshots),
        );
        one(
            "snapshots_installed_total",
            "counter",
            "Snapshots installed from a leader.",
            g(&self.snapshots_installed),
        );
        one(
            "messages_too_large_total",
            "counter",
            "Messages not sent because their frame exceeds the frame limit.",
            g(&self.messages_too_large),
        );
        one(
            "open_files_limit",
            "gauge",
            "Soft limit of open file descriptors in force (raised to the hard limit at start).",
            g(&self.open_files_limit),
        );
        one(
            "http_connections_max",
            "gauge",
            "Most HTTP connections served at once (max_http_connections).",
            g(&self.http_connections_max),
        );
        one(
            "http_connections",
            "gauge",
            "HTTP connections open now.",
            g(&self.http_connections),
        );
        one(
            "http_connections_refused_total",
            "counter",
            "HTTP connections answered 503 and closed for being beyond max_http_connections.",
            g(&self.http_connections_refused),
        );
        one(
            "http_accept_errors_total",
            "counter",
            "HTTP accepts that failed for want of file descriptors (EMFILE, ENFILE).",
            g(&self.http_accept_errors),
        );
        one(
            "http_header_timeouts_total",
            "counter",
            "HTTP connections closed for a request head not complete within http_header_timeout_ms.",
            g(&self.http_header_timeouts),
        );
        one(
            "http_request_timeouts_total",
            "counter",
            "HTTP requests answered 408 (not done within http_request_timeout_ms).",
            g(&self.http_request_timeouts),
        );
        one(
            "http_bodies_too_large_total",
            "counter",
            "HTTP requests answered 413 (body over max_body_bytes).",
            g(&self.http_bodies_too_large),
        );
        for (name, kind, help, v) in [
            (
                "slow_fsyncs_total",
                "counter",
                "Group-commit fsyncs that took at least slow_fsync_ms.",
                &self.slow_fsyncs,
            ),
            (
                "role_changes_total",
                "counter",
                "Role changes of this node (follower, pre-candidate, candidate, leader).",
                &self.role_changes,
            ),
            (
                "step_downs_total",
                "counter",
                "Times this node stopped being leader.",
                &self.step_downs,
            ),
            (
                "followers_lost_log_total",
                "counter",
                "Rejections from a follower below the index it had acknowledged (it lost log entries).",
                &self.followers_lost_log,
            ),
            (
                "lost_log_appends_held_total",
                "counter",
                "Appends to a follower that lost log entries not sent (one a heartbeat interval goes).",
                &self.lost_log_appends_held,
            ),
            (
                "peer_connections_lost_total",
                "counter",
                "Outbound peer connections dropped for an error or for silence, then redialed.",
                &self.peer_connections_lost,
            ),
            (
                "snapshot_transfers_started_total",
                "counter",
                "Snapshot transfers to followers started.",
                &self.snapshot_transfers_started,
            ),
            (
                "snapshot_transfers_completed_total",
                "counter",
                "Snapshot transfers the follower received whole.",
                &self.snapshot_transfers_completed,
            ),
            (
                "snapshot_transfers_failed_total",
                "counter",
                "Snapshot transfers that failed (connection, refusal, timeout).",
                &self.snapshot_transfers_failed,
            ),
            (
                "snapshot_transfers_active",
                "gauge",
                "Snapshot transfers to followers running now.",
                &self.snapshot_transfers_active,
            ),
            (
                "snapshot_bytes_sent_total",
                "counter",
                "Bytes of snapshot encodings sent to followers.",
                &self.snapshot_bytes_sent,
            ),
            (
                "snapshot_chunks_sent_total",
                "counter",
                "Snapshot chunks sent to followers.",
                &self.snapshot_chunks_sent,
            ),
            (
                "snapshot_sends_suppressed_total",
                "counter",
                "InstallSnapshot repeats not sent because a transfer to that follower ran or had just finished.",
                &self.snapshot_sends_suppressed,
            ),
            (
                "snapshot_transfers_received_total",
                "counter",
                "Snapshot transfers received whole from a leader.",
                &self.snapshot_transfers_received,
            ),
            (
                "snapshot_bytes_received_total",
                "counter",
                "Bytes of snapshot encodings received whole from a leader.",
                &self.snapshot_bytes_received,
            ),
            (
                "snapshot_receives_failed_total",
                "counter",
                "Snapshot transfers refused or broken off part-way on this node.",
                &self.snapshot_receives_failed,
            ),
        ] {
            one(name, kind, help, g(v));
        }
        let _ = writeln!(
            out,
            "# HELP raft_fsync_seconds Latency of one group commit (log fsync + hard state).\n# TYPE raft_fsync_seconds histogram"
        );
        for (k, le) in FSYNC_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "raft_fsync_seconds_bucket{{node=\"{node}\",le=\"{le}\"}} {}",
                g(&self.fsync_buckets[k])
            );
        }
        let count = g(&self.fsync_count);
        let _ = writeln!(
            out,
            "raft_fsync_seconds_bucket{{node=\"{node}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "raft_fsync_seconds_sum{{node=\"{node}\"}} {}",
            g(&self.fsync_sum_ns) as f64 / 1e9
        );
        let _ = writeln!(out, "raft_fsync_seconds_count{{node=\"{node}\"}} {count}");
        self.render_followers(node, &mut out);
        out
    }

    /// Per-follower series, labelled `peer`; only a leader has any.
    fn render_followers(&self, node: u64, out: &mut String) {
        let followers = self.followers.lock().unwrap().clone();
        type Field = fn(&FollowerHealth) -> u64;
        let series: [(&str, &str, Field); 4] = [
            (
                "follower_match_index",
                "Highest log index known to be replicated on the follower (leader only).",
                |f| f.match_index,
            ),
            (
                "follower_lag_entries",
                "Entries the follower is behind the leader's last log index (leader only).",
                |f| f.lag,
            ),
            (
                "follower_stuck",
                "1 when the follower is behind with no progress for follower_stuck_elections maximal election timeouts (leader only).",
                |f| f.stuck as u64,
            ),
            (
                "follower_since_progress_ms",
                "Milliseconds since the follower's match index advanced or it was caught up (leader only).",
                |f| f.since_progress_ms,
            ),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP raft_{name} {help}\n# TYPE raft_{name} gauge");
            for f in &followers {
                let _ = writeln!(
                    out,
                    "raft_{name}{{node=\"{node}\",peer=\"{}\"}} {}",
                    f.id,
                    value(f)
                );
            }
        }
        let stuck = followers.iter().filter(|f| f.stuck).count();
        let _ = writeln!(
            out,
            "# HELP raft_followers_stuck Followers reported stuck by this node as leader (0 on any other node).\n# TYPE raft_followers_stuck gauge\nraft_followers_stuck{{node=\"{node}\"}} {stuck}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_fsyncs_are_counted_from_the_threshold() {
        let m = Metrics::default();
        m.observe_fsync(Duration::from_secs(5));
        assert_eq!(m.slow_fsyncs.load(Ordering::Relaxed), 0, "0: never slow");
        m.set(&m.slow_fsync_ns, 200_000_000);
        m.observe_fsync(Duration::from_millis(199));
        m.observe_fsync(Duration::from_millis(200));
        m.observe_fsync(Duration::from_secs(1));
        assert_eq!(m.slow_fsyncs.load(Ordering::Relaxed), 2);
        assert_eq!(m.fsync_count.load(Ordering::Relaxed), 4);
        assert!(m.render(1).contains("raft_slow_fsyncs_total{node=\"1\"} 2"));
    }
}
