//! Scenario tests: DESIGN §1's F1-F6, the Raft paper's Figure 8, and the protocol's classic
//! corner cases, each written as a story. The `*_catches_*` tests switch a mutant on and
//! show the same story fails.

use raft_core::{Answer, Bug, Input, Op, Params, Role};
use raft_sim::scenario::Story;

/// Scripted elections: no pre-vote, no check-quorum (the model's election rules), big appends.
fn scripted() -> Params {
    Params {
        pre_vote: false,
        check_quorum: false,
        ..Params::conformance_off()
    }
}

fn with_bug(mut p: Params, bug: Bug) -> Params {
    p.bug = Some(bug);
    p
}

fn cas(key: &str, new: &str) -> Op {
    Op::Cas {
        key: key.into(),
        expected: None,
        new: Some(new.into()),
    }
}

/// The CAS `x: None -> a` of client 9, seq 1 was applied exactly once: every answer the
/// client got says it swapped (a second application would answer `swapped: false`).
fn assert_applied_once(s: &Story) {
    let answers = s.answers(9, 1);
    assert!(!answers.is_empty(), "the client got an answer");
    assert!(
        answers.iter().all(|a| *a
            == Answer::Cas {
                swapped: true,
                previous: None
            }),
        "{answers:?}"
    );
}

/// F1: the leader is unreachable before the request lands; the client retries elsewhere and
/// nothing changes in the cluster.
#[test]
fn f1_leader_unreachable_before_request() {
    let mut s = Story::new(3, scripted());
    s.elect(1)
        .register(1, 9)
        .unreachable_by_clients(1)
        .expect("server 1 leads", |c| c.leader() == Some(1));
    let lens: Vec<u64> = (1..=3).map(|i| s.c.node(i).log().last_index()).collect();
    // The request to 1 is lost on the way.
    s.c.client_send(
        1,
        Input::client(raft_core::ClientRequest {
            client_id: s.client_id(9),
            seq: 1,
            op: cas("x", "a"),
        }),
    );
    s.settle()
        .expect("nothing changed in the cluster", |c| {
            (1..=3).all(|i| c.node(i).log().last_index() == lens[i as usize - 1])
        })
        .request(2, 9, 1, cas("x", "a"));
    assert_eq!(
        s.not_leader_hints(9, 1),
        vec![Some(1)],
        "server 2 points at the leader"
    );
    s.heal().request(1, 9, 1, cas("x", "a"));
    assert_eq!(
        s.answers(9, 1),
        vec![Answer::Cas {
            swapped: true,
            previous: None
        }]
    );
    s.outcome().unwrap();
}

/// F2: the leader dies after appending, before replicating; a new leader is elected without
/// the entry, the retry lands there, the old leader rejoins and its entry is overwritten.
fn f2(p: Params) -> Story {
    let mut s = Story::new(3, p);
    s.elect(1)
        .register(1, 9)
        .isolate(1)
        .put(1, 9, 1, "x", "a")
        .expect("only the old leader has the entry", |c| {
            c.node(1).log().last_index() == 3 && c.node(2).log().last_index() == 2
        })
        .crash(1)
        .heal()
        .elect(2)
        .expect("server 2 leads without the entry", |c| {
            c.leader() == Some(2)
        })
        .put(2, 9, 1, "x", "a")
        .restart(1)
        .heartbeat(2)
        .heartbeat(2)
        .expect("the old leader's log now matches the new leader's", |c| {
            c.node(1).log() == c.node(2).log()
        })
        .expect("x = a applied once everywhere", |c| {
            (1..=3).all(|i| c.node(i).kv().get("x").map(|v| &**v) == Some("a"))
        });
    s
}

#[test]
fn f2_leader_dies_after_append_before_replication() {
    let s = f2(scripted());
    assert_eq!(s.answers(9, 1), vec![Answer::Ok]);
    s.outcome().unwrap();
}

/// F3: the leader dies during replication with only a minority holding the entry. Whoever
/// wins (with or without the entry), the retried command is applied at most once.
#[test]
fn f3_leader_dies_during_replication() {
    for winner in [2, 3] {
        let mut s = Story::new(5, scripted());
        s.elect(1)
            .register(1, 9)
            .cut(1, 3)
            .cut(1, 4)
            .cut(1, 5)
            .request(1, 9, 1, cas("x", "a"))
            .expect("a minority (1, 2) holds the entry, uncommitted", |c| {
                c.node(2).log().last_index() == 3
                    && c.node(3).log().last_index() == 2
                    && c.node(1).commit_index() == 2
            })
            .crash(1)
            .heal()
            .elect(winner)
            .expect("the winner leads", |c| c.leader() == Some(winner))
            .request(winner, 9, 1, cas("x", "a"))
            .heartbeat(winner)
            .expect("x = a everywhere alive", |c| {
                (2..=5).all(|i| c.node(i).kv().get("x").map(|v| &**v) == Some("a"))
            });
        assert_applied_once(&s);
        s.outcome().unwrap();
    }
}

/// A candidate with a stale log cannot win (only the most up-to-date nodes can).
#[test]
fn f3_stale_candidate_cannot_win() {
    let mut s = Story::new(3, scripted());
    s.elect(1)
        .register(1, 9)
        .cut(1, 3)
        .put(1, 9, 1, "x", "a")
        .crash(1)
        .heal()
        .elect(3)
        .expect("server 3 (stale log) does not win", |c| {
            c.node(3).role() != Role::Leader
        })
        .elect(2)
        .expect("server 2 (has the entry) wins", |c| c.leader() == Some(2))
        .expect("and keeps the committed entry", |c| {
            c.node(2).log().last_index() >= 3
        });
    s.outcome().unwrap();
}

/// F4: the leader dies after committing; the client did not hear; its retry at the new leader
/// is answered from the session table, not applied again.
fn f4(p: Params) -> Story {
    let mut s = Story::new(3, p);
    s.elect(1).register(1, 9).unreachable_by_clients(1);
    let client_id = s.client_id(9);
    s.inject(
        1,
        Input::client(raft_core::ClientRequest {
            client_id,
            seq: 1,
            op: cas("x", "a"),
        }),
    )
    .settle()
    .expect("committed at the old leader", |c| {
        c.node(1).commit_index() == 3
    })
    .crash(1)
    .heal()
    .elect(2)
    .request(2, 9, 1, cas("x", "a"))
    .heartbeat(2);
    s
}

#[test]
fn f4_leader_dies_after_commit_client_retries() {
    let s = f4(scripted());
    assert_applied_once(&s);
    s.outcome().unwrap();
}

/// The same after the leader answered and died: the client's retry (it lost the answer) gets
/// the same answer and the command is applied once.
#[test]
fn client_retry_after_leader_died_post_commit_is_applied_once() {
    let mut s = Story::new(3, scripted());
    s.elect(1)
        .register(1, 9)
        .request(1, 9, 1, cas("x", "a"))
        .crash(1)
        .elect(2)
        .request(2, 9, 1, cas("x", "a"));
    assert_applied_once(&s);
    let c9 = s.client_id(9);
    s.expect("the session table holds seq 1", |c| {
        c.node(2).sessions()[&c9].last_seq == 1
    });
    s.outcome().unwrap();
}

/// F5: the leader dies after only some followers learned the commit; the new leader has the
/// entry and commits it in its term; every server applies it.
#[test]
fn f5_leader_dies_after_partial_commit_notification() {
    let mut s = Story::new(5, scripted());
    s.elect(1)
        .register(1, 9)
        .heartbeat(1)
        .put(1, 9, 1, "x", "a")
        .cut(1, 4)
        .cut(1, 5)
        .heartbeat(1)
        .expect("2 and 3 know the commit, 4 and 5 do not", |c| {
            c.node(2).commit_index() == 3 && c.node(4).commit_index() < 3
        })
        .crash(1)
        .heal()
        .elect(4)
        .heartbeat(4)
        .expect("all alive servers applied x = a", |c| {
            (2..=5).all(|i| c.node(i).kv().get("x").map(|v| &**v) == Some("a"))
        });
    s.outcome().unwrap();
}

/// F6: split brain. The old leader alone in a minority cannot commit; the majority elects a
/// new leader that commits; on healing the old leader steps down and is overwritten.
#[test]
fn f6_split_brain() {
    let mut s = Story::new(5, scripted());
    s.elect(1)
        .register(1, 8)
        .register(1, 9)
        .heartbeat(1)
        .partition(&[1, 2], &[3, 4, 5])
        .put(1, 8, 1, "x", "old")
        .heartbeat(1)
        .expect("the minority leader cannot commit", |c| {
            c.node(1).commit_index() == 3
        })
        .elect(3)
        .put(3, 9, 1, "x", "new")
        .expect("the majority leader commits", |c| {
            c.node(3).commit_index() == 5
        })
        .heal()
        .heartbeat(3)
        .heartbeat(3)
        .expect("the old leader stepped down", |c| {
            c.node(1).role() == Role::Follower
                && c.node(1).current_term() == c.node(3).current_term()
        })
        .expect("and its log was overwritten", |c| {
            c.node(1).log() == c.node(3).log()
        })
        .expect("x = new everywhere", |c| {
            (1..=5).all(|i| c.node(i).kv().get("x").map(|v| &**v) == Some("new"))
        });
    assert!(
        s.answers(8, 1).is_empty(),
        "the minority write was never answered"
    );
    s.outcome().unwrap();
}

/// The paper's Figure 8: an entry of an earlier term replicated on a majority must not be
/// committed by counting replicas; it is committed only with an entry of the leader's term.
fn figure8(p: Params, expect_no_early_commit: bool) -> Story {
    let p = Params {
        noop_on_election: false,
        ..p
    };
    let mut s = Story::new(5, p);
    s.elect(1) // term 1
        .put(1, 1, 1, "x", "1") // index 1 everywhere
        .heartbeat(1)
        // (a) S1 (restarted, so a follower again) leads term 2 and gets index 2 only to S2.
        .crash(1)
        .restart(1)
        .elect(1)
        .expect("S1 leads term 2", |c| {
            c.leader() == Some(1) && c.node(1).current_term() == 2
        })
        .partition(&[1], &[3, 4, 5])
        .put(1, 2, 1, "x", "2")
        .expect("(a) index 2 of term 2 on S1, S2 only", |c| {
            c.node(2).log().term_at(2) == Some(2) && c.node(3).log().last_index() == 1
        })
        // (b) S1 crashes; S5 leads term 3 (votes of S3, S4) and appends index 2 alone.
        .crash(1)
        .heal()
        .elect(5)
        .expect("S5 leads term 3", |c| {
            c.leader() == Some(5) && c.node(5).current_term() == 3
        })
        .isolate(5)
        .put(5, 3, 1, "x", "3")
        // (c) S5 crashes; S1 restarts and leads term 4; index 2 (term 2) reaches S3 as well.
        .crash(5)
        .heal()
        .restart(1)
        .cut(1, 4)
        .elect(1) // term 3: S2..S4 already voted in term 3
        .elect(1) // term 4
        .expect("S1 leads term 4", |c| {
            c.leader() == Some(1) && c.node(1).current_term() == 4
        })
        .expect("index 2 of term 2 is on a majority (S1, S2, S3)", |c| {
            (1..=3).all(|i| c.node(i).log().term_at(2) == Some(2))
        })
        .expect("but it is not committed", |c| {
            !expect_no_early_commit || c.node(1).commit_index() < 2
        })
        // (d) S1 crashes; S5 restarts, leads and overwrites index 2 with its term-3 entry.
        .crash(1)
        .heal()
        .restart(5)
        .elect(5) // term 4: S2, S3 already voted in term 4
        .elect(5) // term 5
        .heartbeat(5)
        .expect("S5 leads", |c| c.leader() == Some(5))
        .expect("S2..S4 hold S5's index 2", |c| {
            (2..=4).all(|i| c.node(i).log().term_at(2) == Some(3))
        });
    s
}

#[test]
fn figure8_earlier_term_entry_is_not_committed_by_counting() {
    figure8(scripted(), true).outcome().unwrap();
}

/// PreVote with CheckQuorum: an isolated leader steps down, the rest elect a new leader, and
/// the isolated server's term does not inflate, so it rejoins without disruption.
#[test]
fn prevote_checkquorum_isolated_leader() {
    let mut s = Story::with_seed(3, Params::default(), 7);
    s.run(60);
    let old = s.c.leader().expect("a leader");
    let old_term = s.c.node(old).current_term();
    s.isolate(old).run(80);
    let new = s.c.leader().expect("a new leader");
    s.expect("the new leader is another server", |c| {
        new != old && c.node(new).current_term() > old_term
    })
    .expect("the isolated leader stepped down", |c| {
        c.node(old).role() != Role::Leader
    })
    .expect("and did not inflate its term", |c| {
        c.node(old).current_term() == old_term
    })
    .heal()
    .run(60)
    .expect("the new leader keeps leading after healing", |c| {
        c.leader() == Some(new)
    })
    .expect("in the same term", |c| {
        c.node(new).current_term() == old_term + 1
    });
    s.outcome().unwrap();
}

/// Partial connectivity: a follower loses only its link to the leader. With PreVote and
/// CheckQuorum the cluster keeps a stable leader: no churn, no term change, writes commit.
#[test]
fn partial_connectivity_keeps_a_stable_leader() {
    let mut s = Story::with_seed(3, Params::default(), 11);
    s.run(60);
    let leader = s.c.leader().expect("a leader");
    let term = s.c.node(leader).current_term();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    s.register(leader, 5);
    s.cut(leader, follower).cut(follower, leader);
    for round in 0..10 {
        s.run(20).expect("same leader, same term", |c| {
            c.leader() == Some(leader) && (1..=3).all(|i| c.node(i).current_term() == term)
        });
        s.put(leader, 5, round + 1, "k", &round.to_string());
    }
    let committed = s.c.node(leader).commit_index();
    s.expect("writes committed", |_| committed >= 12);
    assert_eq!(s.answers(5, 10), vec![Answer::Ok]);
    s.outcome().unwrap();
}

/// A delayed, stale AppendEntries response never moves match_index backwards.
#[test]
fn stale_append_response_never_moves_match_index_back() {
    use raft_core::{Envelope, Message};
    let mut s = Story::new(3, scripted());
    s.elect(1)
        .register(1, 1)
        .put(1, 1, 1, "a", "1")
        .put(1, 1, 2, "b", "2");
    let term = s.c.node(1).current_term();
    let before = (s.c.node(1).match_index(2), s.c.node(1).next_index(2));
    assert_eq!(before, (Some(4), Some(5)));
    for (success, last_index) in [(true, 1), (false, 0), (true, 2)] {
        let msg = Message::AppendEntriesResponse {
            term,
            success,
            last_index,
        };
        s.inject(
            1,
            Input::Message(Envelope {
                from: 2,
                to: 1,
                msg,
            }),
        )
        .settle();
        s.expect("match_index never goes back", |c| {
            c.node(1).match_index(2) == Some(4)
        })
        .expect("next_index stays above match_index", |c| {
            c.node(1).next_index(2).unwrap() >= 5
        });
    }
    s.outcome().unwrap();
}

/// A voter that restarts remembers its vote: it never votes twice in a term.
fn restarted_voter(p: Params) -> Story {
    // No no-op, so S2's empty log stays as up to date as S3's.
    let mut s = Story::new(
        3,
        Params {
            noop_on_election: false,
            ..p
        },
    );
    s.cut(1, 2)
        .elect(1)
        .expect("S1 leads term 1 with S3's vote", |c| {
            c.leader() == Some(1) && c.node(3).voted_for() == Some(1)
        })
        .isolate(1)
        .crash(3)
        .restart(3)
        .elect(2)
        .expect("S3 does not vote for S2 in term 1", |c| {
            c.node(2).role() != Role::Leader
        });
    s
}

#[test]
fn restarted_voter_never_votes_twice() {
    restarted_voter(scripted()).outcome().unwrap();
}

// ----- mutants ------------------------------------------------------------------------------

#[test]
fn figure8_catches_figure8_commit() {
    // Caught by the safety checker itself, not only by the story's expectation.
    let e = figure8(with_bug(scripted(), Bug::Figure8Commit), false)
        .outcome()
        .unwrap_err();
    assert!(
        e.starts_with("Leader Completeness") || e.starts_with("State Machine Safety"),
        "{e}"
    );
}

#[test]
fn restarted_voter_catches_forget_vote_on_restart() {
    let s = restarted_voter(with_bug(scripted(), Bug::ForgetVoteOnRestart));
    let e = s.outcome().unwrap_err();
    assert!(
        e.contains("S3 does not vote") || e.contains("Election Safety"),
        "{e}"
    );
}

#[test]
fn f4_catches_no_dedup() {
    let s = f4(with_bug(scripted(), Bug::NoDedup));
    let answers = s.answers(9, 1);
    assert!(
        answers.contains(&Answer::Cas {
            swapped: false,
            previous: Some("a".into())
        }),
        "{answers:?}"
    );
}
