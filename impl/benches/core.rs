//! Committed proposals per second through the core: a 3-server in-memory cluster, messages
//! delivered in FIFO order, persistence a no-op. `unbatched`: one proposal at a time, each
//! committed before the next. `batched`: 64 proposals per round before delivering.

#![forbid(unsafe_code)]

use std::collections::VecDeque;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_node::core::{ClientRequest, Envelope, Input, Op, Params, RaftCore};

struct Mem {
    nodes: Vec<RaftCore>,
    queue: VecDeque<Envelope>,
    seq: u64,
}

impl Mem {
    fn new(params: Params) -> Self {
        let ids = [1, 2, 3];
        let nodes = ids
            .iter()
            .map(|&i| RaftCore::new(i, &ids, params.clone()))
            .collect();
        let mut m = Mem {
            nodes,
            queue: VecDeque::new(),
            seq: 0,
        };
        m.step(1, Input::ElectionTimeout);
        m.drain();
        assert!(m.nodes[0].is_leader());
        m
    }
    fn step(&mut self, id: u64, input: Input) {
        let ready = self.nodes[id as usize - 1].step(input);
        self.queue.extend(ready.messages);
    }
    fn drain(&mut self) {
        while let Some(env) = self.queue.pop_front() {
            let to = env.to;
            self.step(to, Input::Message(env));
        }
    }
    fn propose(&mut self, n: u64) {
        for _ in 0..n {
            self.seq += 1;
            let op = Op::Put {
                key: "k".into(),
                value: "v".into(),
            };
            self.step(
                1,
                Input::Client(ClientRequest {
                    client_id: 1,
                    seq: self.seq,
                    op,
                }),
            );
        }
        self.drain();
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    for (name, batch) in [("unbatched", 1u64), ("batched", 64)] {
        g.throughput(Throughput::Elements(batch));
        g.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
            let mut m = Mem::new(Params::default());
            b.iter(|| {
                let before = m.nodes[0].commit_index();
                m.propose(batch);
                assert!(m.nodes[0].commit_index() >= before + batch);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
