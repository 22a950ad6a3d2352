//! `raft-model explore`: stateright's explorer behind a small front server.
//!
//! stateright 0.31 compiles its page into the crate. The front passes every request through to
//! stateright's server on a private port and serves the page's script with three changes:
//! a link to a step that does not exist (or a failed `/.states` answer) is shown in a red
//! banner instead of a blank page; a link carrying `?flags=` (as `check` prints them) is
//! compared with the flags this explorer runs with (`/.flags`), since a link opened on an
//! explorer of other flags names other steps without failing; and "Run to completion" runs
//! raftright's engine with symmetry, as `check` does, instead of stateright's breadth-first
//! search without it (hours on the default bounds). If a stateright upgrade changes the
//! script so that one change no longer applies, the script is served unchanged.

use crate::runner::{self, RunOptions};
use crate::{Config, RaftModel};
use stateright::Model;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where stateright's page fetches the successors of a path, in `ui/app.js`.
const STATES_FETCH: &str = ".then(r => r.json())";
/// Where the page picks a link's next step among the successors it fetched: a missing index
/// leaves `step` undefined and the page stops on a TypeError, blank, without fetching the path
/// (so the server's 404 is never asked for).
const STEP_LOOKUP: &str =
    "step = nextSteps.find(step => step.actionIndex == parseInt(nextActionIndex));";
/// Where the page's "Run to completion" asks stateright's checker to go on: a breadth-first
/// search without symmetry reduction, for hours on the default bounds, that only killing the
/// server stops. The front server answers it with raftright's own engine instead.
const RUN_FETCH: &str = "let response = await fetch('/.runtocompletion', {method: 'POST'});";

const PAGE_ADDITIONS: &str = r#"
function raftrightNotice(id, background, text) {
    let b = document.getElementById(id);
    if (!b) {
        b = document.createElement('div');
        b.id = id;
        b.style.cssText = 'background:' + background + ';color:#fff;padding:8px 12px;font-family:monospace;white-space:pre-wrap';
        document.body.prepend(b);
    }
    b.textContent = text;
}
function raftrightBanner(text) { raftrightNotice('raftright-banner', '#c92a2a', text); }
function raftrightInfo(text) { raftrightNotice('raftright-run', '#1c4a6e', text); }
const raftrightLinkHint = '\nA link names steps by their index: it holds only on an explorer started with the flags of the check that printed it.';
async function raftrightChecked(r) {
    if (!r.ok) {
        const t = await r.text();
        raftrightBanner('This explorer has no such path (' + r.status + '): ' + t + raftrightLinkHint);
        throw new Error(t);
    }
    return r.json();
}
function raftrightStep(nextSteps, index, path) {
    const found = nextSteps.find(s => s.actionIndex == parseInt(index));
    if (found === undefined) {
        raftrightBanner('This explorer has no step ' + index + ' after ' + (path || '/') + ' (it has ' +
            nextSteps.length + ' there).' + raftrightLinkHint);
        throw new Error('no step ' + index);
    }
    return found;
}
async function raftrightRunToCompletion() {
    const started = await fetch('/.runtocompletion', {method: 'POST'});
    while (true) {
        const r = await fetch('/.raftright-run');
        const text = await r.text();
        raftrightInfo(text);
        if (r.status !== 202) return started;
        await new Promise(done => setTimeout(done, 2000));
    }
}
async function raftrightCheckFlags() {
    const want = new URLSearchParams(window.location.hash.split('?')[1] || '').get('flags');
    if (want === null) return;
    const have = await (await fetch('/.flags')).text();
    if (want !== have) {
        raftrightBanner('This link is for an explorer started with flags "' + want +
            '"; this one runs with "' + have + '": the same step numbers name other steps here.');
    }
}
window.addEventListener('hashchange', raftrightCheckFlags);
window.addEventListener('load', raftrightCheckFlags);
"#;

/// stateright's script with the additions; unchanged if it no longer has both places to
/// wrap (a page half patched would claim checks it does not make).
pub fn patch_app_js(original: &str) -> String {
    if ![STATES_FETCH, STEP_LOOKUP, RUN_FETCH]
        .iter()
        .all(|at| original.contains(at))
    {
        return original.to_string();
    }
    let wrapped = (original.replacen(STATES_FETCH, ".then(raftrightChecked)", 1))
        .replacen(
            STEP_LOOKUP,
            "step = raftrightStep(nextSteps, nextActionIndex, step.path);",
            1,
        )
        .replacen(
            RUN_FETCH,
            "let response = await raftrightRunToCompletion();",
            1,
        );
    format!("{PAGE_ADDITIONS}\n{wrapped}")
}

pub use crate::runner::encode_flags;

/// Serves the explorer for `cfg` on `addr`; returns only if the front cannot bind.
pub fn serve(cfg: Config, addr: &str, threads: usize) -> Result<(), String> {
    let front =
        tiny_http::Server::http(addr).map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    let back = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free local port for stateright's server: {e}"))?
        .to_string();
    let flags = cfg.flags().join(" ");
    let back_addr = back.clone();
    let explored = cfg.clone();
    std::thread::spawn(move || {
        RaftModel::for_explorer(explored)
            .checker()
            .threads(threads)
            .serve(back_addr);
    });
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let run = Arc::new(Completion {
        cfg,
        threads,
        port,
        state: Mutex::new(RunState::NotStarted),
    });
    for rq in front.incoming_requests() {
        let back = back.clone();
        let flags = flags.clone();
        let run = run.clone();
        // A request for the successors of a deep state can take a while; the page asks for
        // several at once.
        std::thread::spawn(move || answer(rq, &back, &flags, &run));
    }
    Ok(())
}

/// "Run to completion", run by the engine `raft-model check` uses (symmetry, every thread
/// given), once per server; the page polls `/.raftright-run` for its report.
struct Completion {
    cfg: Config,
    threads: usize,
    port: u16,
    state: Mutex<RunState>,
}

enum RunState {
    NotStarted,
    Running(Instant),
    Done(String),
}

impl Completion {
    fn start(self: &Arc<Self>) {
        let mut state = self.state.lock().expect("not poisoned");
        if !matches!(*state, RunState::NotStarted) {
            return;
        }
        *state = RunState::Running(Instant::now());
        let me = self.clone();
        std::thread::spawn(move || {
            let opts = RunOptions {
                threads: me.threads,
                ..RunOptions::default()
            };
            let summary = runner::run(me.cfg.clone(), &opts);
            let links = runner::ExplorerLinks {
                program: "raft-model".into(),
                port: me.port,
            };
            let report = runner::render(&summary, &links);
            *me.state.lock().expect("not poisoned") = RunState::Done(report);
        });
    }

    /// The status and text of `/.raftright-run`: 202 while it runs, 200 with the report.
    fn report(&self) -> (u16, String) {
        match &*self.state.lock().expect("not poisoned") {
            RunState::NotStarted => (404, "not started: press \"Run to completion\"".into()),
            RunState::Running(since) => (
                202,
                format!(
                    "Run to completion: raftright's engine (as `raft-model check`: symmetry, {} \
                     threads) has been exploring for {} s; the report replaces this line when \
                     it is done.",
                    self.threads,
                    since.elapsed().as_secs()
                ),
            ),
            RunState::Done(report) => (200, format!("Run to completion:{report}")),
        }
    }
}

fn answer(rq: tiny_http::Request, back: &str, flags: &str, run: &Arc<Completion>) {
    let url = rq.url().to_string();
    let method = rq.method().as_str().to_string();
    let text = |(status, body): (u16, String)| {
        (status, body.into_bytes(), Some("text/plain; charset=utf-8"))
    };
    let response = if url == "/.flags" {
        text((200, flags.to_string()))
    } else if url == "/.runtocompletion" && method == "POST" {
        run.start();
        text((202, "started".into()))
    } else if url == "/.raftright-run" {
        text(run.report())
    } else {
        match forward(back, &method, &url) {
            Ok((status, body)) if url == "/app.js" && status == 200 => {
                let script = patch_app_js(&String::from_utf8_lossy(&body));
                (200, script.into_bytes(), Some("application/javascript"))
            }
            Ok((status, body)) => (status, body, None),
            Err(e) => (502, e.into_bytes(), None),
        }
    };
    let (status, body, content_type) = response;
    let mut r = tiny_http::Response::from_data(body).with_status_code(status);
    if let Some(ct) = content_type {
        if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", ct) {
            r = r.with_header(h);
        }
    }
    let _ = rq.respond(r);
}

/// One request to stateright's server: its status and body. HTTP/1.0, so the body comes
/// whole, not chunked. Retried while that server is starting.
fn forward(back: &str, method: &str, url: &str) -> Result<(u16, Vec<u8>), String> {
    let mut last = String::new();
    for _ in 0..100 {
        match TcpStream::connect(back) {
            Ok(mut conn) => {
                write!(
                    conn,
                    "{method} {url} HTTP/1.0\r\nHost: {back}\r\nContent-Length: 0\r\n\r\n"
                )
                .map_err(|e| e.to_string())?;
                let mut raw = Vec::new();
                conn.read_to_end(&mut raw).map_err(|e| e.to_string())?;
                let split = (raw.windows(4))
                    .position(|w| w == b"\r\n\r\n")
                    .ok_or("stateright's server answered no headers")?;
                let head = String::from_utf8_lossy(&raw[..split]);
                let status = (head.split_whitespace().nth(1))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("no status in {head:?}"))?;
                return Ok((status, raw[split + 4..].to_vec()));
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "stateright's server on {back} does not answer: {last}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_script_is_patched_once_or_not_at_all() {
        let script = format!(
            "a.then(r => r.json()).then(x);\nb.then(r => r.json());\n{STEP_LOOKUP}\n{RUN_FETCH}"
        );
        let patched = patch_app_js(&script);
        assert!(
            patched.contains("a.then(raftrightChecked).then(x);"),
            "{patched}"
        );
        assert!(patched.contains("b.then(r => r.json());"), "{patched}");
        assert!(
            patched.contains("step = raftrightStep(nextSteps, nextActionIndex, step.path);"),
            "{patched}"
        );
        assert!(
            patched.contains("let response = await raftrightRunToCompletion();"),
            "{patched}"
        );
        assert!(patched.contains("function raftrightBanner"), "{patched}");
        assert_eq!(patch_app_js("fetch(x)"), "fetch(x)");
        let no_run = format!("a.then(r => r.json());\n{STEP_LOOKUP}");
        assert_eq!(patch_app_js(&no_run), no_run);
        let fetch_only = "a.then(r => r.json());";
        assert_eq!(patch_app_js(fetch_only), fetch_only);
    }

    #[test]
    fn flags_are_encoded_for_a_query_string() {
        let cfg = Config {
            max_term: 1,
            client_ops: vec![],
            ..Config::default()
        };
        assert_eq!(encode_flags(&cfg), "--max-term%201%20--clients%3D");
        assert_eq!(encode_flags(&Config::default()), "");
    }
}
