//! Linearizability of a key-value history, checked key by key (a history of single-key
//! operations is linearizable iff each key's sub-history is), with the Wing-Gong search as
//! refined by Lowe: walk the history in time order, tentatively linearize any operation whose
//! call is reachable before the first pending return, memoize `(linearized set, register
//! state)` so no configuration is explored twice, and backtrack when a return is reached
//! whose operation is not yet linearized.
//!
//! Each key is a register holding `Option<value>` with put, get, delete and compare-and-swap.
//! An operation without an answer (`Outcome::Unknown`) may have taken effect at any moment
//! after its invocation or never: its return is placed after everything else and any answer
//! is accepted for it; an unanswered read has no effect and is dropped. A refused operation
//! (`Outcome::Fail`) took no effect and is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Cmd, Op, Outcome, Ret};

/// Why a key's history is not linearizable (or could not be decided).
#[derive(Clone, Debug)]
pub struct Violation {
    pub key: String,
    /// What went wrong, with the operations around the point where every order failed.
    pub detail: String,
    /// `true` when the search ran out of budget instead of finding no order.
    pub inconclusive: bool,
}

/// Figures of a successful check.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub keys: usize,
    pub ops_checked: usize,
    pub unknown_writes: usize,
    pub search_steps: u64,
}

const NONE: usize = usize::MAX;

/// Values are interned: 0 stands for "absent", `v + 1` for the `v`-th distinct string.
type State = u32;

#[derive(Clone, Debug)]
enum ICmd {
    Put(State),
    Get,
    Delete,
    Cas { expected: State, new: State },
}

#[derive(Clone, Debug)]
enum IRet {
    Ok,
    Value(State),
    Cas { swapped: bool, previous: State },
}

struct LinOp {
    call: u64,
    ret: u64,
    cmd: ICmd,
    /// `None`: unanswered, any answer is accepted.
    out: Option<IRet>,
    /// Index in the input slice, for reporting.
    src: usize,
}

/// The register's transition: the state after `op`, or `None` if `op`'s answer is impossible
/// in `state`.
fn step(state: State, op: &LinOp) -> Option<State> {
    match (&op.cmd, &op.out) {
        (ICmd::Put(v), None | Some(IRet::Ok)) => Some(*v),
        (ICmd::Delete, None | Some(IRet::Ok)) => Some(0),
        (ICmd::Get, Some(IRet::Value(v))) => (*v == state).then_some(state),
        (ICmd::Get, None) => Some(state),
        (ICmd::Cas { expected, new }, out) => {
            let swapped = *expected == state;
            if let Some(o) = out {
                match o {
                    IRet::Cas {
                        swapped: s,
                        previous,
                    } if *s == swapped && *previous == state => {}
                    _ => return None,
                }
            }
            Some(if swapped { *new } else { state })
        }
        _ => None,
    }
}

struct Interner(HashMap<String, State>);

impl Interner {
    fn val(&mut self, v: &Option<String>) -> State {
        match v {
            None => 0,
            Some(s) => {
                let n = self.0.len() as State + 1;
                *self.0.entry(s.clone()).or_insert(n)
            }
        }
    }
}

/// Check every key of `history`. `budget` bounds the search steps per key.
pub fn check(history: &[Op], budget: u64) -> Result<Stats, Vec<Violation>> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        by_key.entry(&op.key).or_default().push(i);
    }
    let mut stats = Stats::default();
    let mut bad = Vec::new();
    for (key, idx) in by_key {
        let mut intern = Interner(HashMap::new());
        let mut ops = Vec::new();
        for &i in &idx {
            let op = &history[i];
            let out = match &op.outcome {
                Outcome::Fail(_) => continue,
                Outcome::Unknown(_) if !op.cmd.is_write() => continue,
                Outcome::Unknown(_) => None,
                Outcome::Ok(r) => Some(match r {
                    Ret::Ok => IRet::Ok,
                    Ret::Value(v) => IRet::Value(intern.val(v)),
                    Ret::Cas { swapped, previous } => IRet::Cas {
                        swapped: *swapped,
                        previous: intern.val(previous),
                    },
                }),
            };
            let cmd = match &op.cmd {
                Cmd::Put(v) => ICmd::Put(intern.val(&Some(v.clone()))),
                Cmd::Get => ICmd::Get,
                Cmd::Delete => ICmd::Delete,
                Cmd::Cas { expected, new } => ICmd::Cas {
                    expected: intern.val(expected),
                    new: intern.val(new),
                },
            };
            stats.unknown_writes += out.is_none() as usize;
            ops.push(LinOp {
                call: op.call_ns,
                ret: if out.is_none() { u64::MAX } else { op.ret_ns },
                cmd,
                out,
                src: i,
            });
        }
        stats.keys += 1;
        stats.ops_checked += ops.len();
        match check_register(&ops, budget) {
            Ok(steps) => stats.search_steps += steps,
            Err((at, inconclusive)) => bad.push(Violation {
                key: key.to_string(),
                detail: describe(history, &ops, at, inconclusive),
                inconclusive,
            }),
        }
    }
    if bad.is_empty() {
        Ok(stats)
    } else {
        Err(bad)
    }
}

fn describe(history: &[Op], ops: &[LinOp], at: usize, inconclusive: bool) -> String {
    if inconclusive {
        return format!(
            "search budget exhausted after reaching {} of {} operations",
            at,
            ops.len()
        );
    }
    // `at` is the operation whose return could not be preceded by any valid order; show the
    // operations that overlap it or ended shortly before it.
    let stuck = &ops[at];
    let mut lines = vec![format!(
        "no linearization orders the operation returning at {:.3}s: {:?}",
        stuck.ret as f64 / 1e9,
        history[stuck.src]
    )];
    lines.push("operations of this key around it (the 40 invoked last before it returned):".into());
    let lo = stuck.call.saturating_sub(2_000_000_000);
    let mut near: Vec<&LinOp> = ops
        .iter()
        .filter(|o| o.call <= stuck.ret && o.ret >= lo)
        .collect();
    near.sort_by_key(|o| o.call);
    let skip = near.len().saturating_sub(40);
    for o in near.into_iter().skip(skip) {
        let h = &history[o.src];
        lines.push(format!(
            "  [{:.4}s .. {}] client {} seq {:?} {:?} -> {:?}",
            h.call_ns as f64 / 1e9,
            if o.ret == u64::MAX {
                "?".to_string()
            } else {
                format!("{:.4}s", h.ret_ns as f64 / 1e9)
            },
            h.client,
            h.seq,
            h.cmd,
            h.outcome
        ));
    }
    lines.join("\n")
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The search on one register. `Ok(steps)` or `Err((op index, inconclusive))`.
fn check_register(ops: &[LinOp], budget: u64) -> Result<u64, (usize, bool)> {
    let n = ops.len();
    if n == 0 {
        return Ok(0);
    }
    // Events 1..=2n (0 is the list head): calls before returns at equal times, so operations
    // touching in time count as concurrent (the weaker, never falsely failing reading).
    let mut evs: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        evs.push((o.call, 0, i));
        evs.push((o.ret, 1, i));
    }
    evs.sort_unstable();
    let len = 2 * n + 1;
    let mut next = vec![NONE; len];
    let mut prev = vec![NONE; len];
    let mut op_of = vec![0usize; len];
    let mut is_call = vec![false; len];
    let mut mate = vec![NONE; len];
    let mut call_ev = vec![NONE; n];
    for (k, &(_, kind, i)) in evs.iter().enumerate() {
        let e = k + 1;
        prev[e] = k;
        next[k] = e;
        op_of[e] = i;
        is_call[e] = kind == 0;
        if kind == 0 {
            call_ev[i] = e;
        } else {
            mate[call_ev[i]] = e;
        }
    }
    let lift = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        for x in [e, mate[e]] {
            next[prev[x]] = next[x];
            if next[x] != NONE {
                prev[next[x]] = prev[x];
            }
        }
    };
    let unlift = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        for x in [mate[e], e] {
            next[prev[x]] = x;
            if next[x] != NONE {
                prev[next[x]] = x;
            }
        }
    };
    let mut state: State = 0;
    let mut lin = Bits::new(n);
    let mut cache: HashSet<(Bits, State)> = HashSet::new();
    let mut calls: Vec<(usize, State)> = Vec::new();
    let mut entry = next[0];
    let mut steps = 0u64;
    let mut deepest = (0usize, NONE);
    while next[0] != NONE {
        steps += 1;
        if steps > budget {
            return Err((deepest.0, true));
        }
        if is_call[entry] {
            let i = op_of[entry];
            if let Some(s2) = step(state, &ops[i]) {
                let mut l2 = lin.clone();
                l2.set(i);
                if cache.insert((l2.clone(), s2)) {
                    calls.push((entry, state));
                    state = s2;
                    lin = l2;
                    lift(entry, &mut next, &mut prev);
                    entry = next[0];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            if calls.len() >= deepest.0 {
                deepest = (calls.len(), op_of[entry]);
            }
            let Some((e, s)) = calls.pop() else {
                return Err((deepest.1, false));
            };
            state = s;
            lin.clear(op_of[e]);
            unlift(e, &mut next, &mut prev);
            entry = next[e];
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, key: &str, cmd: Cmd, call: u64, ret: u64, outcome: Outcome) -> Op {
        Op {
            client,
            client_id: client,
            seq: None,
            key: key.into(),
            cmd,
            call_ns: call,
            ret_ns: ret,
            outcome,
        }
    }
    fn put(c: u64, v: &str, call: u64, ret: u64) -> Op {
        op(c, "x", Cmd::Put(v.into()), call, ret, Outcome::Ok(Ret::Ok))
    }
    fn get(c: u64, v: Option<&str>, call: u64, ret: u64) -> Op {
        op(
            c,
            "x",
            Cmd::Get,
            call,
            ret,
            Outcome::Ok(Ret::Value(v.map(str::to_string))),
        )
    }
    fn ok(h: &[Op]) -> bool {
        check(h, 1_000_000).is_ok()
    }

    #[test]
    fn sequential_and_concurrent_histories_that_have_an_order_pass() {
        assert!(ok(&[put(1, "a", 0, 10), get(2, Some("a"), 20, 30)]));
        // Concurrent put and get: the get may see either value.
        assert!(ok(&[put(1, "a", 0, 100), get(2, None, 10, 20)]));
        assert!(ok(&[put(1, "a", 0, 100), get(2, Some("a"), 10, 20)]));
        // Two overlapping puts, then reads agreeing on the later one.
        assert!(ok(&[
            put(1, "a", 0, 50),
            put(2, "b", 10, 60),
            get(3, Some("a"), 70, 80),
            get(1, Some("a"), 90, 95),
        ]));
        let cas = |c, e: Option<&str>, n: Option<&str>, call, ret, sw, prev: Option<&str>| {
            op(
                c,
                "x",
                Cmd::Cas {
                    expected: e.map(str::to_string),
                    new: n.map(str::to_string),
                },
                call,
                ret,
                Outcome::Ok(Ret::Cas {
                    swapped: sw,
                    previous: prev.map(str::to_string),
                }),
            )
        };
        assert!(ok(&[
            put(1, "a", 0, 10),
            cas(2, Some("a"), Some("b"), 20, 30, true, Some("a")),
            cas(3, Some("a"), Some("c"), 40, 50, false, Some("b")),
            op(1, "x", Cmd::Delete, 60, 70, Outcome::Ok(Ret::Ok)),
            get(2, None, 80, 90),
        ]));
        // A CAS answer that contradicts the state is rejected.
        assert!(!ok(&[
            put(1, "a", 0, 10),
            cas(2, Some("a"), Some("b"), 20, 30, false, Some("a")),
        ]));
    }

    /// The mutant: a stale read after a completed write (what a leader serving reads without
    /// confirming its leadership would produce) must be rejected, and the report names it.
    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_rejected() {
        let h = [
            put(1, "a", 0, 10),
            put(1, "b", 20, 30),
            get(2, Some("a"), 40, 50),
        ];
        let err = check(&h, 1_000_000).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(!err[0].inconclusive);
        assert!(err[0].detail.contains("Some(\"a\")"), "{}", err[0].detail);
        // Two reads that see the two writes in opposite orders.
        assert!(!ok(&[
            put(1, "a", 0, 100),
            put(2, "b", 0, 100),
            get(3, Some("a"), 110, 120),
            get(4, Some("b"), 130, 140),
            get(3, Some("a"), 150, 160),
        ]));
        // A read of a value nobody wrote.
        assert!(!ok(&[put(1, "a", 0, 10), get(2, Some("z"), 20, 30)]));
    }

    #[test]
    fn unknown_writes_may_take_effect_late_or_never_and_failures_never() {
        let unknown = |c, v: &str, call, ret| {
            op(
                c,
                "x",
                Cmd::Put(v.into()),
                call,
                ret,
                Outcome::Unknown("timeout".into()),
            )
        };
        // Took effect long after the client gave up.
        assert!(ok(&[
            put(1, "a", 0, 10),
            unknown(2, "b", 20, 30),
            get(3, Some("a"), 40, 50),
            get(3, Some("b"), 60, 70),
        ]));
        // Never took effect.
        assert!(ok(&[
            put(1, "a", 0, 10),
            unknown(2, "b", 20, 30),
            get(3, Some("a"), 40, 50),
        ]));
        // But not before it was invoked.
        assert!(!ok(&[
            get(3, Some("b"), 0, 5),
            put(1, "a", 6, 10),
            unknown(2, "b", 20, 30),
        ]));
        // A refused write never takes effect.
        let failed = op(
            2,
            "x",
            Cmd::Put("b".into()),
            20,
            30,
            Outcome::Fail("400".into()),
        );
        assert!(!ok(&[
            put(1, "a", 0, 10),
            failed,
            get(3, Some("b"), 40, 50)
        ]));
    }

    #[test]
    fn keys_are_independent_and_a_long_history_is_fast() {
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..20_000u64 {
            let key = format!("k{}", i % 7);
            let v = format!("v{i}");
            let mut p = put(i % 5, &v, t, t + 15);
            p.key = key.clone();
            let mut g = get((i + 1) % 5, Some(&v), t + 10, t + 30);
            g.key = key;
            h.push(p);
            h.push(g);
            t += 20;
        }
        let s = check(&h, 10_000_000).unwrap();
        assert_eq!(s.keys, 7);
        assert_eq!(s.ops_checked, 40_000);
        // A different key's write is invisible to this key.
        let mut other = put(1, "b", 0, 10);
        other.key = "y".into();
        assert!(!ok(&[put(1, "a", 0, 5), other, get(2, Some("b"), 20, 30)]));
    }
}
