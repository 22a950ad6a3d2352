//! A node's durable state: the log ([`Wal`]), the hard state (term, vote) and the identity of
//! the data directory (cluster id, node id).
//!
//! The hard state is one small file replaced atomically (write a temporary file, fsync it,
//! rename it over the old one, fsync the directory) and protected by a CRC32C. The node stages
//! every `Ready` of a batch (log records are written at once, so the entries are read from the
//! core before the next input) and then calls [`Storage::commit`]: one fsync of the log, then the
//! hard state if it changed. Only after `commit` returns are the batch's messages sent and its
//! clients answered.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::wal::{io_err, sync_dir, StorageError, TornTail, Wal};
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
    bincode::deserialize(&data[4..]).map_err(|e| corrupt(&format!("undecodable hard state: {e}")))
}

/// Write `data` to `dir/name` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
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
}

impl Storage {
    /// Open the data directory `dir` of node `node_id` in cluster `cluster_id`: check (or, for
    /// a new directory, write) its identity, then recover the hard state and the log.
    pub fn open(
        dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
    ) -> Result<(Storage, Recovered), StorageError> {
        Self::open_with_segment_bytes(dir, cluster_id, node_id, super::wal::SEGMENT_BYTES)
    }

    /// [`Storage::open`] with a custom log segment size.
    pub fn open_with_segment_bytes(
        dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
        segment_bytes: u64,
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
                let data = serde_json::to_vec_pretty(&want).expect("meta encodes");
                write_atomic(dir, META, &data)?;
            }
            Err(e) => return Err(io_err(&meta_path)(e)),
        }
        let hs_path = dir.join(HARD_STATE);
        let hard_state = match fs::read(&hs_path) {
            Ok(data) => decode_hard_state(&hs_path, &data)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HardState::default(),
            Err(e) => return Err(io_err(&hs_path)(e)),
        };
        let wal_dir = dir.join("wal");
        let (wal, entries, torn_tail) = Wal::open_with_segment_bytes(&wal_dir, segment_bytes)?;
        Ok((
            Storage {
                dir: dir.to_path_buf(),
                wal,
                hard_state,
                staged_hard_state: None,
                log_dirty: false,
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
        if let Some(w) = ready.log_write {
            self.wal.truncate_from(w.from_index)?;
            self.wal
                .append(core.log().slice(w.from_index, w.last_index))?;
            self.log_dirty = true;
        }
        if let Some(hs) = ready.hard_state {
            self.staged_hard_state = Some(hs);
        }
        Ok(())
    }

    /// Make everything staged durable: one fsync of the log, then the hard state (atomically)
    /// if it changed.
    pub fn commit(&mut self) -> Result<CommitStats, StorageError> {
        if !self.log_dirty && self.staged_hard_state.is_none() {
            return Ok(CommitStats::default());
        }
        let start = Instant::now();
        if self.log_dirty {
            self.wal.sync()?;
            self.log_dirty = false;
        }
        if let Some(hs) = self.staged_hard_state.take() {
            if hs != self.hard_state {
                write_atomic(&self.dir, HARD_STATE, &encode_hard_state(&hs))?;
                self.hard_state = hs;
            }
        }
        Ok(CommitStats {
            fsync: Some(start.elapsed()),
        })
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
