//! Checks of revisions, key metadata and ranges: what a key's `create_revision`,
//! `mod_revision` and `version` are after each write, and every shape of read.

use bytes::Bytes;

use crate::error::StoreError;
use crate::ext::StoreExt;
use crate::store::Store;
use crate::testing::util::{Snapshot, err, ok};
use crate::types::{KeyRange, KeyValue, Op, RangeRequest, Revision, Txn};

/// The keys of a range response, as strings, for readable assertions.
pub(crate) fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

async fn range<S: Store>(store: &S, req: RangeRequest, what: &str) -> crate::types::RangeResponse {
    ok(store.range(req).await, what)
}

/// An empty store reads as empty at its initial revision; its first write takes exactly the
/// next revision, which `status()` then reports; reads report the current revision in their
/// header.
pub async fn empty_store<S: Store>(store: S) {
    let status = ok(store.status().await, "status() of an empty store");
    assert!(
        status.compact_revision <= status.revision,
        "an empty store's compact revision {} must not be above its revision {}",
        status.compact_revision,
        status.revision
    );
    let all = range(
        &store,
        RangeRequest::range(KeyRange::prefix("")),
        "range over every key",
    )
    .await;
    assert!(
        all.kvs.is_empty(),
        "an empty store must hold no keys, found {:?}",
        keys(&all.kvs)
    );
    assert_eq!(all.count, 0, "an empty store's count must be 0");
    assert!(!all.more, "an empty range must not report more");
    assert_eq!(
        all.header_revision, status.revision,
        "a range's header must be the current revision"
    );
    assert_eq!(
        ok(store.get("/a").await, "get /a"),
        None,
        "an empty store has no /a"
    );

    let rev = ok(store.put("/a", "1").await, "the first put");
    assert_eq!(
        rev,
        status.revision + 1,
        "the first write must take the revision after the empty store's {}",
        status.revision
    );
    let after = ok(store.status().await, "status() after the first write");
    assert_eq!(
        after.revision, rev,
        "status() must report the revision of the last write"
    );
    let got = range(&store, RangeRequest::key("/a"), "range /a").await;
    assert_eq!(
        got.header_revision, rev,
        "a range's header must be the current revision"
    );
}

/// A key's metadata through its life: `create_revision` and `mod_revision` of the write that
/// created it, `version` counting writes from 1; a delete ends the life (the key reads as
/// absent, `version` restarts at 1 and `create_revision` is new after a re-create); deleting a
/// missing key uses no revision; every write uses exactly one.
pub async fn revisions_and_versions<S: Store>(store: S) {
    let r1 = ok(store.put("/v/a", "1").await, "put /v/a=1");
    let kv = ok(store.get("/v/a").await, "get /v/a").expect("/v/a must exist after its put");
    assert_eq!(
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease,
            kv.value.as_ref()
        ),
        (r1, r1, 1, 0, b"1".as_ref()),
        "after the first put: create = mod = its revision, version 1, no lease"
    );

    let r2 = ok(store.put("/v/a", "2").await, "put /v/a=2");
    assert_eq!(r2, r1 + 1, "each write takes exactly the next revision");
    let kv = ok(store.get("/v/a").await, "get /v/a").expect("/v/a must exist");
    assert_eq!(
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.value.as_ref()
        ),
        (r1, r2, 2, b"2".as_ref()),
        "an update keeps create_revision, moves mod_revision and bumps version"
    );

    let r3 = ok(store.put("/v/b", "x").await, "put /v/b");
    assert_eq!(r3, r2 + 1, "each write takes exactly the next revision");
    let b = ok(store.get("/v/b").await, "get /v/b").expect("/v/b must exist");
    assert_eq!(
        (b.create_revision, b.mod_revision, b.version),
        (r3, r3, 1),
        "a second key's metadata"
    );
    let a = ok(store.get("/v/a").await, "get /v/a").expect("/v/a must exist");
    assert_eq!(
        a.mod_revision, r2,
        "writing another key must not touch /v/a"
    );

    let deleted = ok(store.delete("/v/a").await, "delete /v/a");
    assert_eq!(
        deleted,
        Some(kv.clone()),
        "delete returns the key's last value"
    );
    let r4 = ok(store.status().await, "status").revision;
    assert_eq!(r4, r3 + 1, "a delete takes exactly the next revision");
    assert_eq!(
        ok(store.get("/v/a").await, "get /v/a"),
        None,
        "a deleted key reads as absent"
    );
    let old = range(
        &store,
        RangeRequest::key("/v/a").at_revision(r3),
        "range /v/a at the revision before the delete",
    )
    .await;
    assert_eq!(
        old.kvs,
        vec![kv],
        "the history still has the key before its delete"
    );

    assert_eq!(
        ok(store.delete("/v/a").await, "delete a missing key"),
        None,
        "nothing to delete"
    );
    assert_eq!(
        ok(store.status().await, "status").revision,
        r4,
        "deleting a missing key must not use a revision"
    );

    let r5 = ok(store.put("/v/a", "3").await, "re-create /v/a");
    assert_eq!(r5, r4 + 1, "each write takes exactly the next revision");
    let kv = ok(store.get("/v/a").await, "get /v/a").expect("/v/a must exist");
    assert_eq!(
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.value.as_ref()
        ),
        (r5, r5, 1, b"3".as_ref()),
        "a re-created key starts a new life: new create_revision, version 1"
    );
}

/// One key, a prefix, an interval `[key, end)` and everything from a key: exactly the keys in
/// the range, in ascending key order, with `count`.
pub async fn range_shapes<S: Store>(store: S) {
    let names = ["/r/b/1", "/q", "/r/c", "/r/a", "/r0", "/r/b"];
    let mut last = 0;
    for name in names {
        last = ok(store.put(name, format!("value of {name}")).await, "put");
    }
    let cases: Vec<(&str, KeyRange, Vec<&str>)> = vec![
        ("single key", KeyRange::single("/r/b"), vec!["/r/b"]),
        ("missing single key", KeyRange::single("/r/z"), vec![]),
        (
            "prefix",
            KeyRange::prefix("/r/"),
            vec!["/r/a", "/r/b", "/r/b/1", "/r/c"],
        ),
        (
            "prefix that is also a key",
            KeyRange::prefix("/r/b"),
            vec!["/r/b", "/r/b/1"],
        ),
        ("prefix without keys", KeyRange::prefix("/s/"), vec![]),
        (
            "interval",
            KeyRange::interval("/r/b", "/r/c"),
            vec!["/r/b", "/r/b/1"],
        ),
        (
            "interval between keys",
            KeyRange::interval("/r/a0", "/r/b0"),
            vec!["/r/b", "/r/b/1"],
        ),
        (
            "from key",
            KeyRange::from_key("/r/b"),
            vec!["/r/b", "/r/b/1", "/r/c", "/r0"],
        ),
        (
            "every key",
            KeyRange::prefix(""),
            vec!["/q", "/r/a", "/r/b", "/r/b/1", "/r/c", "/r0"],
        ),
    ];
    for (what, range_, expected) in cases {
        let resp = range(&store, RangeRequest::range(range_.clone()), what).await;
        assert_eq!(
            keys(&resp.kvs),
            expected,
            "{what} ({range_:?}): the keys in ascending order"
        );
        assert_eq!(resp.count, expected.len(), "{what}: count");
        assert!(!resp.more, "{what}: no limit, so never more");
        assert_eq!(
            resp.header_revision, last,
            "{what}: header is the current revision"
        );
        for kv in &resp.kvs {
            let want = format!("value of {}", String::from_utf8_lossy(&kv.key));
            assert_eq!(kv.value, Bytes::from(want), "{what}: each key's own value");
        }
    }
}

/// Reads at past revisions see exactly the keys and metadata of that revision (deleted keys
/// included, later keys excluded); reads at 0 see the latest.
pub async fn range_at_past_revision<S: Store>(store: S) {
    let initial = ok(store.status().await, "status").revision;
    let ra1 = ok(store.put("/h/a", "a1").await, "put a1");
    let rb = ok(store.put("/h/b", "b1").await, "put b1");
    let ra2 = ok(store.put("/h/a", "a2").await, "put a2");
    ok(store.delete("/h/b").await, "delete b");
    let rd = ok(store.status().await, "status").revision;
    let rc = ok(store.put("/h/c", "c1").await, "put c1");

    let kv = |key: &str, value: &str, create: Revision, modr: Revision, version: i64| KeyValue {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        create_revision: create,
        mod_revision: modr,
        version,
        lease: 0,
    };
    let expected: Vec<(Revision, Vec<KeyValue>)> = vec![
        (initial, vec![]),
        (ra1, vec![kv("/h/a", "a1", ra1, ra1, 1)]),
        (
            rb,
            vec![kv("/h/a", "a1", ra1, ra1, 1), kv("/h/b", "b1", rb, rb, 1)],
        ),
        (
            ra2,
            vec![kv("/h/a", "a2", ra1, ra2, 2), kv("/h/b", "b1", rb, rb, 1)],
        ),
        (rd, vec![kv("/h/a", "a2", ra1, ra2, 2)]),
        (
            rc,
            vec![kv("/h/a", "a2", ra1, ra2, 2), kv("/h/c", "c1", rc, rc, 1)],
        ),
        (
            0,
            vec![kv("/h/a", "a2", ra1, ra2, 2), kv("/h/c", "c1", rc, rc, 1)],
        ),
    ];
    for (at, want) in expected {
        let resp = range(
            &store,
            RangeRequest::prefix("/h/").at_revision(at),
            "range at a past revision",
        )
        .await;
        assert_eq!(resp.kvs, want, "range /h/ at revision {at} (0: latest)");
        assert_eq!(resp.count, want.len(), "count at revision {at}");
        assert_eq!(
            resp.header_revision, rc,
            "header at revision {at} is the current revision"
        );
        if let Some(first) = want.first() {
            let single = range(
                &store,
                RangeRequest::key(first.key.clone()).at_revision(at),
                "single key at a past revision",
            )
            .await;
            assert_eq!(
                single.kvs,
                vec![first.clone()],
                "single key at revision {at}"
            );
        }
    }
}

/// A read above the current revision fails with `FutureRevision` naming both; a read below the
/// compact revision fails with `Compacted` naming both; the boundary revisions themselves read
/// fine; a transaction that reads a bad revision fails as a whole and writes nothing.
pub async fn range_revision_errors<S: Store>(store: S) {
    let r1 = ok(store.put("/e/a", "1").await, "put");
    let r2 = ok(store.put("/e/a", "2").await, "put");
    let r3 = ok(store.put("/e/a", "3").await, "put");
    for ahead in [r3 + 1, r3 + 1000] {
        let e = err(
            store
                .range(RangeRequest::key("/e/a").at_revision(ahead))
                .await,
            "range in the future",
        );
        assert_eq!(
            e,
            StoreError::FutureRevision {
                requested: ahead,
                current: r3
            },
            "a read at revision {ahead} above the current {r3}"
        );
    }
    ok(
        store.range(RangeRequest::key("/e/a").at_revision(r3)).await,
        "a read at the current revision",
    );

    ok(store.compact(r2).await, "compact");
    let e = err(
        store.range(RangeRequest::key("/e/a").at_revision(r1)).await,
        "range below the compact revision",
    );
    assert_eq!(
        e,
        StoreError::Compacted {
            requested: r1,
            compact_revision: r2
        },
        "a read at revision {r1} below the compact revision {r2}"
    );
    let at = ok(
        store.range(RangeRequest::key("/e/a").at_revision(r2)).await,
        "a read at the compact revision",
    );
    assert_eq!(
        at.kvs.first().map(|kv| kv.value.clone()),
        Some(Bytes::from("2")),
        "the value at the compact revision"
    );

    let before = Snapshot::take(&store).await;
    for (what, bad) in [
        (
            "a txn reading a compacted revision",
            RangeRequest::key("/e/a").at_revision(r1),
        ),
        (
            "a txn reading a future revision",
            RangeRequest::key("/e/a").at_revision(r3 + 5),
        ),
    ] {
        let txn = Txn::new().and_then([Op::put("/e/b", "x"), Op::Range(bad)]);
        let e = err(store.txn(txn).await, what);
        assert!(
            matches!(
                e,
                StoreError::Compacted { .. } | StoreError::FutureRevision { .. }
            ),
            "{what}: expected Compacted or FutureRevision, got {e:?}"
        );
        before.assert_unchanged(&store, what).await;
    }
}

/// `limit` returns the first keys with `more` and the full `count`; `keys_only` drops values
/// and keeps metadata; `count_only` returns only the count; all of it at past revisions too.
pub async fn range_limit_and_count<S: Store>(store: S) {
    let mut revs = Vec::new();
    for i in 1..=5 {
        revs.push(ok(
            store.put(format!("/l/k{i}"), format!("v{i}")).await,
            "put",
        ));
    }
    let full = range(&store, RangeRequest::prefix("/l/"), "full range").await;
    for (limit, want_keys, more) in [
        (1, 1, true),
        (2, 2, true),
        (4, 4, true),
        (5, 5, false),
        (10, 5, false),
        (0, 5, false),
    ] {
        let resp = range(
            &store,
            RangeRequest::prefix("/l/").with_limit(limit),
            "range with limit",
        )
        .await;
        assert_eq!(
            resp.kvs,
            full.kvs[..want_keys].to_vec(),
            "limit {limit}: the first {want_keys} keys"
        );
        assert_eq!(resp.more, more, "limit {limit}: more");
        assert_eq!(
            resp.count, 5,
            "limit {limit}: count counts every key in the range"
        );
    }

    let keys_only = range(&store, RangeRequest::prefix("/l/").keys_only(), "keys_only").await;
    assert_eq!(keys_only.count, 5, "keys_only: count");
    assert_eq!(keys_only.kvs.len(), 5, "keys_only: every key");
    for (got, kv) in keys_only.kvs.iter().zip(&full.kvs) {
        let mut want = kv.clone();
        want.value = Bytes::new();
        assert_eq!(got, &want, "keys_only: empty value, every other field kept");
    }

    let count_only = range(
        &store,
        RangeRequest::prefix("/l/").count_only(),
        "count_only",
    )
    .await;
    assert!(
        count_only.kvs.is_empty(),
        "count_only: no keys, got {:?}",
        keys(&count_only.kvs)
    );
    assert_eq!(count_only.count, 5, "count_only: the count");
    assert!(!count_only.more, "count_only: more is false");

    let past = RangeRequest::prefix("/l/")
        .at_revision(revs[2])
        .with_limit(2);
    let resp = range(&store, past, "limit at a past revision").await;
    assert_eq!(
        keys(&resp.kvs),
        ["/l/k1", "/l/k2"],
        "limit at a past revision: the first keys then"
    );
    assert!(resp.more, "limit at a past revision: more");
    assert_eq!(resp.count, 3, "limit at a past revision: the count then");
    let counted = range(
        &store,
        RangeRequest::prefix("/l/")
            .at_revision(revs[1])
            .count_only(),
        "count_only at a past revision",
    )
    .await;
    assert_eq!(counted.count, 2, "count_only at a past revision");
}
