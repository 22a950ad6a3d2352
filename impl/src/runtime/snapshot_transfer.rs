//! How an `InstallSnapshot` travels: streamed in chunks on a connection of its own, one
//! transfer per follower at a time.
//!
//! The core emits `InstallSnapshot` with the whole state (a constant-time clone of its
//! persistent maps), as the model does, and emits it again on every heartbeat while the
//! follower is behind the leader's snapshot. Sent as one frame, a state over the frame limit
//! could never arrive, and encoding it on every heartbeat kept a core busy. So the transport
//! never puts an `InstallSnapshot` in a peer's message queue: [`SnapshotSender`] streams it in
//! chunks of `snapshot_chunk_bytes` and drops the core's repeats while that transfer runs, and
//! for `resend_after` after it succeeded (while the follower's acknowledgement is on its way).
//! Dropping a message is what the network may always do, and a snapshot that arrives later is
//! a delayed message: the model's network allows both, so the rules that decide when a
//! follower replaces its state and log stay the core's, which are the model's.
//!
//! The sender encodes on a blocking thread into a channel two chunks deep, so whatever the
//! state's size it holds the snapshot clone and a few chunks; TCP's flow control paces it to
//! the receiver. The receiver ([`Incoming`]) writes the chunks to a file of its own under
//! `<data_dir>/incoming/`, in the snapshot file's format, checks the size and CRC32C the sender
//! names at the end, fsyncs the file, decodes it as it streams from the disk, and hands the node
//! loop the `InstallSnapshot` together with the file. The node loop steps it like any message;
//! only if the core installs it does the file become the node's snapshot (a rename, see
//! `Storage::stage_received`). A partial transfer is never installed: a connection that breaks
//! deletes its file, a restart empties `incoming/`, and each transfer writes a file of its own,
//! so one from another leader never mixes with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::codec::{decode, encode, Frame};
use super::handshake::{self, frame_kind, Conn, PeerAuth};
use super::metrics::Metrics;
use super::node_input::NodeInput;
use super::status::TransferStatus;
use super::storage::{read_snapshot_file, snapshot_header, SNAPSHOT_BODY_OFFSET};
use raft_core::{Envelope, Index, Message, NodeId, Snapshot, Term};

/// The directory under a data directory where transfers are received.
pub const INCOMING: &str = "incoming";
/// Longest wait for one chunk to be written, or for the receiver's verdict after the end: a
/// receiver that stops reading fails the transfer instead of holding it forever.
const STALL: Duration = Duration::from_secs(30);
/// Longest wait to connect to the follower and finish the handshake.
const CONNECT: Duration = Duration::from_secs(5);

/// How snapshots are sent.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotOptions {
    /// Bytes of the encoding per chunk (the last one may be shorter).
    pub chunk_bytes: usize,
    /// After a transfer succeeded, repeats of the same snapshot to that follower are dropped
    /// for this long: its acknowledgement is on its way.
    pub resend_after: Duration,
}

/// Which snapshot: the leader's term and the index it covers.
type Key = (Term, Index);

#[derive(Default)]
struct PeerTransfers {
    active: Option<Active>,
    /// The last transfer that succeeded, and when.
    done: Option<(Key, Instant)>,
    /// Transfers that failed in a row, and when the next may start: a follower that is down
    /// would otherwise be dialed on every heartbeat.
    failures: u32,
    retry_at: Option<Instant>,
}

/// The wait after the first failure, doubled after each further one up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

fn retry_after(failures: u32) -> Duration {
    (RETRY_MIN * 2u32.saturating_pow(failures.saturating_sub(1).min(16))).min(RETRY_MAX)
}

struct Active {
    key: Key,
    started: Instant,
    bytes: u64,
    chunks: u64,
    task: tokio::task::AbortHandle,
}

/// The transfers to each follower, shared by the sender and `/status`.
#[derive(Default)]
pub struct Transfers {
    peers: Mutex<BTreeMap<NodeId, PeerTransfers>>,
}

impl Transfers {
    /// The transfers running now.
    pub fn active(&self) -> Vec<TransferStatus> {
        let peers = self.peers.lock().unwrap();
        (peers.iter())
            .filter_map(|(&peer, p)| {
                p.active.as_ref().map(|a| TransferStatus {
                    peer,
                    term: a.key.0,
                    last_included_index: a.key.1,
                    bytes_sent: a.bytes,
                    chunks_sent: a.chunks,
                    elapsed_ms: a.started.elapsed().as_millis() as u64,
                })
            })
            .collect()
    }

    fn progress(&self, peer: NodeId, key: Key, bytes: u64) {
        let mut peers = self.peers.lock().unwrap();
        if let Some(a) = peers.get_mut(&peer).and_then(|p| p.active.as_mut()) {
            if a.key == key {
                a.bytes += bytes;
                a.chunks += 1;
            }
        }
    }

    /// The transfer of `key` to `peer` ended; returns how many still run and how many failed
    /// in a row.
    fn end(&self, peer: NodeId, key: Key, ok: bool) -> (u64, u32) {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.entry(peer).or_default();
        if p.active.as_ref().is_some_and(|a| a.key == key) {
            p.active = None;
        }
        let now = Instant::now();
        if ok {
            p.done = Some((key, now));
            p.failures = 0;
            p.retry_at = None;
        } else {
            p.failures += 1;
            p.retry_at = Some(now + retry_after(p.failures));
        }
        let failures = p.failures;
        (running(&peers), failures)
    }
}

fn running(peers: &BTreeMap<NodeId, PeerTransfers>) -> u64 {
    peers.values().filter(|p| p.active.is_some()).count() as u64
}

/// What [`SnapshotSender::offer`] decided.
#[derive(Debug)]
enum Decision {
    Start,
    /// A transfer of an older term runs: it is stale, abort it and start this one.
    Replace(tokio::task::AbortHandle),
    Suppress,
}

fn decide(p: &PeerTransfers, key: Key, now: Instant, resend_after: Duration) -> Decision {
    match &p.active {
        Some(a) if a.key.0 < key.0 => Decision::Replace(a.task.clone()),
        Some(_) => Decision::Suppress,
        None if p.retry_at.is_some_and(|at| now < at) => Decision::Suppress,
        None => match p.done {
            Some((k, at)) if k == key && now.duration_since(at) < resend_after => {
                Decision::Suppress
            }
            _ => Decision::Start,
        },
    }
}

/// The sending side: starts and tracks transfers.
#[derive(Clone)]
pub struct SnapshotSender {
    runtime: tokio::runtime::Handle,
    auth: Arc<PeerAuth>,
    me: NodeId,
    addrs: Arc<BTreeMap<NodeId, SocketAddr>>,
    opts: SnapshotOptions,
    metrics: Arc<Metrics>,
    transfers: Arc<Transfers>,
}

impl SnapshotSender {
    /// Must be called inside the tokio runtime the transfers will run on.
    pub fn new(
        auth: Arc<PeerAuth>,
        me: NodeId,
        peers: &[(NodeId, SocketAddr)],
        opts: SnapshotOptions,
        metrics: Arc<Metrics>,
    ) -> SnapshotSender {
        SnapshotSender {
            runtime: tokio::runtime::Handle::current(),
            auth,
            me,
            addrs: Arc::new(peers.iter().copied().collect()),
            opts,
            metrics,
            transfers: Arc::default(),
        }
    }

    /// The transfers, for `/status`.
    pub fn transfers(&self) -> Arc<Transfers> {
        self.transfers.clone()
    }

    /// Start streaming `env`'s snapshot to its destination, unless a transfer to it runs or
    /// just delivered the same snapshot. Callable from any thread.
    pub fn offer(&self, env: Envelope) {
        let (peer, Message::InstallSnapshot { term, snapshot, .. }) = (env.to, env.msg) else {
            return;
        };
        let Some(&addr) = self.addrs.get(&peer) else {
            return;
        };
        let key = (term, snapshot.last_included_index);
        let m = &self.metrics;
        let mut peers = self.transfers.peers.lock().unwrap();
        let p = peers.entry(peer).or_default();
        match decide(p, key, Instant::now(), self.opts.resend_after) {
            Decision::Suppress => {
                m.inc(&m.snapshot_sends_suppressed);
                return;
            }
            Decision::Replace(stale) => {
                stale.abort();
                m.inc(&m.snapshot_transfers_failed);
                info!(peer, term, "snapshot transfer of an older term aborted");
            }
            Decision::Start => {}
        }
        m.inc(&m.snapshot_transfers_started);
        let this = self.clone();
        // Spawned while the table is locked, so the task's `end` cannot run before `active`
        // names it.
        let task = self.runtime.spawn(async move {
            let start = Instant::now();
            let result = this.transfer(addr, peer, term, snapshot).await;
            let (running, failures) = this.transfers.end(peer, key, result.is_ok());
            let m = &this.metrics;
            m.set(&m.snapshot_transfers_active, running);
            match result {
                Ok((bytes, chunks)) => {
                    m.inc(&m.snapshot_transfers_completed);
                    info!(
                        peer,
                        index = key.1,
                        bytes,
                        chunks,
                        ms = start.elapsed().as_millis() as u64,
                        "snapshot sent"
                    );
                }
                Err(e) => {
                    m.inc(&m.snapshot_transfers_failed);
                    // A follower that is down fails every retry; say so when it starts and
                    // then at every power of two.
                    if failures.is_power_of_two() {
                        warn!(
                            peer,
                            index = key.1,
                            error = %e,
                            failures_in_a_row = failures,
                            retry_in_ms = retry_after(failures).as_millis() as u64,
                            "snapshot transfer failed; retrying"
                        );
                    }
                }
            }
        });
        p.active = Some(Active {
            key,
            started: Instant::now(),
            bytes: 0,
            chunks: 0,
            task: task.abort_handle(),
        });
        m.set(&m.snapshot_transfers_active, running(&peers));
    }

    /// Connect, stream the encoding, and wait for the receiver's verdict. Returns the bytes
    /// and chunks sent.
    async fn transfer(
        &self,
        addr: SocketAddr,
        peer: NodeId,
        term: Term,
        snapshot: Snapshot,
    ) -> Result<(u64, u64), String> {
        let stream = tokio::time::timeout(CONNECT, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut conn =
            tokio::time::timeout(CONNECT, handshake::dial(stream, &self.auth, self.me, peer))
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .map_err(|e| format!("handshake: {e:?}"))?;
        let key = (term, snapshot.last_included_index);
        let last_included_term = snapshot.last_included_term;
        let (tx, mut rx) = mpsc::channel(2);
        let chunk_bytes = self.opts.chunk_bytes;
        let encoder =
            tokio::task::spawn_blocking(move || encode_in_chunks(&snapshot, chunk_bytes, tx));
        let (mut offset, mut chunks) = (0u64, 0u64);
        while let Some(data) = rx.recv().await {
            let len = data.len() as u64;
            let chunk = Frame::SnapshotChunk {
                term,
                last_included_index: key.1,
                last_included_term,
                offset,
                data,
            };
            send(&mut conn, &chunk).await?;
            offset += len;
            chunks += 1;
            self.transfers.progress(peer, key, len);
            self.metrics
                .snapshot_bytes_sent
                .fetch_add(len, Ordering::Relaxed);
            self.metrics.inc(&self.metrics.snapshot_chunks_sent);
        }
        let (size, crc) = encoder
            .await
            .map_err(|e| format!("encoder panicked: {e}"))?
            .map_err(|e| format!("encoding: {e}"))?;
        send(&mut conn, &Frame::SnapshotEnd { size, crc }).await?;
        let verdict = tokio::time::timeout(STALL, conn.next())
            .await
            .map_err(|_| "no answer from the follower after the last chunk".to_string())?;
        match verdict.map(|f| f.map(|body| decode(&body))) {
            Some(Ok(Ok(Frame::SnapshotReceived { refused: None }))) => Ok((size, chunks)),
            Some(Ok(Ok(Frame::SnapshotReceived { refused: Some(why) }))) => {
                Err(format!("the follower refused it: {why}"))
            }
            Some(Ok(Ok(other))) => Err(format!("unexpected {} frame", frame_kind(&other))),
            Some(Ok(Err(e))) => Err(format!("malformed answer: {e}")),
            Some(Err(e)) => Err(format!("connection: {e}")),
            None => Err("the follower closed the connection".into()),
        }
    }
}

async fn send(conn: &mut Conn, frame: &Frame) -> Result<(), String> {
    tokio::time::timeout(STALL, conn.send(encode(frame)))
        .await
        .map_err(|_| "the follower stopped reading".to_string())?
        .map_err(|e| format!("connection: {e}"))
}

/// Encode `snapshot` into chunks of `chunk_bytes` sent on `tx` (blocking when two wait);
/// returns the encoding's size and CRC32C.
fn encode_in_chunks(
    snapshot: &Snapshot,
    chunk_bytes: usize,
    tx: mpsc::Sender<Vec<u8>>,
) -> std::io::Result<(u64, u32)> {
    let mut w = ChunkWriter {
        buf: Vec::with_capacity(chunk_bytes),
        chunk_bytes,
        tx,
        size: 0,
        crc: 0,
    };
    bincode::serialize_into(&mut w, snapshot).map_err(std::io::Error::other)?;
    w.send_chunk()?;
    Ok((w.size, w.crc))
}

struct ChunkWriter {
    buf: Vec<u8>,
    chunk_bytes: usize,
    tx: mpsc::Sender<Vec<u8>>,
    size: u64,
    crc: u32,
}

impl ChunkWriter {
    fn send_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk_bytes));
        self.crc = crc32c::crc32c_append(self.crc, &full);
        self.size += full.len() as u64;
        self.tx.blocking_send(full).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the transfer stopped")
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(self.chunk_bytes - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == self.chunk_bytes {
            self.send_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Empty `<data_dir>/incoming/` at start: whatever is there is a transfer a crash cut short.
pub fn prepare_incoming(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join(INCOMING);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The receiving side of one peer connection: at most one transfer at a time.
pub struct Incoming {
    dir: PathBuf,
    from: NodeId,
    current: Option<Partial>,
}

/// A transfer being received. Its file is deleted when it is dropped unfinished.
struct Partial {
    key: (Term, Index, Term),
    path: PathBuf,
    file: tokio::fs::File,
    written: u64,
    crc: u32,
    kept: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What a received frame led to.
pub enum Received {
    /// A chunk was written; more to come.
    More,
    /// The transfer is complete: step this `InstallSnapshot`, whose snapshot is in the file.
    Complete {
        env: Envelope,
        file: PathBuf,
        bytes: u64,
    },
}

impl Incoming {
    pub fn new(dir: PathBuf, from: NodeId) -> Incoming {
        Incoming {
            dir,
            from,
            current: None,
        }
    }

    /// Take one transfer frame (`SnapshotChunk` or `SnapshotEnd`). An error refuses the
    /// transfer: its file is deleted and the connection should close.
    pub async fn receive(&mut self, me: NodeId, frame: Frame) -> Result<Received, String> {
        match frame {
            Frame::SnapshotChunk {
                term,
                last_included_index,
                last_included_term,
                offset,
                data,
            } => {
                let key = (term, last_included_index, last_included_term);
                if self.current.as_ref().is_none_or(|p| p.key != key) {
                    if offset != 0 {
                        return Err(format!(
                            "a snapshot chunk at offset {offset} of a transfer that did not start"
                        ));
                    }
                    self.current = None;
                    self.current = Some(self.begin(key).await?);
                }
                let p = self.current.as_mut().expect("begun above");
                if offset != p.written {
                    return Err(format!(
                        "a snapshot chunk at offset {offset} where {} bytes were received",
                        p.written
                    ));
                }
                p.file
                    .write_all(&data)
                    .await
                    .map_err(|e| format!("writing {}: {e}", p.path.display()))?;
                p.written += data.len() as u64;
                p.crc = crc32c::crc32c_append(p.crc, &data);
                Ok(Received::More)
            }
            Frame::SnapshotEnd { size, crc } => {
                let mut p = self
                    .current
                    .take()
                    .ok_or("the end of a snapshot transfer that did not start")?;
                if size != p.written || crc != p.crc {
                    return Err(format!(
                        "snapshot transfer damaged: {} bytes with CRC32C {:08x} received, the \
                         leader sent {size} with {crc:08x}",
                        p.written, p.crc
                    ));
                }
                let path = p.path.clone();
                let at = |e: std::io::Error| format!("writing {}: {e}", path.display());
                // Finish the queued writes before moving the position back to the header.
                p.file.flush().await.map_err(at)?;
                p.file.seek(std::io::SeekFrom::Start(0)).await.map_err(at)?;
                p.file.write_all(&snapshot_header(crc)).await.map_err(at)?;
                p.file.sync_all().await.map_err(at)?;
                let snapshot = tokio::task::spawn_blocking(move || read_snapshot_file(&path))
                    .await
                    .map_err(|e| format!("decoding panicked: {e}"))?
                    .map_err(|e| e.to_string())?;
                let (term, index, last_term) = p.key;
                if (snapshot.last_included_index, snapshot.last_included_term) != (index, last_term)
                {
                    return Err(format!(
                        "the snapshot holds index {} term {} where the transfer named index \
                         {index} term {last_term}",
                        snapshot.last_included_index, snapshot.last_included_term
                    ));
                }
                p.kept = true;
                let env = Envelope {
                    from: self.from,
                    to: me,
                    msg: Message::InstallSnapshot {
                        term,
                        leader: self.from,
                        snapshot,
                    },
                };
                Ok(Received::Complete {
                    env,
                    file: p.path.clone(),
                    bytes: size,
                })
            }
            other => Err(format!(
                "unexpected {} frame in a snapshot transfer",
                frame_kind(&other)
            )),
        }
    }

    async fn begin(&self, key: (Term, Index, Term)) -> Result<Partial, String> {
        let name = format!(
            "from{}-term{}-index{}-{:016x}.part",
            self.from,
            key.0,
            key.1,
            rand::random::<u64>()
        );
        let path = self.dir.join(name);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        // The header's checksum is written once the whole body is known.
        file.write_all(&snapshot_header(0))
            .await
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        debug_assert_eq!(snapshot_header(0).len() as u64, SNAPSHOT_BODY_OFFSET);
        Ok(Partial {
            key,
            path,
            file,
            written: 0,
            crc: 0,
            kept: false,
        })
    }

    /// Drop the transfer in progress (and its file).
    pub fn abandon(&mut self) {
        self.current = None;
    }

    /// Bytes received so far of the transfer in progress.
    pub fn in_progress(&self) -> u64 {
        self.current.as_ref().map_or(0, |p| p.written)
    }
}

/// Hand a complete transfer to the node loop and tell the sender; the node loop owns the file
/// from then on. Waits for room in the input queue: dropping a whole transfer for a full
/// queue would waste it.
pub async fn deliver(
    conn: &mut Conn,
    input: &mpsc::Sender<NodeInput>,
    env: Envelope,
    file: PathBuf,
) -> Result<(), String> {
    let refused = match input.send(NodeInput::InstallSnapshot { env, file }).await {
        Ok(()) => None,
        Err(e) => {
            if let NodeInput::InstallSnapshot { file, .. } = e.0 {
                let _ = std::fs::remove_file(file);
            }
            Some("the node is stopping".to_string())
        }
    };
    let stopping = refused.is_some();
    send(conn, &Frame::SnapshotReceived { refused }).await?;
    if stopping {
        return Err("the node is stopping".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(active: Option<Key>, done: Option<(Key, Instant)>) -> PeerTransfers {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        PeerTransfers {
            active: active.map(|key| Active {
                key,
                started: Instant::now(),
                bytes: 0,
                chunks: 0,
                task: rt.spawn(async {}).abort_handle(),
            }),
            done,
            failures: 0,
            retry_at: None,
        }
    }

    #[test]
    fn one_transfer_per_follower_and_no_resend_right_after_success() {
        let now = Instant::now();
        let wait = Duration::from_secs(2);
        let start = |d| matches!(d, Decision::Start);
        let suppress = |d| matches!(d, Decision::Suppress);
        assert!(start(decide(&peer(None, None), (2, 10), now, wait)));
        // A repeat while the transfer runs, or of another snapshot of the same term.
        assert!(suppress(decide(
            &peer(Some((2, 10)), None),
            (2, 10),
            now,
            wait
        )));
        assert!(suppress(decide(
            &peer(Some((2, 10)), None),
            (2, 30),
            now,
            wait
        )));
        // A newer leader's snapshot replaces a stale transfer.
        assert!(matches!(
            decide(&peer(Some((1, 10)), None), (2, 10), now, wait),
            Decision::Replace(_)
        ));
        // Just delivered: the acknowledgement is on its way; later, or another one: send.
        let done = Some(((2, 10), now));
        assert!(suppress(decide(&peer(None, done), (2, 10), now, wait)));
        assert!(start(decide(&peer(None, done), (2, 10), now + wait, wait)));
        assert!(start(decide(&peer(None, done), (2, 11), now, wait)));
    }

    /// A leader's snapshot holding `n` keys, at index `n + 1` of term 1.
    fn snapshot_with(n: u64) -> Snapshot {
        use raft_core::{ClientRequest, Input, Op, Params, RaftCore, NO_SESSION};
        let mut leader = RaftCore::new(1, &[1], Params::default());
        leader.step(Input::ElectionTimeout);
        for k in 0..n {
            leader.step(Input::client(ClientRequest {
                client_id: NO_SESSION,
                seq: k,
                op: Op::Put {
                    key: format!("k{k}").into(),
                    value: "v".repeat(100).into(),
                },
            }));
        }
        leader.step(Input::Compact);
        leader.snapshot().clone()
    }

    /// The frames a sender would send for `snapshot` in chunks of `chunk` bytes.
    fn frames(snapshot: &Snapshot, chunk: usize) -> Vec<Frame> {
        let (tx, mut rx) = mpsc::channel(1 << 16);
        let (size, crc) = encode_in_chunks(snapshot, chunk, tx).unwrap();
        let mut out = Vec::new();
        let mut offset = 0;
        while let Ok(data) = rx.try_recv() {
            let len = data.len() as u64;
            out.push(Frame::SnapshotChunk {
                term: 3,
                last_included_index: snapshot.last_included_index,
                last_included_term: snapshot.last_included_term,
                offset,
                data,
            });
            offset += len;
        }
        out.push(Frame::SnapshotEnd { size, crc });
        out
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    async fn feed(inc: &mut Incoming, frames: Vec<Frame>) -> Result<Received, String> {
        let mut last = Err("no frames".to_string());
        for f in frames {
            last = inc.receive(2, f).await;
            last.as_ref().map_err(Clone::clone)?;
        }
        last
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_whole_transfer_becomes_a_snapshot_file_and_an_install_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = prepare_incoming(tmp.path()).unwrap();
        let snapshot = snapshot_with(200);
        let frames = frames(&snapshot, 4096);
        assert!(frames.len() > 5, "several chunks: {}", frames.len());
        let mut inc = Incoming::new(dir.clone(), 1);
        let got = runtime().block_on(feed(&mut inc, frames)).unwrap();
        let Received::Complete { env, file, bytes } = got else {
            panic!("not complete");
        };
        assert_eq!((env.from, env.to, env.msg.term()), (1, 2, 3));
        let Message::InstallSnapshot {
            leader,
            snapshot: s,
            ..
        } = env.msg
        else {
            panic!("{:?}", env.msg);
        };
        assert_eq!((leader, &s), (1, &snapshot));
        assert_eq!(bytes, bincode::serialize(&snapshot).unwrap().len() as u64);
        // The file is a snapshot file the storage reads back, and it outlives the receiver:
        // the node loop owns it now.
        drop(inc);
        assert_eq!(read_snapshot_file(&file).unwrap(), snapshot);
        assert_eq!(files(&dir), vec![file]);
    }

    #[test]
    fn a_damaged_or_out_of_order_or_broken_off_transfer_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = prepare_incoming(tmp.path()).unwrap();
        let snapshot = snapshot_with(100);
        let rt = runtime();

        let mut damaged = frames(&snapshot, 4096);
        if let Frame::SnapshotChunk { data, .. } = &mut damaged[1] {
            data[10] ^= 1;
        }
        let mut inc = Incoming::new(dir.clone(), 1);
        let e = rt.block_on(feed(&mut inc, damaged)).err().unwrap();
        assert!(e.contains("damaged"), "{e}");
        assert!(files(&dir).is_empty());

        let mut skipped = frames(&snapshot, 4096);
        skipped.remove(1);
        let e = rt.block_on(feed(&mut inc, skipped)).err().unwrap();
        assert!(
            e.contains("at offset 4096 where 4096") || e.contains("offset 8192"),
            "{e}"
        );
        inc.abandon();
        assert!(files(&dir).is_empty());

        let mut late = frames(&snapshot, 4096);
        late.remove(0);
        let e = rt.block_on(feed(&mut inc, late)).err().unwrap();
        assert!(e.contains("did not start"), "{e}");

        // A connection that closes part-way drops its receiver, and the file with it.
        let mut cut = frames(&snapshot, 4096);
        cut.truncate(3);
        assert!(matches!(
            rt.block_on(feed(&mut inc, cut)),
            Ok(Received::More)
        ));
        assert_eq!(files(&dir).len(), 1);
        drop(inc);
        assert!(files(&dir).is_empty());

        // What a crash leaves is emptied at the next start.
        std::fs::write(dir.join("from1-term3-index9-0.part"), b"RSNP").unwrap();
        prepare_incoming(tmp.path()).unwrap();
        assert!(files(&dir).is_empty());
    }

    #[test]
    fn failed_transfers_back_off_and_a_success_resets_the_wait() {
        assert_eq!(retry_after(1), RETRY_MIN);
        assert_eq!(retry_after(2), RETRY_MIN * 2);
        assert_eq!(retry_after(40), RETRY_MAX);
        let now = Instant::now();
        let mut p = peer(None, None);
        p.failures = 3;
        p.retry_at = Some(now + retry_after(3));
        let wait = Duration::from_secs(2);
        assert!(matches!(decide(&p, (2, 10), now, wait), Decision::Suppress));
        assert!(matches!(
            decide(&p, (2, 10), now + retry_after(3), wait),
            Decision::Start
        ));
    }

    #[test]
    fn chunks_are_the_chunk_size_and_join_into_the_encoding() {
        let snapshot = snapshot_with(3);
        let whole = bincode::serialize(&snapshot).unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        let (size, crc) = encode_in_chunks(&snapshot, 5, tx).unwrap();
        let mut chunks = Vec::new();
        while let Ok(c) = rx.try_recv() {
            chunks.push(c);
        }
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 5));
        assert_eq!(chunks.concat(), whole);
        assert_eq!((size, crc), (whole.len() as u64, crc32c::crc32c(&whole)));
    }
}
