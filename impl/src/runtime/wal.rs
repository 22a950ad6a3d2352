//! The durable log: segment files of CRC32C-checksummed records.
//!
//! A segment is named after the index of its first entry (`{first:020}.wal`). A record is
//! `[len: u32 LE][crc32c(payload): u32 LE][payload]`, the payload being the bincode encoding of
//! `(index, Entry)`. Appends are buffered; [`Wal::sync`] writes the buffer and fsyncs once, so
//! every proposal staged since the last sync shares one fsync (group commit).
//!
//! Recovery ([`scan_segment`]) reads every segment in order and sorts damage into two kinds:
//!
//! - a torn tail: the last segment ends inside a record (a partial header, a record running past
//!   the end of the file, or a bad checksum), nothing but zeros follows the damaged record
//!   (file systems may extend a file with zeros before its data reaches the disk), and no
//!   intact record starts anywhere after the damage. The file is truncated there and the
//!   truncation is reported: only a write that was never synced, hence never acknowledged, can
//!   be lost this way;
//! - corruption: anything else (a bad checksum with data after it, a length field that does not
//!   match an intact payload, damage in a segment that is not the last, a missing segment, an
//!   index that does not follow) refuses to start, naming the file and the offset.
//!
//! A failed write or fsync poisons the log: every later call fails, so nothing staged after the
//! failure is reported durable, and the node must restart, where recovery decides from the
//! bytes on disk. (After a failed fsync the page cache may already have dropped the dirty pages,
//! so retrying the fsync would prove nothing.)

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bincode::Options;

pub use super::disk::DiskFaults;
use super::disk::{sync_file, write_file};
use super::framing;
use raft_core::{Entry, Index};

/// Default segment size before a new segment is started.
pub const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 8;
/// Largest record accepted on recovery (and the bincode limit when decoding one).
pub const MAX_RECORD: usize = 64 << 20;

/// A storage error.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt record in {path} at offset {offset}: {reason}; refusing to start")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// An earlier write or fsync failed; nothing more is accepted until a restart recovers.
    #[error("storage failed earlier ({0}); nothing more is made durable until the node restarts")]
    Failed(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A torn tail found and truncated on recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Offset the file was truncated to.
    pub offset: u64,
    /// Bytes dropped.
    pub dropped: u64,
    pub reason: String,
}

/// What [`scan_segment`] read from one segment's bytes.
#[derive(Debug, Default)]
pub struct Scanned {
    pub entries: Vec<Entry>,
    /// Byte offset of each entry's record.
    pub offsets: Vec<u64>,
    /// Length of the intact prefix (the whole segment unless `torn` is set).
    pub valid_len: u64,
    /// Why the bytes after `valid_len` are a torn tail.
    pub torn: Option<String>,
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// If the bytes after a damaged record's header decode on their own into a record whose
/// checksum matches, the payload is intact and the length field is what was damaged.
fn intact_payload_len(body: &[u8], crc: u32) -> Option<usize> {
    let mut rest = body;
    let limit = body.len().min(MAX_RECORD);
    framing::options(limit)
        .allow_trailing_bytes()
        .deserialize_from::<_, (Index, Entry)>(&mut rest)
        .ok()?;
    let n = body.len() - rest.len();
    (framing::checksum(&body[..n]) == crc).then_some(n)
}

/// The offset of the first intact record (length in range, a plausible index, checksum
/// matching, decodable) starting anywhere in `data[from..]`. Damage followed by an intact record
/// cannot be a torn write, which only ever loses the end of what was being appended. `min_index`
/// is the index of the damaged record: a later record has at least that index, and at most one
/// more per header's worth of bytes, which rejects almost every offset before the checksum.
fn intact_record_from(data: &[u8], from: usize, min_index: Index) -> Option<usize> {
    let max_index = min_index.saturating_add((data.len() / HEADER) as Index);
    (from..data.len().saturating_sub(HEADER + 8)).find(|&p| {
        let len = u32::from_le_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        if !(8..=MAX_RECORD).contains(&len) || p + HEADER + len > data.len() {
            return false;
        }
        let payload = &data[p + HEADER..p + HEADER + len];
        let index = Index::from_le_bytes(payload[..8].try_into().unwrap());
        let crc = u32::from_le_bytes(data[p + 4..p + 8].try_into().unwrap());
        (min_index..=max_index).contains(&index)
            && framing::checksum(payload) == crc
            && framing::options(len)
                .deserialize::<(Index, Entry)>(payload)
                .is_ok()
    })
}

/// Read one segment's bytes (`path` names it in errors). Entries must be numbered from
/// `first_index` on. `is_last`: only the last segment may end in a torn tail.
pub fn scan_segment(
    path: &Path,
    data: &[u8],
    first_index: Index,
    is_last: bool,
) -> Result<Scanned, StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut out = Scanned::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        let damage = if rest.len() < HEADER {
            Some((
                data.len(),
                format!("partial record header ({} bytes)", rest.len()),
            ))
        } else if all_zero(rest) {
            Some((
                data.len(),
                format!("zero-filled tail of {} bytes", rest.len()),
            ))
        } else {
            let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
            if len <= MAX_RECORD && HEADER + len <= rest.len() {
                let payload = &rest[HEADER..HEADER + len];
                if framing::checksum(payload) == crc {
                    let (index, entry): (Index, Entry) = framing::options(len)
                        .deserialize(payload)
                        .map_err(|e| corrupt(pos, format!("undecodable record: {e}")))?;
                    let want = first_index + out.entries.len() as Index;
                    if index != want {
                        return Err(corrupt(
                            pos,
                            format!("record has index {index}, expected {want}"),
                        ));
                    }
                    out.offsets.push(pos as u64);
                    out.entries.push(entry);
                    pos += HEADER + len;
                    continue;
                }
                Some((pos + HEADER + len, "checksum mismatch".to_string()))
            } else {
                Some((
                    data.len(),
                    format!(
                        "record of {len} bytes runs past the end of the file ({} bytes left)",
                        rest.len()
                    ),
                ))
            }
        };
        let (end, reason) = damage.expect("every other case continued");
        if rest.len() >= HEADER {
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
            if let Some(n) = intact_payload_len(&rest[HEADER..], crc) {
                return Err(corrupt(
                    pos,
                    format!(
                        "damaged length field: the header says {} bytes but the intact payload has {n}",
                        u32::from_le_bytes(rest[..4].try_into().unwrap())
                    ),
                ));
            }
        }
        let damaged_index = first_index + out.entries.len() as Index;
        if let Some(next) = intact_record_from(data, pos + 1, damaged_index) {
            return Err(corrupt(
                pos,
                format!("{reason}, followed by an intact record at offset {next}"),
            ));
        }
        if !all_zero(&data[end..]) {
            return Err(corrupt(pos, format!("{reason} with data after it")));
        }
        if !is_last {
            return Err(corrupt(
                pos,
                format!("{reason} in a segment that is not the last (truncated segment?)"),
            ));
        }
        out.torn = Some(reason);
        break;
    }
    out.valid_len = pos as u64;
    Ok(out)
}

#[derive(Debug)]
struct Segment {
    first_index: Index,
    path: PathBuf,
    /// Byte offset of each record (entry `first_index + k` at `offsets[k]`).
    offsets: Vec<u64>,
    len: u64,
}

/// How to open a [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
    /// Injected disk failures (fault tests); `None` in production.
    pub faults: Option<Arc<DiskFaults>>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: SEGMENT_BYTES,
            faults: None,
        }
    }
}

/// The write-ahead log of one node.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Shared with [`PendingSync`]s, which fsync it on the node's sync thread.
    active: Arc<File>,
    pending: Vec<u8>,
    last_index: Index,
    segment_bytes: u64,
    dir_dirty: bool,
    faults: Option<Arc<DiskFaults>>,
    /// Set by the first failed write or fsync; see the module documentation.
    failed: Option<String>,
}

fn segment_name(first: Index) -> String {
    format!("{first:020}.wal")
}

fn encode_record(index: Index, entry: &Entry, out: &mut Vec<u8>) {
    // Encoded in place after room for the header, which is filled in once the length is known.
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    bincode::serialize_into(&mut *out, &(index, entry)).expect("entries always encode");
    let payload = &out[start + 8..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = framing::checksum(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// Everything written to the log before [`Wal::write_out`] returned it, made durable by
/// [`PendingSync::sync`], possibly on another thread while the log takes more writes. A later
/// roll, truncation or compaction does not invalidate it: it holds the file, not the path.
#[derive(Debug)]
pub struct PendingSync {
    file: Arc<File>,
    path: PathBuf,
    /// The directory, when segments were created or deleted since the last sync.
    dir: Option<PathBuf>,
    faults: Option<Arc<DiskFaults>>,
}

impl PendingSync {
    /// fsync the segment, then the directory if it changed.
    pub fn sync(&self) -> Result<(), StorageError> {
        sync_file(self.faults.as_deref(), &self.file).map_err(io_err(&self.path))?;
        match &self.dir {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    /// One sync covering `self` and `later` (taken after it): the later segment (an earlier one
    /// was fsynced when the log rolled past it) and the directory if either changed it.
    pub fn merge(self, later: PendingSync) -> PendingSync {
        PendingSync {
            dir: later.dir.or(self.dir),
            ..later
        }
    }
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
        let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        write_file(faults, &f, data).map_err(io_err(&tmp))?;
        sync_file(faults, &f).map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// fsync a directory so that created, renamed and deleted files are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Wal {
    /// Open (or create) the log in `dir`, recover every entry and report a torn tail.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Entry>, Option<TornTail>), StorageError> {
        Self::open_with(dir, WalOptions::default())
    }

    /// [`Wal::open`] with a custom segment size (tests use small segments).
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(Wal, Vec<Entry>, Option<TornTail>), StorageError> {
        Self::open_with(
            dir,
            WalOptions {
                segment_bytes,
                faults: None,
            },
        )
    }

    /// [`Wal::open`] with options.
    pub fn open_with(
        dir: &Path,
        opts: WalOptions,
    ) -> Result<(Wal, Vec<Entry>, Option<TornTail>), StorageError> {
        Self::open_after(dir, opts, 0)
    }

    /// Open the log of a node whose snapshot ends at `snapshot_index` (0: no snapshot) and
    /// recover the entries after it.
    ///
    /// Records up to the snapshot are covered by it and skipped. Segments that hold nothing
    /// past the snapshot are what an interrupted compaction left behind and are deleted, so a
    /// crash between writing a snapshot and compacting the log recovers. The first segment
    /// kept must start at or before `snapshot_index + 1`: a gap between the snapshot and the
    /// log is corruption. (A record at or before the snapshot may disagree with it: an
    /// installed snapshot replaces a conflicting log, and the storage drops the conflicting
    /// records after the snapshot durably before writing it.) When every record is covered (the node installed a snapshot past its
    /// log's end), the log restarts with an empty segment at `snapshot_index + 1`.
    pub fn open_after(
        dir: &Path,
        opts: WalOptions,
        snapshot_index: Index,
    ) -> Result<(Wal, Vec<Entry>, Option<TornTail>), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut names: Vec<(Index, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".wal") {
                let first: Index = stem.parse().ok().filter(|&f| f > 0).ok_or_else(|| {
                    StorageError::Invalid(format!(
                        "unexpected file {} in the log directory {}",
                        name,
                        dir.display()
                    ))
                })?;
                names.push((first, e.path()));
            }
        }
        names.sort();
        // Segments followed by one starting at or before `snapshot_index + 1` hold only
        // covered records: finish the compaction that was interrupted.
        let mut removed = false;
        while names.len() > 1 && names[1].0 <= snapshot_index + 1 {
            let (_, path) = names.remove(0);
            fs::remove_file(&path).map_err(io_err(&path))?;
            removed = true;
        }
        if removed {
            sync_dir(dir)?;
        }
        let mut entries = Vec::new();
        let mut segments = Vec::new();
        let mut torn = None;
        // Index of the last record read so far.
        let mut wal_end: Index = 0;
        let n = names.len();
        for (k, (first, path)) in names.into_iter().enumerate() {
            let is_last = k + 1 == n;
            let gap = if k == 0 {
                first > snapshot_index + 1
            } else {
                first != wal_end + 1
            };
            if gap {
                let what = if k == 0 && snapshot_index > 0 {
                    format!("the snapshot ends at index {snapshot_index}")
                } else if k == 0 {
                    "there is no snapshot (the log must start at index 1)".to_string()
                } else {
                    format!("the log before it ends at index {wal_end}")
                };
                return Err(StorageError::Corrupt {
                    path,
                    offset: 0,
                    reason: format!(
                        "segment starts at index {first} but {what}: a segment or the \
                         snapshot is missing, or an earlier segment lost records"
                    ),
                });
            }
            let data = fs::read(&path).map_err(io_err(&path))?;
            let scanned = scan_segment(&path, &data, first, is_last)?;
            if let Some(reason) = scanned.torn {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(scanned.valid_len).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
                torn = Some(TornTail {
                    path: path.clone(),
                    offset: scanned.valid_len,
                    dropped: data.len() as u64 - scanned.valid_len,
                    reason,
                });
            }
            let count = scanned.entries.len() as Index;
            for (j, e) in scanned.entries.into_iter().enumerate() {
                let index = first + j as Index;
                if index > snapshot_index {
                    entries.push(e);
                }
            }
            wal_end = first + count - 1;
            segments.push(Segment {
                first_index: first,
                path,
                offsets: scanned.offsets,
                len: scanned.valid_len,
            });
        }
        let ends_before_snapshot = segments.is_empty() || wal_end < snapshot_index;
        if ends_before_snapshot {
            // Nothing past the snapshot: start an empty segment right after it, then drop the
            // old ones (a crash in between leaves segments the next open removes as covered).
            let path = dir.join(segment_name(snapshot_index + 1));
            File::create(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            for seg in segments.drain(..) {
                if seg.path != path {
                    fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                }
            }
            sync_dir(dir)?;
            segments.push(Segment {
                first_index: snapshot_index + 1,
                path,
                offsets: Vec::new(),
                len: 0,
            });
        }
        let last_seg = segments.last().unwrap();
        let active = Arc::new(
            OpenOptions::new()
                .append(true)
                .open(&last_seg.path)
                .map_err(io_err(&last_seg.path))?,
        );
        // After a process crash the page cache may hold records that were written but never
        // fsynced; what is recovered here is treated as durable from now on (acknowledged,
        // voted on), so make it so. Earlier segments were fsynced when the log rolled past them.
        sync_file(opts.faults.as_deref(), &active).map_err(io_err(&last_seg.path))?;
        sync_dir(dir)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segments,
            active,
            pending: Vec::new(),
            last_index: snapshot_index + entries.len() as Index,
            segment_bytes: opts.segment_bytes,
            dir_dirty: false,
            faults: opts.faults,
            failed: None,
        };
        Ok((wal, entries, torn))
    }

    /// Index of the first segment's first record (records before it were compacted away).
    pub fn first_segment_index(&self) -> Index {
        self.segments[0].first_index
    }

    /// Index of the last entry staged.
    pub fn last_index(&self) -> Index {
        self.last_index
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Why the log stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn check(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Record the first failure; every later call refuses.
    fn poison<T>(&mut self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &r {
            if self.failed.is_none() {
                self.failed = Some(e.to_string());
            }
        }
        r
    }

    /// Stage `entries` at `last_index + 1 ..` (buffered; durable after [`Wal::sync`]).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check()?;
        for entry in entries {
            let seg_len = self.segments.last().unwrap().len + self.pending.len() as u64;
            if seg_len >= self.segment_bytes && !self.segments.last().unwrap().offsets.is_empty() {
                let r = self.roll();
                self.poison(r)?;
            }
            let index = self.last_index + 1;
            let seg = self.segments.last_mut().unwrap();
            seg.offsets.push(seg.len + self.pending.len() as u64);
            encode_record(index, entry, &mut self.pending);
            self.last_index = index;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if !self.pending.is_empty() {
            let seg = self.segments.last_mut().unwrap();
            write_file(self.faults.as_deref(), &self.active, &self.pending)
                .map_err(io_err(&seg.path))?;
            seg.len += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(())
    }

    /// Close the active segment (durably) and start a new one at `last_index + 1`.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        let old = &self.segments.last().unwrap().path;
        sync_file(self.faults.as_deref(), &self.active).map_err(io_err(old))?;
        let first = self.last_index + 1;
        let path = self.dir.join(segment_name(first));
        self.active = Arc::new(
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?,
        );
        self.segments.push(Segment {
            first_index: first,
            path,
            offsets: Vec::new(),
            len: 0,
        });
        self.dir_dirty = true;
        Ok(())
    }

    /// Drop every entry at index `>= from` (durable after [`Wal::sync`]).
    pub fn truncate_from(&mut self, from: Index) -> Result<(), StorageError> {
        self.check()?;
        if from > self.last_index {
            return Ok(());
        }
        let r = self.truncate_inner(from);
        self.poison(r)
    }

    fn truncate_inner(&mut self, from: Index) -> Result<(), StorageError> {
        self.flush()?;
        let from = from.max(1);
        if from < self.segments[0].first_index {
            return Err(StorageError::Invalid(format!(
                "truncating the log from index {from}, below its first record at {}                  (compacted entries are never truncated)",
                self.segments[0].first_index
            )));
        }
        // Later segments go first: a crash in between leaves a prefix of the old log.
        while self.segments.len() > 1 && self.segments.last().unwrap().first_index >= from {
            let seg = self.segments.pop().unwrap();
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            self.dir_dirty = true;
        }
        let seg = self.segments.last_mut().unwrap();
        let k = (from.saturating_sub(seg.first_index)) as usize;
        let offset = seg.offsets.get(k).copied().unwrap_or(seg.len);
        seg.offsets.truncate(k);
        seg.len = offset;
        let path = seg.path.clone();
        self.active = Arc::new(
            OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?,
        );
        self.active.set_len(offset).map_err(io_err(&path))?;
        self.last_index = from - 1;
        Ok(())
    }

    /// Forget every record up to `index`, which a durable snapshot now covers: delete the
    /// segments holding nothing past it, oldest first (a crash in between leaves a log that
    /// still continues the snapshot). The active segment is never deleted; a log that ends
    /// before `index` (a snapshot installed past its end) first rolls to a new segment at
    /// `index + 1`, so that the next append is numbered right.
    pub fn compact_to(&mut self, index: Index) -> Result<(), StorageError> {
        self.check()?;
        let r = self.compact_inner(index);
        self.poison(r)
    }

    fn compact_inner(&mut self, index: Index) -> Result<(), StorageError> {
        if self.last_index < index {
            // What is buffered is covered too; it is written out with the old segment,
            // which the loop below deletes.
            self.last_index = index;
            self.roll()?;
        }
        while self.segments.len() > 1 && self.segments[1].first_index <= index + 1 {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Write everything staged to the file, without waiting for it to be durable: that is the
    /// returned [`PendingSync`]'s job. A failure of that sync is the caller's to report (the
    /// log cannot see it).
    pub fn write_out(&mut self) -> Result<PendingSync, StorageError> {
        self.check()?;
        let r = self.flush();
        self.poison(r)?;
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        Ok(self.pending_sync(dir))
    }

    /// A sync of the active segment (and of `dir`, when given).
    fn pending_sync(&self, dir: Option<PathBuf>) -> PendingSync {
        PendingSync {
            file: self.active.clone(),
            path: self.segments.last().unwrap().path.clone(),
            dir,
            faults: self.faults.clone(),
        }
    }

    /// A sync of the log as written so far (records already handed to [`Wal::write_out`] or
    /// [`Wal::sync`]) and of its directory, taken without consuming anything: for a writer that
    /// must not get ahead of the log on disk, whatever other syncs are still pending.
    pub fn barrier(&self) -> PendingSync {
        self.pending_sync(Some(self.dir.clone()))
    }

    /// Write everything staged and fsync it (one fsync for the whole batch).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check()?;
        let r = self.sync_inner();
        self.poison(r)
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        let path = &self.segments.last().unwrap().path;
        sync_file(self.faults.as_deref(), &self.active).map_err(io_err(path))?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Command, Op};
    use std::io::Write;
    use std::io::{Seek, SeekFrom};

    fn entry(term: u64, k: u64) -> Entry {
        Entry {
            term,
            command: Command::Client {
                client_id: 7,
                seq: k,
                op: Op::Put {
                    key: format!("k{k}").into(),
                    value: "v".repeat(20).into(),
                },
            },
        }
    }

    fn entries(n: u64) -> Vec<Entry> {
        (1..=n).map(|k| entry(1 + k / 4, k)).collect()
    }

    fn last_segment(dir: &Path) -> PathBuf {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.pop().unwrap()
    }

    #[test]
    fn append_sync_recover_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, got, torn) = Wal::open_with_segment_bytes(dir.path(), 300).unwrap();
        assert!(got.is_empty() && torn.is_none());
        let es = entries(20);
        wal.append(&es).unwrap();
        wal.sync().unwrap();
        assert!(wal.segment_count() > 2);
        drop(wal);
        let (wal, got, torn) = Wal::open_with_segment_bytes(dir.path(), 300).unwrap();
        assert_eq!(got, es);
        assert!(torn.is_none());
        assert_eq!(wal.last_index(), 20);
    }

    #[test]
    fn compaction_keeps_what_follows_the_snapshot_and_a_gap_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || WalOptions {
            segment_bytes: 300,
            faults: None,
        };
        let (mut wal, _, _) = Wal::open_with(dir.path(), opts()).unwrap();
        let es = entries(20);
        wal.append(&es).unwrap();
        wal.compact_to(12).unwrap();
        wal.sync().unwrap();
        assert!(wal.first_segment_index() > 1 && wal.first_segment_index() <= 13);
        drop(wal);
        let (mut wal, got, _) = Wal::open_after(dir.path(), opts(), 12).unwrap();
        assert_eq!(got, es[12..].to_vec());
        assert_eq!(wal.last_index(), 20);
        // A snapshot past the end: the log restarts right after it.
        wal.compact_to(25).unwrap();
        wal.append(&es[..2]).unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.segment_count(), 1);
        drop(wal);
        let (_, got, _) = Wal::open_after(dir.path(), opts(), 25).unwrap();
        assert_eq!(got, es[..2].to_vec());
        // Without the snapshot, or with an older one, entries are missing.
        for snap in [0u64, 20] {
            let e = Wal::open_after(dir.path(), opts(), snap).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("00000000000000000026.wal"), "{msg}");
            assert!(msg.contains("starts at index 26"), "{msg}");
        }
    }

    #[test]
    fn recovery_makes_what_it_recovers_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _, _) = Wal::open(dir.path()).unwrap();
            wal.append(&entries(5)).unwrap();
            // Written, never fsynced: a process crash leaves it in the page cache only.
            wal.write_out().unwrap();
        }
        let faults = DiskFaults::new();
        faults.fail_syncs(true);
        let opts = WalOptions {
            segment_bytes: 1 << 20,
            faults: Some(faults.clone()),
        };
        let e = Wal::open_with(dir.path(), opts).unwrap_err().to_string();
        assert!(e.contains("fsync failed"), "{e}");
        assert_eq!(faults.refused(), 1);
        let (_, recovered, _) = Wal::open(dir.path()).unwrap();
        assert_eq!(recovered, entries(5));
    }

    #[test]
    fn truncate_within_and_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open_with_segment_bytes(dir.path(), 300).unwrap();
        let mut es = entries(20);
        wal.append(&es).unwrap();
        wal.sync().unwrap();
        for from in [17u64, 9, 2] {
            wal.truncate_from(from).unwrap();
            es.truncate(from as usize - 1);
            let extra = entry(9, 100 + from);
            wal.append(std::slice::from_ref(&extra)).unwrap();
            es.push(extra);
            wal.sync().unwrap();
            let (_, got, torn) = Wal::open_with_segment_bytes(dir.path(), 300).unwrap();
            assert_eq!(got, es, "after truncating from {from}");
            assert!(torn.is_none());
        }
        wal.truncate_from(1).unwrap();
        wal.sync().unwrap();
        let (_, got, _) = Wal::open_with_segment_bytes(dir.path(), 300).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn torn_tail_is_truncated_and_reported() {
        for cut in [1u64, 5, 9, 30] {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _, _) = Wal::open(dir.path()).unwrap();
            let es = entries(5);
            wal.append(&es).unwrap();
            wal.sync().unwrap();
            drop(wal);
            let seg = last_segment(dir.path());
            let len = fs::metadata(&seg).unwrap().len();
            let f = OpenOptions::new().write(true).open(&seg).unwrap();
            f.set_len(len - cut).unwrap();
            let (mut wal, got, torn) = Wal::open(dir.path()).unwrap();
            let torn = torn.expect("torn tail reported");
            assert_eq!(got, es[..4].to_vec(), "cut {cut}");
            assert_eq!(torn.path, seg);
            assert_eq!(fs::metadata(&seg).unwrap().len(), torn.offset);
            // The log keeps working after the truncation.
            wal.append(&es[4..]).unwrap();
            wal.sync().unwrap();
            let (_, got, torn) = Wal::open(dir.path()).unwrap();
            assert_eq!(got, es);
            assert!(torn.is_none());
        }
    }

    #[test]
    fn garbage_appended_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open(dir.path()).unwrap();
        wal.append(&entries(3)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let seg = last_segment(dir.path());
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0xAB; 13]).unwrap();
        let (_, got, torn) = Wal::open(dir.path()).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(torn.unwrap().dropped, 13);
    }

    #[test]
    fn corruption_in_the_middle_refuses_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open(dir.path()).unwrap();
        wal.append(&entries(5)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let seg = last_segment(dir.path());
        let data = fs::read(&seg).unwrap();
        let rec = data.len() / 5;
        let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
        // Flip a payload byte of the second record.
        f.seek(SeekFrom::Start(rec as u64 + 12)).unwrap();
        f.write_all(&[data[rec + 12] ^ 0xFF]).unwrap();
        drop(f);
        let err = Wal::open(dir.path()).unwrap_err();
        match &err {
            StorageError::Corrupt { path, offset, .. } => {
                assert_eq!(path, &seg);
                assert_eq!(*offset, rec as u64);
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&seg.display().to_string()) && msg.contains("offset"));
        // Nothing was lost: the file is untouched.
        assert_eq!(fs::metadata(&seg).unwrap().len(), data.len() as u64);
    }

    #[test]
    fn damage_in_a_non_last_segment_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = Wal::open_with_segment_bytes(dir.path(), 300).unwrap();
        wal.append(&entries(20)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let mut v: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        let first = &v[0];
        let len = fs::metadata(first).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(first)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert!(matches!(
            Wal::open_with_segment_bytes(dir.path(), 300),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
