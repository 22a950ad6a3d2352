//! Model checker throughput: unique states per second of `raft_model::runner::run` on a fixed
//! small configuration (`Config::small()` with no restart and no retry: the configuration of the
//! model's symmetry test), depth-first, one thread, with and without symmetry reduction. The
//! allocator is mimalloc, as in the `raft-model` binary.
//!
//! `cargo bench -p raft-benches --bench model`

#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_model::runner::{run, RunOptions, Strategy};
use raft_model::Config;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config() -> Config {
    Config {
        max_restarts: 0,
        max_retries: 0,
        ..Config::small()
    }
}

fn options(symmetry: bool) -> RunOptions {
    RunOptions {
        strategy: Strategy::Dfs,
        threads: 1,
        symmetry,
        progress: false,
        ..RunOptions::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("model/dfs/1-thread");
    for (name, symmetry) in [("symmetry", true), ("no-symmetry", false)] {
        let summary = run(config(), &options(symmetry));
        // Exhaustive, and no always-property violated (some witnesses need retries or
        // restarts, which this configuration leaves out, so `ok()` is not asked for).
        assert!(summary.complete, "{name}: not exhaustive");
        assert!(
            summary
                .properties
                .iter()
                .all(|p| p.status != raft_model::runner::Status::Violated),
            "{name}: a property is violated"
        );
        let unique = summary.unique_states;
        eprintln!("model/{name}: {unique} unique states per run");
        g.throughput(Throughput::Elements(unique as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let s = run(config(), &options(symmetry));
                assert_eq!(s.unique_states, unique);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = raft_benches::criterion_config().sample_size(10);
    targets = bench
}
criterion_main!(benches);
