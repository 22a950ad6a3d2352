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
//! A snapshot (log compaction, or one installed from the leader) is written when its `Ready`
//! is staged, in this order: a log suffix the snapshot discards (an installed snapshot that
//! replaced a conflicting log) is truncated and fsynced; the staged hard state is written; the
//! `snapshot` file is replaced atomically (`[magic "RSNP"][version: u32 LE][crc32c: u32 LE]
//! [bincode(Snapshot)]`); only then does the log forget the records the snapshot covers
//! ([`Wal::compact_to`] deletes whole segments). A crash anywhere in between recovers: the log
//! skips the records a snapshot covers and deletes the segments left over.
//!
//! The hard state goes first so that, at every instant, the durable term is at least the term
//! of every durable log entry (a node only appends entries of its current term or older). That
//! makes a lost hard-state file detectable: a log (or snapshot) holding entries of term `t`
//! next to a missing hard state, or one whose term is below `t`, refuses to start instead of
//! letting the node vote a second time in a term it already voted in. A snapshot write flushes
//! the staged hard state first for the same reason (an installed snapshot comes with the
//! leader's term).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::disk::{sync_file, write_file};
use super::framing;
use super::identity::{self, Meta};
use super::wal::{
    io_err, sync_dir, write_atomic, DiskFaults, PendingSync, StorageError, TornTail, Wal,
    WalOptions,
};
use raft_core::{HardState, Index, Log, NodeId, RaftCore, Ready, Snapshot};

const HARD_STATE: &str = "hard_state";
/// The snapshot file's name in the data directory.
pub const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"RSNP";
/// Version 2 added the configuration a snapshot records (`Snapshot::membership`); version 1
/// files still read, as snapshots of a cluster whose configuration never changed.
const SNAPSHOT_VERSION: u32 = 2;
const SNAPSHOT_VERSION_1: u32 = 1;
const SNAPSHOT_HEADER: usize = 12;

/// Encode a hard state as `[crc32c: u32 LE][bincode(HardState)]`.
fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    framing::encode_checksummed(hs)
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
    if framing::checksum(&data[4..]) != crc {
        return Err(corrupt("hard state checksum mismatch"));
    }
    framing::decode(&data[4..]).map_err(|e| corrupt(&format!("undecodable hard state: {e}")))
}

/// Encode a snapshot as `[magic][version: u32 LE][crc32c(body): u32 LE][body]`, the body
/// being `bincode(Snapshot)`.
pub fn encode_snapshot(snap: &Snapshot) -> Vec<u8> {
    let body = bincode::serialize(snap).expect("snapshots encode");
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER + body.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&framing::checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The 12-byte header of a snapshot file whose body has checksum `crc`.
pub(crate) fn snapshot_header(crc: u32) -> [u8; SNAPSHOT_HEADER] {
    let mut h = [0u8; SNAPSHOT_HEADER];
    h[..4].copy_from_slice(SNAPSHOT_MAGIC);
    h[4..8].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Offset of a snapshot file's body (after the header).
pub(crate) const SNAPSHOT_BODY_OFFSET: u64 = SNAPSHOT_HEADER as u64;

/// Read a snapshot file without holding its bytes: the body is checksummed, then decoded, as
/// it streams from the disk, so reading a state of any size needs memory for the state only.
pub fn read_snapshot_file(path: &Path) -> Result<Snapshot, StorageError> {
    use std::io::{Read, Seek};
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let file = fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; SNAPSHOT_HEADER];
    if len < SNAPSHOT_HEADER as u64 {
        return Err(corrupt(0, format!("snapshot file too short ({len} bytes)")));
    }
    r.read_exact(&mut header).map_err(io_err(path))?;
    if &header[..4] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad magic)".into()));
    }
    let version = u32::from_le_bytes(header[4..8].try_into().unwrap());
    if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_1 {
        return Err(corrupt(
            4,
            format!("unsupported snapshot version {version} (this node reads {SNAPSHOT_VERSION})"),
        ));
    }
    let crc = u32::from_le_bytes(header[8..12].try_into().unwrap());
    let body_len = len - SNAPSHOT_HEADER as u64;
    // Two passes: the checksum first, so that the decoder never sees damaged bytes (a damaged
    // length could make it reserve without bound), then the decoding.
    let mut body = ChecksummingReader { inner: r, crc: 0 };
    std::io::copy(&mut body, &mut std::io::sink()).map_err(io_err(path))?;
    if body.crc != crc {
        return Err(corrupt(8, "snapshot checksum mismatch".into()));
    }
    let mut r = body.inner;
    r.seek(std::io::SeekFrom::Start(SNAPSHOT_HEADER as u64))
        .map_err(io_err(path))?;
    let options = framing::options(body_len as usize);
    let undecodable = |e| corrupt(SNAPSHOT_HEADER as u64, format!("undecodable snapshot: {e}"));
    let snap: Snapshot = if version == SNAPSHOT_VERSION_1 {
        let v1: SnapshotV1 =
            bincode::Options::deserialize_from(options, &mut r).map_err(undecodable)?;
        Snapshot {
            last_included_index: v1.last_included_index,
            last_included_term: v1.last_included_term,
            state: v1.state,
            membership: None,
        }
    } else {
        bincode::Options::deserialize_from(options, &mut r).map_err(undecodable)?
    };
    let mut rest = Vec::new();
    let trailing = r.read_to_end(&mut rest).map_err(io_err(path))?;
    if trailing > 0 {
        return Err(corrupt(
            len - trailing as u64,
            format!("{trailing} bytes after the snapshot"),
        ));
    }
    Ok(snap)
}

/// A snapshot as version 1 files hold it: before snapshots recorded a configuration.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotV1 {
    last_included_index: Index,
    last_included_term: raft_core::Term,
    state: raft_core::KvStateMachine,
}

/// A reader that keeps the CRC32C of everything read through it.
struct ChecksummingReader<R> {
    inner: R,
    crc: u32,
}

impl<R: std::io::Read> std::io::Read for ChecksummingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

/// Replace `dir/snapshot` with `snap`, atomically and durably, encoding it straight into the
/// file through a buffer: a state of any size costs its buffer, not a second copy of itself in
/// memory (the whole encoding, then the file's bytes, as a `Vec` would). Returns the file's
/// size.
pub(crate) fn write_snapshot_file(
    dir: &Path,
    snap: &Snapshot,
    faults: Option<&DiskFaults>,
) -> Result<u64, StorageError> {
    use std::io::{Seek, Write};
    let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
    let path = dir.join(SNAPSHOT);
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    // The header's checksum is known once the body is written.
    write_file(faults, &f, &snapshot_header(0)).map_err(io_err(&tmp))?;
    let seam = SeamWriter {
        file: &f,
        faults,
        crc: 0,
        written: 0,
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, seam);
    bincode::serialize_into(&mut w, snap).map_err(|e| match *e {
        bincode::ErrorKind::Io(e) => io_err(&tmp)(e),
        e => StorageError::Invalid(format!("encoding the snapshot: {e}")),
    })?;
    w.flush().map_err(io_err(&tmp))?;
    let (crc, body) = (w.get_ref().crc, w.get_ref().written);
    drop(w);
    f.seek(std::io::SeekFrom::Start(0)).map_err(io_err(&tmp))?;
    write_file(faults, &f, &snapshot_header(crc)).map_err(io_err(&tmp))?;
    sync_file(faults, &f).map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(SNAPSHOT_BODY_OFFSET + body)
}

/// Writes through the disk seam (where tests inject faults), keeping the CRC32C and count of
/// what went through.
struct SeamWriter<'a> {
    file: &'a fs::File,
    faults: Option<&'a DiskFaults>,
    crc: u32,
    written: u64,
}

impl std::io::Write for SeamWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_file(self.faults, self.file, buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What [`Storage::open`] recovered.
#[derive(Debug)]
pub struct Recovered {
    /// Whose directory this is (with its incarnation).
    pub meta: Meta,
    pub hard_state: HardState,
    /// The latest durable snapshot (the empty one when the node never made one).
    pub snapshot: Snapshot,
    /// The entries after the snapshot.
    pub log: Log,
    pub torn_tail: Option<TornTail>,
}

/// Timing of one [`Storage::commit`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CommitStats {
    /// Time spent writing and fsyncing (zero when there was nothing to persist).
    pub fsync: Option<Duration>,
}

/// A compaction's snapshot staged by [`Storage::stage_deferring`], not yet released to be
/// written: [`Storage::snapshot_after_commit`] turns it into a [`SnapshotWrite`] once its batch
/// is committed.
#[derive(Debug)]
pub struct DeferredSnapshot {
    snapshot: Snapshot,
}

/// A compaction's snapshot, to be written off the node loop. It first makes the log durable as
/// written when it was released (segment and directory: a truncation of a conflicting suffix
/// in this or an earlier batch must be on disk before a snapshot that follows it is), then
/// the snapshot file. Until [`Storage::snapshot_written`] takes its result, the log keeps every
/// entry the snapshot covers, so a crash at any point recovers (from the older snapshot and the
/// whole log, or from this one and the log after it).
#[derive(Debug)]
pub struct SnapshotWrite {
    dir: PathBuf,
    snapshot: Snapshot,
    log: PendingSync,
    faults: Option<Arc<DiskFaults>>,
    failed: Arc<OnceLock<String>>,
}

/// A snapshot file [`SnapshotWrite::run`] made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenSnapshot {
    pub index: Index,
    pub bytes: u64,
}

impl SnapshotWrite {
    /// The index the snapshot covers.
    pub fn index(&self) -> Index {
        self.snapshot.last_included_index
    }

    /// Make the log durable as written when this was released, then encode the snapshot and
    /// replace the snapshot file with it, atomically and durably. A failure poisons the
    /// storage, as a failed synchronous snapshot write does.
    pub fn run(self) -> Result<WrittenSnapshot, StorageError> {
        let written = (self.log.sync())
            .and_then(|()| write_snapshot_file(&self.dir, &self.snapshot, self.faults.as_deref()));
        match written {
            Ok(bytes) => Ok(WrittenSnapshot {
                index: self.index(),
                bytes,
            }),
            Err(e) => {
                let _ = self.failed.set(e.to_string());
                Err(e)
            }
        }
    }
}

/// The durable state of one node.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    wal: Wal,
    hard_state: HardState,
    staged_hard_state: Option<HardState>,
    log_dirty: bool,
    snapshot_index: Index,
    last_snapshot_bytes: u64,
    faults: Option<Arc<DiskFaults>>,
    /// Set by the first failed commit: nothing more is acknowledged until a restart.
    failed: Option<String>,
    /// Set by the first failed [`LogSync`] (which runs on another thread): the same.
    sync_failed: Arc<OnceLock<String>>,
    /// During [`Storage::stage_received`]: the received snapshot file and the index it holds.
    received: Option<(PathBuf, Index)>,
}

/// The log fsync of a [`Storage::commit_async`], to run while the node goes on.
#[derive(Debug)]
pub struct LogSync {
    pending: PendingSync,
    failed: Arc<OnceLock<String>>,
}

impl LogSync {
    /// One fsync covering `self` and `later` (handed out after it).
    pub fn merge(self, later: LogSync) -> LogSync {
        LogSync {
            pending: self.pending.merge(later.pending),
            failed: later.failed,
        }
    }

    /// Make the log durable up to the commit that handed this out (and any merged into it). A
    /// failure poisons the storage: its every later call fails, as after a failed `commit`.
    pub fn sync(self) -> Result<Duration, StorageError> {
        if let Some(why) = self.failed.get() {
            return Err(StorageError::Failed(why.clone()));
        }
        let start = Instant::now();
        match self.pending.sync() {
            Ok(()) => Ok(start.elapsed()),
            Err(e) => {
                let _ = self.failed.set(e.to_string());
                Err(e)
            }
        }
    }
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
        let meta = identity::ensure(dir, cluster_id, node_id, opts.faults.as_deref())?;
        let hs_path = dir.join(HARD_STATE);
        let hard_state = match fs::read(&hs_path) {
            Ok(data) => Some(decode_hard_state(&hs_path, &data)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&hs_path)(e)),
        };
        let snap_path = dir.join(SNAPSHOT);
        let snapshot = match snap_path.try_exists() {
            Ok(true) => Some(read_snapshot_file(&snap_path)?),
            Ok(false) => None,
            Err(e) => return Err(io_err(&snap_path)(e)),
        };
        let wal_dir = dir.join("wal");
        let faults = opts.faults.clone();
        let have_snapshot = snapshot.is_some();
        let snapshot = snapshot.unwrap_or_default();
        let (wal, entries, torn_tail) =
            Wal::open_after(&wal_dir, opts, snapshot.last_included_index).map_err(|e| match e {
                StorageError::Corrupt {
                    path,
                    offset,
                    reason,
                } if !have_snapshot && reason.contains("no snapshot") => StorageError::Corrupt {
                    path,
                    offset,
                    reason: format!("{reason} ({} is missing)", snap_path.display()),
                },
                e => e,
            })?;
        let log_term = entries
            .iter()
            .map(|e| e.term)
            .max()
            .unwrap_or(0)
            .max(snapshot.last_included_term);
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
                snapshot_index: snapshot.last_included_index,
                last_snapshot_bytes: 0,
                faults,
                failed: None,
                sync_failed: Arc::new(OnceLock::new()),
                received: None,
            },
            Recovered {
                meta,
                hard_state,
                log: Log::after_snapshot(
                    snapshot.last_included_index,
                    snapshot.last_included_term,
                    entries,
                ),
                snapshot,
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

    /// The index of the latest durable snapshot (0: none).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// Size of the snapshot file written last by this process (0: none yet).
    pub fn last_snapshot_bytes(&self) -> u64 {
        self.last_snapshot_bytes
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
        self.poison(r)
    }

    fn stage_inner(&mut self, ready: &Ready, core: &RaftCore) -> Result<(), StorageError> {
        if let Some(hs) = ready.hard_state {
            self.staged_hard_state = Some(hs);
        }
        // Records can become durable before the commit (a segment roll fsyncs the segment it
        // closes; an install fsyncs a truncation), and the durable term must never be below
        // the term of a durable record: a changed hard state goes first.
        if ready.log_write.is_some() || ready.snapshot.is_some() {
            self.write_staged_hard_state()?;
        }
        if let Some(w) = ready.log_write {
            let before = self.wal.last_index();
            self.wal.truncate_from(w.from_index)?;
            if ready.snapshot.is_some() && w.from_index <= before {
                // An installed snapshot replaced a conflicting log: the discarded suffix must
                // be gone from the disk before a snapshot vouches for whatever follows it.
                self.wal.sync()?;
            }
        }
        if let Some(index) = ready.snapshot {
            self.write_snapshot(core.snapshot(), index)?;
        }
        if let Some(w) = ready.log_write {
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
        Ok(())
    }

    /// [`Storage::stage`] for the `Ready` of an `InstallSnapshot` that arrived as `file`: a
    /// durable file in the snapshot file format holding the snapshot at `index` (see
    /// `snapshot_transfer`). If the `Ready` installs that snapshot, the file becomes the node's
    /// snapshot file by a rename, so a large state is not encoded and written a second time in
    /// the node loop. Whatever happens, the caller removes `file` if it is still there.
    pub fn stage_received(
        &mut self,
        ready: &Ready,
        core: &RaftCore,
        file: &Path,
        index: Index,
    ) -> Result<(), StorageError> {
        self.received = Some((file.to_path_buf(), index));
        let r = self.stage(ready, core);
        self.received = None;
        r
    }

    /// [`Storage::stage`] for the `Ready` of an `Input::Compact`, except that its snapshot is
    /// not written here but returned, to be released by [`Storage::snapshot_after_commit`] once
    /// this batch is committed, run on any thread, and its result handed to
    /// [`Storage::snapshot_written`]. Only one may be outstanding: the storage writes one
    /// snapshot file at a time.
    pub fn stage_deferring(
        &mut self,
        ready: &Ready,
        core: &RaftCore,
    ) -> Result<Option<DeferredSnapshot>, StorageError> {
        let Some(index) = ready.snapshot else {
            return self.stage(ready, core).map(|()| None);
        };
        let snapshot = core.snapshot();
        if snapshot.last_included_index != index || ready.log_write.is_some() {
            let e = StorageError::Invalid(format!(
                "a deferred snapshot must come from a compaction: the Ready names index {index} \
                 (the core holds {}) and a log write {:?}",
                snapshot.last_included_index, ready.log_write
            ));
            return self.poison(Err(e));
        }
        let rest = Ready {
            snapshot: None,
            ..ready.clone()
        };
        self.stage(&rest, core)?;
        Ok(Some(DeferredSnapshot {
            snapshot: snapshot.clone(),
        }))
    }

    /// Release a deferred snapshot after its batch's [`Storage::commit`] or
    /// [`Storage::commit_async`] (so the hard state on disk is not behind the snapshot's term
    /// and everything staged is written to the log file). The write it returns first fsyncs the
    /// log and the directory as they are now, whatever fsyncs are still queued elsewhere.
    pub fn snapshot_after_commit(
        &self,
        deferred: DeferredSnapshot,
    ) -> Result<SnapshotWrite, StorageError> {
        self.check()?;
        if self.log_dirty || self.staged_hard_state.is_some() {
            return Err(StorageError::Invalid(
                "a deferred snapshot is released before its batch is committed".into(),
            ));
        }
        Ok(SnapshotWrite {
            dir: self.dir.clone(),
            snapshot: deferred.snapshot,
            log: self.wal.barrier(),
            faults: self.faults.clone(),
            failed: self.sync_failed.clone(),
        })
    }

    /// A deferred snapshot is durable: the log forgets what it covers. A snapshot older than
    /// the storage's (one installed from the leader since) changes nothing.
    pub fn snapshot_written(&mut self, written: WrittenSnapshot) -> Result<(), StorageError> {
        self.check()?;
        if written.index <= self.snapshot_index {
            return Ok(());
        }
        self.snapshot_index = written.index;
        self.last_snapshot_bytes = written.bytes;
        let r = self.wal.compact_to(written.index);
        self.poison(r)?;
        // Compaction deletes segments: the next commit syncs the directory.
        self.log_dirty = true;
        Ok(())
    }

    /// Make `snap` (at `index`) durable, then let the log forget what it covers.
    fn write_snapshot(&mut self, snap: &Snapshot, index: Index) -> Result<(), StorageError> {
        if snap.last_included_index != index {
            return Err(StorageError::Invalid(format!(
                "the Ready names a snapshot at index {index} but the core holds one at {}",
                snap.last_included_index
            )));
        }
        // The hard state staged with it (an installed snapshot comes with the leader's term)
        // is already durable: `stage_inner` writes it before any log write or snapshot.
        let bytes = match self.received.take() {
            Some((file, at)) if at == index => {
                let path = self.dir.join(SNAPSHOT);
                let bytes = fs::metadata(&file).map_err(io_err(&file))?.len();
                fs::rename(&file, &path).map_err(io_err(&path))?;
                sync_dir(&self.dir)?;
                bytes
            }
            _ => write_snapshot_file(&self.dir, snap, self.faults.as_deref())?,
        };
        self.snapshot_index = index;
        self.last_snapshot_bytes = bytes;
        self.wal.compact_to(index)?;
        // Compaction deletes and may create segments: the next commit syncs the directory.
        self.log_dirty = true;
        Ok(())
    }

    fn write_staged_hard_state(&mut self) -> Result<(), StorageError> {
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
        Ok(())
    }

    /// Why storage stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<&str> {
        (self.failed.as_deref()).or_else(|| self.sync_failed.get().map(String::as_str))
    }

    /// Record the first failure: every later call refuses.
    fn poison<T>(&mut self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.to_string());
        }
        r
    }

    fn check(&self) -> Result<(), StorageError> {
        match self.failure() {
            Some(why) => Err(StorageError::Failed(why.to_string())),
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
        self.poison(r)?;
        Ok(CommitStats {
            fsync: Some(start.elapsed()),
        })
    }

    /// [`Storage::commit`] without waiting for the log's fsync: the hard state is made durable
    /// here (it changes only on elections), the log is written to its file, and the returned
    /// [`LogSync`] (none when the log is clean) makes it durable. Nothing that depends on what
    /// was staged may leave the node before that sync returns.
    pub fn commit_async(&mut self) -> Result<Option<LogSync>, StorageError> {
        self.check()?;
        let r = self.commit_async_inner();
        self.poison(r)
    }

    fn commit_async_inner(&mut self) -> Result<Option<LogSync>, StorageError> {
        self.write_staged_hard_state()?;
        if !self.log_dirty {
            return Ok(None);
        }
        let pending = self.wal.write_out()?;
        self.log_dirty = false;
        Ok(Some(LogSync {
            pending,
            failed: self.sync_failed.clone(),
        }))
    }

    fn commit_inner(&mut self) -> Result<(), StorageError> {
        self.write_staged_hard_state()?;
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
    use raft_core::{
        ClientRequest, Command, Entry, Envelope, Input, Membership, Message, Op, Params, Role,
        NO_SESSION,
    };

    /// A write without a session (the seq is only a nonce): each one is appended and applied.
    fn put(k: u64) -> Input {
        Input::client(ClientRequest {
            client_id: NO_SESSION,
            seq: k,
            op: Op::Put {
                key: format!("k{}", k % 5).into(),
                value: ("v".repeat(40) + &k.to_string()).into(),
            },
        })
    }

    fn persist(st: &mut Storage, core: &mut RaftCore, input: Input) -> Ready {
        let r = core.step(input);
        st.stage(&r, core).unwrap();
        st.commit().unwrap();
        r
    }

    fn reopen(dir: &Path) -> (Storage, Recovered) {
        Storage::open_with_segment_bytes(dir, "c", 1, 512).unwrap()
    }

    fn restore(rec: Recovered, peers: &[NodeId]) -> RaftCore {
        RaftCore::restore(
            1,
            Membership::voters(peers.iter().copied().chain([1])),
            Params::default(),
            rec.hard_state,
            rec.snapshot,
            rec.log,
        )
    }

    fn wal_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A single-node leader with `n` committed writes, persisted through small segments.
    fn leader_with_writes(dir: &Path, n: u64) -> (Storage, RaftCore) {
        let (mut st, rec) = reopen(dir);
        let mut core = restore(rec, &[1]);
        persist(&mut st, &mut core, Input::ElectionTimeout);
        assert_eq!(core.role(), Role::Leader);
        for k in 1..=n {
            persist(&mut st, &mut core, put(k));
        }
        assert_eq!(core.last_applied(), n + 1);
        (st, core)
    }

    #[test]
    fn compaction_deletes_covered_segments_and_a_restart_recovers_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut core) = leader_with_writes(dir.path(), 40);
        let before = wal_files(dir.path());
        assert!(before.len() > 4, "{before:?}");
        let r = persist(&mut st, &mut core, Input::Compact);
        assert_eq!(r.snapshot, Some(41));
        assert_eq!(st.snapshot_index(), 41);
        let after = wal_files(dir.path());
        assert!(after.len() < before.len(), "{before:?} -> {after:?}");
        assert_ne!(after[0], before[0], "the first segment is covered");
        // Writes after the compaction land after the snapshot.
        for k in 41..=45 {
            persist(&mut st, &mut core, put(k));
        }
        drop(st);
        let (_, rec) = reopen(dir.path());
        assert_eq!(&rec.snapshot, core.snapshot());
        assert_eq!(&rec.log, core.log());
        let mut restarted = restore(rec, &[1]);
        assert_eq!(restarted.last_applied(), 41);
        assert_eq!(restarted.kv(), core.snapshot().state.kv());
        // The entries after the snapshot commit again under the next leader.
        restarted.step(Input::ElectionTimeout);
        assert_eq!(restarted.kv(), core.kv());
    }

    #[test]
    fn a_crash_between_the_snapshot_and_the_log_compaction_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let (st, mut core) = leader_with_writes(dir.path(), 30);
        let files = wal_files(dir.path());
        // The core compacts; the snapshot file reaches the disk, the log compaction does not.
        let r = core.step(Input::Compact);
        let index = r.snapshot.unwrap();
        write_atomic(
            dir.path(),
            SNAPSHOT,
            &encode_snapshot(core.snapshot()),
            None,
        )
        .unwrap();
        drop(st);
        assert_eq!(wal_files(dir.path()), files);
        let (mut st, rec) = reopen(dir.path());
        assert_eq!(rec.snapshot.last_included_index, index);
        assert_eq!(&rec.log, core.log());
        assert!(
            wal_files(dir.path()).len() < files.len(),
            "covered segments deleted on open"
        );
        // And the log keeps working.
        persist(&mut st, &mut core, put(31));
        drop(st);
        let (_, rec) = reopen(dir.path());
        assert_eq!(&rec.log, core.log());
    }

    #[test]
    fn a_deferred_snapshot_compacts_the_log_only_once_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut core) = leader_with_writes(dir.path(), 40);
        let before = wal_files(dir.path());
        let r = core.step(Input::Compact);
        let deferred = st
            .stage_deferring(&r, &core)
            .unwrap()
            .expect("a snapshot to write");
        st.commit().unwrap();
        let write = st.snapshot_after_commit(deferred).unwrap();
        assert_eq!(write.index(), 41);
        // The node goes on while the snapshot is written; the log still holds everything.
        persist(&mut st, &mut core, put(41));
        assert_eq!(st.snapshot_index(), 0);
        let now = wal_files(dir.path());
        assert!(
            before.iter().all(|f| now.contains(f)),
            "{before:?} -> {now:?}"
        );
        let written = std::thread::spawn(move || write.run())
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(written.index, 41);
        // A crash here recovers from the new snapshot and the log after it.
        {
            let copy = tempfile::tempdir().unwrap();
            for name in [super::identity::META, HARD_STATE, SNAPSHOT] {
                fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
            }
            fs::create_dir(copy.path().join("wal")).unwrap();
            for f in wal_files(dir.path()) {
                fs::copy(
                    dir.path().join("wal").join(&f),
                    copy.path().join("wal").join(&f),
                )
                .unwrap();
            }
            let (_, rec) = reopen(copy.path());
            assert_eq!(rec.snapshot.last_included_index, 41);
            assert_eq!(&rec.log, core.log());
        }
        st.snapshot_written(written).unwrap();
        assert_eq!(st.snapshot_index(), 41);
        let after = wal_files(dir.path());
        assert!(after.len() < before.len(), "{before:?} -> {after:?}");
        persist(&mut st, &mut core, put(42));
        // An older snapshot reported late (one was installed since) changes nothing.
        st.snapshot_written(WrittenSnapshot {
            index: 30,
            bytes: 1,
        })
        .unwrap();
        assert_eq!(st.snapshot_index(), 41);
        drop(st);
        let (_, rec) = reopen(dir.path());
        assert_eq!(&rec.snapshot, core.snapshot());
        assert_eq!(&rec.log, core.log());
    }

    #[test]
    fn a_failed_deferred_snapshot_poisons_storage_and_keeps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (st, mut core) = leader_with_writes(dir.path(), 20);
        drop(st);
        let faults = DiskFaults::new();
        let opts = WalOptions {
            segment_bytes: 512,
            faults: Some(faults.clone()),
        };
        let (mut st, _) = Storage::open_with(dir.path(), "c", 1, opts).unwrap();
        let r = core.step(Input::Compact);
        let deferred = st.stage_deferring(&r, &core).unwrap().unwrap();
        st.commit().unwrap();
        let write = st.snapshot_after_commit(deferred).unwrap();
        faults.disk_full_after(100);
        let e = write.run().unwrap_err();
        assert!(e.to_string().contains("no space left"), "{e}");
        assert!(st.failure().is_some());
        assert!(matches!(st.commit(), Err(StorageError::Failed(_))));
        drop(st);
        faults.clear();
        let (_, rec) = reopen(dir.path());
        assert_eq!(
            rec.snapshot.last_included_index, 0,
            "the old snapshot stays"
        );
        assert_eq!(rec.log.last_index(), 21);
    }

    #[test]
    fn only_a_compaction_is_deferred() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut core) = leader_with_writes(dir.path(), 3);
        let r = core.step(put(4));
        assert!(st.stage_deferring(&r, &core).unwrap().is_none());
        st.commit().unwrap();
        // Released before its batch is committed (a put staged with it is not yet written).
        let r = core.step(Input::Compact);
        let deferred = st.stage_deferring(&r, &core).unwrap().unwrap();
        let r = core.step(put(5));
        st.stage(&r, &core).unwrap();
        let e = st.snapshot_after_commit(deferred).unwrap_err();
        assert!(
            e.to_string().contains("before its batch is committed"),
            "{e}"
        );
        let mut r = core.step(Input::Compact);
        r.snapshot = Some(2);
        let e = st.stage_deferring(&r, &core).unwrap_err();
        assert!(e.to_string().contains("must come from a compaction"), "{e}");
    }

    /// An AppendEntries from `leader` of `term` to node 1.
    fn append_from(
        leader: NodeId,
        term: u64,
        prev: (u64, u64),
        entries: Vec<Entry>,
        commit: u64,
    ) -> Input {
        Input::Message(Envelope {
            from: leader,
            to: 1,
            msg: Message::AppendEntries {
                term,
                leader,
                prev_log_index: prev.0,
                prev_log_term: prev.1,
                entries,
                leader_commit: commit,
            },
        })
    }

    /// `n` entries of `term` numbered from `first`.
    fn entries_from(term: u64, first: u64, n: u64) -> Vec<Entry> {
        let mut es = entries(term, first + n - 1);
        es.drain(..first as usize - 1);
        es
    }

    /// A segment roll fsyncs the segment it closes, records of the `Ready` being staged
    /// included: the hard state of their term must already be on disk, or a crash before the
    /// commit leaves a log ahead of its hard state, which recovery refuses.
    #[test]
    fn a_segment_roll_never_makes_records_durable_before_their_terms_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut core) = follower_with_log(dir.path(), 3);
        // Term 2: enough entries to roll the 512-byte segment within this one stage.
        let r = core.step(append_from(3, 2, (3, 1), entries_from(2, 4, 40), 0));
        assert_eq!(r.hard_state.map(|h| h.current_term), Some(2));
        st.stage(&r, &core).unwrap();
        // A crash here, before the commit.
        drop(st);
        let (_, rec) = reopen(dir.path());
        assert_eq!(rec.hard_state.current_term, 2);
    }

    /// A follower truncates a conflicting suffix and compacts in the same batch, its log fsync
    /// still queued on the sync stage. Its deferred snapshot must not become durable while the
    /// truncation may not be: recovery would continue a term-2 snapshot with stale term-1
    /// records. So the write syncs the log first; with fsyncs failing it stops there, before any
    /// snapshot file exists.
    #[test]
    fn a_deferred_snapshot_is_never_durable_before_the_truncation_it_follows() {
        let dir = tempfile::tempdir().unwrap();
        let faults = DiskFaults::new();
        let opts = WalOptions {
            segment_bytes: 512,
            faults: Some(faults.clone()),
        };
        let opened = Storage::open_with(dir.path(), "c", 1, opts).unwrap();
        let (mut st, mut core) = follower_of(opened, 50);
        // Leader 3 of term 2 replaces 11.. with 11..=30 and commits 30, as one batch of a node
        // with peers: stage, compact, commit_async (its LogSync queued, not run).
        let r = core.step(append_from(3, 2, (10, 1), entries_from(2, 11, 20), 30));
        st.stage(&r, &core).unwrap();
        assert_eq!(core.last_applied(), 30);
        let r = core.step(Input::Compact);
        let deferred = st.stage_deferring(&r, &core).unwrap().unwrap();
        let _queued = st.commit_async().unwrap().expect("a log sync");
        let write = st.snapshot_after_commit(deferred).unwrap();
        faults.fail_syncs(true);
        let e = write.run().unwrap_err().to_string();
        assert!(e.contains(".wal"), "the log is synced first: {e}");
        assert!(!dir.path().join(SNAPSHOT).exists());
        assert!(!dir.path().join(format!("{SNAPSHOT}.tmp")).exists());
        assert!(st.failure().is_some());
        // A restart recovers the truncated log as written, without a snapshot.
        faults.clear();
        drop(st);
        let (_, rec) = reopen(dir.path());
        assert_eq!(rec.snapshot.last_included_index, 0);
        assert!((11..=rec.log.last_index()).all(|i| rec.log.term_at(i) == Some(2)));
    }

    fn entries(term: u64, n: u64) -> Vec<Entry> {
        (1..=n)
            .map(|k| Entry {
                term,
                command: Command::Client {
                    client_id: 3,
                    seq: k,
                    op: Op::Delete {
                        key: format!("x{k}").into(),
                    },
                },
            })
            .collect()
    }

    /// A follower of three whose log holds `n` entries of term 1 from leader 2 (uncommitted).
    fn follower_with_log(dir: &Path, n: u64) -> (Storage, RaftCore) {
        follower_of(reopen(dir), n)
    }

    /// [`follower_with_log`] on a storage already opened.
    fn follower_of((mut st, rec): (Storage, Recovered), n: u64) -> (Storage, RaftCore) {
        let mut core = restore(rec, &[1, 2, 3]);
        persist(
            &mut st,
            &mut core,
            append_from(2, 1, (0, 0), entries(1, n), 0),
        );
        assert_eq!(core.log().last_index(), n);
        (st, core)
    }

    /// A snapshot at `index` of term 2, as leader 3 of term 2 would send it.
    fn install(index: u64) -> Input {
        let mut leader = RaftCore::new(3, &[3], Params::default());
        leader.step(Input::ElectionTimeout);
        for k in 1..index {
            leader.step(put(k));
        }
        leader.step(Input::Compact);
        let mut snapshot = leader.snapshot().clone();
        assert_eq!(snapshot.last_included_index, index);
        snapshot.last_included_term = 2;
        Input::Message(Envelope {
            from: 3,
            to: 1,
            msg: Message::InstallSnapshot {
                term: 2,
                leader: 3,
                snapshot,
            },
        })
    }

    #[test]
    fn an_installed_snapshot_discards_a_conflicting_log_durably() {
        // The conflicting log reaches past the snapshot (30 > 20), or ends before it (10 < 20).
        for n in [30u64, 10] {
            let dir = tempfile::tempdir().unwrap();
            let (mut st, mut core) = follower_with_log(dir.path(), n);
            let r = persist(&mut st, &mut core, install(20));
            assert_eq!(r.snapshot, Some(20));
            let w = r.log_write.expect("the conflicting log is dropped");
            assert!(w.from_index == 21 && w.last_index == 20, "{w:?}");
            assert_eq!(core.log().last_index(), 20);
            drop(st);
            let (mut st, rec) = reopen(dir.path());
            assert_eq!(rec.hard_state.current_term, 2);
            assert_eq!(&rec.snapshot, core.snapshot());
            assert_eq!(&rec.log, core.log(), "n = {n}");
            assert!(rec.log.entries().is_empty());
            // The leader goes on from the snapshot.
            let mut core = restore(rec, &[1, 2, 3]);
            let append = Message::AppendEntries {
                term: 2,
                leader: 3,
                prev_log_index: 20,
                prev_log_term: 2,
                entries: entries(2, 3),
                leader_commit: 20,
            };
            let msg = Input::Message(Envelope {
                from: 3,
                to: 1,
                msg: append,
            });
            persist(&mut st, &mut core, msg);
            assert_eq!(core.log().last_index(), 23);
            drop(st);
            let (_, rec) = reopen(dir.path());
            assert_eq!(&rec.log, core.log(), "n = {n}");
            // Segments holding only covered records are gone; a log that ended before the
            // snapshot restarted right after it.
            let first: u64 = wal_files(dir.path())[0][..20].parse().unwrap();
            assert!(first <= 21 && (n > 20 || first == 21), "n = {n}: {first}");
        }
    }

    #[test]
    fn a_streamed_snapshot_file_is_the_encoding_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, mut core) = leader_with_writes(tmp.path(), 40);
        core.step(Input::Compact);
        assert_eq!(core.snapshot().last_included_index, 41);
        let dir = tempfile::tempdir().unwrap();
        let bytes = write_snapshot_file(dir.path(), core.snapshot(), None).unwrap();
        let file = fs::read(dir.path().join(SNAPSHOT)).unwrap();
        assert_eq!(file, encode_snapshot(core.snapshot()));
        assert_eq!(bytes, file.len() as u64);
        assert_eq!(
            &read_snapshot_file(&dir.path().join(SNAPSHOT)).unwrap(),
            core.snapshot()
        );
        assert!(!dir.path().join("snapshot.tmp").exists());
    }

    /// A data directory written before snapshots recorded a configuration still starts: its
    /// version 1 snapshot reads as one of a cluster whose configuration never changed.
    #[test]
    fn a_version_1_snapshot_file_still_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, mut core) = leader_with_writes(tmp.path(), 10);
        core.step(Input::Compact);
        let snap = core.snapshot().clone();
        assert_eq!(snap.membership, None);
        let body = bincode::serialize(&SnapshotV1 {
            last_included_index: snap.last_included_index,
            last_included_term: snap.last_included_term,
            state: snap.state.clone(),
        })
        .unwrap();
        let mut file = Vec::new();
        file.extend_from_slice(SNAPSHOT_MAGIC);
        file.extend_from_slice(&SNAPSHOT_VERSION_1.to_le_bytes());
        file.extend_from_slice(&framing::checksum(&body).to_le_bytes());
        file.extend_from_slice(&body);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SNAPSHOT), &file).unwrap();
        assert_eq!(
            read_snapshot_file(&dir.path().join(SNAPSHOT)).unwrap(),
            snap
        );
        // The current version records the configuration, and differs from version 1.
        let mut with = snap.clone();
        with.membership = Some(Membership::voters([1, 2, 3]));
        let current = encode_snapshot(&with);
        assert_ne!(current[4..8], file[4..8]);
        fs::write(dir.path().join(SNAPSHOT), &current).unwrap();
        assert_eq!(
            read_snapshot_file(&dir.path().join(SNAPSHOT)).unwrap(),
            with
        );
    }

    #[test]
    fn corrupt_or_missing_snapshot_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mut core) = leader_with_writes(dir.path(), 40);
        persist(&mut st, &mut core, Input::Compact);
        drop(st);
        let p = dir.path().join(SNAPSHOT);
        let good = fs::read(&p).unwrap();
        for (at, what) in [(good.len() - 1, "checksum"), (0, "magic"), (5, "version")] {
            let mut data = good.clone();
            data[at] ^= 1;
            fs::write(&p, &data).unwrap();
            let e = reopen_err(dir.path());
            assert!(
                e.contains(&p.display().to_string()) && e.contains(what),
                "{e}"
            );
        }
        fs::write(&p, &good[..good.len() / 2]).unwrap();
        assert!(reopen_err(dir.path()).contains("checksum"));
        // Without the snapshot the log no longer starts at index 1.
        fs::remove_file(&p).unwrap();
        let e = reopen_err(dir.path());
        assert!(
            e.contains(&p.display().to_string()) && e.contains("missing"),
            "{e}"
        );
        // Nothing was lost: the snapshot restored, the node recovers.
        fs::write(&p, &good).unwrap();
        let (_, rec) = reopen(dir.path());
        assert_eq!(&rec.log, core.log());
    }

    fn reopen_err(dir: &Path) -> String {
        Storage::open_with_segment_bytes(dir, "c", 1, 512)
            .unwrap_err()
            .to_string()
    }

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
