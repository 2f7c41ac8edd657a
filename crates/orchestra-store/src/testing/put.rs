//! Checks of [`Store::put_one`]: a single put answers, stores, reports to watchers and fails
//! exactly as the transaction of that one put does, whether the store serves it on a fast
//! path of its own or through the default (a transaction).

use std::time::Duration;

use bytes::Bytes;

use crate::error::StoreError;
use crate::ext::StoreExt;
use crate::limits::Limits;
use crate::store::Store;
use crate::testing::util::{Snapshot, atomic_events, collect_events, err, ok};
use crate::types::{EventKind, KeyRange, PutRequest, WatchRequest};

fn put(key: &'static str, value: &'static str, prev_kv: bool) -> PutRequest {
    PutRequest {
        key: Bytes::from_static(key.as_bytes()),
        value: Bytes::from_static(value.as_bytes()),
        lease: 0,
        prev_kv,
    }
}

/// `put_one` takes the next revision and sets the key's metadata as a one-put transaction
/// does (create, update, re-create after a delete); returns the previous value only when asked
/// and the key existed; each put reaches a watcher as one event of its own revision, with its
/// previous value; a lease is attached and then left by a put without it; and an empty key,
/// an unknown lease and an oversized value fail with their errors, changing nothing.
pub async fn put_one<S: Store>(store: S, limits: Limits) {
    let start = ok(store.status().await, "status").revision;
    let mut watch = ok(
        store
            .watch(WatchRequest {
                range: KeyRange::prefix("/p/"),
                start_revision: start + 1,
                prev_kv: true,
                ..Default::default()
            })
            .await,
        "watch /p/ with prev_kv",
    );

    let created = ok(
        store.put_one(put("/p/a", "1", true)).await,
        "put_one /p/a=1",
    );
    assert_eq!(
        created.header_revision,
        start + 1,
        "put_one takes the next revision"
    );
    assert_eq!(created.prev_kv, None, "a new key has no previous value");
    let first = ok(store.get("/p/a").await, "get /p/a").expect("/p/a exists after put_one");
    assert_eq!(
        (
            first.create_revision,
            first.mod_revision,
            first.version,
            first.lease,
            first.value.as_ref()
        ),
        (start + 1, start + 1, 1, 0, b"1".as_ref()),
        "a created key: create = mod = the put's revision, version 1, no lease"
    );

    let updated = ok(
        store.put_one(put("/p/a", "2", true)).await,
        "put_one /p/a=2",
    );
    assert_eq!(updated.header_revision, start + 2, "the next revision");
    assert_eq!(
        updated.prev_kv.as_ref(),
        Some(&first),
        "prev_kv is the key's value before the put"
    );
    let quiet = ok(
        store.put_one(put("/p/a", "3", false)).await,
        "put_one /p/a=3",
    );
    assert_eq!(quiet.header_revision, start + 3, "the next revision");
    assert_eq!(quiet.prev_kv, None, "no prev_kv unless asked for");
    let third = ok(store.get("/p/a").await, "get /p/a").expect("/p/a exists");
    assert_eq!(
        (third.create_revision, third.mod_revision, third.version),
        (start + 1, start + 3, 3),
        "an update keeps create_revision, moves mod_revision, bumps version"
    );

    ok(store.delete("/p/a").await, "delete /p/a");
    let again = ok(
        store.put_one(put("/p/a", "4", true)).await,
        "put_one /p/a=4",
    );
    assert_eq!(
        again.header_revision,
        start + 5,
        "the revision after the delete's"
    );
    assert_eq!(again.prev_kv, None, "a deleted key has no previous value");
    let recreated = ok(store.get("/p/a").await, "get /p/a").expect("/p/a exists");
    assert_eq!(
        (recreated.create_revision, recreated.version),
        (start + 5, 1),
        "a re-created key starts a new life"
    );

    let responses = collect_events(&mut watch, 5, "the watch of /p/").await;
    let events = atomic_events(&responses, "the watch of /p/");
    let seen: Vec<(EventKind, i64, Option<i64>)> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (EventKind::Put, start + 1, None),
            (EventKind::Put, start + 2, Some(start + 1)),
            (EventKind::Put, start + 3, Some(start + 2)),
            (EventKind::Delete, start + 4, Some(start + 3)),
            (EventKind::Put, start + 5, None),
        ],
        "each put_one is one event at its revision, with the previous value"
    );
    assert_eq!(events[2].kv, third, "the event carries the key as stored");

    let lease = ok(
        store.lease_grant(Duration::from_secs(60)).await,
        "grant a lease",
    );
    let leased = PutRequest {
        lease,
        ..put("/p/l", "1", false)
    };
    ok(store.put_one(leased).await, "put_one /p/l with a lease");
    let status = ok(store.lease_time_to_live(lease).await, "the lease's status");
    assert_eq!(
        status.keys,
        [Bytes::from_static(b"/p/l")],
        "put_one attaches the key to its lease"
    );
    ok(
        store.put_one(put("/p/l", "2", false)).await,
        "put_one /p/l without a lease",
    );
    let status = ok(store.lease_time_to_live(lease).await, "the lease's status");
    assert!(
        status.keys.is_empty(),
        "a put without the lease leaves it, yet it holds {:?}",
        status.keys
    );
    ok(store.lease_revoke(lease).await, "revoke the lease");
    assert!(
        ok(store.get("/p/l").await, "get /p/l").is_some(),
        "a key that left its lease survives the lease's revocation"
    );

    let before = Snapshot::take(&store).await;
    let e = err(
        store.put_one(put("", "v", false)).await,
        "put_one of the empty key",
    );
    assert_eq!(e, StoreError::EmptyKey, "put_one of the empty key");
    before
        .assert_unchanged(&store, "put_one of the empty key")
        .await;

    let unknown = lease + 1_000_000;
    let orphan = PutRequest {
        lease: unknown,
        ..put("/p/o", "1", false)
    };
    let e = err(store.put_one(orphan).await, "put_one with an unknown lease");
    assert_eq!(
        e,
        StoreError::LeaseNotFound(unknown),
        "put_one with an unknown lease"
    );
    before
        .assert_unchanged(&store, "put_one with an unknown lease")
        .await;

    let big = Bytes::from(vec![b'x'; limits.max_request_bytes + 1]);
    let oversized = PutRequest {
        key: Bytes::from_static(b"/p/big"),
        value: big.clone(),
        lease: 0,
        prev_kv: false,
    };
    match err(store.put_one(oversized).await, "an oversized put_one") {
        StoreError::RequestTooLarge { size, limit } => {
            assert_eq!(limit, limits.max_request_bytes, "the error names the limit");
            assert!(
                size >= big.len(),
                "the error names the request's size, {size} < {}",
                big.len()
            );
        }
        other => panic!("an oversized put_one: expected RequestTooLarge, got {other:?}"),
    }
    before
        .assert_unchanged(&store, "an oversized put_one")
        .await;
}
