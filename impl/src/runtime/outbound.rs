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

/// Drop the messages of a batch that a later message of the same batch supersedes.
///
/// With pipelining off the core answers every proposal with an AppendEntries to each follower
/// from its `next_index`, so a batch of K proposals makes K appends per follower, each holding
/// the entries of the one before plus one; a follower answers each of them. Within one term
/// and one batch the last append to a follower carries everything the earlier ones carry (the
/// leader's log only grows within its term, and its commit index too), and the success
/// response with the highest `last_index` says everything the other successes say. Dropping
/// a message is always safe in Raft (the network may lose any message); the survivors keep
/// their order.
pub(crate) fn coalesce(msgs: Vec<Envelope>) -> Vec<Envelope> {
    if msgs.len() < 2 {
        return msgs;
    }
    // (to, term) -> position of the survivor.
    let mut last_append: HashMap<(NodeId, u64), usize> = HashMap::new();
    let mut best_ack: HashMap<(NodeId, u64), (u64, usize)> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        match &m.msg {
            Message::AppendEntries { term, .. } => {
                last_append.insert((m.to, *term), i);
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
    msgs.into_iter()
        .enumerate()
        .filter(|(i, m)| match &m.msg {
            Message::AppendEntries { term, .. } => last_append[&(m.to, *term)] == *i,
            Message::AppendEntriesResponse {
                term,
                success: true,
                ..
            } => best_ack[&(m.to, *term)].1 == *i,
            _ => true,
        })
        .map(|(_, m)| m)
        .collect()
}
