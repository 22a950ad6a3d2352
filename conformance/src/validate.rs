//! `raft-conformance validate FILES...`: check that every step a running node recorded
//! (`record = "FILE"` in its configuration, see `raft_node::runtime::record`) is a transition
//! the model allows.
//!
//! For each recorded step the state before it (rebuilt from the recording: `recording.rs`) is
//! mapped to a model `Server` (`map.rs`), the model takes the same step (`on_message`,
//! `election_timeout`, `heartbeat_timeout`, `client_request`, `read_request`), and the model's
//! result must equal the state after the step (the [`View`] abstraction, as in replay), its
//! messages and its client answers. A `start` line begins a new chain (the node restarted from
//! its durable state). Reads are steps like any other: `ReadIndex` messages, read answers and
//! the `ReadNotLeader` of a leader that steps down are compared with the model's.
//!
//! A recording is checkable only in the model's vocabulary: node ids 1..=5, keys `k0`/`k1`,
//! small numeric values, terms, indexes and session ids below 256, at most 255 appends in
//! flight per peer.

use crate::map;
use crate::recording::{self, Line};
use crate::view::{Storage, View};
use raft_core as c;
use raft_core::record::Record;
use raft_model::config::{Backoff as MBackoff, Config};
use raft_model::server::{Effects, PendingRead, ReadRequest, Server};
use raft_model::types as m;
use raft_model::types::Session;
use std::path::Path;

/// What a validation checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub chains: usize,
    pub steps_checked: usize,
    /// Step lines that carried the state after them, each equal to the rebuilt one.
    pub checkpoints: usize,
}

fn model_params(p: &c::Params, servers: u8) -> Result<Config, String> {
    let mut cfg = Config::small();
    cfg.servers = servers;
    cfg.params.pre_vote = p.pre_vote;
    cfg.params.check_quorum = p.check_quorum;
    cfg.params.max_entries_per_append =
        map::model_u8(p.max_entries_per_append as u64, "max_entries_per_append")?;
    cfg.params.backoff = match p.backoff {
        c::Backoff::ConflictHint => MBackoff::ConflictHint,
        c::Backoff::Decrement => MBackoff::Decrement,
    };
    cfg.params.noop_on_election = p.noop_on_election;
    cfg.params.max_inflight_appends = match p.max_inflight_appends {
        None => 0,
        Some(n) => map::model_u8(n as u64, "max_inflight_appends")?,
    };
    // The runtime serves every read by ReadIndex and never puts a `Get` in the log.
    cfg.params.read_index = true;
    // A recording the model can express has session ids below 256, so at most 255 sessions:
    // a larger bound never evicts in it and is the same as none (the model's 0).
    cfg.params.max_sessions = p
        .max_sessions
        .and_then(|n| u8::try_from(n).ok())
        .unwrap_or(0);
    // The servers' steps do not read the workload; the sessions come from the recording.
    cfg.client_ops = Vec::new();
    Ok(cfg)
}

fn bits(ids: &std::collections::BTreeSet<c::NodeId>) -> Result<u8, String> {
    ids.iter()
        .try_fold(0u8, |b, &id| Ok(b | (1 << map::model_id(id)?)))
}

/// The model server a core state stands for.
pub fn model_server(core: &c::RaftCore, cfg: &Config) -> Result<Server, String> {
    let me = map::model_id(core.id())?;
    let mut s = Server::new(cfg);
    s.current_term = map::model_u8(core.current_term(), "term")?;
    s.voted_for = core.voted_for().map(map::model_id).transpose()?;
    s.snapshot = map::model_snapshot(core.snapshot())?;
    s.log = core
        .log()
        .entries()
        .iter()
        .map(map::model_entry)
        .collect::<Result<_, _>>()?;
    s.role = match core.role() {
        c::Role::Follower => m::Role::Follower,
        c::Role::PreCandidate => m::Role::PreCandidate,
        c::Role::Candidate => m::Role::Candidate,
        c::Role::Leader => m::Role::Leader,
    };
    s.leader_id = core.leader_id().map(map::model_id).transpose()?;
    s.commit_index = map::model_u8(core.commit_index(), "index")?;
    if matches!(s.role, m::Role::PreCandidate | m::Role::Candidate) {
        s.votes = bits(core.votes())?;
    }
    if s.role == m::Role::Leader {
        let n = cfg.servers as usize;
        s.next_index = vec![s.last_log_index() + 1; n];
        s.match_index = vec![0; n];
        if cfg.params.max_inflight_appends > 0 {
            s.inflight = vec![Vec::new(); n];
        }
        for (&p, pr) in core.progress() {
            let i = map::model_id(p)? as usize;
            s.next_index[i] = map::model_u8(pr.next_index, "index")?;
            s.match_index[i] = map::model_u8(pr.match_index, "index")?;
            if let Some(lasts) = s.inflight.get_mut(i) {
                for l in pr.inflight_lasts() {
                    lasts.push(map::model_u8(l, "index")?);
                }
            }
            if pr.stalled() {
                s.stalled |= 1 << i;
            }
        }
        let _ = me;
        s.recent_active = bits(core.recent_active())?;
    }
    for (k, v) in core.kv() {
        s.kv[map::model_key(k)? as usize] = Some(map::model_value(v)?);
    }
    let reads = core.read_state();
    let model_read = |q: &c::ReadRequest| -> Result<ReadRequest, String> {
        Ok(ReadRequest {
            client_id: map::model_client(q.client_id)?,
            seq: map::model_u8(q.read_id, "read id")?,
            key: map::model_key(&q.key)?,
        })
    };
    s.reads.round = map::model_u8(reads.round, "read round")?;
    for p in &reads.pending {
        s.reads.pending.push(PendingRead {
            request: model_read(&p.request)?,
            read_index: map::model_u8(p.read_index, "index")?,
            round: map::model_u8(p.round, "read round")?,
            acks: bits(&p.acks)?,
        });
    }
    for q in &reads.waiting {
        s.reads.waiting.push(model_read(q)?);
    }
    s.sessions.clear();
    for (&cl, sess) in core.sessions() {
        s.sessions.push(Session {
            client_id: map::model_client(cl)?,
            last_seq: map::model_u8(sess.last_seq, "seq")?,
            answer: map::model_answer(&sess.answer)?,
            last_index: map::model_u8(sess.last_index, "index")?,
        });
    }
    Ok(s)
}

fn storage_of(core: &c::RaftCore) -> Storage {
    Storage {
        hard_state: core.hard_state(),
        snapshot: core.snapshot().clone(),
        log: core.log().entries().to_vec(),
    }
}

/// Validate the records of one file. `Err` describes the first step the model does not allow
/// (or cannot express).
pub fn validate_records(records: &[Record]) -> Result<Report, String> {
    let mut report = Report::default();
    for step in recording::steps(records) {
        let step = match step? {
            Line::Start => {
                report.chains += 1;
                continue;
            }
            Line::Step(step) => step,
        };
        report.checkpoints += usize::from(step.checkpoint);
        let (line, node, input, messages, replies) = (
            step.line,
            step.node,
            step.input,
            step.messages,
            step.replies,
        );
        let (prev, after): (&c::RaftCore, &c::RaftCore) = (&step.before, &step.after);
        let fail = |what: String| format!("line {line} (node {node}, input {input:?}): {what}");
        // Recordings come from clusters that started as voters 1..=n (`raft-node` starts so).
        let initial = &prev.initial_membership().voters;
        let servers = map::model_u8(initial.len() as u64, "servers").map_err(fail)?;
        let cfg = model_params(prev.params(), servers).map_err(fail)?;
        let me = map::model_id(node).map_err(fail)?;
        let mut s = model_server(prev, &cfg).map_err(|e| fail(format!("state before: {e}")))?;
        let before_model = s.clone();
        let mut fx = Effects::default();
        let mut not_leader = false;
        match input {
            c::Input::Message(env) => {
                let src = map::model_id(env.from).map_err(fail)?;
                let msg = map::model_msg(&env.msg).map_err(fail)?;
                s.on_message(&cfg, me, src, &msg, &mut fx);
            }
            c::Input::ElectionTimeout => s.election_timeout(&cfg, me, &mut fx),
            c::Input::HeartbeatTimeout => s.heartbeat_timeout(&cfg, me, &mut fx),
            c::Input::Client(c::KvRequest::Command(req)) => {
                let cl = map::model_client(req.client_id).map_err(fail)?;
                let seq = map::model_u8(req.seq, "seq").map_err(fail)?;
                let op = map::model_op(&req.op).map_err(fail)?;
                not_leader = !s.client_request(&cfg, me, cl, seq, op, &mut fx);
            }
            c::Input::Client(c::KvRequest::Register { nonce }) => {
                let nonce = map::model_nonce(*nonce);
                not_leader = !s.register_request(&cfg, me, nonce, &mut fx);
            }
            c::Input::Compact => {
                // The core compacts nothing when nothing new was applied; the model's step is
                // not enabled then, and both states stay as they were.
                if s.commit_index > s.snapshot_index() {
                    s.compact();
                }
            }
            c::Input::Read(q) => {
                let req = ReadRequest {
                    client_id: map::model_client(q.client_id).map_err(fail)?,
                    seq: map::model_u8(q.read_id, "read id").map_err(fail)?,
                    key: map::model_key(&q.key).map_err(fail)?,
                };
                not_leader = !s.read_request(&cfg, me, req, &mut fx);
            }
            c::Input::Admin(op) => {
                let op = map::model_admin_op(*op).map_err(fail)?;
                s.admin_request(&cfg, me, op, &mut fx);
            }
        }
        let dropped = crate::cluster::dropped_reads(&before_model, &s);
        let want = View::of_model(&s, me, cfg.initial_membership());
        let got = View::of_core(after, &storage_of(after));
        if want != got {
            return Err(fail(format!(
                "state differs from the model's\n  model: {want:?}\n  node:  {got:?}"
            )));
        }
        // Compared in the model's vocabulary: a snapshot's sessions carry a node-only field.
        let want_msgs = &fx.out;
        let got_msgs: Vec<m::Envelope> = messages
            .iter()
            .map(map::model_envelope)
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        if *want_msgs != got_msgs {
            return Err(fail(format!(
                "messages differ\n  model: {want_msgs:?}\n  node:  {got_msgs:?}"
            )));
        }
        let mut want_replies: Vec<c::ClientReply> = (fx.responses.iter())
            .map(|r| map::client_reply(r, cfg.params.read_index))
            .collect();
        want_replies.extend(dropped);
        if not_leader {
            if let c::Input::Read(q) = input {
                want_replies.push(c::ClientReply::ReadNotLeader {
                    client_id: q.client_id,
                    read_id: q.read_id,
                    hint: prev.leader_id(),
                });
            }
            if let c::Input::Client(c::KvRequest::Command(req)) = input {
                want_replies.push(c::ClientReply::NotLeader {
                    client_id: req.client_id,
                    seq: req.seq,
                    hint: prev.leader_id(),
                });
            }
            if let c::Input::Client(c::KvRequest::Register { nonce }) = input {
                want_replies.push(c::ClientReply::NotLeader {
                    client_id: c::NO_SESSION,
                    seq: *nonce,
                    hint: prev.leader_id(),
                });
            }
        }
        let got_replies: Vec<c::ClientReply> = replies
            .iter()
            .map(|r| match *r {
                // Compared in the model's vocabulary (see `map::model_nonce`).
                c::ClientReply::Registered { nonce, client_id } => c::ClientReply::Registered {
                    nonce: map::model_nonce(nonce) as u64,
                    client_id,
                },
                ref other => other.clone(),
            })
            .collect();
        if want_replies != got_replies {
            return Err(fail(format!(
                "client answers differ\n  model: {want_replies:?}\n  node:  {got_replies:?}"
            )));
        }
        report.steps_checked += 1;
    }
    Ok(report)
}

/// Read and validate one recording.
pub fn validate_file(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| {
            serde_json::from_str::<Record>(l)
                .map_err(|e| format!("{}: line {}: {e}", path.display(), k + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    validate_records(&records).map_err(|e| format!("{}: {e}", path.display()))
}
