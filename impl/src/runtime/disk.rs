//! The seam every write and fsync of the storage goes through. Tests put injected failures
//! (a full disk, failing fsyncs) under a real log on real files; a build without the
//! `fault-injection` feature has no way to inject one: its `DiskFaults` has no values.

use std::fs::File;
use std::io::{self, Write};

#[cfg(feature = "fault-injection")]
pub use self::injected::DiskFaults;

/// Without the `fault-injection` feature no fault can exist: an uninhabited type, so an
/// `Option<Arc<DiskFaults>>` is always `None` and the storage writes straight to its files.
#[cfg(not(feature = "fault-injection"))]
#[derive(Debug)]
pub enum DiskFaults {}

#[cfg(not(feature = "fault-injection"))]
impl DiskFaults {
    fn write(&self, _: &File, _: &[u8]) -> io::Result<()> {
        match *self {}
    }
    fn sync(&self, _: &File) -> io::Result<()> {
        match *self {}
    }
}

/// Write `buf` to `f`, through the injected faults if any.
pub(crate) fn write_file(faults: Option<&DiskFaults>, mut f: &File, buf: &[u8]) -> io::Result<()> {
    match faults {
        Some(x) => x.write(f, buf),
        None => f.write_all(buf),
    }
}

/// fsync `f`'s data, through the injected faults if any.
pub(crate) fn sync_file(faults: Option<&DiskFaults>, f: &File) -> io::Result<()> {
    match faults {
        Some(x) => x.sync(f),
        None => f.sync_data(),
    }
}

#[cfg(feature = "fault-injection")]
mod injected {
    use std::fs::File;
    use std::io::{self, Write};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    /// Injected disk failures, shared by a test and the storage that writes through it. They act on
    /// the real files: a full disk writes what still fits and then fails, as `write(2)` does.
    #[derive(Debug, Default)]
    pub struct DiskFaults {
        /// Bytes that can still be written before writes fail with "no space" (`u64::MAX`: no limit).
        space: AtomicU64,
        fail_sync: AtomicBool,
        /// Writes refused so far.
        refused: AtomicU64,
    }

    impl DiskFaults {
        /// No faults yet.
        pub fn new() -> Arc<DiskFaults> {
            Arc::new(DiskFaults {
                space: AtomicU64::new(u64::MAX),
                ..DiskFaults::default()
            })
        }

        /// The disk fills up after `bytes` more bytes.
        pub fn disk_full_after(&self, bytes: u64) {
            self.space.store(bytes, Ordering::SeqCst);
        }

        /// Every fsync fails (with `on`) as on a device error.
        pub fn fail_syncs(&self, on: bool) {
            self.fail_sync.store(on, Ordering::SeqCst);
        }

        /// The faults clear (space is freed, the device recovers).
        pub fn clear(&self) {
            self.space.store(u64::MAX, Ordering::SeqCst);
            self.fail_sync.store(false, Ordering::SeqCst);
        }

        /// How many writes or fsyncs were refused.
        pub fn refused(&self) -> u64 {
            self.refused.load(Ordering::SeqCst)
        }

        pub(super) fn write(&self, mut f: &File, buf: &[u8]) -> io::Result<()> {
            let space = self.space.load(Ordering::SeqCst);
            if space >= buf.len() as u64 {
                if space != u64::MAX {
                    self.space.fetch_sub(buf.len() as u64, Ordering::SeqCst);
                }
                return f.write_all(buf);
            }
            f.write_all(&buf[..space as usize])?;
            self.space.store(0, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ))
        }

        pub(super) fn sync(&self, f: &File) -> io::Result<()> {
            if self.fail_sync.load(Ordering::SeqCst) {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::other("fsync failed: I/O error (injected)"));
            }
            f.sync_data()
        }
    }
}
