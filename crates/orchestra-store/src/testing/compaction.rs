//! Checks of compaction and of `status()`'s revisions.

use bytes::Bytes;

use crate::error::StoreError;
use crate::ext::StoreExt;
use crate::store::Store;
use crate::testing::kv::keys;
use crate::testing::util::{Snapshot, drain_until, err, ok};
use crate::types::{RangeRequest, Revision, WatchRequest};

fn values(kvs: &[crate::types::KeyValue]) -> Vec<(String, String, Revision)> {
    kvs.iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.mod_revision,
            )
        })
        .collect()
}

/// After compacting at `c`: `status()` reports `c`; reads below `c` fail with `Compacted`;
/// reads at and above `c` see exactly what they saw before (keys last written before `c`
/// included, keys deleted before `c` excluded); a watch from `c` works; compacting at the
/// current revision works too.
pub async fn compaction<S: Store>(store: S) {
    let r1 = ok(store.put("/c/a", "a1").await, "put");
    let r2 = ok(store.put("/c/b", "b1").await, "put");
    let r3 = ok(store.put("/c/a", "a2").await, "put");
    ok(store.delete("/c/b").await, "delete");
    let r4 = r3 + 1;
    let r5 = ok(store.put("/c/c", "c1").await, "put");
    let r6 = ok(store.put("/c/a", "a3").await, "put");
    assert_eq!(r6, r1 + 5, "six writes, six revisions");

    let mut before = Vec::new();
    for at in [r4, r5, r6] {
        let resp = ok(
            store
                .range(RangeRequest::prefix("/c/").at_revision(at))
                .await,
            "range",
        );
        before.push((at, resp.kvs));
    }
    ok(store.compact(r4).await, "compact");
    let status = ok(store.status().await, "status");
    assert_eq!(
        (status.revision, status.compact_revision),
        (r6, r4),
        "status after compaction"
    );
    for below in [r1, r2, r3] {
        let e = err(
            store
                .range(RangeRequest::prefix("/c/").at_revision(below))
                .await,
            "range below the compact revision",
        );
        assert_eq!(
            e,
            StoreError::Compacted {
                requested: below,
                compact_revision: r4
            },
            "a read at {below}, below the compact revision {r4}"
        );
    }
    for (at, kvs) in &before {
        let resp = ok(
            store
                .range(RangeRequest::prefix("/c/").at_revision(*at))
                .await,
            "range at or above the compact revision",
        );
        assert_eq!(
            &resp.kvs, kvs,
            "a read at {at} sees after compaction exactly what it saw before"
        );
    }
    assert_eq!(
        values(&before[0].1),
        vec![("/c/a".into(), "a2".into(), r3)],
        "at the compact revision: the key written before it, not the one deleted at it"
    );
    let count = ok(
        store
            .range(RangeRequest::prefix("/c/").at_revision(r4).count_only())
            .await,
        "count at the compact revision",
    );
    assert_eq!(count.count, 1, "count at the compact revision");

    let mut stream = ok(
        store
            .watch(WatchRequest::prefix("/c/").from_revision(r4))
            .await,
        "watch from the compact revision",
    );
    let events: Vec<_> = drain_until(&mut stream, r6, "watch from the compact revision")
        .await
        .into_iter()
        .flat_map(|r| r.events.to_vec())
        .collect();
    let revisions: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revisions,
        vec![r4, r5, r6],
        "a watch from the compact revision replays it and what follows"
    );

    ok(store.compact(r6).await, "compact at the current revision");
    let latest = ok(
        store
            .range(RangeRequest::prefix("/c/").at_revision(r6))
            .await,
        "a read at the compact revision",
    );
    assert_eq!(
        keys(&latest.kvs),
        ["/c/a", "/c/c"],
        "a read at the current (and compact) revision"
    );
    assert_eq!(latest.kvs[0].value, Bytes::from("a3"), "the latest value");
    let e = err(
        store
            .range(RangeRequest::prefix("/c/").at_revision(r5))
            .await,
        "range below the new compact revision",
    );
    assert_eq!(
        e,
        StoreError::Compacted {
            requested: r5,
            compact_revision: r6
        },
        "a read below the new compact revision"
    );
    let r7 = ok(store.put("/c/a", "a4").await, "write after compaction");
    assert_eq!(r7, r6 + 1, "compaction uses no revision");
    let a = ok(store.get("/c/a").await, "get").expect("exists");
    assert_eq!(
        (a.create_revision, a.version),
        (r1, 4),
        "compaction keeps the key's life: create_revision and version"
    );
}

/// Compacting at or below the compact revision fails with `Compacted`; above the current
/// revision with `FutureRevision`; neither changes anything.
pub async fn compact_errors<S: Store>(store: S) {
    let mut last = 0;
    for i in 0..4 {
        last = ok(store.put("/ce/a", format!("{i}")).await, "put");
    }
    let c = last - 1;
    ok(store.compact(c).await, "compact");
    let before = Snapshot::take(&store).await;
    assert_eq!(
        before.compact_revision, c,
        "status reports the compact revision"
    );
    for again in [c, c - 1] {
        let e = err(
            store.compact(again).await,
            "compact at or below the compact revision",
        );
        assert_eq!(
            e,
            StoreError::Compacted {
                requested: again,
                compact_revision: c
            },
            "compact({again}) when already compacted at {c}"
        );
        before
            .assert_unchanged(&store, "a rejected compaction")
            .await;
    }
    for ahead in [last + 1, last + 100] {
        let e = err(store.compact(ahead).await, "compact in the future");
        assert_eq!(
            e,
            StoreError::FutureRevision {
                requested: ahead,
                current: last
            },
            "compact({ahead}) above the current revision {last}"
        );
        before
            .assert_unchanged(&store, "a compaction in the future")
            .await;
    }
}
