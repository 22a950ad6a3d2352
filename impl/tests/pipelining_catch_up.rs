//! A liveness bug found by the runtime's kill-the-leader test, now fixed: with pipelining
//! (`max_inflight_appends: Some(_)`) a follower that was unreachable while the leader filled its
//! pipeline was never caught up. Heartbeats to a full pipeline are empty appends at
//! `match_index` (0); the follower acknowledges index 0, which frees no pipeline slot, and the
//! optimistic `next_index` stayed past the log end, so no entries were ever sent again. The fix
//! (`Progress::on_heartbeat`): two heartbeats with appends in flight and no new entry
//! acknowledged reset `next_index` to `match_index + 1`.

use raft_core::{ClientRequest, Envelope, Input, Op, Params, RaftCore, Role};

fn run(params: Params) -> (u64, u64) {
    let ids = [1, 2, 3];
    let mut nodes: Vec<RaftCore> = ids
        .iter()
        .map(|&i| RaftCore::new(i, &ids, params.clone()))
        .collect();
    let mut queue: Vec<Envelope> = Vec::new();
    let deliver = |nodes: &mut Vec<RaftCore>, queue: &mut Vec<Envelope>, down: Option<u64>| {
        let mut rounds = 0;
        while !queue.is_empty() && rounds < 10_000 {
            rounds += 1;
            let env = queue.remove(0);
            if Some(env.to) == down || Some(env.from) == down {
                continue;
            }
            let r = nodes[env.to as usize - 1].step(Input::Message(env));
            queue.extend(r.messages);
        }
    };
    let r = nodes[0].step(Input::ElectionTimeout);
    queue.extend(r.messages);
    deliver(&mut nodes, &mut queue, None);
    assert_eq!(nodes[0].role(), Role::Leader);
    // Node 3 is down while 30 commands are proposed (one at a time, as clients do).
    for seq in 1..=30 {
        let r = nodes[0].step(Input::client(ClientRequest {
            client_id: 100,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: seq.to_string().into(),
            },
        }));
        queue.extend(r.messages);
        deliver(&mut nodes, &mut queue, Some(3));
    }
    // Node 3 is back: 50 heartbeats with every message delivered.
    for _ in 0..50 {
        let r = nodes[0].step(Input::HeartbeatTimeout);
        queue.extend(r.messages);
        deliver(&mut nodes, &mut queue, None);
    }
    (nodes[0].commit_index(), nodes[2].commit_index())
}

#[test]
fn without_pipelining_a_returning_follower_catches_up() {
    let params = Params {
        max_inflight_appends: None,
        ..Params::default()
    };
    let (leader, follower) = run(params);
    assert_eq!(follower, leader);
}

#[test]
fn with_pipelining_a_returning_follower_catches_up() {
    let (leader, follower) = run(Params::default());
    assert_eq!(
        follower, leader,
        "follower stuck at {follower}, leader at {leader}"
    );
}
