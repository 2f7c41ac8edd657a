//! `orchestra_store::linearizability`: the checker's verdicts on known histories (linearizable
//! ones, and the classic violations: a stale read, a lost write, a read that misses the
//! reader's own write, a transaction that succeeds yet is invisible), a property (a history
//! of a sequential execution, its intervals widened and answers dropped, is linearizable),
//! and recorded concurrent histories of MemStore and DiskStore.

use bytes::Bytes;
use orchestra_store::linearizability::{
    CheckError, CheckOptions, History, KvInput, KvOperation, KvOutput, Observed, Operation,
    Recorder, Response, TxnCompare, TxnOp, TxnOpResult, TxnTarget, Verdict, Violation, check,
    workload,
};
use orchestra_store::{
    CompareOp, DiskStore, MemStore, PutRequest, RangeRequest, RangeResponse, Store, StoreExt,
};
use proptest::prelude::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn done(input: KvInput, call: u64, at: u64, output: KvOutput) -> KvOperation {
    Operation {
        input,
        call,
        response: Some(Response { at, output }),
    }
}

fn lost(input: KvInput, call: u64) -> KvOperation {
    Operation {
        input,
        call,
        response: None,
    }
}

fn put(key: &str, value: &str, call: u64, at: u64, revision: i64) -> KvOperation {
    done(
        KvInput::Put {
            key: b(key),
            value: b(value),
        },
        call,
        at,
        KvOutput::Put { revision },
    )
}

fn put_input(key: &str, value: &str) -> KvInput {
    KvInput::Put {
        key: b(key),
        value: b(value),
    }
}

fn seen(value: &str, mod_revision: i64) -> Option<Observed> {
    Some(Observed {
        value: b(value),
        mod_revision,
    })
}

fn get(key: &str, saw: Option<Observed>, call: u64, at: u64) -> KvOperation {
    done(KvInput::Get { key: b(key) }, call, at, KvOutput::Get(saw))
}

fn delete(key: &str, deleted: bool, call: u64, at: u64, revision: i64) -> KvOperation {
    done(
        KvInput::Delete { key: b(key) },
        call,
        at,
        KvOutput::Delete { deleted, revision },
    )
}

/// `if key.mod_revision == expect then put key value else get key`.
fn cas_input(key: &str, expect: i64, value: &str) -> KvInput {
    KvInput::Txn {
        compares: vec![TxnCompare {
            key: b(key),
            op: CompareOp::Equal,
            target: TxnTarget::ModRevision(expect),
        }],
        success: vec![TxnOp::Put {
            key: b(key),
            value: b(value),
        }],
        failure: vec![TxnOp::Get { key: b(key) }],
    }
}

fn cas_ok(key: &str, expect: i64, value: &str, call: u64, at: u64, revision: i64) -> KvOperation {
    done(
        cas_input(key, expect, value),
        call,
        at,
        KvOutput::Txn {
            succeeded: true,
            revision,
            results: vec![TxnOpResult::Put],
        },
    )
}

fn verdict(operations: Vec<KvOperation>) -> Verdict {
    let history = History {
        operations,
        unmodeled_writes: 0,
    };
    check(&history, &CheckOptions::default())
        .expect("checkable")
        .verdict
}

fn assert_linearizable(operations: Vec<KvOperation>) {
    let v = verdict(operations);
    assert_eq!(v, Verdict::Linearizable);
}

fn assert_not_linearizable(operations: Vec<KvOperation>) -> Violation {
    match verdict(operations) {
        Verdict::NotLinearizable(violation) => violation,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn sequential_put_get_delete_is_linearizable() {
    assert_linearizable(vec![
        get("a", None, 0, 1),
        put("a", "1", 2, 3, 2),
        get("a", seen("1", 2), 4, 5),
        delete("a", true, 6, 7, 3),
        get("a", None, 8, 9),
        delete("a", false, 10, 11, 3),
    ]);
}

#[test]
fn a_read_overlapping_a_write_may_see_either_value() {
    for saw in [seen("1", 2), seen("2", 3)] {
        assert_linearizable(vec![
            put("a", "1", 0, 1, 2),
            put("a", "2", 2, 10, 3),
            get("a", saw, 3, 4),
        ]);
    }
}

#[test]
fn concurrent_reads_may_be_reordered_only_within_their_overlap() {
    // Two readers overlap a write; the one that saw the new value ends before the other
    // begins, so the other must see it too.
    assert_linearizable(vec![
        put("a", "1", 0, 1, 2),
        put("a", "2", 2, 20, 3),
        get("a", seen("1", 2), 3, 6),
        get("a", seen("2", 3), 4, 5),
    ]);
    assert_not_linearizable(vec![
        put("a", "1", 0, 1, 2),
        put("a", "2", 2, 20, 3),
        get("a", seen("2", 3), 3, 4),
        get("a", seen("1", 2), 5, 6),
    ]);
}

#[test]
fn a_stale_read_is_not_linearizable() {
    let violation = assert_not_linearizable(vec![
        put("a", "1", 0, 1, 2),
        put("a", "2", 2, 3, 3),
        get("a", seen("1", 2), 4, 5),
    ]);
    assert!(
        matches!(&violation, Violation::Partition { keys, .. } if keys == &[b("a")]),
        "{violation}"
    );
}

#[test]
fn a_lost_write_is_not_linearizable() {
    // The put was acknowledged, nothing deleted the key, and a later read finds nothing.
    assert_not_linearizable(vec![put("a", "1", 0, 1, 2), get("a", None, 2, 3)]);
    // ...or finds the value before it.
    assert_not_linearizable(vec![
        put("a", "0", 0, 1, 2),
        put("a", "1", 2, 3, 3),
        put("b", "x", 4, 5, 4),
        get("a", seen("0", 2), 6, 7),
    ]);
}

#[test]
fn a_read_that_misses_the_readers_own_write_is_not_linearizable() {
    // One client: write, then read back (strictly after), and see the previous value.
    assert_not_linearizable(vec![
        put("a", "old", 0, 1, 2),
        put("a", "mine", 10, 20, 3),
        get("a", seen("old", 2), 21, 22),
    ]);
}

#[test]
fn a_transaction_that_succeeds_yet_is_invisible_is_not_linearizable() {
    assert_not_linearizable(vec![cas_ok("a", 0, "1", 0, 5, 2), get("a", None, 6, 7)]);
    // The same transaction, visible: fine.
    assert_linearizable(vec![
        cas_ok("a", 0, "1", 0, 5, 2),
        get("a", seen("1", 2), 6, 7),
    ]);
}

#[test]
fn two_compare_and_swaps_on_one_revision_cannot_both_succeed() {
    // The lost update that optimistic concurrency exists to prevent.
    assert_not_linearizable(vec![
        put("a", "0", 0, 1, 2),
        cas_ok("a", 2, "x", 2, 10, 3),
        cas_ok("a", 2, "y", 3, 11, 4),
    ]);
}

#[test]
fn a_failed_compare_must_have_failed_for_a_reason() {
    let failed = |call, at, saw| {
        done(
            cas_input("a", 2, "x"),
            call,
            at,
            KvOutput::Txn {
                succeeded: false,
                revision: 2,
                results: vec![TxnOpResult::Get(saw)],
            },
        )
    };
    assert_not_linearizable(vec![put("a", "0", 0, 1, 2), failed(2, 3, seen("0", 2))]);
    assert_linearizable(vec![
        put("a", "0", 0, 1, 2),
        put("a", "1", 2, 3, 3),
        failed(4, 5, seen("1", 3)),
    ]);
}

#[test]
fn a_write_whose_answer_was_lost_may_happen_late_or_never() {
    // Seen by a later read: it happened, with the revision the read reports.
    assert_linearizable(vec![
        put("a", "1", 0, 1, 2),
        lost(put_input("a", "2"), 2),
        get("a", seen("1", 2), 3, 4),
        get("a", seen("2", 5), 100, 101),
        get("a", seen("2", 5), 102, 103),
    ]);
    // Never seen: it may never have happened.
    assert_linearizable(vec![
        put("a", "1", 0, 1, 2),
        lost(put_input("a", "2"), 2),
        get("a", seen("1", 2), 100, 101),
    ]);
    // But once seen it stays (no going back to the old value), and its revision is fixed.
    assert_not_linearizable(vec![
        put("a", "1", 0, 1, 2),
        lost(put_input("a", "2"), 2),
        get("a", seen("2", 5), 100, 101),
        get("a", seen("1", 2), 102, 103),
    ]);
    assert_not_linearizable(vec![
        lost(put_input("a", "2"), 2),
        get("a", seen("2", 5), 100, 101),
        get("a", seen("2", 6), 102, 103),
    ]);
    // And it cannot take effect before it was invoked.
    assert_not_linearizable(vec![
        get("a", seen("2", 5), 0, 1),
        lost(put_input("a", "2"), 2),
    ]);
}

#[test]
fn a_lost_compare_and_swap_may_go_either_way() {
    let lost_cas = lost(cas_input("a", 2, "x"), 2);
    for after in [seen("0", 2), seen("x", 3)] {
        assert_linearizable(vec![
            put("a", "0", 0, 1, 2),
            lost_cas.clone(),
            get("a", after, 10, 11),
        ]);
    }
}

#[test]
fn revisions_must_follow_real_time_across_keys() {
    let violation = assert_not_linearizable(vec![put("a", "1", 0, 1, 5), put("b", "1", 2, 3, 4)]);
    assert_eq!(
        violation,
        Violation::RevisionOrder {
            earlier: 0,
            later: 1
        }
    );
    let violation = assert_not_linearizable(vec![put("a", "1", 0, 10, 5), put("b", "1", 2, 3, 5)]);
    assert!(
        matches!(violation, Violation::DuplicateRevision { revision: 5, .. }),
        "{violation}"
    );
    // Overlapping writes may take their revisions in either order.
    assert_linearizable(vec![put("a", "1", 0, 10, 5), put("b", "1", 2, 3, 4)]);
}

#[test]
fn a_two_key_transaction_joins_the_keys() {
    let both = |call, at| {
        done(
            KvInput::Txn {
                compares: vec![],
                success: vec![
                    TxnOp::Put {
                        key: b("a"),
                        value: b("1"),
                    },
                    TxnOp::Put {
                        key: b("b"),
                        value: b("1"),
                    },
                ],
                failure: vec![],
            },
            call,
            at,
            KvOutput::Txn {
                succeeded: true,
                revision: 2,
                results: vec![TxnOpResult::Put, TxnOpResult::Put],
            },
        )
    };
    // A reader sees the transaction's write to b, then misses its write to a: torn.
    let violation = assert_not_linearizable(vec![
        both(0, 10),
        get("b", seen("1", 2), 1, 2),
        get("a", None, 3, 4),
    ]);
    assert!(
        matches!(&violation, Violation::Partition { keys, .. } if keys == &[b("a"), b("b")]),
        "{violation}"
    );
    assert_linearizable(vec![
        both(0, 10),
        get("a", None, 1, 2),
        get("b", seen("1", 2), 3, 4),
    ]);
}

#[test]
fn unmodeled_writes_and_inverted_times_are_refused() {
    let history = History {
        operations: vec![],
        unmodeled_writes: 1,
    };
    assert!(matches!(
        check(&history, &CheckOptions::default()),
        Err(CheckError::UnmodeledWrites(1))
    ));
    let history = History {
        operations: vec![put("a", "1", 5, 4, 2)],
        unmodeled_writes: 0,
    };
    assert!(matches!(
        check(&history, &CheckOptions::default()),
        Err(CheckError::ResponseBeforeCall(0))
    ));
}

/// One step of a sequential workload, for the property below.
#[derive(Clone, Debug)]
enum Step {
    Get(u8),
    Put(u8),
    Delete(u8),
    Cas(u8),
    Swap(u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3u8).prop_map(Step::Get),
        (0..3u8).prop_map(Step::Put),
        (0..3u8).prop_map(Step::Delete),
        (0..3u8).prop_map(Step::Cas),
        (0..3u8, 0..3u8).prop_map(|(a, b)| Step::Swap(a, b)),
    ]
}

/// Run the steps one after another on a recorded MemStore.
fn record_sequential(steps: &[Step]) -> History {
    use orchestra_store::{Compare, Op, Txn};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Recorder::new(MemStore::new());
        for (n, s) in steps.iter().enumerate() {
            let key = |k: &u8| Bytes::from(format!("k{k}"));
            let value = Bytes::from(format!("v{n}"));
            match s {
                Step::Get(k) => {
                    store.range(RangeRequest::key(key(k))).await.unwrap();
                }
                Step::Put(k) => {
                    store
                        .put_one(PutRequest {
                            key: key(k),
                            value,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                }
                Step::Delete(k) => {
                    store
                        .txn(Txn::new().and_then([Op::delete(key(k))]))
                        .await
                        .unwrap();
                }
                Step::Cas(k) => {
                    let rev = store
                        .range(RangeRequest::key(key(k)))
                        .await
                        .unwrap()
                        .kvs
                        .first()
                        .map_or(0, |kv| kv.mod_revision);
                    // Every other CAS uses a stale revision, so both branches are exercised.
                    let rev = if n % 2 == 0 { rev } else { rev - 1 };
                    store
                        .txn(
                            Txn::new()
                                .when([Compare::mod_revision(key(k), CompareOp::Equal, rev)])
                                .and_then([Op::put(key(k), value)])
                                .or_else([Op::get(key(k))]),
                        )
                        .await
                        .unwrap();
                }
                Step::Swap(a, c) => {
                    let other = if a == c { (c + 1) % 3 } else { *c };
                    store
                        .txn(
                            Txn::new()
                                .when([Compare::value(key(a), CompareOp::Greater, "v")])
                                .and_then([Op::put(key(a), value.clone()), Op::get(key(&other))])
                                .or_else([Op::put(key(&other), value), Op::delete(key(a))]),
                        )
                        .await
                        .unwrap();
                }
            }
        }
        store.history()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequential execution is linearizable, and stays so when each operation's interval
    /// is widened (it then overlaps its neighbours) or its answer is dropped.
    #[test]
    fn a_sequential_history_is_linearizable(
        steps in prop::collection::vec(step(), 1..60),
        widen in prop::collection::vec((0u64..3, 0u64..3, 0u8..10), 60),
    ) {
        let mut history = record_sequential(&steps);
        prop_assert_eq!(history.operations.len(), steps.len() + steps.iter().filter(|s| matches!(s, Step::Cas(_))).count());
        // Rewrite the times to 10 per operation, then widen each interval by up to 2
        // neighbours on either side; drop one answer in ten.
        for (i, op) in history.operations.iter_mut().enumerate() {
            let (before, after, drop) = widen[i % widen.len()];
            let at = 10 * i as u64 + 5;
            op.call = (10 * i as u64).saturating_sub(10 * before);
            if let Some(response) = &mut op.response {
                response.at = at + 10 * after;
            }
            if drop == 0 {
                op.response = None;
            }
        }
        let report = check(&history, &CheckOptions::default()).unwrap();
        prop_assert!(report.is_linearizable(), "{:?}\n{:#?}", report, history);
    }
}

/// A store that serves every read from one revision back: the bug the checker must catch
/// in a recorded history, not only in hand-written ones.
struct StaleReads(MemStore);

#[async_trait::async_trait]
impl Store for StaleReads {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, orchestra_store::StoreError> {
        let revision = self.0.status().await?.revision;
        self.0.range(req.at_revision((revision - 1).max(1))).await
    }
    async fn txn(
        &self,
        txn: orchestra_store::Txn,
    ) -> Result<orchestra_store::TxnResponse, orchestra_store::StoreError> {
        self.0.txn(txn).await
    }
    async fn watch(
        &self,
        req: orchestra_store::WatchRequest,
    ) -> Result<orchestra_store::WatchStream, orchestra_store::StoreError> {
        self.0.watch(req).await
    }
    async fn compact(&self, revision: i64) -> Result<(), orchestra_store::StoreError> {
        self.0.compact(revision).await
    }
    async fn lease_grant(
        &self,
        ttl: std::time::Duration,
    ) -> Result<i64, orchestra_store::StoreError> {
        self.0.lease_grant(ttl).await
    }
    async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<std::time::Duration, orchestra_store::StoreError> {
        self.0.lease_keep_alive(id).await
    }
    async fn lease_revoke(&self, id: i64) -> Result<(), orchestra_store::StoreError> {
        self.0.lease_revoke(id).await
    }
    async fn lease_time_to_live(
        &self,
        id: i64,
    ) -> Result<orchestra_store::LeaseStatus, orchestra_store::StoreError> {
        self.0.lease_time_to_live(id).await
    }
    async fn lease_list(&self) -> Result<Vec<i64>, orchestra_store::StoreError> {
        self.0.lease_list().await
    }
    async fn status(&self) -> Result<orchestra_store::StoreStatus, orchestra_store::StoreError> {
        self.0.status().await
    }
}

#[tokio::test]
async fn a_recorded_history_of_a_store_with_stale_reads_fails_the_check() {
    let store = Recorder::new(StaleReads(MemStore::new()));
    store.put("a", "1").await.unwrap();
    store.put("a", "2").await.unwrap();
    let stale = store.get("a").await.unwrap().expect("a value");
    assert_eq!(stale.value.as_ref(), b"1", "the store under test is stale");
    let report = check(&store.history(), &CheckOptions::default()).unwrap();
    assert!(
        matches!(report.verdict, Verdict::NotLinearizable(_)),
        "{report:?}"
    );
}

/// Record `workload` on `store` and assert that the history is linearizable.
async fn record_and_check<S: Store>(store: S, workload: &workload::Workload) {
    let store = Recorder::new(store);
    workload::run(&store, workload).await;
    let history = store.history();
    assert!(
        history.operations.len() >= workload.clients * workload.ops_per_client,
        "every operation is recorded"
    );
    let report = check(&history, &CheckOptions::default()).unwrap();
    assert!(report.is_linearizable(), "{report:?}");
    assert_eq!(report.open, 0, "no call failed against an in-process store");
    // The workload did conflict: some compare-and-swaps failed, some succeeded.
    let branches = |want: bool| {
        history
            .operations
            .iter()
            .filter(|op| {
                matches!(&op.response, Some(Response { output: KvOutput::Txn { succeeded, .. }, .. }) if *succeeded == want)
            })
            .count()
    };
    assert!(branches(true) > 0 && branches(false) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mem_store_histories_are_linearizable() {
    for seed in 0..4 {
        let workload = workload::Workload {
            clients: 6,
            ops_per_client: 150,
            seed,
            ..Default::default()
        };
        record_and_check(MemStore::new(), &workload).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_store_histories_are_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let workload = workload::Workload {
        clients: 6,
        ops_per_client: 100,
        ..Default::default()
    };
    record_and_check(DiskStore::open(dir.path()).await.unwrap(), &workload).await;
}
