//! Checks of transactions: compares on every target with every operator (and on absent keys),
//! branches, reads inside a transaction, one revision per transaction, `prev_kv`; and the
//! [`StoreExt`] helpers built on them.

use std::time::Duration;

use bytes::Bytes;

use crate::ext::{CasOutcome, StoreExt};
use crate::store::Store;
use crate::testing::kv::keys;
use crate::testing::util::{Snapshot, ok};
use crate::types::{
    Compare, CompareOp, DeleteRequest, KeyRange, Op, OpResponse, PutRequest, RangeRequest, Txn,
    TxnResponse,
};

use CompareOp::{Equal, Greater, Less, NotEqual};

async fn txn<S: Store>(store: &S, txn: Txn, what: &str) -> TxnResponse {
    ok(store.txn(txn).await, what)
}

fn range_of(resp: &OpResponse, what: &str) -> crate::types::RangeResponse {
    match resp {
        OpResponse::Range(r) => r.clone(),
        other => panic!("{what}: expected a range response, got {other:?}"),
    }
}

/// Compares on version, create and mod revision, value and lease with `=`, `!=`, `<`, `>`;
/// an absent key has version, revisions and lease 0 and fails every value compare; a
/// transaction succeeds only when all its compares hold; evaluating compares writes nothing.
pub async fn txn_compares<S: Store>(store: S) {
    let create = ok(store.put("/c/k", "a").await, "put /c/k=a");
    let modr = ok(store.put("/c/k", "b").await, "put /c/k=b");
    let lease = ok(
        store.lease_grant(Duration::from_secs(60)).await,
        "lease_grant",
    );
    ok(
        store.put_with_lease("/c/leased", "v", lease).await,
        "put with lease",
    );

    let k = "/c/k";
    let none = "/c/absent";
    let cases: Vec<(Compare, bool)> = vec![
        (Compare::version(k, Equal, 2), true),
        (Compare::version(k, Equal, 1), false),
        (Compare::version(k, NotEqual, 1), true),
        (Compare::version(k, NotEqual, 2), false),
        (Compare::version(k, Greater, 1), true),
        (Compare::version(k, Greater, 2), false),
        (Compare::version(k, Less, 3), true),
        (Compare::version(k, Less, 2), false),
        (Compare::create_revision(k, Equal, create), true),
        (Compare::create_revision(k, Equal, modr), false),
        (Compare::create_revision(k, NotEqual, create), false),
        (Compare::create_revision(k, Greater, create - 1), true),
        (Compare::create_revision(k, Greater, create), false),
        (Compare::create_revision(k, Less, create + 1), true),
        (Compare::create_revision(k, Less, create), false),
        (Compare::mod_revision(k, Equal, modr), true),
        (Compare::mod_revision(k, Equal, create), false),
        (Compare::mod_revision(k, NotEqual, create), true),
        (Compare::mod_revision(k, Greater, create), true),
        (Compare::mod_revision(k, Greater, modr), false),
        (Compare::mod_revision(k, Less, modr + 1), true),
        (Compare::mod_revision(k, Less, modr), false),
        (Compare::value(k, Equal, "b"), true),
        (Compare::value(k, Equal, "a"), false),
        (Compare::value(k, NotEqual, "a"), true),
        (Compare::value(k, NotEqual, "b"), false),
        (Compare::value(k, Greater, "a"), true),
        (Compare::value(k, Greater, "b"), false),
        (Compare::value(k, Less, "c"), true),
        (Compare::value(k, Less, "b"), false),
        (Compare::lease(k, Equal, 0), true),
        (Compare::lease("/c/leased", Equal, lease), true),
        (Compare::lease("/c/leased", NotEqual, lease), false),
        (Compare::lease("/c/leased", Greater, 0), true),
        (Compare::lease("/c/leased", Less, lease), false),
        // An absent key: version, revisions and lease are 0, and a value compare is false.
        (Compare::version(none, Equal, 0), true),
        (Compare::version(none, Greater, 0), false),
        (Compare::create_revision(none, Equal, 0), true),
        (Compare::create_revision(none, Less, 1), true),
        (Compare::mod_revision(none, Equal, 0), true),
        (Compare::mod_revision(none, NotEqual, 0), false),
        (Compare::lease(none, Equal, 0), true),
        (Compare::value(none, Equal, ""), false),
        (Compare::value(none, NotEqual, "x"), false),
        (Compare::value(none, Less, "zzz"), false),
        (Compare::value(none, Greater, ""), false),
    ];
    let before = Snapshot::take(&store).await;
    for (cmp, holds) in cases {
        let t = Txn::new()
            .when([cmp.clone()])
            .and_then([Op::get(k)])
            .or_else([]);
        let resp = txn(&store, t, "compare txn").await;
        assert_eq!(resp.succeeded, holds, "compare {cmp:?} must be {holds}");
        let expected = if holds { 1 } else { 0 };
        assert_eq!(
            resp.responses.len(),
            expected,
            "compare {cmp:?}: the responses of the branch that ran"
        );
        assert_eq!(
            resp.header_revision, before.revision,
            "compare {cmp:?}: header is the current revision"
        );
    }
    before
        .assert_unchanged(&store, "read-only compare transactions")
        .await;

    let all_hold = [Compare::version(k, Equal, 2), Compare::value(k, Equal, "b")];
    let one_fails = [Compare::version(k, Equal, 2), Compare::value(k, Equal, "a")];
    let resp = txn(&store, Txn::new().when(all_hold), "all compares hold").await;
    assert!(
        resp.succeeded,
        "a transaction whose compares all hold succeeds"
    );
    let resp = txn(&store, Txn::new().when(one_fails), "one compare fails").await;
    assert!(
        !resp.succeeded,
        "a transaction with one failing compare fails"
    );
    let resp = txn(&store, Txn::new(), "no compares").await;
    assert!(resp.succeeded, "a transaction without compares succeeds");
    assert!(
        resp.responses.is_empty(),
        "an empty branch has no responses"
    );
    before
        .assert_unchanged(&store, "transactions without writes")
        .await;
}

/// The success branch runs when the compares hold, the failure branch otherwise (and may
/// write too); a range inside a transaction sees the writes of earlier operations of the same
/// transaction, and can read a past revision.
pub async fn txn_branches<S: Store>(store: S) {
    let rx = ok(store.put("/b/x", "1").await, "put /b/x=1");
    let t = Txn::new()
        .when([Compare::mod_revision("/b/x", Equal, rx)])
        .and_then([
            Op::put("/b/x", "2"),
            Op::get("/b/x"),
            Op::put("/b/y", "1"),
            Op::Range(RangeRequest::prefix("/b/")),
            Op::Range(RangeRequest::key("/b/x").at_revision(rx)),
        ])
        .or_else([Op::get("/b/x")]);
    let resp = txn(&store, t.clone(), "compare-and-swap that holds").await;
    assert!(resp.succeeded, "mod_revision == {rx} holds");
    assert_eq!(
        resp.header_revision,
        rx + 1,
        "the transaction wrote, at the next revision"
    );
    assert_eq!(
        resp.responses.len(),
        5,
        "one response per operation of the success branch"
    );
    assert_eq!(
        resp.responses[0],
        OpResponse::Put { prev_kv: None },
        "a put without prev_kv"
    );
    let x = range_of(&resp.responses[1], "get /b/x inside the txn");
    assert_eq!(x.kvs.len(), 1, "get /b/x inside the txn");
    assert_eq!(
        (
            x.kvs[0].value.as_ref(),
            x.kvs[0].mod_revision,
            x.kvs[0].version
        ),
        (b"2".as_ref(), rx + 1, 2),
        "a read inside a transaction sees the transaction's earlier writes"
    );
    assert_eq!(
        resp.responses[2],
        OpResponse::Put { prev_kv: None },
        "a put without prev_kv"
    );
    let all = range_of(&resp.responses[3], "range /b/ inside the txn");
    assert_eq!(
        keys(&all.kvs),
        ["/b/x", "/b/y"],
        "a range after both puts sees both"
    );
    let old = range_of(
        &resp.responses[4],
        "range at a past revision inside the txn",
    );
    assert_eq!(
        old.kvs.first().map(|kv| kv.value.clone()),
        Some(Bytes::from("1")),
        "a txn range at a past revision"
    );

    let resp = txn(&store, t, "the same compare-and-swap, now stale").await;
    assert!(
        !resp.succeeded,
        "the mod_revision moved, so the compare fails"
    );
    assert_eq!(
        resp.header_revision,
        rx + 1,
        "the failure branch only read: no new revision"
    );
    assert_eq!(
        resp.responses.len(),
        1,
        "one response per operation of the failure branch"
    );
    let x = range_of(&resp.responses[0], "failure branch get");
    assert_eq!(
        x.kvs.first().map(|kv| kv.value.clone()),
        Some(Bytes::from("2")),
        "the failure branch read the current value"
    );

    let t = Txn::new()
        .when([Compare::value("/b/x", Equal, "nope")])
        .and_then([Op::put("/b/success", "1")])
        .or_else([Op::put("/b/failure", "1")]);
    let resp = txn(&store, t, "a failure branch that writes").await;
    assert!(!resp.succeeded, "value compare fails");
    assert_eq!(
        resp.header_revision,
        rx + 2,
        "the failure branch wrote, at the next revision"
    );
    assert!(
        ok(store.get("/b/failure").await, "get").is_some(),
        "the failure branch's write happened"
    );
    assert!(
        ok(store.get("/b/success").await, "get").is_none(),
        "the success branch did not run"
    );
}

/// A transaction that writes uses exactly one revision for all its writes, puts and deletes
/// alike; one that writes nothing (reads only, an empty branch, deleting missing keys) uses
/// none.
pub async fn txn_one_revision<S: Store>(store: S) {
    ok(store.put("/o/d", "doomed").await, "put /o/d");
    let before = ok(store.status().await, "status").revision;
    let t = Txn::new().and_then([
        Op::put("/o/a", "1"),
        Op::put("/o/b", "1"),
        Op::delete("/o/d"),
        Op::put("/o/c", "1"),
    ]);
    let resp = txn(&store, t, "a multi-key write").await;
    let rev = resp.header_revision;
    assert_eq!(
        rev,
        before + 1,
        "a transaction with four writes uses exactly one revision"
    );
    assert_eq!(
        ok(store.status().await, "status").revision,
        rev,
        "status agrees"
    );
    let all = ok(store.range(RangeRequest::prefix("/o/")).await, "range");
    assert_eq!(
        keys(&all.kvs),
        ["/o/a", "/o/b", "/o/c"],
        "the transaction's puts and delete"
    );
    for kv in &all.kvs {
        assert_eq!(
            (kv.mod_revision, kv.create_revision),
            (rev, rev),
            "every write of the txn at its revision"
        );
    }
    let old = ok(
        store
            .range(RangeRequest::key("/o/d").at_revision(before))
            .await,
        "range",
    );
    assert_eq!(
        old.kvs.len(),
        1,
        "/o/d existed at the revision before the txn"
    );

    let snapshot = Snapshot::take(&store).await;
    let no_writes: Vec<(&str, Txn)> = vec![
        (
            "a read-only txn",
            Txn::new().and_then([Op::get("/o/a"), Op::Range(RangeRequest::prefix("/o/"))]),
        ),
        ("an empty txn", Txn::new()),
        (
            "a txn whose chosen branch is empty",
            Txn::new()
                .when([Compare::version("/o/a", Equal, 99)])
                .and_then([Op::put("/o/z", "1")]),
        ),
        (
            "deleting a missing key",
            Txn::new().and_then([Op::delete("/o/missing")]),
        ),
        (
            "deleting an empty range",
            Txn::new().and_then([Op::delete_range(KeyRange::prefix("/o/none/"))]),
        ),
    ];
    for (what, t) in no_writes {
        let resp = txn(&store, t, what).await;
        assert_eq!(
            resp.header_revision, snapshot.revision,
            "{what}: the header is the current revision"
        );
        snapshot.assert_unchanged(&store, what).await;
    }
}

/// `prev_kv` on puts and deletes returns the previous key exactly (and nothing for a new key);
/// without it nothing is returned; deletes report how many keys they deleted.
pub async fn txn_prev_kv<S: Store>(store: S) {
    let put_prev = |key: &str, value: &str| Op::put_prev(key.to_string(), value.to_string());
    let resp = txn(
        &store,
        Txn::new().and_then([put_prev("/p/a", "1")]),
        "put_prev on a new key",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Put { prev_kv: None }],
        "no previous value for a new key"
    );
    let a1 = ok(store.get("/p/a").await, "get").expect("/p/a exists");
    let resp = txn(
        &store,
        Txn::new().and_then([put_prev("/p/a", "2")]),
        "put_prev on an existing key",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Put { prev_kv: Some(a1) }],
        "the previous key, exactly"
    );
    let resp = txn(
        &store,
        Txn::new().and_then([Op::put("/p/a", "3")]),
        "put without prev_kv",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Put { prev_kv: None }],
        "no previous value unless asked"
    );

    for (key, value) in [("/p/b", "b"), ("/p/c", "c"), ("/p/d", "d"), ("/p/e", "e")] {
        ok(store.put(key, value).await, "put");
    }
    let a3 = ok(store.get("/p/a").await, "get").expect("/p/a exists");
    let resp = txn(
        &store,
        Txn::new().and_then([Op::delete("/p/a")]),
        "delete with prev_kv",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Delete {
            deleted: 1,
            prev_kvs: vec![a3]
        }],
        "a single delete returns the deleted key"
    );
    let b_c = ok(
        store
            .range(RangeRequest::range(KeyRange::interval("/p/b", "/p/d")))
            .await,
        "range",
    )
    .kvs;
    let ranged = Op::Delete(DeleteRequest {
        range: KeyRange::interval("/p/b", "/p/d"),
        prev_kv: true,
    });
    let resp = txn(
        &store,
        Txn::new().and_then([ranged]),
        "range delete with prev_kv",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Delete {
            deleted: 2,
            prev_kvs: b_c
        }],
        "a range delete returns every deleted key in key order"
    );
    let resp = txn(
        &store,
        Txn::new().and_then([Op::delete_range(KeyRange::prefix("/p/"))]),
        "range delete without prev_kv",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Delete {
            deleted: 2,
            prev_kvs: vec![]
        }],
        "a delete without prev_kv only counts"
    );
    let resp = txn(
        &store,
        Txn::new().and_then([Op::delete("/p/a")]),
        "delete of a missing key",
    )
    .await;
    assert_eq!(
        resp.responses,
        vec![OpResponse::Delete {
            deleted: 0,
            prev_kvs: vec![]
        }],
        "nothing deleted"
    );
}

/// The [`StoreExt`] helpers: `get`, `put`, `put_with_lease`, `create` (only when absent),
/// `update_if` and `delete_if` (only at the given mod revision, else the current value),
/// `delete` and `list_prefix`.
pub async fn ext_helpers<S: Store>(store: S) {
    assert_eq!(
        ok(store.get("/x/a").await, "get"),
        None,
        "get of a missing key"
    );
    let r1 = ok(store.put("/x/a", "1").await, "put");
    let a = ok(store.get("/x/a").await, "get").expect("/x/a exists after put");
    assert_eq!(
        (a.value.as_ref(), a.mod_revision),
        (b"1".as_ref(), r1),
        "put returns the write's revision"
    );

    match ok(store.create("/x/b", "new").await, "create a missing key") {
        CasOutcome::Written(rev) => {
            let b = ok(store.get("/x/b").await, "get").expect("created");
            assert_eq!(
                (b.value.as_ref(), b.mod_revision, b.version),
                (b"new".as_ref(), rev, 1),
                "create wrote at its revision"
            );
        }
        other => panic!("create of a missing key must write, got {other:?}"),
    }
    let b = ok(store.get("/x/b").await, "get").expect("created");
    assert_eq!(
        ok(
            store.create("/x/b", "again").await,
            "create an existing key"
        ),
        CasOutcome::Conflict(Some(b.clone())),
        "create of an existing key conflicts and returns the current key"
    );

    let stale = b.mod_revision;
    let written = ok(
        store.update_if("/x/b", "v2", stale).await,
        "update_if at the current revision",
    );
    let rev = written
        .revision()
        .expect("update_if at the current mod_revision must write");
    let b2 = ok(store.get("/x/b").await, "get").expect("exists");
    assert_eq!(
        (b2.value.as_ref(), b2.mod_revision, b2.version),
        (b"v2".as_ref(), rev, 2),
        "update_if wrote"
    );
    assert_eq!(
        ok(
            store.update_if("/x/b", "v3", stale).await,
            "update_if with a stale revision"
        ),
        CasOutcome::Conflict(Some(b2.clone())),
        "update_if with a stale revision conflicts and returns the current key"
    );
    assert_eq!(
        ok(
            store.delete_if("/x/b", stale).await,
            "delete_if with a stale revision"
        ),
        CasOutcome::Conflict(Some(b2.clone())),
        "delete_if with a stale revision conflicts"
    );
    assert!(
        ok(store.get("/x/b").await, "get").is_some(),
        "a conflicting delete_if deletes nothing"
    );
    let deleted = ok(
        store.delete_if("/x/b", b2.mod_revision).await,
        "delete_if at the current revision",
    );
    let rev = deleted
        .revision()
        .expect("delete_if at the current mod_revision must delete");
    assert_eq!(
        ok(store.status().await, "status").revision,
        rev,
        "delete_if returns its revision"
    );
    assert_eq!(
        ok(store.get("/x/b").await, "get"),
        None,
        "delete_if deleted"
    );
    assert_eq!(
        ok(
            store.delete_if("/x/b", b2.mod_revision).await,
            "delete_if of a missing key"
        ),
        CasOutcome::Conflict(None),
        "delete_if of a missing key conflicts with no current value"
    );

    let lease = ok(
        store.lease_grant(Duration::from_secs(60)).await,
        "lease_grant",
    );
    let rev = ok(
        store.put_with_lease("/x/leased", "v", lease).await,
        "put_with_lease",
    );
    let leased = ok(store.get("/x/leased").await, "get").expect("exists");
    assert_eq!(
        (leased.lease, leased.mod_revision),
        (lease, rev),
        "put_with_lease attaches the lease"
    );

    let removed = ok(store.delete("/x/a").await, "delete");
    assert_eq!(removed, Some(a), "delete returns the last value");
    assert_eq!(
        ok(store.delete("/x/a").await, "delete again"),
        None,
        "deleting a missing key returns None"
    );

    ok(store.put("/x/c", "c").await, "put");
    ok(store.put("/y/d", "d").await, "put");
    let listed = ok(store.list_prefix("/x/").await, "list_prefix");
    assert_eq!(
        keys(&listed.kvs),
        ["/x/c", "/x/leased"],
        "list_prefix: exactly the prefix's keys"
    );
    assert_eq!(listed.count, 2, "list_prefix: count");
}

/// A put with an explicit `PutRequest` keeps every field (used by the lease checks).
pub(crate) fn put_with(key: &str, value: &str, lease: i64, prev_kv: bool) -> Op {
    Op::Put(PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        lease,
        prev_kv,
    })
}
