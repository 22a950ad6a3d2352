//! The HTTP accept loop out of file descriptors (issue 17): `accept` failing with `EMFILE` is
//! back-pressure, counted, and the loop goes on serving once descriptors are free again. This
//! binary lowers its own open-file limit, so it holds this one test only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use raft_node::runtime::limits::{self, HttpLimits};
use raft_node::runtime::metrics::Metrics;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn accept_out_of_descriptors_backs_off_and_recovers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // 60 connections wait in the accept queue before the loop starts.
    let clients: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    // Room for 10 more descriptors only: the loop takes about 10 and then gets EMFILE.
    let low = open_fds() + 10;
    rlimit::Resource::NOFILE.set(low, hard).unwrap();
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let router = axum::Router::new().route("/", get(|| async { "ok" }));
    let server = rt.spawn(limits::serve(
        listener,
        router,
        HttpLimits {
            max_connections: 1000,
            header_timeout: Duration::from_secs(60),
        },
        metrics.clone(),
        stopped,
    ));
    std::thread::sleep(Duration::from_millis(500));
    let errors = metrics.http_accept_errors.load(Ordering::Relaxed);
    let served = metrics.http_connections.load(Ordering::Relaxed);
    println!("limit {low}: {served} connections taken, {errors} accepts failed with EMFILE");
    assert!(errors >= 1, "no accept failed at the limit");
    assert!(served < 60, "{served}");
    assert!(!server.is_finished(), "the accept loop ended");
    // Descriptors free again: every waiting connection is taken and served.
    rlimit::Resource::NOFILE.set(soft, hard).unwrap();
    for (k, mut c) in clients.into_iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "connection {k}: {out:?}");
    }
    let _ = stop.send(true);
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops")
            .unwrap()
    });
}
