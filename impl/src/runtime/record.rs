//! Opt-in recording of a node's core steps as JSON lines ([`Record`], one per line), for
//! `raft-conformance validate`.
//!
//! Line kinds: `{"start":{"node":ID,"after":CORE}}` when the node starts (from its durable
//! state), then one `{"step":{"node":ID,"input":INPUT,"messages":[..],"replies":[..]}}` per
//! core step. Now and then a step line also carries `"after":CORE`, the full core state after
//! it (a checkpoint); the validator rebuilds the states in between by stepping a copy of the
//! core with the recorded inputs, and checks the rebuilt state against each checkpoint.
//!
//! When: a step line carries the state once the step lines without one add up to `ratio`
//! times the lines with one, counting the next as large as the last (`record_checkpoint_ratio`
//! in the configuration; 0: every step), all since the start line. A fixed number of steps
//! would not bound the file: the state grows with the log (up to `snapshot_entries` entries),
//! and at full speed a checkpoint every 1000 steps made 95 % of a leader's recording (14 MB
//! states). Against its own budget, the states stay within `1 / ratio` of the step lines plus
//! the last state's growth, however large the state, and come often while it is small.
//!
//! The lines of a batch are written out (not fsynced) before the batch's fsync; a `kill -9` may
//! lose the last batch's lines (the next `start` line begins a new chain).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use raft_core::record::Record;
use raft_core::{Input, RaftCore, Ready};

/// Appends records to a file.
pub struct Recorder {
    out: Counted<BufWriter<File>>,
    /// A checkpoint once `steps` reaches this many times `states + last`.
    ratio: u64,
    /// Bytes of the lines with a state (the start line's included), of the last of them, and
    /// of the step lines without one.
    states: u64,
    last: u64,
    steps: u64,
}

impl Recorder {
    /// Open `path` for appending and record the start state; a step line carries the state
    /// after it while that keeps the lines with a state within `1 / checkpoint_ratio` of the
    /// others (see the module docs; 0: on every step).
    pub fn open(path: &Path, core: &RaftCore, checkpoint_ratio: u64) -> std::io::Result<Recorder> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let mut r = Recorder {
            out: Counted {
                inner: BufWriter::new(f),
                bytes: 0,
            },
            ratio: checkpoint_ratio,
            states: 0,
            last: 0,
            steps: 0,
        };
        r.last = r.write(&Record::Start {
            node: core.id(),
            after: core.clone(),
        })?;
        r.states = r.last;
        r.flush()?;
        Ok(r)
    }

    /// Record one step; `core` is the state after it.
    pub fn step(&mut self, input: Input, ready: &Ready, core: &RaftCore) -> std::io::Result<()> {
        let checkpoint = self.steps >= self.ratio.saturating_mul(self.states + self.last);
        let bytes = self.write(&Record::Step {
            node: core.id(),
            input,
            messages: ready.messages.clone(),
            replies: ready.replies.clone(),
            after: checkpoint.then(|| core.clone()),
        })?;
        if checkpoint {
            (self.states, self.last) = (self.states + bytes, bytes);
        } else {
            self.steps += bytes;
        }
        Ok(())
    }

    /// Writes one line; its size in bytes.
    fn write(&mut self, r: &Record) -> std::io::Result<u64> {
        let before = self.out.bytes;
        serde_json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")?;
        Ok(self.out.bytes - before)
    }

    /// Write out buffered lines.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A writer that counts what goes through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
