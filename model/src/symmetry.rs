//! Symmetry reduction over server ids: every state is replaced by the canonical member of its
//! class, the states that differ only by a renaming of server ids (every id inside the state
//! renamed alike: votes, hints, messages, per-peer indexes, the election ghost). Client state
//! holds no server id. Every rule of the model treats ids alike, so states of one class have
//! the same behaviours up to the renaming, and the properties name no particular server: one
//! member per class is enough.

use crate::server::Server;
use crate::state::State;
use crate::types::{Envelope, Id, Msg};
use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};

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

/// Fixed seeds: a server's profile must hash alike in every state and every run.
fn hasher() -> ahash::AHasher {
    ahash::RandomState::with_seeds(0x5e41, 0x5e42, 0x5e43, 0x5e44).build_hasher()
}

/// Who an id names, seen from server `i`: no one, itself, or another server (whose profile
/// the second round adds).
fn whom(id: Option<Id>, i: usize) -> u8 {
    match id {
        None => 0,
        Some(id) if id as usize == i => 1,
        Some(_) => 2,
    }
}

/// The first-round profile of server `i`: a hash of everything about it that a renaming of ids
/// cannot change.
fn own_profile(state: &State, i: usize) -> u64 {
    let s = &state.servers[i];
    let mut h = hasher();
    (s.current_term, s.role, s.commit_index, &s.snapshot, &s.log).hash(&mut h);
    (s.kv, &s.sessions, &s.applied).hash(&mut h);
    let acks = |m: u8| (m.count_ones(), m & (1 << i) != 0);
    (s.reads.round, &s.reads.waiting).hash(&mut h);
    for r in &s.reads.pending {
        (r.request, r.read_index, r.round, acks(r.acks)).hash(&mut h);
    }
    (whom(s.voted_for, i), whom(s.leader_id, i)).hash(&mut h);
    let mask = |m: u8| (m.count_ones(), m & (1 << i) != 0);
    (mask(s.votes), mask(s.recent_active)).hash(&mut h);
    if !s.next_index.is_empty() {
        (s.next_index[i], s.match_index[i]).hash(&mut h);
        let mut peers: [u64; 8] = [0; 8];
        let mut k = 0;
        for p in (0..s.next_index.len()).filter(|&p| p != i) {
            peers[k] = progress_profile(s, p);
            k += 1;
        }
        peers[..k].sort_unstable();
        peers[..k].hash(&mut h);
    }
    h.finish()
}

/// The leader `s`'s view of peer `p`, id-free: `next_index`, `match_index`, and the pipeline.
fn progress_profile(s: &Server, p: usize) -> u64 {
    let inflight = s.inflight.get(p).map_or(&[][..], Vec::as_slice);
    let stalled = s.stalled & (1 << p) != 0;
    mix(&(s.next_index[p], s.match_index[p], inflight, stalled))
}

/// A message's hash without its ids: the candidate or leader it names is hashed only as
/// "its sender" or not.
fn message_profile(e: &Envelope) -> u64 {
    let mut h = hasher();
    match &e.msg {
        Msg::RequestVote {
            term,
            candidate,
            last_log_index,
            last_log_term,
            pre_vote,
        } => (
            0u8,
            term,
            *candidate == e.src,
            last_log_index,
            last_log_term,
            pre_vote,
        )
            .hash(&mut h),
        Msg::RequestVoteResponse {
            term,
            granted,
            pre_vote,
        } => (1u8, term, granted, pre_vote).hash(&mut h),
        Msg::AppendEntries {
            term,
            leader,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => (
            2u8,
            term,
            *leader == e.src,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        )
            .hash(&mut h),
        Msg::AppendEntriesResponse {
            term,
            success,
            last_index,
        } => (3u8, term, success, last_index).hash(&mut h),
        Msg::InstallSnapshot {
            term,
            leader,
            snapshot,
        } => (4u8, term, *leader == e.src, snapshot).hash(&mut h),
        Msg::ReadIndex {
            term,
            leader,
            round,
        } => (5u8, term, *leader == e.src, round).hash(&mut h),
        Msg::ReadIndexResponse { term, round, ok } => (6u8, term, round, ok).hash(&mut h),
        Msg::TimeoutNow { term, leader } => (7u8, term, *leader == e.src).hash(&mut h),
    }
    h.finish()
}

/// Each server's profile: its own (`own_profile`), refined by the profiles of the servers its
/// ids name and by the messages it sends and receives, each with the other end's profile.
/// Renaming ids permutes the profiles and changes none, so sorting servers by profile is an
/// order that depends on the class alone, up to ties.
fn profiles(state: &State) -> Vec<u64> {
    let n = state.servers.len();
    let own: Vec<u64> = (0..n).map(|i| own_profile(state, i)).collect();
    let peer = |id: Option<Id>| id.map_or(0, |id| own[id as usize]);
    let msgs: Vec<u64> = state.network.iter().map(message_profile).collect();
    (0..n)
        .map(|i| {
            let s = &state.servers[i];
            let mut h = hasher();
            (own[i], peer(s.voted_for), peer(s.leader_id)).hash(&mut h);
            let mut sets = [0u64; 2];
            for (set, mask) in sets.iter_mut().zip([s.votes, s.recent_active]) {
                *set = (0..n)
                    .filter(|&p| mask & (1 << p) != 0)
                    .map(|p| mix(&own[p]))
                    .fold(0, u64::wrapping_add);
            }
            sets.hash(&mut h);
            if !s.next_index.is_empty() {
                let progress = (0..n)
                    .filter(|&p| p != i)
                    .map(|p| mix(&(own[p], progress_profile(s, p))))
                    .fold(0, u64::wrapping_add);
                progress.hash(&mut h);
            }
            // Order-free sums: a multiset of (direction, message, other end) needs no sort.
            let traffic = (state.network.iter().zip(&msgs))
                .filter(|(e, _)| e.src as usize == i || e.dst as usize == i)
                .map(|(e, &m)| {
                    let out = e.src as usize == i;
                    let other = if out { e.dst } else { e.src } as usize;
                    mix(&(out, m, own[other], e.src == e.dst))
                })
                .fold(0, u64::wrapping_add);
            traffic.hash(&mut h);
            h.finish()
        })
        .collect()
}

fn mix(x: &impl Hash) -> u64 {
    let mut h = hasher();
    x.hash(&mut h);
    h.finish()
}

/// The canonical representative of `state`'s class under renamings of server ids: every state
/// of a class has the same one, so the checker counts each class once and its counts do not
/// depend on search order. Servers are sorted by their profile (`profiles`), which no renaming
/// changes; when profiles tie, every order of the tied servers is tried and the least
/// resulting state (by servers, then messages, then the election ghost) is taken. Each
/// candidate order is a function of the class alone, so the least of them is too.
///
/// The state itself is returned, borrowed, when it is already its representative with no tie
/// to try (the checker hashes the representative and drops it, so clones were a third of its
/// time).
pub fn representative(state: &State) -> Cow<'_, State> {
    let n = state.servers.len();
    let profiles = profiles(state);
    let mut from: Vec<usize> = (0..n).collect();
    from.sort_by_key(|&i| profiles[i]);
    let tied = tie_groups(&from, &profiles);
    if tied.is_empty() {
        if from.iter().enumerate().all(|(i, &o)| i == o) {
            return Cow::Borrowed(state);
        }
        return Cow::Owned(renamed(state, &from));
    }
    let mut best: Option<State> = None;
    each_order(&mut from, &tied, 0, &mut |order| {
        let candidate = renamed(state, order);
        let better = best.as_ref().is_none_or(|b| {
            (&candidate.servers, &candidate.network, &candidate.elected)
                < (&b.servers, &b.network, &b.elected)
        });
        if better {
            best = Some(candidate);
        }
    });
    Cow::Owned(best.expect("at least one order"))
}

/// The ranges of `from` whose servers have equal profiles (only ranges of two or more).
fn tie_groups(from: &[usize], profiles: &[u64]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for end in 1..=from.len() {
        if end == from.len() || profiles[from[end]] != profiles[from[start]] {
            if end - start > 1 {
                groups.push(start..end);
            }
            start = end;
        }
    }
    groups
}

/// Calls `f` with every order of `from` that permutes servers only within the tied ranges.
fn each_order(
    from: &mut [usize],
    tied: &[std::ops::Range<usize>],
    group: usize,
    f: &mut impl FnMut(&[usize]),
) {
    let Some(range) = tied.get(group) else {
        f(from);
        return;
    };
    permute_range(from, range.start, range.end, &mut |from| {
        each_order(from, tied, group + 1, f)
    });
}

/// Heap's-style recursion over the permutations of `from[at..end]`.
fn permute_range(from: &mut [usize], at: usize, end: usize, f: &mut impl FnMut(&mut [usize])) {
    if at + 1 >= end {
        f(from);
        return;
    }
    for i in at..end {
        from.swap(at, i);
        permute_range(from, at + 1, end, f);
        from.swap(at, i);
    }
}

/// `state` with its servers renamed so that new server `i` is old server `from[i]`, every id
/// inside the state renamed to match.
pub fn renamed(state: &State, from: &[usize]) -> State {
    let n = state.servers.len();
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
            for r in &mut s.reads.pending {
                r.acks = remap_mask(r.acks, &to);
            }
            if !s.next_index.is_empty() {
                s.next_index = permute(&s.next_index, from);
                s.match_index = permute(&s.match_index, from);
            }
            if !s.inflight.is_empty() {
                s.inflight = from.iter().map(|&old| s.inflight[old].clone()).collect();
            }
            s.stalled = remap_mask(s.stalled, &to);
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
                Msg::AppendEntries { leader, .. }
                | Msg::InstallSnapshot { leader, .. }
                | Msg::ReadIndex { leader, .. }
                | Msg::TimeoutNow { leader, .. } => *leader = id(*leader),
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
        admin_done,
        elected,
        committed,
        committed_by,
        broken,
        events,
    } = state;
    State {
        servers,
        network,
        responses: responses.clone(),
        clients: clients.clone(),
        history: history.clone(),
        restarts: *restarts,
        admin_done: *admin_done,
        elected: elected.iter().map(|&m| remap_mask(m, &to)).collect(),
        committed: committed.clone(),
        committed_by: committed_by.iter().map(|&m| remap_mask(m, &to)).collect(),
        broken: *broken,
        events: *events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, RaftModel};
    use stateright::Model;

    fn orders(n: usize) -> Vec<Vec<usize>> {
        let mut from: Vec<usize> = (0..n).collect();
        let mut all = Vec::new();
        permute_range(&mut from, 0, n, &mut |o| all.push(o.to_vec()));
        all
    }

    /// States from seeded random walks, deep enough to hold leaders, messages and client data.
    fn walked_states(cfg: Config, seed: u64, walks: usize) -> Vec<State> {
        let model = RaftModel::new(cfg);
        let mut rng = seed;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut states = Vec::new();
        for _ in 0..walks {
            let mut state = model.init_states().remove(0);
            for _ in 0..60 {
                let mut actions = Vec::new();
                model.actions(&state, &mut actions);
                let successors: Vec<State> = actions
                    .into_iter()
                    .filter_map(|a| model.next_state(&state, a))
                    .filter(|s| model.within_boundary(s))
                    .collect();
                if successors.is_empty() {
                    break;
                }
                state = successors[next(successors.len())].clone();
                states.push(state.clone());
            }
        }
        states
    }

    fn assert_canonical(cfg: Config, seed: u64) {
        let n = cfg.servers as usize;
        let states = walked_states(cfg, seed, 40);
        assert!(states.len() > 500, "seed {seed}: walks too short");
        assert_canonical_states(&states, n, seed);
    }

    fn assert_canonical_states(states: &[State], n: usize, seed: u64) {
        for state in states {
            let rep = representative(state).into_owned();
            // The representative is a member of the class...
            assert!(
                orders(n).iter().any(|o| renamed(state, o) == rep),
                "seed {seed}: representative outside its class for\n{state:?}"
            );
            // ...and every member of the class has the same one.
            for o in orders(n) {
                let other = renamed(state, &o);
                assert!(
                    representative(&other).into_owned() == rep,
                    "seed {seed}: order {o:?} of\n{state:?}\nhas another representative"
                );
            }
        }
    }

    #[test]
    fn every_renaming_of_a_state_has_the_same_representative() {
        assert_canonical(Config::default(), 0x5eed);
    }

    #[test]
    fn reads_under_way_are_renamed_with_their_servers() {
        // The node's parameters, and in every state with a leader a read that one other
        // server confirmed and a confirmation request in flight to a third: a random walk
        // rarely holds one (a majority of three serves a read at its first answer).
        use crate::server::{bit, PendingRead, ReadRequest};
        use crate::types::{Msg, Role};
        let seed = 0x4ead;
        let cfg = Config::runtime();
        let n = cfg.servers;
        let mut states = walked_states(cfg, seed, 400);
        states.retain_mut(|state| {
            let Some(l) = (0..n).find(|&i| state.servers[i as usize].role == Role::Leader) else {
                return false;
            };
            let leader = &mut state.servers[l as usize];
            leader.reads.round += 1;
            leader.reads.pending.push(PendingRead {
                request: ReadRequest {
                    client_id: crate::types::PRE_REGISTERED,
                    seq: 1,
                    key: 0,
                },
                read_index: leader.commit_index,
                round: leader.reads.round,
                acks: bit(l) | bit((l + 1) % n),
            });
            let msg = Msg::ReadIndex {
                term: leader.current_term,
                leader: l,
                round: leader.reads.round,
            };
            crate::state::insert_in_flight(
                &mut state.network,
                Envelope {
                    src: l,
                    dst: (l + 2) % n,
                    msg,
                },
            );
            true
        });
        assert!(
            states.len() > 100,
            "seed {seed}: {} states with a leader",
            states.len()
        );
        assert_canonical_states(&states, n as usize, seed);
    }

    #[test]
    fn ties_of_four_servers_are_ordered_canonically() {
        let cfg = Config {
            servers: 4,
            max_in_flight: 6,
            ..Config::default()
        };
        assert_canonical(cfg, 0xfeed);
    }
}
