//! Symmetry reduction over server ids: every state is replaced by a representative in which
//! the servers are sorted, with every id inside the state renamed to match (votes, hints,
//! messages, per-peer indexes, the election ghost). Client state holds no server id.

use crate::state::State;
use crate::types::{Envelope, Id, Msg};
use std::borrow::Cow;

fn remap_mask(mask: u8, to: &[Id]) -> u8 {
    to.iter()
        .enumerate()
        .filter(|&(old, _)| mask & (1 << old) != 0)
        .fold(0, |m, (_, &new)| m | (1 << new))
}

/// `to[old] = new`. Per-peer vectors are reordered so that `v[new] = old_v[old]`.
fn permute<T: Copy>(v: &[T], from: &[usize]) -> Vec<T> {
    from.iter().map(|&old| v[old]).collect()
}

/// The representative of `state`'s class: the state itself, borrowed, when its servers are
/// already in order, and otherwise a new state built with one clone of each part (the checker
/// hashes it and drops it at once, so clones were a third of its time).
pub fn representative(state: &State) -> Cow<'_, State> {
    let n = state.servers.len();
    let mut from: Vec<usize> = (0..n).collect();
    from.sort_by(|&a, &b| state.servers[a].cmp(&state.servers[b]));
    if from.iter().enumerate().all(|(i, &o)| i == o) {
        return Cow::Borrowed(state);
    }
    let mut to = vec![0 as Id; n];
    for (new, &old) in from.iter().enumerate() {
        to[old] = new as Id;
    }
    let id = |i: Id| to[i as usize];
    let servers = from
        .iter()
        .map(|&old| {
            let mut s = state.servers[old].clone();
            s.voted_for = s.voted_for.map(id);
            s.leader_id = s.leader_id.map(id);
            s.votes = remap_mask(s.votes, &to);
            s.recent_active = remap_mask(s.recent_active, &to);
            if !s.next_index.is_empty() {
                s.next_index = permute(&s.next_index, &from);
                s.match_index = permute(&s.match_index, &from);
            }
            s
        })
        .collect();
    let mut network: Vec<Envelope> = state
        .network
        .iter()
        .map(|e| {
            let mut msg = e.msg.clone();
            match &mut msg {
                Msg::RequestVote { candidate, .. } => *candidate = id(*candidate),
                Msg::AppendEntries { leader, .. } | Msg::InstallSnapshot { leader, .. } => {
                    *leader = id(*leader)
                }
                _ => {}
            }
            Envelope {
                src: id(e.src),
                dst: id(e.dst),
                msg,
            }
        })
        .collect();
    network.sort();
    // Every field named: a field added to `State` must be thought about here.
    let State {
        servers: _,
        network: _,
        responses,
        clients,
        history,
        restarts,
        elected,
        committed,
        broken,
        events,
    } = state;
    Cow::Owned(State {
        servers,
        network,
        responses: responses.clone(),
        clients: clients.clone(),
        history: history.clone(),
        restarts: *restarts,
        elected: elected.iter().map(|&m| remap_mask(m, &to)).collect(),
        committed: committed.clone(),
        broken: *broken,
        events: *events,
    })
}
