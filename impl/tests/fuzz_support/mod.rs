//! Shared by the `fuzz_*` tests: the proptest configuration (seeded, replayable, case count
//! from `PROPTEST_CASES`), strategies for the values on the wire and in the log, and the
//! structured mutations applied to their valid encodings.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use raft_core::{Command, Entry, Envelope, Message, Op};

/// A configuration with `default_cases` cases unless `PROPTEST_CASES` says otherwise, and a
/// seed from `PROPTEST_RNG_SEED` or a fresh one, printed so that a failure replays with it.
/// Failing inputs are also saved by proptest's default persistence (a `proptest-regressions`
/// file beside the test) and replayed first on the next run.
pub fn config(name: &str, default_cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    eprintln!("{name}: {cases} cases, seed {seed} (replay: PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases})");
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (text(), text()).prop_map(|(key, value)| Op::Put {
            key: key.into(),
            value: value.into()
        }),
        text().prop_map(|key| Op::Get { key: key.into() }),
        text().prop_map(|key| Op::Delete { key: key.into() }),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(text())
        )
            .prop_map(|(key, expected, new)| Op::Cas {
                key: key.into(),
                expected: expected.map(Into::into),
                new: new.map(Into::into),
            }),
    ]
}

pub fn entry() -> impl Strategy<Value = Entry> {
    (
        0u64..1000,
        prop_oneof![
            Just(Command::Noop),
            any::<u64>().prop_map(|nonce| Command::Register { nonce }),
            (any::<u64>(), any::<u64>(), op()).prop_map(|(client_id, seq, op)| Command::Client {
                client_id,
                seq,
                op
            }),
        ],
    )
        .prop_map(|(term, command)| Entry { term, command })
}

pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(term, candidate, last_log_index, last_log_term, pre_vote)| Message::RequestVote {
                    term,
                    candidate,
                    last_log_index,
                    last_log_term,
                    pre_vote,
                }
            ),
        (any::<u64>(), any::<bool>(), any::<bool>()).prop_map(|(term, granted, pre_vote)| {
            Message::RequestVoteResponse {
                term,
                granted,
                pre_vote,
            }
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(entry(), 0..4),
            any::<u64>()
        )
            .prop_map(
                |(term, leader, prev_log_index, prev_log_term, entries, leader_commit)| {
                    Message::AppendEntries {
                        term,
                        leader,
                        prev_log_index,
                        prev_log_term,
                        entries,
                        leader_commit,
                    }
                }
            ),
        (any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(term, success, last_index)| {
            Message::AppendEntriesResponse {
                term,
                success,
                last_index,
            }
        }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, leader, round)| {
            Message::ReadIndex {
                term,
                leader,
                round,
            }
        }),
        (any::<u64>(), any::<u64>(), any::<bool>())
            .prop_map(|(term, round, ok)| Message::ReadIndexResponse { term, round, ok }),
    ]
}

pub fn envelope() -> impl Strategy<Value = Envelope> {
    (any::<u64>(), any::<u64>(), message()).prop_map(|(from, to, msg)| Envelope { from, to, msg })
}

/// One structured mutation of a valid encoding.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip bit `bit` of the byte at `at` (positions are taken modulo the length).
    Flip { at: usize, bit: u8 },
    /// Cut the input to `len` bytes.
    Truncate { len: usize },
    /// Overwrite the byte at `at`.
    Set { at: usize, byte: u8 },
    /// Insert bytes at `at`.
    Insert { at: usize, bytes: Vec<u8> },
    /// Overwrite 4 bytes at `at` with a little- or big-endian `u32` (a length field), often huge.
    Length {
        at: usize,
        value: u32,
        big_endian: bool,
    },
    /// Remove `len` bytes at `at`.
    Remove { at: usize, len: usize },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (
            any::<usize>(),
            prop_oneof![any::<u32>(), Just(u32::MAX), Just(1 << 30), 0u32..64],
            any::<bool>()
        )
            .prop_map(|(at, value, big_endian)| Mutation::Length { at, value, big_endian }),
        1 => (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

/// Apply `m` to `data` (a no-op on empty input where a position is needed).
pub fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let n = data.len();
    match m {
        Mutation::Flip { at, bit } if n > 0 => data[at % n] ^= 1 << bit,
        Mutation::Truncate { len } => data.truncate(len % (n + 1)),
        Mutation::Set { at, byte } if n > 0 => data[at % n] = *byte,
        Mutation::Insert { at, bytes } => {
            let at = at % (n + 1);
            data.splice(at..at, bytes.iter().copied());
        }
        Mutation::Length {
            at,
            value,
            big_endian,
        } if n >= 4 => {
            let at = at % (n - 3);
            let b = if *big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            };
            data[at..at + 4].copy_from_slice(&b);
        }
        Mutation::Remove { at, len } if n > 0 => {
            let at = at % n;
            let end = (at + len).min(n);
            data.drain(at..end);
        }
        _ => {}
    }
}
