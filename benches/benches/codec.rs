//! The peer wire codec: frames encoded and decoded per second (`runtime::codec`, the version
//! byte plus bincode; the length prefix is tokio_util's). AppendEntries with 1 and 64 entries
//! of 256 B values, a RequestVote and its response.
//!
//! `cargo bench -p raft-benches --bench codec`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raft_core::{Command, Entry, Envelope, Message, Op};
use raft_node::runtime::codec::{decode, encode, Frame};

fn append(n: usize) -> Frame {
    let entries = (0..n)
        .map(|i| Entry {
            term: 3,
            command: Command::Client {
                client_id: 42,
                seq: i as u64 + 1,
                op: Op::Put {
                    key: format!("key-{i:08}").into(),
                    value: "v".repeat(256).into(),
                },
            },
        })
        .collect();
    message(Message::AppendEntries {
        term: 3,
        leader: 1,
        prev_log_index: 1000,
        prev_log_term: 3,
        entries,
        leader_commit: 999,
    })
}

fn message(msg: Message) -> Frame {
    Frame::Message(Envelope {
        from: 1,
        to: 2,
        msg,
    })
}

fn bench(c: &mut Criterion) {
    let frames = [
        ("append_1x256B", append(1)),
        ("append_64x256B", append(64)),
        (
            "request_vote",
            message(Message::RequestVote {
                term: 3,
                candidate: 1,
                last_log_index: 1000,
                last_log_term: 2,
                pre_vote: false,
            }),
        ),
        (
            "vote_response",
            message(Message::RequestVoteResponse {
                term: 3,
                granted: true,
                pre_vote: false,
            }),
        ),
    ];
    let mut g = c.benchmark_group("codec");
    for (name, frame) in &frames {
        let bytes = encode(frame);
        assert_eq!(&decode(&bytes).unwrap(), frame);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| encode(black_box(frame)))
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| decode(black_box(&bytes)).unwrap())
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
