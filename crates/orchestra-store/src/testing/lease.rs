//! Checks of leases: grant, keep-alive, revoke and time-to-live; the keys of a lease vanish with
//! it in one revision; expiry.
//!
//! The expiry checks sleep with tokio's clock: under `#[tokio::test(start_paused = true)]` they
//! take no real time; against a server with its own clock they take the lease TTLs below (a few
//! seconds). They never wait for an expiry by sleeping: they wait for the delete event, with
//! [`GUARD`](crate::testing::util::GUARD) only as a failure bound.

use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::ext::StoreExt;
use crate::store::Store;
use crate::testing::kv::keys;
use crate::testing::txn::put_with;
use crate::testing::util::{Snapshot, assert_quiet, err, next_events, ok};
use crate::types::{EventKind, Op, RangeRequest, Txn, WatchRequest};

/// The TTL of the leases of these checks: whole seconds, so that a store with second
/// granularity (etcd) represents it exactly, and long enough for a remote store's round trips.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// Grant, list, time-to-live (TTL, remaining time, attached keys), keep-alive (renews to the
/// full TTL), revoke; afterwards every lease operation fails with `LeaseNotFound` and the
/// list no longer has it.
pub async fn lease_lifecycle<S: Store>(store: S) {
    let id = ok(store.lease_grant(LEASE_TTL).await, "lease_grant");
    assert_ne!(id, 0, "a lease id is never 0 (0 means no lease)");
    let other = ok(store.lease_grant(LEASE_TTL).await, "a second lease_grant");
    assert_ne!(id, other, "two leases have distinct ids");
    let listed = ok(store.lease_list().await, "lease_list");
    assert!(
        listed.contains(&id) && listed.contains(&other),
        "lease_list has every granted lease: {id} and {other} in {listed:?}"
    );
    assert!(
        listed.is_sorted(),
        "lease_list is in ascending id order: {listed:?}"
    );

    let status = ok(store.lease_time_to_live(id).await, "lease_time_to_live");
    assert_eq!(
        (status.id, status.granted_ttl),
        (id, LEASE_TTL),
        "time_to_live: the id and the granted TTL"
    );
    assert!(
        status.remaining <= LEASE_TTL && status.remaining >= LEASE_TTL - Duration::from_secs(2),
        "a fresh lease has (almost) its whole TTL left, got {:?} of {LEASE_TTL:?}",
        status.remaining
    );
    assert!(
        status.keys.is_empty(),
        "a fresh lease has no keys, got {:?}",
        status.keys
    );

    ok(
        store.put_with_lease("/lease/b", "1", id).await,
        "put with lease",
    );
    ok(
        store.put_with_lease("/lease/a", "1", id).await,
        "put with lease",
    );
    ok(
        store.put_with_lease("/lease/c", "1", other).await,
        "put with the other lease",
    );
    let status = ok(store.lease_time_to_live(id).await, "lease_time_to_live");
    let mut attached: Vec<String> = status
        .keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    attached.sort();
    assert_eq!(
        attached,
        ["/lease/a", "/lease/b"],
        "time_to_live lists the lease's keys"
    );
    let kv = ok(store.get("/lease/a").await, "get").expect("exists");
    assert_eq!(kv.lease, id, "a leased key carries its lease");

    tokio::time::sleep(LEASE_TTL / 2).await;
    let status = ok(
        store.lease_time_to_live(id).await,
        "lease_time_to_live after half the TTL",
    );
    assert!(
        status.remaining <= LEASE_TTL / 2 + Duration::from_secs(1),
        "after half the TTL at most about half is left, got {:?}",
        status.remaining
    );
    let renewed = ok(store.lease_keep_alive(id).await, "lease_keep_alive");
    assert_eq!(renewed, LEASE_TTL, "keep_alive returns the TTL");
    let status = ok(
        store.lease_time_to_live(id).await,
        "lease_time_to_live after keep_alive",
    );
    assert!(
        status.remaining > LEASE_TTL - Duration::from_secs(2),
        "keep_alive renews the lease to its full TTL, {:?} left",
        status.remaining
    );

    ok(store.lease_revoke(id).await, "lease_revoke");
    let listed = ok(store.lease_list().await, "lease_list after a revoke");
    assert!(
        !listed.contains(&id) && listed.contains(&other),
        "lease_list drops the revoked lease {id} and keeps {other}: {listed:?}"
    );
    assert_eq!(
        err(
            store.lease_time_to_live(id).await,
            "time_to_live of a revoked lease"
        ),
        StoreError::LeaseNotFound(id)
    );
    assert_eq!(
        err(
            store.lease_keep_alive(id).await,
            "keep_alive of a revoked lease"
        ),
        StoreError::LeaseNotFound(id)
    );
    assert_eq!(
        err(store.lease_revoke(id).await, "revoke of a revoked lease"),
        StoreError::LeaseNotFound(id)
    );
    let never = other + 1_000_000;
    assert_eq!(
        err(
            store.lease_time_to_live(never).await,
            "time_to_live of an unknown lease"
        ),
        StoreError::LeaseNotFound(never)
    );
    assert_eq!(
        err(
            store.lease_keep_alive(never).await,
            "keep_alive of an unknown lease"
        ),
        StoreError::LeaseNotFound(never)
    );
    assert_eq!(
        err(
            store.lease_revoke(never).await,
            "revoke of an unknown lease"
        ),
        StoreError::LeaseNotFound(never)
    );
    assert!(
        ok(store.get("/lease/c").await, "get").is_some(),
        "revoking one lease leaves another lease's keys"
    );
}

/// Revoking a lease deletes all its keys in one transaction: one new revision, one watch
/// response with a delete event per key; keys without the lease stay; history keeps them.
pub async fn lease_revoke_deletes_keys<S: Store>(store: S) {
    let id = ok(store.lease_grant(LEASE_TTL).await, "lease_grant");
    for key in ["/r/a", "/r/b", "/r/c"] {
        ok(store.put_with_lease(key, "1", id).await, "put with lease");
    }
    ok(store.put("/r/d", "unleased").await, "put without lease");
    let mut stream = ok(store.watch(WatchRequest::prefix("/r/")).await, "watch");
    let before = ok(store.status().await, "status").revision;
    ok(store.lease_revoke(id).await, "lease_revoke");
    let after = ok(store.status().await, "status").revision;
    assert_eq!(
        after,
        before + 1,
        "revoking a lease with three keys takes exactly one revision"
    );

    let resp = next_events(&mut stream, "revoke events").await;
    let got: Vec<(EventKind, String, i64)> = resp
        .events
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8_lossy(&e.kv.key).into_owned(),
                e.kv.mod_revision,
            )
        })
        .collect();
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        sorted,
        vec![
            (EventKind::Delete, "/r/a".to_string(), after),
            (EventKind::Delete, "/r/b".to_string(), after),
            (EventKind::Delete, "/r/c".to_string(), after),
        ],
        "one response with a delete event for each key of the lease"
    );
    assert_quiet(&mut stream, after, "after the revoke").await;
    let left = ok(store.range(RangeRequest::prefix("/r/")).await, "range");
    assert_eq!(keys(&left.kvs), ["/r/d"], "only the unleased key is left");
    let old = ok(
        store
            .range(RangeRequest::prefix("/r/").at_revision(before))
            .await,
        "range before",
    );
    assert_eq!(
        old.count, 4,
        "the history before the revoke still has every key"
    );
}

/// A put (alone, or in a transaction with other writes) naming a lease that does not exist
/// fails with `LeaseNotFound` and changes nothing.
pub async fn lease_unknown_put<S: Store>(store: S) {
    ok(store.put("/u/a", "1").await, "put");
    let dead = ok(store.lease_grant(LEASE_TTL).await, "lease_grant");
    ok(store.lease_revoke(dead).await, "lease_revoke");
    let before = Snapshot::take(&store).await;
    for id in [dead, dead + 777_777] {
        let e = err(
            store.put_with_lease("/u/b", "1", id).await,
            "put with an unknown lease",
        );
        assert_eq!(
            e,
            StoreError::LeaseNotFound(id),
            "put with unknown lease {id}"
        );
        before
            .assert_unchanged(&store, "put with an unknown lease")
            .await;
        let t = Txn::new().and_then([Op::put("/u/a", "2"), put_with("/u/c", "1", id, false)]);
        let e = err(store.txn(t).await, "txn with a put with an unknown lease");
        assert_eq!(
            e,
            StoreError::LeaseNotFound(id),
            "txn with unknown lease {id}"
        );
        before
            .assert_unchanged(&store, "txn with a put with an unknown lease")
            .await;
    }
}

/// Writing a leased key again without the lease detaches it, and so does deleting it: the
/// revoke then leaves it alone. Revoking a lease without keys uses no revision.
pub async fn lease_detach<S: Store>(store: S) {
    let id = ok(store.lease_grant(LEASE_TTL).await, "lease_grant");
    ok(
        store.put_with_lease("/d/a", "1", id).await,
        "put with lease",
    );
    ok(store.put("/d/a", "2").await, "put again without lease");
    let a = ok(store.get("/d/a").await, "get").expect("exists");
    assert_eq!(a.lease, 0, "a put without lease detaches the key");
    ok(
        store.put_with_lease("/d/b", "1", id).await,
        "put with lease",
    );
    ok(store.delete("/d/b").await, "delete");
    ok(
        store.put("/d/b", "recreated").await,
        "re-create without lease",
    );
    ok(
        store.put_with_lease("/d/c", "1", id).await,
        "put with lease",
    );
    let status = ok(store.lease_time_to_live(id).await, "time_to_live");
    assert_eq!(
        status.keys,
        vec![bytes::Bytes::from("/d/c")],
        "only /d/c is still attached"
    );

    let before = ok(store.status().await, "status").revision;
    ok(store.lease_revoke(id).await, "revoke");
    assert_eq!(
        ok(store.status().await, "status").revision,
        before + 1,
        "one revision for the revoke"
    );
    let left = ok(store.range(RangeRequest::prefix("/d/")).await, "range");
    assert_eq!(
        keys(&left.kvs),
        ["/d/a", "/d/b"],
        "the detached keys survive the revoke"
    );

    let empty = ok(store.lease_grant(LEASE_TTL).await, "lease_grant");
    let snapshot = Snapshot::take(&store).await;
    ok(
        store.lease_revoke(empty).await,
        "revoke a lease without keys",
    );
    snapshot
        .assert_unchanged(&store, "revoking a lease without keys")
        .await;
}

/// A lease expires one TTL after its last keep-alive, not before: its keys are deleted (a
/// delete event, one revision) and the lease is gone.
pub async fn lease_expiry<S: Store>(store: S) {
    let ttl = Duration::from_secs(5);
    let id = ok(store.lease_grant(ttl).await, "lease_grant");
    ok(
        store.put_with_lease("/exp/a", "1", id).await,
        "put with lease",
    );
    ok(store.put("/exp/b", "unleased").await, "put without lease");
    let mut stream = ok(store.watch(WatchRequest::prefix("/exp/")).await, "watch");

    tokio::time::sleep(ttl * 3 / 5).await;
    let renewed_at = Instant::now();
    ok(
        store.lease_keep_alive(id).await,
        "keep_alive before the TTL ran out",
    );
    tokio::time::sleep(ttl * 3 / 5).await;
    assert!(
        ok(store.get("/exp/a").await, "get").is_some(),
        "{:?} after the keep-alive (TTL {ttl:?}) the key must still exist",
        renewed_at.elapsed()
    );
    let before = ok(store.status().await, "status").revision;

    // Wait for the delete event, not for a duration: `next_events` fails after GUARD.
    let resp = next_events(&mut stream, "the lease's expiry (a delete event)").await;
    let elapsed = renewed_at.elapsed();
    assert!(
        elapsed >= ttl,
        "the lease expired {elapsed:?} after its keep-alive, before its TTL {ttl:?}"
    );
    assert_eq!(resp.events.len(), 1, "one delete event: {:?}", resp.events);
    let event = &resp.events[0];
    assert_eq!(
        (event.kind, event.kv.key.as_ref(), event.kv.mod_revision),
        (EventKind::Delete, b"/exp/a".as_ref(), before + 1),
        "the expiry deletes the leased key at the next revision"
    );
    assert_eq!(
        ok(store.get("/exp/a").await, "get"),
        None,
        "the leased key is gone"
    );
    assert!(
        ok(store.get("/exp/b").await, "get").is_some(),
        "the unleased key stays"
    );
    assert_eq!(
        err(
            store.lease_time_to_live(id).await,
            "time_to_live of an expired lease"
        ),
        StoreError::LeaseNotFound(id)
    );
    assert_eq!(
        err(
            store.lease_keep_alive(id).await,
            "keep_alive of an expired lease"
        ),
        StoreError::LeaseNotFound(id)
    );
}

/// A TTL no store can represent (`Duration::MAX`) is refused with an error — not a panic —
/// and changes nothing; the store keeps granting leases afterwards.
pub async fn lease_huge_ttl<S: Store>(store: S) {
    ok(store.put("/big/a", "1").await, "put");
    let before = Snapshot::take(&store).await;
    let outcome = std::panic::AssertUnwindSafe(store.lease_grant(Duration::MAX))
        .catch_unwind()
        .await;
    match outcome {
        Err(_) => panic!("lease_grant(Duration::MAX) panicked; it must return an error"),
        Ok(Ok(id)) => {
            panic!("lease_grant(Duration::MAX) granted lease {id}; it must return an error")
        }
        Ok(Err(_)) => {}
    }
    before
        .assert_unchanged(&store, "lease_grant(Duration::MAX)")
        .await;
    let id = ok(
        store.lease_grant(LEASE_TTL).await,
        "lease_grant after a refused one",
    );
    ok(
        store.put_with_lease("/big/b", "1", id).await,
        "put with the new lease",
    );
    ok(store.lease_revoke(id).await, "revoke");
}

/// A grant with an id the caller chose (etcd's LeaseGrant with a nonzero ID): the lease has
/// that id and works as any other; a second grant of a live id fails with `LeaseExists` and
/// changes nothing; once revoked, the id can be granted again; id 0 lets the store choose, and
/// the store never chooses an id a caller holds.
pub async fn lease_chosen_id<S: Store>(store: S) {
    use rand::Rng;
    // Random, so that leases left by an earlier run on a shared server cannot collide.
    let chosen: i64 = rand::rng().random_range(1i64 << 40..1i64 << 50);
    let granted = ok(
        store.lease_grant_id(chosen, LEASE_TTL).await,
        "lease_grant_id with a chosen id",
    );
    assert_eq!(granted, chosen, "the lease has the id the caller chose");
    let status = ok(
        store.lease_time_to_live(chosen).await,
        "time-to-live of the chosen id",
    );
    assert_eq!(
        (status.id, status.granted_ttl),
        (chosen, LEASE_TTL),
        "the chosen lease's id and TTL"
    );
    assert!(
        ok(store.lease_list().await, "lease_list").contains(&chosen),
        "the chosen lease is listed"
    );
    ok(
        store.put_with_lease("/chosen/a", "1", chosen).await,
        "put with the chosen lease",
    );

    let before = Snapshot::take(&store).await;
    let e = err(
        store.lease_grant_id(chosen, LEASE_TTL).await,
        "a second grant of a live id",
    );
    assert_eq!(
        e,
        StoreError::LeaseExists(chosen),
        "a second grant of a live id"
    );
    before
        .assert_unchanged(&store, "a second grant of a live id")
        .await;
    let status = ok(
        store.lease_time_to_live(chosen).await,
        "time-to-live after the refused grant",
    );
    assert_eq!(
        status.keys,
        [bytes::Bytes::from_static(b"/chosen/a")],
        "the refused grant left the lease and its keys alone"
    );

    ok(store.lease_revoke(chosen).await, "revoke the chosen lease");
    assert_eq!(
        ok(store.get("/chosen/a").await, "get /chosen/a"),
        None,
        "revoking the chosen lease deletes its key"
    );
    let again = ok(
        store.lease_grant_id(chosen, LEASE_TTL).await,
        "grant a revoked id again",
    );
    assert_eq!(again, chosen, "a revoked id can be granted again");
    ok(store.lease_revoke(chosen).await, "revoke it again");

    // The store chooses around ids callers hold: claim the id after one it chose, then ask it
    // to choose again.
    let first = ok(store.lease_grant_id(0, LEASE_TTL).await, "lease_grant_id 0");
    assert_ne!(first, 0, "id 0 asks the store to choose an id");
    let claimed = first.wrapping_add(1);
    let held = store.lease_grant_id(claimed, LEASE_TTL).await;
    let next = ok(store.lease_grant(LEASE_TTL).await, "lease_grant");
    assert!(
        next != first && next != claimed,
        "the store chose {next}, an id already held (held: {first} and {claimed})"
    );
    for id in [first, next] {
        ok(store.lease_revoke(id).await, "revoke");
    }
    if held.is_ok() {
        ok(store.lease_revoke(claimed).await, "revoke the claimed id");
    }
}
