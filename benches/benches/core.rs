//! Committed proposals per second through the core: a 3-server in-memory cluster
//! (`raft_benches::core_cluster`), 16 B / 256 B / 4 KiB payloads, unbatched (one proposal,
//! committed before the next) and batched (64 proposals, then deliver), with the node defaults
//! (pipelining) and with `Params::conformance_off()`.
//!
//! `cargo bench -p raft-benches --bench core`

#![forbid(unsafe_code)]

// mimalloc, as in the `raft-node` binary and the peer comparison.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_benches::core_cluster::CoreCluster;
use raft_benches::workload::{timed_proposals, BATCH, PAYLOADS};
use raft_core::Params;

fn bench(c: &mut Criterion) {
    for (pname, params) in [
        ("defaults", Params::default()),
        ("conformance_off", Params::conformance_off()),
    ] {
        let mut g = c.benchmark_group(format!("core/{pname}"));
        for (size_name, size) in PAYLOADS {
            for (mode, batch) in [("unbatched", 1), ("batched", BATCH)] {
                g.throughput(Throughput::Elements(batch as u64));
                g.bench_function(BenchmarkId::new(mode, size_name), |b| {
                    b.iter_custom(|rounds| {
                        timed_proposals(|| CoreCluster::new(params.clone(), size), rounds, batch)
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = raft_benches::criterion_config();
    targets = bench
}
criterion_main!(benches);
