//! The durable log under group commit: appends per second, each acknowledged only after the
//! fsync that covers it, with 1, 8 and 64 concurrent writers. Writers hand 256 B entries to a
//! group-commit stage that, like the node loop, takes everything queued, appends it to the real
//! `Wal` (CRC32C segments) and fsyncs once for the whole batch before acknowledging each writer.
//! The log lives in a temporary directory under the current directory (the real disk, not
//! tmpfs).
//!
//! `cargo bench -p raft-benches --bench log`

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_core::{Command, Entry, Op};
use raft_node::runtime::wal::Wal;

const VALUE: usize = 256;

type Request = (Entry, mpsc::Sender<()>);

/// The group-commit stage: one fsync per batch of queued appends.
fn stage(wal: &mut Wal, rx: mpsc::Receiver<Request>) -> (u64, u64) {
    let (mut batches, mut appends) = (0, 0);
    let mut entries = Vec::new();
    let mut waiters = Vec::new();
    while let Ok(first) = rx.recv() {
        entries.clear();
        for (e, w) in std::iter::once(first).chain(rx.try_iter()) {
            entries.push(e);
            waiters.push(w);
        }
        wal.append(&entries).expect("append");
        wal.sync().expect("fsync");
        batches += 1;
        appends += entries.len() as u64;
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
    (batches, appends)
}

fn entry(writer: usize, seq: u64) -> Entry {
    Entry {
        term: 1,
        command: Command::Client {
            client_id: writer as u64 + 1,
            seq,
            op: Op::Put {
                key: format!("key-{writer}-{seq}").into(),
                value: "v".repeat(VALUE).into(),
            },
        },
    }
}

/// `total` appends spread over `writers` threads, each waiting for its acknowledgement before
/// the next append; returns the time from the start signal until the last acknowledgement.
fn run(writers: usize, total: u64) -> Duration {
    let dir = tempfile::Builder::new()
        .prefix("bench-log-")
        .tempdir_in(".")
        .expect("temporary directory on the real disk");
    let (mut wal, _, _) = Wal::open(dir.path()).expect("open wal");
    let (tx, rx) = mpsc::channel::<Request>();
    let stage = std::thread::spawn(move || stage(&mut wal, rx));
    let go = Arc::new(Barrier::new(writers + 1));
    let per = total.div_ceil(writers as u64);
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (tx, go) = (tx.clone(), go.clone());
            std::thread::spawn(move || {
                let (ack_tx, ack_rx) = mpsc::channel();
                go.wait();
                for seq in 1..=per {
                    tx.send((entry(w, seq), ack_tx.clone()))
                        .expect("stage alive");
                    ack_rx.recv().expect("acknowledged");
                }
            })
        })
        .collect();
    drop(tx);
    go.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("writer");
    }
    let took = start.elapsed();
    let (batches, appends) = stage.join().expect("stage");
    assert_eq!(appends, per * writers as u64);
    assert!(batches <= appends);
    // Report the time per append of what was asked for (`total`), scaled from what ran.
    took.mul_f64(total as f64 / appends as f64)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("log/group_commit_fsync");
    for writers in [1usize, 8, 64] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("writers", writers), |b| {
            b.iter_custom(|iters| run(writers, iters.max(writers as u64)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = raft_benches::criterion_config();
    targets = bench
}
criterion_main!(benches);
