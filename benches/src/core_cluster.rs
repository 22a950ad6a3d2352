//! A 3-server in-memory cluster driven through `raft_core::RaftCore`: messages delivered
//! in FIFO order, each input's `Ready` handled completely before the next input. Persistence is
//! a no-op (the core keeps its own in-memory log; the WAL is the runtime's business), client
//! replies are counted and dropped. Messages are moved, never cloned; each proposal's key and
//! value are fresh buffers made before the round is timed, as a client request would bring.
//! Proposals go through one client session, registered (untimed) when the cluster is made.

use std::collections::VecDeque;

use raft_core::{ClientRequest, Envelope, Input, NodeId, Op, Params, RaftCore, Text};

use crate::workload::ProposalCluster;

const IDS: [NodeId; 3] = [1, 2, 3];

pub struct CoreCluster {
    nodes: Vec<RaftCore>,
    queue: VecDeque<Envelope>,
    key: String,
    payload: String,
    /// The session the proposals go through.
    client_id: u64,
    seq: u64,
    /// Client replies received so far.
    pub replies: usize,
}

impl CoreCluster {
    /// Three fresh cores with `params`; server 1 is elected before this returns.
    pub fn new(params: Params, payload_size: usize) -> Self {
        let nodes = IDS
            .iter()
            .map(|&id| RaftCore::new(id, &IDS, params.clone()))
            .collect();
        let mut cluster = CoreCluster {
            nodes,
            queue: VecDeque::with_capacity(1024),
            key: "k".to_string(),
            payload: "x".repeat(payload_size),
            client_id: 0,
            seq: 0,
            replies: 0,
        };
        cluster.step(1, Input::ElectionTimeout);
        cluster.deliver_all();
        assert!(cluster.nodes[0].is_leader(), "server 1 was not elected");
        cluster.step(1, Input::register(1));
        cluster.deliver_all();
        // The session's id is the index of its `Register` entry: the leader's last entry.
        cluster.client_id = cluster.nodes[0].log().last_index();
        assert!(
            cluster.nodes[0].sessions().contains_key(&cluster.client_id),
            "the session was not opened"
        );
        cluster.replies = 0;
        cluster
    }

    pub fn node(&self, id: NodeId) -> &RaftCore {
        &self.nodes[id as usize - 1]
    }

    #[inline]
    fn step(&mut self, id: NodeId, input: Input) {
        let ready = self.nodes[id as usize - 1].step(input);
        self.replies += ready.replies.len();
        self.queue.extend(ready.messages);
    }

    fn deliver_all(&mut self) {
        while let Some(env) = self.queue.pop_front() {
            let to = env.to;
            self.step(to, Input::Message(env));
        }
    }
}

impl ProposalCluster for CoreCluster {
    type Payload = (Text, Text);

    fn payload(&self) -> (Text, Text) {
        (self.key.as_str().into(), self.payload.as_str().into())
    }

    fn propose_and_commit(&mut self, payloads: Vec<(Text, Text)>) {
        for (key, value) in payloads {
            self.seq += 1;
            let request = ClientRequest {
                client_id: self.client_id,
                seq: self.seq,
                op: Op::Put { key, value },
            };
            self.step(1, Input::client(request));
        }
        self.deliver_all();
    }

    fn leader_commit(&self) -> u64 {
        self.nodes[0].commit_index()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::timed_proposals;

    #[test]
    fn every_proposal_commits_and_is_answered() {
        for params in [Params::default(), Params::conformance_off()] {
            let mut c = CoreCluster::new(params, 16);
            let before = c.leader_commit();
            c.propose_and_commit(vec![c.payload()]);
            c.propose_and_commit((0..100).map(|_| c.payload()).collect());
            assert_eq!(c.replies, 101);
            assert_eq!(
                c.leader_commit(),
                before + 101,
                "every proposal was appended"
            );
            for id in IDS {
                assert_eq!(c.node(id).log().last_index(), c.leader_commit());
            }
        }
        // Crosses a cluster replacement.
        timed_proposals(|| CoreCluster::new(Params::default(), 16), 70, 64);
    }
}
