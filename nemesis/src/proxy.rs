//! One TCP proxy per directed peer link. Node `i` is configured to reach peer `j` at the proxy
//! of link `i -> j`, which forwards to `j`'s real peer listener. Raft messages of `i -> j`
//! travel only on that connection (the transport dials one connection per peer and sends in
//! one direction; the other direction carries only the handshake answer), so a link's policy
//! is exactly the fate of `i`'s messages to `j`.
//!
//! The proxy parses the peer framing (4-byte big-endian length, then the body) and applies the
//! policy to whole frames, so a dropped message never corrupts the stream: it can drop frames
//! with a probability, delay them (order kept, as TCP would), black-hole the link (frames
//! vanish, connections stay up), or refuse it (connections are cut and new ones closed at
//! once). No root, no network namespaces.
//!
//! [`ClientProxies`] put a byte-stream proxy in front of each node's client (HTTP) port, for
//! the clients' traffic and the nodes' redirects and forwards (each node is told that its
//! peers' HTTP addresses are their proxies). A client link can be refused (connections cut,
//! new ones closed at once), stalled (nothing read or written until healed: the bytes wait,
//! as in a network that stopped moving) or delayed per chunk.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Largest frame forwarded (the node's own limit is 16 MiB).
const MAX_FRAME: usize = 16 << 20;

/// What happens to the frames of one directed link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// Frames vanish; connections stay up.
    pub blackhole: bool,
    /// Connections are cut and new ones closed at once.
    pub refuse: bool,
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Extra delay per frame, uniformly in `[min, max]` milliseconds.
    pub delay_ms: (u64, u64),
}

/// Frame counts of a link.
#[derive(Debug, Default)]
pub struct Counters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub delayed: AtomicU64,
    pub connections: AtomicU64,
    /// Connections cut at once because the link refused them (the dialing node's redials).
    pub refused: AtomicU64,
}

struct Link {
    listen: SocketAddr,
    policy: Mutex<Policy>,
    /// Bumped to cut every open connection of the link.
    cut: watch::Sender<u64>,
    counters: Counters,
}

/// The proxies of every directed link of a cluster.
pub struct Proxies {
    links: BTreeMap<(u64, u64), Arc<Link>>,
}

impl Proxies {
    /// Start one proxy per `(from, to, target)`: it listens on a fresh loopback port and
    /// forwards to `target`, the real peer listener of `to`.
    pub fn start(
        rt: &Handle,
        links: &[(u64, u64, SocketAddr)],
        seed: u64,
    ) -> std::io::Result<Proxies> {
        let mut out = BTreeMap::new();
        for (k, &(from, to, target)) in links.iter().enumerate() {
            let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
            let (cut, _) = watch::channel(0u64);
            let link = Arc::new(Link {
                listen: listener.local_addr()?,
                policy: Mutex::new(Policy::default()),
                cut,
                counters: Counters::default(),
            });
            out.insert((from, to), link.clone());
            let seed = seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            rt.spawn(accept_loop(listener, target, link, seed, connection));
        }
        Ok(Proxies { links: out })
    }

    /// Where node `from` must dial to reach `to`.
    pub fn addr(&self, from: u64, to: u64) -> SocketAddr {
        self.links[&(from, to)].listen
    }

    /// Set the policy of `from -> to`.
    pub fn set(&self, from: u64, to: u64, p: Policy) {
        let link = &self.links[&(from, to)];
        let refuse = p.refuse;
        *link.policy.lock().unwrap() = p;
        if refuse {
            link.cut.send_modify(|g| *g += 1);
        }
    }

    /// Every link back to normal.
    pub fn heal(&self) {
        for &(a, b) in self.links.keys() {
            self.set(a, b, Policy::default());
        }
    }

    /// Every directed link.
    pub fn links(&self) -> Vec<(u64, u64)> {
        self.links.keys().copied().collect()
    }

    /// Connections refused over every link (dials while a link refused them).
    pub fn refused(&self) -> u64 {
        self.links
            .values()
            .map(|l| l.counters.refused.load(Ordering::Relaxed))
            .sum()
    }

    /// Totals over every link: (forwarded, dropped, delayed, connections).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for l in self.links.values() {
            let c = &l.counters;
            t.0 += c.forwarded.load(Ordering::Relaxed);
            t.1 += c.dropped.load(Ordering::Relaxed);
            t.2 += c.delayed.load(Ordering::Relaxed);
            t.3 += c.connections.load(Ordering::Relaxed);
        }
        t
    }
}

/// Accepts connections for one link until the runtime stops: refused while the link's policy
/// says so, else served by `serve` (frame-aware for peer links, a byte stream for client links).
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    target: SocketAddr,
    link: Arc<Link>,
    seed: u64,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Arc<Link>, u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut n = 0u64;
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        n += 1;
        if link.policy.lock().unwrap().refuse {
            link.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(inbound);
            continue;
        }
        link.counters.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(inbound, target, link.clone(), seed.wrapping_add(n)));
    }
}

async fn connection(inbound: TcpStream, target: SocketAddr, link: Arc<Link>, seed: u64) {
    let mut cut = link.cut.subscribe();
    cut.mark_unchanged();
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    // The answer direction carries only the handshake reply: copied as is.
    // When the peer closes (it was killed), the whole connection goes, so the dialing node
    // notices and redials instead of writing into a dead link forever.
    let mut back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
    });
    // Delayed frames go through a bounded queue to a writer that keeps their order.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let writer = tokio::spawn(async move {
        while let Some((at, buf)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if out_w.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut last_at = Instant::now();
    let mut first = true;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut in_r) => f,
            _ = cut.changed() => None,
            _ = &mut back => None,
        };
        let Some(frame) = frame else { break };
        let p = link.policy.lock().unwrap().clone();
        if p.refuse {
            break;
        }
        let c = &link.counters;
        // The handshake is exempt from random loss (losing it only makes the node redial).
        if p.blackhole || (!first && p.loss > 0.0 && rng.gen_bool(p.loss.min(1.0))) {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        first = false;
        let mut at = Instant::now();
        if p.delay_ms.1 > 0 {
            at += Duration::from_millis(rng.gen_range(p.delay_ms.0..=p.delay_ms.1));
            c.delayed.fetch_add(1, Ordering::Relaxed);
        }
        at = at.max(last_at);
        last_at = at;
        match tx.try_send((at, frame)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // The writer stopped: the peer's side is gone.
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
        c.forwarded.fetch_add(1, Ordering::Relaxed);
    }
    drop(tx);
    writer.abort();
    back.abort();
}

/// One frame, header included, or `None` at the end of the stream or on a bad length.
async fn read_frame(r: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    let mut hdr = [0u8; 4];
    r.read_exact(&mut hdr).await.ok()?;
    let len = u32::from_be_bytes(hdr) as usize;
    if len > MAX_FRAME {
        return None;
    }
    let mut buf = vec![0u8; 4 + len];
    buf[..4].copy_from_slice(&hdr);
    r.read_exact(&mut buf[4..]).await.ok()?;
    Some(buf)
}

/// One byte-stream proxy in front of each node's HTTP port.
pub struct ClientProxies {
    links: BTreeMap<u64, Arc<Link>>,
}

impl ClientProxies {
    /// One proxy per `(node, its HTTP address)`.
    pub fn start(rt: &Handle, nodes: &[(u64, SocketAddr)], seed: u64) -> std::io::Result<Self> {
        let mut out = BTreeMap::new();
        for &(id, target) in nodes {
            let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
            let (cut, _) = watch::channel(0u64);
            let link = Arc::new(Link {
                listen: listener.local_addr()?,
                policy: Mutex::new(Policy::default()),
                cut,
                counters: Counters::default(),
            });
            out.insert(id, link.clone());
            let seed = seed ^ 0xC11E_0000 ^ id;
            rt.spawn(accept_loop(listener, target, link, seed, stream_connection));
        }
        Ok(ClientProxies { links: out })
    }

    /// Where clients (and the other nodes) reach node `id`'s HTTP API.
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.links[&id].listen
    }

    /// Set the policy of node `id`'s client link (`blackhole`: stall).
    pub fn set(&self, id: u64, p: Policy) {
        let link = &self.links[&id];
        let refuse = p.refuse;
        *link.policy.lock().unwrap() = p;
        if refuse {
            link.cut.send_modify(|g| *g += 1);
        }
    }

    pub fn heal(&self) {
        for &id in self.links.keys() {
            self.set(id, Policy::default());
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.links.keys().copied().collect()
    }

    /// Totals over every client link: (chunks forwarded, chunks delayed, connections,
    /// connections refused).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for l in self.links.values() {
            let c = &l.counters;
            t.0 += c.forwarded.load(Ordering::Relaxed);
            t.1 += c.delayed.load(Ordering::Relaxed);
            t.2 += c.connections.load(Ordering::Relaxed);
            t.3 += c.refused.load(Ordering::Relaxed);
        }
        t
    }
}

async fn stream_connection(inbound: TcpStream, target: SocketAddr, link: Arc<Link>, seed: u64) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let up = tokio::spawn(pump(in_r, out_w, link.clone(), seed));
    let down = tokio::spawn(pump(out_r, in_w, link, seed ^ 1));
    // Either direction ending (a close, a cut) ends both.
    let (mut up, mut down) = (up, down);
    tokio::select! {
        _ = &mut up => down.abort(),
        _ = &mut down => up.abort(),
    }
}

/// Wait while the link is stalled; `false` once it refuses or is cut.
async fn unstalled(link: &Link, cut: &mut watch::Receiver<u64>) -> bool {
    loop {
        let p = link.policy.lock().unwrap().clone();
        if p.refuse {
            return false;
        }
        if !p.blackhole {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = cut.changed() => return false,
        }
    }
}

/// Copy one direction under the link's policy, chunk by chunk.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
    seed: u64,
) {
    let mut cut = link.cut.subscribe();
    cut.mark_unchanged();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 16 << 10];
    loop {
        // A stalled link reads nothing (the sender's bytes wait in the socket buffers), and a
        // chunk read just before the stall waits too.
        if !unstalled(&link, &mut cut).await {
            return;
        }
        let n = tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = cut.changed() => return,
        };
        if !unstalled(&link, &mut cut).await {
            return;
        }
        let p = link.policy.lock().unwrap().clone();
        if p.delay_ms.1 > 0 {
            let d = rng.gen_range(p.delay_ms.0..=p.delay_ms.1);
            link.counters.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
        link.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// One frame of a one-byte body, or `None` if none arrives within 300 ms.
    async fn recv(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut b = vec![0u8; 5];
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b))
            .await
            .ok()?
            .ok()?;
        Some(b)
    }

    /// Frames pass, are dropped by loss 1.0 (the first frame, the handshake, excepted),
    /// vanish under a black hole, pass again once healed, and a refused link cuts the
    /// connection.
    #[test]
    fn policies_act_on_whole_frames() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        target.set_nonblocking(true).unwrap();
        let taddr = target.local_addr().unwrap();
        let px = Proxies::start(rt.handle(), &[(1, 2, taddr)], 1).unwrap();
        rt.block_on(async {
            let target = TcpListener::from_std(target).unwrap();
            let mut client = TcpStream::connect(px.addr(1, 2)).await.unwrap();
            let (mut server, _) = target.accept().await.unwrap();
            px.set(
                1,
                2,
                Policy {
                    loss: 1.0,
                    ..Policy::default()
                },
            );
            client.write_all(&frame(b"h")).await.unwrap();
            assert_eq!(recv(&mut server).await, Some(frame(b"h")));
            client.write_all(&frame(b"x")).await.unwrap();
            assert_eq!(recv(&mut server).await, None, "lost frame arrived");
            px.set(
                1,
                2,
                Policy {
                    blackhole: true,
                    ..Policy::default()
                },
            );
            client.write_all(&frame(b"y")).await.unwrap();
            assert_eq!(recv(&mut server).await, None, "black-holed frame arrived");
            px.heal();
            client.write_all(&frame(b"z")).await.unwrap();
            assert_eq!(recv(&mut server).await, Some(frame(b"z")));
            px.set(
                1,
                2,
                Policy {
                    refuse: true,
                    ..Policy::default()
                },
            );
            // The proxied connection is cut: the server side reads end-of-stream.
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(2), server.read(&mut b))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(n, 0);
            let (forwarded, dropped, _, _) = px.totals();
            assert_eq!((forwarded, dropped), (2, 2));
        });
    }

    /// A client link passes bytes both ways, stalls them while black-holed (they arrive after
    /// the heal, in order), and a refused link cuts the connection and closes new ones.
    #[test]
    fn client_links_pass_stall_and_refuse() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        target.set_nonblocking(true).unwrap();
        let px =
            ClientProxies::start(rt.handle(), &[(1, target.local_addr().unwrap())], 1).unwrap();
        rt.block_on(async {
            let target = TcpListener::from_std(target).unwrap();
            let mut client = TcpStream::connect(px.addr(1)).await.unwrap();
            let (mut server, _) = target.accept().await.unwrap();
            let mut b = [0u8; 1];
            client.write_all(b"a").await.unwrap();
            server.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"a");
            server.write_all(b"b").await.unwrap();
            client.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"b");
            px.set(
                1,
                Policy {
                    blackhole: true,
                    ..Policy::default()
                },
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.write_all(b"c").await.unwrap();
            let stalled =
                tokio::time::timeout(Duration::from_millis(300), server.read_exact(&mut b)).await;
            assert!(stalled.is_err(), "a stalled link passed bytes");
            px.heal();
            tokio::time::timeout(Duration::from_secs(2), server.read_exact(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b, b"c");
            px.set(
                1,
                Policy {
                    refuse: true,
                    ..Policy::default()
                },
            );
            let n = tokio::time::timeout(Duration::from_secs(2), server.read(&mut b))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(n, 0, "the connection was not cut");
            let mut again = TcpStream::connect(px.addr(1)).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(2), again.read(&mut b))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(n, 0, "a refused link accepted a connection");
            let (fw, _, conns, refused) = px.totals();
            assert_eq!((fw, conns, refused), (3, 1, 1));
        });
    }
}
