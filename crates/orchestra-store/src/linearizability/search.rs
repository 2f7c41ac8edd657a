//! The search for a linearization of one partition's operations: Wing & Gong's algorithm with
//! Lowe's just-in-time linearization and memoization, the algorithm porcupine and knossos use.
//!
//! The history becomes a list of call and return events ordered by time. The search walks it,
//! linearizing a call whenever the model accepts it in the current state, lifting the call
//! and its return out of the list; reaching a return whose call is not linearized means the
//! last choice was wrong, so it backtracks. A (linearized set, state) pair seen before is not
//! explored again, which bounds the work by the number of distinct configurations. An
//! operation whose answer was lost returns at "infinity", after everything: it may be
//! linearized anywhere after its call, including after every other operation, which is the
//! same as never taking effect.
//!
//! No crate offers this for an arbitrary model in Rust (the known checkers are Go's porcupine
//! and Clojure's knossos), hence this implementation.

use std::collections::HashSet;

use super::history::Operation;
use super::model::Model;

/// What the search concluded about one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchOutcome {
    /// A linearization exists; the operations' indexes in linearization order.
    Linearizable(Vec<usize>),
    /// No linearization exists. The longest prefix the search could linearize, as indexes,
    /// tells where it broke.
    NotLinearizable {
        /// The longest sequence of operations the search could linearize.
        longest_prefix: Vec<usize>,
    },
    /// The step budget ran out before an answer.
    Unknown {
        /// The steps taken.
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

/// A set of operation indexes, hashed into the memo.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(n: usize) -> Self {
        Bitset(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The doubly linked list of call and return events the search lifts entries out of.
struct Events {
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call: the index of its return.
    matching: Vec<usize>,
    prev: Vec<usize>,
    next: Vec<usize>,
    head: usize,
}

impl Events {
    fn new<I, O>(ops: &[Operation<I, O>]) -> Self {
        // (time, 0 = call / 1 = return, op): a call at the same instant as a return sorts
        // first, so operations that touch in time count as concurrent.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, 0, i));
            order.push((op.response.as_ref().map_or(u64::MAX, |r| r.at), 1, i));
        }
        order.sort_unstable();
        let n = order.len();
        let head = n;
        let mut events = Events {
            op: Vec::with_capacity(n),
            is_call: Vec::with_capacity(n),
            matching: vec![NIL; n],
            prev: Vec::with_capacity(n + 1),
            next: Vec::with_capacity(n + 1),
            head,
        };
        let mut call_of = vec![NIL; ops.len()];
        for (idx, &(_, kind, op)) in order.iter().enumerate() {
            events.op.push(op);
            events.is_call.push(kind == 0);
            if kind == 0 {
                call_of[op] = idx;
            } else {
                events.matching[call_of[op]] = idx;
            }
            events.prev.push(if idx == 0 { head } else { idx - 1 });
            events.next.push(if idx + 1 == n { NIL } else { idx + 1 });
        }
        events.prev.push(NIL);
        events.next.push(if n == 0 { NIL } else { 0 });
        events
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    /// Take a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.matching[call]);
    }

    /// Put them back (the reverse of the last `lift`).
    fn unlift(&mut self, call: usize) {
        self.relink(self.matching[call]);
        self.relink(call);
    }
}

/// Search for a linearization of `ops` under `model`, giving up after `max_steps` steps.
pub fn search<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    max_steps: u64,
) -> SearchOutcome {
    let mut events = Events::new(ops);
    let mut state = model.init();
    let mut linearized = Bitset::new(ops.len());
    let mut memo: HashSet<(Bitset, M::State)> = HashSet::new();
    // The calls linearized so far, with the state before each.
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    let mut entry = events.next[events.head];
    while events.next[events.head] != NIL {
        steps += 1;
        if steps > max_steps {
            return SearchOutcome::Unknown { steps };
        }
        let op = events.op[entry];
        if events.is_call[entry] {
            let operation = &ops[op];
            let output = operation.response.as_ref().map(|r| &r.output);
            if let Some(next) = model.step(&state, &operation.input, output) {
                let mut with = linearized.clone();
                with.set(op);
                if memo.insert((with.clone(), next.clone())) {
                    calls.push((entry, std::mem::replace(&mut state, next)));
                    linearized = with;
                    events.lift(entry);
                    if calls.len() > longest.len() {
                        longest = calls.iter().map(|&(e, _)| events.op[e]).collect();
                    }
                    entry = events.next[events.head];
                    continue;
                }
            }
            entry = events.next[entry];
        } else {
            // A return whose call is not linearized: undo the last choice and try the next.
            let Some((call, before)) = calls.pop() else {
                return SearchOutcome::NotLinearizable {
                    longest_prefix: longest,
                };
            };
            state = before;
            linearized.clear(events.op[call]);
            events.unlift(call);
            entry = events.next[call];
        }
    }
    SearchOutcome::Linearizable(calls.iter().map(|&(e, _)| events.op[e]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::history::Response;

    /// A register of one integer: write(v) answers nothing, read answers the value.
    struct Register;

    #[derive(Debug)]
    enum RegOp {
        Write(u32),
        Read,
    }

    impl Model for Register {
        type Input = RegOp;
        type Output = Option<u32>;
        type State = u32;
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, s: &u32, input: &RegOp, output: Option<&Option<u32>>) -> Option<u32> {
            match (input, output) {
                (RegOp::Write(v), _) => Some(*v),
                (RegOp::Read, None) => Some(*s),
                (RegOp::Read, Some(Some(v))) => (v == s).then_some(*s),
                (RegOp::Read, Some(None)) => None,
            }
        }
    }

    fn op(
        input: RegOp,
        call: u64,
        ret: Option<(u64, Option<u32>)>,
    ) -> Operation<RegOp, Option<u32>> {
        Operation {
            input,
            call,
            response: ret.map(|(at, output)| Response { at, output }),
        }
    }

    #[test]
    fn overlapping_write_and_read_linearize_either_way() {
        let ops = [
            op(RegOp::Write(1), 0, Some((10, None))),
            op(RegOp::Read, 5, Some((6, Some(1)))),
            op(RegOp::Read, 7, Some((8, Some(1)))),
        ];
        assert_eq!(
            search(&Register, &ops, 1000),
            SearchOutcome::Linearizable(vec![0, 1, 2])
        );
    }

    #[test]
    fn a_read_going_back_in_time_is_not_linearizable() {
        let ops = [
            op(RegOp::Write(1), 0, Some((10, None))),
            op(RegOp::Read, 5, Some((6, Some(1)))),
            op(RegOp::Read, 7, Some((8, Some(0)))),
        ];
        assert!(matches!(
            search(&Register, &ops, 1000),
            SearchOutcome::NotLinearizable { .. }
        ));
    }

    #[test]
    fn an_open_write_may_take_effect_late_or_never() {
        let late = [
            op(RegOp::Write(1), 0, None),
            op(RegOp::Read, 5, Some((6, Some(0)))),
            op(RegOp::Read, 100, Some((101, Some(1)))),
        ];
        assert!(matches!(
            search(&Register, &late, 1000),
            SearchOutcome::Linearizable(_)
        ));
        let never = [
            op(RegOp::Write(1), 0, None),
            op(RegOp::Read, 100, Some((101, Some(0)))),
        ];
        assert!(matches!(
            search(&Register, &never, 1000),
            SearchOutcome::Linearizable(_)
        ));
    }

    #[test]
    fn the_budget_bounds_the_search() {
        let ops: Vec<_> = (0..20)
            .map(|i| op(RegOp::Write(i), 0, Some((100, None))))
            .chain([op(RegOp::Read, 200, Some((201, Some(99))))])
            .collect();
        assert!(matches!(
            search(&Register, &ops, 50),
            SearchOutcome::Unknown { .. }
        ));
    }
}
