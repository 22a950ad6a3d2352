//! Fuzzing the HTTP API with proptest, through a real node run in-process on loopback: raw
//! HTTP/1.1 requests with random methods, paths (valid routes, percent-encoding garbage, very
//! long segments), query strings, headers and bodies, and structured mutations (bit flips,
//! truncations, overwritten lengths) of valid requests. Each must get an answer that is not a
//! server error (5xx other than 503/504, which are the API's "retry" answers), or a closed
//! connection for a request too broken to answer, and the node must keep serving afterwards.
//!
//! Longer runs: `PROPTEST_CASES=20000 cargo test --release -p raft-node --test fuzz_http`; a
//! failure prints its seed, replayed with `PROPTEST_RNG_SEED=<seed>`.

mod fuzz_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use fuzz_support::{apply, config, mutation};
use raft_node::runtime::config::Config;

/// One single-node cluster for the whole test binary (it stops when the process exits).
fn node() -> SocketAddr {
    static NODE: OnceLock<SocketAddr> = OnceLock::new();
    *NODE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let mut cfg = Config::local_cluster(1, &tmp, 7000, "fuzz-http").remove(0);
        cfg.peer_addr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
        cfg.http_addr = format!("127.0.0.1:{}", ports[1]).parse().unwrap();
        cfg.request_timeout_ms = 500;
        cfg.init_data_dir().unwrap();
        let http = cfg.http_addr;
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let r = rt.block_on(raft_node::runtime::server::run(
                cfg,
                std::future::pending::<()>(),
            ));
            panic!("the node stopped: {r:?}");
        });
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let status = b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            if let Some((200, body)) = request(http, status) {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if v["leader"] == serde_json::json!(1) {
                    break;
                }
            }
            assert!(Instant::now() < until, "the node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        http
    })
}

/// Send raw bytes and read the status code and body of the answer (`None`: the connection
/// closed without one). A request that claims more body than it has leaves the server waiting:
/// after a quiet spell the writing side is closed, which ends such a request. (It is not closed
/// at once because hyper drops a request in flight when its client half-closes.)
fn request(addr: SocketAddr, raw: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut closed_write = false;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < until, "no answer within 10 s");
        s.set_read_timeout(Some(Duration::from_millis(if closed_write {
            2000
        } else {
            150
        })))
        .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !out.is_empty() || closed_write {
                    break;
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
                closed_write = true;
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((code, body))
}

fn check_answer(raw: &[u8]) -> Result<(), TestCaseError> {
    let addr = node();
    if let Some((code, body)) = request(addr, raw) {
        prop_assert!(
            code < 500 || code == 503 || code == 504,
            "server error {} for {:?}: {}",
            code,
            String::from_utf8_lossy(raw),
            body
        );
    }
    Ok(())
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("PUT".to_string()),
        Just("POST".to_string()),
        Just("DELETE".to_string()),
        Just("PATCH".to_string()),
        "[A-Z]{1,8}",
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{0,10}",
        "(%[0-9A-Fa-f]{2}|%[^0-9A-Fa-f]?|[a-z])",
        "[!-~]{0,12}".prop_map(|s| s.replace([' ', '#', '?'], "")),
        (1usize..5000).prop_map(|n| "k".repeat(n)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        segment().prop_map(|k| format!("/kv/{k}")),
        segment().prop_map(|k| format!("/cas/{k}")),
        Just("/register".to_string()),
        Just("/status".to_string()),
        Just("/metrics".to_string()),
        proptest::collection::vec(segment(), 0..4).prop_map(|v| format!("/{}", v.join("/"))),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("?stale=true".to_string()),
        (any::<u64>(), any::<u64>()).prop_map(|(c, s)| format!("?client_id={c}&seq={s}")),
        "[a-z_=&0-9%-]{0,30}".prop_map(|q| format!("?{q}")),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        (
            proptest::option::of(".{0,8}"),
            proptest::option::of(".{0,8}")
        )
            .prop_map(
                |(e, n)| serde_json::to_vec(&serde_json::json!({"expected": e, "new": n})).unwrap()
            ),
        "\\{\"expected\":[0-9a-z\" ]{0,10},\"new\":[\\[\\]{}0-9a-z\" ]{0,10}\\}"
            .prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

fn http(method: &str, path: &str, query: &str, body: &[u8], length: Option<u64>) -> Vec<u8> {
    let mut raw = format!(
        "{method} {path}{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        length.unwrap_or(body.len() as u64)
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

proptest! {
    #![proptest_config(config("HTTP API", 64))]

    #[test]
    fn random_requests_get_an_answer_that_is_not_a_server_error(
        m in method(),
        p in path(),
        q in query(),
        b in body(),
        wrong_length in proptest::option::weighted(
            0.1,
            prop_oneof![0u64..300, Just(u64::MAX), Just(1 << 40)],
        ),
    ) {
        check_answer(&http(&m, &p, &q, &b, wrong_length))?;
    }

    #[test]
    fn mutated_valid_requests_get_an_answer_that_is_not_a_server_error(
        which in 0usize..5,
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        let valid = [
            http("PUT", "/kv/a", "", b"hello", None),
            http("POST", "/cas/a", "", br#"{"expected":"hello","new":"bye"}"#, None),
            http("GET", "/kv/a", "?stale=true", b"", None),
            http("DELETE", "/kv/a", "?client_id=5&seq=1", b"", None),
            http("POST", "/register", "", b"", None),
        ];
        let mut raw = valid[which].clone();
        for m in &ms {
            apply(&mut raw, m);
        }
        check_answer(&raw)?;
    }
}

#[test]
fn the_node_keeps_serving_writes_and_reads() {
    let addr = node();
    let (code, body) = request(addr, &http("POST", "/register", "", b"", None)).expect("an answer");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["client_id"].as_u64().unwrap();
    let put = http(
        "PUT",
        "/kv/after",
        &format!("?client_id={id}&seq=1"),
        b"still here",
        None,
    );
    let (code, body) = request(addr, &put).expect("an answer");
    assert_eq!(code, 200, "{body}");
    // Every answer of the API, errors included, is JSON.
    for raw in [
        http("GET", "/nowhere", "", b"", None),
        http("PUT", "/kv/after", "?client_id=x&seq=1", b"", None),
        http("PUT", "/kv/after", "?client_id=0&seq=1", b"", None),
        http("POST", "/cas/after", "", b"{not json", None),
        http("GET", "/register", "", b"", None),
        http("PUT", "/kv/after", "", &[0xff, 0xfe], None),
    ] {
        let (code, body) = request(addr, &raw).expect("an answer");
        assert!((400..500).contains(&code), "{code}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{code}, not JSON ({e}): {body:?}"));
        assert!(v["error"].is_string(), "{body}");
    }
    let (code, body) = request(addr, &http("GET", "/kv/after", "", b"", None)).expect("an answer");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("still here"), "{body}");
}
