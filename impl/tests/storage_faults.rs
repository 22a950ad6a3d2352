//! Storage faults against the real log and storage code (no processes, so it is fast): a torn
//! write at every byte offset of the last record (and of the last group commit), a bit flip at
//! every bit of every other record, missing and truncated segments, a corrupt or missing hard
//! state, and a full disk or failing fsync injected under the writer ([`DiskFaults`]).
//!
//! The promise checked everywhere: a torn tail is truncated and reported, anything else is an
//! error naming the file (and the offset for log records), and nothing acknowledged (synced
//! before the damage) is lost or silently changed.

use std::fs;
use std::path::{Path, PathBuf};

use raft_core::{
    ClientRequest, Command, Entry, HardState, Input, Membership, Op, Params, RaftCore, Role,
    NO_SESSION,
};
use raft_node::runtime::storage::Storage;
use raft_node::runtime::wal::{DiskFaults, StorageError, Wal, WalOptions};

/// A scratch directory, in memory when the machine has /dev/shm: these tests open a log
/// thousands of times and fsync in every case; on tmpfs the code paths are the same and an fsync
/// costs nothing, which keeps the whole file at a few seconds.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Overwrite one byte in place (no truncation, so the file is not reallocated).
fn poke(path: &Path, at: usize, byte: u8) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[byte], at as u64).unwrap();
}

fn entry(term: u64, k: u64) -> Entry {
    Entry {
        term,
        command: Command::Client {
            client_id: 7,
            seq: k,
            op: Op::Put {
                key: format!("k{k}").into(),
                value: "v".repeat(10 + (k as usize % 7)).into(),
            },
        },
    }
}

fn entries(n: u64) -> Vec<Entry> {
    (1..=n).map(|k| entry(1 + k / 4, k)).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// Start offsets of the records of a segment, read from the on-disk format
/// (`[len: u32 LE][crc: u32 LE][payload]`), plus the file length at the end.
fn record_bounds(data: &[u8]) -> Vec<usize> {
    let mut v = vec![0];
    let mut pos = 0;
    while pos < data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
        v.push(pos);
    }
    assert_eq!(pos, data.len());
    v
}

/// A log of `n` entries synced in batches of `batch` (each sync is one group commit).
fn write_log(dir: &Path, es: &[Entry], batch: usize, segment_bytes: u64) {
    let (mut wal, got, _) = Wal::open_with_segment_bytes(dir, segment_bytes).unwrap();
    assert!(got.is_empty());
    for chunk in es.chunks(batch) {
        wal.append(chunk).unwrap();
        wal.sync().unwrap();
    }
}

fn open(
    dir: &Path,
    segment_bytes: u64,
) -> Result<(Wal, Vec<Entry>, Option<raft_node::runtime::wal::TornTail>), StorageError> {
    Wal::open_with_segment_bytes(dir, segment_bytes)
}

/// Restore every segment of `dir` from `saved`.
fn restore(dir: &Path, saved: &[(PathBuf, Vec<u8>)]) {
    for p in segments(dir) {
        fs::remove_file(p).unwrap();
    }
    for (p, d) in saved {
        fs::write(p, d).unwrap();
    }
}

fn save(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    segments(dir)
        .into_iter()
        .map(|p| {
            let d = fs::read(&p).unwrap();
            (p, d)
        })
        .collect()
}

#[test]
fn torn_write_at_every_offset_of_the_last_record_keeps_every_earlier_record() {
    for segment_bytes in [1 << 20, 300] {
        let tmp = scratch();
        let dir = tmp.path();
        let es = entries(12);
        // One entry per sync: everything before the last record was acknowledged.
        write_log(dir, &es, 1, segment_bytes);
        let saved = save(dir);
        let (last, data) = saved.last().unwrap().clone();
        let bounds = record_bounds(&data);
        let n_last = bounds.len() - 1;
        let (start, end) = (bounds[n_last - 1], bounds[n_last]);
        let mut cases = 0;
        // Plain truncation, and truncation followed by zeros up to (and past) the record's end,
        // as a file system that extended the file before writing the data leaves it.
        for zero_fill in [0usize, end - start + 16] {
            for cut in start..=end {
                restore(dir, &saved);
                let mut torn_bytes = data[..cut].to_vec();
                if cut < end {
                    torn_bytes.resize(cut + zero_fill, 0);
                }
                fs::write(&last, &torn_bytes).unwrap();
                let (mut wal, got, torn) = open(dir, segment_bytes)
                    .unwrap_or_else(|e| panic!("cut at {cut} (+{zero_fill} zeros): {e}"));
                if cut == end {
                    assert_eq!(got, es, "complete record");
                    assert!(torn.is_none());
                    continue;
                }
                cases += 1;
                assert_eq!(got, es[..es.len() - 1], "cut at {cut} (+{zero_fill} zeros)");
                if cut == start && zero_fill == 0 {
                    assert!(torn.is_none(), "a cut at a record boundary is a clean end");
                } else {
                    let t = torn.unwrap_or_else(|| panic!("cut at {cut}: torn tail not reported"));
                    assert_eq!(t.path, last);
                    assert_eq!(t.offset, start as u64);
                    assert_eq!(t.dropped, (torn_bytes.len() - start) as u64);
                    assert!(!t.reason.is_empty());
                }
                assert_eq!(fs::metadata(&last).unwrap().len(), start as u64);
                // The log keeps working after the truncation, and the record rewritten is read back.
                wal.append(&es[es.len() - 1..]).unwrap();
                wal.sync().unwrap();
                drop(wal);
                let (_, got, torn) = open(dir, segment_bytes).unwrap();
                assert_eq!(got, es);
                assert!(torn.is_none());
            }
        }
        assert_eq!(cases, 2 * (end - start));
    }
}

#[test]
fn torn_write_anywhere_in_the_last_group_commit_keeps_every_acknowledged_record() {
    let tmp = scratch();
    let dir = tmp.path();
    let es = entries(9);
    // Two acknowledged group commits of 3, then a group commit of 3 torn by the crash.
    write_log(dir, &es, 3, 1 << 20);
    let saved = save(dir);
    let (seg, data) = saved[0].clone();
    let bounds = record_bounds(&data);
    let batch_start = bounds[6];
    for cut in batch_start..data.len() {
        restore(dir, &saved);
        fs::write(&seg, &data[..cut]).unwrap();
        let (_, got, _) = open(dir, 1 << 20).unwrap();
        let whole = bounds.iter().filter(|&&b| b <= cut).count() - 1;
        assert!(got.len() >= 6, "cut at {cut}: acknowledged records lost");
        assert_eq!(got, es[..whole], "cut at {cut}");
    }
}

#[test]
fn a_bit_flip_in_any_record_but_the_last_refuses_to_start_naming_file_and_offset() {
    let tmp = scratch();
    let dir = tmp.path();
    let es = entries(14);
    write_log(dir, &es, 2, 300);
    let saved = save(dir);
    assert!(saved.len() >= 3, "the log spans several segments");
    let mut flips = 0;
    for (s, (path, data)) in saved.iter().enumerate() {
        let bounds = record_bounds(data);
        let is_last_segment = s + 1 == saved.len();
        for r in 0..bounds.len() - 1 {
            if is_last_segment && r + 2 == bounds.len() {
                continue; // the last record of the log: damage there may be a torn write
            }
            for byte in bounds[r]..bounds[r + 1] {
                for bit in 0..8 {
                    let mut bad = data.clone();
                    bad[byte] ^= 1 << bit;
                    poke(path, byte, bad[byte]);
                    let err = match open(dir, 300) {
                        Err(e) => e,
                        Ok((_, got, torn)) => panic!(
                            "flip of bit {bit} at {}:{byte} not detected: {} entries, torn {torn:?}",
                            path.display(),
                            got.len()
                        ),
                    };
                    match &err {
                        StorageError::Corrupt {
                            path: p, offset, ..
                        } => {
                            assert_eq!(p, path, "byte {byte} bit {bit}: {err}");
                            assert_eq!(*offset, bounds[r] as u64, "byte {byte} bit {bit}: {err}");
                        }
                        other => panic!("byte {byte} bit {bit}: {other}"),
                    }
                    let msg = err.to_string();
                    assert!(msg.contains(&path.display().to_string()), "{msg}");
                    assert!(msg.contains(&format!("offset {}", bounds[r])), "{msg}");
                    assert!(msg.contains("refusing to start"), "{msg}");
                    // Refusing changes nothing on disk.
                    assert_eq!(fs::read(path).unwrap(), bad);
                    poke(path, byte, data[byte]);
                    flips += 1;
                }
            }
        }
    }
    let total: usize = saved.iter().map(|(_, d)| d.len()).sum();
    let last_len = {
        let d = &saved.last().unwrap().1;
        let b = record_bounds(d);
        b[b.len() - 1] - b[b.len() - 2]
    };
    assert_eq!(flips, 8 * (total - last_len));
    eprintln!("{flips} bit flips, each refused");
}

#[test]
fn garbage_over_a_record_header_in_the_middle_is_refused_not_taken_for_a_torn_tail() {
    // A header overwritten with garbage claims a record running past the end of the file,
    // which alone looks like a torn write; the intact records after it show it is not.
    let tmp = scratch();
    let dir = tmp.path();
    write_log(dir, &entries(6), 1, 1 << 20);
    let saved = save(dir);
    let (seg, data) = &saved[0];
    let bounds = record_bounds(data);
    for r in 0..bounds.len() - 2 {
        for fill in [0xFFu8, 0x7F, 0xA5] {
            restore(dir, &saved);
            let mut bad = data.clone();
            bad[bounds[r]..bounds[r] + 8].fill(fill);
            fs::write(seg, &bad).unwrap();
            let err = open(dir, 1 << 20).unwrap_err();
            let StorageError::Corrupt { offset, .. } = &err else {
                panic!("record {r}: {err}");
            };
            assert_eq!(*offset, bounds[r] as u64, "{err}");
            assert_eq!(fs::read(seg).unwrap(), bad);
        }
    }
}

#[test]
fn a_missing_segment_is_refused() {
    let tmp = scratch();
    let dir = tmp.path();
    write_log(dir, &entries(20), 1, 300);
    let saved = save(dir);
    assert!(saved.len() >= 4);
    for gone in 0..saved.len() - 1 {
        restore(dir, &saved);
        fs::remove_file(&saved[gone].0).unwrap();
        let err = open(dir, 300).unwrap_err();
        let next = &saved[gone + 1].0;
        match &err {
            StorageError::Corrupt {
                path,
                offset: 0,
                reason,
            } => {
                assert_eq!(path, next, "{err}");
                assert!(reason.contains("missing"), "{err}");
            }
            other => panic!("segment {gone} removed: {other}"),
        }
    }
}

#[test]
fn a_truncated_segment_that_is_not_the_last_is_refused_at_every_length() {
    let tmp = scratch();
    let dir = tmp.path();
    write_log(dir, &entries(20), 1, 300);
    let saved = save(dir);
    let (first, data) = &saved[0];
    let bounds = record_bounds(data);
    for cut in 0..data.len() {
        restore(dir, &saved);
        fs::write(first, &data[..cut]).unwrap();
        let err = open(dir, 300).unwrap_err();
        let StorageError::Corrupt {
            path,
            offset,
            reason,
        } = &err
        else {
            panic!("cut at {cut}: {err}");
        };
        if bounds.contains(&cut) {
            // Whole records are gone: the next segment no longer follows.
            assert_eq!(path, &saved[1].0, "{err}");
            assert_eq!(*offset, 0);
        } else {
            assert_eq!(path, first, "{err}");
            let rec = *bounds.iter().rfind(|&&b| b < cut).unwrap();
            assert_eq!(*offset, rec as u64, "cut at {cut}: {err}");
            assert!(reason.contains("not the last"), "{err}");
        }
    }
}

/// How a batch is made durable: [`Storage::commit`] (a node alone), or
/// [`Storage::commit_async`] and its `LogSync` on another thread (a node with peers).
#[derive(Clone, Copy, Debug)]
enum Commit {
    InLoop,
    Staged,
}

/// A one-node cluster: every proposal is committed by its own leader, so a test can drive the
/// core and the storage the way the node loop does (stage, commit, then acknowledge).
struct Node {
    core: RaftCore,
    storage: Storage,
    seq: u64,
    /// The log as of the last successful commit: what the node has acknowledged.
    acked: Vec<Entry>,
    acked_hs: HardState,
}

impl Node {
    fn open(dir: &Path, opts: WalOptions) -> Result<Node, StorageError> {
        let (storage, rec) = Storage::open_with(dir, "faults", 1, opts)?;
        let acked = rec.log.entries().to_vec();
        let core = RaftCore::from_durable(1, &[1], Params::default(), rec.hard_state, rec.log);
        let seq = acked.len() as u64 + 1000;
        Ok(Node {
            core,
            storage,
            seq,
            acked,
            acked_hs: rec.hard_state,
        })
    }

    /// One batch through the node loop's order; `Ok` means it may be acknowledged.
    fn step(&mut self, inputs: Vec<Input>) -> Result<(), StorageError> {
        self.step_with(inputs, Commit::InLoop)
    }

    fn step_with(&mut self, inputs: Vec<Input>, commit: Commit) -> Result<(), StorageError> {
        for input in inputs {
            let ready = self.core.step(input);
            self.storage.stage(&ready, &self.core)?;
        }
        match commit {
            Commit::InLoop => {
                self.storage.commit()?;
            }
            // As a node with peers does: the log's fsync runs on the sync stage's thread.
            Commit::Staged => {
                if let Some(sync) = self.storage.commit_async()? {
                    std::thread::spawn(move || sync.sync())
                        .join()
                        .expect("sync thread")?;
                }
            }
        }
        self.acked = self.core.log().entries().to_vec();
        self.acked_hs = self.core.hard_state();
        Ok(())
    }

    fn puts(&mut self, n: usize) -> Vec<Input> {
        (0..n)
            .map(|_| {
                self.seq += 1;
                // Writes without a session (the seq is only a nonce): each one is appended.
                Input::client(ClientRequest {
                    client_id: NO_SESSION,
                    seq: self.seq,
                    op: Op::Put {
                        key: format!("key{}", self.seq).into(),
                        value: "x".repeat(24).into(),
                    },
                })
            })
            .collect()
    }
}

/// Recovery after a fault: every acknowledged entry is there, unchanged, and whatever else was
/// recovered is what the node had staged (never something else).
fn check_recovered(dir: &Path, acked: &[Entry], acked_hs: HardState, staged: &[Entry]) {
    let (st, rec) = Storage::open(dir, "faults", 1)
        .unwrap_or_else(|e| panic!("restart after the fault cleared: {e}"));
    let got = rec.log.entries();
    assert!(
        got.len() >= acked.len() && got[..acked.len()] == *acked,
        "acknowledged entries lost or changed: had {}, recovered {}",
        acked.len(),
        got.len()
    );
    assert!(
        got.len() <= staged.len() && got == &staged[..got.len()],
        "recovered entries that were never staged"
    );
    assert!(rec.hard_state.current_term >= acked_hs.current_term);
    if rec.hard_state.current_term == acked_hs.current_term {
        assert_eq!(rec.hard_state.voted_for, acked_hs.voted_for);
    }
    drop(st);
}

#[test]
fn a_full_disk_at_every_byte_of_a_batch_is_refused_and_loses_nothing_acknowledged() {
    // Measure how many bytes the election and the first batches write, then let the disk fill
    // up at every byte offset of that span (hard state and log records alike).
    let probe = scratch();
    let faults = DiskFaults::new();
    let mut node = Node::open(
        probe.path(),
        WalOptions {
            segment_bytes: 400,
            faults: Some(faults.clone()),
        },
    )
    .unwrap();
    node.step(vec![Input::ElectionTimeout]).unwrap();
    assert_eq!(node.core.role(), Role::Leader);
    let before = dir_bytes(probe.path());
    let batch = node.puts(3);
    node.step(batch).unwrap();
    let span = dir_bytes(probe.path()) - before;
    assert!(span > 100);
    drop(node);

    let mut refusals = 0;
    for full_after in 0..span + 8 {
        let tmp = scratch();
        let dir = tmp.path();
        let faults = DiskFaults::new();
        let opts = WalOptions {
            segment_bytes: 400,
            faults: Some(faults.clone()),
        };
        let mut node = Node::open(dir, opts).unwrap();
        node.step(vec![Input::ElectionTimeout]).unwrap();
        faults.disk_full_after(full_after);
        let mut failed = false;
        for _ in 0..3 {
            let batch = node.puts(3);
            match node.step(batch) {
                Ok(()) => assert!(!failed, "a commit succeeded after a failed one"),
                Err(e) => {
                    assert!(
                        failed || e.to_string().contains("no space left"),
                        "full_after {full_after}: {e}"
                    );
                    failed = true;
                }
            }
        }
        if failed {
            refusals += 1;
            assert!(node.storage.failure().is_some());
            assert!(matches!(
                node.storage.commit(),
                Err(StorageError::Failed(_))
            ));
            // Space is freed, but the node must not carry on from a log whose file no longer
            // matches what it staged (a retried write would land after a partial record).
            faults.clear();
            let b = node.puts(2);
            assert!(matches!(node.step(b), Err(StorageError::Failed(_))));
        }
        let staged = node.core.log().entries().to_vec();
        let (acked, acked_hs) = (node.acked.clone(), node.acked_hs);
        drop(node);
        faults.clear();
        check_recovered(dir, &acked, acked_hs, &staged);
    }
    assert!(
        refusals as u64 >= span,
        "{refusals} refusals for {span} bytes"
    );
    eprintln!(
        "disk full at {} offsets: {refusals} refused commits, nothing acknowledged lost",
        span + 8
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

#[test]
fn a_failed_fsync_poisons_storage_until_restart() {
    failed_fsync_poisons_storage_until_restart(Commit::InLoop);
}

#[test]
fn a_failed_fsync_on_the_sync_stage_poisons_storage_until_restart() {
    failed_fsync_poisons_storage_until_restart(Commit::Staged);
}

fn failed_fsync_poisons_storage_until_restart(commit: Commit) {
    let tmp = scratch();
    let dir = tmp.path();
    let faults = DiskFaults::new();
    let opts = WalOptions {
        segment_bytes: 1 << 20,
        faults: Some(faults.clone()),
    };
    let mut node = Node::open(dir, opts).unwrap();
    node.step_with(vec![Input::ElectionTimeout], commit)
        .unwrap();
    let b = node.puts(4);
    node.step_with(b, commit).unwrap();
    faults.fail_syncs(true);
    let b = node.puts(2);
    let e = node.step_with(b, commit).unwrap_err();
    assert!(e.to_string().contains("fsync failed"), "{e}");
    // The device recovers, but the failed batch was never durable: retrying the fsync could
    // report pages the kernel already dropped as durable. Every later commit is refused.
    faults.clear();
    assert!(node.storage.failure().is_some());
    let b = node.puts(1);
    let e = node.step_with(b, commit).unwrap_err();
    assert!(matches!(e, StorageError::Failed(_)), "{e}");
    assert!(e.to_string().contains("until the node restarts"), "{e}");
    assert_eq!(faults.refused(), 1);
    let staged = node.core.log().entries().to_vec();
    let (acked, acked_hs) = (node.acked.clone(), node.acked_hs);
    drop(node);
    check_recovered(dir, &acked, acked_hs, &staged);
    // After the restart the node takes writes again.
    let mut node = Node::open(dir, WalOptions::default()).unwrap();
    node.step(vec![Input::ElectionTimeout]).unwrap();
    let b = node.puts(2);
    node.step(b).unwrap();
    let want = node.acked.clone();
    drop(node);
    let (_, rec) = Storage::open(dir, "faults", 1).unwrap();
    assert_eq!(rec.log.entries(), &want[..]);
}

fn node_with_log(dir: &Path) -> Vec<Entry> {
    let mut node = Node::open(dir, WalOptions::default()).unwrap();
    node.step(vec![Input::ElectionTimeout]).unwrap();
    let b = node.puts(3);
    node.step(b).unwrap();
    node.acked.clone()
}

#[test]
fn a_corrupt_hard_state_is_refused_at_every_bit() {
    let tmp = scratch();
    let dir = tmp.path();
    node_with_log(dir);
    let hs = dir.join("hard_state");
    let good = fs::read(&hs).unwrap();
    let mut cases = 0;
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[byte] ^= 1 << bit;
            fs::write(&hs, &bad).unwrap();
            let e = Storage::open(dir, "faults", 1).unwrap_err();
            assert!(e.to_string().contains(&hs.display().to_string()), "{e}");
            cases += 1;
        }
    }
    for cut in 0..good.len() {
        fs::write(&hs, &good[..cut]).unwrap();
        let e = Storage::open(dir, "faults", 1).unwrap_err();
        assert!(e.to_string().contains("hard_state"), "{e}");
        cases += 1;
    }
    fs::write(&hs, &good).unwrap();
    Storage::open(dir, "faults", 1).unwrap();
    eprintln!("{cases} damaged hard states refused");
}

#[test]
fn a_missing_or_stale_hard_state_next_to_a_log_is_refused() {
    let tmp = scratch();
    let dir = tmp.path();
    node_with_log(dir);
    let hs = dir.join("hard_state");
    let good = fs::read(&hs).unwrap();
    fs::remove_file(&hs).unwrap();
    let e = Storage::open(dir, "faults", 1).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(e.to_string().contains(&hs.display().to_string()), "{e}");

    // A hard state from before the log's term (an old copy put back): same format as the
    // node writes, `[crc32c][bincode(HardState)]`, so only its content is stale.
    let stale = HardState {
        current_term: 0,
        voted_for: None,
    };
    let body = bincode::serialize(&stale).unwrap();
    let mut file = crc32c::crc32c(&body).to_le_bytes().to_vec();
    file.extend_from_slice(&body);
    fs::write(&hs, &file).unwrap();
    let e = Storage::open(dir, "faults", 1).unwrap_err();
    assert!(e.to_string().contains("older than the log"), "{e}");
    fs::write(&hs, &good).unwrap();
    Storage::open(dir, "faults", 1).unwrap();

    // A lost identity file next to existing state.
    let meta = dir.join("meta.json");
    let m = fs::read(&meta).unwrap();
    fs::remove_file(&meta).unwrap();
    let e = Storage::open(dir, "faults", 1).unwrap_err();
    assert!(e.to_string().contains("meta.json"), "{e}");
    fs::write(&meta, m).unwrap();
    Storage::open(dir, "faults", 1).unwrap();
}

#[test]
fn recovery_of_a_large_garbage_tail_stays_fast() {
    // A torn tail of 8 MiB of random bytes: the scan for an intact record after the damage
    // must not be quadratic (each offset is filtered by its index before any checksum).
    let tmp = scratch();
    let dir = tmp.path();
    write_log(dir, &entries(3), 3, 1 << 30);
    let seg = segments(dir).pop().unwrap();
    let mut data = fs::read(&seg).unwrap();
    let good = data.len();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    data.extend((0..8 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    fs::write(&seg, &data).unwrap();
    let start = std::time::Instant::now();
    let r = open(dir, 1 << 30);
    let took = start.elapsed();
    // Garbage whose first "record" runs past the end of the file, with no intact record in
    // it, is a torn tail: the three records are kept.
    let (_, got, torn) = r.unwrap();
    assert_eq!(got, entries(3));
    assert_eq!(torn.unwrap().offset, good as u64);
    eprintln!("8 MiB garbage tail scanned in {took:?}");
}

/// A one-node leader with `n` committed puts, restored from whatever `dir` holds (snapshot
/// included), stepping and persisting as the node loop does.
fn compacting_node(dir: &Path, opts: WalOptions, n: u64) -> (Storage, RaftCore) {
    let (mut st, rec) = Storage::open_with(dir, "faults", 1, opts).unwrap();
    let mut core = RaftCore::restore(
        1,
        Membership::voters([1]),
        Params::default(),
        rec.hard_state,
        rec.snapshot,
        rec.log,
    );
    let mut inputs = vec![Input::ElectionTimeout];
    inputs.extend((1..=n).map(|k| {
        Input::client(ClientRequest {
            client_id: NO_SESSION,
            seq: k,
            op: Op::Put {
                key: format!("key{}", k % 7).into(),
                value: format!("{k:024}").into(),
            },
        })
    }));
    for input in inputs {
        let r = core.step(input);
        st.stage(&r, &core).unwrap();
        st.commit().unwrap();
    }
    (st, core)
}

#[test]
fn a_full_disk_or_a_failed_fsync_during_a_compaction_loses_nothing() {
    let opts = |faults: &std::sync::Arc<DiskFaults>| WalOptions {
        segment_bytes: 400,
        faults: Some(faults.clone()),
    };
    // The span of bytes a compaction writes: the snapshot file, and its 12-byte header once
    // more (first without the checksum, which is known once the body is written).
    let probe = scratch();
    let faults = DiskFaults::new();
    let (mut st, mut core) = compacting_node(probe.path(), opts(&faults), 30);
    let expected = core.kv().clone();
    let r = core.step(Input::Compact);
    st.stage(&r, &core).unwrap();
    st.commit().unwrap();
    let span = fs::metadata(probe.path().join("snapshot")).unwrap().len() + 12;
    assert!(span > 100, "{span}");
    drop(st);

    let mut refused = 0;
    for fault in (0..span + 8).map(Some).chain([None]) {
        let tmp = scratch();
        let dir = tmp.path();
        let faults = DiskFaults::new();
        let (mut st, mut core) = compacting_node(dir, opts(&faults), 30);
        match fault {
            Some(bytes) => faults.disk_full_after(bytes),
            None => faults.fail_syncs(true),
        }
        let r = core.step(Input::Compact);
        let res = st.stage(&r, &core).and_then(|()| st.commit().map(|_| ()));
        let should_fail = fault.is_none_or(|b| b < span);
        assert_eq!(res.is_err(), should_fail, "fault {fault:?}: {res:?}");
        if res.is_err() {
            refused += 1;
            assert!(matches!(st.commit(), Err(StorageError::Failed(_))));
        }
        drop(st);
        faults.clear();
        // A restart recovers the same state machine, from the snapshot or from the full log.
        let (st, rec) = Storage::open(dir, "faults", 1)
            .unwrap_or_else(|e| panic!("fault {fault:?}: restart: {e}"));
        let compacted = rec.snapshot.last_included_index > 0;
        assert_eq!(compacted, !should_fail, "fault {fault:?}");
        let mut restarted = RaftCore::restore(
            1,
            Membership::voters([1]),
            Params::default(),
            rec.hard_state,
            rec.snapshot,
            rec.log,
        );
        restarted.step(Input::ElectionTimeout);
        assert_eq!(restarted.kv(), &expected, "fault {fault:?}");
        drop(st);
    }
    eprintln!(
        "compaction under a full disk at {} offsets and a failed fsync: {refused} refused, \
         the state machine recovered every time",
        span + 8
    );
}
