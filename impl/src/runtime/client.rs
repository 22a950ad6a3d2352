//! A blocking client library for the HTTP API: finds the leader (following `NotLeader`
//! redirects, rotating through the nodes on failures), and retries every write with the same
//! `(client_id, seq)` until it is answered or the deadline passes, so a write is applied at most
//! once however often it is retried.

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
}

/// A client of one cluster. It has at most one request in flight.
pub struct Client {
    nodes: Vec<String>,
    current: usize,
    client_id: u64,
    seq: u64,
    agent: ureq::Agent,
    deadline: Duration,
    token: Option<String>,
}

impl Client {
    /// A client with a fresh random id, knowing the HTTP addresses (`host:port`) of some nodes.
    pub fn new(nodes: Vec<String>) -> Client {
        Self::with_id(nodes, rand::random::<u64>() >> 1 | 1, 0)
    }

    /// A client with a given id whose last used seq is `last_seq`.
    pub fn with_id(nodes: Vec<String>, client_id: u64, last_seq: u64) -> Client {
        assert!(!nodes.is_empty(), "a client needs at least one node");
        Client {
            nodes,
            current: 0,
            client_id,
            seq: last_seq,
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

    /// The client id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The last seq used.
    pub fn seq(&self) -> u64 {
        self.seq
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

    /// A linearizable read (ReadIndex at the leader).
    pub fn get(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        let q = format!("?client_id={}", self.client_id);
        let v = self.call("GET", &format!("/kv/{key}"), &q, None, false)?;
        Ok(v["value"].as_str().map(str::to_string))
    }

    /// A possibly stale read from the first node that answers (no leader round trip).
    pub fn get_stale(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        let v = self.call("GET", &format!("/kv/{key}"), "?stale=true", None, false)?;
        Ok(v["value"].as_str().map(str::to_string))
    }

    /// `/status` of every node (an error string for a node that does not answer).
    pub fn status(&self) -> Vec<(String, Result<Value, String>)> {
        self.nodes
            .iter()
            .map(|n| {
                let r = self
                    .authorize(self.agent.get(&format!("http://{n}/status")))
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
        self.seq += 1;
        let q = format!("?client_id={}&seq={}", self.client_id, self.seq);
        self.call(method, path, &q, body, json)
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
