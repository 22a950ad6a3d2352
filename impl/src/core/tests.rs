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

#[test]
fn success_advances_commit_and_answers_the_client() {
    let mut n = leader_of_three(off());
    let op = Op::Put {
        key: "k".into(),
        value: "v".into(),
    };
    n.step(Input::Client(ClientRequest {
        client_id: 7,
        seq: 1,
        op,
    }));
    let r = n.step(msg(
        2,
        1,
        Message::AppendEntriesResponse {
            term: 1,
            success: true,
            last_index: 2,
        },
    ));
    assert_eq!(n.commit_index(), 2);
    assert_eq!(n.kv().get("k").map(|v| &**v), Some("v"));
    assert_eq!(
        r.replies,
        vec![ClientReply::Response(ClientResponse {
            client_id: 7,
            seq: 1,
            answer: Answer::Ok
        })]
    );
    // A retry is answered from the session table without a new entry.
    let op = Op::Put {
        key: "k".into(),
        value: "v".into(),
    };
    let r = n.step(Input::Client(ClientRequest {
        client_id: 7,
        seq: 1,
        op,
    }));
    assert_eq!(n.log().last_index(), 2);
    assert_eq!(r.replies.len(), 1);
}

#[test]
fn conflict_hint_backoff() {
    let mut n = leader_of_three(Params {
        noop_on_election: true,
        ..off()
    });
    for s in 1..=3 {
        let op = Op::Put {
            key: "k".into(),
            value: s.to_string().into(),
        };
        n.step(Input::Client(ClientRequest {
            client_id: 7,
            seq: s,
            op,
        }));
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
