//! Opt-in recording of a node's core steps as JSON lines ([`Record`], one per line), for
//! `raft-conformance validate`.
//!
//! Line kinds: `{"start":{"node":ID,"after":CORE}}` when the node starts (from its durable
//! state), then one `{"step":{"node":ID,"input":INPUT,"messages":[..],"replies":[..]}}` per
//! core step. Every `record_checkpoint_every`-th step line of a start also carries
//! `"after":CORE`, the full core state after it (a checkpoint); the validator rebuilds the
//! states in between by stepping a copy of the core with the recorded inputs, and checks the
//! rebuilt state against each checkpoint. The lines of a batch are written out (not fsynced)
//! with the batch; a `kill -9` may lose the last batch's lines (the next `start` line begins a
//! new chain).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use raft_core::record::Record;
use raft_core::{Input, RaftCore, Ready};

/// Appends records to a file.
pub struct Recorder {
    out: BufWriter<File>,
    /// A checkpoint every this many steps.
    every: u64,
    /// Steps since the last checkpoint (or the start line).
    since: u64,
}

impl Recorder {
    /// Open `path` for appending and record the start state; every `checkpoint_every`-th step
    /// (at least 1) records the state after it too.
    pub fn open(path: &Path, core: &RaftCore, checkpoint_every: u64) -> std::io::Result<Recorder> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let mut r = Recorder {
            out: BufWriter::new(f),
            every: checkpoint_every.max(1),
            since: 0,
        };
        r.write(&Record::Start {
            node: core.id(),
            after: core.clone(),
        })?;
        r.flush()?;
        Ok(r)
    }

    /// Record one step; `core` is the state after it.
    pub fn step(&mut self, input: Input, ready: &Ready, core: &RaftCore) -> std::io::Result<()> {
        self.since += 1;
        let checkpoint = self.since >= self.every;
        if checkpoint {
            self.since = 0;
        }
        self.write(&Record::Step {
            node: core.id(),
            input,
            messages: ready.messages.clone(),
            replies: ready.replies.clone(),
            after: checkpoint.then(|| core.clone()),
        })
    }

    fn write(&mut self, r: &Record) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")
    }

    /// Write out buffered lines.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
