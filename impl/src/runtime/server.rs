//! The server: the node loop (inputs → core → persist → send → answer) and the wiring of
//! transport, ticker, HTTP API ([`super::http`]) and shutdown.
//!
//! The node loop runs on its own thread and owns the core and the storage. It takes a batch of
//! inputs (everything queued, up to [`MAX_BATCH`]), steps the core on each and stages each
//! `Ready`, then makes the whole batch durable with one fsync (group commit), and only then
//! sends the batch's messages. A vote, an acknowledgement or a new term therefore never leaves
//! the node before it is durable. With peers, that fsync and the sends run on the sync stage
//! (`outbound`): the loop writes the batch to the log file ([`Storage::commit_async`]) and
//! goes on with the next batch while the stage fsyncs and then sends, so the disk and the core
//! work at once. A node alone fsyncs in the loop ([`Storage::commit`]). Client answers of a
//! node with peers leave before the fsync: they only report entries a majority has already
//! made durable (see the comment in `NodeLoop::run`). Superseded appends and acknowledgements
//! of a batch are dropped or merged (`outbound::coalesce`).
//!
//! Snapshot policy: after a batch's inputs, when `snapshot_entries` (config) applied entries
//! are not covered by the latest snapshot, the loop steps `Input::Compact` like any other input
//! (recorded when recording is on). The core's snapshot is a constant-time clone of its
//! persistent maps; once the batch is committed, a thread encodes it and writes the snapshot
//! file while the loop goes on, and only when that file is durable does the log drop the
//! entries it covers (`finish_snapshot`). One such write at a time; a snapshot installed from
//! the leader waits for it and is written in the loop, before the acknowledgement.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::config::{self, Config, DEFAULT_MAX_INFLIGHT_APPENDS};
use super::handshake::PeerAuth;
use super::health::{FollowerTracker, Observed, Transition};
use super::http::{self, Api};
use super::identity::{self, PeerBook};
use super::limits;
use super::lost_log::LostLogPacer;
use super::metrics::Metrics;
use super::node_input::{AdminAnswer, NodeInput};
use super::outbound::{coalesce, Outbound};
use super::record::Recorder;
use super::snapshot_transfer::{self, prepare_incoming, SnapshotOptions, Transfers};
use super::status::Status;
use super::storage::{DeferredSnapshot, Storage, WrittenSnapshot};
use super::transport::{self, PeerTiming, Transport};
use super::wal::{StorageError, WalOptions};
use raft_core::driver::{Driver, Timing};
use raft_core::{
    AdminOp, AdminOutcome, Busy, ClientId, ClientReply, Envelope, Index, Input, Membership,
    Message, NodeId, Params, RaftCore, Ready, Role, Term, NO_SESSION,
};

/// Most inputs handled (and made durable with one fsync) per batch.
pub const MAX_BATCH: usize = 1024;
/// Capacity of the node loop's input queue.
pub const INPUT_QUEUE: usize = 8192;
type Waiters = HashMap<(ClientId, u64), Vec<oneshot::Sender<ClientReply>>>;

/// Where a batch's messages go once it is durable.
enum Outgoing {
    /// A node alone: fsync in the loop, then send (nothing, but the rule is the same).
    AfterCommit(Transport),
    /// A node with peers: the sync stage.
    Staged(Outbound),
}

struct NodeLoop {
    driver: Driver,
    storage: Storage,
    outgoing: Outgoing,
    writes: Waiters,
    reads: Waiters,
    status: Arc<RwLock<Status>>,
    metrics: Arc<Metrics>,
    cfg: Arc<Config>,
    known_leader: Option<NodeId>,
    /// The role at the last `publish`, to log changes.
    role: Role,
    recorder: Option<Recorder>,
    /// A compaction's snapshot staged by this batch, to write once the batch is committed.
    compacted: Option<DeferredSnapshot>,
    /// The compaction snapshot being written on its own thread, and when that started.
    writing: Option<(JoinHandle<Result<WrittenSnapshot, StorageError>>, Instant)>,
    /// Snapshot transfers to followers, for `/status`.
    transfers: Arc<Transfers>,
    /// While a transferred `InstallSnapshot` is stepped: its file and the index it holds.
    received: Option<(PathBuf, Index)>,
    /// On the leader, each follower's progress over time (`/status` `followers`).
    followers: FollowerTracker,
    /// On the leader, the pace of appends to followers that lost entries they acknowledged.
    lost_log: LostLogPacer,
    /// Operators waiting for the change appended at an index, of a term, to commit.
    admin_waiters: Vec<(Index, Term, oneshot::Sender<AdminAnswer>)>,
    /// A configuration of this batch had this node as its only voter: the leader's own copy
    /// was a majority, so nothing is answered before the batch's fsync.
    alone_in_batch: bool,
    /// A leadership transfer under way at this leader.
    transfer: Option<Transfer>,
}

/// A leadership transfer under way. New writes wait (they reach the core once it ends, as from
/// clients that were slow to send them, which the protocol allows): under a steady load the
/// target would otherwise never hold the leader's whole log, which `TimeoutNow` needs, and
/// once sent, a longer log at another follower would cost the target its election (etcd
/// holds proposals during a transfer for the same reasons).
struct Transfer {
    to: NodeId,
    /// Gives up then: one maximal election timeout.
    until: Instant,
    /// The operator, until `TimeoutNow` is sent.
    tx: Option<oneshot::Sender<AdminAnswer>>,
    /// Writes and registrations that arrived meanwhile.
    held: Vec<NodeInput>,
}

impl Drop for NodeLoop {
    /// Stopped by an error with a snapshot write still running: wait for it, so that a node
    /// started again in this process never shares the snapshot file with it.
    fn drop(&mut self) {
        if let Some((thread, _)) = self.writing.take() {
            let _ = thread.join();
        }
    }
}

impl NodeLoop {
    /// Batches until shutdown: each batch is stepped through the core, made durable with one
    /// fsync, and only then sent (see the module docs).
    fn run(mut self, mut rx: mpsc::Receiver<NodeInput>) -> Result<(), StorageError> {
        self.publish();
        let mut batches = 0u64;
        while let Some(batch) = next_batch(&mut rx) {
            let mut msgs = Vec::new();
            let mut replies = Vec::new();
            let mut shutdown = false;
            for input in batch {
                shutdown |= self.handle(input, &mut msgs, &mut replies)?;
            }
            self.drive_transfer(&mut msgs, &mut replies)?;
            self.compact_if_due(&mut msgs, &mut replies)?;
            self.commit_and_send(msgs, replies)?;
            self.start_snapshot_write()?;
            self.metrics.inc(&self.metrics.batches);
            batches += 1;
            if batches.is_multiple_of(512) {
                self.forget_abandoned_waiters();
            }
            self.publish();
            if shutdown {
                break;
            }
        }
        self.stop()
    }

    /// Steps one input through the core, staging what it produces. True for `Shutdown`.
    fn handle(
        &mut self,
        input: NodeInput,
        msgs: &mut Vec<Envelope>,
        replies: &mut Vec<ClientReply>,
    ) -> Result<bool, StorageError> {
        match input {
            NodeInput::Tick => {
                let rec = &mut self.recorder;
                let readies = self.driver.tick_observed(|input, r, core| {
                    if let Some(x) = rec.as_mut() {
                        if let Err(e) = x.step(input.clone(), r, core) {
                            warn!(error = %e, "recording failed; recording stops");
                            *rec = None;
                        }
                    }
                });
                for r in readies {
                    self.stage(r, msgs, replies)?;
                }
            }
            NodeInput::Peer(env) => {
                self.check_lost_log(&env);
                self.step_input(Input::Message(env), msgs, replies)?;
            }
            NodeInput::InstallSnapshot { env, file } => {
                let index = match &env.msg {
                    Message::InstallSnapshot { snapshot, .. } => snapshot.last_included_index,
                    _ => 0,
                };
                self.received = Some((file.clone(), index));
                let r = self.step_input(Input::Message(env), msgs, replies);
                self.received = None;
                // Renamed into place if the core installed it; otherwise not needed.
                let _ = std::fs::remove_file(&file);
                r?;
            }
            input @ (NodeInput::Client(..) | NodeInput::Register(..))
                if self.transfer.is_some() =>
            {
                if let Some(t) = self.transfer.as_mut() {
                    t.held.push(input);
                }
            }
            NodeInput::Admin(AdminOp::TransferLeader(to), tx) => {
                self.start_transfer(to, tx, msgs, replies)?
            }
            NodeInput::Client(req, tx) => {
                self.metrics.inc(&self.metrics.proposals);
                wait(&mut self.writes, (req.client_id, req.seq), tx);
                self.step_input(Input::client(req), msgs, replies)?;
            }
            NodeInput::Register(nonce, tx) => {
                self.metrics.inc(&self.metrics.registrations);
                wait(&mut self.writes, (NO_SESSION, nonce), tx);
                self.step_input(Input::register(nonce), msgs, replies)?;
            }
            NodeInput::Read(req, tx) => {
                self.metrics.inc(&self.metrics.reads);
                wait(&mut self.reads, (req.client_id, req.read_id), tx);
                self.step_input(Input::Read(req), msgs, replies)?;
            }
            NodeInput::StaleRead(key, tx) => {
                self.metrics.inc(&self.metrics.reads);
                let _ = tx.send(self.driver.core().kv().get(key.as_str()).cloned());
            }
            NodeInput::Admin(op, tx) => {
                let outcome = self.step_input(Input::Admin(op), msgs, replies)?;
                match outcome {
                    Some(AdminOutcome::Accepted { index: Some(index) }) => {
                        info!(?op, index, "membership change appended");
                        let term = self.driver.core().current_term();
                        self.admin_waiters.push((index, term, tx));
                    }
                    Some(outcome) => {
                        info!(?op, ?outcome, "operator's operation");
                        let _ = tx.send(AdminAnswer::Outcome(outcome));
                    }
                    None => {}
                }
            }
            NodeInput::Shutdown => return Ok(true),
        }
        Ok(false)
    }

    /// A follower that rejects an append below an index it acknowledged has lost entries it
    /// promised to keep (a wiped or restored disk): the leader repairs its log, but the cluster
    /// had one copy fewer of them than it counted, and an operator must know.
    fn check_lost_log(&mut self, env: &Envelope) {
        let Message::AppendEntriesResponse {
            success,
            last_index,
            term,
        } = env.msg
        else {
            return;
        };
        let core = self.driver.core();
        let Some(matched) = core.match_index(env.from) else {
            return;
        };
        if !core.is_leader() || term != core.current_term() {
            return;
        }
        if success {
            self.lost_log.caught_up(env.from);
            return;
        }
        if last_index < matched {
            self.lost_log.mark(env.from, term);
            let m = &self.metrics;
            let n = m
                .followers_lost_log
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            // Say it at the 1st, 2nd, 4th... rejection: one a heartbeat while it lasts.
            if n.is_power_of_two() {
                warn!(
                    peer = env.from,
                    acknowledged = matched,
                    now_ends_at = last_index,
                    rejections_so_far = n,
                    "a follower lost log entries it had acknowledged"
                );
            }
        }
    }

    /// The snapshot policy, after a batch's inputs: a finished snapshot write lets the log drop
    /// what it covers; then, with no write under way, `Compact` is stepped like any input.
    fn compact_if_due(
        &mut self,
        msgs: &mut Vec<Envelope>,
        replies: &mut Vec<ClientReply>,
    ) -> Result<(), StorageError> {
        if self.writing.as_ref().is_some_and(|(w, _)| w.is_finished()) {
            self.finish_snapshot()?;
        }
        if self.writing.is_none() && compaction_due(self.driver.core(), self.cfg.snapshot_entries) {
            self.step_input(Input::Compact, msgs, replies)?;
        }
        Ok(())
    }

    /// Makes the batch durable, then sends its messages and answers its clients.
    fn commit_and_send(
        &mut self,
        mut msgs: Vec<Envelope>,
        mut replies: Vec<ClientReply>,
    ) -> Result<(), StorageError> {
        if self.driver.core().is_leader() {
            let held = self.lost_log.pace(&mut msgs, Instant::now());
            self.metrics.add(&self.metrics.lost_log_appends_held, held);
        } else {
            self.lost_log.forget();
        }
        // A client answer depends only on entries that are already durable on a majority
        // when the cluster has peers: the leader commits N only when a follower acknowledged
        // N, the follower acknowledged only after its own fsync, and it received N only in a
        // message this leader sent after fsyncing N (messages leave after the fsync below).
        // So answers need not wait for this batch's fsync; with no peers the leader's own,
        // possibly unsynced, copy is the majority, and they must.
        let early = !self.cfg.peers.is_empty() && !self.alone_in_batch;
        if early {
            for r in std::mem::take(&mut replies) {
                self.route(r);
            }
        }
        if let Some(rec) = self.recorder.as_mut() {
            if let Err(e) = rec.flush() {
                warn!(error = %e, "recording failed; recording stops");
                self.recorder = None;
            }
        }
        // Group commit: one fsync for everything staged by this batch, before any of its
        // messages (votes, acknowledgements, appends) leaves the node.
        match &self.outgoing {
            // A batch in which this node was its configuration's only voter waits for its
            // fsync before anything is answered (below).
            Outgoing::Staged(out) if self.alone_in_batch => {
                if let Some(d) = self.storage.commit()?.fsync {
                    self.metrics.observe_fsync(d);
                }
                out.send_after(None, msgs)
            }
            Outgoing::Staged(out) => out.send_after(self.storage.commit_async()?, msgs),
            Outgoing::AfterCommit(transport) => {
                if let Some(d) = self.storage.commit()?.fsync {
                    self.metrics.observe_fsync(d);
                }
                for m in coalesce(msgs) {
                    transport.send(m);
                }
            }
        }
        for r in replies {
            self.route(r);
        }
        self.answer_admin_waiters();
        let core = self.driver.core();
        self.alone_in_batch = core.membership().voters.iter().eq([&core.id()]);
        Ok(())
    }

    /// The batch (and the hard state with it) is committed: a snapshot it compacted may now be
    /// written, on a thread of its own.
    fn start_snapshot_write(&mut self) -> Result<(), StorageError> {
        if let Some(deferred) = self.compacted.take() {
            let w = self.storage.snapshot_after_commit(deferred)?;
            let thread = std::thread::Builder::new()
                .name("raft-snapshot".into())
                .spawn(move || w.run())
                .map_err(|e| StorageError::Failed(format!("cannot start a thread: {e}")))?;
            self.writing = Some((thread, Instant::now()));
        }
        Ok(())
    }

    /// Drops the waiters of clients that gave up (their HTTP request timed out or closed), so
    /// requests that are never answered (lost with a leader change) do not accumulate.
    fn forget_abandoned_waiters(&mut self) {
        for w in [&mut self.writes, &mut self.reads] {
            w.retain(|_, v| {
                v.retain(|t| !t.is_closed());
                !v.is_empty()
            });
        }
    }

    /// After the last batch: the sync stage drains, a snapshot write finishes, and a failure
    /// the stage could not report itself is reported here.
    fn stop(mut self) -> Result<(), StorageError> {
        if let Outgoing::Staged(out) = &mut self.outgoing {
            out.finish();
        }
        if self.writing.is_some() {
            self.finish_snapshot()?;
        }
        if let Some(why) = self.storage.failure() {
            return Err(StorageError::Failed(why.to_string()));
        }
        info!("node loop stopped; everything acknowledged is durable");
        Ok(())
    }

    /// Steps one input and stages its `Ready`; the outcome of an operator's operation.
    fn step_input(
        &mut self,
        input: Input,
        msgs: &mut Vec<Envelope>,
        replies: &mut Vec<ClientReply>,
    ) -> Result<Option<AdminOutcome>, StorageError> {
        let installed = matches!(
            &input,
            Input::Message(Envelope {
                msg: Message::InstallSnapshot { .. },
                ..
            })
        );
        // The storage writes one snapshot file at a time, in order.
        if installed && self.writing.is_some() {
            self.finish_snapshot()?;
        }
        let compaction = matches!(input, Input::Compact);
        let copy = self.recorder.is_some().then(|| input.clone());
        let r = self.driver.step(input);
        if let Some(input) = copy {
            self.record(input, &r);
        }
        if compaction {
            // Written off the loop (see `finish_snapshot`): encoding and writing a large state
            // would stall every client for as long.
            self.compacted = self.storage.stage_deferring(&r, self.driver.core())?;
            msgs.extend(r.messages);
            replies.extend(r.replies);
            return Ok(None);
        }
        let admin = r.admin.clone();
        let snapshot = r.snapshot;
        let start = snapshot.map(|_| Instant::now());
        self.stage(r, msgs, replies)?;
        if let (Some(index), Some(start)) = (snapshot, start) {
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let m = &self.metrics;
            m.inc(&m.snapshots);
            m.set(&m.snapshot_index, index);
            let bytes = self.storage.last_snapshot_bytes();
            if installed {
                m.inc(&m.snapshots_installed);
                info!(
                    index,
                    bytes,
                    write_ms = ms,
                    "snapshot installed from the leader"
                );
            } else {
                info!(index, bytes, write_ms = ms, "log compacted into a snapshot");
            }
        }
        Ok(admin)
    }

    /// Wait for the compaction snapshot being written, then let the log forget what it covers.
    fn finish_snapshot(&mut self) -> Result<(), StorageError> {
        let Some((thread, start)) = self.writing.take() else {
            return Ok(());
        };
        let written = thread
            .join()
            .map_err(|_| StorageError::Failed("the snapshot thread panicked".into()))??;
        self.storage.snapshot_written(written)?;
        let m = &self.metrics;
        m.inc(&m.snapshots);
        m.set(&m.snapshot_index, written.index);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        info!(
            index = written.index,
            bytes = written.bytes,
            write_ms = ms,
            "log compacted into a snapshot (written off the node loop)"
        );
        Ok(())
    }

    fn record(&mut self, input: Input, ready: &Ready) {
        if let Some(rec) = self.recorder.as_mut() {
            if let Err(e) = rec.step(input, ready, self.driver.core()) {
                warn!(error = %e, "recording failed; recording stops");
                self.recorder = None;
            }
        }
    }

    fn stage(
        &mut self,
        ready: Ready,
        msgs: &mut Vec<Envelope>,
        replies: &mut Vec<ClientReply>,
    ) -> Result<(), StorageError> {
        match &self.received {
            Some((file, index)) => {
                (self.storage).stage_received(&ready, self.driver.core(), file, *index)?
            }
            None => self.storage.stage(&ready, self.driver.core())?,
        }
        let core = self.driver.core();
        if core.membership().voters.iter().eq([&core.id()]) {
            self.alone_in_batch = true;
        }
        msgs.extend(ready.messages);
        replies.extend(ready.replies);
        Ok(())
    }

    /// An operator's transfer: sent at once if the target holds the whole log, else new writes
    /// wait while it catches up (see [`Transfer`]).
    fn start_transfer(
        &mut self,
        to: NodeId,
        tx: oneshot::Sender<AdminAnswer>,
        msgs: &mut Vec<Envelope>,
        replies: &mut Vec<ClientReply>,
    ) -> Result<(), StorageError> {
        if self.transfer.is_some() {
            let _ = tx.send(AdminAnswer::Outcome(AdminOutcome::Busy(Busy::TargetBehind)));
            return Ok(());
        }
        let max_election = 2 * self.cfg.election_ticks * self.cfg.tick_ms;
        self.transfer = Some(Transfer {
            to,
            until: Instant::now() + Duration::from_millis(max_election),
            tx: Some(tx),
            held: Vec::new(),
        });
        info!(to, "leadership transfer: new writes wait until it is done");
        self.drive_transfer(msgs, replies)
    }

    /// Asks the core to send `TimeoutNow` until it does, then holds writes until this node no
    /// longer leads; either way for one election timeout at most, after which the held writes
    /// are stepped (answered `NotLeader` by a node that stepped down).
    fn drive_transfer(
        &mut self,
        msgs: &mut Vec<Envelope>,
        replies: &mut Vec<ClientReply>,
    ) -> Result<(), StorageError> {
        let Some(t) = self.transfer.as_mut() else {
            return Ok(());
        };
        let (to, pending) = (t.to, t.tx.is_some());
        let mut outcome = None;
        if pending && self.driver.core().is_leader() && Instant::now() < t.until {
            outcome = self.step_input(Input::Admin(AdminOp::TransferLeader(to)), msgs, replies)?;
            if outcome == Some(AdminOutcome::Busy(Busy::TargetBehind)) {
                return Ok(());
            }
        }
        let Some(t) = self.transfer.as_mut() else {
            return Ok(());
        };
        let mut refused = false;
        if let Some(o) = outcome {
            refused = !matches!(o, AdminOutcome::Accepted { .. });
            if let Some(tx) = t.tx.take() {
                info!(to, ?o, "leadership transfer");
                let _ = tx.send(AdminAnswer::Outcome(o));
            }
        }
        let leading = self.driver.core().is_leader();
        if leading && !refused && t.tx.is_none() && Instant::now() < t.until {
            return Ok(());
        }
        // Done: this node stepped down, the operation was refused, or the time is up.
        let t = self.transfer.take().expect("checked above");
        if let Some(tx) = t.tx {
            let o = if leading {
                AdminOutcome::Busy(Busy::TargetBehind)
            } else {
                AdminOutcome::NotLeader {
                    hint: self.driver.core().leader_id(),
                }
            };
            let _ = tx.send(AdminAnswer::Outcome(o));
        }
        info!(
            to,
            held = t.held.len(),
            leading,
            "leadership transfer over; held writes resume"
        );
        for input in t.held {
            self.handle(input, msgs, replies)?;
        }
        Ok(())
    }

    /// Answers the operators whose change committed, or whose change this node can no longer
    /// see through (it stopped leading, or the entry was replaced).
    fn answer_admin_waiters(&mut self) {
        let core = self.driver.core();
        let (leading, commit) = (core.is_leader(), core.commit_index());
        let mut waiting = Vec::new();
        for (index, term, tx) in std::mem::take(&mut self.admin_waiters) {
            let ours = core.log().term_at(index) == Some(term);
            if ours && index <= commit {
                let membership = core.committed_membership().clone();
                info!(index, %membership, "membership change committed");
                let _ = tx.send(AdminAnswer::Committed { index, membership });
            } else if !ours || !leading || core.current_term() != term {
                let _ = tx.send(AdminAnswer::Unknown { index });
            } else {
                waiting.push((index, term, tx));
            }
        }
        self.admin_waiters = waiting;
    }

    fn route(&mut self, reply: ClientReply) {
        let (map, key) = match &reply {
            ClientReply::Response(r) => (&mut self.writes, (r.client_id, r.seq)),
            ClientReply::ReadNotLeader {
                client_id, read_id, ..
            } => (&mut self.reads, (*client_id, *read_id)),
            ClientReply::NotLeader { client_id, seq, .. } => (&mut self.writes, (*client_id, *seq)),
            ClientReply::Read {
                client_id, read_id, ..
            } => (&mut self.reads, (*client_id, *read_id)),
            ClientReply::Registered { nonce, .. } => (&mut self.writes, (NO_SESSION, *nonce)),
            ClientReply::Stale { client_id, seq, .. } => (&mut self.writes, (*client_id, *seq)),
        };
        if let Some(waiters) = map.remove(&key) {
            for w in waiters {
                let _ = w.send(reply.clone());
            }
        }
    }

    fn publish(&mut self) {
        let core = self.driver.core();
        let m = &self.metrics;
        m.set(&m.term, core.current_term());
        m.set(
            &m.role,
            match core.role() {
                Role::Follower => 0,
                Role::PreCandidate => 1,
                Role::Candidate => 2,
                Role::Leader => 3,
            },
        );
        m.set(&m.commit_index, core.commit_index());
        m.set(&m.applied_index, core.last_applied());
        m.set(&m.last_log_index, core.log().last_index());
        m.set(&m.sessions, core.sessions().len() as u64);
        let role = core.role();
        if role != self.role {
            m.inc(&m.role_changes);
            if self.role == Role::Leader {
                m.inc(&m.step_downs);
                warn!(term = core.current_term(), now = ?role, "stepped down: no longer leader");
            } else {
                info!(term = core.current_term(), from = ?self.role, to = ?role, "role changed");
            }
            self.role = role;
        }
        if core.leader_id().is_some() && core.leader_id() != self.known_leader {
            self.known_leader = core.leader_id();
            m.inc(&m.leader_changes);
            info!(leader = ?core.leader_id(), term = core.current_term(), "leader known");
        }
        let now = Instant::now();
        let leading = core.is_leader().then(|| core.current_term());
        let transfers = self.transfers.active();
        let progress = core.progress().iter().map(|(id, p)| {
            let o = Observed {
                next_index: p.next_index,
                match_index: p.match_index,
                snapshot_bytes: (transfers.iter())
                    .find(|t| t.peer == *id)
                    .map_or(0, |t| t.bytes_sent),
            };
            (*id, o)
        });
        let last_index = core.log().last_index();
        for change in self.followers.observe(now, leading, last_index, progress) {
            match change {
                Transition::Stuck(f) => warn!(
                    peer = f.id,
                    match_index = f.match_index,
                    lag = f.lag,
                    since_progress_ms = f.since_progress_ms,
                    "follower stuck: behind and not catching up"
                ),
                Transition::Recovered(f) => info!(
                    peer = f.id,
                    match_index = f.match_index,
                    lag = f.lag,
                    "follower progressing again"
                ),
            }
        }
        let followers = self.followers.report(now);
        m.set_followers(followers.clone());
        let status = Status {
            id: core.id(),
            cluster_id: self.cfg.cluster_id.clone(),
            role: format!("{:?}", core.role()),
            term: core.current_term(),
            voted_for: core.voted_for(),
            leader: core.leader_id(),
            leader_http: core
                .leader_id()
                .and_then(|l| self.cfg.http_of(l))
                .map(|a| a.to_string()),
            commit_index: core.commit_index(),
            last_applied: core.last_applied(),
            last_log_index: core.log().last_index(),
            members: self.cfg.members(),
            voters: core.membership().voters.iter().copied().collect(),
            learners: core.membership().learners.iter().copied().collect(),
            membership_committed: core.membership() == core.committed_membership(),
            snapshot_index: self.storage.snapshot_index(),
            sessions: core.sessions().len() as u64,
            open_files_limit: m
                .open_files_limit
                .load(std::sync::atomic::Ordering::Relaxed),
            max_http_connections: m
                .http_connections_max
                .load(std::sync::atomic::Ordering::Relaxed),
            snapshot_transfers: transfers,
            followers,
        };
        *self.status.write().unwrap() = status;
    }
}

/// `tx` waits for the reply to the request `key`; `route` answers every waiter of a key.
fn wait(waiters: &mut Waiters, key: (ClientId, u64), tx: oneshot::Sender<ClientReply>) {
    waiters.entry(key).or_default().push(tx);
}

/// Everything queued, up to [`MAX_BATCH`], waiting for the first; `None` once every sender is
/// gone.
fn next_batch(rx: &mut mpsc::Receiver<NodeInput>) -> Option<Vec<NodeInput>> {
    let mut batch = vec![rx.blocking_recv()?];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(x) => batch.push(x),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The snapshot policy: compact once `every` applied entries are not covered by the snapshot
/// (0: never). A leader also waits until every follower has all it applied, for up to half
/// as many entries again: a snapshot covers everything applied, so compacting while a follower
/// is one round trip behind would send it the whole state (InstallSnapshot) instead of its next
/// append. A follower that is further behind than that gets the snapshot.
fn compaction_due(core: &RaftCore, every: u64) -> bool {
    let uncovered = core.last_applied() - core.log().snapshot_index();
    if every == 0 || uncovered < every {
        return false;
    }
    let applied = core.last_applied();
    let followers_have_it = (core.progress().values()).all(|p| p.match_index >= applied);
    !core.is_leader() || followers_have_it || uncovered >= every + every / 2
}

/// The core parameters the runtime uses by default: the core's defaults with the node's
/// default pipeline depth ([`DEFAULT_MAX_INFLIGHT_APPENDS`]). `raft-model check --config
/// runtime` checks exactly these (a conformance test compares them field by field). A node
/// sets `max_sessions` and the pipeline depth from its configuration ([`params_of`]).
pub fn runtime_params() -> Params {
    Params {
        max_inflight_appends: pipeline(DEFAULT_MAX_INFLIGHT_APPENDS),
        ..Params::default()
    }
}

/// [`runtime_params`] with the node's configured session bound and pipeline depth.
pub fn params_of(cfg: &Config) -> Params {
    Params {
        max_sessions: Some(cfg.max_sessions),
        max_inflight_appends: pipeline(cfg.max_inflight_appends),
        ..runtime_params()
    }
}

/// The configuration's pipeline depth as the core's parameter (0: off).
fn pipeline(depth: usize) -> Option<usize> {
    (depth > 0).then_some(depth)
}

/// Run a node until `shutdown` resolves (or storage fails). Returns an error message for
/// anything that prevents starting (bad data directory, corrupt log, ports in use).
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    cfg.validate()?;
    let files = limits::raise_open_files();
    let max_http = config::max_http_connections_for(files.soft, cfg.max_http_connections);
    if cfg.max_http_connections.is_some_and(|m| m > max_http) {
        warn!(
            configured = cfg.max_http_connections,
            max_http_connections = max_http,
            open_files = files.soft,
            "max_http_connections lowered to fit the open-file limit"
        );
    }
    info!(
        soft = files.soft,
        hard = files.hard,
        was = files.was,
        max_http_connections = max_http,
        storage_reserve = config::FD_RESERVE,
        "open-file limit"
    );
    let meta =
        identity::require(&cfg.data_dir, &cfg.cluster_id, cfg.id).map_err(|e| e.to_string())?;
    let book =
        Arc::new(PeerBook::load(&cfg.data_dir, meta.incarnation).map_err(|e| e.to_string())?);
    let replaced = book.replaced();
    let auth = Arc::new(PeerAuth::new(&cfg.cluster_id, cfg.load_peer_secret()?).with_book(book));
    let cfg = Arc::new(cfg);
    let (storage, core) = recover(&cfg)?;
    let peer_listener = TcpListener::bind(cfg.peer_addr)
        .await
        .map_err(|e| format!("cannot listen for peers on {}: {e}", cfg.peer_addr))?;
    let http_listener = TcpListener::bind(cfg.http_addr)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}", cfg.http_addr))?;
    let recorder = match &cfg.record {
        Some(path) => Some(
            Recorder::open(path, &core, cfg.record_checkpoint_ratio)
                .map_err(|e| format!("cannot record to {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let timing = Timing {
        election_ticks: cfg.election_ticks,
        heartbeat_ticks: cfg.heartbeat_ticks,
    };
    let driver = Driver::new(core, timing, rand::random());
    let metrics = Arc::new(Metrics::default());
    metrics.set(&metrics.snapshot_index, storage.snapshot_index());
    metrics.set(&metrics.slow_fsync_ns, cfg.slow_fsync_ms * 1_000_000);
    metrics.set(&metrics.open_files_limit, files.soft);
    metrics.set(&metrics.http_connections_max, max_http as u64);
    let status = Arc::new(RwLock::new(Status::default()));
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let peers: Vec<_> = cfg.peers.iter().map(|p| (p.id, p.peer_addr)).collect();
    // Twice the longest election timeout: ample for the acknowledgement of an installed
    // snapshot to reach the leader.
    let resend_after = Duration::from_millis(4 * cfg.election_ticks * cfg.tick_ms);
    let snapshots = SnapshotOptions {
        chunk_bytes: cfg.snapshot_chunk_bytes,
        resend_after,
    };
    let timing = PeerTiming::from_election_timeout(Duration::from_millis(
        2 * cfg.election_ticks * cfg.tick_ms,
    ));
    let transport = Transport::start_with_auth(
        auth.clone(),
        cfg.id,
        &peers,
        cfg.peer_queue,
        timing,
        snapshots,
        metrics.clone(),
    );
    let transfers = transport.transfers();
    let incoming = prepare_incoming(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot prepare {}: {e}",
            cfg.data_dir.join(snapshot_transfer::INCOMING).display()
        )
    })?;
    tokio::spawn(transport::listen_with_auth(
        peer_listener,
        auth,
        cfg.id,
        cfg.peers.iter().map(|p| p.id).collect(),
        timing.silence,
        Some(incoming),
        tx.clone(),
        metrics.clone(),
    ));
    spawn_ticker(tx.clone(), Duration::from_millis(cfg.tick_ms));
    let outgoing = if cfg.peers.is_empty() {
        Outgoing::AfterCommit(transport)
    } else {
        Outgoing::Staged(Outbound::start(transport, metrics.clone()))
    };
    let alone_in_batch = {
        let core = driver.core();
        core.membership().voters.iter().eq([&core.id()])
    };
    let node = NodeLoop {
        alone_in_batch,
        transfer: None,
        admin_waiters: Vec::new(),
        driver,
        storage,
        outgoing,
        writes: HashMap::new(),
        reads: HashMap::new(),
        status: status.clone(),
        metrics: metrics.clone(),
        cfg: cfg.clone(),
        known_leader: None,
        role: Role::Follower,
        recorder,
        compacted: None,
        writing: None,
        transfers,
        received: None,
        followers: FollowerTracker::new(cfg.follower_stuck_after()),
        lost_log: LostLogPacer::new(Duration::from_millis(cfg.heartbeat_ticks * cfg.tick_ms)),
    };
    let node_loop = tokio::task::spawn_blocking(move || node.run(rx));
    let api = Arc::new(Api::new(
        tx.clone(),
        status,
        metrics.clone(),
        Duration::from_millis(cfg.request_timeout_ms),
        cfg.clone(),
    ));
    let http_limits = limits::HttpLimits {
        max_connections: max_http,
        header_timeout: Duration::from_millis(cfg.http_header_timeout_ms),
    };
    let http = serve_http(http_listener, api, http_limits, metrics.clone());
    info!(
        id = cfg.id,
        peer = %cfg.peer_addr,
        http = %cfg.http_addr,
        "serving"
    );
    run_until_stopped(shutdown, replaced, node_loop, http, tx).await
}

/// Opens the data directory (truncating a torn tail, refusing anything else damaged) and
/// rebuilds the core from what is durable.
fn recover(cfg: &Config) -> Result<(Storage, RaftCore), String> {
    let wal_opts = WalOptions {
        segment_bytes: cfg.wal_segment_bytes,
        faults: None,
    };
    let (storage, rec) = Storage::open_with(&cfg.data_dir, &cfg.cluster_id, cfg.id, wal_opts)
        .map_err(|e| e.to_string())?;
    if let Some(t) = &rec.torn_tail {
        warn!(
            file = %t.path.display(),
            offset = t.offset,
            dropped_bytes = t.dropped,
            reason = %t.reason,
            "torn log tail truncated"
        );
    }
    info!(
        id = cfg.id,
        data = %cfg.data_dir.display(),
        term = rec.hard_state.current_term,
        voted_for = ?rec.hard_state.voted_for,
        snapshot_index = rec.snapshot.last_included_index,
        last_index = rec.log.last_index(),
        "recovered"
    );
    // The configuration the cluster started with, as recorded at `init` (see
    // `identity::Meta::initial_voters`), not as the configuration file lists peers now.
    let initial = match &rec.meta.initial_voters {
        Some(voters) => Membership::voters(voters.iter().copied()),
        None => Membership::voters(cfg.members()),
    };
    let core = RaftCore::restore(
        cfg.id,
        initial,
        params_of(cfg),
        rec.hard_state,
        rec.snapshot,
        rec.log,
    );
    Ok((storage, core))
}

/// One `Tick` per `tick` into the node loop. A tick the full queue cannot take is skipped, not
/// queued: a late tick only delays a timeout, and a backlog of them would fire several at once.
fn spawn_ticker(ticker: mpsc::Sender<NodeInput>, tick: Duration) {
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            iv.tick().await;
            if ticker.is_closed() {
                return;
            }
            let _ = ticker.try_send(NodeInput::Tick);
        }
    });
}

/// The HTTP API, until `stop` is set.
struct HttpServer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn serve_http(
    listener: TcpListener,
    api: Arc<Api>,
    limits: limits::HttpLimits,
    metrics: Arc<Metrics>,
) -> HttpServer {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(limits::serve(
        listener,
        http::router(api),
        limits,
        metrics,
        stopped,
    ));
    HttpServer { stop, task }
}

/// Serves until `shutdown` resolves (then HTTP stops first, so no request is taken that the
/// loop would not answer, and the loop drains) or the loop ends on its own (a storage failure).
async fn run_until_stopped(
    shutdown: impl Future<Output = ()>,
    replaced: impl Future<Output = String>,
    mut node_loop: tokio::task::JoinHandle<Result<(), StorageError>>,
    http: HttpServer,
    tx: mpsc::Sender<NodeInput>,
) -> Result<(), String> {
    tokio::select! {
        _ = shutdown => {
            info!("shutdown requested");
            let _ = http.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), http.task).await;
            let _ = tx.send(NodeInput::Shutdown).await;
            match node_loop.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("storage failure: {e}")),
                Err(e) => Err(format!("node loop panicked: {e}")),
            }
        }
        r = &mut node_loop => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("storage failure, stopping: {e}")),
            Err(e) => Err(format!("node loop panicked: {e}")),
        },
        reason = replaced => {
            let _ = http.stop.send(true);
            let _ = tx.send(NodeInput::Shutdown).await;
            let _ = node_loop.await;
            Err(format!("this node was replaced, stopping: {reason}"))
        }
    }
}

/// A node running on its own thread and tokio runtime (for embedding and in-process tests).
pub struct NodeHandle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl NodeHandle {
    /// Start a node; it runs until [`NodeHandle::stop`] (or drop).
    pub fn spawn(cfg: Config) -> NodeHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(run(cfg, async {
                let _ = stopped.await;
            }))
        });
        NodeHandle {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Shut the node down gracefully and wait for it.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "node thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{ClientRequest, Command, Entry, Op};

    fn append(to: NodeId, term: u64, n: u64, commit: u64) -> Envelope {
        let entries = (1..=n)
            .map(|k| Entry {
                term,
                command: Command::Client {
                    client_id: 9,
                    seq: k,
                    op: Op::Delete {
                        key: k.to_string().into(),
                    },
                },
            })
            .collect();
        Envelope {
            from: 1,
            to,
            msg: Message::AppendEntries {
                term,
                leader: 1,
                prev_log_index: 0,
                prev_log_term: 0,
                entries,
                leader_commit: commit,
            },
        }
    }

    fn ack(term: u64, success: bool, last_index: u64) -> Envelope {
        Envelope {
            from: 2,
            to: 1,
            msg: Message::AppendEntriesResponse {
                term,
                success,
                last_index,
            },
        }
    }

    /// Leader 1 of {1, 2, 3} in term 1, with `n` commands applied; follower 2 has all of
    /// them, follower 3 has `lagging`.
    fn leader_with_followers(n: u64, lagging: u64) -> RaftCore {
        let mut core = RaftCore::new(1, &[1, 2, 3], runtime_params());
        let vote = |pre_vote| Envelope {
            from: 2,
            to: 1,
            msg: Message::RequestVoteResponse {
                term: 1,
                granted: true,
                pre_vote,
            },
        };
        core.step(Input::ElectionTimeout);
        core.step(Input::Message(vote(true)));
        core.step(Input::Message(vote(false)));
        assert!(core.is_leader());
        for seq in 1..=n {
            core.step(Input::client(ClientRequest {
                client_id: NO_SESSION,
                seq,
                op: Op::Delete { key: "k".into() },
            }));
        }
        let last = core.log().last_index();
        core.step(Input::Message(ack(1, true, last)));
        let mut from_3 = ack(1, true, lagging);
        from_3.from = 3;
        core.step(Input::Message(from_3));
        assert_eq!(core.last_applied(), last);
        core
    }

    #[test]
    fn a_leader_compacts_when_its_followers_have_everything_or_one_is_far_behind() {
        // 10 commands and the new leader's no-op: 11 entries applied.
        let caught_up = leader_with_followers(10, 11);
        assert!(compaction_due(&caught_up, 10));
        assert!(!compaction_due(&caught_up, 12), "not due yet");
        assert!(!compaction_due(&caught_up, 0), "0: never");
        let behind = leader_with_followers(10, 9);
        assert!(
            !compaction_due(&behind, 10),
            "follower 3 would need the whole state"
        );
        assert!(
            compaction_due(&behind, 7),
            "11 >= 7 + 3: it gets the snapshot"
        );
        // A follower compacts when due, whatever the others have.
        let mut follower = RaftCore::new(2, &[1, 2, 3], runtime_params());
        follower.step(Input::Message(append(2, 1, 3, 3)));
        assert_eq!(follower.last_applied(), 3);
        assert!(compaction_due(&follower, 3));
    }

    #[test]
    fn coalesce_keeps_the_last_append_and_the_best_ack_of_each_term() {
        let vote = Envelope {
            from: 1,
            to: 3,
            msg: Message::RequestVoteResponse {
                term: 2,
                granted: true,
                pre_vote: false,
            },
        };
        let batch = vec![
            append(2, 1, 1, 0),
            ack(1, true, 5),
            append(3, 1, 1, 0),
            append(2, 1, 2, 1),
            ack(1, false, 3),
            vote.clone(),
            ack(1, true, 7),
            ack(1, true, 6),
            append(2, 2, 1, 1),
            ack(2, true, 1),
        ];
        let kept = coalesce(batch.clone());
        let expected = vec![
            batch[2].clone(),
            batch[3].clone(),
            batch[4].clone(),
            vote,
            batch[6].clone(),
            batch[8].clone(),
            batch[9].clone(),
        ];
        assert_eq!(kept, expected);
        assert_eq!(coalesce(vec![batch[0].clone()]), vec![batch[0].clone()]);
    }

    /// Leader 1's append to 2 in term 1 of the entries `prev + 1 ..= prev + n`; entry `i`
    /// is the delete of key `i`, so a merge that loses or repeats one shows.
    fn append_after(prev: u64, n: u64, commit: u64) -> Envelope {
        let delete = |i: u64| Entry {
            term: 1,
            command: Command::Client {
                client_id: 9,
                seq: i,
                op: Op::Delete {
                    key: i.to_string().into(),
                },
            },
        };
        Envelope {
            from: 1,
            to: 2,
            msg: Message::AppendEntries {
                term: 1,
                leader: 1,
                prev_log_index: prev,
                prev_log_term: 1,
                entries: (prev + 1..=prev + n).map(delete).collect(),
                leader_commit: commit,
            },
        }
    }

    #[test]
    fn coalesce_merges_pipelined_appends_end_to_end_and_keeps_gaps() {
        let batch = vec![
            append_after(2, 1, 1),
            append_after(3, 1, 1),
            append_after(4, 2, 2),
            // A heartbeat at match_index 2 (the pipeline full): inside the range, merged.
            append_after(2, 0, 2),
            // After a gap: entries 7 and 8 are missing, so it stays on its own.
            append_after(8, 1, 2),
        ];
        let kept = coalesce(batch.clone());
        assert_eq!(kept, vec![append_after(2, 4, 2), batch[4].clone()]);
        // A heartbeat before the range that does not reach it is not merged either.
        let apart = vec![append_after(0, 0, 0), append_after(3, 1, 0)];
        assert_eq!(coalesce(apart.clone()), apart);
    }
}
