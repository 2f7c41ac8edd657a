//! etcd's watch guarantees (ordered, unique, atomic, reliable, resumable) under a random
//! concurrent workload, checked by `testing::WatchChecker` for every embedded store; and the
//! checker's own tests: each kind of broken stream is caught.

#![cfg(feature = "testing")]

use orchestra_store::testing::{
    ObservedWatch, Violation, WatchChecker, WatchStart, WatchWorkload, run_watch_workload, util,
};
use orchestra_store::{KeyRange, MemStore, Op, Store, StoreExt, Txn, WatchRequest, WatchResponse};
use std::sync::Arc;

async fn workload<S: Store>(store: S, config: WatchWorkload) {
    let report = run_watch_workload(Arc::new(store), config).await;
    eprintln!("seed {}: {report:?}", config.seed);
    assert!(
        report.last_revision - report.first_revision > 100,
        "the workload must write: {report:?}"
    );
    assert!(
        report.events_checked > 1_000,
        "the watchers must see events: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_store_keeps_watch_guarantees() {
    for seed in 1..=6 {
        let config = WatchWorkload {
            seed,
            writers: 6,
            txns_per_writer: 400,
            keys: 16,
        };
        workload(MemStore::new(), config).await;
    }
}

/// The same under paused time on one thread, where the interleavings come from the seed alone.
#[tokio::test(start_paused = true)]
async fn mem_store_keeps_watch_guarantees_single_threaded() {
    for seed in 10..=12 {
        workload(
            MemStore::new(),
            WatchWorkload {
                seed,
                ..WatchWorkload::default()
            },
        )
        .await;
    }
}

#[cfg(feature = "disk")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_store_keeps_watch_guarantees() {
    for seed in 20..=21 {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = orchestra_store::DiskStore::open(dir.path())
            .await
            .expect("open a DiskStore");
        let config = WatchWorkload {
            seed,
            writers: 6,
            txns_per_writer: 150,
            keys: 12,
        };
        workload(orchestra_store::testing::Guarded::new(store, dir), config).await;
    }
}

/// A small real history and a real watch of it, for the checker's own tests: a prefix watch
/// with `prev_kv` from the first write, drained to the last.
async fn history() -> (WatchChecker, ObservedWatch) {
    let store = MemStore::new();
    let first = store.status().await.expect("status").revision + 1;
    store.put("/a/1", "x").await.expect("put");
    store.put("/a/2", "x").await.expect("put");
    let t = Txn::new().and_then([
        Op::put("/a/1", "y"),
        Op::put("/a/3", "y"),
        Op::put("/b/1", "y"),
    ]);
    store.txn(t).await.expect("txn");
    store.delete("/a/2").await.expect("delete");
    let t = Txn::new().and_then([
        Op::delete_range(KeyRange::prefix("/a/")),
        Op::put("/b/2", "z"),
    ]);
    store.txn(t).await.expect("txn");
    let last = store.put("/a/1", "w").await.expect("put");
    let request = WatchRequest::prefix("/a/")
        .from_revision(first)
        .with_prev_kv();
    let mut stream = store.watch(request.clone()).await.expect("watch");
    let responses = util::drain_until(&mut stream, last, "checker history").await;
    let checker = WatchChecker::from_store(&store, first, last)
        .await
        .expect("history");
    let observed = ObservedWatch {
        name: "prefix /a/".into(),
        request,
        start: WatchStart::At(first),
        responses,
        until: last,
    };
    (checker, observed)
}

/// The watch's responses, one revision per response (so that tests can move revisions).
fn per_revision(responses: &[WatchResponse]) -> Vec<WatchResponse> {
    let mut out: Vec<WatchResponse> = Vec::new();
    for event in responses.iter().flat_map(|r| r.events.iter()) {
        match out.last_mut() {
            Some(last) if last.header_revision == event.kv.mod_revision => {
                let mut events = last.events.to_vec();
                events.push(event.clone());
                last.events = events.into();
            }
            _ => out.push(WatchResponse {
                header_revision: event.kv.mod_revision,
                events: Arc::new([event.clone()]),
            }),
        }
    }
    out
}

fn broken(observed: &ObservedWatch, responses: Vec<WatchResponse>) -> ObservedWatch {
    ObservedWatch {
        responses,
        ..observed.clone()
    }
}

fn kind(checker: &WatchChecker, watch: &ObservedWatch) -> Violation {
    match checker.check(watch) {
        Ok(stats) => panic!(
            "the checker accepted a broken stream ({stats:?}): {:?}",
            watch.responses
        ),
        Err(violation) => violation.kind,
    }
}

#[tokio::test]
async fn checker_accepts_a_correct_stream_and_its_history_matches_the_watchers() {
    let (checker, observed) = history().await;
    assert!(
        checker.empty_revisions().is_empty(),
        "every revision of the history has a change"
    );
    let stats = checker.assert_ok(&observed);
    assert_eq!(stats.events, 8, "the history has eight events under /a/");
    checker.assert_ok(&broken(&observed, per_revision(&observed.responses)));
    // A history built from a watch over every key with prev_kv equals the ranged one.
    let from_events =
        WatchChecker::from_responses(checker.first(), checker.last(), &observed.responses);
    for (revision, events) in checker.history() {
        let under_a: Vec<_> = events
            .iter()
            .filter(|e| e.kv.key.starts_with(b"/a/"))
            .cloned()
            .collect();
        assert_eq!(
            from_events.history()[revision],
            under_a,
            "revision {revision}"
        );
    }
}

#[tokio::test]
async fn checker_catches_a_gap() {
    let (checker, observed) = history().await;
    let mut responses = per_revision(&observed.responses);
    responses.remove(2);
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Gap
    );
    // A single missing event of a multi-event revision is a mismatch of that revision.
    let mut responses = per_revision(&observed.responses);
    let big = responses
        .iter()
        .position(|r| r.events.len() > 1)
        .expect("a multi-event revision");
    let mut events = responses[big].events.to_vec();
    events.pop();
    responses[big].events = events.into();
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Mismatch
    );
}

#[tokio::test]
async fn checker_catches_a_duplicate() {
    let (checker, observed) = history().await;
    let mut responses = per_revision(&observed.responses);
    let big = responses
        .iter()
        .position(|r| r.events.len() > 1)
        .expect("a multi-event revision");
    let again = responses[big].events[0].clone();
    let mut events = responses[big].events.to_vec();
    events.push(again);
    responses[big].events = events.into();
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Duplicate
    );
    let mut responses = per_revision(&observed.responses);
    let again = responses[1].clone();
    responses.insert(2, again);
    let violation = kind(&checker, &broken(&observed, responses));
    assert!(
        matches!(violation, Violation::Split | Violation::Unordered),
        "a response delivered twice: {violation:?}"
    );
}

#[tokio::test]
async fn checker_catches_disorder() {
    let (checker, observed) = history().await;
    let mut responses = per_revision(&observed.responses);
    responses.swap(1, 2);
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Unordered
    );
    let mut events: Vec<_> = observed
        .responses
        .iter()
        .flat_map(|r| r.events.to_vec())
        .collect();
    events.swap(0, 1);
    let one = WatchResponse {
        header_revision: checker.last(),
        events: events.into(),
    };
    assert_eq!(
        kind(&checker, &broken(&observed, vec![one])),
        Violation::Unordered
    );
}

#[tokio::test]
async fn checker_catches_a_split_transaction() {
    let (checker, observed) = history().await;
    let mut responses = per_revision(&observed.responses);
    let big = responses
        .iter()
        .position(|r| r.events.len() > 1)
        .expect("a multi-event revision");
    let mut head = responses[big].events.to_vec();
    let tail = head.split_off(1);
    responses[big].events = head.into();
    let header = responses[big].header_revision;
    responses.insert(
        big + 1,
        WatchResponse {
            header_revision: header,
            events: tail.into(),
        },
    );
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Split
    );
}

#[tokio::test]
async fn checker_catches_wrong_events() {
    let (checker, observed) = history().await;
    let mut responses = per_revision(&observed.responses);
    let mut events = responses[0].events.to_vec();
    events[0].kv.value = "tampered".into();
    responses[0].events = events.into();
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Mismatch
    );
    let mut responses = per_revision(&observed.responses);
    let with_prev = responses
        .iter()
        .position(|r| r.events.iter().any(|e| e.prev_kv.is_some()))
        .expect("an update");
    let mut events = responses[with_prev].events.to_vec();
    for event in &mut events {
        event.prev_kv = None;
    }
    responses[with_prev].events = events.into();
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Mismatch,
        "prev_kv missing although asked"
    );
    let without = ObservedWatch {
        request: WatchRequest {
            prev_kv: false,
            ..observed.request.clone()
        },
        ..observed.clone()
    };
    assert_eq!(
        kind(&checker, &without),
        Violation::Mismatch,
        "prev_kv delivered although not asked"
    );
    let outside = ObservedWatch {
        request: WatchRequest::prefix("/a/1")
            .from_revision(checker.first())
            .with_prev_kv(),
        ..observed.clone()
    };
    assert_eq!(
        kind(&checker, &outside),
        Violation::Unexpected,
        "events outside the watched range"
    );
}

#[tokio::test]
async fn checker_catches_bad_headers_and_lying_progress() {
    let (checker, observed) = history().await;
    let mut responses = per_revision(&observed.responses);
    responses[1].header_revision -= 1;
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Header
    );
    let mut responses = per_revision(&observed.responses);
    let claimed = responses[2].header_revision;
    responses.insert(
        1,
        WatchResponse {
            header_revision: claimed,
            events: Arc::new([]),
        },
    );
    assert_eq!(
        kind(&checker, &broken(&observed, responses)),
        Violation::Progress
    );
}

#[tokio::test]
async fn checker_handles_watches_from_now() {
    let (checker, observed) = history().await;
    let responses = per_revision(&observed.responses);
    let third = responses[2].header_revision;
    let tail = broken(&observed, responses[2..].to_vec());
    // Created somewhere between the first revision and the third: the tail is correct.
    let from_now = ObservedWatch {
        start: WatchStart::Between(checker.first(), third),
        ..tail.clone()
    };
    checker.assert_ok(&from_now);
    // Created before the second revision: missing it is a gap.
    let early = ObservedWatch {
        start: WatchStart::Between(checker.first(), third - 1),
        ..tail
    };
    assert_eq!(kind(&checker, &early), Violation::Gap);
}

#[tokio::test]
async fn checker_catches_a_resumed_watch_that_is_not_the_tail() {
    let (checker, full) = history().await;
    let responses = per_revision(&full.responses);
    let from = responses[3].header_revision;
    let resumed = ObservedWatch {
        name: "resumed".into(),
        request: full.request.clone().from_revision(from),
        start: WatchStart::At(from),
        responses: responses[3..].to_vec(),
        until: full.until,
    };
    checker.assert_ok(&resumed);
    WatchChecker::check_resumed(&full, &resumed).expect("the tail is resumable");
    let mut wrong = resumed.clone();
    let mut events = wrong.responses[0].events.to_vec();
    events[0].kv.value = "other".into();
    wrong.responses[0].events = events.into();
    let violation = WatchChecker::check_resumed(&full, &wrong).expect_err("a different tail");
    assert_eq!(violation.kind, Violation::Resume);
    let mut short = resumed;
    short.responses.pop();
    assert_eq!(
        WatchChecker::check_resumed(&full, &short)
            .expect_err("a shorter tail")
            .kind,
        Violation::Resume
    );
}
