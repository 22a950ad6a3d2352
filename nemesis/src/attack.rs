//! Attacks on a node's client (HTTP) port, as fault kinds: descriptor exhaustion (many idle
//! connections held open) and slowloris (connections that trickle a request head one byte a
//! second). The node caps its HTTP connections (`max_http_connections`: a connection beyond
//! the cap is answered `503` and closed at once) and closes a connection whose request head
//! has not arrived within `http_header_timeout_ms`; these attacks check both from outside, on
//! a cluster under load, while the other faults come and go.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a probe of the attacked node's `/status` got while the attack was on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP answer with this status code, after this long.
    Answered(u16, Duration),
    /// No HTTP answer within the probe's time (a connection refused, reset or a silence).
    Unanswered(String),
}

/// One `GET /status` on a fresh connection, retried until an HTTP answer or `within`
/// (a node restarted by the previous fault may not listen yet).
pub fn probe(addr: SocketAddr, within: Duration) -> Probe {
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < within {
        match probe_once(addr, within.saturating_sub(start.elapsed())) {
            Ok(code) => return Probe::Answered(code, start.elapsed()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Probe::Unanswered(last)
}

fn probe_once(addr: SocketAddr, left: Duration) -> Result<u16, String> {
    let t = left.max(Duration::from_millis(100));
    let mut s = TcpStream::connect_timeout(&addr, t).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(t)).map_err(|e| e.to_string())?;
    // A node at its connection cap answers before reading anything: a failed write is no
    // reason to stop reading.
    let _ = s.write_all(b"GET /status HTTP/1.1\r\nHost: nemesis\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&got);
    line.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status line: {line:?}"))
}

/// Idle connections to a node's HTTP port, held until [`Exhaust::stop`].
pub struct Exhaust {
    conns: Vec<TcpStream>,
    /// Connections that could not be opened (the harness's own descriptors, a node down).
    pub failed: usize,
    pub opened_in: Duration,
}

/// How an exhaustion ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExhaustEnd {
    pub opened: usize,
    pub failed: usize,
    /// Connections the node answered `503` (beyond its cap) and closed.
    pub refused: usize,
    /// Connections the node closed without an answer (its header timeout, or a restart).
    pub closed_silently: usize,
    /// Connections still open when the fault ended (holding a slot of the node's cap).
    pub held: usize,
}

impl Exhaust {
    /// Open `n` connections to `addr` and send nothing on them.
    pub fn start(addr: SocketAddr, n: usize) -> Exhaust {
        let t = Instant::now();
        let mut conns = Vec::with_capacity(n);
        let mut failed = 0;
        for _ in 0..n {
            // Short: a connection whose SYN the node's full accept queue dropped would be
            // retried only after a second.
            match TcpStream::connect_timeout(&addr, Duration::from_millis(250)) {
                Ok(s) => {
                    let _ = s.set_nonblocking(true);
                    conns.push(s);
                }
                Err(_) => failed += 1,
            }
        }
        Exhaust {
            conns,
            failed,
            opened_in: t.elapsed(),
        }
    }

    /// How many connections are open.
    pub fn opened(&self) -> usize {
        self.conns.len()
    }

    /// Classify every connection (refused with a 503, closed, still held) and close them.
    pub fn stop(self) -> ExhaustEnd {
        let mut end = ExhaustEnd {
            opened: self.conns.len(),
            failed: self.failed,
            ..ExhaustEnd::default()
        };
        let mut buf = [0u8; 512];
        for mut s in self.conns {
            let mut got = Vec::new();
            let closed = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            if got.starts_with(b"HTTP/1.1 503") {
                end.refused += 1;
            } else if closed {
                end.closed_silently += 1;
            } else {
                end.held += 1;
            }
        }
        end
    }
}

/// Connections that trickle a request head, one byte a second, on their own thread.
pub struct Slowloris {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<SlowlorisEnd>,
}

/// How a slowloris attack ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlowlorisEnd {
    pub opened: usize,
    pub failed: usize,
    /// How long each connection the node closed had been open.
    pub closed_after: Vec<Duration>,
    /// How long each connection still open at the end had been open.
    pub open_for: Vec<Duration>,
}

/// A request head that never ends: the request line, then one long header.
const HEAD: &[u8] = b"GET /status HTTP/1.1\r\nHost: nemesis\r\nX-Slowloris: ";

impl Slowloris {
    /// Open `n` connections to `addr` and send one byte of a request head on each every
    /// second until [`Slowloris::stop`].
    pub fn start(addr: SocketAddr, n: usize) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || trickle(addr, n, &flag));
        Slowloris { stop, thread }
    }

    pub fn stop(self) -> SlowlorisEnd {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn trickle(addr: SocketAddr, n: usize, stop: &AtomicBool) -> SlowlorisEnd {
    let mut end = SlowlorisEnd::default();
    // (stream, opened, bytes sent)
    let mut open: Vec<(TcpStream, Instant, usize)> = Vec::new();
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                open.push((s, Instant::now(), 0));
            }
            Err(_) => end.failed += 1,
        }
    }
    end.opened = open.len();
    let mut next_byte = Instant::now();
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) && !open.is_empty() {
        let send = Instant::now() >= next_byte;
        if send {
            next_byte += Duration::from_secs(1);
        }
        open.retain_mut(|(s, opened, sent)| {
            let gone = match s.read(&mut buf) {
                // An answer (a 408) or the end of the stream: the node is done with it.
                Ok(_) => true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            let gone = gone || {
                send && {
                    let b = HEAD.get(*sent).copied().unwrap_or(b'a');
                    *sent += 1;
                    matches!(s.write(&[b]), Err(e) if e.kind() != ErrorKind::WouldBlock)
                }
            };
            if gone {
                end.closed_after.push(opened.elapsed());
            }
            !gone
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    end.open_for = open.iter().map(|(_, t, _)| t.elapsed()).collect();
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Against a listener that answers `503` to every connection and one that says nothing:
    /// the exhaustion sorts its connections, and the probe reads the status code.
    #[test]
    fn exhaustion_sorts_refused_and_held_connections() {
        let refusing = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = refusing.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..4 {
                let (mut s, _) = refusing.accept().unwrap();
                let _ =
                    s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let ex = Exhaust::start(addr, 3);
        assert_eq!(ex.opened(), 3);
        assert!(matches!(
            probe(addr, Duration::from_secs(2)),
            Probe::Answered(503, _)
        ));
        server.join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let end = ex.stop();
        assert_eq!((end.refused, end.held), (3, 0), "{end:?}");

        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let ex = Exhaust::start(silent.local_addr().unwrap(), 2);
        let end = ex.stop();
        assert_eq!((end.opened, end.held, end.refused), (2, 2, 0), "{end:?}");
        drop(silent);
    }

    /// A server that closes every connection after 1.5 s: the slowloris thread sees each
    /// close and how long the connection lived; one that never closes leaves them open.
    #[test]
    fn slowloris_times_the_node_closing_its_connections() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(2) {
                let s = s.unwrap();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1500));
                    drop(s);
                });
            }
        });
        let sl = Slowloris::start(addr, 2);
        std::thread::sleep(Duration::from_millis(2500));
        let end = sl.stop();
        assert_eq!((end.opened, end.closed_after.len()), (2, 2), "{end:?}");
        for d in &end.closed_after {
            assert!(*d >= Duration::from_millis(1400) && *d < Duration::from_millis(2400));
        }
        let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
        let sl = Slowloris::start(quiet.local_addr().unwrap(), 2);
        std::thread::sleep(Duration::from_millis(1200));
        let end = sl.stop();
        assert_eq!(
            (end.closed_after.len(), end.open_for.len()),
            (0, 2),
            "{end:?}"
        );
    }
}
