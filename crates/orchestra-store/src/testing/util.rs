//! Helpers the checks share, public so that an implementation's own tests can use them too:
//! reading watch streams with a failure guard, draining a stream up to a revision, and
//! snapshots that prove a rejected request changed nothing.
//!
//! Every wait here is bounded by [`GUARD`]: the guard only turns a hang into a clear failure,
//! no check ever relies on it elapsing. Under paused tokio time (`start_paused`) the guard
//! elapses as soon as the runtime has nothing left to do, so a missing event fails at once.

use std::time::Duration;

use futures::StreamExt;

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{KeyRange, KeyValue, RangeRequest, Revision, WatchRequest, WatchResponse};
use crate::watch::WatchStream;

/// How long any single wait of the suite may take before it is reported as a hang.
pub const GUARD: Duration = Duration::from_secs(30);

/// Every key in the store at `revision` (0: the latest), in key order.
pub async fn range_all<S: Store + ?Sized>(
    store: &S,
    revision: Revision,
) -> Result<Vec<KeyValue>, StoreError> {
    let req = RangeRequest::range(KeyRange::prefix("")).at_revision(revision);
    Ok(store.range(req).await?.kvs)
}

/// What a rejected request must leave untouched: the revision and every key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's revision.
    pub revision: Revision,
    /// The store's compact revision.
    pub compact_revision: Revision,
    /// Every live key, in key order.
    pub kvs: Vec<KeyValue>,
}

impl Snapshot {
    /// Take a snapshot of the store (panics if the store cannot answer).
    pub async fn take<S: Store + ?Sized>(store: &S) -> Snapshot {
        let status = store
            .status()
            .await
            .expect("status() of a healthy store must succeed");
        let kvs = range_all(store, 0)
            .await
            .expect("a full range of a healthy store must succeed");
        Snapshot {
            revision: status.revision,
            compact_revision: status.compact_revision,
            kvs,
        }
    }

    /// Panic unless the store still matches this snapshot; `what` names the request that was
    /// just rejected.
    pub async fn assert_unchanged<S: Store + ?Sized>(&self, store: &S, what: &str) {
        let now = Snapshot::take(store).await;
        assert_eq!(
            now.revision, self.revision,
            "{what}: a rejected request must not change the revision"
        );
        assert_eq!(
            now.compact_revision, self.compact_revision,
            "{what}: a rejected request must not change the compact revision"
        );
        assert_eq!(
            now.kvs, self.kvs,
            "{what}: a rejected request must not change any key"
        );
    }
}

/// The next item of a watch stream, which must be a response; panics (naming `what`) on an
/// error, on the end of the stream, or when nothing arrives within [`GUARD`].
pub async fn next_response(stream: &mut WatchStream, what: &str) -> WatchResponse {
    match tokio::time::timeout(GUARD, stream.next()).await {
        Err(_) => panic!("{what}: expected a watch response, none arrived within {GUARD:?}"),
        Ok(None) => panic!("{what}: expected a watch response, the stream ended"),
        Ok(Some(Err(err))) => panic!("{what}: expected a watch response, the stream failed: {err}"),
        Ok(Some(Ok(resp))) => resp,
    }
}

/// The next response that carries events, skipping progress notifications (which a store may
/// send at any time); panics like [`next_response`].
pub async fn next_events(stream: &mut WatchStream, what: &str) -> WatchResponse {
    loop {
        let resp = next_response(stream, what).await;
        if !resp.events.is_empty() {
            return resp;
        }
    }
}

/// Read responses until at least `count` events have arrived (skipping progress
/// notifications); returns the responses. A store may put several revisions in one response,
/// so callers should not assume one revision per response.
pub async fn collect_events(
    stream: &mut WatchStream,
    count: usize,
    what: &str,
) -> Vec<WatchResponse> {
    let mut responses = Vec::new();
    let mut events = 0;
    while events < count {
        let resp = next_events(stream, what).await;
        events += resp.events.len();
        responses.push(resp);
    }
    responses
}

/// The events of `responses`, in order, after checking that no revision's events were split
/// over two responses (a transaction's events arrive together) and that revisions only grow.
#[track_caller]
pub fn atomic_events(responses: &[WatchResponse], what: &str) -> Vec<crate::types::Event> {
    let mut seen: Vec<(Revision, usize)> = Vec::new();
    for (index, resp) in responses.iter().enumerate() {
        for event in resp.events.iter() {
            let revision = event.kv.mod_revision;
            match seen.last() {
                Some(&(last, at)) if last == revision && at != index => panic!(
                    "{what}: the events of revision {revision} were split over responses #{at} and #{index}"
                ),
                Some(&(last, _)) if last > revision => panic!(
                    "{what}: an event at revision {revision} came after one at revision {last}"
                ),
                Some(&(last, _)) if last == revision => {}
                _ => seen.push((revision, index)),
            }
        }
    }
    responses
        .iter()
        .flat_map(|r| r.events.iter().cloned())
        .collect()
}

/// Prove that a watch has nothing more to deliver up to `revision`: ask for a progress
/// notification and require that the very next response is one, with a header revision of at
/// least `revision`. Panics if an event arrives first.
pub async fn assert_quiet(stream: &mut WatchStream, revision: Revision, what: &str) {
    stream.request_progress();
    let resp = next_response(stream, what).await;
    assert!(
        resp.events.is_empty(),
        "{what}: expected no more events up to revision {revision} (a progress notification), got {:?}",
        resp.events
    );
    assert!(
        resp.header_revision >= revision,
        "{what}: a progress notification must cover every write so far: header revision {} < {revision}",
        resp.header_revision
    );
}

/// Read a watch until a progress notification proves that every event up to `revision` has
/// been delivered; returns every response read (events and progress notifications, in order).
/// Panics on an error, on the end of the stream, or on a hang.
pub async fn drain_until(
    stream: &mut WatchStream,
    revision: Revision,
    what: &str,
) -> Vec<WatchResponse> {
    let mut responses = Vec::new();
    stream.request_progress();
    loop {
        let resp = next_response(stream, what).await;
        let done = resp.events.is_empty() && resp.header_revision >= revision;
        let progress = resp.events.is_empty();
        responses.push(resp);
        if done {
            return responses;
        }
        if progress {
            // An older progress notification (a periodic one, or one a store answered before
            // catching up): ask again.
            stream.request_progress();
        }
    }
}

/// The error a watch fails with, whether `watch()` itself returns it or the stream yields it
/// as its first item (a remote store may only learn of it from the server). Panics when the
/// watch succeeds.
pub async fn watch_error<S: Store + ?Sized>(
    store: &S,
    request: WatchRequest,
    what: &str,
) -> StoreError {
    match store.watch(request).await {
        Err(err) => err,
        Ok(mut stream) => match tokio::time::timeout(GUARD, stream.next()).await {
            Ok(Some(Err(err))) => err,
            Ok(Some(Ok(resp))) => {
                panic!("{what}: expected the watch to fail, it delivered {resp:?}")
            }
            Ok(None) => {
                panic!("{what}: expected the watch to fail with an error, the stream just ended")
            }
            Err(_) => panic!("{what}: expected the watch to fail, it stayed open for {GUARD:?}"),
        },
    }
}

/// Unwrap a store result, panicking with `what` and the error.
#[track_caller]
pub fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: expected success, got error: {err} ({err:?})"),
    }
}

/// Unwrap a store error, panicking with `what` when the call succeeded.
#[track_caller]
pub fn err<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> StoreError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(err) => err,
    }
}
