//! Model test: random sequences of puts (as transactions and through `put_one`), deletes (single and range), transactions with
//! compares, reads at past revisions and compactions, run against a store and against a
//! reference model (one `BTreeMap` snapshot per revision), compared after every step.
//!
//! Every response is compared whole (revisions, metadata, `prev_kv`, `more`, `count`, errors),
//! the store's revision and compact revision after every step, the latest keys after every
//! step, and every readable past revision at the end.
//!
//! Each store is one line at the bottom: `model_test!(name, cases, factory)`.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use orchestra_store::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, MemStore, Op, OpResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, Revision, Store, StoreError, Txn,
    TxnResponse,
};
use proptest::prelude::*;

const KEYS: u8 = 8;
const VALUES: u8 = 4;

fn key(k: u8) -> Bytes {
    Bytes::from(format!("k{k}"))
}

fn value(v: u8) -> Bytes {
    Bytes::from(format!("v{v}"))
}

/// Which revision a read or a compaction names, relative to the store's current revision.
#[derive(Clone, Copy, Debug)]
enum Pick {
    /// 0: the latest.
    Latest,
    /// This many revisions back (not below the initial revision).
    Back(u8),
    /// This many revisions ahead (1 = the next revision).
    Ahead(u8),
}

#[derive(Clone, Debug)]
enum Shape {
    Single(u8),
    Interval(u8, u8),
    FromKey(u8),
    All,
}

impl Shape {
    fn range(&self) -> KeyRange {
        match *self {
            Shape::Single(k) => KeyRange::single(key(k)),
            Shape::Interval(a, b) if a < b => KeyRange::interval(key(a), key(b)),
            Shape::Interval(a, b) if a > b => KeyRange::interval(key(b), key(a)),
            Shape::Interval(a, _) => KeyRange::single(key(a)),
            Shape::FromKey(k) => KeyRange::from_key(key(k)),
            Shape::All => KeyRange::prefix("k"),
        }
    }
}

#[derive(Clone, Debug)]
struct Read {
    shape: Shape,
    at: Pick,
    limit: usize,
    keys_only: bool,
    count_only: bool,
}

/// An operation of a transaction branch.
#[derive(Clone, Debug)]
enum BranchOp {
    Put { k: u8, v: u8, prev_kv: bool },
    Delete { k: u8, prev_kv: bool },
    Read(Read),
}

/// A compare, with its operand relative to the key's current field (so that it often holds).
#[derive(Clone, Debug)]
struct Guard {
    k: u8,
    target: u8,
    delta: i64,
    op: u8,
    v: u8,
}

#[derive(Clone, Debug)]
enum Step {
    /// A put, as a one-put transaction or (`one`) through `Store::put_one`.
    Put {
        k: u8,
        v: u8,
        prev_kv: bool,
        one: bool,
    },
    Delete {
        k: u8,
    },
    DeleteRange {
        shape: Shape,
        prev_kv: bool,
    },
    Txn {
        guards: Vec<Guard>,
        success: Vec<BranchOp>,
        failure: Vec<BranchOp>,
    },
    Range(Read),
    Compact(Pick),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        2 => Just(Pick::Latest),
        5 => (0u8..12).prop_map(Pick::Back),
        1 => (1u8..3).prop_map(Pick::Ahead),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        3 => (0..KEYS).prop_map(Shape::Single),
        3 => (0..KEYS, 0..KEYS).prop_map(|(a, b)| Shape::Interval(a, b)),
        1 => (0..KEYS).prop_map(Shape::FromKey),
        2 => Just(Shape::All),
    ]
}

fn read() -> impl Strategy<Value = Read> {
    (
        shape(),
        pick(),
        0usize..4,
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(shape, at, limit, keys_only, count_only)| Read {
            shape,
            at,
            limit,
            keys_only,
            count_only,
        })
}

fn branch_op() -> impl Strategy<Value = BranchOp> {
    prop_oneof![
        4 => (0..KEYS, 0..VALUES, any::<bool>()).prop_map(|(k, v, prev_kv)| BranchOp::Put { k, v, prev_kv }),
        2 => (0..KEYS, any::<bool>()).prop_map(|(k, prev_kv)| BranchOp::Delete { k, prev_kv }),
        1 => read().prop_map(BranchOp::Read),
    ]
}

/// Drop the operations that would write a key a second time in the branch (the store rejects
/// those; the conformance suite checks that separately).
fn distinct(ops: Vec<BranchOp>) -> Vec<BranchOp> {
    let mut written = std::collections::BTreeSet::new();
    ops.into_iter()
        .filter(|op| match op {
            BranchOp::Put { k, .. } | BranchOp::Delete { k, .. } => written.insert(*k),
            BranchOp::Read(_) => true,
        })
        .collect()
}

fn guard() -> impl Strategy<Value = Guard> {
    (0..KEYS, 0u8..5, -1i64..=1, 0u8..4, 0..VALUES).prop_map(|(k, target, delta, op, v)| Guard {
        k,
        target,
        delta,
        op,
        v,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..KEYS, 0..VALUES, any::<bool>(), any::<bool>())
            .prop_map(|(k, v, prev_kv, one)| Step::Put { k, v, prev_kv, one }),
        2 => (0..KEYS).prop_map(|k| Step::Delete { k }),
        1 => (shape(), any::<bool>()).prop_map(|(shape, prev_kv)| Step::DeleteRange { shape, prev_kv }),
        4 => (
            prop::collection::vec(guard(), 0..3),
            prop::collection::vec(branch_op(), 0..5),
            prop::collection::vec(branch_op(), 0..3),
        )
            .prop_map(|(guards, success, failure)| Step::Txn {
                guards,
                success: distinct(success),
                failure: distinct(failure),
            }),
        3 => read().prop_map(Step::Range),
        1 => pick().prop_map(Step::Compact),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..48)
}

/// The reference: the keys at every revision since the store's initial one.
struct Model {
    initial: Revision,
    snapshots: Vec<BTreeMap<Bytes, KeyValue>>,
    compact: Revision,
}

impl Model {
    fn current(&self) -> Revision {
        self.initial + self.snapshots.len() as Revision - 1
    }

    fn latest(&self) -> &BTreeMap<Bytes, KeyValue> {
        self.snapshots
            .last()
            .expect("the model always has the initial snapshot")
    }

    fn revision(&self, pick: Pick) -> Revision {
        match pick {
            Pick::Latest => 0,
            Pick::Back(n) => (self.current() - Revision::from(n)).max(self.initial),
            Pick::Ahead(n) => self.current() + Revision::from(n),
        }
    }

    /// Where a read at `revision` (0: latest) reads, or its error, when the store is at `current`.
    fn readable(&self, revision: Revision, current: Revision) -> Result<Revision, StoreError> {
        if revision <= 0 {
            return Ok(current);
        }
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision < self.compact {
            return Err(StoreError::Compacted {
                requested: revision,
                compact_revision: self.compact,
            });
        }
        Ok(revision)
    }

    fn range_in(
        keys: &BTreeMap<Bytes, KeyValue>,
        req: &RangeRequest,
        header: Revision,
    ) -> RangeResponse {
        let matching: Vec<&KeyValue> = keys
            .values()
            .filter(|kv| req.range.contains(&kv.key))
            .collect();
        let count = matching.len();
        let mut resp = RangeResponse {
            header_revision: header,
            count,
            ..Default::default()
        };
        if req.count_only {
            return resp;
        }
        let take = if req.limit > 0 {
            req.limit.min(count)
        } else {
            count
        };
        resp.more = take < count;
        resp.kvs = matching[..take]
            .iter()
            .map(|kv| {
                let mut kv = (*kv).clone();
                if req.keys_only {
                    kv.value = Bytes::new();
                }
                kv
            })
            .collect();
        resp
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let at = self.readable(req.revision, self.current())?;
        Ok(Self::range_in(
            &self.snapshots[(at - self.initial) as usize],
            req,
            self.current(),
        ))
    }

    fn holds(&self, cmp: &Compare) -> bool {
        let kv = self.latest().get(&cmp.key);
        let ordering = match (&cmp.target, kv) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(want), Some(kv)) => kv.value.cmp(want),
            (CompareTarget::Version(want), kv) => kv.map_or(0, |kv| kv.version).cmp(want),
            (CompareTarget::CreateRevision(want), kv) => {
                kv.map_or(0, |kv| kv.create_revision).cmp(want)
            }
            (CompareTarget::ModRevision(want), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(want),
            (CompareTarget::Lease(want), kv) => kv.map_or(0, |kv| kv.lease).cmp(want),
        };
        match cmp.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        }
    }

    fn txn(&mut self, txn: &Txn) -> Result<TxnResponse, StoreError> {
        let succeeded = txn.compares.iter().all(|c| self.holds(c));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let current = self.current();
        for op in ops {
            if let Op::Range(req) = op {
                self.readable(req.revision, current)?;
            }
        }
        let revision = current + 1;
        let mut keys = self.latest().clone();
        let mut changed = false;
        let mut responses = Vec::new();
        for op in ops {
            responses.push(match op {
                Op::Range(req) if req.revision > 0 => {
                    let at = &self.snapshots[(req.revision - self.initial) as usize];
                    OpResponse::Range(Self::range_in(at, req, 0))
                }
                Op::Range(req) => OpResponse::Range(Self::range_in(&keys, req, 0)),
                Op::Put(put) => {
                    let prev = keys.get(&put.key).cloned();
                    let kv = KeyValue {
                        key: put.key.clone(),
                        value: put.value.clone(),
                        create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        lease: put.lease,
                    };
                    keys.insert(put.key.clone(), kv);
                    changed = true;
                    OpResponse::Put {
                        prev_kv: if put.prev_kv { prev } else { None },
                    }
                }
                Op::Delete(del) => {
                    let doomed: Vec<KeyValue> = keys
                        .values()
                        .filter(|kv| del.range.contains(&kv.key))
                        .cloned()
                        .collect();
                    for kv in &doomed {
                        keys.remove(&kv.key);
                    }
                    changed |= !doomed.is_empty();
                    let deleted = doomed.len();
                    OpResponse::Delete {
                        deleted,
                        prev_kvs: if del.prev_kv { doomed } else { Vec::new() },
                    }
                }
            });
        }
        let header_revision = if changed { revision } else { current };
        if changed {
            self.snapshots.push(keys);
        }
        for resp in &mut responses {
            if let OpResponse::Range(range) = resp {
                range.header_revision = header_revision;
            }
        }
        Ok(TxnResponse {
            header_revision,
            succeeded,
            responses,
        })
    }

    fn compact(&mut self, revision: Revision) -> Result<(), StoreError> {
        if revision <= self.compact {
            return Err(StoreError::Compacted {
                requested: revision,
                compact_revision: self.compact,
            });
        }
        if revision > self.current() {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.current(),
            });
        }
        self.compact = revision;
        Ok(())
    }

    fn request(&self, read: &Read) -> RangeRequest {
        RangeRequest {
            range: read.shape.range(),
            revision: self.revision(read.at),
            limit: read.limit,
            keys_only: read.keys_only,
            count_only: read.count_only,
        }
    }

    fn compare(&self, guard: &Guard) -> Compare {
        let latest = self.latest().get(&key(guard.k));
        let field = |f: fn(&KeyValue) -> i64| latest.map_or(0, f) + guard.delta;
        let target = match guard.target {
            0 => CompareTarget::Version(field(|kv| kv.version)),
            1 => CompareTarget::CreateRevision(field(|kv| kv.create_revision)),
            2 => CompareTarget::ModRevision(field(|kv| kv.mod_revision)),
            3 => CompareTarget::Lease(field(|kv| kv.lease)),
            _ => CompareTarget::Value(value(guard.v)),
        };
        let op = [
            CompareOp::Equal,
            CompareOp::NotEqual,
            CompareOp::Greater,
            CompareOp::Less,
        ][guard.op as usize];
        Compare {
            key: key(guard.k),
            target,
            op,
        }
    }

    /// The store request for a step (operands depend on the model's current state).
    fn txn_for(&self, step: &Step) -> Txn {
        let put = |k: u8, v: u8, prev_kv: bool| {
            Op::Put(PutRequest {
                key: key(k),
                value: value(v),
                lease: 0,
                prev_kv,
            })
        };
        let branch = |ops: &[BranchOp]| -> Vec<Op> {
            ops.iter()
                .map(|op| match op {
                    BranchOp::Put { k, v, prev_kv } => put(*k, *v, *prev_kv),
                    BranchOp::Delete { k, prev_kv } => Op::Delete(DeleteRequest {
                        range: KeyRange::single(key(*k)),
                        prev_kv: *prev_kv,
                    }),
                    BranchOp::Read(read) => Op::Range(self.request(read)),
                })
                .collect()
        };
        match step {
            Step::Put { k, v, prev_kv, .. } => Txn::new().and_then([put(*k, *v, *prev_kv)]),
            Step::Delete { k } => Txn::new().and_then([Op::delete(key(*k))]),
            Step::DeleteRange { shape, prev_kv } => {
                Txn::new().and_then([Op::Delete(DeleteRequest {
                    range: shape.range(),
                    prev_kv: *prev_kv,
                })])
            }
            Step::Txn {
                guards,
                success,
                failure,
            } => Txn::new()
                .when(guards.iter().map(|g| self.compare(g)))
                .and_then(branch(success))
                .or_else(branch(failure)),
            Step::Range(_) | Step::Compact(_) => unreachable!("not a transaction"),
        }
    }
}

/// Run `steps` against `store` and the model, comparing after each.
async fn check_against_model<S: Store>(store: S, steps: Vec<Step>) {
    let status = store.status().await.expect("status");
    let mut model = Model {
        initial: status.revision,
        snapshots: vec![BTreeMap::new()],
        compact: status.compact_revision,
    };
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Range(read) => {
                let req = model.request(read);
                assert_eq!(
                    store.range(req.clone()).await,
                    model.range(&req),
                    "step {i}: {step:?} as {req:?}"
                );
            }
            Step::Compact(pick) => {
                let revision = match pick {
                    Pick::Latest => model.current(),
                    other => model.revision(*other),
                };
                assert_eq!(
                    store.compact(revision).await,
                    model.compact(revision),
                    "step {i}: compact({revision})"
                );
            }
            Step::Put { one: true, .. } => {
                let txn = model.txn_for(step);
                let Some(Op::Put(put)) = txn.success.first().cloned() else {
                    unreachable!("a put step is a one-put transaction")
                };
                // put_one must answer exactly what the one-put transaction would.
                let expected = model.txn(&txn).map(|resp| PutResponse {
                    header_revision: resp.header_revision,
                    prev_kv: match resp.responses.into_iter().next() {
                        Some(OpResponse::Put { prev_kv }) => prev_kv,
                        _ => None,
                    },
                });
                assert_eq!(
                    store.put_one(put.clone()).await,
                    expected,
                    "step {i}: {step:?} as {put:?}"
                );
            }
            _ => {
                let txn = model.txn_for(step);
                let expected = model.txn(&txn);
                assert_eq!(
                    store.txn(txn.clone()).await,
                    expected,
                    "step {i}: {step:?} as {txn:?}"
                );
            }
        }
        let status = store.status().await.expect("status");
        assert_eq!(
            (status.revision, status.compact_revision),
            (model.current(), model.compact),
            "step {i}: {step:?}: revision and compact revision"
        );
        let all = store.range(RangeRequest::prefix("k")).await.expect("range");
        let want: Vec<KeyValue> = model.latest().values().cloned().collect();
        assert_eq!(all.kvs, want, "step {i}: {step:?}: the latest keys");
    }
    for revision in model.compact.max(model.initial)..=model.current() {
        let req = RangeRequest::prefix("k").at_revision(revision);
        assert_eq!(
            store.range(req.clone()).await,
            model.range(&req),
            "at the end, the keys at revision {revision}"
        );
    }
}

/// Run one case on a fresh runtime and store.
fn run<S, F, Fut>(new_store: &F, steps: Vec<Step>)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    runtime.block_on(async {
        let store = new_store().await;
        check_against_model(store, steps).await;
    });
}

/// One proptest per store: `model_test!(test name, cases, factory)`.
macro_rules! model_test {
    ($name:ident, $cases:expr, $new_store:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: $cases, ..ProptestConfig::default() })]
            #[test]
            fn $name(steps in steps()) {
                run(&$new_store, steps);
            }
        }
    };
}

#[cfg(all(feature = "disk", feature = "testing"))]
async fn disk_store()
-> orchestra_store::testing::Guarded<orchestra_store::DiskStore, tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = orchestra_store::DiskStore::open(dir.path())
        .await
        .expect("open a DiskStore");
    orchestra_store::testing::Guarded::new(store, dir)
}

model_test!(mem_store_matches_model, 256, || async { MemStore::new() });
#[cfg(all(feature = "disk", feature = "testing"))]
model_test!(disk_store_matches_model, 32, disk_store);
