//! A blocking client library for the HTTP API: finds the leader (following `NotLeader`
//! redirects, rotating through the nodes on failures), opens a client session (`POST
//! /register`) before its first write and keeps it for its lifetime, numbers its writes, and
//! retries every write with the same `(client_id, seq)` until it is answered or the deadline
//! passes, so a write is applied at most once however often it is retried.
//!
//! A session that is gone (evicted by newer registrations: only more than `max_sessions`
//! other clients registering or writing since this client's last request evicts it) is an
//! error, [`ClientError::SessionExpired`], never a success: that write was not applied by
//! its last attempt, but an earlier attempt may have been. The client then opens a new session
//! for its next write.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer before the deadline (the write may or may not have been applied; retrying it
    /// with the same client keeps it exactly-once).
    #[error("no answer within {0:?}; last error: {1}")]
    Timeout(Duration, String),
    /// The server rejected the request (bad input).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The client's session is gone (evicted, or the id was never registered): this attempt
    /// was not applied, an earlier attempt of the same seq may have been, so the outcome of
    /// the write is unknown. The client registers a new session for its next write.
    #[error("session expired: client {client_id} has no session; seq {seq} was not applied by this attempt (an earlier attempt may have been)")]
    SessionExpired { client_id: u64, seq: u64 },
    /// The session already applied a later seq: this one is never applied and its answer is
    /// not kept (a client with one request in flight never sees this).
    #[error("stale seq: client {client_id} already applied seq {last_seq}, after seq {seq}")]
    Stale {
        client_id: u64,
        seq: u64,
        last_seq: u64,
    },
}

/// A client of one cluster. It has at most one request in flight.
pub struct Client {
    nodes: Vec<String>,
    current: usize,
    /// The session (`NO_SESSION`, 0: none yet).
    client_id: u64,
    seq: u64,
    /// The server said the session is gone: the next write registers a new one.
    expired: bool,
    agent: ureq::Agent,
    deadline: Duration,
    token: Option<String>,
}

impl Client {
    /// A client knowing the HTTP addresses (`host:port`) of some nodes. It registers a session
    /// before its first write ([`Client::register`]).
    pub fn new(nodes: Vec<String>) -> Client {
        Self::with_id(nodes, raft_core::NO_SESSION, 0)
    }

    /// A client resuming the session `client_id` whose last used seq is `last_seq` (a process
    /// that retries a write of an earlier one passes that write's seq minus one).
    pub fn with_id(nodes: Vec<String>, client_id: u64, last_seq: u64) -> Client {
        assert!(!nodes.is_empty(), "a client needs at least one node");
        Client {
            nodes,
            current: 0,
            client_id,
            seq: last_seq,
            expired: false,
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(3))
                .build(),
            deadline: Duration::from_secs(30),
            token: None,
        }
    }

    /// Send `Authorization: Bearer TOKEN` with every request (`None`: no header).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    fn authorize(&self, req: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(t) => req.set("authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// Give up on a request after `d` (default 30 s).
    pub fn set_deadline(&mut self, d: Duration) {
        self.deadline = d;
    }

    /// The nodes this client knows.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The session's client id (0: no session yet). After [`ClientError::SessionExpired`] it
    /// still names the expired session until the next write registers a new one.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The last seq used (with [`Client::client_id`], what the last write was sent as).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether the next write goes through an open session (otherwise it registers first).
    pub fn has_session(&self) -> bool {
        self.client_id != raft_core::NO_SESSION && !self.expired
    }

    /// Open a new session (`POST /register`), retried across leaders until the deadline; its
    /// id is the index of its `Register` entry in the log. A registration retried after a lost
    /// answer may open a session nobody uses; that is harmless (it is evicted first).
    pub fn register(&mut self) -> Result<u64, ClientError> {
        let v = self.call("POST", "/register", "", None, false)?;
        let id = v["client_id"]
            .as_u64()
            .filter(|&id| id != raft_core::NO_SESSION)
            .ok_or_else(|| ClientError::Rejected(format!("bad answer to a registration: {v}")))?;
        self.client_id = id;
        self.seq = 0;
        self.expired = false;
        Ok(id)
    }

    /// The node believed to lead.
    pub fn leader_guess(&self) -> &str {
        &self.nodes[self.current]
    }

    /// `put key value`.
    pub fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.write("PUT", &format!("/kv/{key}"), Some(value.to_string()), false)
            .map(|_| ())
    }

    /// `delete key`.
    pub fn delete(&mut self, key: &str) -> Result<(), ClientError> {
        self.write("DELETE", &format!("/kv/{key}"), None, false)
            .map(|_| ())
    }

    /// Compare-and-swap: set `key` to `new` (`None`: delete) iff its value is `expected`
    /// (`None`: absent). Returns whether it swapped and the value before.
    pub fn cas(
        &mut self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<(bool, Option<String>), ClientError> {
        let body = serde_json::json!({ "expected": expected, "new": new }).to_string();
        let v = self.write("POST", &format!("/cas/{key}"), Some(body), true)?;
        Ok((
            v["swapped"].as_bool().unwrap_or(false),
            v["previous"].as_str().map(str::to_string),
        ))
    }

    /// A linearizable read (ReadIndex at the leader; reads need no session).
    pub fn get(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        let v = self.call("GET", &format!("/kv/{key}"), "", None, false)?;
        Ok(v["value"].as_str().map(str::to_string))
    }

    /// A possibly stale read from the first node that answers (no leader round trip).
    pub fn get_stale(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        let v = self.call("GET", &format!("/kv/{key}"), "?stale=true", None, false)?;
        Ok(v["value"].as_str().map(str::to_string))
    }

    /// `/status` of every node (an error string for a node that does not answer).
    pub fn status(&self) -> Vec<(String, Result<Value, String>)> {
        self.get_each("/status")
    }

    /// An operator's membership operation (`add-voter`, `add-learner`, `promote`, `remove`,
    /// `transfer-leader`) on node `id`, sent to the leader (found as for writes) and retried
    /// while the leader is busy. A change is answered once committed, with the new voters and
    /// learners.
    pub fn change_membership(&mut self, op: &str, id: u64) -> Result<Value, ClientError> {
        self.call("POST", &format!("/membership/{op}/{id}"), "", None, false)
    }

    /// `GET /membership` at every node: each one's view of the configuration.
    pub fn membership(&self) -> Vec<(String, Result<Value, String>)> {
        self.get_each("/membership")
    }

    fn get_each(&self, path: &str) -> Vec<(String, Result<Value, String>)> {
        self.nodes
            .iter()
            .map(|n| {
                let r = self
                    .authorize(self.agent.get(&format!("http://{n}{path}")))
                    .call()
                    .map_err(|e| match e {
                        ureq::Error::Status(code, r) => {
                            format!("{code}: {}", r.into_string().unwrap_or_default())
                        }
                        e => e.to_string(),
                    })
                    .and_then(|r| r.into_json::<Value>().map_err(|e| e.to_string()));
                (n.clone(), r)
            })
            .collect()
    }

    fn write(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
        json: bool,
    ) -> Result<Value, ClientError> {
        if self.client_id == raft_core::NO_SESSION || self.expired {
            self.register()?;
        }
        self.seq += 1;
        let q = format!("?client_id={}&seq={}", self.client_id, self.seq);
        let r = self.call(method, path, &q, body, json);
        if matches!(r, Err(ClientError::SessionExpired { .. })) {
            self.expired = true;
        }
        r
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<String>,
        json: bool,
    ) -> Result<Value, ClientError> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(20);
        let mut last = String::from("no attempt");
        let mut redirects = 0;
        while start.elapsed() < self.deadline {
            let url = format!("http://{}{path}{query}", self.nodes[self.current]);
            let mut req = self.authorize(self.agent.request(method, &url));
            if json {
                req = req.set("content-type", "application/json");
            }
            let res = match &body {
                Some(b) => req.send_string(b),
                None => req.call(),
            };
            let resp = match res {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => {
                    last = format!("{}: {e}", self.nodes[self.current]);
                    self.current = (self.current + 1) % self.nodes.len();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            };
            let status = resp.status();
            let v: Value = resp.into_json().unwrap_or(Value::Null);
            match status {
                200 => return Ok(v),
                409 => return Err(conflict(v)),
                400..=499 => return Err(ClientError::Rejected(format!("{status}: {v}"))),
                _ => {}
            }
            last = format!("{}: {status} {v}", self.nodes[self.current]);
            if let Some(addr) = v["leader_http"].as_str() {
                match self.nodes.iter().position(|n| n == addr) {
                    Some(i) => self.current = i,
                    None => {
                        self.nodes.push(addr.to_string());
                        self.current = self.nodes.len() - 1;
                    }
                }
                redirects += 1;
                if status == 307 && redirects <= 3 {
                    continue;
                }
            } else if status != 504 {
                self.current = (self.current + 1) % self.nodes.len();
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        Err(ClientError::Timeout(self.deadline, last))
    }
}

/// The error a 409 answer stands for.
fn conflict(v: Value) -> ClientError {
    let (client_id, seq) = (v["client_id"].as_u64(), v["seq"].as_u64());
    match (v["error"].as_str(), client_id, seq) {
        (Some("session expired"), Some(client_id), Some(seq)) => {
            ClientError::SessionExpired { client_id, seq }
        }
        (Some("stale seq"), Some(client_id), Some(seq)) => ClientError::Stale {
            client_id,
            seq,
            last_seq: v["last_seq"].as_u64().unwrap_or(seq),
        },
        _ => ClientError::Rejected(format!("409: {v}")),
    }
}
