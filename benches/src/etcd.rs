//! etcd as a target of raftright's load generator, through etcd's native v3 API: gRPC over
//! HTTP/2, one connection per client with one request in flight (as each raftright client has
//! one HTTP/1.1 connection), `etcdserverpb.KV/Put` for writes and `etcdserverpb.KV/Range` for
//! reads, which etcd serves linearizably unless a request asks to be `serializable` (none does).
//!
//! The two request messages are encoded by hand (a key and a value, protobuf fields 1 and 2),
//! so that the comparison needs no protobuf compiler; answers are only checked for their gRPC
//! status, not decoded. Each client starts at member `i` modulo the members, as raftright's
//! clients start at node `i`: an etcd member forwards a write to its leader itself, where a
//! raftright follower redirects the client to its leader.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use raft_node::loadgen::{LoadConfig, Outcome, Progress, Target};
use tokio::net::TcpStream;

/// One etcd client.
pub struct EtcdClient {
    endpoints: Vec<String>,
    current: usize,
    conn: Option<SendRequest<Full<Bytes>>>,
    op_timeout: Duration,
    counters: Arc<Progress>,
}

impl EtcdClient {
    /// Client `i` of a run against the members `cfg.nodes` (`host:port` of their client URLs).
    pub fn new(cfg: &LoadConfig, counters: Arc<Progress>, i: usize) -> EtcdClient {
        EtcdClient {
            endpoints: cfg.nodes.clone(),
            current: i % cfg.nodes.len(),
            conn: None,
            op_timeout: cfg.op_timeout,
            counters,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.endpoints[self.current])
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some(sender);
        }
        Ok(())
    }

    /// One unary gRPC call, retried (another member after a failure) until it succeeds or
    /// `op_timeout` passes.
    async fn call(&mut self, method: &'static str, message: Bytes) -> Outcome {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(5);
        let mut first = true;
        while start.elapsed() < self.op_timeout {
            if !first {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            if self.connect().await.is_err() {
                self.rotate(&mut backoff).await;
                continue;
            }
            let req = Request::post(format!(
                "http://{}/etcdserverpb.KV/{method}",
                self.endpoints[self.current]
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(message.clone()))
            .expect("a request built from valid parts");
            let sender = self.conn.as_mut().expect("connected above");
            let patience = self
                .op_timeout
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(1));
            let exchange = async {
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let (parts, body) = resp.into_parts();
                let collected = body.collect().await?;
                // A failure may come "trailers-only", in the headers.
                let status = collected
                    .trailers()
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| parts.headers.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u32>().ok());
                let message = collected
                    .trailers()
                    .and_then(|t| t.get("grpc-message"))
                    .or_else(|| parts.headers.get("grpc-message"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                Ok::<_, hyper::Error>((parts.status, status, message))
            };
            match tokio::time::timeout(patience, exchange).await {
                Ok(Ok((http, Some(0), _))) if http.is_success() => return Outcome::Done,
                // INVALID_ARGUMENT, PERMISSION_DENIED, UNIMPLEMENTED, UNAUTHENTICATED: a
                // request that no retry can fix.
                Ok(Ok((_, Some(code @ (3 | 7 | 12 | 16)), msg))) => {
                    return Outcome::Refused(format!(
                        "{} answered gRPC status {code}: {msg}",
                        self.endpoints[self.current]
                    ))
                }
                // Unavailable (no leader), a leader change, a timeout inside etcd: retry.
                Ok(Ok(_)) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Ok(Err(_)) | Err(_) => self.rotate(&mut backoff).await,
            }
        }
        Outcome::GaveUp
    }

    async fn rotate(&mut self, backoff: &mut Duration) {
        self.conn = None;
        self.current = (self.current + 1) % self.endpoints.len();
        tokio::time::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(Duration::from_millis(200));
    }
}

impl Target for EtcdClient {
    async fn write(&mut self, key: &str, value: Bytes) -> Outcome {
        self.call("Put", grpc_frame(&key_value(key.as_bytes(), &value)))
            .await
    }

    async fn read(&mut self, key: &str) -> Outcome {
        self.call("Range", grpc_frame(&key_value(key.as_bytes(), &[])))
            .await
    }
}

/// A protobuf message with `key` as field 1 and, when not empty, `value` as field 2: a
/// `PutRequest`, or a `RangeRequest` of one key (its `serializable` field absent: a
/// linearizable read).
pub fn key_value(key: &[u8], value: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(key.len() + value.len() + 12);
    for (tag, bytes) in [(0x0a, key), (0x12, value)] {
        if bytes.is_empty() && tag != 0x0a {
            continue;
        }
        out.put_u8(tag);
        put_varint(&mut out, bytes.len() as u64);
        out.put_slice(bytes);
    }
    out.freeze()
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// A gRPC message frame: not compressed, a 4-byte big-endian length, the message.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_as_protobuf_and_grpc_frames() {
        assert_eq!(
            &key_value(b"k", b"vv")[..],
            &[0x0a, 1, b'k', 0x12, 2, b'v', b'v']
        );
        assert_eq!(&key_value(b"k", b"")[..], &[0x0a, 1, b'k']);
        let long = vec![b'x'; 300];
        // 300 = 0b10_0101100: varint 0xac 0x02.
        assert_eq!(&key_value(b"", &long)[..5], &[0x0a, 0, 0x12, 0xac, 0x02]);
        assert_eq!(&grpc_frame(b"abc")[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
