//! Resource limits of a node: the open-file limit (raised at start to the hard limit), the
//! HTTP listener's accept loop with its connection cap, and the HTTP timeouts.
//!
//! Every HTTP connection holds a descriptor (and, while it forwards a request to the leader, a
//! second one). The accept loop serves a connection only with a free permit of the connection
//! cap; a connection beyond the cap is answered `503` with a JSON reason and closed at once, so
//! descriptors for storage (log segments, snapshot files, the hard state) and peers stay free. An accept that fails for want of descriptors (`EMFILE`,
//! `ENFILE`) is back-pressure: logged at most once a second, the loop pauses briefly and goes
//! on, and nothing else is affected.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use super::metrics::Metrics;

/// The open-file limit after [`raise_open_files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit in force (what the node can use).
    pub soft: u64,
    /// The hard limit (`u64::MAX`: unlimited).
    pub hard: u64,
    /// The soft limit the process started with.
    pub was: u64,
}

/// Linux refuses a soft limit above `fs.nr_open` (1,048,576 by default), which an unlimited hard
/// limit would ask for.
const UNLIMITED_TARGET: u64 = 1 << 20;

/// Raise the soft open-file limit to the hard limit (the common soft limit of 1,024 is too low
/// for a server). A refusal leaves the limit as it was.
pub fn raise_open_files() -> OpenFiles {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return OpenFiles {
            soft: 1024,
            hard: 1024,
            was: 1024,
        };
    };
    let target = if hard == rlimit::INFINITY {
        UNLIMITED_TARGET.max(soft)
    } else {
        hard
    };
    let mut now = soft;
    if soft < target {
        match rlimit::Resource::NOFILE.set(target, hard) {
            Ok(()) => now = target,
            Err(e) => warn!(soft, hard, error = %e, "cannot raise the open-file limit"),
        }
    }
    OpenFiles {
        soft: now,
        hard,
        was: soft,
    }
}

/// What the HTTP listener enforces.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serve `router` on `listener` until `stop` turns true; then every connection is asked to
/// close after its current request, and this returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_warning: Option<Instant> = None;
    let mut suppressed = 0u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) if out_of_descriptors(&e) => {
                metrics.inc(&metrics.http_accept_errors);
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    warn!(
                        error = %e,
                        suppressed,
                        "HTTP accept failed: out of file descriptors; pausing new connections"
                    );
                    last_warning = Some(Instant::now());
                    suppressed = 0;
                } else {
                    suppressed += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => {
                // The peer gave up before the accept (ECONNABORTED and the like).
                debug!(error = %e, "HTTP accept failed");
                continue;
            }
        };
        // Beyond the cap a connection is answered 503 and closed at once: it holds a descriptor
        // only for the moment it takes (the accept loop does it before the next accept).
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let n = metrics
                .http_connections_refused
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if n.is_power_of_two() {
                warn!(
                    %peer,
                    max_http_connections = limits.max_connections,
                    refused_so_far = n,
                    "HTTP connection refused (503): at the connection cap"
                );
            }
            let _ = stream.try_write(refusal(limits.max_connections).as_bytes());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics.http_connections.fetch_add(1, Ordering::Relaxed);
        let svc = TowerToHyperService::new(router.clone());
        let metrics = metrics.clone();
        let mut stop = stop.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                if e.is_timeout() {
                    metrics.inc(&metrics.http_header_timeouts);
                }
                debug!(%peer, error = %e, "HTTP connection ended");
            }
            metrics.http_connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Every connection has been told to stop: wait until each has given its permit back.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    info!("HTTP stopped");
}

/// The whole answer to a connection beyond the cap.
fn refusal(max: usize) -> String {
    let body = format!(
        "{{\"error\":\"too many connections: this node serves at most {max} at once \
         (max_http_connections); retry\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
}

/// `EMFILE`, `ENFILE` (and the kernel's own shortages, `ENOBUFS`, `ENOMEM`): the accept can
/// succeed later.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Resolves once `stop` is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
