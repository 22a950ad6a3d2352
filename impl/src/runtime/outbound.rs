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
use super::server::coalesce;
use super::storage::LogSync;
use super::transport::Transport;
use raft_core::Envelope;

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
