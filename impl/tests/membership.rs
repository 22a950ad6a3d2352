//! Membership changes on real processes, through the operator's CLI (`raft-node member`): a
//! cluster started as voters 1-3 grows to five (node 4 joins as a learner and is promoted,
//! node 5 is added as a voter), hands its leadership to node 4, loses a follower and then its
//! leader by removal, and keeps every acknowledged write through all of it and a restart.

use std::process::Command;

mod process_cluster;

use process_cluster::{Cluster, BIN};
use raft_node::client::Client;
use serde_json::Value;

/// `raft-node member ARGS --nodes NODES`: its exit status and standard output.
fn member(nodes: &[String], args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("member")
        .arg("--nodes")
        .arg(nodes.join(","))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("$ raft-node member {}\n{stdout}{stderr}", args.join(" "));
    (out.status.success(), stdout)
}

fn ids(v: &Value) -> Vec<u64> {
    (v.as_array().into_iter().flatten())
        .filter_map(Value::as_u64)
        .collect()
}

/// What node `id` says its configuration is: `(voters, learners)`.
fn config_at(c: &Cluster, id: u64) -> Option<(Vec<u64>, Vec<u64>)> {
    let s = c.status(id)?;
    Some((ids(&s["voters"]), ids(&s["learners"])))
}

fn wait_config(c: &Cluster, id: u64, voters: &[u64], learners: &[u64]) {
    c.wait_for(
        || config_at(c, id).is_some_and(|(v, l)| v == voters && l == learners),
        || {
            format!(
                "node {id} never had voters {voters:?} learners {learners:?}: {:?}\n{}",
                config_at(c, id),
                c.log(id)
            )
        },
    );
}

/// A leader that the running nodes among `ids` agree on, and that says it leads.
fn wait_leader_among(c: &Cluster, ids: &[u64]) -> u64 {
    let mut leader = 0;
    c.wait_for(
        || {
            let live: Vec<u64> = (ids.iter().copied())
                .filter(|&i| c.procs[i as usize - 1].is_some())
                .collect();
            let named: Vec<Option<u64>> = (live.iter())
                .map(|&i| c.status(i).and_then(|s| s["leader"].as_u64()))
                .collect();
            let Some(Some(l)) = named.first().copied() else {
                return false;
            };
            leader = l;
            named.iter().all(|n| *n == Some(l))
                && c.status(l).is_some_and(|s| s["role"] == "Leader")
        },
        || format!("no leader agreed among {ids:?}"),
    );
    leader
}

#[test]
fn a_cluster_grows_transfers_its_leadership_and_shrinks_without_losing_a_write() {
    let mut c = Cluster::with_joiners(5, "membership", &[1, 2, 3]);
    let all = c.all_http();
    let leader = wait_leader_among(&c, &[1, 2, 3]);
    let mut client = Client::new(all.clone());
    for i in 0..5 {
        client.put(&format!("k{i}"), "before").unwrap();
    }
    // The joiners are no members: no leader replicates to them and they never stand.
    for id in [4, 5] {
        let s = c.status(id).unwrap();
        assert_eq!(s["role"], "Follower", "node {id}: {s}");
        assert_eq!(ids(&s["voters"]), Vec::<u64>::new(), "node {id}: {s}");
        assert_eq!(s["last_log_index"], 0, "node {id} got entries: {s}");
    }
    let (ok, out) = member(&all, &["list"]);
    assert!(ok);
    assert!(out.contains("voters [1, 2, 3] learners []"), "{out}");

    // Grow: 4 as a learner, then promoted; 5 straight in as a voter.
    let (ok, out) = member(&all, &["add-learner", "4"]);
    assert!(ok && out.contains("voters [1, 2, 3] learners [4]"), "{out}");
    wait_config(&c, 4, &[1, 2, 3], &[4]);
    let (ok, out) = member(&all, &["promote", "4"]);
    assert!(
        ok && out.contains("voters [1, 2, 3, 4] learners []"),
        "{out}"
    );
    let (ok, out) = member(&all, &["add", "5"]);
    assert!(
        ok && out.contains("voters [1, 2, 3, 4, 5] learners []"),
        "{out}"
    );
    for id in 1..=5 {
        wait_config(&c, id, &[1, 2, 3, 4, 5], &[]);
    }
    // Operations that do not apply are refused with the reason.
    let (ok, _) = member(&all, &["promote", "5"]);
    assert!(!ok, "promoting a voter succeeded");
    let (ok, _) = member(&all, &["add", "9"]);
    assert!(!ok, "adding a node without an address succeeded");

    // Hand the leadership to node 4.
    let (ok, out) = member(&all, &["transfer-leader", "4"]);
    assert!(ok && out.contains("node 4 leads"), "{out}");
    assert_eq!(wait_leader_among(&c, &[1, 2, 3, 4, 5]), 4);
    client.put("k5", "after transfer").unwrap();

    // Shrink: a follower, then the leader itself (it commits its removal and steps down).
    let follower = if leader == 4 { 1 } else { leader };
    let (ok, out) = member(&all, &["remove", &follower.to_string()]);
    assert!(ok, "{out}");
    c.kill9(follower);
    let (ok, out) = member(&all, &["remove", "4"]);
    assert!(ok, "{out}");
    let rest: Vec<u64> = (1..=5).filter(|&i| i != follower && i != 4).collect();
    c.wait_for(
        || {
            rest.iter().any(|&i| {
                c.status(i)
                    .is_some_and(|s| s["role"] == "Leader" && ids(&s["voters"]) == rest)
            })
        },
        || {
            format!(
                "no leader among {rest:?} after removing 4: {:?}",
                config_at(&c, 2)
            )
        },
    );
    c.wait_for(
        || c.status(4).is_some_and(|s| s["role"] != "Leader"),
        || format!("node 4 still leads after its removal:\n{}", c.log(4)),
    );
    c.kill9(4);
    client.put("k6", "after shrink").unwrap();

    // The configuration survives a restart of every remaining node.
    for &id in &rest {
        c.kill9(id);
    }
    for &id in &rest {
        c.start(id);
    }
    for &id in &rest {
        wait_config(&c, id, &rest, &[]);
    }
    let nodes: Vec<String> = rest.iter().map(|&i| c.http(i)).collect();
    let mut reader = Client::new(nodes);
    for i in 0..5 {
        assert_eq!(
            reader.get(&format!("k{i}")).unwrap().as_deref(),
            Some("before")
        );
    }
    assert_eq!(reader.get("k5").unwrap().as_deref(), Some("after transfer"));
    assert_eq!(reader.get("k6").unwrap().as_deref(), Some("after shrink"));
}

/// Under a steady write load a transfer still hands the leadership to its target: the leader
/// holds new writes while the target catches up and stands, and no write is lost or failed.
#[test]
fn a_transfer_under_write_load_makes_its_target_the_leader() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let c = Cluster::new(3, "transfer-load", |_| {});
    let all = c.all_http();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (all, stop, done) = (all.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut client = Client::new(all);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    client.put(&format!("w{w}-{n}"), "x").unwrap();
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                n
            })
        })
        .collect();
    let mut leader = wait_leader_among(&c, &[1, 2, 3]);
    for _ in 0..3 {
        let target = leader % 3 + 1;
        let before = done.load(Ordering::Relaxed);
        let (ok, out) = member(&all, &["transfer-leader", &target.to_string()]);
        assert!(ok && out.contains(&format!("node {target} leads")), "{out}");
        leader = wait_leader_among(&c, &[1, 2, 3]);
        assert_eq!(leader, target);
        // The held writes go on under the new leader.
        c.wait_for(
            || done.load(Ordering::Relaxed) > before + 20,
            || format!("writes stalled after the transfer to {target}"),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let written: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut reader = Client::new(all);
    for (w, n) in written.iter().enumerate() {
        assert!(*n > 0);
        assert_eq!(
            reader.get(&format!("w{w}-{}", n - 1)).unwrap().as_deref(),
            Some("x")
        );
    }
    println!("writes per writer: {written:?}");
}
