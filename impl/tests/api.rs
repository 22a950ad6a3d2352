//! The HTTP API with real `raft-node` processes: the bearer token (missing and wrong tokens are
//! refused with a 401 on every endpoint, the right one works through the library, the CLI,
//! redirects and `?forward=true`), and `raft-node bench` (argument errors, a short run that completes operations
//! with zero errors, a wrong token stops it). Timing is never asserted.

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use raft_node::client::Client;
use raft_node::runtime::config::Config;
use serde_json::Value;

mod process_cluster;

use process_cluster::{configs, free_ports, init_all, spawn, BIN, WAIT};
const TOKEN: &str = "s3cret-Token";

/// Three nodes with `api_token` set, killed on drop.
struct Nodes {
    cfgs: Vec<Config>,
    procs: Vec<Child>,
    _tmp: tempfile::TempDir,
}

impl Nodes {
    fn start(token: Option<&str>) -> Nodes {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut cfgs = configs(3, dir, "api-test");
        init_all(&cfgs);
        let mut procs = Vec::new();
        for c in &mut cfgs {
            c.api_token = token.map(str::to_string);
            procs.push(spawn(c, dir));
        }
        Nodes {
            cfgs,
            procs,
            _tmp: tmp,
        }
    }

    fn http(&self) -> Vec<String> {
        self.cfgs.iter().map(|c| c.http_addr.to_string()).collect()
    }

    /// Wait until some node knows a leader (asking with the token).
    fn wait_leader(&self) -> String {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            for n in self.http() {
                let r = ureq::get(&format!("http://{n}/status"))
                    .set("authorization", &format!("Bearer {TOKEN}"))
                    .timeout(Duration::from_secs(1))
                    .call();
                if let Ok(r) = r {
                    let v: Value = r.into_json().unwrap();
                    if let Some(l) = v["leader_http"].as_str() {
                        return l.to_string();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader within {WAIT:?}");
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for ch in &mut self.procs {
            let _ = ch.kill();
            let _ = ch.wait();
        }
    }
}

/// Status code and JSON body of a request (`auth`: the Authorization header to send).
fn request(method: &str, url: &str, auth: Option<&str>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent.request(method, url).timeout(Duration::from_secs(5));
    if let Some(a) = auth {
        req = req.set("authorization", a);
    }
    let res = if method == "PUT" {
        req.send_string("v")
    } else {
        req.call()
    };
    match res {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RAFT_TOKEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn bearer_token_is_required_on_every_endpoint() {
    let nodes = Nodes::start(Some(TOKEN));
    let leader = nodes.wait_leader();
    let bearer = format!("Bearer {TOKEN}");
    for (method, path) in [
        ("PUT", "/kv/a"),
        ("GET", "/kv/a"),
        ("DELETE", "/kv/a"),
        ("POST", "/cas/a"),
        ("POST", "/register"),
        ("GET", "/status"),
        ("GET", "/metrics"),
    ] {
        let url = format!("http://{leader}{path}");
        let (code, body) = request(method, &url, None);
        assert_eq!(code, 401, "{method} {path} without a token: {body}");
        assert!(body.contains("missing bearer token"), "{body}");
        let (code, body) = request(method, &url, Some("Bearer wrong-token"));
        assert_eq!(code, 401, "{method} {path} with a wrong token: {body}");
        assert!(body.contains("wrong bearer token"), "{body}");
        let (code, body) = request(method, &url, Some(TOKEN));
        assert_eq!(
            code, 401,
            "{method} {path} without the Bearer scheme: {body}"
        );
    }
    let (code, body) = request("PUT", &format!("http://{leader}/kv/a"), Some(&bearer));
    assert_eq!(code, 200, "{body}");
    let (code, body) = request("GET", &format!("http://{leader}/metrics"), Some(&bearer));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("raft_commit_index"));

    // A follower redirects by default and forwards with ?forward=true (the token goes along).
    let follower = nodes.http().into_iter().find(|n| *n != leader).unwrap();
    let (code, body) = request("PUT", &format!("http://{follower}/kv/f"), Some(&bearer));
    assert_eq!(code, 307, "{body}");
    assert!(body.contains(&leader), "{body}");
    let (code, body) = request(
        "PUT",
        &format!("http://{follower}/kv/f?forward=true"),
        Some(&bearer),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = request(
        "GET",
        &format!("http://{follower}/kv/f?forward=true"),
        Some(&bearer),
    );
    assert_eq!((code, body.as_str()), (200, r#"{"value":"v"}"#));
    let (code, body) = request("PUT", &format!("http://{follower}/kv/f?forward=true"), None);
    assert_eq!(code, 401, "{body}");
    // A registration follows the same rules.
    let (code, body) = request(
        "POST",
        &format!("http://{follower}/register"),
        Some(&bearer),
    );
    assert_eq!(code, 307, "{body}");
    assert!(body.contains(&leader), "{body}");
    for at in [&follower, &leader] {
        let (code, body) = request(
            "POST",
            &format!("http://{at}/register?forward=true"),
            Some(&bearer),
        );
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["client_id"].as_u64().is_some_and(|id| id > 0), "{body}");
    }

    // The library, starting at every node in turn: followers redirect, the token goes along.
    for start in nodes.http() {
        let mut c = Client::new(vec![start.clone()]);
        c.set_deadline(WAIT);
        c.set_token(Some(TOKEN.into()));
        c.put("k", &start).unwrap();
        assert_eq!(c.get("k").unwrap().as_deref(), Some(start.as_str()));
    }
    let mut c = Client::new(nodes.http());
    c.set_deadline(Duration::from_secs(2));
    c.set_token(Some("wrong-token".into()));
    let e = c.put("k", "x").unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("wrong bearer token"), "{e}");

    // The CLI: --token, or RAFT_TOKEN.
    let list = nodes.http().join(",");
    let o = run(&["kv", "--nodes", &list, "--token", TOKEN, "put", "cli", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(BIN)
        .args(["kv", "--nodes", &list, "get", "cli"])
        .env("RAFT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    let o = run(&["kv", "--nodes", &list, "--timeout-ms", "2000", "get", "cli"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));

    // The load generator: a short run with the token completes operations and no errors;
    // with a wrong token it stops with the server's answer.
    let o = run(&[
        "bench",
        "--nodes",
        &list,
        "--token",
        TOKEN,
        "--clients",
        "8",
        "--reads",
        "0.3",
        "--value-size",
        "64",
        "--keys",
        "50",
        "--duration",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["writes"]["count"].as_u64().unwrap() > 0, "{s}");
    assert!(s["reads"]["count"].as_u64().unwrap() > 0, "{s}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ops/s"),
        "progress lines: {}",
        text(&o)
    );
    let o = run(&[
        "bench",
        "--nodes",
        &list,
        "--token",
        "nope",
        "--clients",
        "2",
        "--ops",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));
}

#[test]
fn bench_rejects_bad_arguments_and_counts_unanswered_operations() {
    for (args, needle) in [
        (vec!["--reads", "1.5"], "--reads"),
        (vec!["--reads=-0.1"], "--reads"),
        (vec!["--clients", "0"], "--clients"),
        (vec!["--keys", "0"], "--keys"),
        (vec!["--duration", "0"], "--duration"),
        (vec!["--duration", "nan"], "--duration"),
        (vec!["--ops", "0"], "--ops"),
        (vec!["--nodes", ""], "--nodes"),
        (vec!["--clients", "many"], "--clients"),
    ] {
        let mut all = vec!["bench"];
        all.extend(args.iter().copied());
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
    // Nothing listens there: every operation is given up on and counted, the exit code says so.
    let port = free_ports(1)[0];
    let o = run(&[
        "bench",
        "--nodes",
        &format!("127.0.0.1:{port}"),
        "--clients",
        "2",
        "--ops",
        "2",
        "--op-timeout-ms",
        "300",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["errors"], 2, "{s}");
    assert_eq!(s["ops"], 0, "{s}");
}
