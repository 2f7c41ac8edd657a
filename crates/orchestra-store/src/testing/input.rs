//! Checks of bad input and request limits: each bad request fails with its own error and
//! leaves the store exactly as it was (same revision, same keys).

use bytes::Bytes;

use crate::error::StoreError;
use crate::limits::Limits;
use crate::store::Store;
use crate::testing::util::{Snapshot, err, watch_error};
use crate::types::{
    Compare, CompareOp, DeleteRequest, KeyRange, Op, PutRequest, RangeRequest, Txn, WatchRequest,
};

async fn seed<S: Store>(store: &S) -> Snapshot {
    let t = Txn::new().and_then([Op::put("a", "1"), Op::put("b", "1"), Op::put("c", "1")]);
    err_free(store.txn(t).await.map(|_| ()), "seed");
    Snapshot::take(store).await
}

#[track_caller]
fn err_free(result: Result<(), StoreError>, what: &str) {
    if let Err(e) = result {
        panic!("{what}: expected success, got {e}");
    }
}

/// The empty key (in a put, a delete, a range, a compare, a watch) fails with `EmptyKey`; a
/// range whose end is before its start (in a range, a delete, a watch) with `InvalidRange`;
/// writing a key twice in one branch (two puts, a put and a delete of it, a put inside a
/// deleted range — in either branch) with `DuplicateKey`. None of them changes anything.
pub async fn bad_input<S: Store>(store: S) {
    let before = seed(&store).await;
    let empty_range = RangeRequest::key("");
    let inverted = KeyRange::interval("b", "a");
    let txn_cases: Vec<(&str, Txn, StoreError)> = vec![
        (
            "put of the empty key",
            Txn::new().and_then([Op::put("", "v")]),
            StoreError::EmptyKey,
        ),
        (
            "put of the empty key after a valid put",
            Txn::new().and_then([Op::put("d", "v"), Op::put("", "v")]),
            StoreError::EmptyKey,
        ),
        (
            "delete of the empty key",
            Txn::new().and_then([Op::delete("")]),
            StoreError::EmptyKey,
        ),
        (
            "range of the empty key in a txn",
            Txn::new().and_then([Op::Range(empty_range.clone())]),
            StoreError::EmptyKey,
        ),
        (
            "compare on the empty key",
            Txn::new()
                .when([Compare::version("", CompareOp::Equal, 0)])
                .and_then([Op::put("d", "v")]),
            StoreError::EmptyKey,
        ),
        (
            "inverted delete range",
            Txn::new().and_then([
                Op::put("d", "v"),
                Op::Delete(DeleteRequest {
                    range: inverted.clone(),
                    prev_kv: false,
                }),
            ]),
            StoreError::InvalidRange {
                key: "b".into(),
                end: "a".into(),
            },
        ),
        (
            "the same key put twice",
            Txn::new().and_then([Op::put("a", "2"), Op::put("a", "3")]),
            StoreError::DuplicateKey { key: "a".into() },
        ),
        (
            "a key put and deleted",
            Txn::new().and_then([Op::put("a", "2"), Op::delete("a")]),
            StoreError::DuplicateKey { key: "a".into() },
        ),
        (
            "a key deleted and put",
            Txn::new().and_then([Op::delete("a"), Op::put("a", "2")]),
            StoreError::DuplicateKey { key: "a".into() },
        ),
        (
            "a key put inside a deleted range",
            Txn::new().and_then([
                Op::delete_range(KeyRange::interval("a", "c")),
                Op::put("b", "2"),
            ]),
            StoreError::DuplicateKey { key: "b".into() },
        ),
        (
            "a duplicate in the failure branch (which would not run)",
            Txn::new()
                .and_then([Op::put("d", "1")])
                .or_else([Op::put("a", "2"), Op::put("a", "3")]),
            StoreError::DuplicateKey { key: "a".into() },
        ),
    ];
    for (what, txn, expected) in txn_cases {
        let e = err(store.txn(txn).await, what);
        assert_eq!(e, expected, "{what}");
        before.assert_unchanged(&store, what).await;
    }

    let e = err(store.range(empty_range).await, "range of the empty key");
    assert_eq!(e, StoreError::EmptyKey, "range of the empty key");
    let e = err(
        store.range(RangeRequest::range(inverted.clone())).await,
        "inverted range",
    );
    assert_eq!(
        e,
        StoreError::InvalidRange {
            key: "b".into(),
            end: "a".into()
        },
        "inverted range"
    );
    let e = watch_error(&store, WatchRequest::key(""), "watch of the empty key").await;
    assert_eq!(e, StoreError::EmptyKey, "watch of the empty key");
    let e = watch_error(
        &store,
        WatchRequest::range(inverted),
        "watch of an inverted range",
    )
    .await;
    assert_eq!(
        e,
        StoreError::InvalidRange {
            key: "b".into(),
            end: "a".into()
        },
        "watch of an inverted range"
    );
    before
        .assert_unchanged(&store, "bad reads and watches")
        .await;
}

/// Requests over `limits` fail and change nothing: a value a third over `max_request_bytes`
/// (2 MiB for the default 1.5 MiB) with `RequestTooLarge`, one operation or compare over
/// `max_txn_ops` (129 for the default 128) with `TooManyOps`; requests within the limits
/// (`max_txn_ops` operations, a value of half the byte limit) succeed.
pub async fn request_limits<S: Store>(store: S, limits: Limits) {
    let before = seed(&store).await;
    let big = Bytes::from(vec![
        b'x';
        limits.max_request_bytes + limits.max_request_bytes / 3
    ]);
    let e = err(
        store
            .txn(Txn::new().and_then([Op::put("big", big.clone())]))
            .await,
        "an oversized put",
    );
    match e {
        StoreError::RequestTooLarge { size, limit } => {
            assert_eq!(limit, limits.max_request_bytes, "the error names the limit");
            assert!(
                size >= big.len(),
                "the error names the request's size, {size} < {}",
                big.len()
            );
        }
        other => panic!("an oversized put: expected RequestTooLarge, got {other:?}"),
    }
    before.assert_unchanged(&store, "an oversized put").await;

    let too_many = limits.max_txn_ops + 1;
    let puts: Vec<Op> = (0..too_many)
        .map(|i| Op::put(format!("op/{i:04}"), "v"))
        .collect();
    let e = err(
        store.txn(Txn::new().and_then(puts.clone())).await,
        "too many operations",
    );
    assert_eq!(
        e,
        StoreError::TooManyOps {
            ops: too_many,
            limit: limits.max_txn_ops
        },
        "{too_many} operations"
    );
    before.assert_unchanged(&store, "too many operations").await;
    let e = err(
        store.txn(Txn::new().or_else(puts.clone())).await,
        "too many operations in the failure branch",
    );
    assert_eq!(
        e,
        StoreError::TooManyOps {
            ops: too_many,
            limit: limits.max_txn_ops
        },
        "{too_many} operations in the failure branch"
    );
    before
        .assert_unchanged(&store, "too many operations in the failure branch")
        .await;
    let compares: Vec<Compare> = (0..too_many)
        .map(|i| Compare::version(format!("op/{i:04}"), CompareOp::Equal, 0))
        .collect();
    let e = err(
        store.txn(Txn::new().when(compares)).await,
        "too many compares",
    );
    assert_eq!(
        e,
        StoreError::TooManyOps {
            ops: too_many,
            limit: limits.max_txn_ops
        },
        "{too_many} compares"
    );
    before.assert_unchanged(&store, "too many compares").await;

    let at_limit = Txn::new().and_then(puts[..limits.max_txn_ops].to_vec());
    let resp = match store.txn(at_limit).await {
        Ok(resp) => resp,
        Err(e) => panic!(
            "a transaction of exactly {} operations must succeed, got {e}",
            limits.max_txn_ops
        ),
    };
    assert_eq!(
        resp.header_revision,
        before.revision + 1,
        "{} operations, one revision",
        limits.max_txn_ops
    );
    let half = Bytes::from(vec![b'y'; limits.max_request_bytes / 2]);
    let put = Op::Put(PutRequest {
        key: Bytes::from("half"),
        value: half.clone(),
        ..Default::default()
    });
    if let Err(e) = store.txn(Txn::new().and_then([put])).await {
        panic!(
            "a put of {} bytes, within the limit of {}, must succeed, got {e}",
            half.len(),
            limits.max_request_bytes
        );
    }
}
