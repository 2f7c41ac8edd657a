//! Checks of watch: ranges, start revisions, order, atomicity, `prev_kv`, filters, progress
//! notifications, compaction, and watchers that fall far behind.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::error::StoreError;
use crate::ext::StoreExt;
use crate::store::Store;
use crate::testing::checker::{ObservedWatch, WatchChecker, WatchStart};
use crate::testing::util::{
    GUARD, assert_quiet, atomic_events, collect_events, drain_until, next_events, next_response,
    ok, watch_error,
};
use crate::types::{
    Event, EventKind, KeyRange, KeyValue, Op, Revision, Txn, WatchRequest, WatchResponse,
};

/// How many writes the slow-watcher checks make while the watcher does not read.
pub const SLOW_WATCHER_WRITES: usize = 5_000;
/// How many of those writes are in flight at once (so that a store with group commit is quick).
const WRITE_CONCURRENCY: usize = 32;

fn key_of(event: &Event) -> String {
    String::from_utf8_lossy(&event.kv.key).into_owned()
}

fn brief(events: &[Event]) -> Vec<(EventKind, String, Revision)> {
    events
        .iter()
        .map(|e| (e.kind, key_of(e), e.kv.mod_revision))
        .collect()
}

async fn watch<S: Store>(store: &S, req: WatchRequest, what: &str) -> crate::watch::WatchStream {
    ok(store.watch(req).await, what)
}

/// A key watch sees only that key, a prefix watch only its keys; put events carry the key as
/// written, delete events the key with its deleting revision and nothing else.
pub async fn watch_key_and_prefix<S: Store>(store: S) {
    let mut key_watch = watch(&store, WatchRequest::key("/w/a"), "watch /w/a").await;
    let mut prefix_watch = watch(&store, WatchRequest::prefix("/w/"), "watch /w/").await;
    let r1 = ok(store.put("/w/a", "1").await, "put /w/a");
    let r2 = ok(store.put("/w/b", "1").await, "put /w/b");
    let r3 = ok(store.put("/x/a", "1").await, "put /x/a (outside)");
    let a = ok(store.get("/w/a").await, "get").expect("exists");
    ok(store.delete("/w/a").await, "delete /w/a");
    let r4 = r3 + 1;
    let r5 = ok(
        store.put("/w/ab", "1").await,
        "put /w/ab (not the key /w/a)",
    );
    assert_eq!(r5, r4 + 1, "each write takes the next revision");

    let responses = collect_events(&mut key_watch, 2, "key watch").await;
    let deleted = KeyValue {
        key: Bytes::from("/w/a"),
        mod_revision: r4,
        ..Default::default()
    };
    assert_eq!(
        atomic_events(&responses, "key watch"),
        vec![
            Event {
                kind: EventKind::Put,
                kv: a.clone(),
                prev_kv: None
            },
            Event {
                kind: EventKind::Delete,
                kv: deleted,
                prev_kv: None
            },
        ],
        "a put event carries the key as written, a delete event the key and the deleting revision only, neither a prev_kv unless asked"
    );
    assert_quiet(
        &mut key_watch,
        r5,
        "key watch: nothing for /w/b, /x/a or /w/ab",
    )
    .await;

    let responses = collect_events(&mut prefix_watch, 4, "prefix watch").await;
    let got = atomic_events(&responses, "prefix watch");
    assert_eq!(
        brief(&got),
        vec![
            (EventKind::Put, "/w/a".into(), r1),
            (EventKind::Put, "/w/b".into(), r2),
            (EventKind::Delete, "/w/a".into(), r4),
            (EventKind::Put, "/w/ab".into(), r5),
        ],
        "prefix watch: every change under /w/ and nothing else, in order"
    );
    assert_quiet(&mut prefix_watch, r5, "prefix watch: nothing more").await;
}

/// A watch from a past revision replays the history from that revision (inclusive), each
/// event exactly once and in order, then continues with new writes.
pub async fn watch_from_past_revision<S: Store>(store: S) {
    let initial = ok(store.status().await, "status").revision;
    let r1 = ok(store.put("/h/a", "1").await, "put");
    let r2 = ok(store.put("/h/b", "1").await, "put");
    ok(
        store
            .txn(Txn::new().and_then([Op::put("/h/a", "2"), Op::put("/h/c", "1")]))
            .await,
        "txn",
    );
    ok(store.delete("/h/b").await, "delete");
    let r5 = ok(store.put("/h/c", "2").await, "put");
    assert_eq!(r5, r1 + 4, "five writes, five revisions");

    let request = WatchRequest::prefix("/h/").from_revision(r2).with_prev_kv();
    let mut stream = watch(&store, request.clone(), "watch from a past revision").await;
    let mut responses = drain_until(&mut stream, r5, "replay from a past revision").await;
    let first = responses
        .iter()
        .flat_map(|r| r.events.first())
        .next()
        .map(|e| e.kv.mod_revision);
    assert_eq!(first, Some(r2), "the start revision is inclusive");

    let r6 = ok(store.put("/h/d", "1").await, "a write after the replay");
    responses.extend(drain_until(&mut stream, r6, "the live tail after the replay").await);
    let checker = ok(
        WatchChecker::from_store(&store, initial + 1, r6).await,
        "history",
    );
    let observed = ObservedWatch {
        name: "prefix /h/ from a past revision".into(),
        request,
        start: WatchStart::At(r2),
        responses,
        until: r6,
    };
    let stats = checker.assert_ok(&observed);
    assert_eq!(
        stats.events, 6,
        "revisions {r2}..={r6} hold six events under /h/"
    );
}

/// A watch with start revision 0 delivers only what happens after it was created.
pub async fn watch_from_now<S: Store>(store: S) {
    ok(store.put("/n/a", "before").await, "put before the watch");
    let mut stream = watch(&store, WatchRequest::prefix("/n/"), "watch from now").await;
    let r2 = ok(store.put("/n/b", "after").await, "put after the watch");
    let resp = next_events(&mut stream, "watch from now").await;
    assert_eq!(
        brief(&resp.events),
        vec![(EventKind::Put, "/n/b".into(), r2)],
        "a watch from now sees only later writes"
    );
    assert_quiet(&mut stream, r2, "watch from now").await;
}

/// The events of one transaction (puts, deletes, a range delete) arrive together in one
/// response (which may hold other revisions too), all at the transaction's revision, with only
/// the watched keys.
pub async fn watch_txn_atomic<S: Store>(store: S) {
    ok(store.put("/t/d", "1").await, "put");
    ok(store.put("/t/r/1", "1").await, "put");
    ok(store.put("/t/r/2", "1").await, "put");
    ok(store.put("/t/r/3", "1").await, "put");
    let mut stream = watch(&store, WatchRequest::prefix("/t/"), "watch /t/").await;
    let t = Txn::new().and_then([
        Op::put("/t/a", "1"),
        Op::put("/outside", "1"),
        Op::delete("/t/d"),
        Op::put("/t/b", "1"),
    ]);
    let r1 = ok(store.txn(t).await, "multi-key txn").header_revision;
    let r2 = ok(
        store
            .txn(Txn::new().and_then([Op::delete_range(KeyRange::prefix("/t/r/"))]))
            .await,
        "range delete",
    )
    .header_revision;

    let responses = collect_events(&mut stream, 6, "txn events").await;
    let mut got = brief(&atomic_events(&responses, "txn events"));
    got.sort_by(|a, b| (a.2, &a.1).cmp(&(b.2, &b.1)));
    assert_eq!(
        got,
        vec![
            (EventKind::Put, "/t/a".into(), r1),
            (EventKind::Put, "/t/b".into(), r1),
            (EventKind::Delete, "/t/d".into(), r1),
            (EventKind::Delete, "/t/r/1".into(), r2),
            (EventKind::Delete, "/t/r/2".into(), r2),
            (EventKind::Delete, "/t/r/3".into(), r2),
        ],
        "every watched event of each transaction, together in one response, at its revision; nothing outside the prefix"
    );
    assert_quiet(&mut stream, r2, "txn watch").await;
}

/// With `prev_kv` a watch gets each key's previous value (none for a create); without it,
/// never.
pub async fn watch_prev_kv<S: Store>(store: S) {
    let mut with = watch(
        &store,
        WatchRequest::key("/k").with_prev_kv(),
        "watch with prev_kv",
    )
    .await;
    let mut without = watch(&store, WatchRequest::key("/k"), "watch without prev_kv").await;
    ok(store.put("/k", "1").await, "put 1");
    let v1 = ok(store.get("/k").await, "get").expect("exists");
    ok(store.put("/k", "2").await, "put 2");
    let v2 = ok(store.get("/k").await, "get").expect("exists");
    ok(store.delete("/k").await, "delete");
    let last = ok(store.status().await, "status").revision;

    let events = atomic_events(
        &collect_events(&mut with, 3, "watch with prev_kv").await,
        "watch with prev_kv",
    );
    let prevs: Vec<Option<KeyValue>> = events.iter().map(|e| e.prev_kv.clone()).collect();
    assert_eq!(
        prevs,
        vec![None, Some(v1), Some(v2)],
        "prev_kv: none for the create, then each previous key"
    );
    assert_quiet(&mut with, last, "watch with prev_kv").await;

    let events = atomic_events(
        &collect_events(&mut without, 3, "watch without prev_kv").await,
        "watch without prev_kv",
    );
    assert!(
        events.iter().all(|e| e.prev_kv.is_none()),
        "no prev_kv unless asked: {events:?}"
    );
    assert_quiet(&mut without, last, "watch without prev_kv").await;
}

/// `filter_puts` leaves only deletes, `filter_deletes` only puts.
pub async fn watch_filters<S: Store>(store: S) {
    let no_puts = WatchRequest {
        filter_puts: true,
        ..WatchRequest::prefix("/f/")
    };
    let no_deletes = WatchRequest {
        filter_deletes: true,
        ..WatchRequest::prefix("/f/")
    };
    let mut deletes = watch(&store, no_puts, "watch without puts").await;
    let mut puts = watch(&store, no_deletes, "watch without deletes").await;
    let p1 = ok(store.put("/f/a", "1").await, "put");
    ok(store.delete("/f/a").await, "delete");
    let d1 = p1 + 1;
    let p2 = ok(store.put("/f/b", "1").await, "put");
    ok(store.delete("/f/b").await, "delete");
    let d2 = p2 + 1;

    let got = atomic_events(
        &collect_events(&mut deletes, 2, "filter_puts").await,
        "filter_puts",
    );
    assert_eq!(
        brief(&got),
        vec![
            (EventKind::Delete, "/f/a".into(), d1),
            (EventKind::Delete, "/f/b".into(), d2)
        ],
        "filter_puts: only the deletes"
    );
    assert_quiet(&mut deletes, d2, "filter_puts").await;
    let got = atomic_events(
        &collect_events(&mut puts, 2, "filter_deletes").await,
        "filter_deletes",
    );
    assert_eq!(
        brief(&got),
        vec![
            (EventKind::Put, "/f/a".into(), p1),
            (EventKind::Put, "/f/b".into(), p2)
        ],
        "filter_deletes: only the puts"
    );
    assert_quiet(&mut puts, d2, "filter_deletes").await;
}

/// `request_progress()` yields a response without events whose header revision covers every
/// write so far, including writes the watch does not select; it comes after pending events;
/// its header is never beyond the store's revision, even for a watch that starts in the future.
pub async fn watch_progress<S: Store>(store: S) {
    let mut stream = watch(&store, WatchRequest::key("/g/a"), "watch /g/a").await;
    let mut last = 0;
    for i in 0..3 {
        last = ok(store.put("/g/other", format!("{i}")).await, "unrelated put");
    }
    assert_quiet(&mut stream, last, "progress after unrelated writes").await;

    let ra = ok(store.put("/g/a", "1").await, "watched put");
    let rb = ok(store.put("/g/other", "x").await, "unrelated put");
    stream.request_progress();
    let resp = next_response(
        &mut stream,
        "the pending event before the progress notification",
    )
    .await;
    assert_eq!(
        brief(&resp.events),
        vec![(EventKind::Put, "/g/a".into(), ra)],
        "a progress notification must come after the events already pending"
    );
    // The next progress notification (the one just requested, or a fresh one) covers rb.
    assert_quiet(&mut stream, rb, "progress after a delivered event").await;

    // A watch that starts in the future: its progress header is still the store's revision,
    // never a revision the store has not reached (a client re-listing at it would fail).
    let mut ahead = watch(
        &store,
        WatchRequest::prefix("/g/").from_revision(rb + 10),
        "watch from a future revision",
    )
    .await;
    ahead.request_progress();
    let resp = next_response(&mut ahead, "progress of a watch from a future revision").await;
    assert!(
        resp.events.is_empty(),
        "no events yet, got {:?}",
        resp.events
    );
    let current = ok(store.status().await, "status").revision;
    assert_eq!(
        resp.header_revision, current,
        "a progress notification's header is the store's revision {current}, not beyond it"
    );
}

/// A watch from below the compact revision fails with `Compacted` naming the requested and
/// the compact revision; a watch from the compact revision itself replays from there.
pub async fn watch_compacted_start<S: Store>(store: S) {
    let r1 = ok(store.put("/z/a", "1").await, "put");
    let r2 = ok(store.put("/z/a", "2").await, "put");
    let r3 = ok(store.put("/z/b", "1").await, "put");
    let r4 = ok(store.put("/z/a", "3").await, "put");
    ok(store.compact(r3).await, "compact");
    for from in [r1, r2] {
        let e = watch_error(
            &store,
            WatchRequest::prefix("/z/").from_revision(from),
            "watch from a compacted revision",
        )
        .await;
        assert_eq!(
            e,
            StoreError::Compacted {
                requested: from,
                compact_revision: r3
            },
            "a watch from revision {from}, below the compact revision {r3}"
        );
    }
    let mut stream = watch(
        &store,
        WatchRequest::prefix("/z/").from_revision(r3),
        "watch from the compact revision",
    )
    .await;
    let responses = drain_until(&mut stream, r4, "watch from the compact revision").await;
    let events: Vec<Event> = responses
        .into_iter()
        .flat_map(|r| r.events.to_vec())
        .collect();
    assert_eq!(
        brief(&events),
        vec![
            (EventKind::Put, "/z/b".into(), r3),
            (EventKind::Put, "/z/a".into(), r4)
        ],
        "a watch from the compact revision replays from it, inclusive"
    );
}

/// Write `count` keys under `prefix` (32 writes in flight at a time); returns each write's
/// revision with its key and value, in revision order.
async fn write_many<S: Store>(
    store: &S,
    prefix: &str,
    count: usize,
) -> BTreeMap<Revision, (Bytes, Bytes)> {
    let writes = futures::stream::iter(0..count)
        .map(|i| async move {
            let key = Bytes::from(format!("{prefix}{:02}", i % 64));
            let value = Bytes::from(format!("value {i}"));
            let rev = store.put(key.clone(), value.clone()).await?;
            Ok::<_, StoreError>((rev, (key, value)))
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await;
    let writes = ok(writes, "many writes");
    let map: BTreeMap<_, _> = writes.into_iter().collect();
    assert_eq!(
        map.len(),
        count,
        "{count} writes must take {count} distinct revisions"
    );
    map
}

/// Compare what a slow watcher got with the writes: one event per write, in revision order,
/// each with its key and value, starting at the first write.
fn assert_matches_writes(
    events: &[Event],
    writes: &BTreeMap<Revision, (Bytes, Bytes)>,
    what: &str,
) {
    for (i, (event, (rev, (key, value)))) in events.iter().zip(writes).enumerate() {
        assert_eq!(
            (
                event.kind,
                event.kv.mod_revision,
                &event.kv.key,
                &event.kv.value
            ),
            (EventKind::Put, *rev, key, value),
            "{what}: event #{i} must be the write at revision {rev}"
        );
    }
}

/// A watcher that does not read while [`SLOW_WATCHER_WRITES`] writes happen still gets every
/// event afterwards, in order, exactly once (the store catches it up from its history).
pub async fn watch_slow_catches_up<S: Store>(store: S) {
    let mut slow = watch(&store, WatchRequest::prefix("/s/"), "slow watcher").await;
    let writes = write_many(&store, "/s/", SLOW_WATCHER_WRITES).await;
    let last = *writes.keys().next_back().expect("writes");
    let responses = drain_until(&mut slow, last, "slow watcher catching up").await;
    let events: Vec<Event> = responses
        .iter()
        .flat_map(|r| r.events.iter().cloned())
        .collect();
    assert_eq!(
        events.len(),
        writes.len(),
        "the slow watcher must get one event per write, no more, no less"
    );
    assert_matches_writes(&events, &writes, "slow watcher");
    let mut previous = 0;
    for resp in responses.iter().filter(|r| !r.events.is_empty()) {
        let first = resp.events[0].kv.mod_revision;
        assert!(
            first > previous,
            "responses must move forward: {first} after {previous}"
        );
        previous = resp.events.last().map_or(previous, |e| e.kv.mod_revision);
    }
}

/// A watcher that does not read while [`SLOW_WATCHER_WRITES`] writes happen, and whose
/// history is then compacted away, gets a gap-free prefix of the events and then a
/// `Compacted` error naming the compact revision, and its stream ends.
pub async fn watch_slow_compacted<S: Store>(store: S) {
    let mut slow = watch(&store, WatchRequest::prefix("/s/"), "slow watcher").await;
    let writes = write_many(&store, "/s/", SLOW_WATCHER_WRITES).await;
    let last = *writes.keys().next_back().expect("writes");
    ok(
        store.compact(last).await,
        "compact every revision the watcher still needs",
    );
    let mut events: Vec<Event> = Vec::new();
    let error = loop {
        match tokio::time::timeout(GUARD, slow.next()).await {
            Err(_) => panic!(
                "slow watcher after compaction: neither events nor an error within {GUARD:?}"
            ),
            Ok(None) => panic!(
                "slow watcher after compaction: the stream ended without a Compacted error after {} events",
                events.len()
            ),
            Ok(Some(Ok(WatchResponse { events: batch, .. }))) => {
                events.extend(batch.iter().cloned())
            }
            Ok(Some(Err(err))) => break err,
        }
    };
    assert!(
        events.len() < writes.len(),
        "slow watcher after compaction: it got all {} events although its history was compacted; a store must not buffer that many events per watcher",
        writes.len()
    );
    assert_matches_writes(&events, &writes, "slow watcher after compaction");
    let delivered = events.last().map_or(0, |e| e.kv.mod_revision);
    match error {
        StoreError::Compacted {
            requested,
            compact_revision,
        } => {
            assert_eq!(
                compact_revision, last,
                "the error must name the compact revision"
            );
            assert!(
                requested > delivered && requested < compact_revision,
                "the error must name a revision the watcher missed: {requested} is not in {}..{compact_revision}",
                delivered + 1
            );
        }
        other => panic!("slow watcher after compaction: expected Compacted, got {other:?}"),
    }
    match tokio::time::timeout(GUARD, slow.next()).await {
        Ok(None) => {}
        other => panic!("after its Compacted error the stream must end, got {other:?}"),
    }
}
