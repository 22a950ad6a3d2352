//! The stateright `Model`: which steps are possible in a state, and what each step does.

use crate::config::{Config, Network};
use crate::server::{bit, event, AdminOutcome, Effects, ReadRequest, Server};
use crate::state::{broken, insert_in_flight, State};
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::semantics::ConsistencyTester;
use std::fmt;

/// One step of the system. Every step is taken by one server or one client.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// A message reaches its destination.
    Deliver(Envelope),
    /// The network loses a message (only with `Config::drops`).
    Drop(Envelope),
    ElectionTimeout(Id),
    HeartbeatTimeout(Id),
    /// The server crashes and comes back with its durable state only.
    Restart(Id),
    /// The server compacts its committed log into a snapshot (only with `Config::snapshots`).
    Compact(Id),
    /// A client sends (or re-sends) its operation in hand to a server.
    ClientRequest {
        client_id: ClientId,
        server: Id,
    },
    /// A leader's answer reaches its client.
    DeliverResponse(ClientResponse),
    /// The network loses a leader's answer (only with `Config::drops`).
    DropResponse(ClientResponse),
    /// The operator sends its administrative operation in hand (`Config::admin_ops`) to a
    /// server.
    Admin {
        server: Id,
    },
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Action::Deliver(e) => write!(f, "Deliver {e:?}"),
            Action::Drop(e) => write!(f, "Drop {e:?}"),
            Action::ElectionTimeout(i) => write!(f, "ElectionTimeout s{i}"),
            Action::HeartbeatTimeout(i) => write!(f, "HeartbeatTimeout s{i}"),
            Action::Restart(i) => write!(f, "Restart s{i}"),
            Action::Compact(i) => write!(f, "Compact s{i}"),
            Action::ClientRequest { client_id, server } => {
                write!(f, "ClientRequest c{client_id}→s{server}")
            }
            Action::DeliverResponse(r) => write!(f, "DeliverResponse {r:?}"),
            Action::DropResponse(r) => write!(f, "DropResponse {r:?}"),
            Action::Admin { server } => write!(f, "Admin→s{server}"),
        }
    }
}

/// What the server that took a step sent, before the network absorbed or collected anything:
/// conformance compares it with what the node core emits for the same input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The server that took the step (None for a client-only step).
    pub server: Option<Id>,
    pub sent: Vec<Envelope>,
    pub answered: Vec<ClientResponse>,
    /// The step was a client request that landed on a server that was not the leader.
    pub not_leader: bool,
    /// The step was a client read taken by a leader for ReadIndex.
    pub read: bool,
    /// The step was the operator's, and its leader took it so (`Accepted` or `Invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminOutcome>,
}

/// What the transition checks need of a server as it was before its step. Only a leader's log
/// is kept: the checks that read the old log concern leaders, and cloning every server's
/// state on every step was a measurable share of the checker's time.
struct Before {
    role: Role,
    current_term: Term,
    commit_index: Index,
    /// The entries after `snapshot_index`.
    leader_log: Vec<Entry>,
    /// A leader's `match_index`.
    match_index: Vec<Index>,
    /// A leader's members then (voters and learners); read only for a leader's
    /// `match_index` check, and scanning the log for it at every step would cost the checker.
    members: u8,
    snapshot_index: Index,
}

impl Before {
    fn of(s: &Server, cfg: &Config) -> Self {
        Before {
            members: if s.role == Role::Leader {
                s.membership(cfg).members()
            } else {
                0
            },
            role: s.role,
            current_term: s.current_term,
            commit_index: s.commit_index,
            snapshot_index: s.snapshot_index(),
            leader_log: if s.role == Role::Leader {
                s.log.clone()
            } else {
                Vec::new()
            },
            match_index: s.match_index.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RaftModel {
    pub cfg: Config,
    /// Serving stateright's explorer: steps out of the bounds are refused (see `next_state`).
    pub explorer: bool,
}

impl RaftModel {
    pub fn new(cfg: Config) -> Self {
        RaftModel {
            cfg,
            explorer: false,
        }
    }

    /// The model the explorer serves: the same steps, but a step that leaves the bounds is
    /// not enabled, since the explorer lists successors without asking `within_boundary`
    /// and would show states no check visits.
    pub fn for_explorer(cfg: Config) -> Self {
        RaftModel {
            cfg,
            explorer: true,
        }
    }

    /// The operation client `c` has in hand, if any (its session must be open).
    pub fn op_in_hand(&self, state: &State, c: ClientId) -> Option<Op> {
        let client = state.clients[c as usize];
        if client.expired || client.session == 0 {
            return None;
        }
        self.cfg.client_ops[c as usize]
            .get(client.done as usize)
            .copied()
    }

    /// True when client `c` still has to register.
    pub fn must_register(&self, state: &State, c: ClientId) -> bool {
        let client = state.clients[c as usize];
        client.session == 0 && !client.expired
    }

    /// The client whose session is `client_id`.
    pub fn client_of(state: &State, client_id: ClientId) -> Option<usize> {
        client_of(&state.clients, client_id)
    }

    /// Runs one server's step and folds what it produced into the state: messages into the
    /// network, answers to clients, and the ghost records.
    fn step_server(
        &self,
        state: &mut State,
        record: &mut StepRecord,
        id: Id,
        f: impl FnOnce(&mut Server, &mut Effects),
    ) -> Effects {
        let before = Before::of(&state.servers[id as usize], &self.cfg);
        let mut fx = Effects::default();
        f(&mut state.servers[id as usize], &mut fx);
        record.server = Some(id);
        record.sent.extend(fx.out.iter().cloned());
        if self.has_room(&state.network, &fx.out) {
            for e in fx.out.drain(..) {
                insert_in_flight(&mut state.network, e);
            }
        }
        for r in fx.responses.drain(..) {
            record.answered.push(r);
            insert_in_flight(&mut state.responses, r);
        }
        self.record_ghosts(state, id, &before, &mut fx);
        state.events |= fx.events;
        fx
    }

    fn record_ghosts(&self, state: &mut State, id: Id, before: &Before, fx: &mut Effects) {
        let after = &state.servers[id as usize];
        if after.current_term < before.current_term {
            state.broken |= broken::TERM_MONOTONIC;
        }
        if before.role == Role::Leader
            && after.role == Role::Leader
            && after.current_term == before.current_term
            && !(before.snapshot_index..=before.snapshot_index + before.leader_log.len() as Index)
                .skip(1)
                .zip(&before.leader_log)
                .all(|(i, e)| i <= after.snapshot_index() || after.entry(i) == Some(e))
        {
            state.broken |= broken::LEADER_APPEND_ONLY;
        }
        // Every step, not only the one that elects: a server that is leader of a term it was
        // never elected in is as much a violation as a second election.
        if after.role == Role::Leader {
            // (A term past `max_term`, reached by a `TimeoutNow`, leaves the bounds: the
            // state is dropped, and there is no slot for it.)
            if let Some(elected) = state.elected.get_mut(after.current_term as usize) {
                *elected |= bit(id);
            }
        }
        if after.commit_index < before.commit_index {
            state.broken |= broken::COMMIT_MONOTONIC;
        }
        // (A server removed and added again is a new member: nothing is known of its log.)
        let stayed = before.members & after.membership(&self.cfg).members();
        if before.role == Role::Leader
            && after.role == Role::Leader
            && after.current_term == before.current_term
            && (after
                .match_index
                .iter()
                .zip(&before.match_index)
                .enumerate())
            .any(|(p, (a, b))| stayed & bit(p as Id) != 0 && a < b)
        {
            state.broken |= broken::MATCH_MONOTONIC;
        }
        // F3: a leader commits an entry of an earlier term that no server had committed (its
        // leader crashed or was cut off mid-replication) while the client is already retrying.
        if after.role == Role::Leader {
            let carried = (state.committed.len().max(before.commit_index as usize)
                ..after.commit_index as usize)
                .filter_map(|i| after.entry(i as Index + 1))
                .any(|&e| {
                    matches!(e.command, Command::Client { client_id, .. }
                        if e.term < after.current_term
                            && Self::client_of(state, client_id)
                                .is_some_and(|c| state.clients[c].attempts >= 2))
                });
            if carried {
                fx.events |= event::F3;
            }
        }
        // F5: a leader commits, in its own term, an entry some server committed in an earlier one.
        if after.role == Role::Leader && after.commit_index > before.commit_index {
            let known_earlier = (before.commit_index..after.commit_index).any(|i| {
                state.committed.get(i as usize).is_some_and(|&(e, t)| {
                    t < after.current_term && matches!(e.command, Command::Client { .. })
                })
            });
            if known_earlier {
                fx.events |= event::F5;
            }
        }
        // F6: a leader that appended in its term but could not commit learns of a higher term,
        // in which the majority side has committed.
        if before.role == Role::Leader && after.current_term > before.current_term {
            let stranded = before.leader_log
                [(before.commit_index - before.snapshot_index) as usize..]
                .iter()
                .any(|e| {
                    e.term == before.current_term && matches!(e.command, Command::Client { .. })
                });
            let newer_commit = state
                .committed
                .iter()
                .any(|&(_, t)| t > before.current_term);
            if stranded && newer_commit {
                fx.events |= event::F6;
            }
        }
        // An index committed through an installed snapshot was committed (and recorded here)
        // by the leader that made the snapshot.
        let voters = after.membership(&self.cfg).voters;
        for i in state.committed.len()..after.commit_index as usize {
            match after.entry(i as Index + 1) {
                Some(&e) => {
                    state.committed.push((e, after.current_term));
                    state.committed_by.push(voters);
                }
                None => break,
            }
        }
    }

    /// F4: a retry is answered from a new leader's session table, and the command was
    /// committed by an earlier leader in its own term (that leader answered nobody: the client
    /// is still retrying).
    fn mark_f4(state: &mut State, leader: Id, client_id: ClientId, seq: Seq) {
        let term = state.servers[leader as usize].current_term;
        let committed_by_old_leader = state.committed.iter().any(|&(e, t)| {
            t == e.term
                && t < term
                && matches!(e.command, Command::Client { client_id: c, seq: s, .. }
                    if c == client_id && s == seq)
        });
        if committed_by_old_leader {
            state.events |= event::F4;
        }
    }

    fn deliver(&self, state: &mut State, record: &mut StepRecord, env: &Envelope) {
        let cfg = &self.cfg;
        let before = &state.servers[env.dst as usize];
        let (role_before, term_before) = (before.role, before.current_term);
        let fx = self.step_server(state, record, env.dst, |s, fx| {
            s.on_message(cfg, env.dst, env.src, &env.msg, fx)
        });
        // The term rule: a message of a higher term makes its receiver adopt that term (a
        // pre-vote and a granted pre-vote answer carry a term nobody has entered yet).
        let future = matches!(
            env.msg,
            Msg::RequestVote { pre_vote: true, .. }
                | Msg::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                    ..
                }
        );
        let after = &state.servers[env.dst as usize];
        if !future && after.current_term < env.msg.term() {
            state.broken |= broken::TERM_RULE;
        }
        let response = matches!(
            env.msg,
            Msg::RequestVoteResponse { .. } | Msg::AppendEntriesResponse { .. }
        );
        if response
            && matches!(role_before, Role::Leader | Role::Candidate)
            && after.role == Role::Follower
            && after.current_term > term_before
        {
            state.events |= event::STEP_DOWN_ON_RESPONSE;
        }
        // F2: the entry a failed leader kept for itself is overwritten by a newer leader that
        // holds the client's retry of the same command.
        if let Msg::AppendEntries { leader, .. } = env.msg {
            let leader_log = &state.servers[leader as usize].log;
            let retried = fx.removed.iter().any(|gone| {
                matches!(gone.command, Command::Client { .. })
                    && leader_log
                        .iter()
                        .any(|e| e.command == gone.command && e.term > gone.term)
            });
            if retried {
                state.events |= event::F2;
            }
        }
    }
}

impl RaftModel {
    /// Takes one step and says what the acting server sent (`None`: the step is not enabled).
    pub fn step(&self, last: &State, action: &Action) -> Option<(State, StepRecord)> {
        let cfg = &self.cfg;
        let mut state = last.clone();
        let mut record = StepRecord::default();
        state.events = 0;
        match action.clone() {
            Action::Deliver(env) => {
                if cfg.network == Network::Unordered {
                    let at = state.network.binary_search(&env).ok()?;
                    state.network.remove(at);
                }
                self.deliver(&mut state, &mut record, &env);
            }
            Action::Drop(env) => {
                let at = state.network.binary_search(&env).ok()?;
                state.network.remove(at);
            }
            Action::ElectionTimeout(id) => {
                self.step_server(&mut state, &mut record, id, |s, fx| {
                    s.election_timeout(cfg, id, fx)
                });
            }
            Action::HeartbeatTimeout(id) => {
                self.step_server(&mut state, &mut record, id, |s, fx| {
                    s.heartbeat_timeout(cfg, id, fx)
                });
            }
            Action::Restart(id) => {
                state.restarts += 1;
                record.server = Some(id);
                let restarted = state.servers[id as usize].restart(cfg);
                if restarted.snapshot_index() > 0 {
                    state.events |= event::RESTORED_FROM_SNAPSHOT;
                }
                state.servers[id as usize] = restarted;
            }
            Action::Compact(id) => {
                let s = &state.servers[id as usize];
                if !cfg.snapshots || s.commit_index <= s.snapshot_index() {
                    return None;
                }
                record.server = Some(id);
                state.servers[id as usize].compact();
            }
            Action::ClientRequest { client_id, server } => {
                let client = state.clients[client_id as usize];
                let mut at_leader = true;
                if self.must_register(&state, client_id) {
                    self.step_server(&mut state, &mut record, server, |s, fx| {
                        at_leader = s.register_request(cfg, server, client_id, fx);
                    });
                } else {
                    let op = self.op_in_hand(&state, client_id)?;
                    if client.attempts == 0 {
                        std::sync::Arc::make_mut(&mut state.history)
                            .on_invoke(client_id, op)
                            .ok()?;
                    }
                    let (session, seq) = (client.session, client.done + 1);
                    let mut read = false;
                    let fx = self.step_server(&mut state, &mut record, server, |s, fx| {
                        at_leader = match op {
                            Op::Get { key } if cfg.params.read_index => {
                                let req = ReadRequest {
                                    client_id: session,
                                    seq,
                                    key,
                                };
                                read = s.read_request(cfg, server, req, fx);
                                read
                            }
                            _ => s.client_request(cfg, server, session, seq, op, fx),
                        };
                    });
                    record.read = read;
                    if fx.events & event::DEDUP_ANSWER != 0 && client.attempts > 0 {
                        Self::mark_f4(&mut state, server, session, seq);
                    }
                }
                record.not_leader = !at_leader;
                let client = &mut state.clients[client_id as usize];
                client.missed |= !at_leader && client.attempts == 0;
                client.attempts += 1;
            }
            Action::DeliverResponse(r) => {
                let at = state.responses.binary_search(&r).ok()?;
                state.responses.remove(at);
                self.deliver_response(&mut state, r)?;
            }
            Action::DropResponse(r) => {
                let at = state.responses.binary_search(&r).ok()?;
                state.responses.remove(at);
            }
            Action::Admin { server } => {
                let op = *cfg.admin_ops.get(state.admin_done as usize)?;
                let mut outcome = AdminOutcome::NotLeader;
                self.step_server(&mut state, &mut record, server, |s, fx| {
                    outcome = s.admin_request(cfg, server, op, fx);
                });
                record.admin = Some(outcome);
                match outcome {
                    AdminOutcome::Accepted | AdminOutcome::Invalid => state.admin_done += 1,
                    // Nothing changed: the operator tries again (another step).
                    AdminOutcome::NotLeader | AdminOutcome::Busy => return None,
                }
            }
        }
        if cfg.collect_dead_answers {
            Self::collect_dead_answers(&mut state);
        }
        Some((state, record))
    }

    /// A client takes an answer meant for what it has in hand and ignores any other.
    fn deliver_response(&self, state: &mut State, r: ClientResponse) -> Option<()> {
        if r.seq == 0 {
            let c = r.client_id;
            if let Answer::Registered(id) = r.answer {
                if self.must_register(state, c) && state.clients[c as usize].attempts > 0 {
                    state.clients[c as usize] = crate::state::Client {
                        session: id,
                        ..Default::default()
                    };
                }
            }
            return Some(());
        }
        let Some(c) = Self::client_of(state, r.client_id) else {
            return Some(());
        };
        let client = state.clients[c];
        if client.attempts == 0 || client.expired || r.seq != client.done + 1 {
            return Some(());
        }
        if r.answer == Answer::SessionExpired {
            // The outcome is unknown: the operation stays pending in the history for ever
            // (it may or may not have taken effect), and the client stops.
            state.clients[c].expired = true;
            return Some(());
        }
        std::sync::Arc::make_mut(&mut state.history)
            .on_return(c as ClientId, r.answer)
            .ok()?;
        if client.missed {
            state.events |= event::F1;
        }
        state.clients[c] = crate::state::Client {
            done: client.done + 1,
            session: client.session,
            ..Default::default()
        };
        Some(())
    }

    /// The in-flight bounds: what a step sends enters the network only if all of it fits;
    /// otherwise all of it is lost at once (a behaviour the lossy network has anyway), and the
    /// step itself is still taken and its state checked. All or nothing, because keeping some
    /// of a broadcast would have to pick by server id, and the symmetry reduction needs every
    /// rule to treat ids alike. A message already in flight is absorbed and takes no room.
    fn has_room(&self, network: &[Envelope], sent: &[Envelope]) -> bool {
        let cfg = &self.cfg;
        let new: Vec<&Envelope> = (sent.iter())
            .filter(|e| network.binary_search(e).is_err())
            .collect();
        let fits_total =
            cfg.max_in_flight == 0 || network.len() + new.len() <= cfg.max_in_flight as usize;
        let fits_inbox = cfg.max_inbox == 0
            || new.iter().all(|e| {
                network.iter().filter(|m| m.dst == e.dst).count()
                    + new.iter().filter(|m| m.dst == e.dst).count()
                    <= cfg.max_inbox as usize
            });
        fits_total && fits_inbox
    }

    /// Removes client answers no client can take: a registration answer once its client has
    /// a session, an answer to a `seq` its client has finished or given up. Delivering such an
    /// answer changes nothing but the set of answers in flight (`deliver_response` ignores
    /// it), and dropping it the same: a state with the dead answer and the one without have
    /// the same successors up to that answer, so removing it loses no behaviour. Server
    /// messages are never collected: a stale or higher-term response is a behaviour a server
    /// must handle, and a bug in handling one is what this model is for.
    /// `tests/check.rs` compares verdicts with and without this reduction.
    fn collect_dead_answers(state: &mut State) {
        let clients = &state.clients;
        state.responses.retain(|r| {
            if r.seq == 0 {
                return clients[r.client_id as usize].session == 0;
            }
            client_of(clients, r.client_id)
                .is_some_and(|c| !clients[c].expired && r.seq > clients[c].done)
        });
    }
}

/// The client whose session is `client_id`.
fn client_of(clients: &[crate::state::Client], client_id: ClientId) -> Option<usize> {
    clients
        .iter()
        .position(|c| c.session == client_id && client_id != 0)
}

/// What stateright's `Model` asks of the steps (`stateright_model.rs` is the `impl`).
impl RaftModel {
    /// The actions enabled in `state`.
    pub fn enabled_actions(&self, state: &State, actions: &mut Vec<Action>) {
        let cfg = &self.cfg;
        for env in &state.network {
            actions.push(Action::Deliver(env.clone()));
            if cfg.drops {
                actions.push(Action::Drop(env.clone()));
            }
        }
        for id in 0..cfg.servers {
            let s = &state.servers[id as usize];
            match s.role {
                Role::Leader => {
                    if cfg.params.check_quorum {
                        actions.push(Action::ElectionTimeout(id));
                    }
                    actions.push(Action::HeartbeatTimeout(id));
                }
                _ => {
                    if s.current_term < cfg.max_term && s.membership(cfg).is_voter(id) {
                        actions.push(Action::ElectionTimeout(id));
                    }
                }
            }
            // Restarting a server that has nothing volatile to lose changes nothing but the budget.
            if state.restarts < cfg.max_restarts && s.restart(cfg) != *s {
                actions.push(Action::Restart(id));
            }
            if cfg.snapshots && s.commit_index > s.snapshot_index() {
                actions.push(Action::Compact(id));
            }
        }
        for (c, client) in state.clients.iter().enumerate() {
            let c = c as ClientId;
            let next = self.op_in_hand(state, c).is_some()
                || (self.must_register(state, c) && client.session == 0);
            if next && client.attempts <= cfg.max_retries {
                for server in 0..cfg.servers {
                    actions.push(Action::ClientRequest {
                        client_id: c,
                        server,
                    });
                }
            }
        }
        for r in &state.responses {
            actions.push(Action::DeliverResponse(*r));
            if cfg.drops {
                actions.push(Action::DropResponse(*r));
            }
        }
        // Only a leader takes an operation, and a refusal changes nothing: the operator's
        // step is offered to leaders alone.
        if (state.admin_done as usize) < cfg.admin_ops.len() {
            for server in 0..cfg.servers {
                if state.servers[server as usize].role == Role::Leader {
                    actions.push(Action::Admin { server });
                }
            }
        }
    }

    /// Whether `state` is within the configuration's bounds (term and log length).
    pub fn in_bounds(&self, state: &State) -> bool {
        let cfg = &self.cfg;
        state
            .servers
            .iter()
            .all(|s| s.current_term <= cfg.max_term && s.last_log_index() <= cfg.max_log_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::Model;
    use std::collections::{HashSet, VecDeque};

    /// The first step, breadth-first, whose state leaves the bounds.
    fn step_out_of_bounds(model: &RaftModel) -> (State, Action) {
        let init = model.init_states().remove(0);
        let mut seen = HashSet::from([init.clone()]);
        let mut queue = VecDeque::from([init]);
        while let Some(s) = queue.pop_front() {
            let mut actions = Vec::new();
            model.actions(&s, &mut actions);
            for a in actions {
                let Some(next) = model.next_state(&s, a.clone()) else {
                    continue;
                };
                if !model.within_boundary(&next) {
                    return (s, a);
                }
                if seen.insert(next.clone()) {
                    queue.push_back(next);
                }
            }
        }
        panic!("no step leaves the bounds");
    }

    #[test]
    fn the_explorer_refuses_steps_out_of_bounds() {
        let cfg = Config {
            max_term: 1,
            max_log_len: 1,
            ..Config::small()
        };
        let (s, a) = step_out_of_bounds(&RaftModel::new(cfg.clone()));
        let explorer = RaftModel::for_explorer(cfg);
        assert_eq!(explorer.next_state(&s, a.clone()), None, "{a:?}");
        assert_eq!(explorer.format_step(&s, a), None);
    }

    /// Every state the explorer can show is one the checker visits: within the bounds, and
    /// never more server messages in flight than `max_in_flight` (client answers are not
    /// counted by it, and the state text lists them apart, as `answer:`).
    #[test]
    fn every_state_the_explorer_serves_is_within_the_bounds() {
        let model = RaftModel::for_explorer(Config {
            max_term: 1,
            max_log_len: 2,
            max_in_flight: 2,
            ..Config::small()
        });
        let init = model.init_states().remove(0);
        let mut seen = HashSet::from([init.clone()]);
        let mut queue = VecDeque::from([init]);
        let mut answers_beside_a_full_network = false;
        while let Some(s) = queue.pop_front() {
            assert!(model.within_boundary(&s), "{s:?}");
            assert!(s.network.len() <= 2, "{s:?}");
            answers_beside_a_full_network |= s.network.len() == 2 && !s.responses.is_empty();
            for (_, next) in model.next_steps(&s) {
                if seen.insert(next.clone()) {
                    queue.push_back(next);
                }
            }
        }
        assert!(answers_beside_a_full_network, "{} states", seen.len());
        let text = format!(
            "{:?}",
            seen.iter()
                .find(|s| s.network.len() == 2 && !s.responses.is_empty())
                .unwrap()
        );
        assert_eq!(
            text.matches("\nnet: ").count() + text.starts_with("net: ") as usize,
            2,
            "{text}"
        );
        assert!(text.contains("\nanswer: →c"), "{text}");
    }

    #[test]
    fn the_explorer_text_starts_with_verdicts_and_flags() {
        let cfg = Config {
            max_term: 2,
            max_log_len: 2,
            ..Config::default()
        };
        let model = RaftModel::for_explorer(cfg);
        let init = model.init_states().remove(0);
        let text = model
            .format_step(&init, Action::ElectionTimeout(0))
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "verdict: every always-property holds in this state",
                "witnesses here: none",
                "explorer flags: --max-term 2 --max-log-len 2",
            ],
            "{text}"
        );
        assert!(text.contains("s0: Candidate t1"), "{text}");
    }
}
