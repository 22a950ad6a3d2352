//! Membership changes driven as scenarios: small scripts run against a cluster of cores over a
//! network the script controls, one command per line. A scenario states what it does and what
//! must then hold, so the story of a change (who appends it, who must hold it, when it takes
//! effect) reads top to bottom instead of hiding in message plumbing.
//!
//! # The script language
//!
//! `#` starts a comment; blank lines are skipped. The first command is `cluster`.
//!
//! ```text
//! cluster voters=1,2,3 [spares=4,5] [params=off|conformance|node]
//!     voters start in the initial configuration; spares are built outside it (with_membership)
//!     params: off (default: no pre-vote, no check-quorum, no pipelining),
//!             conformance (Params::conformance_off), node (Params::default)
//!     bug=change-before-term-commit: the core mutant, to show a scenario catches it
//! timeout <n>            election timeout at n
//! heartbeat <n>          heartbeat timeout at n
//! put <n> <key> <value>  a client put (no session) at n
//! admin <n> <op> <id>    op: add-voter | add-learner | promote | remove | transfer
//! compact <n>            n compacts its log up to last_applied
//! restart <n>            n is rebuilt from what it persisted
//! deliver                deliver messages until the network is quiet
//! round                  deliver only the messages queued now (their answers stay queued)
//! drop                   lose every queued message
//! partition <ids> [| <ids> ...]
//!     split the nodes into groups; nodes not named form one more group; a message whose
//!     sender and receiver are in different groups is dropped when it would be delivered
//! heal                   end the partition
//! mark                   restart the count of sent messages (`expect sent`)
//! expect role <sel> leader|follower|candidate|pre-candidate
//! expect leader <sel> <id|none>           the leader the node knows
//! expect term <sel> <term>
//! expect commit <sel> <index>
//! expect last-index <sel> <index>
//! expect entry <sel> <index> <term> noop|put|register|config
//! expect voters|learners <sel> <ids|none>             latest configuration, committed or not
//! expect committed-voters|committed-learners <sel> <ids|none>
//! expect get <sel> <key> <value|none>
//! expect admin <outcome>      outcome of the last `admin`: accepted [<index>] | not-leader <id|none>
//!                             | busy <reason> | refused <reason> [<id>]  (kebab-case names)
//! expect sent <from|*> <to|*> <kind|*> <count>        messages sent since the last `mark`
//!     kind: vote | prevote | vote-resp | prevote-resp | append | append-resp | snapshot
//!           | read-index | read-index-resp | timeout-now
//! ```
//!
//! `<sel>` is a comma-separated list of node ids or `*` (every node); so is `<ids>`. A failure
//! names the scenario and the line (counted from the script's first line: for an inline
//! script, the line of its `r"`) and prints every node's state.
//!
//! Every step's `Ready` is persisted to the node's `MemoryStorage` before its messages enter
//! the network, as the `Ready` contract asks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use raft_core::{
    AdminOp, AdminOutcome, Bug, ClientRequest, Command, Envelope, Index, Input, Membership,
    MemoryStorage, Message, NodeId, Op, Params, RaftCore, Role, NO_SESSION,
};

// ----- the cluster ---------------------------------------------------------------------------

struct Node {
    core: RaftCore,
    storage: MemoryStorage,
}

struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    initial: Membership,
    params: Params,
    queue: VecDeque<Envelope>,
    /// Partition group of each node named in the partition; everyone else shares group 0.
    groups: BTreeMap<NodeId, usize>,
    /// (from, to, kind) of every message sent since the last `mark`.
    sent: Vec<(NodeId, NodeId, &'static str)>,
    last_admin: Option<AdminOutcome>,
    next_seq: u64,
}

/// A runaway exchange (two nodes bouncing messages forever) must fail the scenario, not hang.
const MAX_DELIVERIES: usize = 100_000;

impl Cluster {
    fn new(voters: &[NodeId], spares: &[NodeId], params: Params) -> Result<Cluster, String> {
        let initial = Membership::voters(voters.iter().copied());
        let mut nodes = BTreeMap::new();
        for &id in voters.iter().chain(spares) {
            let core =
                RaftCore::with_membership(id, initial.clone(), params.clone(), Default::default());
            let node = Node {
                core,
                storage: MemoryStorage::default(),
            };
            if nodes.insert(id, node).is_some() {
                return Err(format!("node {id} is named twice"));
            }
        }
        Ok(Cluster {
            nodes,
            initial,
            params,
            queue: VecDeque::new(),
            groups: BTreeMap::new(),
            sent: Vec::new(),
            last_admin: None,
            next_seq: 0,
        })
    }

    fn node(&self, id: NodeId) -> Result<&Node, String> {
        self.nodes
            .get(&id)
            .ok_or_else(|| format!("there is no node {id}"))
    }

    fn step(&mut self, id: NodeId, input: Input) -> Result<(), String> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| format!("there is no node {id}"))?;
        let ready = node.core.step(input);
        node.storage.persist(&node.core, &ready);
        if ready.admin.is_some() {
            self.last_admin = ready.admin;
        }
        for env in ready.messages {
            self.sent.push((env.from, env.to, kind(&env.msg)));
            self.queue.push_back(env);
        }
        Ok(())
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        let group = |id| self.groups.get(&id).copied().unwrap_or(0);
        group(a) == group(b)
    }

    /// A message to a node that does not exist (a member the script never built) is lost.
    fn deliver_one(&mut self, env: Envelope) -> Result<(), String> {
        if self.connected(env.from, env.to) && self.nodes.contains_key(&env.to) {
            self.step(env.to, Input::Message(env))?;
        }
        Ok(())
    }

    fn deliver(&mut self) -> Result<(), String> {
        let mut delivered = 0;
        while let Some(env) = self.queue.pop_front() {
            delivered += 1;
            if delivered > MAX_DELIVERIES {
                return Err(format!(
                    "the network is not quiet after {MAX_DELIVERIES} deliveries"
                ));
            }
            self.deliver_one(env)?;
        }
        Ok(())
    }

    fn round(&mut self) -> Result<(), String> {
        let now: Vec<Envelope> = self.queue.drain(..).collect();
        for env in now {
            self.deliver_one(env)?;
        }
        Ok(())
    }

    fn restart(&mut self, id: NodeId) -> Result<(), String> {
        let (initial, params) = (self.initial.clone(), self.params.clone());
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| format!("there is no node {id}"))?;
        node.core = node.storage.restore(id, &initial, params);
        Ok(())
    }

    /// What a failed expectation prints after its message: enough to see why without a rerun.
    fn dump(&self) -> String {
        let mut s = String::new();
        for (id, n) in &self.nodes {
            let c = &n.core;
            let _ = writeln!(
                s,
                "  node {id}: {} term {} leader {} commit {} last {} | {} | committed {}",
                role_name(c.role()),
                c.current_term(),
                opt(c.leader_id()),
                c.commit_index(),
                c.log().last_index(),
                c.membership(),
                c.committed_membership(),
            );
        }
        let _ = write!(s, "  {} message(s) queued", self.queue.len());
        if !self.groups.is_empty() {
            let _ = write!(s, "; partition {:?} (others in group 0)", self.groups);
        }
        s
    }
}

fn kind(msg: &Message) -> &'static str {
    match msg {
        Message::RequestVote { pre_vote: true, .. } => "prevote",
        Message::RequestVote { .. } => "vote",
        Message::RequestVoteResponse { pre_vote: true, .. } => "prevote-resp",
        Message::RequestVoteResponse { .. } => "vote-resp",
        Message::AppendEntries { .. } => "append",
        Message::AppendEntriesResponse { .. } => "append-resp",
        Message::InstallSnapshot { .. } => "snapshot",
        Message::ReadIndex { .. } => "read-index",
        Message::ReadIndexResponse { .. } => "read-index-resp",
        Message::TimeoutNow { .. } => "timeout-now",
    }
}

const KINDS: [&str; 10] = [
    "prevote",
    "vote",
    "prevote-resp",
    "vote-resp",
    "append",
    "append-resp",
    "snapshot",
    "read-index",
    "read-index-resp",
    "timeout-now",
];

// ----- rendering: the words the scripts use ----------------------------------------------------

fn opt(id: Option<NodeId>) -> String {
    id.map_or_else(|| "none".to_string(), |id| id.to_string())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn ids_text(ids: &BTreeSet<NodeId>) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    let v: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    v.join(",")
}

/// `NotATransferTarget(1)` → `not-a-transfer-target 1`: the reasons' own names, so a reason
/// added to the core needs no change here.
fn kebab(debug: &str) -> String {
    let mut out = String::new();
    let mut prev_alnum = false;
    for ch in debug.chars() {
        match ch {
            c if c.is_ascii_uppercase() => {
                if prev_alnum {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
                prev_alnum = true;
            }
            '(' => {
                out.push(' ');
                prev_alnum = false;
            }
            ')' => prev_alnum = false,
            c => {
                out.push(c);
                prev_alnum = c.is_ascii_alphanumeric();
            }
        }
    }
    out
}

fn outcome_text(outcome: &AdminOutcome) -> String {
    match outcome {
        AdminOutcome::NotLeader { hint } => format!("not-leader {}", opt(*hint)),
        AdminOutcome::Busy(b) => format!("busy {}", kebab(&format!("{b:?}"))),
        AdminOutcome::Refused(r) => format!("refused {}", kebab(&format!("{r:?}"))),
        AdminOutcome::Accepted { index: Some(i) } => format!("accepted {i}"),
        AdminOutcome::Accepted { index: None } => "accepted".to_string(),
    }
}

fn entry_kind(command: &Command) -> &'static str {
    match command {
        Command::Noop => "noop",
        Command::Client { .. } => "put",
        Command::Register { .. } => "register",
        Command::Membership(_) => "config",
    }
}

// ----- parsing -------------------------------------------------------------------------------

fn num<T: std::str::FromStr>(tok: &str, what: &str) -> Result<T, String> {
    tok.parse()
        .map_err(|_| format!("`{tok}` is not a {what} (a number)"))
}

fn ids(tok: &str) -> Result<BTreeSet<NodeId>, String> {
    if tok == "none" {
        return Ok(BTreeSet::new());
    }
    tok.split(',').map(|t| num(t, "node id")).collect()
}

fn arg<'a>(args: &[&'a str], k: usize, usage: &str) -> Result<&'a str, String> {
    args.get(k)
        .copied()
        .ok_or_else(|| format!("missing argument; usage: {usage}"))
}

fn no_more(args: &[&str], k: usize, usage: &str) -> Result<(), String> {
    match args.get(k) {
        Some(extra) => Err(format!("unexpected `{extra}`; usage: {usage}")),
        None => Ok(()),
    }
}

impl Cluster {
    fn select(&self, tok: &str) -> Result<Vec<NodeId>, String> {
        if tok == "*" {
            return Ok(self.nodes.keys().copied().collect());
        }
        let picked: Vec<NodeId> = ids(tok)?.into_iter().collect();
        if picked.is_empty() {
            return Err("no node selected: an expectation about nobody holds vacuously".into());
        }
        for &id in &picked {
            self.node(id)?;
        }
        Ok(picked)
    }
}

fn parse_cluster(args: &[&str]) -> Result<Cluster, String> {
    const USAGE: &str =
        "cluster voters=<ids> [spares=<ids>] [params=off|conformance|node] [bug=<name>]";
    let mut bug = None;
    let mut voters = None;
    let mut spares = BTreeSet::new();
    let mut params = Params {
        pre_vote: false,
        check_quorum: false,
        ..Params::conformance_off()
    };
    for a in args {
        match a.split_once('=') {
            Some(("voters", v)) => voters = Some(ids(v)?),
            Some(("spares", v)) => spares = ids(v)?,
            Some(("params", "off")) => {}
            Some(("params", "conformance")) => params = Params::conformance_off(),
            Some(("params", "node")) => params = Params::default(),
            Some(("bug", "change-before-term-commit")) => bug = Some(Bug::ChangeBeforeTermCommit),
            _ => return Err(format!("unexpected `{a}`; usage: {USAGE}")),
        }
    }
    params.bug = bug;
    let voters = voters.ok_or_else(|| format!("no voters; usage: {USAGE}"))?;
    let voters: Vec<NodeId> = voters.into_iter().collect();
    let spares: Vec<NodeId> = spares.into_iter().collect();
    Cluster::new(&voters, &spares, params)
}

fn admin_op(name: &str, id: NodeId) -> Result<AdminOp, String> {
    Ok(match name {
        "add-voter" => AdminOp::AddVoter(id),
        "add-learner" => AdminOp::AddLearner(id),
        "promote" => AdminOp::Promote(id),
        "remove" => AdminOp::Remove(id),
        "transfer" => AdminOp::TransferLeader(id),
        _ => {
            return Err(format!(
                "unknown admin op `{name}` (add-voter, add-learner, promote, remove, transfer)"
            ))
        }
    })
}

// ----- the commands --------------------------------------------------------------------------

impl Cluster {
    fn command(&mut self, cmd: &str, args: &[&str]) -> Result<(), String> {
        match cmd {
            "timeout" | "heartbeat" | "compact" | "restart" => {
                let usage = format!("{cmd} <node>");
                let id = num(arg(args, 0, &usage)?, "node id")?;
                no_more(args, 1, &usage)?;
                match cmd {
                    "timeout" => self.step(id, Input::ElectionTimeout),
                    "heartbeat" => self.step(id, Input::HeartbeatTimeout),
                    "compact" => self.step(id, Input::Compact),
                    _ => self.restart(id),
                }
            }
            "put" => {
                const USAGE: &str = "put <node> <key> <value>";
                let id = num(arg(args, 0, USAGE)?, "node id")?;
                let (key, value) = (arg(args, 1, USAGE)?, arg(args, 2, USAGE)?);
                no_more(args, 3, USAGE)?;
                self.next_seq += 1;
                let request = ClientRequest {
                    client_id: NO_SESSION,
                    seq: self.next_seq,
                    op: Op::Put {
                        key: key.into(),
                        value: value.into(),
                    },
                };
                self.step(id, Input::client(request))
            }
            "admin" => {
                const USAGE: &str = "admin <node> <op> <id>";
                let id = num(arg(args, 0, USAGE)?, "node id")?;
                let target = num(arg(args, 2, USAGE)?, "node id")?;
                let op = admin_op(arg(args, 1, USAGE)?, target)?;
                no_more(args, 3, USAGE)?;
                self.last_admin = None;
                self.step(id, Input::Admin(op))?;
                match self.last_admin {
                    Some(_) => Ok(()),
                    None => Err("the core gave no admin outcome".to_string()),
                }
            }
            "deliver" | "round" | "drop" | "heal" | "mark" => {
                no_more(args, 0, cmd)?;
                match cmd {
                    "deliver" => self.deliver(),
                    "round" => self.round(),
                    "drop" => {
                        self.queue.clear();
                        Ok(())
                    }
                    "heal" => {
                        self.groups.clear();
                        Ok(())
                    }
                    _ => {
                        self.sent.clear();
                        Ok(())
                    }
                }
            }
            "partition" => {
                let text = args.join(" ");
                let mut groups = BTreeMap::new();
                for (g, part) in text.split('|').enumerate() {
                    let part = part.trim();
                    if part.is_empty() {
                        return Err("usage: partition <ids> [| <ids> ...]".to_string());
                    }
                    for id in ids(&part.replace(' ', ","))? {
                        self.node(id)?;
                        if groups.insert(id, g + 1).is_some() {
                            return Err(format!("node {id} is in two groups"));
                        }
                    }
                }
                self.groups = groups;
                Ok(())
            }
            "expect" => self.expect(args),
            _ => Err(format!("unknown command `{cmd}`")),
        }
    }

    fn expect(&self, args: &[&str]) -> Result<(), String> {
        let what = arg(args, 0, "expect <what> ...")?;
        match what {
            "admin" => {
                let want = args[1..].join(" ");
                let got = self.last_admin.as_ref().map(outcome_text);
                match got {
                    Some(got) if got == want => Ok(()),
                    Some(got) => Err(format!("admin outcome is `{got}`, expected `{want}`")),
                    None => Err("no admin command ran".to_string()),
                }
            }
            "sent" => {
                const USAGE: &str = "expect sent <from|*> <to|*> <kind|*> <count>";
                let pick = |tok: &str| -> Result<Option<NodeId>, String> {
                    if tok == "*" {
                        Ok(None)
                    } else {
                        num(tok, "node id").map(Some)
                    }
                };
                let from = pick(arg(args, 1, USAGE)?)?;
                let to = pick(arg(args, 2, USAGE)?)?;
                let k = arg(args, 3, USAGE)?;
                if k != "*" && !KINDS.contains(&k) {
                    return Err(format!("unknown message kind `{k}` (one of {KINDS:?})"));
                }
                let want: usize = num(arg(args, 4, USAGE)?, "count")?;
                no_more(args, 5, USAGE)?;
                let got = (self.sent.iter())
                    .filter(|(f, t, kd)| {
                        from.is_none_or(|x| x == *f)
                            && to.is_none_or(|x| x == *t)
                            && (k == "*" || k == *kd)
                    })
                    .count();
                if got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "{got} such message(s) sent since the last mark, expected {want}"
                    ))
                }
            }
            _ => {
                let usage = format!("expect {what} <node|*> ...");
                let nodes = self.select(arg(args, 1, &usage)?)?;
                for id in nodes {
                    self.expect_at(id, what, &args[2..])
                        .map_err(|e| format!("node {id}: {e}"))?;
                }
                Ok(())
            }
        }
    }

    /// One per-node expectation: `args` follow the node selector.
    fn expect_at(&self, id: NodeId, what: &str, args: &[&str]) -> Result<(), String> {
        let core = &self.node(id)?.core;
        let one = |usage: &str| -> Result<&str, String> {
            let a = arg(args, 0, usage)?;
            no_more(args, 1, usage)?;
            Ok(a)
        };
        let (got, want): (String, String) = match what {
            "role" => (
                role_name(core.role()).into(),
                one("expect role <sel> <role>")?.into(),
            ),
            "leader" => (
                opt(core.leader_id()),
                one("expect leader <sel> <id|none>")?.into(),
            ),
            "term" => (
                core.current_term().to_string(),
                one("expect term <sel> <term>")?.into(),
            ),
            "commit" => (
                core.commit_index().to_string(),
                one("expect commit <sel> <index>")?.into(),
            ),
            "last-index" => (
                core.log().last_index().to_string(),
                one("expect last-index <sel> <index>")?.into(),
            ),
            "voters" | "learners" | "committed-voters" | "committed-learners" => {
                let m = if what.starts_with("committed") {
                    core.committed_membership()
                } else {
                    core.membership()
                };
                let set = if what.ends_with("voters") {
                    &m.voters
                } else {
                    &m.learners
                };
                let want = ids(one(&format!("expect {what} <sel> <ids|none>"))?)?;
                (ids_text(set), ids_text(&want))
            }
            "get" => {
                const USAGE: &str = "expect get <sel> <key> <value|none>";
                let key = arg(args, 0, USAGE)?;
                let want = arg(args, 1, USAGE)?;
                no_more(args, 2, USAGE)?;
                let got = core.kv().get(key).map_or("none", |v| v);
                (format!("{key}={got}"), format!("{key}={want}"))
            }
            "entry" => {
                const USAGE: &str = "expect entry <sel> <index> <term> <kind>";
                let index: Index = num(arg(args, 0, USAGE)?, "log index")?;
                let term = arg(args, 1, USAGE)?;
                let k = arg(args, 2, USAGE)?;
                no_more(args, 3, USAGE)?;
                let got = match core.log().get(index) {
                    Some(e) => format!("term {} {}", e.term, entry_kind(&e.command)),
                    None => "no entry".to_string(),
                };
                (
                    format!("entry {index}: {got}"),
                    format!("entry {index}: term {term} {k}"),
                )
            }
            _ => return Err(format!("unknown expectation `{what}`")),
        };
        if got == want {
            Ok(())
        } else {
            Err(format!("{what} is `{got}`, expected `{want}`"))
        }
    }
}

// ----- the runner ----------------------------------------------------------------------------

/// Runs `script`; the error names the scenario and the line, and shows every node's state.
fn run(name: &str, script: &str) -> Result<(), String> {
    let mut cluster: Option<Cluster> = None;
    for (k, raw) in script.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = (words[0], &words[1..]);
        let result = match (&mut cluster, cmd) {
            (None, "cluster") => parse_cluster(args).map(|c| cluster = Some(c)),
            (Some(_), "cluster") => Err("a second `cluster`".to_string()),
            (None, _) => Err("the first command must be `cluster`".to_string()),
            (Some(c), _) => c.command(cmd, args),
        };
        if let Err(e) = result {
            let state = cluster.as_ref().map(Cluster::dump).unwrap_or_default();
            return Err(format!(
                "scenario `{name}`, line {}: `{line}`\n  {e}\n{state}",
                k + 1
            ));
        }
    }
    if cluster.is_none() {
        return Err(format!("scenario `{name}` has no `cluster` line"));
    }
    Ok(())
}

fn scenario(name: &str, script: &str) {
    if let Err(e) = run(name, script) {
        panic!("{e}");
    }
}

// ----- the scenarios -------------------------------------------------------------------------

#[test]
fn add_a_voter() {
    scenario("add", ADD);
}

/// Without the rule that a leader first commits an entry of its term, the scenario fails where
/// it asks for that rule.
#[test]
fn add_catches_the_change_before_term_commit_mutant() {
    let script = ADD.replacen("spares=4", "spares=4 bug=change-before-term-commit", 1);
    let err = run("add-mutant", &script).expect_err("the mutant accepts the change early");
    assert!(
        err.contains("`expect admin busy term-not-committed`")
            && err.contains("admin outcome is `accepted 2`"),
        "{err}"
    );
}

const ADD: &str = r"
cluster voters=1,2,3 spares=4
expect voters 4 1,2,3
timeout 4                      # outside the configuration: it never stands
expect role 4 follower
expect sent 4 * * 0

timeout 1
round                          # the vote requests
round                          # the grants: 1 leads, its no-op is not committed yet
expect role 1 leader
expect commit 1 0
admin 1 add-voter 4
expect admin busy term-not-committed
expect voters * 1,2,3
deliver
expect commit 1 1
admin 2 add-voter 4
expect admin not-leader 1

# With 3 and 4 cut off, 1 and 2 hold the entry: a majority of the old voters, not of the new.
partition 3,4
admin 1 add-voter 4
expect admin accepted 2
expect voters 1 1,2,3,4
deliver
expect last-index 2 2
expect commit 1 1
expect committed-voters 1 1,2,3

# 4 rejoins and catches up from an empty log: 1, 2 and 4 are three of the four voters.
partition 3
heartbeat 1
deliver
expect last-index 4 2
expect commit 1 2
expect committed-voters 1 1,2,3,4
expect voters 3 1,2,3

heal
heartbeat 1
deliver
expect voters * 1,2,3,4
expect committed-voters * 1,2,3,4
expect commit * 2

put 1 k v
deliver
heartbeat 1
deliver
expect commit * 3
expect get * k v

# The configuration survives a restart: it is read back from the log (the commit index is
# volatile, so 4 learns again that it is committed).
restart 4
expect voters 4 1,2,3,4
expect commit 4 0
heartbeat 1
deliver
expect committed-voters 4 1,2,3,4
";

#[test]
fn remove_a_follower() {
    scenario(
        "remove",
        r"
cluster voters=1,2,3 params=conformance
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 remove 3
expect admin accepted 2
expect voters 1 1,2
deliver
heartbeat 1
deliver
expect commit 1 2
expect committed-voters 1,2 1,2
expect role 1 leader

# The leader dropped 3 when it appended the change: 3 never receives the entry that removes it.
expect voters 3 1,2,3
expect last-index 3 1

mark
heartbeat 1
put 1 a 1
deliver
expect sent * 3 * 0
expect get 1 a 1

# 1 and 2 are both voters now, and enough.
partition 3
put 1 b 2
deliver
expect commit 1 4
expect get 1 b 2
heal

# 3 still believes it votes, so its timeout makes it a pre-candidate; the voters know a leader
# (and hold a longer log) and refuse, so nothing moves.
mark
timeout 3
deliver
expect sent 3 * prevote 2
expect sent * 3 prevote-resp 2
expect term * 1
expect role 1 leader
expect leader 2 1
put 1 c 3
deliver
heartbeat 1
deliver
expect commit 1,2 5
expect get 2 c 3
",
    );
}

/// A removed follower never learns of its removal (the leader stops replicating to it when it
/// appends the change, as PROTOCOL.md specifies), so it still counts itself a voter: without
/// pre-vote its timeout starts a real election whose higher term deposes the leader of the
/// remaining voters (it cannot win: its log lacks the change). Liveness, not safety; the node
/// runs with pre-vote and check-quorum, where the same timeout is harmless
/// (`remove_a_follower`), and the runbook stops a removed node.
#[test]
fn removed_follower_without_pre_vote_disrupts_the_leader() {
    scenario(
        "removed-disrupts",
        r"
cluster voters=1,2,3
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 remove 3
deliver
heartbeat 1
deliver
expect committed-voters 1,2 1,2
timeout 3
expect role 3 candidate
deliver
expect term * 2
expect role 1 follower
expect role 3 candidate
expect leader 1 none
expect leader 2 none
timeout 2
deliver
expect role 2 leader
expect term 2 3
",
    );
}

#[test]
fn remove_the_leader() {
    scenario(
        "remove-leader",
        r"
cluster voters=1,2,3
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
# Only 2 can take the entry: in the old configuration 1 and 2 would commit it, but 1 no longer
# counts and {2,3} needs both.
partition 3
admin 1 remove 1
expect admin accepted 2
expect voters 1 2,3
deliver
expect last-index 2 2
expect role 1 leader
expect commit 1 1

# The leader still leads and replicates.
put 1 k v
deliver
expect last-index 2 3
expect commit 1 1

heal
heartbeat 1
deliver
expect commit 1 3
expect committed-voters 1 2,3
expect role 1 follower
expect leader 1 none
expect get 1 k v

# Out of the configuration, 1 never stands again.
mark
timeout 1
expect sent 1 * * 0
expect role 1 follower

# The followers never heard the commit; 2 stands in {2,3} and its no-op commits the change.
timeout 2
deliver
expect role 2 leader
expect term 2 2
heartbeat 2
deliver
expect commit 2,3 4
expect committed-voters 2,3 2,3
put 2 x y
deliver
heartbeat 2
deliver
expect commit 2,3 5
expect get 3 x y
expect sent 2 1 * 0
",
    );
}

/// The removed leader steps down silently: with check-quorum the followers still name it as
/// their leader and refuse the first pre-vote; the refuser's own timeout clears that, so the
/// cluster has a leader again after two timeouts instead of one.
#[test]
fn remove_the_leader_with_pre_vote() {
    scenario(
        "remove-leader-pre-vote",
        r"
cluster voters=1,2,3 params=conformance
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 remove 1
expect admin accepted 2
deliver
expect role 1 follower
expect leader 2,3 1
mark
timeout 2
deliver
expect sent 3 2 prevote-resp 1
expect role 2 pre-candidate
expect term 2,3 1
timeout 3
deliver
expect role 3 leader
expect term 2,3 2
expect leader 2 3
put 3 k v
deliver
heartbeat 3
deliver
expect get 2,3 k v
expect committed-voters 2,3 2,3
",
    );
}

/// A removed server comes back as a voter: the leader starts its progress afresh and the
/// server, which never saw its removal, catches up through both changes.
#[test]
fn remove_and_add_back() {
    scenario(
        "re-add",
        r"
cluster voters=1,2,3 params=node
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 remove 3
deliver
put 1 a 1
deliver
admin 1 add-voter 3
expect admin accepted 4
expect voters 1 1,2,3
expect voters 3 1,2,3
expect last-index 3 1
deliver
heartbeat 1
deliver
expect last-index 3 4
expect entry 3 2 1 config
expect entry 3 4 1 config
expect committed-voters * 1,2,3
expect get 3 a 1
# 3 counts again: with 2 cut off, 1 and 3 commit.
partition 2
put 1 b 2
deliver
expect commit 1 5
heal
",
    );
}

#[test]
fn promote_a_learner() {
    scenario(
        "promote",
        r"
cluster voters=1,2,3 spares=4
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 promote 4
expect admin refused not-learner 4
admin 1 add-learner 4
expect admin accepted 2
deliver
heartbeat 1
deliver
expect voters * 1,2,3
expect learners * 4
expect committed-learners * 4
expect commit 4 2

# 1 and the learner are not a majority of {1,2,3}: the learner receives the entry and it stays
# uncommitted.
partition 1,4 | 2,3
put 1 k v
deliver
expect last-index 4 3
expect commit 1 2
expect get 4 k none

mark
timeout 4
expect sent 4 * * 0
expect role 4 follower
expect term 4 1

heal
heartbeat 1
deliver
expect commit 1 3
admin 1 promote 4
expect admin accepted 4
deliver
heartbeat 1
deliver
expect voters * 1,2,3,4
expect learners * none
expect committed-voters * 1,2,3,4

# Now 4 counts: without it, 1 and 3 are two of four; with it, three.
partition 1,3 | 2,4
put 1 a 1
deliver
expect commit 1 4
partition 1,3,4 | 2
heartbeat 1
deliver
expect commit 1 5
expect get 1 a 1
heal
",
    );
}

#[test]
fn transfer_leadership() {
    scenario(
        "transfer",
        r"
cluster voters=1,2,3 spares=4 params=node
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 transfer 1
expect admin refused not-a-transfer-target 1
admin 1 transfer 4
expect admin refused not-a-transfer-target 4
admin 1 add-learner 4
deliver
heartbeat 1
deliver
expect learners * 4
admin 1 transfer 4
expect admin refused not-a-transfer-target 4

partition 2
put 1 k v
deliver
expect commit 1 3
admin 1 transfer 2
expect admin busy target-behind

# With pipelining, the append 2 lost is resent on the second heartbeat that finds it unanswered.
heal
heartbeat 1
deliver
heartbeat 1
deliver
expect last-index 2 3
mark
admin 1 transfer 2
expect admin accepted
expect sent 1 2 timeout-now 1

# No election timeout at 2: TimeoutNow alone makes it stand, skipping the pre-vote the others
# (who know a leader) would refuse.
deliver
expect sent 2 * prevote 0
expect sent 2 * vote 2
expect role 2 leader
expect term * 2
expect leader * 2
expect role 1 follower

put 2 x y
deliver
heartbeat 2
deliver
expect get * x y
expect get * k v
",
    );
}

#[test]
fn change_during_a_partition() {
    scenario(
        "partition",
        r"
cluster voters=1,2,3,4,5 spares=6
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
partition 1,2 | 3,4,5,6
admin 1 remove 5
expect admin accepted 2
expect voters 1 1,2,3,4
admin 1 add-learner 6
expect admin busy change-pending
deliver
heartbeat 1
deliver
expect last-index 2 2
expect voters 2 1,2,3,4
expect commit 1 1
expect role 1 leader

# The majority side elects 3, which never saw the removal and makes a change of its own.
timeout 3
deliver
expect role 3 leader
expect term 3,4,5 2
put 3 k v
deliver
expect commit 3 3
admin 3 add-learner 6
expect admin accepted 4
deliver
heartbeat 3
deliver
expect commit 3,4,5,6 4
expect committed-learners 3 6

heal
heartbeat 3
deliver
heartbeat 3
deliver
expect role 1 follower
expect leader * 3
expect term * 2
expect entry 1,2 2 2 noop
expect voters * 1,2,3,4,5
expect learners * 6
expect committed-voters * 1,2,3,4,5
expect committed-learners * 6
expect commit * 4
expect get * k v
",
    );
}

/// A voter added after the leader compacted the log past its configuration entry learns the
/// configuration from the snapshot it installs.
#[test]
fn add_a_voter_through_a_snapshot() {
    scenario(
        "snapshot",
        r"
cluster voters=1,2,3 spares=4,5
timeout 1
deliver
heartbeat 1                    # carries the commit of 1's no-op to the followers
deliver
expect role 1 leader
expect commit 1 1
admin 1 add-learner 5
deliver
put 1 k v
deliver
heartbeat 1
deliver
expect commit 1,2,3,5 3
compact 1
mark
admin 1 add-voter 4
expect admin accepted 4
deliver
heartbeat 1
deliver
expect sent 1 4 snapshot 1
expect commit * 4
expect get 4 k v
expect voters 4 1,2,3,4
expect learners 4 5
expect committed-voters 4 1,2,3,4
restart 4
expect voters 4 1,2,3,4
expect learners 4 5
",
    );
}

// ----- the harness itself ----------------------------------------------------------------------

#[test]
fn a_false_expectation_fails_naming_its_line() {
    let err = run(
        "negative",
        "cluster voters=1,2,3\ntimeout 1\ndeliver\n\n# a comment\nexpect role 2 leader\n",
    )
    .expect_err("node 2 is no leader");
    assert!(
        err.starts_with("scenario `negative`, line 6: `expect role 2 leader`"),
        "{err}"
    );
    assert!(
        err.contains("node 2: role is `follower`, expected `leader`"),
        "{err}"
    );

    let err = run(
        "negative",
        "cluster voters=1\ntimeout 1\nexpect admin accepted\n",
    )
    .expect_err("no admin command ran");
    assert!(err.contains("line 3"), "{err}");

    let err = run("negative", "cluster voters=1\nexpect sent 1 * appendd 0\n")
        .expect_err("a misspelt kind");
    assert!(err.contains("unknown message kind `appendd`"), "{err}");

    let err = run("negative", "cluster voters=1\nfrobnicate\n").expect_err("no such command");
    assert!(
        err.contains("line 2") && err.contains("unknown command"),
        "{err}"
    );

    // Inline scripts open with a newline, so their line 1 is the line of the `r"`.
    let err = run(
        "negative",
        r"
cluster voters=1,2,3
expect leader 1 1
",
    )
    .expect_err("nobody leads");
    assert!(err.contains("line 3: `expect leader 1 1`"), "{err}");

    let err = run("negative", "timeout 1\n").expect_err("no cluster line");
    assert!(err.contains("line 1"), "{err}");

    let err = run("negative", "cluster voters=1,2\nexpect voters 9 1,2\n").expect_err("no node 9");
    assert!(err.contains("there is no node 9"), "{err}");

    let err = run("negative", "cluster voters=1,2\nexpect voters none 1,2\n")
        .expect_err("an empty selection");
    assert!(err.contains("no node selected"), "{err}");

    let err = run(
        "negative",
        "cluster voters=1,2\nexpect voters 1 1,2 extra\n",
    )
    .expect_err("a trailing word");
    assert!(err.contains("unexpected `extra`"), "{err}");

    // A panic in a scenario is how a `#[test]` fails; make sure `scenario` does panic.
    let panicked = std::panic::catch_unwind(|| {
        scenario("negative", "cluster voters=1,2,3\nexpect leader 1 1\n");
    });
    assert!(panicked.is_err());
}

#[test]
fn kebab_names() {
    assert_eq!(kebab("NotATransferTarget(1)"), "not-a-transfer-target 1");
    assert_eq!(kebab("TermNotCommitted"), "term-not-committed");
    assert_eq!(kebab("AlreadyVoter(4)"), "already-voter 4");
}
