//! Rule-level tests: each input produces exactly PROTOCOL.md's state change and messages.

use super::*;

fn off() -> Params {
    Params {
        pre_vote: false,
        check_quorum: false,
        ..Params::conformance_off()
    }
}

fn msg(from: NodeId, to: NodeId, msg: Message) -> Input {
    Input::Message(Envelope { from, to, msg })
}

#[test]
fn pre_vote_timeout_keeps_the_term_and_broadcasts_in_id_order() {
    let mut n = RaftCore::new(2, &[3, 1, 2], Params::conformance_off());
    let r = n.step(Input::ElectionTimeout);
    assert_eq!(n.role(), Role::PreCandidate);
    assert_eq!(n.current_term(), 0);
    assert!(r.hard_state.is_none(), "a pre-vote changes nothing durable");
    let to: Vec<NodeId> = r.messages.iter().map(|e| e.to).collect();
    assert_eq!(to, vec![1, 3]);
    assert_eq!(
        r.messages[0].msg,
        Message::RequestVote {
            term: 1,
            candidate: 2,
            last_log_index: 0,
            last_log_term: 0,
            pre_vote: true
        }
    );
}

#[test]
fn a_vote_is_persisted_with_the_response() {
    let mut n = RaftCore::new(1, &[1, 2, 3], off());
    let rv = Message::RequestVote {
        term: 1,
        candidate: 2,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
    };
    let r = n.step(msg(2, 1, rv));
    assert_eq!(
        r.hard_state,
        Some(HardState {
            current_term: 1,
            voted_for: Some(2)
        })
    );
    assert_eq!(
        r.messages[0].msg,
        Message::RequestVoteResponse {
            term: 1,
            granted: true,
            pre_vote: false
        }
    );
    // A second candidate of the same term is refused.
    let rv3 = Message::RequestVote {
        term: 1,
        candidate: 3,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
    };
    let r = n.step(msg(3, 1, rv3));
    assert_eq!(
        r.messages[0].msg,
        Message::RequestVoteResponse {
            term: 1,
            granted: false,
            pre_vote: false
        }
    );
}

#[test]
fn append_rejection_carries_the_hint() {
    let mut n = RaftCore::new(2, &[1, 2, 3], off());
    let ae = Message::AppendEntries {
        term: 1,
        leader: 1,
        prev_log_index: 5,
        prev_log_term: 1,
        entries: vec![],
        leader_commit: 0,
    };
    let r = n.step(msg(1, 2, ae));
    assert_eq!(
        r.messages[0].msg,
        Message::AppendEntriesResponse {
            term: 1,
            success: false,
            last_index: 0
        }
    );
    assert_eq!(n.leader_id(), Some(1));
}

fn leader_of_three(params: Params) -> RaftCore {
    let mut n = RaftCore::new(1, &[1, 2, 3], params);
    n.step(Input::ElectionTimeout);
    n.step(msg(
        2,
        1,
        Message::RequestVoteResponse {
            term: 1,
            granted: true,
            pre_vote: false,
        },
    ));
    assert!(n.is_leader());
    n
}

#[test]
fn becoming_leader_appends_a_noop_and_broadcasts() {
    let mut n = RaftCore::new(1, &[1, 2, 3], off());
    n.step(Input::ElectionTimeout);
    let r = n.step(msg(
        2,
        1,
        Message::RequestVoteResponse {
            term: 1,
            granted: true,
            pre_vote: false,
        },
    ));
    assert_eq!(
        n.log().entries(),
        &[Entry {
            term: 1,
            command: Command::Noop
        }]
    );
    assert_eq!(
        r.log_write,
        Some(LogWrite {
            from_index: 1,
            last_index: 1
        })
    );
    assert_eq!(r.messages.len(), 2);
    assert_eq!(n.next_index(2), Some(1));
    assert_eq!(n.match_index(2), Some(0));
}

fn ack(from: NodeId, last_index: Index) -> Input {
    msg(
        from,
        1,
        Message::AppendEntriesResponse {
            term: 1,
            success: true,
            last_index,
        },
    )
}

fn put(client_id: ClientId, seq: u64, value: &str) -> Input {
    Input::client(ClientRequest {
        client_id,
        seq,
        op: Op::Put {
            key: "k".into(),
            value: value.into(),
        },
    })
}

/// Registers a client at a leader of three whose follower 2 acknowledges everything; returns
/// the client id (the `Register` entry's index).
fn register(n: &mut RaftCore, nonce: u64) -> ClientId {
    n.step(Input::register(nonce));
    let index = n.log().last_index();
    let r = n.step(ack(2, index));
    assert_eq!(
        r.replies,
        vec![ClientReply::Registered {
            nonce,
            client_id: index
        }]
    );
    index
}

fn response(client_id: ClientId, seq: u64, answer: Answer) -> ClientReply {
    ClientReply::Response(ClientResponse {
        client_id,
        seq,
        answer,
    })
}

#[test]
fn success_advances_commit_and_answers_the_client() {
    let mut n = leader_of_three(off());
    let c = register(&mut n, 9);
    assert_eq!(c, 2, "the client id is the Register entry's index");
    n.step(put(c, 1, "v"));
    let r = n.step(ack(2, 3));
    assert_eq!(n.commit_index(), 3);
    assert_eq!(n.kv().get("k").map(|v| &**v), Some("v"));
    assert_eq!(r.replies, vec![response(c, 1, Answer::Ok)]);
    // A retry is answered from the session table without a new entry.
    let r = n.step(put(c, 1, "v"));
    assert_eq!(n.log().last_index(), 3);
    assert_eq!(r.replies, vec![response(c, 1, Answer::Ok)]);
}

#[test]
fn an_older_seq_is_answered_stale_at_once_and_never_applied() {
    let mut n = leader_of_three(off());
    let c = register(&mut n, 1);
    n.step(put(c, 1, "a"));
    n.step(put(c, 2, "b"));
    n.step(ack(2, 4));
    let r = n.step(put(c, 1, "a"));
    assert_eq!(
        r.replies,
        vec![ClientReply::Stale {
            client_id: c,
            seq: 1,
            last_seq: 2
        }]
    );
    assert_eq!(n.log().last_index(), 4, "nothing appended");
    assert_eq!(n.kv().get("k").map(|v| &**v), Some("b"));
}

#[test]
fn a_stale_duplicate_committed_behind_a_newer_command_is_answered_stale() {
    let mut n = leader_of_three(off());
    let c = register(&mut n, 1);
    // seq 2 is appended, then a delayed seq 1 (not yet applied, so it is appended too).
    n.step(put(c, 2, "b"));
    n.step(put(c, 1, "a"));
    let r = n.step(ack(2, 4));
    assert_eq!(
        r.replies,
        vec![
            response(c, 2, Answer::Ok),
            ClientReply::Stale {
                client_id: c,
                seq: 1,
                last_seq: 2
            }
        ]
    );
    assert_eq!(n.kv().get("k").map(|v| &**v), Some("b"));
}

#[test]
fn a_registration_into_a_full_table_evicts_the_least_recently_used_session() {
    let mut n = leader_of_three(Params {
        max_sessions: Some(2),
        ..off()
    });
    let a = register(&mut n, 1);
    let b = register(&mut n, 2);
    n.step(put(a, 1, "x1"));
    n.step(put(b, 1, "y"));
    n.step(ack(2, n.log().last_index()));
    // a was used at index 4, b at 5: a third client evicts a.
    let c = register(&mut n, 3);
    assert!(n.sessions().get(&a).is_none());
    assert!(n.sessions().contains_key(&b) && n.sessions().contains_key(&c));
    // a's retry is refused at once, and the later write stays.
    let last = n.log().last_index();
    let r = n.step(put(a, 1, "x1"));
    assert_eq!(r.replies, vec![response(a, 1, Answer::SessionExpired)]);
    assert_eq!(n.log().last_index(), last, "nothing appended");
    assert_eq!(n.kv().get("k").map(|v| &**v), Some("y"));
}

#[test]
fn a_command_of_an_evicted_session_already_in_the_log_is_refused_when_applied() {
    let mut n = leader_of_three(Params {
        max_sessions: Some(1),
        ..off()
    });
    let a = register(&mut n, 1);
    n.step(Input::register(2));
    n.step(put(a, 1, "x1")); // appended behind the registration that evicts a
    let r = n.step(ack(2, n.log().last_index()));
    assert_eq!(r.replies[1], response(a, 1, Answer::SessionExpired));
    assert_eq!(n.kv().get("k"), None);
}

#[test]
fn a_write_without_a_session_takes_none() {
    let mut n = leader_of_three(Params {
        max_sessions: Some(1),
        ..off()
    });
    let a = register(&mut n, 1);
    for nonce in 10..20 {
        n.step(put(NO_SESSION, nonce, "s"));
    }
    let r = n.step(ack(2, n.log().last_index()));
    assert_eq!(r.replies.len(), 10);
    assert_eq!(r.replies[0], response(NO_SESSION, 10, Answer::Ok));
    assert_eq!(n.sessions().keys().copied().collect::<Vec<_>>(), vec![a]);
}

#[test]
fn a_non_leader_answers_a_registration_not_leader() {
    let mut n = RaftCore::new(1, &[1, 2, 3], off());
    let r = n.step(Input::register(4));
    assert_eq!(
        r.replies,
        vec![ClientReply::NotLeader {
            client_id: NO_SESSION,
            seq: 4,
            hint: None
        }]
    );
}

#[test]
fn conflict_hint_backoff() {
    let mut n = leader_of_three(Params {
        noop_on_election: true,
        ..off()
    });
    for s in 1..=3 {
        n.step(put(NO_SESSION, s, &s.to_string()));
    }
    // next_index[3] = 1 (set at election); a hint of 0 keeps it at match_index + 1 = 1.
    let r = n.step(msg(
        3,
        1,
        Message::AppendEntriesResponse {
            term: 1,
            success: false,
            last_index: 0,
        },
    ));
    assert_eq!(n.next_index(3), Some(1));
    match &r.messages[0].msg {
        Message::AppendEntries {
            prev_log_index: 0,
            entries,
            ..
        } => assert_eq!(entries.len(), 4),
        other => panic!("{other:?}"),
    }
}

#[test]
fn check_quorum_leader_steps_down_without_a_majority() {
    let mut n = leader_of_three(Params {
        check_quorum: true,
        ..off()
    });
    n.step(Input::ElectionTimeout);
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.leader_id(), None);
    assert_eq!(n.current_term(), 1);
}

#[test]
fn read_index_waits_for_a_heartbeat_round() {
    let mut n = leader_of_three(off());
    n.step(msg(
        2,
        1,
        Message::AppendEntriesResponse {
            term: 1,
            success: true,
            last_index: 1,
        },
    ));
    assert_eq!(n.commit_index(), 1);
    let r = n.step(Input::Read(ReadRequest {
        client_id: 5,
        read_id: 1,
        key: "k".into(),
    }));
    assert!(r.replies.is_empty());
    assert_eq!(
        r.messages[0].msg,
        Message::ReadIndex {
            term: 1,
            leader: 1,
            round: 1
        }
    );
    let r = n.step(msg(
        3,
        1,
        Message::ReadIndexResponse {
            term: 1,
            round: 1,
            ok: true,
        },
    ));
    assert_eq!(
        r.replies,
        vec![ClientReply::Read {
            client_id: 5,
            read_id: 1,
            value: None
        }]
    );
}

// ----- a state machine other than the key-value store ----------------------------------------

/// Remembers every value applied, in order: two equal states applied the same commands in the
/// same order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct History(Vec<u64>);

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum HistoryReply {
    Applied { value: u64, index: Index },
    Len(usize),
    NotLeader(Option<NodeId>),
}

impl StateMachine for History {
    /// `None` is the no-op.
    type Command = Option<u64>;
    type Request = u64;
    type Query = ();
    type Reply = HistoryReply;

    fn noop() -> Option<u64> {
        None
    }
    fn propose(&self, value: u64, _: Index, _: &Params) -> Result<Option<u64>, HistoryReply> {
        Ok(Some(value))
    }
    fn apply(&mut self, index: Index, command: &Option<u64>, _: &Params) -> Option<HistoryReply> {
        let value = (*command)?;
        self.0.push(value);
        Some(HistoryReply::Applied { value, index })
    }
    fn query(&self, (): ()) -> HistoryReply {
        HistoryReply::Len(self.0.len())
    }
    fn not_leader(_: u64, hint: Option<NodeId>) -> HistoryReply {
        HistoryReply::NotLeader(hint)
    }
    fn query_not_leader((): (), hint: Option<NodeId>) -> HistoryReply {
        HistoryReply::NotLeader(hint)
    }
}

/// Three `History` servers with their storage and a FIFO network; `down` loses its messages.
struct HistoryCluster {
    cores: Vec<RaftCore<History>>,
    storage: Vec<MemoryStorage<History>>,
    network: std::collections::VecDeque<Envelope<History>>,
    down: Option<NodeId>,
    replies: Vec<HistoryReply>,
    /// Snapshot indexes each server was told to store, in order.
    snapshots: Vec<Vec<Index>>,
}

impl HistoryCluster {
    const IDS: [NodeId; 3] = [1, 2, 3];

    fn new() -> Self {
        HistoryCluster {
            cores: Self::IDS
                .iter()
                .map(|&id| RaftCore::with_state_machine(id, &Self::IDS, off(), History::default()))
                .collect(),
            storage: vec![MemoryStorage::default(); 3],
            network: Default::default(),
            down: None,
            replies: Vec::new(),
            snapshots: vec![Vec::new(); 3],
        }
    }

    fn step(&mut self, id: NodeId, input: Input<History>) {
        let i = id as usize - 1;
        let r = self.cores[i].step(input);
        self.storage[i].persist(&self.cores[i], &r);
        self.snapshots[i].extend(r.snapshot);
        self.network.extend(r.messages);
        self.replies.extend(r.replies);
    }

    fn deliver_all(&mut self) {
        while let Some(env) = self.network.pop_front() {
            if Some(env.to) != self.down {
                self.step(env.to, Input::Message(env));
            }
        }
    }

    fn restart(&mut self, id: NodeId) {
        let i = id as usize - 1;
        self.cores[i] = self.storage[i].restore(id, &Membership::voters(Self::IDS), off());
    }
}

#[test]
fn another_state_machine_replicates_compacts_and_installs_snapshots() {
    let mut c = HistoryCluster::new();
    c.step(1, Input::ElectionTimeout);
    c.deliver_all();
    assert!(c.cores[0].is_leader());
    for v in 1..=3 {
        c.step(1, Input::Client(v));
    }
    c.deliver_all();
    c.step(1, Input::HeartbeatTimeout);
    c.deliver_all();
    assert_eq!(c.cores[2].state_machine(), &History(vec![1, 2, 3]));

    // Server 3 misses 4..=6, and the leader compacts them away.
    c.down = Some(3);
    for v in 4..=6 {
        c.step(1, Input::Client(v));
        c.deliver_all();
    }
    c.step(1, Input::Compact);
    assert_eq!(c.snapshots[0], vec![7], "the no-op and six values");
    assert_eq!(c.storage[0].snapshot.state, History((1..=6).collect()));
    assert!(c.storage[0].log.is_empty());

    // Back from its storage, server 3 can only catch up by installing the snapshot.
    c.restart(3);
    c.down = None;
    c.step(1, Input::HeartbeatTimeout);
    c.deliver_all();
    assert_eq!(c.snapshots[2], vec![7]);
    assert_eq!(c.storage[2].snapshot.state, History((1..=6).collect()));
    for core in &c.cores {
        assert_eq!(core.state_machine(), &History((1..=6).collect()));
    }

    // A restart from a stored snapshot starts from its state, and replication goes on.
    c.restart(3);
    assert_eq!(c.cores[2].last_applied(), 7);
    assert_eq!(c.cores[2].state_machine(), &History((1..=6).collect()));
    c.step(1, Input::Client(7));
    c.deliver_all();
    c.step(1, Input::HeartbeatTimeout);
    c.deliver_all();
    for core in &c.cores {
        assert_eq!(core.state_machine(), &History((1..=7).collect()));
    }

    // Only the leader answered, once per value, with the entry's index.
    let applied: Vec<HistoryReply> = (1..=7)
        .map(|value| HistoryReply::Applied {
            value,
            index: value + 1,
        })
        .collect();
    assert_eq!(c.replies, applied);
    c.replies.clear();
    c.step(2, Input::Client(8));
    c.step(2, Input::Read(()));
    assert_eq!(
        c.replies,
        vec![
            HistoryReply::NotLeader(Some(1)),
            HistoryReply::NotLeader(Some(1))
        ]
    );
    c.replies.clear();
    c.step(1, Input::Read(()));
    c.deliver_all();
    assert_eq!(c.replies, vec![HistoryReply::Len(7)]);
}
