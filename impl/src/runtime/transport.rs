//! Peer transport: one outbound TCP connection per peer (dialed with exponential backoff, fed
//! from a bounded queue) and a listener whose connections carry inbound messages. Every
//! connection starts with the handshake of [`super::handshake`] (cluster id, node ids and, with a
//! peer secret, an HMAC challenge-response); a refused peer is logged as a warning with the
//! reason and counted in `handshakes_refused_total`. A malformed frame closes the connection with
//! the reason logged. Queues are bounded: when a peer's queue is full new messages are dropped
//! (Raft retransmits), never buffered without bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, error, info, warn};

use super::codec::{decode, encode, try_encode, Frame};
use super::handshake::{self, frame_kind, HandshakeError, PeerAuth};
use super::metrics::Metrics;
use super::node_input::NodeInput;
use super::snapshot_transfer::{
    deliver, Incoming, Received, SnapshotOptions, SnapshotSender, Transfers,
};
use raft_core::{Envelope, NodeId};

const BACKOFF_MIN: Duration = Duration::from_millis(20);

/// How fast a peer connection gives up on a silent network, from the election timing: a
/// connection whose data goes unacknowledged is dropped and redialed well before the cluster
/// would notice a healed partition on its own. Left to TCP, a connection that lost packets
/// during a partition retransmits on an exponential backoff (seconds, then tens of seconds), and
/// the peer stays cut off that long after the network heals.
#[derive(Clone, Copy, Debug)]
pub struct PeerTiming {
    /// Longest wait for a connection (TCP and handshake) to a peer.
    pub connect: Duration,
    /// Data unacknowledged this long (`TCP_USER_TIMEOUT`), a frame of a burst not written
    /// within it, or an idle connection whose keepalive probes go unanswered for it, ends the
    /// connection.
    pub silence: Duration,
    /// Most time between two dials of a peer that cannot be reached.
    pub redial_max: Duration,
}

impl PeerTiming {
    /// From the longest election timeout: connect within one, give up on silence after two,
    /// redial at least every half of one. A peer is therefore dialed again, after a partition
    /// heals, within about one and a half election timeouts.
    pub fn from_election_timeout(max: Duration) -> PeerTiming {
        PeerTiming {
            connect: max,
            silence: 2 * max,
            redial_max: max / 2,
        }
    }
}

/// Set the socket options that bound a peer connection's silence (see [`PeerTiming`]).
fn bound_silence(stream: &TcpStream, silence: Duration) {
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_tcp_user_timeout(Some(silence));
    let probes = 3;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(silence / 2)
        .with_interval(silence / (2 * probes))
        .with_retries(probes);
    let _ = sock.set_tcp_keepalive(&keepalive);
}

/// The sending side: one bounded queue per peer, and snapshot transfers beside them.
#[derive(Clone)]
pub struct Transport {
    queues: BTreeMap<NodeId, mpsc::Sender<Envelope>>,
    snapshots: SnapshotSender,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// Start one dialer task per peer, without a peer secret (cluster and node ids only).
    pub fn start(
        cluster_id: &str,
        me: NodeId,
        peers: &[(NodeId, SocketAddr)],
        queue: usize,
        timing: PeerTiming,
        snapshots: SnapshotOptions,
        metrics: Arc<Metrics>,
    ) -> Transport {
        let auth = Arc::new(PeerAuth::new(cluster_id, None));
        Self::start_with_auth(auth, me, peers, queue, timing, snapshots, metrics)
    }

    /// Start one dialer task per peer, proving and checking `auth` in every handshake (of
    /// message connections and snapshot transfers alike).
    pub fn start_with_auth(
        auth: Arc<PeerAuth>,
        me: NodeId,
        peers: &[(NodeId, SocketAddr)],
        queue: usize,
        timing: PeerTiming,
        snapshots: SnapshotOptions,
        metrics: Arc<Metrics>,
    ) -> Transport {
        let mut queues = BTreeMap::new();
        for &(id, addr) in peers {
            let (tx, rx) = mpsc::channel(queue);
            queues.insert(id, tx);
            let peer = Dialed {
                auth: auth.clone(),
                me,
                peer: id,
                addr,
                timing,
            };
            tokio::spawn(dial_loop(peer, rx, metrics.clone()));
        }
        let snapshots = SnapshotSender::new(auth, me, peers, snapshots, metrics.clone());
        Transport {
            queues,
            snapshots,
            metrics,
        }
    }

    /// The snapshot transfers to followers, for `/status`.
    pub fn transfers(&self) -> Arc<Transfers> {
        self.snapshots.transfers()
    }

    /// Queue a message for its destination; dropped (and counted) when the queue is full. An
    /// `InstallSnapshot` goes to a transfer of its own instead (see [`super::snapshot_transfer`]).
    pub fn send(&self, env: Envelope) {
        if matches!(env.msg, raft_core::Message::InstallSnapshot { .. }) {
            self.snapshots.offer(env);
            return;
        }
        if let Some(q) = self.queues.get(&env.to) {
            if q.try_send(env).is_err() {
                self.metrics.inc(&self.metrics.messages_dropped);
            } else {
                self.metrics.inc(&self.metrics.messages_sent);
            }
        }
    }
}

/// One peer the node dials.
struct Dialed {
    auth: Arc<PeerAuth>,
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    timing: PeerTiming,
}

impl Dialed {
    /// Connect and handshake within `timing.connect`.
    async fn connect(&self) -> Result<handshake::Conn, HandshakeError> {
        let attempt = async {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| HandshakeError::Io(e.to_string()))?;
            bound_silence(&stream, self.timing.silence);
            handshake::dial(stream, &self.auth, self.me, self.peer).await
        };
        match tokio::time::timeout(self.timing.connect, attempt).await {
            Ok(r) => r,
            Err(_) => Err(HandshakeError::Io(format!(
                "no connection within {:?}",
                self.timing.connect
            ))),
        }
    }
}

async fn dial_loop(d: Dialed, mut rx: mpsc::Receiver<Envelope>, metrics: Arc<Metrics>) {
    let (peer, addr) = (d.peer, d.addr);
    let mut backoff = BACKOFF_MIN;
    loop {
        match d.connect().await {
            Ok(mut conn) => {
                info!(peer, %addr, "connected to peer");
                backoff = BACKOFF_MIN;
                // Messages queued while disconnected are stale; drop them.
                while rx.try_recv().is_ok() {}
                loop {
                    let Some(env) = rx.recv().await else {
                        return;
                    };
                    let sent = send_burst(&mut conn, env, &mut rx, &metrics, d.timing.silence);
                    if let Err(e) = sent.await {
                        metrics.inc(&metrics.peer_connections_lost);
                        warn!(peer, %addr, error = %e, "peer connection lost; redialing");
                        break;
                    }
                }
            }
            Err(HandshakeError::Refused(reason)) => {
                if let (true, n) = metrics.refusal_to_log(&reason) {
                    warn!(peer, %addr, refused_so_far = n, "peer handshake refused: {reason}");
                }
            }
            Err(HandshakeError::Io(e)) => debug!(peer, %addr, error = %e, "cannot connect to peer"),
            Err(HandshakeError::Replaced(reason)) => {
                // The node stops (see `server::run`); redialing would only repeat this.
                error!(peer, %addr, "{reason}");
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(d.timing.redial_max.max(BACKOFF_MIN));
    }
}

/// Most frames written before one flush.
const BURST: usize = 256;

/// Write `first` and whatever else is already queued (up to [`BURST`] frames), then flush
/// once: one `writev` for a node loop batch instead of one per message. Each step (a frame
/// queued, which writes when the buffer is full, and the flush) must finish within `silence`:
/// a peer that stopped reading would hold every message behind it forever. The bound is on
/// progress, not on the burst, so a slow link with a long burst is not cut.
async fn send_burst(
    conn: &mut Framed<TcpStream, LengthDelimitedCodec>,
    first: Envelope,
    rx: &mut mpsc::Receiver<Envelope>,
    metrics: &Metrics,
    silence: Duration,
) -> std::io::Result<()> {
    within(silence, feed(conn, first, metrics)).await?;
    for _ in 1..BURST {
        match rx.try_recv() {
            Ok(env) => within(silence, feed(conn, env, metrics)).await?,
            Err(_) => break,
        }
    }
    within(silence, SinkExt::<bytes::Bytes>::flush(conn)).await
}

async fn within(
    silence: Duration,
    step: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    match tokio::time::timeout(silence, step).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("nothing written for {silence:?}"),
        )),
    }
}

/// Queue one message on the connection. A message whose frame exceeds the frame limit is not
/// sent: it is logged, counted in `messages_too_large_total` and dropped, like a lost message.
/// Snapshots never come here, and appends are capped well below the limit, so this is a
/// defect if it happens; the log line is rate-limited all the same.
async fn feed(
    conn: &mut Framed<TcpStream, LengthDelimitedCodec>,
    env: Envelope,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let (to, kind) = (env.to, message_kind(&env));
    match try_encode(&Frame::Message(env)) {
        Ok(bytes) => conn.feed(bytes).await,
        Err(e) => {
            let n = metrics
                .messages_too_large
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                error!(
                    peer = to,
                    message = kind,
                    error = %e,
                    dropped_so_far = n + 1,
                    "message not sent: it does not fit in one frame"
                );
            }
            Ok(())
        }
    }
}

fn message_kind(env: &Envelope) -> &'static str {
    use raft_core::Message;
    match &env.msg {
        Message::InstallSnapshot { .. } => "InstallSnapshot",
        Message::AppendEntries { .. } => "AppendEntries",
        _ => "other",
    }
}

/// Accept peer connections and feed their messages to the node loop, without a peer secret
/// (cluster and node ids only). Snapshot transfers are received into `incoming` (refused
/// when it is `None`).
#[allow(clippy::too_many_arguments)]
pub async fn listen(
    listener: TcpListener,
    cluster_id: String,
    me: NodeId,
    peers: Vec<NodeId>,
    silence: Duration,
    incoming: Option<PathBuf>,
    input: mpsc::Sender<NodeInput>,
    metrics: Arc<Metrics>,
) {
    let auth = Arc::new(PeerAuth::new(&cluster_id, None));
    listen_with_auth(listener, auth, me, peers, silence, incoming, input, metrics).await
}

/// Accept peer connections that pass the handshake with `auth`, and feed their messages to the
/// node loop; snapshot transfers are received into `incoming` (refused when it is `None`).
/// Accepted connections get the keepalive and user timeout of `silence` ([`PeerTiming`]).
#[allow(clippy::too_many_arguments)]
pub async fn listen_with_auth(
    listener: TcpListener,
    auth: Arc<PeerAuth>,
    me: NodeId,
    peers: Vec<NodeId>,
    silence: Duration,
    incoming: Option<PathBuf>,
    input: mpsc::Sender<NodeInput>,
    metrics: Arc<Metrics>,
) {
    let peers = Arc::new(peers);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // An inbound connection only reads; keepalive probes find one whose peer is gone,
        // so it does not linger after a partition.
        bound_silence(&stream, silence);
        let (auth, peers, input, metrics) =
            (auth.clone(), peers.clone(), input.clone(), metrics.clone());
        let incoming = incoming.clone();
        tokio::spawn(async move {
            let (conn, from) = match handshake::accept(stream, &auth, me, &peers).await {
                Ok(x) => x,
                Err(HandshakeError::Refused(reason)) => {
                    if let (true, n) = metrics.refusal_to_log(&reason) {
                        warn!(%remote, refused_so_far = n, "refused peer connection: {reason}");
                    }
                    return;
                }
                Err(HandshakeError::Io(e)) => {
                    debug!(%remote, error = %e, "peer handshake failed");
                    return;
                }
                Err(HandshakeError::Replaced(reason)) => {
                    error!(%remote, "{reason}");
                    return;
                }
            };
            info!(peer = from, %remote, "accepted peer connection");
            let incoming = incoming.map(|dir| Incoming::new(dir, from));
            if let Err(reason) = serve_conn(conn, from, me, incoming, input, &metrics).await {
                warn!(%remote, "closing peer connection: {reason}");
            }
        });
    }
}

async fn serve_conn(
    mut conn: handshake::Conn,
    from: NodeId,
    me: NodeId,
    mut incoming: Option<Incoming>,
    input: mpsc::Sender<NodeInput>,
    metrics: &Metrics,
) -> Result<(), String> {
    let r = serve_frames(&mut conn, from, me, &mut incoming, input, metrics).await;
    // A transfer the connection cut short (a refused one is counted where it is refused); its
    // file goes with `incoming`.
    if incoming.as_ref().is_some_and(|i| i.in_progress() > 0) {
        metrics.inc(&metrics.snapshot_receives_failed);
    }
    r
}

async fn serve_frames(
    conn: &mut handshake::Conn,
    from: NodeId,
    me: NodeId,
    incoming: &mut Option<Incoming>,
    input: mpsc::Sender<NodeInput>,
    metrics: &Metrics,
) -> Result<(), String> {
    while let Some(frame) = conn.next().await {
        let frame = frame.map_err(|e| format!("bad frame from node {from}: {e}"))?;
        match decode(&frame) {
            Ok(Frame::Message(env)) if env.from == from && env.to == me => {
                metrics.inc(&metrics.messages_received);
                if input.try_send(NodeInput::Peer(env)).is_err() {
                    metrics.inc(&metrics.messages_dropped);
                }
            }
            Ok(f @ (Frame::SnapshotChunk { .. } | Frame::SnapshotEnd { .. })) => {
                let Some(inc) = incoming.as_mut() else {
                    return Err(format!("snapshot transfer from node {from} refused: this listener does not receive snapshots"));
                };
                match inc.receive(me, f).await {
                    Ok(Received::More) => {}
                    Ok(Received::Complete { env, file, bytes }) => {
                        metrics.inc(&metrics.snapshot_transfers_received);
                        metrics
                            .snapshot_bytes_received
                            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                        info!(peer = from, bytes, "snapshot received");
                        deliver(conn, &input, env, file).await?;
                    }
                    Err(why) => {
                        inc.abandon();
                        metrics.inc(&metrics.snapshot_receives_failed);
                        let refused = Frame::SnapshotReceived {
                            refused: Some(why.clone()),
                        };
                        let _ = conn.send(encode(&refused)).await;
                        return Err(format!("snapshot transfer from node {from} refused: {why}"));
                    }
                }
            }
            Ok(other) => {
                return Err(format!(
                    "unexpected {} frame from node {from}",
                    frame_kind(&other)
                ))
            }
            Err(e) => return Err(format!("malformed frame from node {from}: {e}")),
        }
    }
    Ok(())
}
