//! Sequential specifications: the [`Model`] trait the search runs, and [`KvModel`], the
//! specification of a key-value store's get, put, delete and transactions.
//!
//! A model says which outputs an operation may give in a state, and what state follows. The
//! search never asks a model to invent an output: it hands over what the store answered, or
//! `None` when the answer was lost (a timeout, a crash), in which case every output the
//! operation could have given is allowed.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use bytes::Bytes;

use crate::types::{CompareOp, Revision};

/// A sequential specification of an object, as the search needs it.
pub trait Model {
    /// What a caller asks.
    type Input: Debug;
    /// What the object answers.
    type Output: Debug;
    /// The object's state; the search memoizes on it, so it must hash and compare.
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` runs in `state` and answers `output` (`None`: the answer was
    /// lost, so any answer is allowed), or `None` when that answer is impossible in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// A value a read saw: the value and the revision that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Observed {
    /// The value.
    pub value: Bytes,
    /// The key's `mod_revision`.
    pub mod_revision: Revision,
}

/// The field a transaction's compare looks at (the two that optimistic concurrency uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnTarget {
    /// The key's `mod_revision` (0 when the key is absent).
    ModRevision(Revision),
    /// The key's value (a compare on the value of an absent key is false, as in etcd).
    Value(Bytes),
}

/// One guard of a transaction: `key.target op operand`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnCompare {
    /// The key.
    pub key: Bytes,
    /// The relation.
    pub op: CompareOp,
    /// The field and the operand.
    pub target: TxnTarget,
}

/// One operation of a transaction branch, on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// Read the key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Write the key.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Delete the key.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl TxnOp {
    fn key(&self) -> &Bytes {
        match self {
            TxnOp::Get { key } | TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }
}

/// What one [`TxnOp`] answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxnOpResult {
    /// The read's result (`None`: the key was absent).
    Get(Option<Observed>),
    /// The put happened.
    Put,
    /// Whether the delete found the key.
    Delete {
        /// True when the key existed and was deleted.
        deleted: bool,
    },
}

/// An operation on a key-value store, as [`KvModel`] specifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvInput {
    /// Read one key at the latest revision.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Write one key.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Delete one key.
    Delete {
        /// The key.
        key: Bytes,
    },
    /// A transaction: if every compare holds run `success`, else `failure`, atomically.
    Txn {
        /// The guards.
        compares: Vec<TxnCompare>,
        /// The operations when every compare holds.
        success: Vec<TxnOp>,
        /// The operations otherwise.
        failure: Vec<TxnOp>,
    },
}

impl KvInput {
    /// Every key the operation reads or writes (the unit of partitioning).
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            KvInput::Get { key } | KvInput::Put { key, .. } | KvInput::Delete { key } => {
                vec![key]
            }
            KvInput::Txn {
                compares,
                success,
                failure,
            } => compares
                .iter()
                .map(|c| &c.key)
                .chain(success.iter().chain(failure).map(TxnOp::key))
                .collect(),
        }
    }

    /// Can the operation change the store? (An operation that cannot, and whose answer was
    /// lost, constrains nothing and is left out of the search.)
    pub fn may_write(&self) -> bool {
        match self {
            KvInput::Get { .. } => false,
            KvInput::Put { .. } | KvInput::Delete { .. } => true,
            KvInput::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .any(|op| !matches!(op, TxnOp::Get { .. })),
        }
    }
}

/// What a key-value store answered to a [`KvInput`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The read's result (`None`: the key was absent).
    Get(Option<Observed>),
    /// The put's revision.
    Put {
        /// The revision of the write.
        revision: Revision,
    },
    /// Whether the delete found the key, and the store's revision after it.
    Delete {
        /// True when the key existed and was deleted.
        deleted: bool,
        /// The delete's revision when it deleted (otherwise the store's revision; unused).
        revision: Revision,
    },
    /// The transaction's branch, revision and per-operation results.
    Txn {
        /// True when every compare held and `success` ran.
        succeeded: bool,
        /// The transaction's revision when it wrote (otherwise the store's; unused).
        revision: Revision,
        /// One result per operation of the branch that ran.
        results: Vec<TxnOpResult>,
    },
}

impl KvOutput {
    /// The revision this answer says the operation wrote at, when it wrote.
    pub fn written_revision(&self) -> Option<Revision> {
        match self {
            KvOutput::Get(_) => None,
            KvOutput::Put { revision } => Some(*revision),
            KvOutput::Delete { deleted, revision } => deleted.then_some(*revision),
            KvOutput::Txn {
                revision, results, ..
            } => results
                .iter()
                .any(|r| matches!(r, TxnOpResult::Put | TxnOpResult::Delete { deleted: true }))
                .then_some(*revision),
        }
    }
}

/// A key's value in a [`KvState`]: the value and its `mod_revision`, which is unknown
/// (`None`) when the write's answer was lost and no read has seen it since.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyState {
    /// The value.
    pub value: Bytes,
    /// The revision that wrote it, if known.
    pub mod_revision: Option<Revision>,
}

/// The keys of one partition and their values (absent keys are not in the map).
pub type KvState = BTreeMap<Bytes, KeyState>;

/// The sequential specification of a key-value store with etcd's revisions.
///
/// Revisions are not predicted (the store picks them, globally across keys): a write takes the
/// revision its answer names, a write whose answer was lost an unknown one that the first read
/// to see it fixes. That keeps the model valid per partition of keys; the global order of
/// revisions is checked on its own (see [`check`](super::check)).
///
/// Because an unknown revision makes a compare on `mod_revision` go either way, the model's
/// state is the set of states the store may be in (sorted, without duplicates).
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = Vec<KvState>;

    fn init(&self) -> Self::State {
        vec![KvState::new()]
    }

    fn step(
        &self,
        states: &Self::State,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Self::State> {
        let mut next = Vec::new();
        for state in states {
            step_one(state, input, output, &mut next);
        }
        next.sort();
        next.dedup();
        (!next.is_empty()).then_some(next)
    }
}

/// Does a read that saw `observed` agree with `entry`? Returns the entry with its revision
/// fixed by the read.
fn observe(entry: Option<&KeyState>, observed: Option<&Observed>) -> Option<Option<KeyState>> {
    match (entry, observed) {
        (None, None) => Some(None),
        (Some(entry), Some(seen)) if entry.value == seen.value => match entry.mod_revision {
            Some(rev) if rev != seen.mod_revision => None,
            _ => Some(Some(KeyState {
                value: entry.value.clone(),
                mod_revision: Some(seen.mod_revision),
            })),
        },
        _ => None,
    }
}

fn set(state: &mut KvState, key: &Bytes, entry: Option<KeyState>) {
    match entry {
        Some(entry) => {
            state.insert(key.clone(), entry);
        }
        None => {
            state.remove(key);
        }
    }
}

fn step_one(state: &KvState, input: &KvInput, output: Option<&KvOutput>, out: &mut Vec<KvState>) {
    match (input, output) {
        (KvInput::Get { key }, None) => {
            let _ = key;
            out.push(state.clone());
        }
        (KvInput::Get { key }, Some(KvOutput::Get(seen))) => {
            if let Some(entry) = observe(state.get(key), seen.as_ref()) {
                let mut next = state.clone();
                set(&mut next, key, entry);
                out.push(next);
            }
        }
        (KvInput::Put { key, value }, output) => {
            let mod_revision = match output {
                None => None,
                Some(KvOutput::Put { revision }) => Some(*revision),
                Some(_) => return,
            };
            let mut next = state.clone();
            next.insert(
                key.clone(),
                KeyState {
                    value: value.clone(),
                    mod_revision,
                },
            );
            out.push(next);
        }
        (KvInput::Delete { key }, output) => {
            let present = state.contains_key(key);
            match output {
                None => {}
                Some(KvOutput::Delete { deleted, .. }) if *deleted == present => {}
                Some(_) => return,
            }
            let mut next = state.clone();
            next.remove(key);
            out.push(next);
        }
        (
            KvInput::Txn {
                compares,
                success,
                failure,
            },
            output,
        ) => step_txn(state, compares, success, failure, output, out),
        (KvInput::Get { .. }, Some(_)) => {}
    }
}

/// Every way the compares can turn out in `state`: (all held, the state with any revision
/// the outcome fixed).
fn evaluate(state: &KvState, compares: &[TxnCompare]) -> Vec<(bool, KvState)> {
    let mut outcomes = vec![(true, state.clone())];
    for compare in compares {
        let mut next = Vec::new();
        for (held, state) in outcomes {
            let entry = state.get(&compare.key);
            match (&compare.target, entry) {
                (TxnTarget::Value(_), None) => next.push((false, state)),
                (TxnTarget::Value(want), Some(entry)) => {
                    let holds = relate(compare.op, entry.value.as_ref().cmp(want.as_ref()));
                    next.push((held && holds, state));
                }
                (TxnTarget::ModRevision(want), None) => {
                    let holds = relate(compare.op, 0.cmp(want));
                    next.push((held && holds, state));
                }
                (TxnTarget::ModRevision(want), Some(entry)) => match entry.mod_revision {
                    Some(rev) => {
                        let holds = relate(compare.op, rev.cmp(want));
                        next.push((held && holds, state));
                    }
                    None => {
                        // Unknown revision: the compare may go either way. When it holds as
                        // an equality, it fixes the revision.
                        if compare.op == CompareOp::Equal {
                            let mut fixed = state.clone();
                            if let Some(e) = fixed.get_mut(&compare.key) {
                                e.mod_revision = Some(*want);
                            }
                            next.push((held, fixed));
                        } else {
                            next.push((held, state.clone()));
                        }
                        next.push((false, state));
                    }
                },
            }
        }
        outcomes = next;
    }
    outcomes
}

fn relate(op: CompareOp, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering as O;
    match op {
        CompareOp::Equal => ordering == O::Equal,
        CompareOp::NotEqual => ordering != O::Equal,
        CompareOp::Greater => ordering == O::Greater,
        CompareOp::Less => ordering == O::Less,
    }
}

fn step_txn(
    state: &KvState,
    compares: &[TxnCompare],
    success: &[TxnOp],
    failure: &[TxnOp],
    output: Option<&KvOutput>,
    out: &mut Vec<KvState>,
) {
    let (want_branch, revision, results) = match output {
        None => (None, None, None),
        Some(KvOutput::Txn {
            succeeded,
            revision,
            results,
        }) => (Some(*succeeded), Some(*revision), Some(results)),
        Some(_) => return,
    };
    for (held, mut state) in evaluate(state, compares) {
        if want_branch.is_some_and(|want| want != held) {
            continue;
        }
        let ops = if held { success } else { failure };
        if results.is_some_and(|r| r.len() != ops.len()) {
            continue;
        }
        let mut ok = true;
        for (i, op) in ops.iter().enumerate() {
            let result = results.map(|r| &r[i]);
            match (op, result) {
                (TxnOp::Get { .. }, None) => {}
                (TxnOp::Get { key }, Some(TxnOpResult::Get(seen))) => {
                    match observe(state.get(key), seen.as_ref()) {
                        Some(entry) => set(&mut state, key, entry),
                        None => ok = false,
                    }
                }
                (TxnOp::Put { key, value }, None | Some(TxnOpResult::Put)) => {
                    state.insert(
                        key.clone(),
                        KeyState {
                            value: value.clone(),
                            mod_revision: revision,
                        },
                    );
                }
                (TxnOp::Delete { key }, result) => {
                    let present = state.remove(key).is_some();
                    if let Some(result) = result
                        && *result != (TxnOpResult::Delete { deleted: present })
                    {
                        ok = false;
                    }
                }
                _ => ok = false,
            }
            if !ok {
                break;
            }
        }
        if ok {
            out.push(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn put_then_get_sees_the_value_and_revision() {
        let m = KvModel;
        let s = m.init();
        let put = KvInput::Put {
            key: b("k"),
            value: b("v"),
        };
        let s = m
            .step(&s, &put, Some(&KvOutput::Put { revision: 2 }))
            .unwrap();
        let get = KvInput::Get { key: b("k") };
        let seen = |rev| {
            KvOutput::Get(Some(Observed {
                value: b("v"),
                mod_revision: rev,
            }))
        };
        assert!(m.step(&s, &get, Some(&seen(2))).is_some());
        assert!(m.step(&s, &get, Some(&seen(3))).is_none());
        assert!(m.step(&s, &get, Some(&KvOutput::Get(None))).is_none());
    }

    #[test]
    fn a_lost_put_has_an_unknown_revision_that_a_read_fixes() {
        let m = KvModel;
        let put = KvInput::Put {
            key: b("k"),
            value: b("v"),
        };
        let s = m.step(&m.init(), &put, None).unwrap();
        let get = KvInput::Get { key: b("k") };
        let seen = KvOutput::Get(Some(Observed {
            value: b("v"),
            mod_revision: 7,
        }));
        let s = m.step(&s, &get, Some(&seen)).unwrap();
        assert_eq!(s[0][&b("k")].mod_revision, Some(7));
        let other = KvOutput::Get(Some(Observed {
            value: b("v"),
            mod_revision: 8,
        }));
        assert!(m.step(&s, &get, Some(&other)).is_none());
    }

    #[test]
    fn a_compare_on_an_unknown_revision_may_go_either_way() {
        let m = KvModel;
        let put = KvInput::Put {
            key: b("k"),
            value: b("v"),
        };
        let s = m.step(&m.init(), &put, None).unwrap();
        let txn = KvInput::Txn {
            compares: vec![TxnCompare {
                key: b("k"),
                op: CompareOp::Equal,
                target: TxnTarget::ModRevision(5),
            }],
            success: vec![],
            failure: vec![],
        };
        let out = |succeeded| KvOutput::Txn {
            succeeded,
            revision: 5,
            results: vec![],
        };
        let held = m.step(&s, &txn, Some(&out(true))).unwrap();
        assert_eq!(held[0][&b("k")].mod_revision, Some(5));
        assert!(m.step(&s, &txn, Some(&out(false))).is_some());
        let lost = m.step(&s, &txn, None).unwrap();
        assert_eq!(lost.len(), 2, "both outcomes stay possible: {lost:?}");
    }
}
