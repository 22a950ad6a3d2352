//! The durable log: segment files of CRC32C-checksummed records.
//!
//! A segment is named after the index of its first entry (`{first:020}.wal`). A record is
//! `[len: u32 LE][crc32c(payload): u32 LE][payload]`, the payload being the bincode encoding of
//! `(index, Entry)`. Appends are buffered; [`Wal::sync`] writes the buffer and fsyncs once, so
//! every proposal staged since the last sync shares one fsync (group commit).
//!
//! Recovery reads every segment in order. A damaged record at the very end of the last segment
//! (a partial header, a record running past the end of the file, or a checksum mismatch on the
//! last record) is a torn write: the file is truncated there and the truncation is reported.
//! Any other damage (a bad checksum with data after it, a damaged non-last segment, an index
//! that does not follow) refuses to start, naming the file and the offset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::core::{Entry, Index};

/// Default segment size before a new segment is started.
pub const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 8;
/// Largest record accepted on recovery.
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

#[derive(Debug)]
struct Segment {
    first_index: Index,
    path: PathBuf,
    /// Byte offset of each record (entry `first_index + k` at `offsets[k]`).
    offsets: Vec<u64>,
    len: u64,
}

/// The write-ahead log of one node.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: File,
    pending: Vec<u8>,
    last_index: Index,
    segment_bytes: u64,
    dir_dirty: bool,
}

fn segment_name(first: Index) -> String {
    format!("{first:020}.wal")
}

fn encode_record(index: Index, entry: &Entry, out: &mut Vec<u8>) {
    let payload = bincode::serialize(&(index, entry)).expect("entries always encode");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
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
        Self::open_with_segment_bytes(dir, SEGMENT_BYTES)
    }

    /// [`Wal::open`] with a custom segment size (tests use small segments).
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(Wal, Vec<Entry>, Option<TornTail>), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut names: Vec<(Index, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".wal") {
                let first: Index = stem.parse().map_err(|_| {
                    StorageError::Invalid(format!("unexpected file {} in the log", name))
                })?;
                names.push((first, e.path()));
            }
        }
        names.sort();
        let mut entries = Vec::new();
        let mut segments = Vec::new();
        let mut torn = None;
        let n = names.len();
        for (k, (first, path)) in names.into_iter().enumerate() {
            let is_last = k + 1 == n;
            let expected_first = entries.len() as Index + 1;
            if first != expected_first {
                return Err(StorageError::Corrupt {
                    path,
                    offset: 0,
                    reason: format!(
                        "segment starts at index {first}, expected {expected_first} (missing segment?)"
                    ),
                });
            }
            let data = fs::read(&path).map_err(io_err(&path))?;
            let mut pos = 0usize;
            let mut offsets = Vec::new();
            let mut damage: Option<String> = None;
            while pos < data.len() {
                let rest = data.len() - pos;
                if rest < HEADER {
                    damage = Some(format!("partial record header ({rest} bytes)"));
                    break;
                }
                let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
                let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
                if len > MAX_RECORD || HEADER + len > rest {
                    damage = Some(format!(
                        "record of {len} bytes runs past the end of the file ({rest} bytes left)"
                    ));
                    break;
                }
                let payload = &data[pos + HEADER..pos + HEADER + len];
                if crc32c::crc32c(payload) != crc {
                    if pos + HEADER + len == data.len() && is_last {
                        damage = Some("checksum mismatch on the last record".into());
                        break;
                    }
                    return Err(StorageError::Corrupt {
                        path,
                        offset: pos as u64,
                        reason: "checksum mismatch".into(),
                    });
                }
                let (index, entry): (Index, Entry) =
                    bincode::deserialize(payload).map_err(|e| StorageError::Corrupt {
                        path: path.clone(),
                        offset: pos as u64,
                        reason: format!("undecodable record: {e}"),
                    })?;
                let want = entries.len() as Index + 1;
                if index != want {
                    return Err(StorageError::Corrupt {
                        path,
                        offset: pos as u64,
                        reason: format!("record has index {index}, expected {want}"),
                    });
                }
                offsets.push(pos as u64);
                entries.push(entry);
                pos += HEADER + len;
            }
            if let Some(reason) = damage {
                if !is_last {
                    return Err(StorageError::Corrupt {
                        path,
                        offset: pos as u64,
                        reason: format!("{reason} in a segment that is not the last"),
                    });
                }
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(pos as u64).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
                torn = Some(TornTail {
                    path: path.clone(),
                    offset: pos as u64,
                    dropped: (data.len() - pos) as u64,
                    reason,
                });
            }
            segments.push(Segment {
                first_index: first,
                path,
                offsets,
                len: pos as u64,
            });
        }
        if segments.is_empty() {
            let path = dir.join(segment_name(1));
            File::create(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            segments.push(Segment {
                first_index: 1,
                path,
                offsets: Vec::new(),
                len: 0,
            });
        }
        let last = segments.last().unwrap();
        let active = OpenOptions::new()
            .append(true)
            .open(&last.path)
            .map_err(io_err(&last.path))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segments,
            active,
            pending: Vec::new(),
            last_index: entries.len() as Index,
            segment_bytes,
            dir_dirty: false,
        };
        Ok((wal, entries, torn))
    }

    /// Index of the last entry staged.
    pub fn last_index(&self) -> Index {
        self.last_index
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Stage `entries` at `last_index + 1 ..` (buffered; durable after [`Wal::sync`]).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        for entry in entries {
            let seg_len = self.segments.last().unwrap().len + self.pending.len() as u64;
            if seg_len >= self.segment_bytes && !self.segments.last().unwrap().offsets.is_empty() {
                self.roll()?;
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
            self.active
                .write_all(&self.pending)
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
        self.active.sync_data().map_err(io_err(old))?;
        let first = self.last_index + 1;
        let path = self.dir.join(segment_name(first));
        self.active = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
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
        if from > self.last_index {
            return Ok(());
        }
        self.flush()?;
        let from = from.max(1);
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
        self.active = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        self.active.set_len(offset).map_err(io_err(&path))?;
        self.last_index = from - 1;
        Ok(())
    }

    /// Write everything staged and fsync it (one fsync for the whole batch).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        let path = &self.segments.last().unwrap().path;
        self.active.sync_data().map_err(io_err(path))?;
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
    use crate::core::{Command, Op};
    use std::io::{Seek, SeekFrom};

    fn entry(term: u64, k: u64) -> Entry {
        Entry {
            term,
            command: Command::Client {
                client_id: 7,
                seq: k,
                op: Op::Put {
                    key: format!("k{k}"),
                    value: "v".repeat(20),
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
