//! A node's durable state: the log ([`Wal`]), the hard state (term, vote) and the identity of
//! the data directory (cluster id, node id).
//!
//! The hard state is one small file replaced atomically (write a temporary file, fsync it,
//! rename it over the old one, fsync the directory) and protected by a CRC32C. The node stages
//! every `Ready` of a batch (log records are written at once, so the entries are read from the
//! core before the next input) and then calls [`Storage::commit`]: the hard state if it changed,
//! then one fsync of the log. Only after `commit` returns are the batch's messages sent and its
//! clients answered.
//!
//! The hard state goes first so that, at every instant, the durable term is at least the term
//! of every durable log entry (a node only appends entries of its current term or older). That
//! makes a lost hard-state file detectable: a log holding entries of term `t` next to a missing
//! hard state, or one whose term is below `t`, refuses to start instead of letting the node vote
//! a second time in a term it already voted in.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::wal::{
    io_err, sync_dir, sync_file, write_file, DiskFaults, StorageError, TornTail, Wal, WalOptions,
};
use crate::core::{HardState, Log, NodeId, RaftCore, Ready};

const HARD_STATE: &str = "hard_state";
const META: &str = "meta.json";

/// The identity a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub cluster_id: String,
    pub node_id: NodeId,
}

/// Encode a hard state as `[crc32c: u32 LE][bincode(HardState)]`.
fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let body = bincode::serialize(hs).expect("hard state encodes");
    let mut out = crc32c::crc32c(&body).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn decode_hard_state(path: &Path, data: &[u8]) -> Result<HardState, StorageError> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.into(),
    };
    if data.len() < 4 {
        return Err(corrupt("hard state file too short"));
    }
    let crc = u32::from_le_bytes(data[..4].try_into().unwrap());
    if crc32c::crc32c(&data[4..]) != crc {
        return Err(corrupt("hard state checksum mismatch"));
    }
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(data.len() as u64)
        .deserialize(&data[4..])
        .map_err(|e| corrupt(&format!("undecodable hard state: {e}")))
}

/// Write `data` to `dir/name` atomically and durably.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    data: &[u8],
    faults: Option<&DiskFaults>,
) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        write_file(faults, &mut f, data).map_err(io_err(&tmp))?;
        sync_file(faults, &f).map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// What [`Storage::open`] recovered.
#[derive(Debug)]
pub struct Recovered {
    pub hard_state: HardState,
    pub log: Log,
    pub torn_tail: Option<TornTail>,
}

/// Timing of one [`Storage::commit`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CommitStats {
    /// Time spent writing and fsyncing (zero when there was nothing to persist).
    pub fsync: Option<Duration>,
}

/// The durable state of one node.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    wal: Wal,
    hard_state: HardState,
    staged_hard_state: Option<HardState>,
    log_dirty: bool,
    faults: Option<Arc<DiskFaults>>,
    /// Set by the first failed commit: nothing more is acknowledged until a restart.
    failed: Option<String>,
}

impl Storage {
    /// Open the data directory `dir` of node `node_id` in cluster `cluster_id`: check (or, for
    /// a new directory, write) its identity, then recover the hard state and the log.
    pub fn open(
        dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
    ) -> Result<(Storage, Recovered), StorageError> {
        Self::open_with(dir, cluster_id, node_id, WalOptions::default())
    }

    /// [`Storage::open`] with a custom log segment size.
    pub fn open_with_segment_bytes(
        dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
        segment_bytes: u64,
    ) -> Result<(Storage, Recovered), StorageError> {
        let opts = WalOptions {
            segment_bytes,
            faults: None,
        };
        Self::open_with(dir, cluster_id, node_id, opts)
    }

    /// [`Storage::open`] with log options (segment size, injected disk faults).
    pub fn open_with(
        dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
        opts: WalOptions,
    ) -> Result<(Storage, Recovered), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let want = Meta {
            cluster_id: cluster_id.to_string(),
            node_id,
        };
        let meta_path = dir.join(META);
        match fs::read(&meta_path) {
            Ok(data) => {
                let have: Meta = serde_json::from_slice(&data)
                    .map_err(|e| StorageError::Invalid(format!("{}: {e}", meta_path.display())))?;
                if have != want {
                    return Err(StorageError::Invalid(format!(
                        "{} belongs to node {} of cluster {:?}, not node {} of cluster {:?}",
                        dir.display(),
                        have.node_id,
                        have.cluster_id,
                        node_id,
                        cluster_id
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A directory that already holds state but lost its identity is not new.
                for other in [HARD_STATE, "wal"] {
                    if dir.join(other).exists() {
                        return Err(StorageError::Invalid(format!(
                            "{} is missing but {} exists: refusing to adopt a data directory \
                             of unknown identity",
                            meta_path.display(),
                            dir.join(other).display()
                        )));
                    }
                }
                let data = serde_json::to_vec_pretty(&want).expect("meta encodes");
                write_atomic(dir, META, &data, opts.faults.as_deref())?;
            }
            Err(e) => return Err(io_err(&meta_path)(e)),
        }
        let hs_path = dir.join(HARD_STATE);
        let hard_state = match fs::read(&hs_path) {
            Ok(data) => Some(decode_hard_state(&hs_path, &data)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&hs_path)(e)),
        };
        let wal_dir = dir.join("wal");
        let faults = opts.faults.clone();
        let (wal, entries, torn_tail) = Wal::open_with(&wal_dir, opts)?;
        let log_term = entries.iter().map(|e| e.term).max().unwrap_or(0);
        let hard_state = match hard_state {
            Some(hs) if hs.current_term >= log_term => hs,
            Some(hs) => {
                return Err(StorageError::Invalid(format!(
                    "{} holds term {} but the log holds entries of term {log_term}: the hard \
                     state is older than the log (replaced or restored from a backup?); \
                     refusing to start",
                    hs_path.display(),
                    hs.current_term
                )))
            }
            None if log_term > 0 => {
                return Err(StorageError::Invalid(format!(
                    "{} is missing but the log holds entries of term {log_term}; refusing to \
                     start (the node could vote twice in a term)",
                    hs_path.display()
                )))
            }
            None => HardState::default(),
        };
        Ok((
            Storage {
                dir: dir.to_path_buf(),
                wal,
                hard_state,
                staged_hard_state: None,
                log_dirty: false,
                faults,
                failed: None,
            },
            Recovered {
                hard_state,
                log: Log::from_entries(entries),
                torn_tail,
            },
        ))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    /// The hard state as last committed.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The last index of the staged log.
    pub fn last_index(&self) -> u64 {
        self.wal.last_index()
    }

    /// Stage what `ready` asks to persist; `core` is the core that produced it, not yet stepped
    /// again (the entries are read from it).
    pub fn stage(&mut self, ready: &Ready, core: &RaftCore) -> Result<(), StorageError> {
        self.check()?;
        let r = self.stage_inner(ready, core);
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.to_string());
        }
        r
    }

    fn stage_inner(&mut self, ready: &Ready, core: &RaftCore) -> Result<(), StorageError> {
        if let Some(w) = ready.log_write {
            self.wal.truncate_from(w.from_index)?;
            // The log numbers records itself; a write that does not continue it would store
            // entries under the wrong index.
            if w.from_index <= w.last_index && self.wal.last_index() + 1 != w.from_index {
                return Err(StorageError::Invalid(format!(
                    "log write from index {} but the stored log ends at {}",
                    w.from_index,
                    self.wal.last_index()
                )));
            }
            self.wal
                .append(core.log().slice(w.from_index, w.last_index))?;
            self.log_dirty = true;
        }
        if let Some(hs) = ready.hard_state {
            self.staged_hard_state = Some(hs);
        }
        Ok(())
    }

    /// Why storage stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn check(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Make everything staged durable: the hard state (atomically) if it changed, then one
    /// fsync of the log. After an error nothing staged may be reported durable, and every later
    /// call fails: the node has to restart and recover from what is on disk.
    pub fn commit(&mut self) -> Result<CommitStats, StorageError> {
        self.check()?;
        if !self.log_dirty && self.staged_hard_state.is_none() {
            return Ok(CommitStats::default());
        }
        let start = Instant::now();
        let r = self.commit_inner();
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.to_string());
        }
        r?;
        Ok(CommitStats {
            fsync: Some(start.elapsed()),
        })
    }

    fn commit_inner(&mut self) -> Result<(), StorageError> {
        if let Some(hs) = self.staged_hard_state.take() {
            if hs != self.hard_state {
                write_atomic(
                    &self.dir,
                    HARD_STATE,
                    &encode_hard_state(&hs),
                    self.faults.as_deref(),
                )?;
                self.hard_state = hs;
            }
        }
        if self.log_dirty {
            self.wal.sync()?;
            self.log_dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Input, Params, Role};

    #[test]
    fn a_node_restarts_from_what_it_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, rec) = Storage::open(dir.path(), "c", 1).unwrap();
        let mut core = RaftCore::from_durable(1, &[1], Params::default(), rec.hard_state, rec.log);
        let ready = core.step(Input::ElectionTimeout);
        assert_eq!(core.role(), Role::Leader);
        st.stage(&ready, &core).unwrap();
        assert!(st.commit().unwrap().fsync.is_some());
        drop(st);
        let (_, rec) = Storage::open(dir.path(), "c", 1).unwrap();
        assert_eq!(rec.hard_state, core.hard_state());
        assert_eq!(&rec.log, core.log());
    }

    #[test]
    fn wrong_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Storage::open(dir.path(), "c", 1).unwrap();
        let e = Storage::open(dir.path(), "other", 1).unwrap_err();
        assert!(e.to_string().contains("cluster"), "{e}");
        assert!(Storage::open(dir.path(), "c", 2).is_err());
    }

    #[test]
    fn corrupt_hard_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = Storage::open(dir.path(), "c", 1).unwrap();
        st.staged_hard_state = Some(HardState {
            current_term: 3,
            voted_for: Some(1),
        });
        st.commit().unwrap();
        drop(st);
        let p = dir.path().join(HARD_STATE);
        let mut data = fs::read(&p).unwrap();
        *data.last_mut().unwrap() ^= 1;
        fs::write(&p, data).unwrap();
        let e = Storage::open(dir.path(), "c", 1).unwrap_err();
        assert!(e.to_string().contains("hard_state"), "{e}");
    }
}
