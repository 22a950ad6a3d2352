//! A state machine of one's own on raft-core: a replicated counter on three servers, in
//! memory. Every server persists each `Ready` into a `MemoryStorage` before its messages go
//! on the (FIFO) network, a follower is cut off and restarted from its storage, and at the end
//! the three replicas must have applied the same commands in the same order.
//!
//! `cargo run -p raft-core --example counter`; `cargo test -p raft-core` runs it too.

use std::collections::VecDeque;

use raft_core::{
    Envelope, Index, Input, Membership, MemoryStorage, NodeId, Params, RaftCore, Role, StateMachine,
};
use serde::{Deserialize, Serialize};

/// The replicated state: a running total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counter {
    value: i64,
}

/// What a log entry of the counter carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CounterCommand {
    /// The entry a new leader appends; changes nothing.
    Noop,
    /// Add `n`; `id`, chosen by the client, routes the answer back to it.
    Add { id: u64, n: i64 },
}

/// A client's request: add `n`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Add {
    pub id: u64,
    pub n: i64,
}

/// What a client hears back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CounterReply {
    /// The add `id` was applied; the counter is now `value`.
    Added { id: u64, value: i64 },
    /// A linearizable read of the counter.
    Value(i64),
    /// Ask `hint` instead (`id`: the add this answers; `None` for a read).
    NotLeader {
        id: Option<u64>,
        hint: Option<NodeId>,
    },
}

impl StateMachine for Counter {
    type Command = CounterCommand;
    type Request = Add;
    type Query = ();
    type Reply = CounterReply;

    fn noop() -> CounterCommand {
        CounterCommand::Noop
    }

    fn propose(&self, request: Add, _: Index, _: &Params) -> Result<CounterCommand, CounterReply> {
        // No deduplication: a retried add is a second entry and counts twice.
        Ok(CounterCommand::Add {
            id: request.id,
            n: request.n,
        })
    }

    fn apply(&mut self, _: Index, command: &CounterCommand, _: &Params) -> Option<CounterReply> {
        match *command {
            CounterCommand::Noop => None,
            CounterCommand::Add { id, n } => {
                // Wrapping, not panicking, so that every replica reaches the same value even
                // when a client overflows it.
                self.value = self.value.wrapping_add(n);
                Some(CounterReply::Added {
                    id,
                    value: self.value,
                })
            }
        }
    }

    fn query(&self, (): ()) -> CounterReply {
        CounterReply::Value(self.value)
    }

    fn not_leader(request: Add, hint: Option<NodeId>) -> CounterReply {
        CounterReply::NotLeader {
            id: Some(request.id),
            hint,
        }
    }

    fn query_not_leader((): (), hint: Option<NodeId>) -> CounterReply {
        CounterReply::NotLeader { id: None, hint }
    }

    fn command_size(_: &CounterCommand) -> usize {
        16
    }
}

/// Three servers, their storage and a FIFO network, driven by hand.
struct Cluster {
    ids: Vec<NodeId>,
    params: Params,
    cores: Vec<RaftCore<Counter>>,
    storage: Vec<MemoryStorage<Counter>>,
    network: VecDeque<Envelope<Counter>>,
    /// A server that is down: messages to it are lost.
    down: Option<NodeId>,
    /// Per server, the adds it applied since it (re)started: `(index, id, n)`.
    applied: Vec<Vec<(Index, u64, i64)>>,
    /// What clients heard back.
    replies: Vec<CounterReply>,
}

impl Cluster {
    fn new(ids: &[NodeId]) -> Self {
        let params = Params::default();
        Cluster {
            ids: ids.to_vec(),
            cores: ids
                .iter()
                .map(|&id| {
                    RaftCore::with_state_machine(id, ids, params.clone(), Counter::default())
                })
                .collect(),
            storage: ids.iter().map(|_| MemoryStorage::default()).collect(),
            network: VecDeque::new(),
            down: None,
            applied: ids.iter().map(|_| Vec::new()).collect(),
            replies: Vec::new(),
            params,
        }
    }

    fn slot(&self, id: NodeId) -> usize {
        self.ids.iter().position(|&i| i == id).expect("a member")
    }

    fn core(&self, id: NodeId) -> &RaftCore<Counter> {
        &self.cores[self.slot(id)]
    }

    /// One input, and its `Ready` handled the way the contract says.
    fn step(&mut self, id: NodeId, input: Input<Counter>) {
        let i = self.slot(id);
        let ready = self.cores[i].step(input);
        // 1. Persist before anything leaves the server: a vote or an acknowledged entry must
        //    survive a crash.
        self.storage[i].persist(&self.cores[i], &ready);
        // What was applied, read back from the log (the core has applied it already).
        if let Some(range) = &ready.applied {
            for index in range.clone() {
                let entry = self.cores[i]
                    .log()
                    .get(index)
                    .expect("applied entries are held");
                if let CounterCommand::Add { id, n } = entry.command {
                    self.applied[i].push((index, id, n));
                }
            }
        }
        // 2. Only then send.
        self.network.extend(ready.messages);
        // 3. Answer clients.
        self.replies.extend(ready.replies);
    }

    /// Deliver messages in order until the network is quiet.
    fn deliver_all(&mut self) {
        while let Some(env) = self.network.pop_front() {
            if Some(env.to) == self.down {
                continue;
            }
            self.step(env.to, Input::Message(env));
        }
    }

    /// Crash `id` and restart it from what it persisted, forgetting everything else.
    fn restart(&mut self, id: NodeId) {
        let i = self.slot(id);
        self.cores[i] = self.storage[i].restore(
            id,
            &Membership::voters(self.ids.iter().copied()),
            self.params.clone(),
        );
        self.applied[i].clear();
    }
}

/// Runs the cluster and checks it; returns the final value of the counter.
pub fn run() -> i64 {
    let mut c = Cluster::new(&[1, 2, 3]);

    // Server 1's election timer fires first: pre-vote, vote, then the leader's no-op.
    c.step(1, Input::ElectionTimeout);
    c.deliver_all();
    assert_eq!(c.core(1).role(), Role::Leader);
    assert_eq!(c.core(2).leader_id(), Some(1));

    // A follower sends clients to the leader.
    c.step(2, Input::Client(Add { id: 0, n: 100 }));
    assert_eq!(
        c.replies.pop(),
        Some(CounterReply::NotLeader {
            id: Some(0),
            hint: Some(1)
        })
    );

    for id in 1..=5 {
        c.step(1, Input::Client(Add { id, n: id as i64 }));
    }
    c.deliver_all();
    // Followers learn the new commit index from the next append: a heartbeat.
    c.step(1, Input::HeartbeatTimeout);
    c.deliver_all();

    // Server 3 goes down; the other two still form a majority and commit.
    c.down = Some(3);
    for id in 6..=10 {
        c.step(1, Input::Client(Add { id, n: id as i64 }));
        c.deliver_all();
    }
    assert_eq!(c.core(3).last_applied(), 6, "the no-op and adds 1..=5 only");
    assert_eq!(
        c.core(1).commit_index(),
        11,
        "servers 1 and 2 are a majority"
    );

    // It comes back with only what it persisted, and catches up on heartbeats.
    c.restart(3);
    c.down = None;
    let target = c.core(1).commit_index();
    for _ in 0..20 {
        if c.ids.iter().all(|&id| c.core(id).last_applied() == target) {
            break;
        }
        c.step(1, Input::HeartbeatTimeout);
        c.deliver_all();
    }

    // The leader answered every add, in order, with the running total.
    let mut total = 0;
    let expected: Vec<CounterReply> = (1..=10)
        .map(|id| {
            total += id as i64;
            CounterReply::Added { id, value: total }
        })
        .collect();
    assert_eq!(c.replies, expected);

    // Every replica applied the same adds in the same order.
    let adds: Vec<(Index, u64, i64)> = (1..=10).map(|id| (id + 1, id, id as i64)).collect();
    for (i, &id) in c.ids.iter().enumerate() {
        assert_eq!(
            c.applied[i], adds,
            "server {id} applied a different sequence"
        );
        assert_eq!(c.core(id).last_applied(), target);
        assert_eq!(c.core(id).state_machine(), &Counter { value: 55 });
    }

    // A linearizable read (ReadIndex) at the leader sees every add.
    c.replies.clear();
    c.step(1, Input::Read(()));
    c.deliver_all();
    assert_eq!(c.replies, vec![CounterReply::Value(55)]);
    c.core(1).state_machine().value
}

fn main() {
    let value = run();
    println!("three replicas applied the same ten adds; the counter is {value}");
}

#[test]
fn three_replicas_apply_the_same_adds_in_the_same_order() {
    assert_eq!(run(), 55);
}
