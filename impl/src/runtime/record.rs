//! Opt-in recording of a node's core steps as JSON lines ([`Record`], one per line), for
//! `raft-conformance validate`.
//!
//! Line kinds: `{"start":{"node":ID,"after":CORE}}` when the node starts (from its durable
//! state), then one `{"step":{"node":ID,"input":INPUT,"messages":[..],"replies":[..],
//! "after":CORE}}` per core step, `after` being the full core state after it. The lines of a
//! batch are written after the batch was made durable, so a recording never shows a state that
//! did not survive; a `kill -9` may lose the last batch's lines (the next `start` line begins a
//! new chain).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use raft_core::record::Record;
use raft_core::{Input, RaftCore, Ready};

/// Appends records to a file.
pub struct Recorder {
    out: BufWriter<File>,
}

impl Recorder {
    /// Open `path` for appending and record the start state.
    pub fn open(path: &Path, core: &RaftCore) -> std::io::Result<Recorder> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let mut r = Recorder {
            out: BufWriter::new(f),
        };
        r.write(&Record::Start {
            node: core.id(),
            after: core.clone(),
        })?;
        r.flush()?;
        Ok(r)
    }

    /// Record one step.
    pub fn step(&mut self, input: Input, ready: &Ready, core: &RaftCore) -> std::io::Result<()> {
        self.write(&Record::Step {
            node: core.id(),
            input,
            messages: ready.messages.clone(),
            replies: ready.replies.clone(),
            after: core.clone(),
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
