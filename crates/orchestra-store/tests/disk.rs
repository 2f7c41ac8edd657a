//! DiskStore's durability: reopen restores everything, the directory is locked, leases survive
//! a restart, compaction shrinks the file, and damaged files give errors, never wrong data.

use std::time::Duration;

use futures::StreamExt;
use orchestra_store::disk::DB_FILE;
use orchestra_store::{
    DiskStore, EventKind, KvHash, MemStore, Op, RangeRequest, Store, StoreError, StoreExt, Txn,
    WatchRequest,
};

async fn collect_events(
    store: &DiskStore,
    req: WatchRequest,
    count: usize,
) -> Vec<orchestra_store::Event> {
    let mut watch = store.watch(req).await.unwrap();
    let mut events = Vec::new();
    while events.len() < count {
        let resp = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch delivered nothing for 10 s")
            .expect("watch ended")
            .unwrap();
        events.extend(resp.events.iter().cloned());
    }
    events
}

#[tokio::test]
async fn reopen_restores_keys_revision_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let (first, last_rev) = {
        let store = DiskStore::open(dir.path()).await.unwrap();
        let first = store.put("/a", "1").await.unwrap();
        store.put("/a", "2").await.unwrap();
        store.put("/b", "1").await.unwrap();
        store.delete("/b").await.unwrap();
        let last = store.put("/c", "1").await.unwrap();
        (first, last)
    };
    let store = DiskStore::open(dir.path()).await.unwrap();
    assert_eq!(store.status().await.unwrap().revision, last_rev);
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (a.value.as_ref(), a.version, a.create_revision),
        (&b"2"[..], 2, first)
    );
    assert!(store.get("/b").await.unwrap().is_none());
    let old = store
        .range(RangeRequest::key("/a").at_revision(first))
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value.as_ref(), b"1");
    // A watcher resumes from the first revision and sees every event, with previous values.
    let events = collect_events(
        &store,
        WatchRequest::prefix("/")
            .from_revision(first)
            .with_prev_kv(),
        5,
    )
    .await;
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.kv.mod_revision)).collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Put, first),
            (EventKind::Put, first + 1),
            (EventKind::Put, first + 2),
            (EventKind::Delete, first + 3),
            (EventKind::Put, last_rev)
        ]
    );
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value.as_ref(), b"1");
    assert_eq!(events[3].prev_kv.as_ref().unwrap().key.as_ref(), b"/b");
    // New writes continue the revision sequence.
    assert_eq!(store.put("/d", "1").await.unwrap(), last_rev + 1);
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path()).await.unwrap();
    let err = DiskStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(store);
    DiskStore::open(dir.path())
        .await
        .expect("the lock is released when the store is dropped");
}

#[tokio::test(start_paused = true)]
async fn leases_survive_a_restart_with_their_full_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let lease = {
        let store = DiskStore::open(dir.path()).await.unwrap();
        let lease = store.lease_grant(Duration::from_secs(10)).await.unwrap();
        store
            .put_with_lease("/lease/key", "v", lease)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(8)).await;
        lease
    };
    let store = DiskStore::open(dir.path()).await.unwrap();
    let status = store.lease_time_to_live(lease).await.unwrap();
    assert_eq!(status.granted_ttl, Duration::from_secs(10));
    assert_eq!(
        status.remaining,
        Duration::from_secs(10),
        "restarted leases get their full TTL"
    );
    assert_eq!(status.keys.len(), 1);
    // A new lease never reuses the id.
    let other = store.lease_grant(Duration::from_secs(60)).await.unwrap();
    assert_ne!(other, lease);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(
        store.get("/lease/key").await.unwrap().is_none(),
        "the key vanished with its lease"
    );
    assert!(matches!(
        store.lease_time_to_live(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    drop(store);
    let store = DiskStore::open(dir.path()).await.unwrap();
    assert!(store.get("/lease/key").await.unwrap().is_none());
    assert!(matches!(
        store.lease_time_to_live(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_lease_with_a_chosen_id_survives_a_restart_and_its_id_stays_taken() {
    let dir = tempfile::tempdir().unwrap();
    let chosen = 1 << 45;
    let auto = {
        let store = DiskStore::open(dir.path()).await.unwrap();
        let granted = store
            .lease_grant_id(chosen, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(granted, chosen);
        store
            .put_with_lease("/chosen/key", "v", chosen)
            .await
            .unwrap();
        store.lease_grant(Duration::from_secs(30)).await.unwrap()
    };
    let store = DiskStore::open(dir.path()).await.unwrap();
    let status = store.lease_time_to_live(chosen).await.unwrap();
    assert_eq!(status.keys.len(), 1, "the chosen lease kept its key");
    assert_eq!(
        store.lease_grant_id(chosen, Duration::from_secs(30)).await,
        Err(StoreError::LeaseExists(chosen)),
        "the chosen id is still taken after the restart"
    );
    let next = store.lease_grant(Duration::from_secs(30)).await.unwrap();
    assert!(
        next != chosen && next != auto,
        "a new lease takes a free id, not {next}"
    );
}

#[tokio::test]
async fn compaction_reclaims_disk_space_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let value = vec![7u8; 64 * 1024];
    let (before, after, compact_at) = {
        let store = DiskStore::open(dir.path()).await.unwrap();
        let mut last = 0;
        for round in 0..40 {
            for key in 0..8 {
                last = store
                    .put(format!("/big/{key}"), value.clone())
                    .await
                    .unwrap();
            }
            if round == 0 {
                store.put("/small", "kept").await.unwrap();
            }
        }
        let before = store.status().await.unwrap().db_size;
        store.compact(last).await.unwrap();
        let after = store.status().await.unwrap().db_size;
        (before, after, last)
    };
    assert!(
        after * 2 < before,
        "compaction should give back most of the space: {before} bytes before, {after} after"
    );
    let store = DiskStore::open(dir.path()).await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!(
        (status.revision, status.compact_revision),
        (compact_at, compact_at)
    );
    assert_eq!(store.list_prefix("/big/").await.unwrap().count, 8);
    let small = store.get("/small").await.unwrap().unwrap();
    assert_eq!(small.value.as_ref(), b"kept");
    let big = store.get("/big/3").await.unwrap().unwrap();
    assert_eq!(
        big.version, 40,
        "versions survive the fold into the base table"
    );
    let err = store
        .range(RangeRequest::key("/small").at_revision(compact_at - 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err}");
    let err = store
        .watch(WatchRequest::prefix("/").from_revision(compact_at - 5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { compact_revision, .. } if compact_revision == compact_at)
    );
}

/// A small store's file and the data in it: written once, then damaged in copies.
async fn pristine_store() -> (Vec<u8>, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let store = DiskStore::open(dir.path()).await.unwrap();
        for i in 0..50 {
            let key = format!("/key/{i:03}");
            let value = format!("value-{i}-{}", "x".repeat(i * 7));
            store.put(key.clone(), value.clone()).await.unwrap();
            expected.push((key, value));
        }
        store.compact(20).await.unwrap();
    }
    (std::fs::read(dir.path().join(DB_FILE)).unwrap(), expected)
}

/// Open a copy of the pristine store damaged by `damage`: opening must either fail with a
/// clear error or return exactly the data that was written.
async fn reopen_after_damage(
    pristine: &(Vec<u8>, Vec<(String, String)>),
    damage: impl FnOnce(&mut Vec<u8>),
) {
    let (bytes, expected) = pristine;
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = bytes.clone();
    damage(&mut bytes);
    std::fs::write(dir.path().join(DB_FILE), &bytes).unwrap();
    match DiskStore::open(dir.path()).await {
        Err(err) => assert!(
            matches!(err, StoreError::Corrupt { .. } | StoreError::Io(_)),
            "damage must be reported as corruption or I/O, got {err:?}"
        ),
        Ok(store) => {
            let all = store.list_prefix("/key/").await.unwrap();
            let got: Vec<(String, String)> = all
                .kvs
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        String::from_utf8_lossy(&kv.value).into_owned(),
                    )
                })
                .collect();
            assert_eq!(
                &got, expected,
                "a store that opens must return exactly what was written"
            );
        }
    }
}

#[tokio::test]
async fn truncated_files_are_reported_not_misread() {
    let pristine = pristine_store().await;
    for keep in [0.0, 0.1, 0.5, 0.9, 0.99] {
        reopen_after_damage(&pristine, |bytes| {
            let len = (bytes.len() as f64 * keep) as usize;
            bytes.truncate(len);
        })
        .await;
    }
}

#[tokio::test]
async fn flipped_bytes_are_reported_not_misread() {
    let pristine = pristine_store().await;
    let len = pristine.0.len();
    // Damage every 4 KiB page at a few offsets (the file is small, so this is quick).
    let mut offsets = Vec::new();
    let mut page = 0;
    while page < len.max(64 * 1024) {
        for delta in [0usize, 17, 600, 2048, 4000] {
            offsets.push(page + delta);
        }
        page += 4096;
    }
    for offset in offsets {
        reopen_after_damage(&pristine, move |bytes| {
            if let Some(b) = bytes.get_mut(offset) {
                *b ^= 0x5a;
            }
        })
        .await;
    }
}

/// Writes whose HashKV depends on the changes' positions in their transactions, with a
/// compaction that folds the first transactions into the store's base; returns the hashes at
/// every revision after the compact point.
async fn hash_kv_history(store: &dyn Store) -> Vec<KvHash> {
    let three = Txn::new().and_then([
        Op::put("/x/a", "1"),
        Op::put("/x/b", "2"),
        Op::put("/x/c", "3"),
    ]);
    store.txn(three).await.unwrap();
    store.put("/x/d", "4").await.unwrap();
    let two = Txn::new().and_then([Op::delete("/x/d"), Op::put("/x/e", "5")]);
    let compact_at = store.txn(two).await.unwrap().header_revision;
    store.put("/x/a", "6").await.unwrap();
    store.compact(compact_at).await.unwrap();
    store.put("/x/f", "7").await.unwrap();
    let mut hashes = Vec::new();
    for revision in [0, compact_at + 1] {
        hashes.push(store.hash_kv(revision).await.unwrap());
    }
    hashes
}

/// The sub revisions of the keys folded into the base survive a reopen, so HashKV is the same
/// before and after it, and the same as a MemStore's after the same writes.
#[tokio::test]
async fn hash_kv_survives_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let store = DiskStore::open(dir.path()).await.unwrap();
        hash_kv_history(&store).await
    };
    assert_ne!(before[0].hash, before[1].hash, "two revisions, two hashes");
    assert_eq!(before, hash_kv_history(&MemStore::new()).await);
    let store = DiskStore::open(dir.path()).await.unwrap();
    let after: Vec<KvHash> = [0, before[1].compact_revision + 1]
        .into_iter()
        .map(|revision| {
            let store = &store;
            async move { store.hash_kv(revision).await.unwrap() }
        })
        .collect::<futures::stream::FuturesOrdered<_>>()
        .collect()
        .await;
    assert_eq!(after, before);
    let compacted = store.hash_kv(before[0].compact_revision).await.unwrap_err();
    assert!(
        matches!(compacted, StoreError::Compacted { .. }),
        "{compacted:?}"
    );
}
