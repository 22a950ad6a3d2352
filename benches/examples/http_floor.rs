//! The HTTP floor: what the client API costs on this machine with no consensus behind it.
//!
//! A server with the node's HTTP stack (axum over hyper, a 2-worker tokio runtime, mimalloc)
//! and the node's `POST /register` and `PUT /kv/KEY?client_id=&seq=` requests and answers, which
//! answers every write at once: no Raft, no disk, no peers. `raft-node bench` against it measures how many writes
//! per second the load generator and one HTTP server can exchange here at all; a 3-node
//! cluster also replicates, applies and fsyncs, on the same cores. BENCHMARKS.md, section 7.
//!
//! ```sh
//! cargo run --release -p raft-benches --example http_floor -- 127.0.0.1:7600 &
//! raft-node bench --nodes 127.0.0.1:7600 --clients 64 --duration 10
//! ```

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, Query};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
struct WriteParams {
    client_id: u64,
    seq: u64,
}

async fn kv_put(
    Path(_key): Path<String>,
    Query(p): Query<WriteParams>,
    _value: String,
) -> Json<Value> {
    Json(json!({ "ok": true, "client_id": p.client_id, "seq": p.seq }))
}

/// `POST /register`, as the node answers it (a fresh session id), so that clients that open a
/// session before their first write (`raft-node bench` does) run against the floor too.
async fn register() -> Json<Value> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Json(json!({ "client_id": NEXT.fetch_add(1, Ordering::Relaxed) }))
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7600".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        eprintln!("http_floor: answering PUT /kv/KEY on {addr}");
        let app = Router::new()
            .route("/kv/:key", put(kv_put))
            .route("/register", post(register));
        axum::serve(listener, app).await.expect("serve");
    });
}
