//! Peer comparison, side by side in one run: the same in-memory 3-server proposal workload
//! through our core (`raft_benches::core_cluster`) and through tikv's raft-rs
//! (`raft_benches::peer`), each with two matching settings: the node defaults (pre-vote,
//! check-quorum, 1 MiB per append, 8 appends in flight) and `conformance_off` (no byte cap, no
//! pipelining).
//!
//! `cargo bench -p raft-benches --features peer --bench peer`

#![forbid(unsafe_code)]

// Both implementations run in this one process, so they share the allocator; it is mimalloc,
// as in the `raft-node` binary that ships the core.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_benches::core_cluster::CoreCluster;
use raft_benches::peer::{PeerCluster, PeerParams};
use raft_benches::workload::{timed_proposals, BATCH, PAYLOADS};
use raft_core::Params;

fn bench(c: &mut Criterion) {
    for (pname, ours, theirs) in [
        ("defaults", Params::default(), PeerParams::node_defaults()),
        (
            "conformance_off",
            Params::conformance_off(),
            PeerParams::conformance_off(),
        ),
    ] {
        for (size_name, size) in PAYLOADS {
            for (mode, batch) in [("unbatched", 1), ("batched", BATCH)] {
                let mut g = c.benchmark_group(format!("peer/{pname}/{mode}/{size_name}"));
                g.throughput(Throughput::Elements(batch as u64));
                g.bench_function(BenchmarkId::from_parameter("raftright"), |b| {
                    b.iter_custom(|rounds| {
                        timed_proposals(|| CoreCluster::new(ours.clone(), size), rounds, batch)
                    })
                });
                g.bench_function(BenchmarkId::from_parameter("raft-rs"), |b| {
                    b.iter_custom(|rounds| {
                        timed_proposals(|| PeerCluster::new(theirs, size), rounds, batch)
                    })
                });
                g.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = raft_benches::criterion_config();
    targets = bench
}
criterion_main!(benches);
