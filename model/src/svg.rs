//! The picture the explorer draws above a state (stateright's `Model::as_svg`): the verdicts,
//! each server with its role, term and log (committed entries marked), the messages in flight
//! as arrows, the path so far as a sequence diagram, and a legend. What the last step changed
//! is drawn in orange, so stepping through a path shows where to look.
//!
//! Only the explorer calls this, once per state it serves; a check never does.

use crate::model::{Action, RaftModel};
use crate::state::State;
use crate::types::*;
use std::fmt::Write;

/// Width of one server's (or the clients') column: a message label spanning two adjacent
/// columns fits in it at the font size below.
const COL: i32 = 260;
const MARGIN: i32 = 10;
const LINE: i32 = 15;
const CELL_H: i32 = 46;
const CHANGED: &str = "#e8590c";

const STYLE: &str = "text{font-family:monospace;font-size:11px;fill:#222}\
.title{font-weight:bold;font-size:12px}\
.bad{fill:#c92a2a;font-weight:bold}.good{fill:#2b8a3e}.dim{fill:#666}\
.srv{fill:#f8f9fa;stroke:#868e96}\
.role-Leader{fill:#ffe066}.role-Candidate{fill:#ffc9c9}.role-PreCandidate{fill:#ffe3e3}\
.role-Follower{fill:#e9ecef}\
.cell{fill:#fff;stroke:#adb5bd}.committed{fill:#b2f2bb;stroke:#2b8a3e}\
.compacted{fill:#dee2e6;stroke:#868e96}.empty{fill:none;stroke:#dee2e6;stroke-dasharray:3 2}\
.changed{stroke:#e8590c;stroke-width:3}\
.msg{stroke:#1c7ed6;stroke-width:1.5}.msg-new{stroke:#e8590c;stroke-width:2.5}\
.drop{stroke:#868e96;stroke-dasharray:4 3}.life{stroke:#ced4da;stroke-dasharray:2 3}";

/// The SVG for the last state of `path`; the state before it, if any, is what "changed" is
/// measured against.
pub fn render(model: &RaftModel, path: &[(State, Option<Action>)]) -> String {
    let (state, _) = path.last().expect("a path has a last state");
    let prev = path.len().checked_sub(2).map(|i| &path[i].0);
    let n = state.servers.len() as i32;
    // The clients' column is the last; its text runs past the column centre.
    let width = 2 * MARGIN + COL * (n + 1) + COL / 3;
    let mut body = String::new();
    let mut y = MARGIN;

    for (i, line) in crate::properties::explorer_header(model, state)
        .lines()
        .enumerate()
    {
        let class = match i {
            0 if line.contains("VIOLATES") => "bad",
            0 => "good",
            1 if !line.ends_with("none") => "good",
            _ => "dim",
        };
        y += LINE;
        text(&mut body, MARGIN, y, class, line);
    }
    y += LINE / 2;
    y = servers(&mut body, model, state, prev, y + LINE);
    y = in_flight(&mut body, model, state, prev, y + LINE);
    y = sequence(&mut body, n, path, y + LINE);
    y = legend(&mut body, y + LINE);

    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{h}\" \
         viewBox=\"0 0 {width} {h}\"><style>{STYLE}</style><defs>{arrows}</defs>\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{h}\" fill=\"#fff\"/>{body}</svg>",
        h = y + MARGIN,
        arrows = [("rr-arrow", "#1c7ed6"), ("rr-arrow-new", CHANGED), ("rr-arrow-dim", "#868e96")]
            .iter()
            .map(|(id, color)| format!(
                "<marker id=\"{id}\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"8\" \
                 markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"{color}\"/></marker>"
            ))
            .collect::<String>(),
    )
}

/// The centre of column `i` (servers 0..n, then the clients).
fn x_of(i: i32) -> i32 {
    MARGIN + COL * i + COL / 2
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(out: &mut String, x: i32, y: i32, class: &str, s: &str) {
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{y}\" class=\"{class}\">{}</text>",
        escape(s)
    );
}

fn text_mid(out: &mut String, x: i32, y: i32, class: &str, s: &str) {
    text_anchored(out, x, y, class, "middle", s);
}

fn text_anchored(out: &mut String, x: i32, y: i32, class: &str, anchor: &str, s: &str) {
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{y}\" class=\"{class}\" text-anchor=\"{anchor}\">{}</text>",
        escape(s)
    );
}

fn arrow(out: &mut String, x1: i32, x2: i32, y: i32, class: &str, marker: &str) {
    // A step that stays within one column (a server to itself never happens; a client answer
    // from an unknown leader does) still gets a visible arrow.
    let x1 = if x1 == x2 { x2 - COL / 2 } else { x1 };
    let _ = write!(
        out,
        "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" class=\"{class}\" \
         marker-end=\"url(#{marker})\"/>"
    );
}

fn ids(mask: u8, skip: Option<usize>) -> String {
    (0..8)
        .filter(|&i| mask & (1 << i) != 0 && Some(i) != skip)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One box per server: role, term, vote, commit index, the log as a grid, and what matters
/// for its role. Returns the y below the boxes.
fn servers(
    out: &mut String,
    model: &RaftModel,
    state: &State,
    prev: Option<&State>,
    top: i32,
) -> i32 {
    let cells = (state.servers.iter())
        .map(|s| s.last_log_index())
        .max()
        .unwrap_or(0)
        .max(model.cfg.max_log_len as Index) as i32;
    let cell_w = ((COL - 30) / cells.max(1)).min(80);
    // A leader's reads under way take a line each.
    let reads = (state.servers.iter())
        .map(|s| s.reads.pending.len() + s.reads.waiting.len())
        .max()
        .unwrap_or(0) as i32;
    let box_h = 3 * LINE + CELL_H + (3 + reads) * LINE;
    for (i, s) in state.servers.iter().enumerate() {
        let before = prev.map(|p| &p.servers[i]);
        let x = MARGIN + COL * i as i32 + 5;
        let header_changed = before.is_some_and(|b| {
            (
                b.role,
                b.current_term,
                b.voted_for,
                b.commit_index,
                b.leader_id,
            ) != (
                s.role,
                s.current_term,
                s.voted_for,
                s.commit_index,
                s.leader_id,
            )
        });
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{top}\" width=\"{}\" height=\"{box_h}\" rx=\"6\" class=\"srv{}\"/>",
            COL - 10,
            if before.is_some_and(|b| b != s) { " changed" } else { "" }
        );
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\" class=\"role-{:?}\"/>",
            x + 4,
            top + 4,
            COL - 18,
            LINE + 2,
            s.role
        );
        text(
            out,
            x + 8,
            top + LINE + 1,
            "title",
            &format!("s{i} {:?} t{}", s.role, s.current_term),
        );
        let vote = s.voted_for.map_or("-".into(), |v| format!("s{v}"));
        let leader = s.leader_id.map_or("-".into(), |v| format!("s{v}"));
        text(
            out,
            x + 8,
            top + 2 * LINE + 4,
            if header_changed { "bad" } else { "" },
            &format!("vote={vote} leader={leader} commit={}", s.commit_index),
        );
        let grid_y = top + 2 * LINE + 12;
        for k in 1..=cells {
            let index = k as Index;
            let cx = x + 8 + (k - 1) * cell_w;
            let entry = s.entry(index);
            let compacted = index <= s.snapshot_index();
            let committed = index <= s.commit_index;
            let changed = before.is_some_and(|b| {
                b.entry(index) != entry
                    || (index <= b.commit_index) != committed
                    || (index <= b.snapshot_index()) != compacted
            });
            let class = match (compacted, entry.is_some(), committed) {
                (true, _, _) => "compacted",
                (_, false, _) => "empty",
                (_, true, true) => "committed",
                (_, true, false) => "cell",
            };
            let _ = write!(
                out,
                "<rect x=\"{cx}\" y=\"{grid_y}\" width=\"{}\" height=\"{CELL_H}\" class=\"{class}{}\"/>",
                cell_w - 3,
                if changed { " changed" } else { "" }
            );
            text(out, cx + 3, grid_y + 12, "dim", &index.to_string());
            if committed {
                text(out, cx + cell_w - 14, grid_y + 12, "good", "✓");
            }
            let lines: Vec<String> = match entry {
                _ if compacted => {
                    vec![format!("t{}", s.snapshot.last_included_term), "snap".into()]
                }
                None => vec![],
                Some(e) => {
                    let mut l = vec![format!("t{}", e.term)];
                    match e.command {
                        Command::Noop => l.push("noop".into()),
                        Command::Register { nonce } => l.push(format!("reg n{nonce}")),
                        Command::Client { client_id, seq, op } => {
                            l.push(format!("c{client_id}#{seq}"));
                            l.push(format!("{op:?}"));
                        }
                        Command::Membership(m) => {
                            l.push("config".into());
                            l.push(format!("v {}", ids(m.voters, None)));
                            if m.learners != 0 {
                                l.push(format!("l {}", ids(m.learners, None)));
                            }
                        }
                    }
                    l
                }
            };
            for (j, l) in lines.iter().enumerate() {
                text(out, cx + 3, grid_y + 24 + 11 * j as i32, "", l);
            }
            // An entry the last step removed leaves nothing to see: name it, as overwriting
            // uncommitted entries is what several of the failure cases are about.
            if let (None, false, Some(gone)) =
                (entry, compacted, before.and_then(|b| b.entry(index)))
            {
                text(
                    out,
                    cx + 3,
                    grid_y + 24,
                    "bad",
                    &format!("was t{}", gone.term),
                );
                let what = match gone.command {
                    Command::Noop => "noop".to_string(),
                    Command::Register { nonce } => format!("reg n{nonce}"),
                    Command::Client { client_id, seq, .. } => format!("c{client_id}#{seq}"),
                    Command::Membership(m) => format!("config {}", ids(m.voters, None)),
                };
                text(out, cx + 3, grid_y + 35, "bad", &what);
            }
        }
        let mut y = grid_y + CELL_H + LINE;
        let mut detail = |line: String| {
            text(out, x + 8, y, "dim", &line);
            y += LINE;
        };
        match s.role {
            Role::Leader => {
                // The leader's own slots in next/match carry nothing: it never sends to itself.
                let peers = |v: &[Index]| {
                    (v.iter().enumerate())
                        .filter(|(p, _)| *p != i)
                        .map(|(p, x)| format!("s{p}={x}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                detail(format!("next: {}", peers(&s.next_index)));
                detail(format!("match: {}", peers(&s.match_index)));
                if s.inflight.iter().any(|l| !l.is_empty()) || s.stalled != 0 {
                    let pipeline = (s.inflight.iter().enumerate())
                        .filter(|(p, _)| *p != i)
                        .map(|(p, lasts)| {
                            let mark = if s.stalled & (1 << p) != 0 { "!" } else { "" };
                            format!("s{p}={lasts:?}{mark}")
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    detail(format!("in flight: {pipeline}"));
                }
                for r in &s.reads.pending {
                    let q = r.request;
                    detail(format!(
                        "read c{}#{} at {} r{} acks {{{}}}",
                        q.client_id,
                        q.seq,
                        r.read_index,
                        r.round,
                        ids(r.acks, None)
                    ));
                }
                for q in &s.reads.waiting {
                    detail(format!(
                        "read c{}#{} waits for a t{} commit",
                        q.client_id, q.seq, s.current_term
                    ));
                }
            }
            Role::Candidate | Role::PreCandidate => {
                detail(format!("votes: {{{}}}", ids(s.votes, None)));
            }
            Role::Follower => {}
        }
        let kv: Vec<String> = (s.kv.iter().enumerate())
            .filter_map(|(k, v)| v.map(|v| format!("k{k}={v}")))
            .collect();
        if !kv.is_empty() {
            detail(format!("kv: {}", kv.join(" ")));
        }
    }
    let cx = MARGIN + COL * state.servers.len() as i32 + 5;
    text(out, cx + 4, top + LINE, "title", "clients");
    for (c, cl) in state.clients.iter().enumerate() {
        let changed = prev.is_some_and(|p| p.clients[c] != *cl);
        text(
            out,
            cx + 4,
            top + LINE * (2 + c as i32),
            if changed { "bad" } else { "" },
            &format!("c{c}: {cl:?}"),
        );
    }
    text(
        out,
        cx + 4,
        top + LINE * (2 + state.clients.len() as i32),
        "dim",
        &format!("restarts: {}", state.restarts),
    );
    top + box_h
}

/// The messages in flight, one arrow each from sender to receiver; the ones the last step
/// sent in orange.
fn in_flight(
    out: &mut String,
    model: &RaftModel,
    state: &State,
    prev: Option<&State>,
    top: i32,
) -> i32 {
    let n = state.servers.len() as i32;
    let bound = match model.cfg.max_in_flight {
        0 => "no bound".to_string(),
        m => format!("at most {m}"),
    };
    let mut y = top;
    text(
        out,
        MARGIN,
        y,
        "title",
        &format!(
            "in flight: {} server messages ({bound}), {} client answers",
            state.network.len(),
            state.responses.len()
        ),
    );
    y += 6;
    for e in &state.network {
        y += LINE + 4;
        let new = prev.is_some_and(|p| p.network.binary_search(e).is_err());
        let (class, marker) = arrow_style(new);
        let (x1, x2) = (x_of(e.src as i32), x_of(e.dst as i32));
        arrow(out, x1, x2, y, class, marker);
        text_mid(
            out,
            (x1 + x2) / 2,
            y - 3,
            "",
            &format!("s{}→s{} {:?}", e.src, e.dst, e.msg),
        );
    }
    for r in &state.responses {
        y += LINE + 4;
        let new = prev.is_some_and(|p| p.responses.binary_search(r).is_err());
        let (class, marker) = arrow_style(new);
        arrow(out, x_of(n), x_of(n), y, class, marker);
        text_mid(out, x_of(n) - COL / 4, y - 3, "", &format!("{r:?}"));
    }
    y + LINE / 2
}

/// The server a step is taken by.
fn actor(action: &Action) -> Option<Id> {
    match action {
        Action::Deliver(e) => Some(e.dst),
        Action::ElectionTimeout(i)
        | Action::HeartbeatTimeout(i)
        | Action::Restart(i)
        | Action::Compact(i) => Some(*i),
        Action::ClientRequest { server, .. } | Action::Admin { server } => Some(*server),
        Action::Drop(_) | Action::DeliverResponse(_) | Action::DropResponse(_) => None,
    }
}

/// The server whose step put answer `r` in flight before step `k`: an answer names its client,
/// not its sender.
fn answered_by(path: &[(State, Option<Action>)], k: usize, r: &ClientResponse) -> Option<Id> {
    (0..k).rev().find_map(|j| {
        let sent = path[j + 1].0.responses.contains(r) && !path[j].0.responses.contains(r);
        if sent {
            path[j].1.as_ref().and_then(actor)
        } else {
            None
        }
    })
}

/// The path so far as a sequence diagram: a lifeline per server and one for the clients, a
/// row per step, a message drawn when it is delivered (or dropped).
fn sequence(out: &mut String, n: i32, path: &[(State, Option<Action>)], top: i32) -> i32 {
    let steps = path.len() - 1;
    text(
        out,
        MARGIN,
        top,
        "title",
        &format!("path so far: {steps} steps (the last in orange)"),
    );
    let head = top + LINE;
    for i in 0..=n {
        let label = if i == n {
            "clients".to_string()
        } else {
            format!("s{i}")
        };
        text_mid(out, x_of(i), head, "title", &label);
    }
    let bottom = head + 8 + (steps as i32) * (LINE + 6);
    for i in 0..=n {
        let _ = write!(
            out,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{bottom}\" class=\"life\"/>",
            head + 4,
            x = x_of(i)
        );
    }
    for (k, (_, action)) in path.iter().enumerate().take(steps) {
        let Some(action) = action else { continue };
        let y = head + 8 + (k as i32 + 1) * (LINE + 6) - 4;
        let last = k + 1 == steps;
        let (class, marker, label_class) = if last {
            ("msg-new", "rr-arrow-new", "bad")
        } else {
            ("msg", "rr-arrow", "")
        };
        let label = format!("{}. {action:?}", k + 1);
        let client = |c: usize| path[k].0.clients.get(c).map(|_| n).unwrap_or(n);
        match action {
            Action::Deliver(e) => {
                let (x1, x2) = (x_of(e.src as i32), x_of(e.dst as i32));
                arrow(out, x1, x2, y, class, marker);
                text_mid(
                    out,
                    (x1 + x2) / 2,
                    y - 3,
                    label_class,
                    &format!("{}. {:?}", k + 1, e.msg),
                );
            }
            Action::Drop(e) => {
                // Half way, then the label beyond the arrow's head, away from the line.
                let (x1, x2) = (x_of(e.src as i32), x_of(e.dst as i32));
                let mid = (x1 + x2) / 2;
                arrow(out, x1, mid, y, "drop", "rr-arrow-dim");
                let label = format!("✗ {}. lost {:?}", k + 1, e.msg);
                if x2 < x1 {
                    text_anchored(out, mid - 6, y + 3, label_class, "end", &label);
                } else {
                    text_anchored(out, mid + 6, y + 3, label_class, "start", &label);
                }
            }
            Action::Admin { server } => {
                let (x1, x2) = (x_of(n), x_of(*server as i32));
                arrow(out, x1, x2, y, class, marker);
                text_mid(out, (x1 + x2) / 2, y - 3, label_class, &label);
            }
            Action::ClientRequest { client_id, server } => {
                let (x1, x2) = (x_of(client(*client_id as usize)), x_of(*server as i32));
                arrow(out, x1, x2, y, class, marker);
                text_mid(out, (x1 + x2) / 2, y - 3, label_class, &label);
            }
            Action::DeliverResponse(r) | Action::DropResponse(r) => {
                let from = answered_by(path, k, r).map_or(n, |s| s as i32);
                let drop = matches!(action, Action::DropResponse(_));
                let (x1, x2) = (x_of(from), x_of(n));
                let x2 = if drop { (x1 + x2) / 2 } else { x2 };
                if drop {
                    arrow(out, x1, x2, y, "drop", "rr-arrow-dim");
                } else {
                    arrow(out, x1, x2, y, class, marker);
                }
                text_mid(out, (x1 + x2) / 2, y - 3, label_class, &label);
            }
            Action::ElectionTimeout(i)
            | Action::HeartbeatTimeout(i)
            | Action::Restart(i)
            | Action::Compact(i) => {
                let x = x_of(*i as i32);
                let _ = write!(
                    out,
                    "<circle cx=\"{x}\" cy=\"{}\" r=\"4\" fill=\"{}\"/>",
                    y - 4,
                    if last { CHANGED } else { "#1c7ed6" }
                );
                text(out, x + 8, y, label_class, &label);
            }
        }
    }
    bottom + LINE
}

const LEGEND: [&str; 11] = [
    "Vote?(t1 c=s0 last=2@t1): RequestVote of term 1 from candidate s0, whose last entry is index 2 of term 1 (PreVote?: the pre-vote)",
    "Vote+(t1) / Vote-(t1): the vote granted / refused, with the voter's term",
    "Append(t1 s0 prev=1@t1 [2:c100#1:put(k0=1)] commit=1): AppendEntries of term 1 from leader s0: entries after index 1 of term 1, leader's commit index",
    "Append+(t1 last=2) / Append-(t1 last=0): accepted up to index 2 / rejected, with the follower's last index",
    "InstallSnapshot(t1 s0 snap=i@t ...): a leader's snapshot for a follower behind its log",
    "→c0 #1 ok: a leader's answer to client c0's operation #1",
    "log cell: index, term, command (c100#1 = session 100's 1st command); green with ✓ committed, grey compacted into a snapshot",
    "orange: changed by the last step (box, cell, message); red verdict: an always-property this state violates",
    "next/match: a leader's view of each peer (its own slot left out)",
    "ReadIndex(t1 s0 r1) / ReadIndex+(t1 r1): a leader asks for confirmation of read round 1 / a server confirms it (-: refuses, in a later term)",
    "read c100#2 at 1 r1 acks {s0,s1}: a ReadIndex read under way at read index 1 (waits for a t1 commit: held until the leader commits in its term)",
];

fn legend(out: &mut String, top: i32) -> i32 {
    text(out, MARGIN, top, "title", "legend");
    let mut y = top;
    for line in LEGEND {
        y += LINE;
        text(out, MARGIN, y, "dim", line);
    }
    y
}

/// The class and arrowhead of a message arrow: new since the last step, or not.
fn arrow_style(new: bool) -> (&'static str, &'static str) {
    if new {
        ("msg-new", "rr-arrow-new")
    } else {
        ("msg", "rr-arrow")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use stateright::Model;
    use std::collections::{HashMap, VecDeque};

    /// The shortest path to the first state `goal` accepts.
    fn path_to(model: &RaftModel, goal: impl Fn(&State) -> bool) -> Vec<(State, Option<Action>)> {
        let init = model.init_states().remove(0);
        let mut parent: HashMap<State, Option<(State, Action)>> =
            HashMap::from([(init.clone(), None)]);
        let mut queue = VecDeque::from([init]);
        while let Some(s) = queue.pop_front() {
            if goal(&s) {
                let mut path = vec![(s.clone(), None)];
                let mut at = s;
                while let Some(Some((p, a))) = parent.get(&at).cloned() {
                    path.push((p.clone(), Some(a)));
                    at = p;
                }
                path.reverse();
                return path;
            }
            let mut actions = Vec::new();
            model.actions(&s, &mut actions);
            for a in actions {
                if let Some(next) = model.next_state(&s, a.clone()) {
                    if !parent.contains_key(&next) {
                        parent.insert(next.clone(), Some((s.clone(), a)));
                        queue.push_back(next);
                    }
                }
            }
        }
        panic!("goal unreachable");
    }

    /// Tags nest and close, attribute quotes pair up, and every `&` starts an entity.
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut stack = Vec::new();
        let mut rest = svg;
        let mut roots = 0;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                if !["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| entity.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("unpaired quote in <{tag}>"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(top) if top == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                if stack.is_empty() {
                    roots += 1;
                }
                stack.push(name.to_string());
            }
            rest = &rest[close + 1..];
        }
        if !stack.is_empty() || roots != 1 || !rest.trim().is_empty() {
            return Err(format!(
                "unclosed {stack:?}, {roots} roots, trailing {rest:?}"
            ));
        }
        Ok(())
    }

    fn small() -> RaftModel {
        RaftModel::for_explorer(Config {
            max_term: 1,
            max_log_len: 2,
            max_restarts: 0,
            ..Config::small()
        })
    }

    #[test]
    fn the_initial_state_draws_followers_and_no_messages() {
        let model = small();
        let svg = render(&model, &[(model.init_states().remove(0), None)]);
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches(">s0 Follower t0<").count(), 1, "{svg}");
        assert!(
            svg.contains("in flight: 0 server messages (at most 3)"),
            "{svg}"
        );
        assert!(svg.contains("path so far: 0 steps"), "{svg}");
        assert!(!svg.contains("class=\"committed"), "{svg}");
        assert!(!svg.contains(" changed\""), "{svg}");
        assert!(svg.contains("explorer flags: --max-term 1"), "{svg}");
    }

    /// A configuration entry is drawn as one, and the operator's step as an arrow from the
    /// clients' lifeline to the leader that took it.
    #[test]
    fn a_membership_change_is_drawn() {
        let model = RaftModel::for_explorer(Config {
            max_term: 1,
            max_log_len: 2,
            max_restarts: 0,
            client_ops: Vec::new(),
            admin_ops: vec![crate::types::AdminOp::Remove(2)],
            ..Config::small()
        });
        let path = path_to(&model, |s| s.admin_done == 1);
        let svg = render(&model, &path);
        well_formed(&svg).unwrap();
        assert!(svg.contains(">config<"), "{svg}");
        assert!(svg.contains(">v s0,s1<"), "{svg}");
        assert!(svg.contains(". Admin→s"), "{svg}");
    }

    #[test]
    fn a_commit_is_marked_and_the_last_step_highlighted() {
        let model = small();
        let path = path_to(&model, |s| {
            s.servers
                .iter()
                .any(|v| v.role == Role::Leader && v.commit_index >= 1)
        });
        let svg = render(&model, &path);
        well_formed(&svg).unwrap();
        assert!(svg.contains(" Leader t1<"), "{svg}");
        assert!(svg.contains("class=\"committed"), "{svg}");
        assert!(svg.contains(">✓<"), "{svg}");
        assert!(svg.contains("witnesses here: leader elected"), "{svg}");
        // The step that committed changed the leader's commit index and its first cell.
        assert!(svg.contains("committed changed"), "{svg}");
        let steps = path.len() - 1;
        assert!(
            svg.contains(&format!("path so far: {steps} steps")),
            "{svg}"
        );
        assert!(svg.contains("Vote+(t1)"), "{svg}");
    }

    #[test]
    fn a_violation_is_drawn_in_red_and_messages_as_arrows() {
        let model = small();
        let mut path = path_to(&model, |s| !s.network.is_empty());
        let last = &mut path.last_mut().unwrap().0;
        last.elected[1] = 0b11;
        let svg = render(&model, &path);
        well_formed(&svg).unwrap();
        assert!(
            svg.contains("class=\"bad\">verdict: VIOLATES election safety"),
            "{svg}"
        );
        assert!(svg.contains("class=\"msg-new\""), "{svg}");
        assert!(svg.contains("marker-end=\"url(#rr-arrow-new)\""), "{svg}");
    }

    #[test]
    fn a_removed_entry_is_named_where_it_was() {
        let model = small();
        let mut path = path_to(&model, |s| {
            s.servers
                .iter()
                .any(|v| v.role != Role::Leader && v.commit_index == 0 && !v.log.is_empty())
        });
        // The picture compares two states only: the follower's entry taken away by hand
        // draws as the overwrite a new leader's AppendEntries makes.
        let mut next = path.last().unwrap().0.clone();
        let follower = (next.servers.iter_mut())
            .find(|v| v.role != Role::Leader && v.commit_index == 0 && !v.log.is_empty())
            .unwrap();
        follower.log.pop();
        path.push((next, None));
        let svg = render(&model, &path);
        well_formed(&svg).unwrap();
        assert!(svg.contains("class=\"bad\">was t"), "{svg}");
    }

    #[test]
    fn a_read_under_way_is_drawn_in_its_leaders_box() {
        let mut cfg = Config {
            max_term: 1,
            max_log_len: 2,
            max_restarts: 0,
            client_ops: vec![vec![crate::config::get()]],
            ..Config::small()
        };
        cfg.params.read_index = true;
        let model = RaftModel::for_explorer(cfg);
        let path = path_to(&model, |s| {
            s.servers.iter().any(|v| !v.reads.pending.is_empty())
        });
        let svg = render(&model, &path);
        well_formed(&svg).unwrap();
        assert!(svg.contains("read c100#1 at 1 r1 acks {s"), "{svg}");
        assert!(svg.contains("ReadIndex(t1 s"), "{svg}");
    }

    #[test]
    fn the_checker_rejects_malformed_svg() {
        assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(well_formed("<svg><g></svg>").is_err());
        assert!(well_formed("<svg x=\"1/>").is_err());
        assert!(well_formed("<svg><text>a &amp; b</text><line/></svg>").is_ok());
    }
}
