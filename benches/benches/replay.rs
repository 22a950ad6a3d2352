//! Conformance replay throughput: steps per second replaying every trace of
//! `conformance/corpus` through `raft_conformance::replay::replay` (each step re-runs the
//! model, checks the recorded state, steps a core and compares every node). The traces are
//! parsed once, outside the timing.
//!
//! `cargo bench -p raft-benches --features replay --bench replay`

#![forbid(unsafe_code)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_model::trace::Trace;

fn corpus() -> Vec<Trace> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Trace::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn bench(c: &mut Criterion) {
    let traces = corpus();
    let steps: usize = traces.iter().map(|t| t.steps.len()).sum();
    eprintln!("replay: {} traces, {steps} steps", traces.len());
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(steps as u64));
    g.bench_function("corpus", |b| {
        b.iter(|| {
            for t in &traces {
                let report = raft_conformance::replay::replay(t, None).expect("fresh trace");
                assert!(report.divergence.is_none(), "divergence");
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = raft_benches::criterion_config();
    targets = bench
}
criterion_main!(benches);
