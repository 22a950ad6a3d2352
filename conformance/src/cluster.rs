//! The node cores carried along a model behaviour: one core and one durable storage per model
//! server, driven by model actions, and the comparison after every step.

use crate::map;
use crate::view::{side_by_side, Storage, View};
use raft_core as c;
use raft_model::model::{Action, RaftModel, StepRecord};
use raft_model::state::State;
use raft_model::types as m;
use raft_model::Config;
use std::fmt::Write;
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub core: c::RaftCore,
    pub storage: Storage,
}

/// The cores of a cluster. Nodes are shared between clones until one is stepped, so carrying
/// a cluster along every edge of the state graph copies only the node that acts.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub params: c::Params,
    pub ids: Vec<c::NodeId>,
    /// The configuration the model's cluster starts with (its spares outside it).
    pub initial: m::Membership,
    pub nodes: Vec<Rc<Node>>,
}

/// What the cores emitted for one model action.
#[derive(Clone, Debug, Default)]
pub struct Emitted {
    pub messages: Vec<c::Envelope>,
    pub replies: Vec<c::ClientReply>,
    /// The outcome of an operator's step.
    pub admin: Option<c::AdminOutcome>,
}

/// A step at which the cores and the model disagree.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// 1-based step number.
    pub step: usize,
    pub action: String,
    pub what: String,
    /// Both states side by side.
    pub detail: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(
            f,
            "DIVERGENCE at step {}: {}\n  {}",
            self.step, self.action, self.what
        )?;
        write!(f, "{}", self.detail)
    }
}

/// The input a model client request is for the core: a `Register` (nonce = the model's
/// client number) while the client has no session, else its operation in hand under its
/// session id, with `seq = done + 1`; a `Get` with `read_index` on is a ReadIndex read whose
/// `read_id` is that `seq`.
pub fn client_input(model: &RaftModel, before: &State, client: m::ClientId) -> c::Input {
    if model.must_register(before, client) {
        return c::Input::register(client as u64);
    }
    let cl = before.clients[client as usize];
    let op = model
        .op_in_hand(before, client)
        .expect("the action is enabled");
    if let (m::Op::Get { key }, true) = (op, model.cfg.params.read_index) {
        return c::Input::Read(c::ReadRequest {
            client_id: map::client_id(cl.session),
            read_id: cl.done as u64 + 1,
            key: map::key(key),
        });
    }
    c::Input::client(c::ClientRequest {
        client_id: map::client_id(cl.session),
        seq: cl.done as u64 + 1,
        op: map::op(&op),
    })
}

impl Cluster {
    /// Fresh cores for the model's initial state. `core_bug` overrides the configuration's bug
    /// on the core side only (the mutation score).
    pub fn new(cfg: &Config, core_bug: Option<Option<c::Bug>>) -> Cluster {
        let mut params = map::params(cfg);
        if let Some(b) = core_bug {
            params.bug = b;
        }
        let ids: Vec<c::NodeId> = (0..cfg.servers).map(map::node_id).collect();
        // The model's servers start with the sessions of the clients registered before the
        // run; the cores start from the same state, as a snapshot at index 0.
        let storage = Storage {
            snapshot: map::snapshot(&raft_model::server::Server::new(cfg).snapshot),
            ..Storage::default()
        };
        let initial = cfg.initial_membership();
        let membership = map::membership(&initial);
        let nodes = ids
            .iter()
            .map(|&id| {
                Rc::new(Node {
                    core: storage.restore(id, &membership, params.clone()),
                    storage: storage.clone(),
                })
            })
            .collect();
        Cluster {
            params,
            ids,
            initial,
            nodes,
        }
    }

    fn step(&mut self, i: m::Id, input: c::Input) -> c::Ready {
        let node = Rc::make_mut(&mut self.nodes[i as usize]);
        let ready = node.core.step(input);
        node.storage.persist(&node.core, &ready);
        ready
    }

    /// Feeds one model action to the cores. `before` is the model state the action is taken in
    /// (a client request's operation and seq come from the client's state there).
    pub fn apply(&mut self, model: &RaftModel, before: &State, action: &Action) -> Emitted {
        let ready = match action {
            Action::Deliver(env) => Some(self.step(env.dst, c::Input::Message(map::envelope(env)))),
            Action::ElectionTimeout(i) => Some(self.step(*i, c::Input::ElectionTimeout)),
            Action::HeartbeatTimeout(i) => Some(self.step(*i, c::Input::HeartbeatTimeout)),
            Action::Compact(i) => Some(self.step(*i, c::Input::Compact)),
            Action::ClientRequest { client_id, server } => {
                Some(self.step(*server, client_input(model, before, *client_id)))
            }
            Action::Restart(i) => {
                let id = self.ids[*i as usize];
                let storage = self.nodes[*i as usize].storage.clone();
                let initial = map::membership(&self.initial);
                let core = storage.restore(id, &initial, self.params.clone());
                self.nodes[*i as usize] = Rc::new(Node { core, storage });
                None
            }
            // Network- and client-side steps: no core sees them.
            Action::Drop(_) | Action::DeliverResponse(_) | Action::DropResponse(_) => None,
            Action::Admin { server } => {
                let op = model.cfg.admin_ops[before.admin_done as usize];
                Some(self.step(*server, c::Input::Admin(map::admin_op(op))))
            }
        };
        match ready {
            Some(r) => Emitted {
                messages: r.messages,
                replies: r.replies,
                admin: r.admin,
            },
            None => Emitted::default(),
        }
    }

    pub fn view(&self, i: m::Id) -> View {
        let n = &self.nodes[i as usize];
        View::of_core(&n.core, &n.storage)
    }

    /// Every node: model and core side by side.
    pub fn render(&self, servers: &[raft_model::server::Server]) -> String {
        let mut out = String::new();
        for (i, s) in servers.iter().enumerate() {
            out += &side_by_side(
                map::node_id(i as m::Id),
                &View::of_model(s, i as m::Id, self.initial),
                &self.view(i as m::Id),
            );
        }
        out
    }
}

/// The client replies the model says the acting server produced, in the core's vocabulary:
/// its answers, or `NotLeader { hint: leader_id }` for a request at a non-leader (with the
/// `(client_id, seq)` the request carried, from the client's state `before`), and
/// `ReadNotLeader` for each read a leader was serving when it stepped down.
pub fn expected_replies(
    model: &RaftModel,
    before: &State,
    after: &[raft_model::server::Server],
    action: &Action,
    record: &StepRecord,
) -> Vec<c::ClientReply> {
    let read_index = model.cfg.params.read_index;
    let mut out: Vec<c::ClientReply> = (record.answered.iter())
        .map(|r| map::client_reply(r, read_index))
        .collect();
    // A restarted server's reads are gone with its memory: no one answers them.
    if let (Some(i), false) = (record.server, matches!(action, Action::Restart(_))) {
        out.extend(dropped_reads(
            &before.servers[i as usize],
            &after[i as usize],
        ));
    }
    if record.not_leader {
        if let Action::ClientRequest { client_id, server } = action {
            let cl = before.clients[*client_id as usize];
            if let (Some(m::Op::Get { .. }), true) =
                (model.op_in_hand(before, *client_id), read_index)
            {
                out.push(c::ClientReply::ReadNotLeader {
                    client_id: map::client_id(cl.session),
                    read_id: cl.done as u64 + 1,
                    hint: after[*server as usize].leader_id.map(map::node_id),
                });
                return out;
            }
            // A registration is refused under no session, with its nonce in `seq`.
            let (session, seq) = if cl.session == 0 {
                (c::NO_SESSION, *client_id as u64)
            } else {
                (map::client_id(cl.session), cl.done as u64 + 1)
            };
            out.push(c::ClientReply::NotLeader {
                client_id: session,
                seq,
                hint: after[*server as usize].leader_id.map(map::node_id),
            });
        }
    }
    out
}

/// The `ReadNotLeader` answers of a leader that stepped down in a step, for the reads it was
/// serving (under way first, then those held for its first commit). The core names no leader
/// in them: every step-down clears `leader_id` first (a higher term, a lost quorum), or finds
/// it naming the server itself.
pub fn dropped_reads(
    before: &raft_model::server::Server,
    after: &raft_model::server::Server,
) -> Vec<c::ClientReply> {
    if before.role != m::Role::Leader || after.role == m::Role::Leader {
        return Vec::new();
    }
    let pending = before.reads.pending.iter().map(|r| r.request);
    (pending.chain(before.reads.waiting.iter().copied()))
        .map(|q| c::ClientReply::ReadNotLeader {
            client_id: map::client_id(q.client_id),
            read_id: q.seq as u64,
            hint: None,
        })
        .collect()
}

/// Compares one step: the messages and replies the core emitted with the model's record, and
/// the views of `servers` (the acting server is enough in lockstep: no step changes another
/// server on either side) with the model's state after the step.
#[allow(clippy::too_many_arguments)]
pub fn compare_step(
    model: &RaftModel,
    step: usize,
    before: &State,
    action: &Action,
    record: &StepRecord,
    after_servers: &[raft_model::server::Server],
    cluster: &Cluster,
    emitted: &Emitted,
    all_servers: bool,
) -> Result<(), Box<Divergence>> {
    let fail = |what: String| {
        Box::new(Divergence {
            step,
            action: format!("{action:?}"),
            what,
            detail: cluster.render(after_servers),
        })
    };
    // Messages: the core's, mapped to the model's vocabulary, against the model's record.
    let core_sent: Result<Vec<m::Envelope>, String> =
        (emitted.messages.iter()).map(map::model_envelope).collect();
    match core_sent {
        Err(e) => {
            return Err(fail(format!(
                "the core sent a message the model has no word for: {e}"
            )))
        }
        Ok(sent) if sent != record.sent => {
            let mut what = String::from("messages differ\n");
            let _ = writeln!(what, "    model sent: {:?}", record.sent);
            let _ = write!(what, "    core sent:  {sent:?}");
            return Err(fail(what));
        }
        Ok(_) => {}
    }
    // An operator's step the model took was accepted (a configuration entry appended, or a
    // `TimeoutNow` sent) or refused as invalid; the core's outcome must say the same.
    if let (Action::Admin { .. }, Some(expected)) = (action, record.admin) {
        let core = emitted.admin.as_ref();
        if !core.is_some_and(|o| map::admin_outcome_matches(expected, o)) {
            return Err(fail(format!(
                "operator's step: model {expected:?}, core {core:?}"
            )));
        }
    }
    // Client replies.
    let expected = expected_replies(model, before, after_servers, action, record);
    if expected != emitted.replies {
        return Err(fail(format!(
            "client replies differ\n    model: {expected:?}\n    core:  {:?}",
            emitted.replies
        )));
    }
    // State.
    let ids: Vec<m::Id> = if all_servers {
        (0..after_servers.len() as m::Id).collect()
    } else {
        record.server.into_iter().collect()
    };
    for i in ids {
        let mv = View::of_model(&after_servers[i as usize], i, cluster.initial);
        let cv = cluster.view(i);
        if mv != cv {
            let fields: Vec<&str> = mv
                .fields()
                .into_iter()
                .zip(cv.fields())
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.0)
                .collect();
            return Err(fail(format!(
                "state of node {} differs in: {}",
                map::node_id(i),
                fields.join(", ")
            )));
        }
    }
    Ok(())
}

/// An operator's step the model refuses without a transition (its leader is busy, or the
/// server is no leader): the core must answer `Busy` or `NotLeader`, emit nothing, and stay as
/// the model's server is.
pub fn compare_refused_admin(
    step: usize,
    before: &State,
    server: m::Id,
    cluster: &Cluster,
    emitted: &Emitted,
) -> Result<(), Box<Divergence>> {
    let refused = matches!(
        emitted.admin,
        Some(c::AdminOutcome::Busy(_) | c::AdminOutcome::NotLeader { .. })
    );
    let unchanged = emitted.messages.is_empty()
        && emitted.replies.is_empty()
        && View::of_model(&before.servers[server as usize], server, cluster.initial)
            == cluster.view(server);
    if refused && unchanged {
        return Ok(());
    }
    Err(Box::new(Divergence {
        step,
        action: format!("{:?}", Action::Admin { server }),
        what: format!(
            "the model refuses the operator's step (busy or no leader); the core answered \
             {:?}{}",
            emitted.admin,
            if unchanged {
                ""
            } else {
                " and changed or sent something"
            }
        ),
        detail: cluster.render(&before.servers),
    }))
}

/// Compares every server of the initial state.
pub fn compare_initial(state: &State, cluster: &Cluster) -> Result<(), Box<Divergence>> {
    for (i, s) in state.servers.iter().enumerate() {
        if View::of_model(s, i as m::Id, cluster.initial) != cluster.view(i as m::Id) {
            return Err(Box::new(Divergence {
                step: 0,
                action: "(initial state)".into(),
                what: format!("initial state of node {} differs", map::node_id(i as m::Id)),
                detail: cluster.render(&state.servers),
            }));
        }
    }
    Ok(())
}
