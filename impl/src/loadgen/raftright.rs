//! The raftright target of the load generator: one keep-alive HTTP/1.1 connection per client,
//! a session registered before the first write, redirects to the leader followed, and a write
//! retried with the same `(client_id, seq)` until it is answered.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{LoadConfig, Outcome, Progress, Target};

impl Target for Worker {
    async fn ready_to_write(&mut self) -> Result<(), Outcome> {
        if self.client_id != raft_core::NO_SESSION {
            return Ok(());
        }
        match self.register().await {
            Ok(()) => Ok(()),
            Err(None) => Err(Outcome::GaveUp),
            Err(Some(e)) => Err(Outcome::Refused(e)),
        }
    }

    async fn write(&mut self, key: &str, value: Bytes) -> Outcome {
        self.seq += 1;
        let uri = format!("/kv/{key}?client_id={}&seq={}", self.client_id, self.seq);
        match self.attempt(Method::PUT, uri, value).await {
            Answer::Done(_) => Outcome::Done,
            Answer::Expired => {
                self.client_id = raft_core::NO_SESSION;
                Outcome::Expired
            }
            Answer::GaveUp => Outcome::GaveUp,
            Answer::Refused(e) => Outcome::Refused(e),
        }
    }

    async fn read(&mut self, key: &str) -> Outcome {
        let uri = if self.cfg.stale_reads {
            format!("/kv/{key}?stale=true")
        } else {
            format!("/kv/{key}")
        };
        match self.attempt(Method::GET, uri, Bytes::new()).await {
            Answer::Done(_) => Outcome::Done,
            Answer::Expired => Outcome::Expired,
            Answer::GaveUp => Outcome::GaveUp,
            Answer::Refused(e) => Outcome::Refused(e),
        }
    }
}

/// One client: one connection, one request in flight.
pub struct Worker {
    cfg: Arc<LoadConfig>,
    counters: Arc<Progress>,
    conn: Option<SendRequest<Full<Bytes>>>,
    current: usize,
    nodes: Vec<String>,
    /// The session (`NO_SESSION` until registered).
    client_id: u64,
    seq: u64,
}

/// How one HTTP request ended.
enum Answer {
    /// Answered (200), with the answer's body.
    Done(Bytes),
    /// A write's session is gone (409 "session expired"): counted as an error, and the
    /// client registers again.
    Expired,
    /// Not answered in time (counted as an error; the run goes on).
    GaveUp,
    /// The cluster refuses this request outright (4xx): the run stops.
    Refused(String),
}

impl Worker {
    /// Client `i` of a run (it starts at node `i` modulo the nodes given).
    pub fn new(cfg: Arc<LoadConfig>, counters: Arc<Progress>, i: usize) -> Worker {
        Worker {
            current: i % cfg.nodes.len(),
            nodes: cfg.nodes.clone(),
            cfg,
            counters,
            conn: None,
            client_id: raft_core::NO_SESSION,
            seq: 0,
        }
    }

    /// Open a session (`POST /register`, retried like any request). `Err(None)`: not answered
    /// in time; `Err(Some(why))`: refused.
    async fn register(&mut self) -> Result<(), Option<String>> {
        let body = match self
            .attempt(Method::POST, "/register".into(), Bytes::new())
            .await
        {
            Answer::Done(b) => b,
            Answer::GaveUp => return Err(None),
            Answer::Expired => return Err(Some("a registration answered 409".into())),
            Answer::Refused(e) => return Err(Some(e)),
        };
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["client_id"].as_u64())
            .filter(|&id| id != raft_core::NO_SESSION);
        match id {
            Some(id) => {
                self.client_id = id;
                self.seq = 0;
                Ok(())
            }
            None => Err(Some(format!(
                "bad answer to a registration: {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// Send one request until it is answered, refused or `op_timeout` passes.
    async fn attempt(&mut self, method: Method, uri: String, body: Bytes) -> Answer {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(5);
        let mut first = true;
        let mut redirects = 0;
        while start.elapsed() < self.cfg.op_timeout {
            if !first {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            if self.connect().await.is_err() {
                self.rotate();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
                continue;
            }
            let mut req = Request::builder()
                .method(method.clone())
                .uri(uri.as_str())
                .header(hyper::header::HOST, &self.nodes[self.current]);
            if let Some(t) = &self.cfg.token {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = req
                .body(Full::new(body.clone()))
                .expect("a request built from valid parts");
            let sender = self.conn.as_mut().expect("connected above");
            // A node that stopped (SIGSTOP, a hung host) keeps the connection open and never
            // answers: each attempt gets a third of the operation's time, so the client moves
            // on to another node while the operation can still succeed there.
            let patience = (self.cfg.op_timeout / 3)
                .min(self.cfg.op_timeout.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(1));
            let exchange = async {
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let location = resp
                    .headers()
                    .get(hyper::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, location, body))
            };
            let (status, location, body) = match tokio::time::timeout(patience, exchange).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) | Err(_) => {
                    self.conn = None;
                    self.rotate();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                    continue;
                }
            };
            if status == StatusCode::OK {
                return Answer::Done(body);
            }
            if status == StatusCode::CONFLICT && body_error(&body) == Some("session expired") {
                return Answer::Expired;
            }
            if status == StatusCode::TEMPORARY_REDIRECT {
                if let Some(addr) = location.as_deref().and_then(authority) {
                    self.go_to(addr);
                    redirects += 1;
                    // Nodes that disagree on the leader (an election under way) must not
                    // bounce the client back and forth at full speed.
                    if redirects > 3 {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(200));
                    }
                    continue;
                }
            }
            if status.is_client_error() {
                return Answer::Refused(format!(
                    "{} answered {status}: {}",
                    self.nodes[self.current],
                    String::from_utf8_lossy(&body)
                ));
            }
            // 503 (no leader yet, overloaded) or 504 (not committed in time): retry, same seq.
            let hint = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["leader_http"].as_str().map(str::to_string));
            match hint {
                Some(addr) => self.go_to(&addr),
                None if status == StatusCode::SERVICE_UNAVAILABLE => self.rotate(),
                None => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        Answer::GaveUp
    }

    async fn connect(&mut self) -> Result<(), String> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = None;
            let stream = TcpStream::connect(&self.nodes[self.current])
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some(sender);
        }
        Ok(())
    }

    fn rotate(&mut self) {
        self.conn = None;
        self.current = (self.current + 1) % self.nodes.len();
    }

    fn go_to(&mut self, addr: &str) {
        if self.nodes[self.current] == addr {
            return;
        }
        self.conn = None;
        match self.nodes.iter().position(|n| n == addr) {
            Some(i) => self.current = i,
            None => {
                self.nodes.push(addr.to_string());
                self.current = self.nodes.len() - 1;
            }
        }
    }
}

/// The `error` of a JSON error answer.
fn body_error(body: &[u8]) -> Option<&str> {
    // A borrowed string: the reasons this module looks for have no escapes.
    #[derive(serde::Deserialize)]
    struct E<'a> {
        error: &'a str,
    }
    serde_json::from_slice::<E>(body).ok().map(|e| e.error)
}

/// `host:port` of an absolute `http://host:port/...` URL.
pub(super) fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    Some(rest.split('/').next().unwrap_or(rest)).filter(|a| !a.is_empty())
}
