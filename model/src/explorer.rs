//! `raft-model explore`: stateright's explorer behind a small front server.
//!
//! stateright 0.31 compiles its page into the crate, and that page drops the 404 its own
//! `/.states` endpoint answers for a path with no such step: a bad link shows a blank page.
//! The front passes every request through to stateright's server on a private port, and
//! serves the page's script with two additions: a failed `/.states` answer is shown in a red
//! banner, and a link carrying `?flags=` (as `check` prints them) is compared with the flags
//! this explorer runs with (`/.flags`), since a link opened on an explorer of other flags
//! names other steps without failing. If a stateright upgrade changes the script so that the
//! first addition no longer applies, the script is served unchanged.

use crate::{Config, RaftModel};
use stateright::Model;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Where stateright's page fetches the successors of a path, in `ui/app.js`.
const STATES_FETCH: &str = ".then(r => r.json())";
/// Where the page picks a link's next step among the successors it fetched: a missing index
/// leaves `step` undefined and the page stops on a TypeError, blank, without fetching the path
/// (so the server's 404 is never asked for).
const STEP_LOOKUP: &str =
    "step = nextSteps.find(step => step.actionIndex == parseInt(nextActionIndex));";

const PAGE_ADDITIONS: &str = r#"
function raftrightBanner(text) {
    let b = document.getElementById('raftright-banner');
    if (!b) {
        b = document.createElement('div');
        b.id = 'raftright-banner';
        b.style.cssText = 'background:#c92a2a;color:#fff;padding:8px 12px;font-family:monospace;white-space:pre-wrap';
        document.body.prepend(b);
    }
    b.textContent = text;
}
async function raftrightChecked(r) {
    if (!r.ok) {
        const t = await r.text();
        raftrightBanner('This explorer has no such path (' + r.status + '): ' + t +
            '\nA link names steps by their index: it holds only on an explorer started with the flags of the check that printed it.');
        throw new Error(t);
    }
    return r.json();
}
function raftrightStep(nextSteps, index, path) {
    const found = nextSteps.find(s => s.actionIndex == parseInt(index));
    if (found === undefined) {
        raftrightBanner('This explorer has no step ' + index + ' after ' + (path || '/') + ' (it has ' +
            nextSteps.length + ' there).' +
            '\nA link names steps by their index: it holds only on an explorer started with the flags of the check that printed it.');
        throw new Error('no step ' + index);
    }
    return found;
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
    if !original.contains(STATES_FETCH) || !original.contains(STEP_LOOKUP) {
        return original.to_string();
    }
    let wrapped = (original.replacen(STATES_FETCH, ".then(raftrightChecked)", 1)).replacen(
        STEP_LOOKUP,
        "step = raftrightStep(nextSteps, nextActionIndex, step.path);",
        1,
    );
    format!("{PAGE_ADDITIONS}\n{wrapped}")
}

/// The flags as a link carries them: `?flags=` percent-encoded.
pub fn encode_flags(cfg: &Config) -> String {
    let flags = cfg.flags().join(" ");
    flags
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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
    std::thread::spawn(move || {
        RaftModel::for_explorer(cfg)
            .checker()
            .threads(threads)
            .serve(back_addr);
    });
    for rq in front.incoming_requests() {
        let back = back.clone();
        let flags = flags.clone();
        // A request for the successors of a deep state can take a while; the page asks for
        // several at once.
        std::thread::spawn(move || answer(rq, &back, &flags));
    }
    Ok(())
}

fn answer(rq: tiny_http::Request, back: &str, flags: &str) {
    let url = rq.url().to_string();
    let method = rq.method().as_str().to_string();
    let response = if url == "/.flags" {
        (
            200,
            flags.as_bytes().to_vec(),
            Some("text/plain; charset=utf-8"),
        )
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
        let script =
            format!("a.then(r => r.json()).then(x);\nb.then(r => r.json());\n{STEP_LOOKUP}");
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
        assert!(patched.contains("function raftrightBanner"), "{patched}");
        assert_eq!(patch_app_js("fetch(x)"), "fetch(x)");
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
