//! Recorded steps of real (in-process) clusters are transitions the model allows
//! (`raft-conformance validate`): writes and a leader restart; and compactions with an
//! `InstallSnapshot` on a follower that fell behind, sent in chunks (the runtime's snapshot
//! policy steps `Input::Compact` like any other input). Between checkpoints the validator
//! rebuilds the states by stepping the core with the recorded inputs: a step whose recorded
//! messages or replies are not what the core sends, or a checkpoint that is not the rebuilt
//! state, is reported with its line. Recordings with the state on every line (the format
//! before checkpoints) still validate.

use raft_conformance::validate::{validate_file, Report};
use raft_node::client::Client;
use raft_node::runtime::config::Config;
use raft_node::runtime::server::NodeHandle;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn status(http: &str) -> Option<serde_json::Value> {
    Client::new(vec![http.to_string()])
        .status()
        .pop()
        .and_then(|(_, r)| r.ok())
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three in-process nodes on loopback ports, each recording to `dir/node{id}.jsonl`.
struct Recorded {
    dir: PathBuf,
    cfgs: Vec<Config>,
    https: Vec<String>,
    nodes: Vec<Option<NodeHandle>>,
}

impl Recorded {
    fn start(name: &str, tweak: impl Fn(&mut Config)) -> Recorded {
        let dir = std::env::temp_dir().join(format!("raftright-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ls: Vec<TcpListener> = (0..6)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(ls);
        let mut cfgs = Config::local_cluster(3, &dir, 7000, name);
        let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
        for c in cfgs.iter_mut() {
            let i = c.id as usize - 1;
            c.peer_addr = addr(ports[2 * i]);
            c.http_addr = addr(ports[2 * i + 1]);
            c.record = Some(dir.join(format!("node{}.jsonl", c.id)));
            tweak(c);
        }
        let all = cfgs.clone();
        for c in cfgs.iter_mut() {
            for p in c.peers.iter_mut() {
                let o = &all[p.id as usize - 1];
                p.peer_addr = o.peer_addr;
                p.http_addr = o.http_addr;
            }
        }
        for c in &cfgs {
            c.init_data_dir().unwrap();
        }
        let https = cfgs.iter().map(|c| c.http_addr.to_string()).collect();
        let nodes = cfgs
            .iter()
            .map(|c| Some(NodeHandle::spawn(c.clone())))
            .collect();
        Recorded {
            dir,
            cfgs,
            https,
            nodes,
        }
    }

    /// A client that registers its session through the log (its id is that entry's index).
    fn client(&self) -> Client {
        let mut c = Client::new(self.https.clone());
        c.set_deadline(Duration::from_secs(20));
        c
    }

    fn stop(&mut self, id: u64) {
        self.nodes[id as usize - 1].take().unwrap().stop().unwrap();
    }

    fn restart(&mut self, id: u64) {
        let i = id as usize - 1;
        self.nodes[i] = Some(NodeHandle::spawn(self.cfgs[i].clone()));
    }

    fn wait_applied(&self, id: u64, index: u64) {
        wait_for(&format!("node {id} to apply {index}"), || {
            status(&self.https[id as usize - 1])
                .is_some_and(|s| s["last_applied"].as_u64() >= Some(index))
        });
    }

    fn stop_all(&mut self) {
        for n in self.nodes.iter_mut() {
            n.take().unwrap().stop().unwrap();
        }
    }

    /// Validate every node's recording; the reports, summed.
    fn validate(&self) -> Report {
        let mut sum = Report::default();
        for c in &self.cfgs {
            let r = validate_file(c.record.as_ref().unwrap()).unwrap();
            sum.chains += r.chains;
            sum.steps_checked += r.steps_checked;
            sum.checkpoints += r.checkpoints;
        }
        sum
    }

    /// Every line of every recording, parsed.
    fn lines(&self) -> Vec<serde_json::Value> {
        (self.cfgs.iter())
            .flat_map(|c| lines(c.record.as_ref().unwrap()))
            .collect()
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    (std::fs::read_to_string(path).unwrap().lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(path: &Path, lines: &[serde_json::Value]) {
    let text: Vec<String> = lines.iter().map(|v| v.to_string()).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// `lines` with line `k` (0-based) changed by `f`, validated from a file of their own; the
/// validator's error, which must name line `k + 1`.
fn rejected(
    dir: &Path,
    lines: &[serde_json::Value],
    k: usize,
    f: impl FnOnce(&mut serde_json::Value),
) -> String {
    let mut changed = lines.to_vec();
    f(&mut changed[k]);
    let path = dir.join(format!("tampered-{k}.jsonl"));
    write_lines(&path, &changed);
    let e = validate_file(&path).unwrap_err();
    assert!(e.contains(&format!(": line {} (", k + 1)), "{e}");
    e
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Checkpoint ratio of the first test: step lines and lines with a state about as large, so
/// several checkpoints per recording, with timeouts, votes, appends and client requests
/// between them.
const RATIO: u64 = 1;

/// Checks that the lines of `path` that carry a state are the ones the ratio rule picks (see
/// `raft_node::runtime::record`); their number.
fn checkpoints_by_ratio(path: &Path, ratio: u64) -> usize {
    let (mut states, mut last, mut steps, mut n) = (0u64, 0u64, 0u64, 0);
    for (k, line) in std::fs::read_to_string(path).unwrap().lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let bytes = line.len() as u64 + 1;
        if v["start"].is_object() {
            (states, last, steps) = (bytes, bytes, 0);
            continue;
        }
        let due = steps >= ratio * (states + last);
        assert_eq!(v["step"]["after"].is_object(), due, "line {}", k + 1);
        if due {
            (states, last, n) = (states + bytes, bytes, n + 1);
        } else {
            steps += bytes;
        }
    }
    n
}

#[test]
fn recorded_steps_of_a_real_cluster_are_model_transitions() {
    let mut r = Recorded::start("validate", |c| c.record_checkpoint_ratio = RATIO);
    let (mut a, mut b) = (r.client(), r.client());
    for v in 1..=4 {
        a.put("k0", &v.to_string()).unwrap();
    }
    b.put("k1", "7").unwrap();
    // Restart the leader gracefully; the others elect a new one.
    let leader = status(&r.https[0])
        .and_then(|s| s["leader"].as_u64())
        .unwrap();
    r.stop(leader);
    a.put("k0", "5").unwrap();
    b.put("k1", "8").unwrap();
    r.restart(leader);
    // Reads by ReadIndex, a compare-and-swap and a delete: model steps like the writes.
    assert_eq!(a.get("k0").unwrap().as_deref(), Some("5"));
    assert_eq!(
        b.cas("k1", Some("8"), Some("9")).unwrap(),
        (true, Some("8".into()))
    );
    b.delete("k0").unwrap();
    assert_eq!(a.get("k0").unwrap(), None);
    assert_eq!(a.get("k1").unwrap().as_deref(), Some("9"));
    r.wait_applied(leader, 9);
    r.stop_all();
    let report = r.validate();
    assert!(report.steps_checked > 20, "{report:?}");
    let all = r.lines();
    let recorded = |pick: &dyn Fn(&serde_json::Value) -> bool| {
        all.iter().filter(|v| pick(&v["step"]["input"])).count()
    };
    assert!(recorded(&|i| i["Read"].is_object()) >= 3, "reads recorded");
    assert!(recorded(&|i| i["Message"]["msg"]["ReadIndexResponse"].is_object()) >= 2);
    assert!(recorded(&|i| i["Client"]["Command"]["op"]["Cas"].is_object()) >= 1);
    assert!(recorded(&|i| i["Client"]["Command"]["op"]["Delete"].is_object()) >= 1);
    let steps = all.iter().filter(|v| v["step"].is_object()).count();
    let checkpoints: usize = (r.cfgs.iter())
        .map(|c| checkpoints_by_ratio(c.record.as_ref().unwrap(), RATIO))
        .sum();
    assert_eq!(report.checkpoints, checkpoints);
    assert!(
        checkpoints >= 6 && checkpoints < steps / 4,
        "{checkpoints} of {steps}"
    );
    // The driver's timeouts are steps like any other: the rebuilt states went through them.
    for kind in ["ElectionTimeout", "HeartbeatTimeout"] {
        assert!(all.iter().any(|v| v["step"]["input"] == kind), "no {kind}");
    }

    // The first line of any recording that `pick` accepts between checkpoints, and its file.
    let find = |pick: &dyn Fn(&serde_json::Value) -> bool| {
        (r.cfgs.iter())
            .map(|c| lines(c.record.as_ref().unwrap()))
            .find_map(|lines| {
                let k = (lines.iter()).position(|v| {
                    v["step"].is_object() && v["step"]["after"].is_null() && pick(&v["step"])
                })?;
                Some((lines, k))
            })
            .unwrap()
    };
    // Messages changed between checkpoints: the core stepped with the input sends others.
    let (lines, k) = find(&|s| s["messages"].as_array().unwrap().len() > 1);
    let e = rejected(&r.dir, &lines, k, |v| {
        v["step"]["messages"].as_array_mut().unwrap().pop();
    });
    assert!(e.contains("sends other messages than recorded"), "{e}");
    // A reply dropped between checkpoints (only the leader of the moment answers).
    let (lines, k) = find(&|s| !s["replies"].as_array().unwrap().is_empty());
    let e = rejected(&r.dir, &lines, k, |v| {
        v["step"]["replies"].as_array_mut().unwrap().clear();
    });
    assert!(e.contains("answers otherwise than recorded"), "{e}");
    // A checkpoint that is not the state the steps since the last one lead to.
    let (lines, k) = (r.cfgs.iter())
        .map(|c| self::lines(c.record.as_ref().unwrap()))
        .find_map(|lines| {
            let k = (lines.iter()).rposition(|v| v["step"]["after"].is_object())?;
            Some((lines, k))
        })
        .unwrap();
    let e = rejected(&r.dir, &lines, k, |v| {
        let t = &mut v["step"]["after"]["current_term"];
        *t = (t.as_u64().unwrap() + 1).into();
    });
    assert!(e.contains("differs from the state rebuilt"), "{e}");
    assert!(e.contains("current_term: recorded"), "{e}");
    // The same file untouched passes (the tampering, not the copying, was rejected).
    write_lines(&r.dir.join("copy.jsonl"), &lines);
    validate_file(&r.dir.join("copy.jsonl")).unwrap();
}

#[test]
fn recorded_compactions_and_snapshot_installs_are_model_transitions() {
    // Chunks far smaller than the snapshot (the model's values are small), so the install
    // that is validated arrived in pieces.
    // The state after every step (the format before checkpoints), so that each compaction and
    // install is also checked against the state the runtime held after it.
    let mut r = Recorded::start("validate-snap", |c| {
        c.snapshot_entries = 3;
        c.snapshot_chunk_bytes = 64;
        c.record_checkpoint_ratio = 0;
    });
    let (mut a, mut b) = (r.client(), r.client());
    a.put("k0", "1").unwrap();
    let leader = status(&r.https[0])
        .and_then(|s| s["leader"].as_u64())
        .unwrap();
    let follower = leader % 3 + 1;
    r.stop(follower);
    for v in 2..=7 {
        a.put("k0", &v.to_string()).unwrap();
        b.put("k1", &(v + 10).to_string()).unwrap();
    }
    let leader_status = status(&r.https[leader as usize - 1]).unwrap();
    let snap = leader_status["snapshot_index"].as_u64().unwrap();
    assert!(snap > 3, "the leader compacted (snapshot at {snap})");
    r.restart(follower);
    let commit = status(&r.https[leader as usize - 1]).unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    r.wait_applied(follower, commit);
    assert_eq!(b.get("k1").unwrap().as_deref(), Some("17"));
    let metrics = ureq::get(&format!("http://{}/metrics", r.https[leader as usize - 1]))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let chunks = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "raft_snapshot_chunks_sent_total{{node=\"{leader}\"}} "
            ))
            .map(|n| n.parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(chunks >= 2, "the snapshot went in {chunks} chunks");
    r.stop_all();
    let report = r.validate();
    let checked = report.steps_checked;
    let (mut compactions, mut installs) = (0, 0);
    for c in &r.cfgs {
        for v in lines(c.record.as_ref().unwrap()) {
            let input = &v["step"]["input"];
            if input == "Compact" {
                compactions += 1;
            }
            if input["Message"]["msg"]["InstallSnapshot"].is_object() {
                assert_eq!(c.id, follower, "only the restarted follower installs");
                installs += 1;
            }
        }
    }
    eprintln!("validated {checked} steps: {compactions} compactions, {installs} snapshot installs");
    assert!(compactions >= 3, "{compactions} compactions recorded");
    assert!(installs >= 1, "no InstallSnapshot recorded");
    assert_eq!(report.checkpoints, checked, "every step a checkpoint");
    // Without any state but the start lines', the same steps check the same way.
    for c in &r.cfgs {
        let mut lines = lines(c.record.as_ref().unwrap());
        for v in &mut lines {
            if let Some(step) = v.get_mut("step").and_then(|s| s.as_object_mut()) {
                step.remove("after").unwrap();
            }
        }
        let path = r.dir.join(format!("bare{}.jsonl", c.id));
        write_lines(&path, &lines);
        let full = validate_file(c.record.as_ref().unwrap()).unwrap();
        let bare = validate_file(&path).unwrap();
        assert_eq!(bare.checkpoints, 0);
        assert_eq!(
            (bare.chains, bare.steps_checked),
            (full.chains, full.steps_checked)
        );
    }
}

/// The deepest pipeline any recorded state shows: the longest `inflight` list of any
/// follower's progress, anywhere in a line.
fn deepest_pipeline(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(m) => (m.iter())
            .map(|(k, x)| match (k.as_str(), x) {
                ("inflight", serde_json::Value::Array(a)) => a.len(),
                _ => deepest_pipeline(x),
            })
            .max()
            .unwrap_or(0),
        serde_json::Value::Array(a) => a.iter().map(deepest_pipeline).max().unwrap_or(0),
        _ => 0,
    }
}

/// Pipelining on, eight appends deep (`raft-node cluster --max-inflight-appends 8`): writers
/// racing each other fill followers' pipelines, and every recorded step is still a model
/// transition (the validator runs the model with the node's depth).
#[test]
fn recorded_pipelined_run_is_model_transitions() {
    let mut r = Recorded::start("validate-pipe", |c| {
        c.max_inflight_appends = 8;
        c.record_checkpoint_ratio = 0;
    });
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut c = r.client();
            std::thread::spawn(move || {
                for v in 0..20 {
                    // The model has two keys.
                    c.put(&format!("k{}", w % 2), &(10 * w + v).to_string())
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let last = r.client().get("k1").unwrap();
    assert!(
        matches!(last.as_deref(), Some("29" | "49")),
        "k1 holds {last:?}, not a writer's last value"
    );
    r.stop_all();
    let report = r.validate();
    assert!(report.steps_checked > 100, "{report:?}");
    let deepest = r.lines().iter().map(deepest_pipeline).max().unwrap_or(0);
    assert!(
        deepest >= 2,
        "no recorded state had two appends in flight to a follower (deepest {deepest})"
    );
    println!("{report:?}, deepest pipeline {deepest}");
}
