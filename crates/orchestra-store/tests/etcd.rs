//! System tests of `EtcdStore` against a real etcd (Debian's `etcd-server` 3.4): the whole
//! conformance suite, one fresh etcd per check, and watches that survive etcd being killed
//! and restarted. Skipped (with a message) when etcd is not installed, unless
//! `ORCHESTRA_SYSTEM_TESTS=1`.
//!
//! The suite runs in real time, as it must against a server (see `orchestra_store::testing`).
//! Lease checks use whole-second TTLs of 5 and 10 seconds, which etcd represents exactly and
//! which are above etcd's minimum TTL (1.5 election timeouts: 1 second with the flags below),
//! so every check of the suite applies to etcd unchanged.

#![cfg(feature = "etcd")]

mod etcd_harness;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use orchestra_store::etcd::{EtcdOptions, EtcdStore};
use orchestra_store::testing::util::{GUARD, collect_events, drain_until};
use orchestra_store::{
    Event, EventKind, Revision, Store, StoreError, StoreExt, WatchRequest, WatchResponse,
};

use etcd_harness::{Member, etcd_or_skip, free_port};

/// Faster elections than etcd's defaults (100 ms / 1 s), so that a fresh member leads sooner.
pub const FAST: &[&str] = &["--heartbeat-interval", "25", "--election-timeout", "250"];

/// One test per conformance check, each against a fresh single-member etcd (the checks assume
/// an empty store and exact revision increments, so they cannot share one).
mod conformance {
    use super::*;
    orchestra_store::store_conformance_tests! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        maybe_store = || async {
            let binary = etcd_or_skip("the etcd conformance check")?;
            let member = Member::single_with(&binary, FAST).await;
            Some(orchestra_store::testing::Guarded::new(member.store().await, member))
        },
    }
}

/// Write `count` puts under `/r/` (ten keys, unique values); returns revision -> (key, value).
async fn write(store: &EtcdStore, from: usize, count: usize) -> BTreeMap<Revision, (Bytes, Bytes)> {
    let mut writes = BTreeMap::new();
    for i in from..from + count {
        let key = Bytes::from(format!("/r/k{}", i % 10));
        let value = Bytes::from(format!("v{i}"));
        let rev = store
            .put(key.clone(), value.clone())
            .await
            .unwrap_or_else(|e| panic!("put #{i}: {e}"));
        writes.insert(rev, (key, value));
    }
    writes
}

fn events(responses: &[WatchResponse]) -> Vec<Event> {
    responses.iter().flat_map(|r| r.events.to_vec()).collect()
}

/// Every event of `got` is the write of `writes` at its revision, in order, exactly once; and
/// each carries the previous value the history says.
fn assert_exactly(got: &[Event], writes: &BTreeMap<Revision, (Bytes, Bytes)>) {
    let seen: Vec<(Revision, Bytes, Bytes)> = got
        .iter()
        .map(|e| (e.kv.mod_revision, e.kv.key.clone(), e.kv.value.clone()))
        .collect();
    let want: Vec<(Revision, Bytes, Bytes)> = writes
        .iter()
        .map(|(rev, (k, v))| (*rev, k.clone(), v.clone()))
        .collect();
    assert_eq!(
        seen, want,
        "the watch must deliver every write once, in order"
    );
    let mut last: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    for event in got {
        assert_eq!(event.kind, EventKind::Put);
        let prev = event.prev_kv.as_ref().map(|kv| kv.value.clone());
        assert_eq!(
            prev,
            last.get(&event.kv.key).cloned(),
            "prev_kv of {:?} at {}",
            event.kv.key,
            event.kv.mod_revision
        );
        last.insert(event.kv.key.clone(), event.kv.value.clone());
    }
}

/// A watch whose etcd is SIGKILLed mid-stream (with events written but not yet read) and
/// restarted on the same data and ports resumes by itself: every write exactly once, in order,
/// with its prev_kv, no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_etcd_is_killed() {
    let Some(binary) = etcd_or_skip("watch_resumes_after_etcd_is_killed") else {
        return;
    };
    let mut etcd = Member::single_with(&binary, FAST).await;
    let store = etcd.store().await;
    let mut watch = store
        .watch(WatchRequest::prefix("/r/").with_prev_kv())
        .await
        .expect("watch");
    let mut writes = write(&store, 0, 60).await;
    // Read some of it; the rest is in flight (buffered here or at etcd) when etcd dies.
    let mut responses = collect_events(&mut watch, 20, "before the kill").await;

    etcd.kill();
    etcd.restart().await;
    // Reads are retried until the restarted member answers; writes only when it certainly
    // did not get them, so wait for a read first.
    store.status().await.expect("status after the restart");
    writes.extend(write(&store, 60, 40).await);
    let last = *writes.keys().next_back().expect("writes");

    responses.extend(drain_until(&mut watch, last, "after the restart").await);
    assert_exactly(&events(&responses), &writes);

    // And once more, while the watcher is idle.
    etcd.kill();
    etcd.restart().await;
    store
        .status()
        .await
        .expect("status after the second restart");
    let more = write(&store, 100, 10).await;
    let last = *more.keys().next_back().expect("writes");
    writes.extend(more);
    responses.extend(drain_until(&mut watch, last, "after the second restart").await);
    assert_exactly(&events(&responses), &writes);
}

/// A watch whose next revision is compacted while etcd is unreachable ends with `Compacted`
/// naming that revision and the compact revision, then ends: never silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_compacted_during_an_outage_ends_with_compacted() {
    let Some(binary) = etcd_or_skip("watch_compacted_during_an_outage_ends_with_compacted") else {
        return;
    };
    let mut etcd = Member::single_with(&binary, FAST).await;
    let store = etcd.store().await;
    let mut watch = store
        .watch(WatchRequest::prefix("/r/"))
        .await
        .expect("watch");
    let writes = write(&store, 0, 10).await;
    let seen = *writes.keys().next_back().expect("writes");
    let responses = collect_events(&mut watch, 10, "before the outage").await;
    assert_exactly(&events(&responses), &writes);

    // The outage, from the watch's point of view: etcd is back, but on another client port,
    // where another client writes and compacts.
    let original = etcd.client_port;
    etcd.kill();
    etcd.set_client_port(free_port());
    etcd.restart().await;
    let other = etcd.store().await;
    let later = write(&other, 10, 10).await;
    let compact = *later.keys().next_back().expect("writes");
    other.compact(compact).await.expect("compact");
    drop(other);
    etcd.kill();
    etcd.set_client_port(original);
    etcd.restart().await;

    let item = tokio::time::timeout(GUARD, watch.next()).await;
    match item {
        Ok(Some(Err(StoreError::Compacted {
            requested,
            compact_revision,
        }))) => {
            assert_eq!(
                requested,
                seen + 1,
                "the error names the first revision the watch missed"
            );
            assert_eq!(compact_revision, compact, "and the compact revision");
        }
        other => panic!("expected Compacted after the outage, got {other:?}"),
    }
    match tokio::time::timeout(GUARD, watch.next()).await {
        Ok(None) => {}
        other => panic!("after Compacted the stream must end, got {other:?}"),
    }
}

/// With several endpoints, a dead one is skipped: connect, reads, writes and watches use the
/// next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_skipped() {
    let Some(binary) = etcd_or_skip("a_dead_endpoint_is_skipped") else {
        return;
    };
    let etcd = Member::single_with(&binary, FAST).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let store = EtcdStore::connect(EtcdOptions::new([dead.clone(), etcd.url()]))
        .await
        .expect("connect skips the dead endpoint");
    assert_eq!(store.current_endpoint(), etcd.url());
    let rev = store.put("/a", "1").await.expect("put");
    let mut watch = store
        .watch(WatchRequest::key("/a").from_revision(rev))
        .await
        .expect("watch");
    let first = collect_events(&mut watch, 1, "watch via the live endpoint").await;
    assert_eq!(events(&first)[0].kv.mod_revision, rev);
    let statuses = store.member_statuses().await;
    assert!(statuses[0].1.is_err(), "the dead endpoint has no status");
    let live = statuses[1].1.as_ref().expect("the live endpoint's status");
    assert!(live.is_leader(), "a single member leads: {live:?}");

    let unreachable = EtcdStore::connect(
        EtcdOptions::new([dead]).with_connect_timeout(Duration::from_millis(500)),
    )
    .await;
    assert!(
        unreachable.is_err(),
        "connecting to dead endpoints only fails"
    );
}

/// `progress_notify` passes etcd's periodic notifications through (here every 200 ms, set by
/// `--experimental-watch-progress-notify-interval`), each covering every write so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_progress_notifications() {
    let Some(binary) = etcd_or_skip("periodic_progress_notifications") else {
        return;
    };
    let mut flags = FAST.to_vec();
    flags.extend(["--experimental-watch-progress-notify-interval", "200ms"]);
    let etcd = Member::single_with(&binary, &flags).await;
    let store = etcd.store().await;
    let rev = store.put("/a", "1").await.expect("put");
    let mut watch = store
        .watch(WatchRequest::prefix("/b/").with_progress_notify())
        .await
        .expect("watch");
    for n in 0..3 {
        let resp = orchestra_store::testing::util::next_response(&mut watch, "periodic").await;
        assert!(resp.events.is_empty(), "notification {n} has no events");
        assert!(
            resp.header_revision >= rev,
            "notification {n} covers the last write"
        );
    }
}
