//! The sync stage of a node with peers: what leaves the node after each batch's fsync.
//!
//! The node loop writes a batch's log records to the file, hands the batch to this stage and
//! goes on with the next batch at once. The stage takes every batch queued, makes them durable
//! with one fsync ([`LogSync`]), and only then sends their messages, batch by batch, in order.
//! So the fsync of one batch overlaps the core's work on the next, and the rule of the
//! synchronous loop still holds: no message leaves before everything staged with it (and
//! before it) is durable. After a failed fsync the stage sends nothing more; the storage then
//! refuses every call, which stops the node loop.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::error;

use super::metrics::Metrics;
use super::storage::LogSync;
use super::transport::Transport;
use std::collections::HashMap;

use raft_core::{Envelope, Message, NodeId};

/// One batch for the stage: its log fsync (none when it wrote nothing) and its messages.
struct Batch {
    sync: Option<LogSync>,
    msgs: Vec<Envelope>,
}

/// The handle the node loop keeps.
pub(crate) struct Outbound {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl Outbound {
    /// Start the stage's thread; it owns the transport from now on.
    pub(crate) fn start(transport: Transport, metrics: Arc<Metrics>) -> Outbound {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-sync".into())
            .spawn(move || run(rx, transport, metrics))
            .expect("spawn the sync thread");
        Outbound {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Queue a batch: `msgs` leave once `sync` (and every earlier batch's) is done.
    pub(crate) fn send_after(&self, sync: Option<LogSync>, msgs: Vec<Envelope>) {
        if sync.is_none() && msgs.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            // The stage is gone only after a failed fsync; the storage reports that failure.
            let _ = tx.send(Batch { sync, msgs });
        }
    }

    /// Let the stage finish what is queued (fsync and send), then stop it.
    pub(crate) fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(rx: mpsc::Receiver<Batch>, transport: Transport, metrics: Arc<Metrics>) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        batches.extend(rx.try_iter());
        let sync = (batches.iter_mut())
            .filter_map(|b| b.sync.take())
            .reduce(LogSync::merge);
        if let Some(sync) = sync {
            match sync.sync() {
                Ok(took) => metrics.observe_fsync(took),
                Err(e) => {
                    error!(error = %e, "log fsync failed; nothing more leaves this node");
                    return;
                }
            }
        }
        for b in batches {
            for m in coalesce(b.msgs) {
                transport.send(m);
            }
        }
    }
}

/// Drop or merge the messages of a batch that later messages of the same batch supersede.
///
/// Appends: within one term a leader's log only grows (and its commit index too), so two
/// AppendEntries of one term to one follower agree on every index both carry. Two whose index
/// ranges `prev_log_index..=last` overlap or touch are merged into one covering both, at the
/// later one's position. With pipelining off a batch of K proposals makes K appends per
/// follower from the same `next_index`, each holding the entries of the one before plus one:
/// the merge is the last of them. With pipelining on it makes K appends of one entry each,
/// end to end: the merge is one append of K entries, acknowledged by one answer that retires
/// all K from the leader's pipeline. Answers: the success with the highest `last_index` says
/// everything the other successes of its term say. Dropping a message is always safe in Raft
/// (the network may lose any message), and the merged append is one the leader could have
/// sent; the survivors keep their order.
pub(crate) fn coalesce(msgs: Vec<Envelope>) -> Vec<Envelope> {
    if msgs.len() < 2 {
        return msgs;
    }
    let mut slots: Vec<Option<Envelope>> = msgs.into_iter().map(Some).collect();
    // (to, term) -> position of the latest append, which earlier ones may have merged into.
    let mut last_append: HashMap<(NodeId, u64), usize> = HashMap::new();
    let mut best_ack: HashMap<(NodeId, u64), (u64, usize)> = HashMap::new();
    for i in 0..slots.len() {
        let Some(m) = &slots[i] else { continue };
        match &m.msg {
            Message::AppendEntries { term, .. } => {
                let key = (m.to, *term);
                if let Some(&j) = last_append.get(&key) {
                    if let Some(merged) = merge_appends(&slots[j], &slots[i]) {
                        slots[j] = None;
                        slots[i] = Some(merged);
                    }
                }
                last_append.insert(key, i);
            }
            Message::AppendEntriesResponse {
                term,
                success: true,
                last_index,
            } => {
                let e = best_ack.entry((m.to, *term)).or_insert((*last_index, i));
                if *last_index >= e.0 {
                    *e = (*last_index, i);
                }
            }
            _ => {}
        }
    }
    (slots.into_iter().enumerate())
        .filter_map(|(i, m)| {
            let m = m?;
            let keep = match &m.msg {
                Message::AppendEntriesResponse {
                    term,
                    success: true,
                    ..
                } => best_ack[&(m.to, *term)].1 == i,
                _ => true,
            };
            keep.then_some(m)
        })
        .collect()
}

/// One AppendEntries carrying both `a` and the later `b` (same follower, same term), when
/// their ranges overlap or touch; `None` when entries between them are missing.
fn merge_appends(a: &Option<Envelope>, b: &Option<Envelope>) -> Option<Envelope> {
    let (Some(a), Some(b)) = (a, b) else {
        return None;
    };
    let range = |m: &Message| match m {
        Message::AppendEntries {
            prev_log_index,
            entries,
            ..
        } => Some((*prev_log_index, *prev_log_index + entries.len() as u64)),
        _ => None,
    };
    let ((a_prev, a_end), (b_prev, b_end)) = (range(&a.msg)?, range(&b.msg)?);
    if a_prev > b_end || b_prev > a_end {
        return None;
    }
    let (lo, hi) = if a_prev <= b_prev { (a, b) } else { (b, a) };
    let (
        Message::AppendEntries {
            term,
            leader,
            prev_log_index,
            prev_log_term,
            entries: lo_entries,
            leader_commit: lo_commit,
        },
        Message::AppendEntries {
            prev_log_index: hi_prev,
            entries: hi_entries,
            leader_commit: hi_commit,
            ..
        },
    ) = (&lo.msg, &hi.msg)
    else {
        return None;
    };
    let lo_end = prev_log_index + lo_entries.len() as u64;
    let mut entries = lo_entries.clone();
    let skip = (lo_end - hi_prev) as usize;
    entries.extend(hi_entries.iter().skip(skip).cloned());
    Some(Envelope {
        from: b.from,
        to: b.to,
        msg: Message::AppendEntries {
            term: *term,
            leader: *leader,
            prev_log_index: *prev_log_index,
            prev_log_term: *prev_log_term,
            entries,
            leader_commit: (*lo_commit).max(*hi_commit),
        },
    })
}
