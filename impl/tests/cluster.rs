//! Integration tests with real `raft-node` processes on loopback: writes through any node,
//! kill -9 of the leader, acknowledged writes survive, a restarted node catches up, a torn tail
//! recovers, a corrupt log refuses to start, a wrong cluster id is refused, a malformed frame
//! closes the connection, bad configs are rejected. Every wait is bounded.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod process_cluster;

use process_cluster::{configs, free_ports, init_all, Cluster, BIN, WAIT};
use raft_node::client::Client;
use raft_node::runtime::config::Config;

fn client(nodes: Vec<String>) -> Client {
    let mut c = Client::new(nodes);
    c.set_deadline(WAIT);
    c
}

#[test]
fn kill_the_leader_acked_writes_survive_and_the_node_catches_up() {
    let mut c = Cluster::new(3, "test-cluster", |_| {});
    let leader = c.wait_leader();
    // Write through every node: a client that knows only a follower is redirected.
    let mut acked = Vec::new();
    for id in 1..=3u64 {
        let mut cl = client(vec![c.http(id)]);
        for k in 0..5 {
            let (key, val) = (format!("n{id}k{k}"), format!("v{id}.{k}"));
            cl.put(&key, &val).unwrap();
            acked.push((key, val));
        }
    }
    // Exactly once: a retry with the same (client_id, seq) is answered from the session table.
    let mut a = client(c.all_http());
    assert_eq!(a.cas("ctr", None, Some("1")).unwrap(), (true, None));
    assert_eq!(a.seq(), 1);
    let mut retry = Client::with_id(c.all_http(), a.client_id(), 0);
    retry.set_deadline(WAIT);
    assert_eq!(retry.cas("ctr", None, Some("2")).unwrap(), (true, None));
    let mut cl = client(c.all_http());
    assert_eq!(cl.get("ctr").unwrap().as_deref(), Some("1"));

    c.kill9(leader);
    for k in 0..10 {
        let (key, val) = (format!("after{k}"), format!("w{k}"));
        cl.put(&key, &val).unwrap();
        acked.push((key, val));
    }
    let new_leader = c.wait_leader();
    assert_ne!(new_leader, leader);
    for (k, v) in &acked {
        assert_eq!(cl.get(k).unwrap().as_deref(), Some(v.as_str()), "{k}");
    }
    // The killed node restarts from disk and catches up.
    c.start(leader);
    c.wait_log(leader, "recovered");
    let commit = c.status(new_leader).unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    c.wait_applied(leader, commit);
    let mut stale = client(vec![c.http(leader)]);
    for (k, v) in &acked {
        assert_eq!(
            stale.get_stale(k).unwrap().as_deref(),
            Some(v.as_str()),
            "{k}"
        );
    }
    let metrics = ureq::get(&format!("http://{}/metrics", c.http(new_leader)))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("raft_fsync_seconds_count"), "{metrics}");
    assert!(metrics.contains("raft_role{node=\"") && metrics.contains("} 3\n"));
    c.sigterm_all();
}

#[test]
fn torn_tail_recovers_and_corruption_refuses_to_start() {
    let mut c = Cluster::new(3, "test-cluster", |_| {});
    c.wait_leader();
    let mut cl = client(c.all_http());
    for k in 0..5 {
        cl.put(&format!("k{k}"), "v").unwrap();
    }
    let victim = (c.wait_leader() % 3) + 1;
    c.kill9(victim);
    // A torn write: half a record at the end of the last segment.
    let seg = c.wal_segments(victim).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
    drop(f);
    c.start(victim);
    c.wait_log(victim, "torn log tail truncated");
    cl.put("after", "torn").unwrap();
    let leader = c.wait_leader();
    let commit = c.status(leader).unwrap()["commit_index"].as_u64().unwrap();
    c.wait_applied(victim, commit);

    // Corruption in the middle: the node refuses to start, naming the file and the offset.
    c.kill9(victim);
    let seg = c.wal_segments(victim).pop().unwrap();
    let mut data = fs::read(&seg).unwrap();
    data[12] ^= 0xFF;
    fs::write(&seg, &data).unwrap();
    let mut ch = c.spawn(victim);
    let until = Instant::now() + WAIT;
    let st = loop {
        if let Some(st) = ch.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "a corrupt node kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!st.success());
    let log = c.log(victim);
    assert!(
        log.contains(&seg.display().to_string()) && log.contains("offset 0"),
        "{log}"
    );
    // Nothing was lost: the file is as it was.
    assert_eq!(fs::read(&seg).unwrap(), data);
    c.sigterm_all();
}

#[test]
fn wrong_cluster_id_and_unknown_node_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut good = configs(2, tmp.path(), "good");
    // Only node 1 runs; node 2's slot is taken by impostors.
    let node1 = good.remove(0);
    let mut evil = good.remove(0);
    evil.cluster_id = "evil".into();
    evil.data_dir = tmp.path().join("evil");
    let mut stranger = evil.clone();
    stranger.cluster_id = "good".into();
    stranger.id = 7;
    stranger.data_dir = tmp.path().join("node7");
    init_all(&[node1.clone(), evil.clone(), stranger.clone()]);
    let p = free_ports(2);
    stranger.peer_addr = format!("127.0.0.1:{}", p[0]).parse().unwrap();
    stranger.http_addr = format!("127.0.0.1:{}", p[1]).parse().unwrap();
    let run = |cfg: &Config, name: &str| {
        let path = tmp.path().join(format!("{name}.toml"));
        fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
        let log = fs::File::create(tmp.path().join(format!("{name}.log"))).unwrap();
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut kids = vec![
        run(&node1, "node1"),
        run(&evil, "evil"),
        run(&stranger, "stranger"),
    ];
    let read = |name: &str| fs::read_to_string(tmp.path().join(format!("{name}.log"))).unwrap();
    // A malformed frame closes the connection with the reason logged.
    let until = Instant::now() + WAIT;
    loop {
        if let Ok(mut tcp) = std::net::TcpStream::connect(node1.peer_addr) {
            tcp.write_all(&[0, 0, 0, 4, 1, 0xFF, 0xFF, 0xFF]).unwrap();
            let mut buf = [0u8; 16];
            let _ = std::io::Read::read(&mut tcp, &mut buf);
            break;
        }
        assert!(Instant::now() < until, "node 1 never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let l = read("node1");
        if l.contains("wrong cluster id \"evil\"")
            && l.contains("unknown node id 7")
            && l.contains("malformed handshake")
        {
            break;
        }
        assert!(Instant::now() < until, "node 1 did not refuse:\n{l}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(read("evil").contains("refused"));
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}

#[test]
fn bad_configs_and_arguments_are_rejected_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "id = 0\ncluster_id = \"c\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid config"), "{err}");
    let mut cfg = configs(1, tmp.path(), "c").remove(0);
    cfg.heartbeat_ticks = 100;
    fs::write(&bad, toml::to_string(&cfg).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!tmp.path().join("node1").exists(), "nothing may start");
    let out = Command::new(BIN)
        .args(["cluster", "--nodes", "0", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
