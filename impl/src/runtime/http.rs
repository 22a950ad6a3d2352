//! The HTTP/JSON client API: client sessions (`POST /register`), key-value reads and writes,
//! compare-and-swap, status and metrics. Handlers hand requests to the node loop and wait for
//! its answer; a non-leader answers with a redirect to the leader, or relays the request there
//! when asked (`?forward=true`). With `api_token` configured every request needs the bearer
//! token. Every error answer is JSON with an `error` reason.
//!
//! A write with `?client_id=&seq=` goes through the client's session (exactly once however
//! often it is retried); a write without them takes no session: it is applied once per log
//! entry, so it is not safe to retry. Registrations and sessionless writes are routed back to
//! their waiting handler by a nonce (`(NO_SESSION, nonce)`), drawn from one counter per node
//! process that starts at a random point, so nonces of different nodes (and of a restarted
//! node) do not meet when a new leader answers an entry another node proposed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::config::Config;
use super::metrics::Metrics;
use super::node_input::{AdminAnswer, NodeInput};
use super::status::Status;
use raft_core::{
    AdminOp, AdminOutcome, Answer, ClientReply, ClientRequest, NodeId, Op, ReadRequest, NO_SESSION,
};

/// Shared by the HTTP handlers.
pub(crate) struct Api {
    input: mpsc::Sender<NodeInput>,
    status: Arc<RwLock<Status>>,
    metrics: Arc<Metrics>,
    next_read: AtomicU64,
    /// Nonces of registrations and sessionless writes.
    next_nonce: AtomicU64,
    timeout: Duration,
    id: NodeId,
    cfg: Arc<Config>,
}

impl Api {
    pub(crate) fn new(
        input: mpsc::Sender<NodeInput>,
        status: Arc<RwLock<Status>>,
        metrics: Arc<Metrics>,
        timeout: Duration,
        cfg: Arc<Config>,
    ) -> Api {
        Api {
            input,
            status,
            metrics,
            next_read: AtomicU64::new(1),
            // A random start in [2^61, 2^62): no collision with another process's nonces in
            // practice, and 2^61 nonces before the counter could wrap.
            next_nonce: AtomicU64::new(rand::random::<u64>() >> 3 | 1 << 61),
            timeout,
            id: cfg.id,
            cfg,
        }
    }

    fn nonce(&self) -> u64 {
        self.next_nonce.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/kv/:key", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/kv/", any(empty_key))
        .route("/cas/:key", post(kv_cas))
        .route("/cas/", any(empty_key))
        .route("/register", post(register))
        .route("/status", get(status))
        .route("/membership", get(membership))
        .route("/membership/:op/:id", post(change_membership))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(api.clone(), forward))
        .layer(middleware::from_fn_with_state(api.clone(), authorize))
        .layer(middleware::from_fn_with_state(api.clone(), json_errors))
        .layer(middleware::from_fn_with_state(api.clone(), deadline))
        .with_state(api)
}

/// `/kv/` and `/cas/` without a key.
async fn empty_key() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "empty key: the path is /kv/KEY (or /cas/KEY) with a non-empty KEY",
    )
}

async fn not_found(uri: Uri) -> Response {
    err(
        StatusCode::NOT_FOUND,
        &format!(
            "no such endpoint: {} (endpoints: /kv/KEY, /cas/KEY, /register, /status, /metrics)",
            uri.path()
        ),
    )
}

/// A request (reading its body included) not done within `http_request_timeout_ms` is
/// answered `408`: a client that trickles its body cannot hold a connection for longer.
async fn deadline(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let limit = Duration::from_millis(api.cfg.http_request_timeout_ms);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            api.metrics.inc(&api.metrics.http_request_timeouts);
            let mut resp = err(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request not complete within {} ms (http_request_timeout_ms); retry",
                    limit.as_millis()
                ),
            );
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            resp
        }
    }
}

/// The `413` answer for a body over `max_body_bytes`.
fn too_large(api: &Api, detail: &str) -> Response {
    api.metrics.inc(&api.metrics.http_bodies_too_large);
    err(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "request body over {} bytes (max_body_bytes){detail}",
            api.cfg.max_body_bytes
        ),
    )
}

/// With `api_token` set, every endpoint (status and metrics included: they reveal the
/// cluster's layout and load) needs `Authorization: Bearer <token>`; anything else is a 401.
async fn authorize(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let Some(token) = api.cfg.api_token.as_deref() else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let problem = match given {
        None => "missing bearer token: send Authorization: Bearer <token>",
        Some(t) if same_secret(t.as_bytes(), token.as_bytes()) => {
            return next.run(req).await;
        }
        Some(_) => "wrong bearer token",
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({ "error": problem })),
    )
        .into_response()
}

/// `?forward=true` on a key-value request or a registration to a node that knows another leader: the node sends
/// the request to the leader itself and relays the answer, instead of the default 307
/// redirect. The forwarded request loses `forward=true`, so it is forwarded at most once; when
/// the leader is unknown or this node leads, the request is served here as usual.
async fn forward(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let wants = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "forward=true"));
    let path = req.uri().path();
    let data = path.starts_with("/kv/")
        || path.starts_with("/cas/")
        || path == "/register"
        || path.starts_with("/membership/");
    if !(wants && data) {
        return next.run(req).await;
    }
    let leader = {
        let s = api.status.read().unwrap();
        match (s.leader, &s.leader_http) {
            (Some(l), Some(addr)) if l != api.id => Some(addr.clone()),
            _ => None,
        }
    };
    let Some(addr) = leader else {
        return next.run(req).await;
    };
    // The body is held here while it is relayed: at most `max_body_bytes`, refused by its
    // declared length before any of it is read when that is already too much.
    let limit = api.cfg.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(&api, "; not forwarded to the leader");
    }
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return too_large(&api, "; not forwarded to the leader"),
        Err(e) => return err(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
    };
    let query: Vec<&str> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| *kv != "forward=true" && !kv.is_empty())
        .collect();
    let path = if query.is_empty() {
        parts.uri.path().to_string()
    } else {
        format!("{}?{}", parts.uri.path(), query.join("&"))
    };
    let sent = tokio::time::timeout(
        api.timeout + Duration::from_secs(1),
        relay(&addr, parts.method, &path, &parts.headers, body),
    )
    .await;
    match sent {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => err(
            StatusCode::BAD_GATEWAY,
            &format!("forwarding to the leader at {addr} failed: {e}; retry"),
        ),
        Err(_) => err(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("the leader at {addr} did not answer in time; retry"),
        ),
    }
}

/// Whether reading a body failed on the length limit (rather than on the connection).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if x.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = x.source();
    }
    false
}

/// One request to `addr` on a fresh connection; its status, type, location and body come back.
async fn relay(
    addr: &str,
    method: axum::http::Method,
    path: &str,
    headers: &axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, String> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut out = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            out = out.header(name, v);
        }
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut back = axum::http::Response::builder().status(status);
    for name in [header::CONTENT_TYPE, header::LOCATION] {
        if let Some(v) = resp.headers().get(&name) {
            back = back.header(name, v.clone());
        }
    }
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    back.body(axum::body::Body::from(bytes))
        .map_err(|e| e.to_string())
}

/// Compare without an early exit, so the time taken does not tell how much of a guess matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `?client_id=&seq=` of a write: both (a write of that session), or neither (a write that
/// takes no session).
/// Taken as text, so that a bad number is answered naming the parameter.
#[derive(Debug, Deserialize)]
struct WriteParams {
    client_id: Option<String>,
    seq: Option<String>,
}

fn number(name: &str, v: Option<String>) -> Result<Option<u64>, String> {
    v.map(|v| {
        v.parse()
            .map_err(|_| format!("{name} must be a decimal number below 2^64, got {v:?}"))
    })
    .transpose()
}

#[derive(Debug, Deserialize)]
struct ReadParams {
    #[serde(default)]
    stale: bool,
    client_id: Option<u64>,
}

/// Body of `POST /cas/KEY`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CasBody {
    pub expected: Option<String>,
    pub new: Option<String>,
}

fn err(code: StatusCode, msg: &str) -> Response {
    (code, Json(json!({ "error": msg }))).into_response()
}

/// Any error answer that is not JSON yet (axum's own: unknown route, wrong method, a query,
/// path or body it cannot parse, a body over the limit) becomes `{"error": "..."}` with the
/// same status, so that every error a client sees is JSON with a reason.
async fn json_errors(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE && !is_json_response(&resp) {
        // axum's own rejection of a body over `DefaultBodyLimit`.
        return too_large(&api, "");
    }
    if !(status.is_client_error() || status.is_server_error()) || is_json_response(&resp) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let msg = if text.is_empty() {
        reason
    } else {
        format!("{reason}: {text}")
    };
    let mut out = err(status, &msg);
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

fn is_json_response(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"))
}

/// What a write's or a registration's timeout means for its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A write of a session: retrying it with the same `(client_id, seq)` is safe.
    Session,
    /// A write without a session: it may still be applied, and a retry may apply it twice.
    Sessionless,
    /// `POST /register`.
    Register,
}

fn answer_json(reply: ClientReply, api: &Api, uri: &Uri) -> Response {
    match reply {
        // A write without a session has no (client_id, seq) worth showing: its seq is only
        // the nonce that routed the answer here, and it cannot be retried.
        ClientReply::Response(r)
            if r.client_id == NO_SESSION && r.answer != Answer::SessionExpired =>
        {
            let body = match r.answer {
                Answer::Ok | Answer::SessionExpired => json!({ "ok": true }),
                Answer::Value(v) => json!({ "value": v }),
                Answer::Cas { swapped, previous } => {
                    json!({ "swapped": swapped, "previous": previous })
                }
            };
            (StatusCode::OK, Json(body)).into_response()
        }
        ClientReply::Response(r) => {
            let body = match r.answer {
                Answer::Ok => json!({ "ok": true, "client_id": r.client_id, "seq": r.seq }),
                Answer::Value(v) => json!({ "value": v, "client_id": r.client_id, "seq": r.seq }),
                Answer::Cas { swapped, previous } => json!({
                    "swapped": swapped, "previous": previous, "client_id": r.client_id, "seq": r.seq
                }),
                Answer::SessionExpired => {
                    return (
                        StatusCode::CONFLICT,
                        Json(json!({
                            "error": "session expired",
                            "client_id": r.client_id,
                            "seq": r.seq,
                            "detail": "this client id has no session (evicted by newer \
                                registrations, or never registered): this request was not \
                                applied, an earlier attempt with the same seq may or may not \
                                have been; register a new session (POST /register) before \
                                writing again",
                        })),
                    )
                        .into_response()
                }
            };
            (StatusCode::OK, Json(body)).into_response()
        }
        ClientReply::Read { value, .. } => {
            (StatusCode::OK, Json(json!({ "value": value }))).into_response()
        }
        ClientReply::Registered { client_id, .. } => {
            (StatusCode::OK, Json(json!({ "client_id": client_id }))).into_response()
        }
        ClientReply::Stale {
            client_id,
            seq,
            last_seq,
        } => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "stale seq",
                "client_id": client_id,
                "seq": seq,
                "last_seq": last_seq,
                "detail": format!(
                    "the session already applied seq {last_seq}, after this one: the answer \
                     to seq {seq} is no longer kept and this request is never applied; a new \
                     command needs a seq above {last_seq}"
                ),
            })),
        )
            .into_response(),
        ClientReply::NotLeader { hint, .. } | ClientReply::ReadNotLeader { hint, .. } => {
            let leader_http = hint.and_then(|l| api.cfg.http_of(l));
            match (hint, leader_http) {
                (Some(l), Some(addr)) if l != api.id => {
                    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
                    let location = format!("http://{addr}{pq}");
                    (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, location)],
                        Json(json!({ "error": "not leader", "leader": l, "leader_http": addr })),
                    )
                        .into_response()
                }
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "no leader known; retry", "leader": null })),
                )
                    .into_response(),
            }
        }
    }
}

/// Hand a write or a registration to the node loop and wait for its answer.
async fn propose(
    api: &Api,
    input: NodeInput,
    rx: oneshot::Receiver<ClientReply>,
    kind: Kind,
    uri: &Uri,
) -> Response {
    if api.input.try_send(input).is_err() {
        return err(StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry");
    }
    let ms = api.timeout.as_millis();
    match (tokio::time::timeout(api.timeout, rx).await, kind) {
        (Ok(Ok(reply)), _) => answer_json(reply, api, uri),
        (Ok(Err(_)), Kind::Sessionless) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "node stopping; the outcome of this write without a session is unknown (it may \
             still be applied, and retrying it may apply it twice)",
        ),
        (Ok(Err(_)), _) => err(StatusCode::SERVICE_UNAVAILABLE, "node stopping; retry"),
        (Err(_), Kind::Session) => err(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "not committed within {ms} ms; retry with the same client_id and seq (it is \
                 applied at most once)"
            ),
        ),
        (Err(_), Kind::Sessionless) => err(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "not committed within {ms} ms; the outcome is unknown: this write has no \
                 session, so it may still be applied, and retrying it may apply it twice (send \
                 writes you retry with a session: POST /register)"
            ),
        ),
        (Err(_), Kind::Register) => err(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "registration not committed within {ms} ms; retry (a registration applied \
                 anyway opens a session nobody uses, which is harmless)"
            ),
        ),
    }
}

async fn submit(api: &Api, p: WriteParams, op: Op, uri: &Uri) -> Response {
    let parsed = number("client_id", p.client_id).and_then(|c| Ok((c, number("seq", p.seq)?)));
    let (client_id, seq) = match parsed {
        Ok(x) => x,
        Err(why) => return err(StatusCode::BAD_REQUEST, &why),
    };
    let (client_id, seq, kind) = match (client_id, seq) {
        (Some(NO_SESSION), _) => {
            return err(
                StatusCode::BAD_REQUEST,
                "client_id 0 is no session: omit client_id and seq for a write without a \
                 session, or open one with POST /register",
            )
        }
        (Some(c), Some(s)) if s > 0 => (c, s, Kind::Session),
        (Some(_), Some(_)) => return err(StatusCode::BAD_REQUEST, "seq starts at 1"),
        (None, None) => (NO_SESSION, api.nonce(), Kind::Sessionless),
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "client_id and seq go together (a session's write), or neither (a write \
                 without a session)",
            )
        }
    };
    let (tx, rx) = oneshot::channel();
    let req = ClientRequest { client_id, seq, op };
    propose(api, NodeInput::Client(req, tx), rx, kind, uri).await
}

/// `POST /register`: open a session; its id is the index of its `Register` entry.
async fn register(State(api): State<Arc<Api>>, uri: Uri) -> Response {
    let (tx, rx) = oneshot::channel();
    let input = NodeInput::Register(api.nonce(), tx);
    propose(&api, input, rx, Kind::Register, &uri).await
}

async fn kv_put(
    State(api): State<Arc<Api>>,
    Path(key): Path<String>,
    Query(p): Query<WriteParams>,
    uri: Uri,
    value: String,
) -> Response {
    let op = Op::Put {
        key: key.into(),
        value: value.into(),
    };
    submit(&api, p, op, &uri).await
}

async fn kv_delete(
    State(api): State<Arc<Api>>,
    Path(key): Path<String>,
    Query(p): Query<WriteParams>,
    uri: Uri,
) -> Response {
    submit(&api, p, Op::Delete { key: key.into() }, &uri).await
}

async fn kv_cas(
    State(api): State<Arc<Api>>,
    Path(key): Path<String>,
    Query(p): Query<WriteParams>,
    uri: Uri,
    Json(body): Json<CasBody>,
) -> Response {
    let op = Op::Cas {
        key: key.into(),
        expected: body.expected.map(Into::into),
        new: body.new.map(Into::into),
    };
    submit(&api, p, op, &uri).await
}

async fn kv_get(
    State(api): State<Arc<Api>>,
    Path(key): Path<String>,
    Query(p): Query<ReadParams>,
    uri: Uri,
) -> Response {
    if p.stale {
        let (tx, rx) = oneshot::channel();
        if api.input.try_send(NodeInput::StaleRead(key, tx)).is_err() {
            return err(StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry");
        }
        return match rx.await {
            Ok(v) => (StatusCode::OK, Json(json!({ "value": v, "stale": true }))).into_response(),
            Err(_) => err(StatusCode::SERVICE_UNAVAILABLE, "node stopping; retry"),
        };
    }
    let read_id = api.next_read.fetch_add(1, Ordering::Relaxed);
    let req = ReadRequest {
        client_id: p.client_id.unwrap_or(0),
        read_id,
        key: key.into(),
    };
    let (tx, rx) = oneshot::channel();
    if api.input.try_send(NodeInput::Read(req, tx)).is_err() {
        return err(StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry");
    }
    match tokio::time::timeout(api.timeout, rx).await {
        Ok(Ok(reply)) => answer_json(reply, &api, &uri),
        Ok(Err(_)) => err(StatusCode::SERVICE_UNAVAILABLE, "node stopping; retry"),
        Err(_) => err(
            StatusCode::GATEWAY_TIMEOUT,
            "read not confirmed in time; retry",
        ),
    }
}

async fn status(State(api): State<Arc<Api>>) -> Response {
    let s = api.status.read().unwrap().clone();
    (StatusCode::OK, Json(s)).into_response()
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.metrics.render(api.id),
    )
        .into_response()
}

/// `GET /membership`: the configuration as this node knows it (ask the leader for the
/// cluster's latest).
async fn membership(State(api): State<Arc<Api>>) -> Response {
    let s = api.status.read().unwrap().clone();
    Json(json!({
        "id": s.id,
        "leader": s.leader,
        "voters": s.voters,
        "learners": s.learners,
        "committed": s.membership_committed,
    }))
    .into_response()
}

/// `POST /membership/{add-voter|add-learner|promote|remove|transfer-leader}/{id}`, at the
/// leader (a follower redirects, or relays with `?forward=true`). A change is answered once it
/// is committed, with the cluster's new configuration; a transfer once the leader sent its
/// `TimeoutNow` (the target then stands at once; `GET /status` shows the new leader).
async fn change_membership(
    State(api): State<Arc<Api>>,
    Path((op, id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let Ok(id) = id.parse::<NodeId>() else {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("node id {id:?} is not a number"),
        );
    };
    let op = match op.as_str() {
        "add-voter" => AdminOp::AddVoter(id),
        "add-learner" => AdminOp::AddLearner(id),
        "promote" => AdminOp::Promote(id),
        "remove" => AdminOp::Remove(id),
        "transfer-leader" => AdminOp::TransferLeader(id),
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unknown operation {other:?}: add-voter, add-learner, promote, remove or \
                     transfer-leader"
                ),
            )
        }
    };
    // A member the leader cannot reach would be added in vain: its address comes from the
    // configuration file (`peers`), which the operator extends first. The leader's own file is
    // the one that counts; another node lets the request through to be redirected.
    let adds = matches!(op, AdminOp::AddVoter(_) | AdminOp::AddLearner(_));
    let leads = api.status.read().unwrap().leader == Some(api.id);
    if adds && leads && api.cfg.http_of(id).is_none() {
        return err(
            StatusCode::BAD_REQUEST,
            &format!(
                "node {id} is not among this node's peers: list it (id, peer_addr, http_addr) \
                 in the peers of every node's configuration file and restart them one at a \
                 time (RUNTIME.md, \"Membership runbook\") before adding it"
            ),
        );
    }
    let (tx, rx) = oneshot::channel();
    if api.input.try_send(NodeInput::Admin(op, tx)).is_err() {
        return err(StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry");
    }
    let answer = match tokio::time::timeout(api.timeout, rx).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) => return err(StatusCode::SERVICE_UNAVAILABLE, "node stopping; retry"),
        Err(_) => {
            return err(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the change was not committed within {} ms; GET /membership at the \
                     leader shows whether it took effect",
                    api.timeout.as_millis()
                ),
            )
        }
    };
    match answer {
        AdminAnswer::Committed { index, membership } => Json(json!({
            "ok": true,
            "index": index,
            "voters": membership.voters,
            "learners": membership.learners,
        }))
        .into_response(),
        AdminAnswer::Unknown { index } => err(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "leadership changed before the change appended at index {index} committed: \
                 it may or may not take effect; GET /membership at the new leader, then retry \
                 if it did not"
            ),
        ),
        AdminAnswer::Outcome(AdminOutcome::Accepted { .. }) => {
            Json(json!({ "ok": true, "transfer_to": id })).into_response()
        }
        AdminAnswer::Outcome(AdminOutcome::NotLeader { hint }) => answer_json(
            ClientReply::NotLeader {
                client_id: NO_SESSION,
                seq: 0,
                hint,
            },
            &api,
            &uri,
        ),
        AdminAnswer::Outcome(AdminOutcome::Busy(why)) => {
            err(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}; retry"))
        }
        AdminAnswer::Outcome(AdminOutcome::Refused(why)) => {
            err(StatusCode::CONFLICT, &why.to_string())
        }
    }
}
