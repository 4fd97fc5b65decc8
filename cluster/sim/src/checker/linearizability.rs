//! Linearizability of the operations on one key (Herlihy & Wing, "Linearizability: a correctness
//! condition for concurrent objects", 1990).
//!
//! A history is linearizable if every operation appears to take effect atomically at some point
//! between its invocation and its response. [`check_key`] decides this for the operations one key
//! saw, against the sequential register model [`step`] (set, del, get, incr, cas).
//!
//! # Algorithm
//!
//! The search is Wing & Gong's, with Lowe's memoisation ("Testing for linearizability", 2017), laid
//! out as in Porcupine (Anish Athalye's checker):
//!
//! 1. Each op becomes a call event at `invoke_ms` and a return event at `complete_ms`, sorted by
//!    time, calls before returns at equal times (intervals are closed, so `a` precedes `b` only if
//!    `a.complete_ms < b.invoke_ms`), in a doubly linked list.
//! 2. The calls before the first return in the list are the ops that may be linearized next: no op
//!    still pending returned before they were invoked. The search picks one, applies [`step`] to the
//!    current model state, checks the output against the recorded one, and on success "lifts" the
//!    op (unlinks its call and return, dancing-links style) and carries on from the new state.
//!    When no candidate works it backtracks: it undoes the last lift and tries the next candidate
//!    there. The search runs on an explicit stack, so histories of thousands of ops don't recurse
//!    on the Rust stack.
//! 3. Lowe's memoisation: a configuration is the set of linearized ops (a bitset) plus the model
//!    state; the future of the search depends only on it, so a configuration already explored is
//!    not explored again. This keeps the search polynomial in practice.
//!
//! # Ops with unknown outcome
//!
//! An op without a response (`complete_ms: None`) may have taken effect at any time after its
//! invocation, or never, and its output is unconstrained. It gets a return event at +infinity, so
//! it never has to precede anything, and the search succeeds as soon as every *completed* op is
//! linearized: the unknown ops left over are the ones that never took effect (or took effect after
//! the end, which nobody observed). An unknown `get` can neither change the state nor be checked, so
//! it is dropped up front. Unknown ops are tried only after the completed candidates (they are needed
//! only to explain some later observation), and three reductions keep them from making the search
//! exponential, each sound because it only drops searches whose success implies the success of a
//! search that is kept:
//!
//! * Symmetry: unknown ops with equal inputs are interchangeable (same effect, unconstrained output,
//!   the earlier-invoked one is available whenever the later one is), so only the earliest-invoked
//!   unlinearized one of each input is a candidate.
//! * Useless placements: an unknown op that would leave the state unchanged, or that is immediately
//!   followed by a blind write (`set`/`del`, which overwrites its effect unobserved), can be removed
//!   from any linearization, so the search never places it there.
//! * Dominance: leaving an unknown op out only adds options (it could still be placed later), so the
//!   memo is keyed by (linearized completed ops, state) and holds the sets of linearized unknown ops
//!   seen with it: a configuration is skipped if an explored one had a subset of its unknown ops
//!   (and no stricter constraint on the next op).
//!
//! When the history is not linearizable the [`Violation`] describes the longest linearizable prefix
//! the search found and the completed ops none of which could be placed after it.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

/// The value stored under one key: absent or some bytes.
pub type Value = Option<Vec<u8>>;

/// An operation's input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Set(Vec<u8>),
    Del,
    Get,
    /// Add to a decimal int64 value; absent or empty counts as 0.
    Incr(i64),
    /// Check-and-set: passes if the current value equals `expect` (None = must be absent); then sets `new`.
    Cas {
        expect: Value,
        new: Vec<u8>,
    },
}

/// An operation's output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Set, Del succeeded.
    Done,
    /// Get's answer.
    Value(Value),
    /// Incr's new value.
    Int(i64),
    /// Incr refused because the current value is not a decimal int64 (state unchanged).
    NotAnInteger,
    /// Incr refused because the result would overflow i64 (state unchanged).
    Overflow,
    /// Cas: whether the check passed (and so the set happened).
    Cas(bool),
}

/// One operation on one key as a client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Which client issued it (for messages only).
    pub client: u64,
    /// When it was invoked (simulated ms, global time).
    pub invoke_ms: u64,
    /// When its response arrived; `None` if the client never got one (timed out, or got an error
    /// after which the op may or may not have happened): the op may take effect at any point
    /// after its invocation, or not at all, and its output is unknown.
    pub complete_ms: Option<u64>,
    pub input: Input,
    /// The output seen; must be `Some` when `complete_ms` is `Some`.
    pub output: Option<Output>,
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Violation {}

/// The sequential model: apply `input` to `state`, returning the new state and the output.
pub fn step(state: &Value, input: &Input) -> (Value, Output) {
    match input {
        Input::Set(v) => (Some(v.clone()), Output::Done),
        Input::Del => (None, Output::Done),
        Input::Get => (state.clone(), Output::Value(state.clone())),
        Input::Incr(delta) => {
            let base = match state {
                None => Some(0),
                Some(bytes) if bytes.is_empty() => Some(0),
                Some(bytes) => std::str::from_utf8(bytes).ok().and_then(|s| s.parse::<i64>().ok()),
            };
            match base {
                None => (state.clone(), Output::NotAnInteger),
                Some(base) => match base.checked_add(*delta) {
                    None => (state.clone(), Output::Overflow),
                    Some(new) => (Some(new.to_string().into_bytes()), Output::Int(new)),
                },
            }
        }
        Input::Cas { expect, new } => {
            if state == expect {
                (Some(new.clone()), Output::Cas(true))
            } else {
                (state.clone(), Output::Cas(false))
            }
        }
    }
}

/// Checks that the ops on ONE key are linearizable against the register model [`step`], starting
/// from `initial` (usually None). The order of `ops` in the slice does not matter.
pub fn check_key(initial: &Value, ops: &[Op]) -> Result<(), Violation> {
    for (i, op) in ops.iter().enumerate() {
        if let Some(complete) = op.complete_ms {
            if complete < op.invoke_ms {
                return Err(Violation {
                    message: format!(
                        "malformed history: op {} completed at {complete} ms, before its invocation",
                        fmt_op(i, op)
                    ),
                });
            }
            if op.output.is_none() {
                return Err(Violation {
                    message: format!("malformed history: op {} completed without an output", fmt_op(i, op)),
                });
            }
        }
    }
    Search::new(initial, ops).run()
}

/// End of the list.
const NIL: usize = usize::MAX;
/// The return time of ops with unknown outcome: after every real time.
const INFINITY: u128 = u64::MAX as u128 + 1;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A completed op: must be linearized, with its recorded output. `rank` indexes `Search::done`.
    Completed { rank: usize },
    /// An op with unknown outcome. `rank` indexes `Search::unknown`; `class` groups unknown ops with
    /// equal inputs, and `class_rank` is the op's position in its class in invocation order.
    Unknown { rank: usize, class: usize, class_rank: usize },
}

/// A call or return event in the linked list. Node 0 is the list head (a sentinel).
#[derive(Clone, Debug)]
struct Node {
    prev: usize,
    next: usize,
    /// Index of the op in the caller's slice.
    op: usize,
    call: bool,
    /// For a call, its return node.
    ret: usize,
    kind: Kind,
}

/// One level of the explicit search stack: a configuration and the candidates tried from it.
#[derive(Debug)]
struct Frame {
    /// Call nodes that may be linearized next, completed ops first.
    candidates: Vec<usize>,
    /// The next candidate to try.
    next: usize,
    /// The candidate currently linearized from here (its call node), with the state before it.
    lifted: Option<(usize, Value)>,
}

/// The configuration that linearized the most completed ops, for the violation message.
#[derive(Debug)]
struct Best {
    count: usize,
    done: Vec<u64>,
    state: Value,
    /// The last few ops placed (slice indices), oldest first.
    tail: Vec<usize>,
}

#[derive(Debug)]
struct Search<'a> {
    initial: &'a Value,
    ops: &'a [Op],
    /// Per op (slice index); `None` for the ops dropped up front.
    kinds: Vec<Option<Kind>>,
    nodes: Vec<Node>,
    /// Bitset of linearized completed ops, by rank.
    done: Vec<u64>,
    /// Bitset of linearized unknown ops, by rank.
    unknown: Vec<u64>,
    /// Per class of unknown ops: how many are linearized (always the first ones by invocation).
    class_next: Vec<usize>,
    completed_total: usize,
    /// Completed ops not yet linearized.
    remaining: usize,
    state: Value,
    /// (linearized completed ops, state) -> antichain of (linearized unknown ops, "the last op
    /// placed had an unknown outcome") of the configurations explored. Lookups only.
    memo: HashMap<(Vec<u64>, Value), Vec<(Vec<u64>, bool)>>,
}

impl<'a> Search<'a> {
    fn new(initial: &'a Value, ops: &'a [Op]) -> Self {
        // (time, 0 = call / 1 = return, op index); sorting puts calls before returns at equal times.
        let mut events: Vec<(u128, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            if op.complete_ms.is_none() && op.input == Input::Get {
                continue; // Changes nothing, checks nothing.
            }
            events.push((u128::from(op.invoke_ms), 0, i));
            events.push((op.complete_ms.map_or(INFINITY, u128::from), 1, i));
        }
        events.sort_unstable();

        let mut kinds: Vec<Option<Kind>> = vec![None; ops.len()];
        let mut completed_total = 0;
        let mut unknown_total = 0;
        let mut classes: HashMap<&Input, usize> = HashMap::new();
        let mut class_sizes: Vec<usize> = Vec::new();
        for &(_, is_return, i) in &events {
            if is_return == 1 {
                continue;
            }
            let kind = if ops[i].complete_ms.is_some() {
                completed_total += 1;
                Kind::Completed { rank: completed_total - 1 }
            } else {
                let next_class = class_sizes.len();
                let class = *classes.entry(&ops[i].input).or_insert(next_class);
                if class == next_class {
                    class_sizes.push(0);
                }
                let class_rank = class_sizes[class];
                class_sizes[class] += 1;
                unknown_total += 1;
                Kind::Unknown { rank: unknown_total - 1, class, class_rank }
            };
            kinds[i] = Some(kind);
        }

        let head =
            Node { prev: NIL, next: NIL, op: 0, call: false, ret: NIL, kind: Kind::Completed { rank: 0 } };
        let mut nodes = vec![head];
        let mut call_node = vec![NIL; ops.len()];
        for (k, &(_, is_return, i)) in events.iter().enumerate() {
            let n = k + 1;
            nodes[n - 1].next = n;
            let kind = kinds[i].unwrap_or(Kind::Completed { rank: 0 });
            nodes.push(Node { prev: n - 1, next: NIL, op: i, call: is_return == 0, ret: NIL, kind });
            if is_return == 0 {
                call_node[i] = n;
            } else {
                nodes[call_node[i]].ret = n;
            }
        }

        Search {
            initial,
            ops,
            kinds,
            nodes,
            done: vec![0; completed_total.div_ceil(64)],
            unknown: vec![0; unknown_total.div_ceil(64)],
            class_next: vec![0; class_sizes.len()],
            completed_total,
            remaining: completed_total,
            state: initial.clone(),
            memo: HashMap::new(),
        }
    }

    fn run(mut self) -> Result<(), Violation> {
        if self.remaining == 0 {
            return Ok(());
        }
        let ops = self.ops;
        let initial = self.state.clone();
        self.enter(&initial, false);
        let mut best = Best { count: 0, done: self.done.clone(), state: initial, tail: Vec::new() };
        let mut stack = vec![Frame { candidates: self.candidates(false), next: 0, lifted: None }];
        while let Some(top) = stack.last_mut() {
            if let Some((call, before)) = top.lifted.take() {
                self.unlift(call);
                self.state = before;
            }
            let Some(&call) = top.candidates.get(top.next) else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let node = &self.nodes[call];
            let kind = node.kind;
            let op = &ops[node.op];
            let (state, output) = step(&self.state, &op.input);
            let unknown = match kind {
                Kind::Completed { .. } => {
                    if op.output.as_ref() != Some(&output) {
                        continue;
                    }
                    false
                }
                Kind::Unknown { .. } => {
                    if state == self.state {
                        continue; // A no-op here: leaving it out is at least as good.
                    }
                    true
                }
            };
            self.lift(call);
            if !self.enter(&state, unknown) {
                self.unlift(call);
                continue;
            }
            top.lifted = Some((call, std::mem::replace(&mut self.state, state)));
            if self.remaining == 0 {
                return Ok(());
            }
            let count = self.completed_total - self.remaining;
            if count > best.count {
                best.count = count;
                best.done.clone_from(&self.done);
                best.state.clone_from(&self.state);
                best.tail = stack
                    .iter()
                    .rev()
                    .filter_map(|f| f.lifted.as_ref().map(|&(c, _)| self.nodes[c].op))
                    .take(3)
                    .collect();
                best.tail.reverse();
            }
            let candidates = self.candidates(unknown);
            stack.push(Frame { candidates, next: 0, lifted: None });
        }
        Err(self.violation(&best))
    }

    /// The call nodes that may be linearized next: the calls before the first return, completed
    /// ops first, then the first unlinearized unknown op of each input. After an unknown op
    /// (`after_unknown`), blind writes are left out: they would overwrite its effect unobserved.
    fn candidates(&self, after_unknown: bool) -> Vec<usize> {
        let mut completed = Vec::new();
        let mut unknown = Vec::new();
        let mut n = self.nodes[0].next;
        while n != NIL && self.nodes[n].call {
            let node = &self.nodes[n];
            let blind = matches!(self.ops[node.op].input, Input::Set(_) | Input::Del);
            if !(after_unknown && blind) {
                match node.kind {
                    Kind::Completed { .. } => completed.push(n),
                    Kind::Unknown { class, class_rank, .. } => {
                        if self.class_next[class] == class_rank {
                            unknown.push(n);
                        }
                    }
                }
            }
            n = node.next;
        }
        completed.append(&mut unknown);
        completed
    }

    /// Records the current configuration (with `state` and the flag) as explored, unless an explored
    /// configuration dominates it; returns whether it is new.
    fn enter(&mut self, state: &Value, after_unknown: bool) -> bool {
        let explored = self.memo.entry((self.done.clone(), state.clone())).or_default();
        // (u0, f0) dominates (u, f) if u0 ⊆ u and f0 is no stricter than f.
        if explored.iter().any(|(u, f)| (!*f || after_unknown) && is_subset(u, &self.unknown)) {
            return false;
        }
        explored.retain(|(u, f)| !((!after_unknown || *f) && is_subset(&self.unknown, u)));
        explored.push((self.unknown.clone(), after_unknown));
        true
    }

    /// Marks the op of call node `call` linearized and unlinks its call and return.
    fn lift(&mut self, call: usize) {
        match self.nodes[call].kind {
            Kind::Completed { rank } => {
                set_bit(&mut self.done, rank);
                self.remaining -= 1;
            }
            Kind::Unknown { rank, class, .. } => {
                set_bit(&mut self.unknown, rank);
                self.class_next[class] += 1;
            }
        }
        let ret = self.nodes[call].ret;
        self.unlink(call);
        self.unlink(ret);
    }

    /// Undoes `lift(call)`; lifts must be undone in reverse order.
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        self.relink(ret);
        self.relink(call);
        match self.nodes[call].kind {
            Kind::Completed { rank } => {
                clear_bit(&mut self.done, rank);
                self.remaining += 1;
            }
            Kind::Unknown { rank, class, .. } => {
                clear_bit(&mut self.unknown, rank);
                self.class_next[class] -= 1;
            }
        }
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        if next != NIL {
            self.nodes[next].prev = n;
        }
    }

    fn violation(&self, best: &Best) -> Violation {
        const TAIL: usize = 3;
        const STUCK: usize = 4;
        let ops = self.ops;
        let unknown = ops.iter().filter(|op| op.complete_ms.is_none()).count();
        let mut m = String::new();
        let _ = writeln!(
            m,
            "not linearizable: {} ops on the key ({} completed, {unknown} with unknown outcome), initial value {}",
            ops.len(),
            self.completed_total,
            fmt_value(self.initial),
        );
        let _ = writeln!(
            m,
            "longest linearizable prefix found places {} of the {} completed ops, leaving value {}",
            best.count,
            self.completed_total,
            fmt_value(&best.state),
        );
        if !best.tail.is_empty() {
            let _ = writeln!(m, "it ends with:");
            for &i in best.tail.iter().rev().take(TAIL).rev() {
                let _ = writeln!(m, "  {}", fmt_op(i, &ops[i]));
            }
        }
        // The completed ops left out that no other left-out op precedes: none of them can come next.
        let left_out: Vec<usize> = (0..ops.len())
            .filter(
                |&i| matches!(self.kinds[i], Some(Kind::Completed { rank }) if !test_bit(&best.done, rank)),
            )
            .collect();
        let first_return = left_out.iter().filter_map(|&i| ops[i].complete_ms).min().unwrap_or(u64::MAX);
        let mut stuck: Vec<usize> =
            left_out.into_iter().filter(|&i| ops[i].invoke_ms <= first_return).collect();
        stuck.sort_by_key(|&i| (ops[i].invoke_ms, i));
        let _ = writeln!(
            m,
            "no completed op can be placed next (even after unknown-outcome ops); candidates (model output):"
        );
        for &i in stuck.iter().take(STUCK) {
            let (_, output) = step(&best.state, &ops[i].input);
            let _ = writeln!(m, "  {} ({})", fmt_op(i, &ops[i]), fmt_output(&output));
        }
        if stuck.len() > STUCK {
            let _ = writeln!(m, "  ... and {} more", stuck.len() - STUCK);
        }
        Violation { message: m.trim_end().to_owned() }
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

fn test_bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// Whether every bit of `a` is set in `b` (same lengths).
fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

fn fmt_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 32;
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => {
            if s.chars().count() <= MAX {
                format!("{s:?}")
            } else {
                let head: String = s.chars().take(MAX).collect();
                format!("{head:?}... ({} bytes)", bytes.len())
            }
        }
        _ => {
            let hex: String = bytes.iter().take(MAX / 2).map(|b| format!("{b:02x}")).collect();
            if bytes.len() > MAX / 2 {
                format!("0x{hex}... ({} bytes)", bytes.len())
            } else {
                format!("0x{hex}")
            }
        }
    }
}

fn fmt_value(value: &Value) -> String {
    value.as_deref().map_or_else(|| "absent".to_owned(), fmt_bytes)
}

fn fmt_input(input: &Input) -> String {
    match input {
        Input::Set(v) => format!("set {}", fmt_bytes(v)),
        Input::Del => "del".to_owned(),
        Input::Get => "get".to_owned(),
        Input::Incr(d) => format!("incr {d}"),
        Input::Cas { expect, new } => format!("cas {} -> {}", fmt_value(expect), fmt_bytes(new)),
    }
}

fn fmt_output(output: &Output) -> String {
    match output {
        Output::Done => "ok".to_owned(),
        Output::Value(v) => fmt_value(v),
        Output::Int(i) => i.to_string(),
        Output::NotAnInteger => "not an integer".to_owned(),
        Output::Overflow => "overflow".to_owned(),
        Output::Cas(true) => "cas passed".to_owned(),
        Output::Cas(false) => "cas failed".to_owned(),
    }
}

/// `#3 client 2 [10..25 ms] get -> "a"`; unknown completion and output print as `?`.
fn fmt_op(index: usize, op: &Op) -> String {
    let complete = op.complete_ms.map_or_else(|| "?".to_owned(), |c| c.to_string());
    let output =
        op.output.as_ref().filter(|_| op.complete_ms.is_some()).map_or_else(|| "?".to_owned(), fmt_output);
    format!(
        "#{index} client {} [{}..{complete} ms] {} -> {output}",
        op.client,
        op.invoke_ms,
        fmt_input(&op.input)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn v(s: &str) -> Value {
        Some(b(s))
    }

    fn set(s: &str) -> Input {
        Input::Set(b(s))
    }

    fn got(s: Option<&str>) -> Output {
        Output::Value(s.map(b))
    }

    /// A completed op.
    fn op(client: u64, invoke: u64, complete: u64, input: Input, output: Output) -> Op {
        Op { client, invoke_ms: invoke, complete_ms: Some(complete), input, output: Some(output) }
    }

    /// An op with unknown outcome.
    fn lost(client: u64, invoke: u64, input: Input) -> Op {
        Op { client, invoke_ms: invoke, complete_ms: None, input, output: None }
    }

    fn ok(ops: &[Op]) -> bool {
        check_key(&None, ops).is_ok()
    }

    #[test]
    fn step_set_del_get() {
        assert_eq!(step(&None, &set("a")), (v("a"), Output::Done));
        assert_eq!(step(&v("b"), &set("a")), (v("a"), Output::Done));
        assert_eq!(step(&v("b"), &Input::Del), (None, Output::Done));
        assert_eq!(step(&None, &Input::Del), (None, Output::Done));
        assert_eq!(step(&v("b"), &Input::Get), (v("b"), got(Some("b"))));
        assert_eq!(step(&None, &Input::Get), (None, got(None)));
        assert_eq!(step(&v(""), &Input::Get), (v(""), got(Some(""))));
    }

    #[test]
    fn step_incr() {
        assert_eq!(step(&None, &Input::Incr(5)), (v("5"), Output::Int(5)));
        assert_eq!(step(&v(""), &Input::Incr(-2)), (v("-2"), Output::Int(-2)));
        assert_eq!(step(&v("41"), &Input::Incr(1)), (v("42"), Output::Int(42)));
        assert_eq!(step(&v("-5"), &Input::Incr(3)), (v("-2"), Output::Int(-2)));
        assert_eq!(step(&v("+7"), &Input::Incr(1)), (v("8"), Output::Int(8)));
        assert_eq!(step(&v("3"), &Input::Incr(0)), (v("3"), Output::Int(3)));
        // Normalised: "+7" + 0 is stored as "7".
        assert_eq!(step(&v("+7"), &Input::Incr(0)), (v("7"), Output::Int(7)));
        for bad in ["abc", " 1", "1 ", "1.5", "0x10", "--1", "+", "-", "99999999999999999999"] {
            assert_eq!(step(&v(bad), &Input::Incr(1)), (v(bad), Output::NotAnInteger), "{bad:?}");
        }
        let not_utf8 = Some(vec![0xff, 0x31]);
        assert_eq!(step(&not_utf8, &Input::Incr(1)), (not_utf8.clone(), Output::NotAnInteger));
        let max = v(&i64::MAX.to_string());
        assert_eq!(step(&max, &Input::Incr(1)), (max.clone(), Output::Overflow));
        assert_eq!(step(&max, &Input::Incr(0)), (max.clone(), Output::Int(i64::MAX)));
        let min = v(&i64::MIN.to_string());
        assert_eq!(step(&min, &Input::Incr(-1)), (min.clone(), Output::Overflow));
        assert_eq!(step(&None, &Input::Incr(i64::MIN)), (v(&i64::MIN.to_string()), Output::Int(i64::MIN)));
        assert_eq!(step(&v("-1"), &Input::Incr(i64::MIN)), (v("-1"), Output::Overflow));
    }

    #[test]
    fn step_cas() {
        let cas = |expect: Value, new: &str| Input::Cas { expect, new: b(new) };
        assert_eq!(step(&None, &cas(None, "a")), (v("a"), Output::Cas(true)));
        assert_eq!(step(&v("x"), &cas(None, "a")), (v("x"), Output::Cas(false)));
        assert_eq!(step(&v("x"), &cas(v("x"), "a")), (v("a"), Output::Cas(true)));
        assert_eq!(step(&v("x"), &cas(v("y"), "a")), (v("x"), Output::Cas(false)));
        // Empty is not absent.
        assert_eq!(step(&None, &cas(v(""), "a")), (None, Output::Cas(false)));
        assert_eq!(step(&v(""), &cas(None, "a")), (v(""), Output::Cas(false)));
        assert_eq!(step(&v(""), &cas(v(""), "a")), (v("a"), Output::Cas(true)));
    }

    #[test]
    fn trivial_histories() {
        assert!(ok(&[]));
        assert!(ok(&[lost(1, 0, set("a")), lost(2, 5, Input::Get)]));
        assert!(ok(&[op(1, 0, 1, Input::Get, got(None))]));
        assert!(!ok(&[op(1, 0, 1, Input::Get, got(Some("a")))]));
        assert!(!ok(&[op(1, 0, 1, set("a"), Output::Int(1))]));
    }

    #[test]
    fn sequential_histories() {
        let h = [
            op(1, 0, 10, set("a"), Output::Done),
            op(2, 20, 30, Input::Get, got(Some("a"))),
            op(1, 40, 50, set("b"), Output::Done),
            op(3, 60, 70, Input::Get, got(Some("b"))),
            op(3, 80, 90, Input::Del, Output::Done),
            op(2, 100, 110, Input::Get, got(None)),
        ];
        assert!(ok(&h));

        // A get returning a value never written.
        let mut bad = h.to_vec();
        bad[3].output = Some(got(Some("zz")));
        let err = check_key(&None, &bad).expect_err("never-written value");
        assert!(err.message.contains("\"zz\""), "{err}");

        // A stale read: "a" after "b" was written and acknowledged.
        let mut stale = h.to_vec();
        stale[3].output = Some(got(Some("a")));
        assert!(!ok(&stale));

        // A read of absent after a completed set.
        assert!(!ok(&[op(1, 0, 10, set("a"), Output::Done), op(2, 11, 12, Input::Get, got(None))]));
    }

    #[test]
    fn initial_value_is_respected() {
        let h = [op(1, 0, 10, Input::Get, got(Some("init")))];
        assert!(check_key(&v("init"), &h).is_ok());
        assert!(check_key(&None, &h).is_err());
        let h = [op(1, 0, 10, Input::Incr(1), Output::Int(8))];
        assert!(check_key(&v("7"), &h).is_ok());
        assert!(check_key(&None, &h).is_err());
    }

    #[test]
    fn equal_times_are_concurrent() {
        // The get is invoked exactly when the set completes: they overlap, so either order is fine.
        let h = [op(1, 0, 10, set("a"), Output::Done), op(2, 10, 20, Input::Get, got(None))];
        assert!(ok(&h));
        // One ms later the set precedes the get.
        let h = [op(1, 0, 10, set("a"), Output::Done), op(2, 11, 20, Input::Get, got(None))];
        assert!(!ok(&h));
        // Zero-length intervals at the same instant are concurrent too.
        let h = [op(1, 5, 5, set("a"), Output::Done), op(2, 5, 5, Input::Get, got(None))];
        assert!(ok(&h));
    }

    #[test]
    fn concurrent_sets_can_be_seen_in_either_order() {
        for (first, second) in [("a", "b"), ("b", "a")] {
            let h = [
                op(1, 0, 100, set("a"), Output::Done),
                op(2, 10, 90, set("b"), Output::Done),
                op(3, 20, 30, Input::Get, got(Some(first))),
                op(3, 40, 50, Input::Get, got(Some(second))),
                op(4, 120, 130, Input::Get, got(Some(second))),
            ];
            assert!(ok(&h), "{first} then {second}");
        }
        // Both readers must agree on the order: after seeing "a" then "b", "a" can't come back.
        let h = [
            op(1, 0, 100, set("a"), Output::Done),
            op(2, 10, 90, set("b"), Output::Done),
            op(3, 20, 30, Input::Get, got(Some("a"))),
            op(3, 40, 50, Input::Get, got(Some("b"))),
            op(4, 60, 70, Input::Get, got(Some("a"))),
        ];
        assert!(!ok(&h));
        // After both sets completed, the final value is fixed by the later-linearized one.
        let h = [
            op(1, 0, 100, set("a"), Output::Done),
            op(2, 10, 90, set("b"), Output::Done),
            op(3, 20, 30, Input::Get, got(Some("b"))),
            op(4, 120, 130, Input::Get, got(Some("a"))),
            op(4, 140, 150, Input::Get, got(Some("b"))),
        ];
        assert!(!ok(&h));
    }

    #[test]
    fn the_order_of_the_slice_does_not_matter() {
        let h = [
            op(1, 0, 100, set("a"), Output::Done),
            op(2, 10, 90, set("b"), Output::Done),
            op(3, 20, 30, Input::Get, got(Some("b"))),
            op(3, 40, 50, Input::Get, got(Some("a"))),
            lost(5, 45, set("c")),
            op(4, 120, 130, Input::Get, got(Some("c"))),
        ];
        let mut reversed = h.to_vec();
        reversed.reverse();
        assert!(ok(&h));
        assert!(ok(&reversed));
        let mut bad = h.to_vec();
        bad[2].output = Some(got(Some("c"))); // Completed at 30, before "c" was even invoked.
        assert!(!ok(&bad));
        bad.reverse();
        assert!(!ok(&bad));
    }

    #[test]
    fn timed_out_set_may_or_may_not_take_effect() {
        let base = [op(1, 0, 10, set("a"), Output::Done), lost(2, 20, set("b"))];
        let read = |at: u64, value: &str| op(3, at, at + 10, Input::Get, got(Some(value)));
        // A later read may see it...
        assert!(ok(&[&base[..], &[read(100, "b")]].concat()));
        // ... or not.
        assert!(ok(&[&base[..], &[read(100, "a")]].concat()));
        // Not seeing it and then seeing it: it took effect in between.
        assert!(ok(&[&base[..], &[read(100, "a"), read(200, "b")]].concat()));
        // But seeing it and then not seeing it, with no other writes, is not linearizable.
        assert!(!ok(&[&base[..], &[read(100, "b"), read(200, "a")]].concat()));
        // Same with an unknown del.
        let base = [op(1, 0, 10, set("a"), Output::Done), lost(2, 20, Input::Del)];
        assert!(
            ok(&[&base[..], &[op(3, 100, 110, Input::Get, got(None)), read(200, "a")]].concat()) == false
        );
        assert!(ok(&[&base[..], &[read(100, "a"), op(3, 200, 210, Input::Get, got(None))]].concat()));
    }

    #[test]
    fn timed_out_set_may_take_effect_after_later_writes() {
        // The unknown set was invoked first but may land after the completed one.
        let h = [
            lost(1, 0, set("a")),
            op(2, 10, 20, set("b"), Output::Done),
            op(3, 30, 40, Input::Get, got(Some("b"))),
            op(3, 50, 60, Input::Get, got(Some("a"))),
        ];
        assert!(ok(&h));
        // It can take effect only once, though.
        let h = [
            lost(1, 0, set("a")),
            op(2, 10, 20, Input::Get, got(Some("a"))),
            op(2, 30, 40, set("b"), Output::Done),
            op(3, 50, 60, Input::Get, got(Some("a"))),
        ];
        assert!(!ok(&h));
        // Two unknown sets of the same value can explain two appearances.
        let h = [
            lost(1, 0, set("a")),
            lost(4, 5, set("a")),
            op(2, 10, 20, Input::Get, got(Some("a"))),
            op(2, 30, 40, set("b"), Output::Done),
            op(3, 50, 60, Input::Get, got(Some("a"))),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn timed_out_write_invoked_after_a_read_cannot_explain_it() {
        let h = [op(1, 0, 10, Input::Get, got(Some("x"))), lost(2, 11, set("x"))];
        assert!(!ok(&h));
        // Invoked while the read was in flight, it can.
        let h = [op(1, 0, 10, Input::Get, got(Some("x"))), lost(2, 10, set("x"))];
        assert!(ok(&h));
        let h = [op(1, 0, 10, Input::Incr(1), Output::Int(2)), lost(2, 11, Input::Incr(1))];
        assert!(!ok(&h));
        let h = [op(1, 0, 10, Input::Incr(1), Output::Int(2)), lost(2, 9, Input::Incr(1))];
        assert!(ok(&h));
    }

    #[test]
    fn counters() {
        let incr = |c: u64, at: u64, d: i64, out: i64| op(c, at, at + 5, Input::Incr(d), Output::Int(out));
        let read = |at: u64, value: &str| op(9, at, at + 5, Input::Get, got(Some(value)));
        // Sequential increments.
        assert!(ok(&[incr(1, 0, 1, 1), incr(2, 10, 1, 2), incr(1, 20, 5, 7), read(30, "7")]));
        assert!(!ok(&[incr(1, 0, 1, 1), incr(2, 10, 1, 1)]));
        // Concurrent increments may return in any order, but the results must be distinct.
        let h = [
            op(1, 0, 50, Input::Incr(1), Output::Int(2)),
            op(2, 0, 50, Input::Incr(1), Output::Int(1)),
            op(3, 0, 50, Input::Incr(1), Output::Int(3)),
            read(60, "3"),
        ];
        assert!(ok(&h));
        let mut bad = h.to_vec();
        bad[1].output = Some(Output::Int(2));
        assert!(!ok(&bad));
        // Unknown increments may explain jumps, each at most once.
        let h =
            [incr(1, 0, 1, 1), lost(2, 10, Input::Incr(1)), lost(3, 11, Input::Incr(10)), incr(1, 20, 1, 3)];
        assert!(ok(&h));
        let h =
            [incr(1, 0, 1, 1), lost(2, 10, Input::Incr(1)), lost(3, 11, Input::Incr(10)), incr(1, 20, 1, 13)];
        assert!(ok(&h));
        let h =
            [incr(1, 0, 1, 1), lost(2, 10, Input::Incr(1)), lost(3, 11, Input::Incr(10)), incr(1, 20, 1, 4)];
        assert!(!ok(&h));
        let h = [incr(1, 0, 1, 1), lost(2, 10, Input::Incr(1)), incr(1, 20, 1, 3), read(30, "2")];
        assert!(!ok(&h));
        // Reads see each increment's result in order.
        let h =
            [incr(1, 0, 1, 1), lost(2, 10, Input::Incr(1)), read(20, "1"), read(30, "2"), incr(1, 40, 1, 3)];
        assert!(ok(&h));
        let h = [incr(1, 0, 1, 1), lost(2, 10, Input::Incr(1)), read(20, "2"), read(30, "1")];
        assert!(!ok(&h));
    }

    #[test]
    fn incr_refusals() {
        let h = [
            op(1, 0, 10, set("x"), Output::Done),
            op(1, 20, 30, Input::Incr(1), Output::NotAnInteger),
            op(1, 40, 50, Input::Get, got(Some("x"))),
        ];
        assert!(ok(&h));
        let mut bad = h.to_vec();
        bad[1].output = Some(Output::Int(1));
        assert!(!ok(&bad));
        // Refused only if a non-integer could be there at the time.
        let h = [
            lost(2, 0, set("x")),
            op(1, 20, 30, Input::Incr(1), Output::NotAnInteger),
            op(1, 40, 50, Input::Incr(1), Output::Int(1)),
        ];
        assert!(!ok(&h));
        let h = [
            lost(2, 0, set("x")),
            op(1, 20, 30, Input::Incr(1), Output::NotAnInteger),
            op(1, 40, 50, Input::Del, Output::Done),
            op(1, 60, 70, Input::Incr(1), Output::Int(1)),
        ];
        assert!(ok(&h));
        let max = i64::MAX.to_string();
        let h = [
            op(1, 0, 10, Input::Set(b(&max)), Output::Done),
            op(2, 20, 30, Input::Incr(1), Output::Overflow),
            op(2, 40, 50, Input::Incr(-1), Output::Int(i64::MAX - 1)),
        ];
        assert!(ok(&h));
        let mut bad = h.to_vec();
        bad[1].output = Some(Output::Int(i64::MIN));
        assert!(!ok(&bad));
    }

    #[test]
    fn cas_histories() {
        let cas = |expect: Option<&str>, new: &str| Input::Cas { expect: expect.map(b), new: b(new) };
        // Two concurrent creates: exactly one may win.
        let h = [
            op(1, 0, 10, cas(None, "a"), Output::Cas(true)),
            op(2, 0, 10, cas(None, "b"), Output::Cas(true)),
        ];
        assert!(!ok(&h));
        let h = [
            op(1, 0, 10, cas(None, "a"), Output::Cas(true)),
            op(2, 0, 10, cas(None, "b"), Output::Cas(false)),
            op(3, 20, 30, Input::Get, got(Some("a"))),
        ];
        assert!(ok(&h));
        let mut bad = h.to_vec();
        bad[2].output = Some(got(Some("b")));
        assert!(!ok(&bad));
        // A chain of cas, one of them with unknown outcome.
        let h = [
            op(1, 0, 10, set("1"), Output::Done),
            lost(2, 20, cas(Some("1"), "2")),
            op(3, 30, 40, cas(Some("2"), "3"), Output::Cas(true)),
            op(1, 50, 60, Input::Get, got(Some("3"))),
        ];
        assert!(ok(&h));
        let h = [
            op(1, 0, 10, set("1"), Output::Done),
            lost(2, 20, cas(Some("1"), "2")),
            op(3, 30, 40, cas(Some("2"), "3"), Output::Cas(true)),
            op(1, 50, 60, cas(Some("1"), "4"), Output::Cas(true)),
        ];
        assert!(!ok(&h));
        // A failed cas proves the value differed at some point during it.
        let h =
            [op(1, 0, 10, set("1"), Output::Done), op(2, 20, 30, cas(Some("1"), "2"), Output::Cas(false))];
        assert!(!ok(&h));
        let h = [
            op(1, 0, 10, set("1"), Output::Done),
            op(3, 15, 35, set("9"), Output::Done),
            op(2, 20, 30, cas(Some("1"), "2"), Output::Cas(false)),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn malformed_ops_are_reported() {
        let mut no_output = op(1, 0, 10, Input::Get, got(None));
        no_output.output = None;
        let err = check_key(&None, &[no_output]).expect_err("no output");
        assert!(err.message.contains("malformed"), "{err}");
        let backwards = op(1, 10, 5, Input::Get, got(None));
        let err = check_key(&None, &[backwards]).expect_err("backwards");
        assert!(err.message.contains("malformed"), "{err}");
    }

    #[test]
    fn violation_message_is_short_and_names_the_ops() {
        let mut h: Vec<Op> =
            (0..50).map(|i| op(i % 3, i * 10, i * 10 + 5, set(&i.to_string()), Output::Done)).collect();
        h.push(op(7, 1000, 1010, Input::Get, got(Some("nope"))));
        h.push(op(8, 1000, 1010, Input::Get, got(Some("49"))));
        h.push(lost(9, 1001, Input::Del));
        let err = check_key(&None, &h).expect_err("bad read");
        let msg = err.to_string();
        assert!(msg.lines().count() <= 12, "{msg}");
        assert!(msg.contains("53 ops"), "{msg}");
        assert!(msg.contains("52 completed"), "{msg}");
        assert!(msg.contains("1 with unknown outcome"), "{msg}");
        // The longest prefix: the 50 sets and the good read.
        assert!(msg.contains("places 51 of the 52"), "{msg}");
        assert!(msg.contains("#50 client 7 [1000..1010 ms] get -> \"nope\""), "{msg}");
        assert!(msg.contains("set \"49\""), "{msg}");
    }

    #[test]
    fn many_unknown_increments_stay_cheap() {
        // 300 identical unknown increments, then reads that count up through all of them.
        let mut h: Vec<Op> = (0..300).map(|i| lost(i % 8, i, Input::Incr(1))).collect();
        for n in 0..=300u64 {
            h.push(op(9, 1000 + 10 * n, 1005 + 10 * n, Input::Get, got(Some(&n.to_string()))));
        }
        assert!(ok(&h));
        h.push(op(9, 10_000, 10_005, Input::Get, got(Some("299"))));
        assert!(!ok(&h));
    }

    #[test]
    fn many_unknown_distinct_sets_stay_cheap() {
        // 40 unknown sets of distinct values; each may explain at most one stretch of reads.
        let mut h: Vec<Op> = (0..40).map(|i| lost(i % 8, i, set(&format!("v{i}")))).collect();
        let reads = ["v3", "v3", "v17", "v5", "v39", "v5"];
        for (n, value) in reads.iter().enumerate() {
            let at = 1000 + 10 * n as u64;
            h.push(op(9, at, at + 5, Input::Get, got(Some(value))));
        }
        assert!(!ok(&h)); // "v5" again after "v39".
        h.pop();
        h.push(op(9, 2000, 2005, Input::Get, got(Some("v0"))));
        assert!(ok(&h));
    }

    /// How one generated op ends up.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fate {
        Completed,
        /// Took effect, but the client never learned the outcome.
        UnknownApplied,
        /// Never took effect, and the client never learned the outcome.
        UnknownLost,
    }

    #[derive(Clone, Debug)]
    struct Spec {
        input: Input,
        /// How far before its true execution point the op was invoked.
        before: u64,
        /// How far after it the response arrived.
        after: u64,
        fate: Fate,
    }

    /// Executes `specs` one after another at points `spacing` apart (the first at `spacing`) and
    /// records what the clients saw: a linearizable history by construction.
    fn build(specs: &[Spec], clients: u64, spacing: u64) -> Vec<Op> {
        let mut state: Value = None;
        let mut ops = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = spacing * (i as u64 + 1);
            let (next, output) = step(&state, &spec.input);
            if spec.fate != Fate::UnknownLost {
                state = next;
            }
            let completed = spec.fate == Fate::Completed;
            ops.push(Op {
                client: i as u64 % clients,
                invoke_ms: at.saturating_sub(spec.before),
                complete_ms: completed.then_some(at + spec.after),
                input: spec.input.clone(),
                output: completed.then_some(output),
            });
        }
        ops
    }

    const VALUES: [&str; 7] = ["", "0", "1", "5", "-3", "x", "9223372036854775806"];
    /// Written by no generated op and produced by no increment.
    const NEVER: &str = "never";

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(&VALUES[..]).prop_map(b)
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            3 => value().prop_map(Input::Set),
            1 => Just(Input::Del),
            4 => Just(Input::Get),
            2 => (-2i64..=3).prop_map(Input::Incr),
            2 => (prop::option::of(value()), value()).prop_map(|(expect, new)| Input::Cas { expect, new }),
        ]
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let fate = prop_oneof![8 => Just(Fate::Completed), 1 => Just(Fate::UnknownApplied), 1 => Just(Fate::UnknownLost)];
        (input(), 0u64..350, 0u64..350, fate).prop_map(|(input, before, after, fate)| Spec {
            input,
            before,
            after,
            fate,
        })
    }

    proptest! {
        #[test]
        fn generated_histories_are_linearizable(specs in prop::collection::vec(spec(), 0..80), clients in 1u64..9) {
            let ops = build(&specs, clients, 100);
            let result = check_key(&None, &ops);
            prop_assert!(result.is_ok(), "{}", result.err().map(|e| e.message).unwrap_or_default());
        }

        #[test]
        fn a_corrupted_read_is_detected(
            specs in prop::collection::vec(spec(), 1..80),
            clients in 1u64..9,
            pick in any::<prop::sample::Index>(),
        ) {
            let mut ops = build(&specs, clients, 100);
            let gets: Vec<usize> = (0..ops.len())
                .filter(|&i| ops[i].input == Input::Get && ops[i].complete_ms.is_some())
                .collect();
            prop_assume!(!gets.is_empty());
            let i = gets[pick.index(gets.len())];
            ops[i].output = Some(got(Some(NEVER)));
            let err = check_key(&None, &ops);
            prop_assert!(err.is_err());
        }
    }

    /// A history like the simulator's: `n` ops from 8 clients, each client's ops one at a time,
    /// unique values, ~5% with unknown outcome.
    fn big_history(seed: u64, n: usize) -> Vec<Op> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let specs: Vec<Spec> = (0..n)
            .map(|i| {
                let input = match rng.random_range(0..100) {
                    0..30 => Input::Set(i.to_string().into_bytes()),
                    30..70 => Input::Get,
                    70..85 => Input::Incr(rng.random_range(-3..=5)),
                    85..95 => {
                        let guess = rng.random_range(0..=i) as u64;
                        Input::Cas { expect: v(&guess.to_string()), new: format!("c{i}").into_bytes() }
                    }
                    _ => Input::Del,
                };
                let fate = match rng.random_range(0..100) {
                    0..3 => Fate::UnknownApplied,
                    3..5 => Fate::UnknownLost,
                    _ => Fate::Completed,
                };
                // Points are 10 ms apart and a client's ops 80 ms apart: widening by < 40 ms on each
                // side keeps each client's ops sequential while overlapping up to 8 of them.
                Spec { input, before: rng.random_range(0..40), after: rng.random_range(0..40), fate }
            })
            .collect();
        build(&specs, 8, 10)
    }

    #[test]
    fn big_histories_are_checked() {
        for seed in 0..3 {
            let mut ops = big_history(seed, 2000);
            let started = std::time::Instant::now();
            let result = check_key(&None, &ops);
            let ok_time = started.elapsed();
            assert!(result.is_ok(), "{}", result.err().map(|e| e.message).unwrap_or_default());
            // Corrupt the last completed get: the search has to exhaust every linearization of the rest.
            let last_get = (0..ops.len())
                .rev()
                .find(|&i| ops[i].input == Input::Get && ops[i].complete_ms.is_some())
                .unwrap();
            ops[last_get].output = Some(got(Some(NEVER)));
            let started = std::time::Instant::now();
            let err = check_key(&None, &ops).expect_err("corrupted read");
            eprintln!("seed {seed}: ok in {ok_time:?}, violation in {:?}:\n{err}", started.elapsed());
        }
    }
}
