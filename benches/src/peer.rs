//! The same workload through tikv's raft-rs (`raft` 0.7, `RawNode` + `MemStorage`), written
//! from its public API documentation.
//!
//! Each node runs raft-rs's documented event loop: step every message waiting for it, then
//! handle one `Ready` (send the messages, append the entries to its `MemStorage`, set the hard
//! state, apply the committed entries, send the persisted messages, `advance`, then handle the
//! `LightReady` the same way and `advance_apply`). Rounds go over the nodes until no message and
//! no `Ready` is left. Committed entries are applied to a per-node map, as the core applies
//! them to its key-value state machine. The storage is the in-memory `MemStorage`, so
//! "persisting" is a memory append, as the core's log is in memory.

use std::collections::HashMap;

use raft::eraftpb::{ConfState, Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, NO_LIMIT};

use crate::workload::ProposalCluster;

const IDS: [u64; 3] = [1, 2, 3];

/// raft-rs settings mirroring the core's `Params`.
#[derive(Clone, Copy, Debug)]
pub struct PeerParams {
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub max_size_per_msg: u64,
    pub max_inflight_msgs: usize,
}

impl PeerParams {
    /// Mirrors `Params::default()`: pre-vote, check-quorum, 1 MiB per append, 8 appends in
    /// flight per follower.
    pub fn node_defaults() -> Self {
        PeerParams {
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 8,
        }
    }

    /// Mirrors `Params::conformance_off()`: no byte cap (raft-rs has no entry-count cap) and one
    /// append in flight per follower.
    pub fn conformance_off() -> Self {
        PeerParams {
            max_size_per_msg: NO_LIMIT,
            max_inflight_msgs: 1,
            ..Self::node_defaults()
        }
    }
}

struct Peer {
    node: RawNode<MemStorage>,
    inbox: Vec<Message>,
    kv: HashMap<Vec<u8>, Vec<u8>>,
}

pub struct PeerCluster {
    peers: Vec<Peer>,
    outbox: Vec<Message>,
    payload: Vec<u8>,
    /// Entries applied by the leader (normal entries with data).
    pub applied: usize,
}

impl PeerCluster {
    /// Three fresh raft-rs nodes; node 1 is elected before this returns.
    pub fn new(params: PeerParams, payload_size: usize) -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let peers = IDS
            .iter()
            .map(|&id| {
                let config = Config {
                    id,
                    election_tick: 10,
                    heartbeat_tick: 1,
                    pre_vote: params.pre_vote,
                    check_quorum: params.check_quorum,
                    max_size_per_msg: params.max_size_per_msg,
                    max_inflight_msgs: params.max_inflight_msgs,
                    ..Config::default()
                };
                config.validate().expect("valid raft-rs config");
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((IDS.to_vec(), vec![])));
                Peer {
                    node: RawNode::new(&config, storage, &logger).expect("raft-rs node"),
                    inbox: Vec::new(),
                    kv: HashMap::new(),
                }
            })
            .collect();
        let mut cluster = PeerCluster {
            peers,
            outbox: Vec::with_capacity(1024),
            payload: vec![b'x'; payload_size],
            applied: 0,
        };
        cluster.peers[0].node.campaign().expect("campaign");
        cluster.run_until_quiet();
        assert_eq!(
            cluster.peers[0].node.raft.state,
            StateRole::Leader,
            "node 1 was not elected"
        );
        cluster
    }

    /// A node's commit index.
    pub fn commit(&self, id: u64) -> u64 {
        self.peers[id as usize - 1].node.raft.raft_log.committed
    }

    /// A node's last log index.
    pub fn last_index(&self, id: u64) -> u64 {
        self.peers[id as usize - 1].node.raft.raft_log.last_index()
    }

    fn run_until_quiet(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.peers.len() {
                busy |= self.process(i);
            }
            // Route what was sent this round.
            for m in self.outbox.drain(..) {
                self.peers[m.to as usize - 1].inbox.push(m);
            }
            if !busy && self.peers.iter().all(|p| p.inbox.is_empty()) {
                return;
            }
        }
    }

    /// Steps node `i`'s inbox and handles its `Ready`. Returns whether it did anything.
    fn process(&mut self, i: usize) -> bool {
        let leader = i == 0;
        let peer = &mut self.peers[i];
        let mut busy = !peer.inbox.is_empty();
        for m in peer.inbox.drain(..) {
            // A message for a stale term is ignored by raft-rs itself; errors here are bugs.
            peer.node.step(m).expect("step");
        }
        if !peer.node.has_ready() {
            return busy;
        }
        busy = true;
        let mut rd = peer.node.ready();
        self.outbox.extend(rd.take_messages());
        assert!(rd.snapshot().is_empty(), "no snapshots in this workload");
        self.applied += apply(&mut peer.kv, rd.take_committed_entries(), leader);
        if !rd.entries().is_empty() {
            peer.node
                .mut_store()
                .wl()
                .append(rd.entries())
                .expect("append");
        }
        if let Some(hs) = rd.hs() {
            peer.node.mut_store().wl().set_hardstate(hs.clone());
        }
        self.outbox.extend(rd.take_persisted_messages());
        let mut light = peer.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            peer.node
                .mut_store()
                .wl()
                .mut_hard_state()
                .set_commit(commit);
        }
        self.outbox.extend(light.take_messages());
        self.applied += apply(&mut peer.kv, light.take_committed_entries(), leader);
        peer.node.advance_apply();
        busy
    }
}

/// Applies committed entries to `kv` (every proposal writes the same key); returns how many
/// proposals were applied, counted at the leader only.
fn apply(kv: &mut HashMap<Vec<u8>, Vec<u8>>, entries: Vec<Entry>, leader: bool) -> usize {
    let mut n = 0;
    for mut e in entries {
        if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
            kv.insert(b"k".to_vec(), e.take_data().into());
            n += 1;
        }
    }
    if leader {
        n
    } else {
        0
    }
}

impl ProposalCluster for PeerCluster {
    type Payload = Vec<u8>;

    fn payload(&self) -> Vec<u8> {
        self.payload.clone()
    }

    fn propose_and_commit(&mut self, payloads: Vec<Vec<u8>>) {
        for data in payloads {
            self.peers[0]
                .node
                .propose(Vec::new(), data)
                .expect("propose");
        }
        self.run_until_quiet();
    }

    fn leader_commit(&self) -> u64 {
        self.commit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proposal_commits_and_is_applied() {
        for params in [PeerParams::node_defaults(), PeerParams::conformance_off()] {
            let mut c = PeerCluster::new(params, 16);
            c.propose_and_commit(vec![c.payload()]);
            c.propose_and_commit((0..100).map(|_| c.payload()).collect());
            assert_eq!(c.applied, 101);
            for id in IDS {
                assert_eq!(c.last_index(id), c.leader_commit());
            }
        }
    }
}
