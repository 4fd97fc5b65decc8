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
//! 3. Lowe's memoisation: a configuration is the set of linearized ops (bitsets) plus the model
//!    state; what can follow depends only on it, so a configuration already explored is not
//!    explored again.
//!
//! On top of that, reductions that each drop only searches whose success implies the success of one
//! that is kept (an exchange argument on linearizations), so the answer is unchanged:
//!
//! * Forced reads: if an available op whose recorded output means it left the state unchanged (a
//!   get, a failed cas, a refused incr) matches the current state, it is placed next and nothing
//!   else is tried: moving it to the front of any linearization from here keeps it valid. This
//!   keeps concurrent reads from multiplying the configurations.
//!
//! # Ops with unknown outcome
//!
//! An op without a response (`complete_ms: None`) may have taken effect at any time after its
//! invocation, or never, and its output is unconstrained. It gets a return event at +infinity, so
//! it never has to precede anything, and the search succeeds as soon as every *completed* op is
//! linearized: the unknown ops left over are the ones that never took effect (or took effect after
//! the end, which nobody observed). An unknown `get` changes and checks nothing, so it is dropped up
//! front. Unknown ops are placed only when needed, in *runs* (consecutive unknown ops) that must
//! end with a completed op that would not have matched without the run (a run followed by an op
//! that matched anyway can be left out if that op is a write, whose input and output fix the state
//! after it, or moved after it if it is a read, which the forced reads already do). Further:
//!
//! * Symmetry: unknown ops with equal inputs are interchangeable, so only the earliest-invoked
//!   unlinearized one of each input is a candidate.
//! * No useless placements: not an unknown op that leaves the state unchanged, and not a blind
//!   write (set, del) after another unknown op in a run (it would overwrite it unobserved).
//! * A run step is taken only if the run can still end with a completed op: one matches now, an
//!   available unknown cas expects the new value, or available unknown incrs can still add up to
//!   what a waiting op needs (tracked with subset sums).
//! * Unknown incrs (when values are far from overflowing): consecutive ones in a run commute, so
//!   they are placed in a fixed class order; a run never contains two or more whose deltas add up
//!   to 0, or to the delta of an available unused one of an earlier class (that one could be used
//!   instead, and the group later in its place).
//! * Dominance: leaving an unknown op unused only adds options, so the memo is keyed by (linearized
//!   completed ops, state) and holds the sets of linearized unknown ops seen with it, and skips a
//!   configuration if an explored one used a subset of its unknown ops; or (outside runs) if each
//!   unknown incr the explored one used and this one did not can be made up by a group of those
//!   this one used and the explored one did not.
//!
//! `tests::agrees_with_brute_force*` compare all this with an exhaustive search straight from the
//! definition on many small random histories.
//!
//! # Limits
//!
//! Deciding linearizability is NP-complete, and many ops with unknown outcome (incrs with varied
//! deltas especially) can still make a non-linearizable history expensive to rule out. The search
//! gives up after a fixed number of steps (about a second in an optimized build, far more than
//! linearizable histories of a few thousand ops need) and reports the history as undecided, which
//! is an `Err` too: a checker must not pass what it could not check.
//!
//! A [`Violation`] describes the longest linearizable prefix the search found and the completed
//! ops none of which could be placed after it.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

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

/// Why a history is not linearizable (or, rarely, why it could not be decided, or is malformed: the
/// message says so).
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
        Input::Incr(delta) => match as_int(state) {
            None => (state.clone(), Output::NotAnInteger),
            Some(base) => match base.checked_add(*delta) {
                None => (state.clone(), Output::Overflow),
                Some(new) => (Some(new.to_string().into_bytes()), Output::Int(new)),
            },
        },
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
    Search::new(initial, ops).run(SEARCH_STEPS)
}

/// How many steps (candidates tried) the search may take before giving up. Linearizable
/// histories of a few thousand ops are typically decided in well under 1/20 of this; exhausting it
/// takes about a second in an optimized build.
const SEARCH_STEPS: u64 = 500_000;

/// A hash map for lookups only (never iterated), with a fast hash: the search hashes bitsets of
/// hundreds of bytes per step.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A multiply-rotate hash (as in rustc's FxHash); no protection against adversarial keys, which
/// histories are not.
#[derive(Clone, Copy, Debug, Default)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 56);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }
}

/// End of the list.
const NIL: usize = usize::MAX;
/// The return time of ops with unknown outcome: after every real time.
const INFINITY: u128 = u64::MAX as u128 + 1;
/// Sets of reachable sums spread over more than this many values are not tracked (the runs they
/// would prune are kept).
const MAX_SUM_RANGE: u64 = 1 << 16;
/// Sets of subset sums of a run's incrs larger than this are not tracked (the group rules, see
/// [`Search::next_unknown`], are then off for the rest of the run).
const MAX_GROUP_SUMS: usize = 256;
/// No groups.
static EMPTY: Vec<i64> = Vec::new();

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A completed op: must be linearized, with its recorded output. `rank` indexes `Search::done`.
    Completed { rank: usize },
    /// An op with unknown outcome. `rank` indexes `Search::unknown`; `class` groups unknown ops with
    /// equal inputs, and `class_rank` is the op's position in its class in invocation order.
    Unknown { rank: usize, class: usize, class_rank: usize },
}

/// A call or return event in the linked list. Node 0 is the list head (a sentinel); the other
/// nodes are numbered in event order, so a call node `n` is available (no pending op returned
/// before it) iff `n` is below the first return node in the list.
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

/// A class of unknown ops with equal inputs.
#[derive(Debug)]
struct Class {
    /// The members' call nodes, in invocation order.
    members: Vec<usize>,
    /// `Some(d)` if the input is `Incr(d)` with `d != 0`.
    delta: Option<i64>,
    /// Whether the input is a cas.
    cas: bool,
    /// Whether the input is an incr (even `Incr(0)` changes a value like "+5" or "").
    incr: bool,
}

/// What the configurations inside one run of unknown ops share. A run must end with a completed op
/// that did not match the state before the run (one of `needy`): a run followed by an op that
/// matched without it can be left out (that op is a write, whose input and output fix the state
/// after it) or moved after it (a read, which the forced reads take care of).
#[derive(Debug)]
struct Run {
    /// The state before the run.
    start: Value,
    /// The available completed ops that don't match `start`, other than blind writes.
    needy: Vec<usize>,
    /// The first return node at the run (the configuration's linearized completed ops don't change
    /// during a run, so neither does which ops are available).
    first_return: usize,
    /// For pruning runs of unknown incrs, if usable.
    sums: Option<IncrSums>,
}

/// Where runs of unknown incrs can get: used when no unknown cas is available (else the run may
/// take other paths) and values are small (so incrs can be reordered). Inside a run, consecutive
/// unknown incrs are placed in class order (they commute), so after an incr of class `classes[i]`
/// only that class's remaining members and `classes[i + 1..]` can follow.
#[derive(Debug)]
struct IncrSums {
    /// Integer targets: the run must reach one of these values for some needy op to match...
    targets: Vec<i64>,
    /// ... unless a needy op matches many values (a failed cas, an overflow).
    any: bool,
    /// (class, delta, available members not linearized at the run's start), in class order.
    classes: Vec<(usize, i64, usize)>,
    /// `Search::class_next` of each of `classes` at the run's start.
    start_next: Vec<usize>,
    /// `suffix[i]`: the sums of sub-multisets of `classes[i..]`'s deltas; `None` if too spread out.
    suffix: Vec<Option<SumSet>>,
}

/// One level of the explicit search stack: a configuration and the candidates tried from it.
#[derive(Debug)]
struct Frame {
    /// Completed ops that may be linearized next (call node, state after), or just one read (see
    /// [`Search::completed_candidates`]).
    completed: Vec<(usize, Value)>,
    /// The next of `completed` to try.
    next: usize,
    /// Once `completed` is exhausted: the next list node to look at for unknown ops to try (`NIL`
    /// if there are none worth trying).
    cursor: usize,
    /// Outside a run: the available completed ops that don't match the current state, other than
    /// blind writes (empty inside a run: see `run`).
    needy: Vec<usize>,
    /// The first return node in the list.
    first_return: usize,
    /// Whether this configuration is inside a run of unknown ops.
    in_run: bool,
    /// The run this configuration is in, or (outside a run) the run its unknown candidates start,
    /// made when the first is tried.
    run: Option<Rc<Run>>,
    /// Inside a run, if the last op is an unknown incr that later ones must not precede: its class.
    last_incr: Option<usize>,
    /// Instead of `cursor`, in a run of incrs after one (see [`IncrSums`]): the next of the run's
    /// `sums.classes` to try (`NIL` if not used).
    next_class: usize,
    /// Inside a run of unknown incrs (see [`IncrSums`]): the sums of the non-empty sub-multisets of
    /// the run's incrs' deltas, sorted; `None` if not tracked.
    groups: Option<Vec<i64>>,
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

/// What constrains the next op of a configuration inside a run: the state before the run, the
/// class of the last op if it is an unknown incr later incrs must not precede, and the run's
/// [`Frame::groups`].
type Restriction = Option<(Value, Option<usize>, Option<Vec<i64>>)>;

/// An unknown op to try: its call node, the state after it, and the child's [`Frame::groups`].
type UnknownCandidate = (usize, Value, Option<Vec<i64>>);

#[derive(Debug)]
struct Search<'a> {
    initial: &'a Value,
    ops: &'a [Op],
    /// Per op (slice index); `None` for the ops dropped up front.
    kinds: Vec<Option<Kind>>,
    nodes: Vec<Node>,
    classes: Vec<Class>,
    /// Classes of unknown cas, by `expect`.
    cas_by_expect: FastMap<Value, Vec<usize>>,
    /// Whether no value can come near overflowing whatever order incrs are applied in: every integer
    /// written is below 2^60 in magnitude and all incr deltas together below 2^59. The reductions
    /// that reorder or regroup unknown incrs are used only then.
    small_values: bool,
    /// Classes of unknown incrs, by delta.
    incr_by_delta: FastMap<i64, usize>,
    /// Bitset of linearized completed ops, by rank.
    done: Vec<u64>,
    /// Bitset of linearized unknown ops, by rank.
    unknown: Vec<u64>,
    /// By rank: `Some(d)` for unknown ops `Incr(d)` with `d != 0`.
    unknown_delta: Vec<Option<i64>>,
    /// Per class of unknown ops: how many are linearized (always the first ones by invocation).
    class_next: Vec<usize>,
    completed_total: usize,
    /// Completed ops not yet linearized.
    remaining: usize,
    state: Value,
    /// Linearized completed ops -> state -> antichain of (linearized unknown ops, restriction) of
    /// the configurations explored. Lookups only.
    memo: Memo,
}

/// See [`Search::memo`].
type Memo = FastMap<Vec<u64>, FastMap<Value, Vec<(Vec<u64>, Restriction)>>>;

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
        let mut nodes = vec![Node {
            prev: NIL,
            next: NIL,
            op: 0,
            call: false,
            ret: NIL,
            kind: Kind::Completed { rank: 0 },
        }];
        let mut call_node = vec![NIL; ops.len()];
        let mut completed_total = 0;
        let mut unknown_total = 0;
        let mut unknown_delta = Vec::new();
        let mut class_of: HashMap<&Input, usize> = HashMap::new();
        let mut classes: Vec<Class> = Vec::new();
        for (k, &(_, is_return, i)) in events.iter().enumerate() {
            let n = k + 1;
            nodes[n - 1].next = n;
            if is_return == 1 {
                let call = call_node[i];
                nodes[call].ret = n;
                let kind = nodes[call].kind;
                nodes.push(Node { prev: n - 1, next: NIL, op: i, call: false, ret: NIL, kind });
                continue;
            }
            let input = &ops[i].input;
            let kind = if ops[i].complete_ms.is_some() {
                completed_total += 1;
                Kind::Completed { rank: completed_total - 1 }
            } else {
                let class = *class_of.entry(input).or_insert(classes.len());
                if class == classes.len() {
                    let delta = match input {
                        Input::Incr(d) if *d != 0 => Some(*d),
                        _ => None,
                    };
                    classes.push(Class {
                        members: Vec::new(),
                        delta,
                        cas: matches!(input, Input::Cas { .. }),
                        incr: matches!(input, Input::Incr(_)),
                    });
                }
                classes[class].members.push(n);
                unknown_delta.push(classes[class].delta);
                unknown_total += 1;
                Kind::Unknown { rank: unknown_total - 1, class, class_rank: classes[class].members.len() - 1 }
            };
            kinds[i] = Some(kind);
            call_node[i] = n;
            nodes.push(Node { prev: n - 1, next: NIL, op: i, call: true, ret: NIL, kind });
        }

        let mut cas_by_expect: FastMap<Value, Vec<usize>> = FastMap::default();
        for (c, class) in classes.iter().enumerate() {
            if let Some(&n) = class.members.first()
                && let Input::Cas { expect, .. } = &ops[nodes[n].op].input
            {
                cas_by_expect.entry(expect.clone()).or_default().push(c);
            }
        }
        let small = |v: &[u8]| as_int(&Some(v.to_vec())).is_none_or(|x| x.abs() < 1 << 60);
        let small_values = initial.as_deref().is_none_or(small)
            && ops.iter().all(|op| match &op.input {
                Input::Set(v) | Input::Cas { new: v, .. } => small(v),
                _ => true,
            })
            && ops
                .iter()
                .filter_map(|op| match op.input {
                    Input::Incr(d) => Some(d),
                    _ => None,
                })
                .try_fold(0i64, |total, d| total.checked_add(d.checked_abs()?))
                .is_some_and(|total| total < 1 << 59);
        let incr_by_delta = (0..classes.len()).filter_map(|c| classes[c].delta.map(|d| (d, c))).collect();

        Search {
            initial,
            ops,
            kinds,
            nodes,
            class_next: vec![0; classes.len()],
            classes,
            cas_by_expect,
            small_values,
            incr_by_delta,
            done: vec![0; completed_total.div_ceil(64)],
            unknown: vec![0; unknown_total.div_ceil(64)],
            unknown_delta,
            completed_total,
            remaining: completed_total,
            state: initial.clone(),
            memo: FastMap::default(),
        }
    }

    /// Searches for a linearization, in at most `budget` steps.
    fn run(mut self, budget: u64) -> Result<(), Violation> {
        if self.remaining == 0 {
            return Ok(());
        }
        let initial = self.state.clone();
        self.enter(&initial, &None);
        let mut best = Best { count: 0, done: self.done.clone(), state: initial, tail: Vec::new() };
        let mut stack = vec![self.frame(None, None, None)];
        let mut steps = 0;
        while let Some(top) = stack.last_mut() {
            steps += 1;
            if steps > budget {
                return Err(self.violation(&best, Some(budget)));
            }
            if let Some((call, before)) = top.lifted.take() {
                self.unlift(call);
                self.state = before;
            }
            let (call, state, groups) = if let Some(candidate) = top.completed.get_mut(top.next) {
                top.next += 1;
                (candidate.0, std::mem::take(&mut candidate.1), None)
            } else if let Some(candidate) = self.next_unknown(top) {
                candidate
            } else {
                stack.pop();
                continue;
            };
            // The child's run and restriction.
            let (run, last_incr) = match self.nodes[call].kind {
                Kind::Completed { .. } => (None, None),
                Kind::Unknown { class, .. } => {
                    let ordered = self.classes[class].delta.is_some() && self.small_values;
                    (top.run.clone(), ordered.then_some(class))
                }
            };
            let restriction = run.as_ref().map(|r| (r.start.clone(), last_incr, groups.clone()));
            self.lift(call);
            if !self.enter(&state, &restriction) {
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
            let frame = self.frame(run, last_incr, groups);
            stack.push(frame);
        }
        Err(self.violation(&best, None))
    }

    /// The search frame for the current configuration: outside a run if `run` is `None`.
    fn frame(&self, run: Option<Rc<Run>>, last_incr: Option<usize>, groups: Option<Vec<i64>>) -> Frame {
        let (completed, forced, needy, first_return) = match &run {
            None => self.completed_candidates(),
            Some(run) => {
                let (completed, forced) = self.needed_candidates(&run.needy);
                (completed, forced, Vec::new(), run.first_return)
            }
        };
        // Unknown ops are worth trying only if some completed op needs a change of state.
        let worth = !forced && run.as_ref().map_or(!needy.is_empty(), |r| !r.needy.is_empty());
        let next_class = match (worth, &run, last_incr) {
            (true, Some(run), Some(last)) => run
                .sums
                .as_ref()
                .map_or(NIL, |sums| sums.classes.binary_search_by_key(&last, |&(c, _, _)| c).unwrap_or(NIL)),
            _ => NIL,
        };
        Frame {
            completed,
            next: 0,
            cursor: if worth && next_class == NIL { self.nodes[0].next } else { NIL },
            next_class,
            needy,
            first_return,
            in_run: run.is_some(),
            run,
            last_incr,
            groups,
            lifted: None,
        }
    }

    /// Outside a run of unknown ops: the available completed ops (their call comes before the first
    /// return) whose recorded output matches the current state, with the state after each; the
    /// available ones that don't match and are not blind writes (see [`Run`]); the first return.
    ///
    /// If an available read (an op whose recorded output means it left the state unchanged) matches
    /// the current state, it alone is returned, with `true`: placing it right away loses nothing,
    /// since moving it to the front of any linearization from here keeps that linearization valid.
    /// This keeps concurrent reads from multiplying the configurations.
    fn completed_candidates(&self) -> (Vec<(usize, Value)>, bool, Vec<usize>, usize) {
        let mut writes = Vec::new();
        let mut needy = Vec::new();
        let mut n = self.nodes[0].next;
        while n != NIL && self.nodes[n].call {
            let id = n;
            let node = &self.nodes[id];
            n = node.next;
            if let Kind::Unknown { .. } = node.kind {
                continue;
            }
            let op = &self.ops[node.op];
            match op.output.as_ref() {
                Some(recorded) if matches(&self.state, &op.input, recorded) => {
                    let (state, _) = step(&self.state, &op.input);
                    if is_read(&op.input, recorded) {
                        return (vec![(id, state)], true, Vec::new(), NIL);
                    }
                    writes.push((id, state));
                }
                _ => {
                    if !matches!(op.input, Input::Set(_) | Input::Del) {
                        needy.push(id);
                    }
                }
            }
        }
        (writes, false, needy, n)
    }

    /// Inside a run of unknown ops: the needy ops (see [`Run`]) that match the current state; a
    /// matching read alone, with `true`, as in [`Search::completed_candidates`].
    fn needed_candidates(&self, needy: &[usize]) -> (Vec<(usize, Value)>, bool) {
        let mut writes = Vec::new();
        for &id in needy {
            let op = &self.ops[self.nodes[id].op];
            if let Some(recorded) = op.output.as_ref().filter(|&o| matches(&self.state, &op.input, o)) {
                let (state, _) = step(&self.state, &op.input);
                if is_read(&op.input, recorded) {
                    return (vec![(id, state)], true);
                }
                writes.push((id, state));
            }
        }
        (writes, false)
    }

    /// The next unknown op worth linearizing from `frame`, from its cursor on (advanced past it),
    /// with the state after it and the child's [`Frame::groups`]. Only the first unlinearized op of
    /// each class (see [`Kind::Unknown`]); not a no-op; inside a run, not a blind write (it would
    /// overwrite the run's effect unobserved) and not an incr of a class before the last op's (see
    /// [`IncrSums`]); only if the run can still end with a needy op (see [`Search::viable`]); and
    /// in a run of incrs, not one that would form a group of two or more incrs whose deltas add up
    /// to 0 (the group could be left out) or to the delta of an available unknown incr not
    /// linearized, of an earlier class (that one could be placed instead, and the group later in its
    /// place; that shortens this run, so the exchange can't go round in circles).
    fn next_unknown(&self, frame: &mut Frame) -> Option<UnknownCandidate> {
        loop {
            let n = if frame.next_class == NIL {
                if frame.cursor == NIL || !self.nodes[frame.cursor].call {
                    return None;
                }
                let n = frame.cursor;
                frame.cursor = self.nodes[n].next;
                n
            } else {
                // After an unknown incr in a run of incrs: only incrs of its class or later ones.
                let sums = frame.run.as_ref().and_then(|r| r.sums.as_ref())?;
                let (c, available, start) = sums
                    .classes
                    .get(frame.next_class)
                    .map(|&(c, _, a)| (c, a, sums.start_next[frame.next_class]))?;
                frame.next_class += 1;
                if self.class_next[c] - start >= available {
                    continue;
                }
                let Some(&n) = self.classes[c].members.get(self.class_next[c]) else {
                    continue;
                };
                n
            };
            if let Some(candidate) = self.unknown_candidate(frame, n) {
                return Some(candidate);
            }
        }
    }

    /// The unknown op of call node `n` as a candidate from `frame`, if worth trying (see
    /// [`Search::next_unknown`]).
    fn unknown_candidate(&self, frame: &mut Frame, n: usize) -> Option<UnknownCandidate> {
        let node = &self.nodes[n];
        let Kind::Unknown { class, class_rank, .. } = node.kind else {
            return None;
        };
        let input = &self.ops[node.op].input;
        if self.class_next[class] != class_rank
            || (frame.in_run && matches!(input, Input::Set(_) | Input::Del))
            || frame.last_incr.is_some_and(|last| self.classes[class].delta.is_some() && class < last)
        {
            return None;
        }
        let (state, _) = step(&self.state, input);
        if state == self.state {
            return None;
        }
        let run = match &frame.run {
            Some(run) => Rc::clone(run),
            None => {
                let run = Rc::new(self.start_run(std::mem::take(&mut frame.needy), frame.first_return));
                frame.run = Some(Rc::clone(&run));
                run
            }
        };
        if !self.viable(&state, &run, class) {
            return None;
        }
        // The run's groups so far: none yet when it starts; tracked only in runs of incrs.
        let groups = if frame.in_run { frame.groups.as_ref() } else { run.sums.as_ref().map(|_| &EMPTY) };
        let groups = match (self.classes[class].delta, groups) {
            (_, None) => None,
            (None, Some(groups)) => Some(groups.clone()),
            // Leaving a group out keeps the value only if it was a canonical integer to begin with
            // (incrs write `n.to_string()`; absent, empty or "+5" would stay as they are).
            (Some(_), Some(groups)) if groups.is_empty() && !is_canonical_int(&self.state) => None,
            (Some(d), Some(groups)) => {
                // Only singles of classes before this one: later ones may still join this run, and
                // swapping them for the group would give the same run.
                let single_available = |sum: i64| {
                    self.incr_by_delta.get(&sum).is_some_and(|&c| {
                        c < class
                            && self.classes[c]
                                .members
                                .get(self.class_next[c])
                                .is_some_and(|&m| m < run.first_return)
                    })
                };
                if groups.iter().any(|&g| g + d == 0 || single_available(g + d)) {
                    return None;
                }
                let mut sums: Vec<i64> = groups.iter().flat_map(|&g| [g, g + d]).collect();
                sums.push(d);
                sums.sort_unstable();
                sums.dedup();
                (sums.len() <= MAX_GROUP_SUMS).then_some(sums)
            }
        };
        Some((n, state, groups))
    }

    /// The run of unknown ops that starts at the current configuration.
    fn start_run(&self, needy: Vec<usize>, first_return: usize) -> Run {
        let available =
            |c: usize| self.classes[c].members[self.class_next[c]..].partition_point(|&m| m < first_return);
        let cas_available = (0..self.classes.len()).any(|c| self.classes[c].cas && available(c) > 0);
        let sums = (!cas_available && self.small_values).then(|| {
            let mut targets = Vec::new();
            let mut any = false;
            for &id in &needy {
                let op = &self.ops[self.nodes[id].op];
                match (&op.input, &op.output) {
                    (Input::Get, Some(Output::Value(v)))
                    | (Input::Cas { expect: v, .. }, Some(Output::Cas(true))) => {
                        targets.extend(as_int(v).filter(|_| is_canonical_int(v)));
                    }
                    (Input::Incr(d), Some(Output::Int(x))) => targets.extend(x.checked_sub(*d)),
                    (_, Some(Output::Cas(false) | Output::Overflow)) => any = true,
                    _ => {}
                }
            }
            let classes: Vec<(usize, i64, usize)> = (0..self.classes.len())
                .filter_map(|c| {
                    let n = available(c);
                    self.classes[c].delta.filter(|_| n > 0).map(|d| (c, d, n))
                })
                .collect();
            let start_next = classes.iter().map(|&(c, _, _)| self.class_next[c]).collect();
            let mut suffix: Vec<Option<SumSet>> = vec![Some(SumSet::zero())];
            for &(_, d, n) in classes.iter().rev() {
                let next = suffix.last().and_then(|s| s.as_ref()).and_then(|rest| rest.add_multiples(d, n));
                suffix.push(next);
            }
            suffix.reverse();
            IncrSums { targets, any, classes, start_next, suffix }
        });
        Run { start: self.state.clone(), needy, first_return, sums }
    }

    /// Whether a run that would reach `state` with the next op of class `class` (not linearized
    /// yet) may still end with a needy op: one matches `state`, or an available unknown cas expects
    /// `state`, or unknown incrs can still take the value to a needy op's target.
    fn viable(&self, state: &Value, run: &Run, class: usize) -> bool {
        // How many of class `c` will be linearized once the op is.
        let next = |c: usize| self.class_next[c] + usize::from(c == class);
        let needed = |id: &usize| {
            let op = &self.ops[self.nodes[*id].op];
            op.output.as_ref().is_some_and(|o| matches(state, &op.input, o))
        };
        if run.needy.iter().any(needed) {
            return true;
        }
        let cas_continues = self.cas_by_expect.get(state).is_some_and(|cs| {
            cs.iter().any(|&c| self.classes[c].members.get(next(c)).is_some_and(|&m| m < run.first_return))
        });
        if cas_continues {
            return true;
        }
        let Some(x) = as_int(state) else {
            return false;
        };
        let Some(sums) = &run.sums else {
            return self.classes.iter().any(|c| c.incr);
        };
        // The incr classes that may still follow, and the sums they can add.
        let (first, own) = match sums.classes.binary_search_by_key(&class, |&(c, _, _)| c) {
            // After an incr of `class`: its remaining members, then the classes after it.
            Ok(i) => {
                let (_, d, available) = sums.classes[i];
                (i + 1, Some((d, available - (next(class) - sums.start_next[i]))))
            }
            // After the blind write that started the run: any class.
            Err(_) => (0, None),
        };
        if sums.any {
            return own.is_some_and(|(_, left)| left > 0) || first < sums.classes.len();
        }
        let Some(rest) = &sums.suffix[first] else {
            return true;
        };
        let (d, left) = own.unwrap_or((0, 0));
        sums.targets.iter().any(|&y| {
            (0..=left).any(|m| {
                i64::try_from(m)
                    .ok()
                    .and_then(|m| y.checked_sub(x)?.checked_sub(d.checked_mul(m)?))
                    .is_some_and(|need| rest.contains(need))
            })
        })
    }

    /// Records the current configuration (whose state is `state`) as explored, unless an explored
    /// configuration dominates it; returns whether it is new.
    ///
    /// (u0, r0) dominates (u, r) (same linearized completed ops and state) if r0 constrains the next
    /// op no more than r does and u0 ⊆ u: whatever can follow the latter can follow the former.
    /// Outside runs, also if u0's unknown ops not in u are incrs each of whose deltas is the sum of
    /// a separate group of u's unknown incrs not in u0: wherever the latter uses one of the former's
    /// incrs, the former can use that group instead. (That linearization can be longer, which is
    /// why this is not used inside runs: a configuration outside a run follows a completed op, so
    /// the one dominating it has fewer completed ops left than the one the search came from.)
    fn enter(&mut self, state: &Value, restriction: &Restriction) -> bool {
        let Search { memo, done, unknown, unknown_delta, small_values, .. } = self;
        // Keys are cloned only when new.
        if !memo.contains_key(done.as_slice()) {
            memo.insert(done.clone(), FastMap::default());
        }
        let Some(by_state) = memo.get_mut(done.as_slice()) else {
            return true;
        };
        if !by_state.contains_key(state) {
            by_state.insert(state.clone(), Vec::new());
        }
        let Some(explored) = by_state.get_mut(state) else {
            return true;
        };
        let dominates = |u0: &[u64], r0: &Restriction, u: &[u64], r: &Restriction| {
            (r0.is_none() || r0 == r)
                && (is_subset(u0, u) || (*small_values && r.is_none() && refines(u0, u, unknown_delta)))
        };
        // Cheap test first.
        if explored.iter().any(|(u, r)| (r.is_none() || r == restriction) && is_subset(u, unknown))
            || explored.iter().any(|(u, r)| dominates(u, r, unknown, restriction))
        {
            return false;
        }
        // Configurations inside runs are not recorded: a run enumerates each multiset of unknown ops
        // once (in class order), and with their restrictions they would hardly ever dominate.
        if restriction.is_none() {
            explored.retain(|(u, r)| !dominates(unknown, restriction, u, r));
            explored.push((unknown.clone(), None));
        }
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

    /// The violation to report: the search failed, or gave up after `gave_up` steps.
    fn violation(&self, best: &Best, gave_up: Option<u64>) -> Violation {
        const TAIL: usize = 3;
        // At most 12 lines.
        let stuck_lines = if gave_up.is_some() { 3 } else { 4 };
        let ops = self.ops;
        let unknown = ops.iter().filter(|op| op.complete_ms.is_none()).count();
        let mut m = String::new();
        let _ = writeln!(
            m,
            "{}: {} ops on the key ({} completed, {unknown} with unknown outcome), initial value {}",
            if gave_up.is_some() { "linearizability undecided" } else { "not linearizable" },
            ops.len(),
            self.completed_total,
            fmt_value(self.initial),
        );
        if let Some(steps) = gave_up {
            let _ = writeln!(
                m,
                "the search gave up after {steps} steps without finding a linearization (ops with unknown \
                 outcome multiply the orders to try); most likely not linearizable"
            );
        }
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
        let _ = if gave_up.is_some() {
            writeln!(m, "the completed ops that could come next (model output):")
        } else {
            writeln!(
                m,
                "no completed op can be placed next (even after unknown-outcome ops); candidates (model output):"
            )
        };
        for &i in stuck.iter().take(stuck_lines) {
            let (_, output) = step(&best.state, &ops[i].input);
            let _ = writeln!(m, "  {} ({})", fmt_op(i, &ops[i]), fmt_output(&output));
        }
        if stuck.len() > stuck_lines {
            let _ = writeln!(m, "  ... and {} more", stuck.len() - stuck_lines);
        }
        Violation { message: m.trim_end().to_owned() }
    }
}

/// Whether `step(state, input)` outputs `output` (without building the new state).
fn matches(state: &Value, input: &Input, output: &Output) -> bool {
    match (input, output) {
        (Input::Set(_) | Input::Del, Output::Done) => true,
        (Input::Get, Output::Value(v)) => v == state,
        (Input::Incr(d), _) => {
            *output
                == match as_int(state) {
                    None => Output::NotAnInteger,
                    Some(base) => base.checked_add(*d).map_or(Output::Overflow, Output::Int),
                }
        }
        (Input::Cas { expect, .. }, Output::Cas(passed)) => (expect == state) == *passed,
        _ => false,
    }
}

/// Whether an op with this input and recorded output left the state unchanged.
fn is_read(input: &Input, output: &Output) -> bool {
    match (input, output) {
        (Input::Get, _) | (_, Output::Cas(false) | Output::NotAnInteger | Output::Overflow) => true,
        (Input::Cas { expect, new }, Output::Cas(true)) => expect.as_deref() == Some(new.as_slice()),
        _ => false,
    }
}

/// Whether the value is what an incr writes: a decimal int64 as `i64::to_string` formats it.
fn is_canonical_int(value: &Value) -> bool {
    as_int(value).is_some_and(|x| value.as_deref() == Some(x.to_string().as_bytes()))
}

/// The value as an incr sees it: absent or empty is 0; `None` if not a decimal int64.
fn as_int(value: &Value) -> Option<i64> {
    match value.as_deref() {
        None | Some([]) => Some(0),
        Some(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
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

/// Whether each unknown op in `u0` but not in `u` is an incr whose delta is the sum of a separate
/// group of the unknown incrs in `u` but not in `u0` (`delta` by rank). Gives up (false) on large
/// or hard instances.
fn refines(u0: &[u64], u: &[u64], delta: &[Option<i64>]) -> bool {
    let mut need = [0i64; 8];
    let mut needed = 0;
    let mut have = [0i64; 16];
    let mut had = 0;
    for (w, (&x, &y)) in u0.iter().zip(u).enumerate() {
        let mut bits = x & !y;
        while bits != 0 {
            let rank = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            match delta[rank] {
                Some(d) if needed < need.len() => {
                    need[needed] = d;
                    needed += 1;
                }
                _ => return false,
            }
        }
        let mut bits = y & !x;
        while bits != 0 {
            let rank = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(d) = delta[rank] {
                if had == have.len() {
                    return false;
                }
                have[had] = d;
                had += 1;
            }
        }
    }
    let need = &mut need[..needed];
    need.sort_by_key(|d| std::cmp::Reverse(d.unsigned_abs()));
    let mut used = [false; 16];
    let mut budget = 4096u32;
    cover(need, &have[..had], &mut used[..had], &mut budget)
}

/// Whether each of `need` is the sum of a separate non-empty group of the unused `have`.
fn cover(need: &[i64], have: &[i64], used: &mut [bool], budget: &mut u32) -> bool {
    match need.split_first() {
        None => true,
        Some((&target, rest)) => pick(target, 0, false, rest, have, used, budget),
    }
}

/// Picks unused `have[from..]` adding up to `target` (at least one if not `picked` yet), then
/// covers `rest`. Recursion depth is at most `have.len()` per element of `need`.
fn pick(
    target: i64,
    from: usize,
    picked: bool,
    rest: &[i64],
    have: &[i64],
    used: &mut [bool],
    budget: &mut u32,
) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    if target == 0 && picked && cover(rest, have, used, budget) {
        return true;
    }
    for i in from..have.len() {
        if !used[i] {
            used[i] = true;
            if pick(target - have[i], i + 1, true, rest, have, used, budget) {
                return true;
            }
            used[i] = false;
        }
    }
    false
}

/// A set of integers, as a bitset over `lo..`.
#[derive(Clone, Debug)]
struct SumSet {
    lo: i64,
    bits: Vec<u64>,
}

impl SumSet {
    fn zero() -> Self {
        SumSet { lo: 0, bits: vec![1] }
    }

    fn contains(&self, x: i64) -> bool {
        x.checked_sub(self.lo)
            .and_then(|i| usize::try_from(i).ok())
            .is_some_and(|i| i < self.bits.len() * 64 && test_bit(&self.bits, i))
    }

    /// `{s + m * d : s in self, 0 <= m <= n}`, or `None` if spread over more than `MAX_SUM_RANGE`
    /// values.
    fn add_multiples(&self, d: i64, n: usize) -> Option<SumSet> {
        let span = d.checked_mul(i64::try_from(n).ok()?)?;
        let width = u64::try_from(self.bits.len() * 64).ok()?.checked_add(span.unsigned_abs())?;
        if width > MAX_SUM_RANGE {
            return None;
        }
        let lo = self.lo.checked_add(span.min(0))?;
        let mut bits = vec![0u64; usize::try_from(width).ok()?.div_ceil(64) + 1];
        for m in 0..=n {
            // Where self's first bit lands: s - lo + m * d for s = self.lo.
            let shift = usize::try_from(self.lo - lo + d * i64::try_from(m).ok()?).ok()?;
            let (words, offset) = (shift / 64, shift % 64);
            for (i, &x) in self.bits.iter().enumerate() {
                if x != 0 {
                    bits[i + words] |= x << offset;
                    if offset > 0 {
                        bits[i + words + 1] |= x >> (64 - offset);
                    }
                }
            }
        }
        Some(SumSet { lo, bits })
    }
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
        assert!(!ok(&[&base[..], &[op(3, 100, 110, Input::Get, got(None)), read(200, "a")]].concat()));
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

    /// Cases the comparison with brute force found (see `agrees_with_brute_force*`).
    #[test]
    fn unknown_incrs_regressions() {
        // Two unknown incrs cancelling out still turn absent into "0".
        let h = [
            lost(1, 100, Input::Incr(-1)),
            lost(1, 200, Input::Incr(1)),
            op(1, 300, 300, Input::Get, got(Some("0"))),
        ];
        assert!(ok(&h));
        // Incr(0) normalises "" to "0" (here with an unknown cas around, so without sum pruning).
        let h = [
            op(0, 100, 100, set("1"), Output::Done),
            lost(0, 200, set("")),
            lost(0, 300, Input::Incr(0)),
            op(0, 400, 400, Input::Get, got(Some("0"))),
            lost(0, 400, Input::Cas { expect: None, new: b("") }),
        ];
        assert!(ok(&h));
        // All three unknown incrs are needed: -2 and +3 add up to the +1 also in the run.
        let incr = |at: u64, out: i64| op(0, at, at, Input::Incr(0), Output::Int(out));
        let h = [
            incr(100, 0),
            lost(0, 200, Input::Incr(-2)),
            lost(0, 291, Input::Incr(3)),
            lost(0, 400, Input::Incr(1)),
            incr(500, 2),
        ];
        assert!(ok(&h));
        let mut bad = h.to_vec();
        bad[4].output = Some(Output::Int(7));
        assert!(!ok(&bad));
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
        let zero = v("0");
        assert!(check_key(&zero, &h).is_ok());
        h.push(op(9, 10_000, 10_005, Input::Get, got(Some("299"))));
        assert!(check_key(&zero, &h).is_err());
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
        spec_with(8)
    }

    /// An op spec that completes `completed_weight` times as often as it takes effect unknown (and
    /// as it is lost unknown).
    fn spec_with(completed_weight: u32) -> impl Strategy<Value = Spec> {
        let fate = prop_oneof![
            completed_weight => Just(Fate::Completed),
            1 => Just(Fate::UnknownApplied),
            1 => Just(Fate::UnknownLost),
        ];
        (input(), 0u64..350, 0u64..350, fate).prop_map(|(input, before, after, fate)| Spec {
            input,
            before,
            after,
            fate,
        })
    }

    fn any_output() -> impl Strategy<Value = Output> {
        prop_oneof![
            Just(Output::Done),
            prop::option::of(value()).prop_map(Output::Value),
            (-4i64..10).prop_map(Output::Int),
            Just(Output::NotAnInteger),
            Just(Output::Overflow),
            any::<bool>().prop_map(Output::Cas),
        ]
    }

    /// Linearizability by exhaustive search straight from the definition: every order of every
    /// subset of the ops that includes the completed ones (tiny histories only).
    fn brute_force(initial: &Value, ops: &[Op]) -> bool {
        fn search(state: &Value, ops: &[Op], placed: &mut [bool]) -> bool {
            if ops.iter().zip(placed.iter()).all(|(op, &p)| p || op.complete_ms.is_none()) {
                return true;
            }
            for i in 0..ops.len() {
                // Every op that completed before this one was invoked must come first.
                let ready = !placed[i]
                    && (0..ops.len())
                        .all(|j| placed[j] || ops[j].complete_ms.is_none_or(|c| c >= ops[i].invoke_ms));
                if !ready {
                    continue;
                }
                let (next, output) = step(state, &ops[i].input);
                if ops[i].complete_ms.is_some() && ops[i].output.as_ref() != Some(&output) {
                    continue;
                }
                placed[i] = true;
                if search(&next, ops, placed) {
                    return true;
                }
                placed[i] = false;
            }
            false
        }
        search(initial, ops, &mut vec![false; ops.len()])
    }

    proptest! {
        // No regression files: failures print their minimal case, to be turned into a unit test.
        #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Small histories, linearizable by construction or with one output replaced by an
        /// arbitrary one, some with many unknown ops: the checker agrees with brute force.
        #[test]
        fn agrees_with_brute_force(
            specs in prop::collection::vec(spec_with(2), 0..8),
            clients in 1u64..4,
            corrupt in prop::option::of((any::<prop::sample::Index>(), any_output())),
        ) {
            let mut ops = build(&specs, clients, 100);
            if let Some((pick, output)) = corrupt {
                let completed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].complete_ms.is_some()).collect();
                if !completed.is_empty() {
                    ops[completed[pick.index(completed.len())]].output = Some(output);
                }
            }
            let expected = brute_force(&None, &ops);
            let result = check_key(&None, &ops);
            prop_assert_eq!(result.is_ok(), expected, "{:?}\n{:#?}", result, ops);
        }

        /// The same for counters (incrs of varied deltas and gets, many of them unknown), where the
        /// reductions specific to unknown incrs apply.
        #[test]
        fn agrees_with_brute_force_on_counters(
            specs in prop::collection::vec(
                (
                    prop_oneof![3 => (-3i64..=5).prop_map(Input::Incr), 1 => Just(Input::Get)],
                    0u64..250,
                    0u64..250,
                    prop_oneof![2 => Just(Fate::Completed), 1 => Just(Fate::UnknownApplied), 1 => Just(Fate::UnknownLost)],
                )
                    .prop_map(|(input, before, after, fate)| Spec { input, before, after, fate }),
                0..10,
            ),
            corrupt in prop::option::of((any::<prop::sample::Index>(), -3i64..12)),
        ) {
            let mut ops = build(&specs, 3, 100);
            if let Some((pick, value)) = corrupt {
                let completed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].complete_ms.is_some()).collect();
                if !completed.is_empty() {
                    let i = completed[pick.index(completed.len())];
                    ops[i].output = Some(match ops[i].input {
                        Input::Get => got(Some(&value.to_string())),
                        _ => Output::Int(value),
                    });
                }
            }
            let expected = brute_force(&None, &ops);
            let result = check_key(&None, &ops);
            prop_assert_eq!(result.is_ok(), expected, "{:?}\n{:#?}", result, ops);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

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

    #[derive(Clone, Copy, Debug)]
    enum Workload {
        /// Set (unique values), get, del, cas: the simulator's register keys.
        Register,
        /// Incr by `deltas`, get: the simulator's counter keys.
        Counter { deltas: (i64, i64) },
        /// Everything on one key, values that incr accepts: harder than the simulator's keys.
        Mixed,
    }

    /// A history like the simulator's: `n` ops from 8 clients, each client's ops one at a time,
    /// `unknown_pct` % with unknown outcome (half of them taking effect).
    fn big_history(workload: Workload, seed: u64, n: usize, unknown_pct: u32) -> Vec<Op> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut written: Vec<Value> = vec![None];
        let specs: Vec<Spec> = (0..n)
            .map(|i| {
                let roll = rng.random_range(0..100);
                let input = match workload {
                    Workload::Register => match roll {
                        0..35 => Input::Set(format!("v{i}").into_bytes()),
                        35..75 => Input::Get,
                        75..80 => Input::Del,
                        _ => {
                            let back = rng.random_range(0..3).min(written.len() - 1);
                            let expect = written[written.len() - 1 - back].clone();
                            Input::Cas { expect, new: format!("c{i}").into_bytes() }
                        }
                    },
                    Workload::Counter { deltas: (lo, hi) } => match roll {
                        0..70 => Input::Incr(rng.random_range(lo..=hi)),
                        _ => Input::Get,
                    },
                    Workload::Mixed => match roll {
                        0..30 => Input::Set(i.to_string().into_bytes()),
                        30..70 => Input::Get,
                        70..85 => Input::Incr(rng.random_range(-3..=5)),
                        85..95 => {
                            let guess = rng.random_range(0..=i) as u64;
                            Input::Cas { expect: v(&guess.to_string()), new: format!("c{i}").into_bytes() }
                        }
                        _ => Input::Del,
                    },
                };
                if let Input::Set(value) | Input::Cas { new: value, .. } = &input {
                    written.push(Some(value.clone()));
                }
                let fate = match rng.random_range(0..200) {
                    r if r < unknown_pct => Fate::UnknownApplied,
                    r if r < 2 * unknown_pct => Fate::UnknownLost,
                    _ => Fate::Completed,
                };
                // Points are 10 ms apart and a client's ops 80 ms apart: widening by < 40 ms on each
                // side keeps each client's ops sequential while overlapping up to 8 of them.
                Spec { input, before: rng.random_range(0..40), after: rng.random_range(0..40), fate }
            })
            .collect();
        build(&specs, 8, 10)
    }

    fn completed_gets(ops: &[Op]) -> Vec<usize> {
        (0..ops.len()).filter(|&i| ops[i].input == Input::Get && ops[i].complete_ms.is_some()).collect()
    }

    /// ~2000 ops from 8 clients on one key, as on the simulator's keys, 2% with unknown outcome:
    /// linearizable as generated, and not once a read in the middle is corrupted. (Timings are not
    /// asserted.)
    #[test]
    fn big_histories_are_checked() {
        let workloads = [
            Workload::Register,
            Workload::Counter { deltas: (1, 1) },
            Workload::Counter { deltas: (-3, 5) },
            Workload::Mixed,
        ];
        for workload in workloads {
            let ops = big_history(workload, 7, 2000, 2);
            let result = check_key(&None, &ops);
            assert!(result.is_ok(), "{workload:?}: {}", result.err().map(|e| e.message).unwrap_or_default());
            let gets = completed_gets(&ops);
            let i = gets[gets.len() / 2];
            let mut bad = ops.clone();
            bad[i].output = Some(got(Some(NEVER)));
            let err = check_key(&None, &bad).expect_err("corrupted read");
            assert!(err.message.starts_with("not linearizable"), "{err}");
            assert!(err.message.contains(&format!("#{i} ")), "{err}");
        }
    }

    /// A stale read after everything else in a big register history: the search has to rule out
    /// every linearization of the ~2000 ops before it.
    #[test]
    fn a_stale_final_read_in_a_big_history_is_found() {
        let mut ops = big_history(Workload::Register, 3, 2000, 2);
        // The first completed set: completed writes follow it, and no other op writes its value.
        let first_set = (0..ops.len())
            .find(|&i| matches!(ops[i].input, Input::Set(_)) && ops[i].complete_ms.is_some())
            .unwrap();
        let Input::Set(stale) = ops[first_set].input.clone() else { unreachable!() };
        let end = ops.iter().filter_map(|op| op.complete_ms).max().unwrap();
        ops.push(op(99, end + 1, end + 2, Input::Get, Output::Value(Some(stale))));
        let err = check_key(&None, &ops).expect_err("stale read");
        assert!(err.message.starts_with("not linearizable"), "{err}");
        assert!(err.message.contains(&format!("#{} client 99", ops.len() - 1)), "{err}");
        // Without the stale read it is fine.
        ops.pop();
        assert!(check_key(&None, &ops).is_ok());
    }

    #[test]
    fn the_search_gives_up_after_its_budget() {
        let ops = big_history(Workload::Counter { deltas: (-3, 5) }, 1, 300, 4);
        assert!(Search::new(&None, &ops).run(SEARCH_STEPS).is_ok());
        let err = Search::new(&None, &ops).run(10).expect_err("too small a budget");
        assert!(err.message.starts_with("linearizability undecided"), "{err}");
        assert!(err.message.contains("gave up after 10 steps"), "{err}");
        assert!(err.message.lines().count() <= 12, "{err}");
    }
}
