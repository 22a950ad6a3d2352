//! Peer transport: one outbound TCP connection per peer (dialed with exponential backoff, fed
//! from a bounded queue) and a listener whose connections carry inbound messages. Every
//! connection starts with a handshake (`Hello { cluster_id, from, to }`); a peer with another
//! cluster id, an unknown node id or the wrong destination is refused and logged. A malformed
//! frame closes the connection with the reason logged. Queues are bounded: when a peer's queue
//! is full new messages are dropped (Raft retransmits), never buffered without bound.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use super::codec::{decode, encode, framing, Frame};
use super::metrics::Metrics;
use super::server::NodeInput;
use crate::core::{Envelope, NodeId};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The sending side: one bounded queue per peer.
#[derive(Clone)]
pub struct Transport {
    queues: BTreeMap<NodeId, mpsc::Sender<Envelope>>,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// Start one dialer task per peer.
    pub fn start(
        cluster_id: &str,
        me: NodeId,
        peers: &[(NodeId, SocketAddr)],
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> Transport {
        let mut queues = BTreeMap::new();
        for &(id, addr) in peers {
            let (tx, rx) = mpsc::channel(queue);
            queues.insert(id, tx);
            tokio::spawn(dial_loop(cluster_id.to_string(), me, id, addr, rx));
        }
        Transport { queues, metrics }
    }

    /// Queue a message for its destination; dropped (and counted) when the queue is full.
    pub fn send(&self, env: Envelope) {
        if let Some(q) = self.queues.get(&env.to) {
            if q.try_send(env).is_err() {
                self.metrics.inc(&self.metrics.messages_dropped);
            } else {
                self.metrics.inc(&self.metrics.messages_sent);
            }
        }
    }
}

async fn dial_loop(
    cluster_id: String,
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Envelope>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match connect(&cluster_id, me, peer, addr).await {
            Ok(mut conn) => {
                info!(peer, %addr, "connected to peer");
                backoff = BACKOFF_MIN;
                // Messages queued while disconnected are stale; drop them.
                while rx.try_recv().is_ok() {}
                loop {
                    let Some(env) = rx.recv().await else {
                        return;
                    };
                    if let Err(e) = send_burst(&mut conn, env, &mut rx).await {
                        warn!(peer, %addr, error = %e, "peer connection lost");
                        break;
                    }
                }
            }
            Err(e) => {
                debug!(peer, %addr, error = %e, "cannot connect to peer");
                if e.starts_with("refused") {
                    warn!(peer, %addr, "peer {e}");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Most frames written before one flush.
const BURST: usize = 256;

/// Write `first` and whatever else is already queued (up to [`BURST`] frames), then flush
/// once: one `writev` for a node loop batch instead of one per message.
async fn send_burst(
    conn: &mut Framed<TcpStream, LengthDelimitedCodec>,
    first: Envelope,
    rx: &mut mpsc::Receiver<Envelope>,
) -> std::io::Result<()> {
    conn.feed(encode(&Frame::Message(first))).await?;
    for _ in 1..BURST {
        match rx.try_recv() {
            Ok(env) => conn.feed(encode(&Frame::Message(env))).await?,
            Err(_) => break,
        }
    }
    SinkExt::<bytes::Bytes>::flush(conn).await
}

async fn connect(
    cluster_id: &str,
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<Framed<TcpStream, LengthDelimitedCodec>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = Framed::new(stream, framing());
    let hello = Frame::Hello {
        cluster_id: cluster_id.to_string(),
        from: me,
        to: peer,
    };
    conn.send(encode(&hello)).await.map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next())
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .ok_or("connection closed during handshake")?
        .map_err(|e| e.to_string())?;
    match decode(&reply).map_err(|e| e.to_string())? {
        Frame::Welcome => Ok(conn),
        Frame::Refused { reason } => Err(format!("refused our handshake: {reason}")),
        other => Err(format!("unexpected handshake reply {other:?}")),
    }
}

/// Accept peer connections and feed their messages to the node loop.
pub async fn listen(
    listener: TcpListener,
    cluster_id: String,
    me: NodeId,
    peers: Vec<NodeId>,
    input: mpsc::Sender<NodeInput>,
    metrics: Arc<Metrics>,
) {
    let cluster_id = Arc::new(cluster_id);
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
        let (cluster_id, peers, input, metrics) = (
            cluster_id.clone(),
            peers.clone(),
            input.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            if let Err(reason) = serve_conn(stream, &cluster_id, me, &peers, input, &metrics).await
            {
                warn!(%remote, "closing peer connection: {reason}");
            }
        });
    }
}

async fn serve_conn(
    stream: TcpStream,
    cluster_id: &str,
    me: NodeId,
    peers: &[NodeId],
    input: mpsc::Sender<NodeInput>,
    metrics: &Metrics,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, framing());
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next())
        .await
        .map_err(|_| "no handshake within 5s".to_string())?
        .ok_or("closed before the handshake")?
        .map_err(|e| format!("bad frame: {e}"))?;
    let from = match decode(&first) {
        Ok(Frame::Hello {
            cluster_id: theirs,
            from,
            to,
        }) => {
            let refusal = if theirs != cluster_id {
                Some(format!(
                    "refused peer: wrong cluster id {theirs:?} (this is {cluster_id:?})"
                ))
            } else if !peers.contains(&from) {
                Some(format!("refused peer: unknown node id {from}"))
            } else if to != me {
                Some(format!(
                    "refused peer: addressed to node {to}, this is node {me}"
                ))
            } else {
                None
            };
            if let Some(reason) = refusal {
                metrics.inc(&metrics.handshakes_refused);
                let _ = conn
                    .send(encode(&Frame::Refused {
                        reason: reason.clone(),
                    }))
                    .await;
                return Err(reason);
            }
            from
        }
        Ok(other) => return Err(format!("expected a handshake, got {other:?}")),
        Err(e) => return Err(format!("malformed handshake: {e}")),
    };
    conn.send(encode(&Frame::Welcome))
        .await
        .map_err(|e| e.to_string())?;
    info!(peer = from, "accepted peer connection");
    while let Some(frame) = conn.next().await {
        let frame = frame.map_err(|e| format!("bad frame from node {from}: {e}"))?;
        match decode(&frame) {
            Ok(Frame::Message(env)) if env.from == from && env.to == me => {
                metrics.inc(&metrics.messages_received);
                if input.try_send(NodeInput::Peer(env)).is_err() {
                    metrics.inc(&metrics.messages_dropped);
                }
            }
            Ok(other) => return Err(format!("unexpected frame from node {from}: {other:?}")),
            Err(e) => return Err(format!("malformed frame from node {from}: {e}")),
        }
    }
    Ok(())
}
