//! Fuzzing the log record decoder with proptest: [`scan_segment`] (what recovery runs on every
//! segment) on random bytes and on structured mutations of valid segments, and [`Wal::open`] /
//! [`Storage::open`] on mutated files. Bad bytes must give an error or a torn tail, never a
//! panic or an allocation the bytes did not pay for, and whatever is recovered must be a prefix
//! of what was written: damage may cost a torn tail, never a changed entry.
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test --release -p raft-node --test fuzz_wal`; a
//! failure prints its seed, replayed with `PROPTEST_RNG_SEED=<seed>`.

mod fuzz_support;

use std::fs;
use std::path::Path;

use proptest::prelude::*;

use fuzz_support::{apply, config, entry, mutation};
use raft_core::Entry;
use raft_node::runtime::storage::Storage;
use raft_node::runtime::wal::{scan_segment, StorageError, Wal};

/// The record format, written out independently of the log's own encoder:
/// `[len: u32 LE][crc32c(payload): u32 LE][payload = bincode((index, entry))]`.
fn segment(first: u64, es: &[Entry]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut bounds = vec![0];
    for (k, e) in es.iter().enumerate() {
        let payload = bincode::serialize(&(first + k as u64, e)).unwrap();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        bounds.push(out.len());
    }
    (out, bounds)
}

fn path() -> &'static Path {
    Path::new("/fuzz/00000000000000000001.wal")
}

/// What every scan must satisfy, damaged or not.
fn check_scan(data: &[u8], written: &[Entry], is_last: bool) -> Result<(), TestCaseError> {
    match scan_segment(path(), data, 1, is_last) {
        Ok(s) => {
            prop_assert_eq!(s.entries.len(), s.offsets.len());
            prop_assert!(s.valid_len as usize <= data.len());
            prop_assert!(
                s.torn.is_none() || is_last,
                "a torn tail outside the last segment"
            );
            prop_assert!(s.torn.is_some() || s.valid_len as usize == data.len());
            prop_assert!(
                s.entries.len() <= written.len() && s.entries[..] == written[..s.entries.len()],
                "recovered entries that were not written"
            );
            // The kept prefix reads back the same, with nothing torn.
            let again = scan_segment(path(), &data[..s.valid_len as usize], 1, is_last).unwrap();
            prop_assert_eq!(again.entries, s.entries);
            prop_assert!(again.torn.is_none());
        }
        Err(StorageError::Corrupt {
            path: p, offset, ..
        }) => {
            prop_assert_eq!(p.as_path(), path());
            prop_assert!((offset as usize) < data.len());
        }
        Err(e) => prop_assert!(false, "unexpected error kind: {}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config("log record decoder", 2000))]

    #[test]
    fn random_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        is_last in any::<bool>(),
    ) {
        check_scan(&data, &[], is_last)?;
    }

    #[test]
    fn mutated_segments_recover_a_prefix_or_refuse(
        es in proptest::collection::vec(entry(), 1..6),
        ms in proptest::collection::vec(mutation(), 1..4),
        is_last in any::<bool>(),
    ) {
        let (mut data, _) = segment(1, &es);
        for m in &ms {
            apply(&mut data, m);
        }
        check_scan(&data, &es, is_last)?;
    }

    /// The promise of recovery in one property: cutting a valid segment anywhere (and padding
    /// it with zeros, as a file system may) recovers exactly the whole records before the cut,
    /// and reports a torn tail iff the cut is inside a record (in the last segment; anywhere
    /// else it refuses).
    #[test]
    fn truncation_recovers_the_whole_records(
        es in proptest::collection::vec(entry(), 1..6),
        cut in any::<prop::sample::Index>(),
        zeros in 0usize..64,
    ) {
        let (data, bounds) = segment(1, &es);
        let cut = cut.index(data.len() + 1);
        let mut torn = data[..cut].to_vec();
        torn.resize(cut + if cut < data.len() { zeros } else { 0 }, 0);
        // Records whose bytes all survived; zeros written over a record's zero bytes restore
        // it, which is no loss.
        let whole = (0..bounds.len())
            .rev()
            .find(|&k| bounds[k] <= torn.len() && torn[..bounds[k]] == data[..bounds[k]])
            .unwrap();
        let s = scan_segment(path(), &torn, 1, true).unwrap();
        prop_assert_eq!(&s.entries[..], &es[..whole]);
        prop_assert_eq!(s.valid_len as usize, bounds[whole]);
        prop_assert_eq!(s.torn.is_some(), torn.len() > bounds[whole]);
        if torn.len() > bounds[whole] {
            let refused = scan_segment(path(), &torn, 1, false);
            prop_assert!(matches!(refused, Err(StorageError::Corrupt { .. })), "not-last segment accepted a torn tail");
        }
    }

    /// One bit flipped anywhere but in the last record is always refused.
    #[test]
    fn a_flip_before_the_last_record_is_always_refused(
        es in proptest::collection::vec(entry(), 2..6),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        is_last in any::<bool>(),
    ) {
        let (mut data, bounds) = segment(1, &es);
        let last_start = bounds[bounds.len() - 2];
        let at = at.index(last_start);
        data[at] ^= 1 << bit;
        let rec = *bounds.iter().rfind(|&&b| b <= at).unwrap();
        match scan_segment(path(), &data, 1, is_last) {
            Err(StorageError::Corrupt { offset, .. }) => prop_assert_eq!(offset as usize, rec),
            other => prop_assert!(false, "flip at {} not refused: {:?}", at, other.map(|s| s.entries.len())),
        }
    }
}

#[test]
fn the_format_written_here_is_the_log_s_own() {
    let tmp = tempfile::tempdir().unwrap();
    let es: Vec<Entry> = (0..5)
        .map(|k| Entry {
            term: k,
            command: raft_core::Command::Noop,
        })
        .collect();
    let (mut wal, _, _) = Wal::open(tmp.path()).unwrap();
    wal.append(&es).unwrap();
    wal.sync().unwrap();
    let file = tmp.path().join("00000000000000000001.wal");
    assert_eq!(fs::read(file).unwrap(), segment(1, &es).0);
}

proptest! {
    #![proptest_config(config("log and hard-state files", 64))]

    /// Through the files: a mutated last segment and a mutated hard state. Opening either
    /// refuses (leaving the files as they were) or recovers a prefix of what was written.
    #[test]
    fn opening_mutated_files_refuses_or_recovers_a_prefix(
        es in proptest::collection::vec(entry(), 1..5),
        ms in proptest::collection::vec(mutation(), 1..3),
        hs_ms in proptest::collection::vec(mutation(), 0..2),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let (_st, _) = Storage::open(dir, "fuzz", 1).unwrap();
        }
        let wal_dir = dir.join("wal");
        let seg = wal_dir.join("00000000000000000001.wal");
        let (mut data, _) = segment(1, &es);
        for m in &ms {
            apply(&mut data, m);
        }
        fs::write(&seg, &data).unwrap();
        // A hard state at a term no lower than any entry's (what the node writes first).
        let hs = raft_core::HardState { current_term: 1000, voted_for: Some(1) };
        let body = bincode::serialize(&hs).unwrap();
        let mut hs_file = crc32c::crc32c(&body).to_le_bytes().to_vec();
        hs_file.extend_from_slice(&body);
        for m in &hs_ms {
            apply(&mut hs_file, m);
        }
        fs::write(dir.join("hard_state"), &hs_file).unwrap();
        match Storage::open(dir, "fuzz", 1) {
            Ok((_, rec)) => {
                let got = rec.log.entries();
                prop_assert!(got.len() <= es.len() && got == &es[..got.len()]);
                let now = fs::read(&seg).unwrap();
                prop_assert!(data.starts_with(&now), "recovery may only cut the file");
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert_eq!(fs::read(&seg).unwrap(), data, "a refused open changed the log");
            }
        }
    }
}
