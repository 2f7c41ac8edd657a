//! The watch hub: the event log since the last compaction, read by every watch stream.
//!
//! A watch stream keeps its own cursor (the next revision it must deliver) and reads whole
//! revisions from the shared log, so a writer never waits for a watcher and never copies an
//! event per watcher: publishing a revision appends one entry (the events, shared) and wakes
//! the parked watchers that some event of that revision concerns. A woken watcher leaves the
//! parked set until it has read everything visible, so however many revisions are published
//! meanwhile it is woken once, and reads them all in one response: a watcher that falls
//! behind gets bigger responses and fewer wake-ups, which is what lets a few cores serve
//! thousands of watchers. Only compaction of the revisions a watcher still needs ends its
//! watch (`Compacted`).
//!
//! Parked watchers are grouped by what they match (range and filters), as etcd's watcher
//! groups are: the writer tests a revision's events once per group, not once per watcher,
//! takes a matching group's whole parked set in one swap, and wakes its members after
//! releasing the lock, so that watchers parking meanwhile never wait behind the wake-ups.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use parking_lot::{Mutex, RwLock};

use crate::error::StoreError;
use crate::types::{Event, KeyRange, Revision, WatchRequest, WatchResponse};
use crate::watch::{WatchControl, WatchStream};

/// The most revisions one read of the log scans, so that the read lock is held briefly.
const SCAN_REVISIONS: usize = 1024;
/// The most events one response carries (whole revisions are never split).
const RESPONSE_EVENTS: usize = 4096;

/// The events of revisions `first_revision ..= visible`, one entry per revision.
struct Log {
    entries: VecDeque<Arc<[Event]>>,
    first_revision: Revision,
    compact_revision: Revision,
    visible: Revision,
    closed: bool,
}

/// What decides whether an event concerns a watch: watches with equal keys share a group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct MatchKey {
    range: KeyRange,
    filter_puts: bool,
    filter_deletes: bool,
}

impl MatchKey {
    fn of(request: &WatchRequest) -> Self {
        MatchKey {
            range: request.range.clone(),
            filter_puts: request.filter_puts,
            filter_deletes: request.filter_deletes,
        }
    }
}

type IdMap<V> = HashMap<u64, V, foldhash::fast::RandomState>;

/// The watches that match alike, and those of them parked until a revision concerns them.
struct Group {
    /// A request with the group's range and filters, to test events against.
    matcher: WatchRequest,
    /// Streams in the group (the group goes when the last one does).
    members: usize,
    /// The parked watchers' wakers, by watch id.
    parked: IdMap<Waker>,
    /// An emptied parked set handed back after a wake-up, reused so that the next round of
    /// parking does not regrow a table.
    spare: IdMap<Waker>,
}

/// The event log and the idle watchers of one store.
pub(crate) struct Hub {
    log: RwLock<Log>,
    visible: AtomicI64,
    /// Set with the log's `closed`, so that a caught-up watcher can see it without the lock.
    closed: AtomicBool,
    groups: Mutex<HashMap<MatchKey, Group>>,
    /// The watch streams in every group (changed under the `groups` lock), so that a publish
    /// with no watch at all skips that lock. Sequentially consistent with `visible`: a stream
    /// counted after a publish looked reads `visible` after the publish stored it, so it has
    /// nothing to be woken for.
    streams: AtomicUsize,
    next_id: AtomicU64,
    progress_interval: Duration,
}

impl Hub {
    /// The hub of an empty store: revision 1, which has no events.
    pub(crate) fn new(progress_interval: Duration) -> Self {
        Hub {
            log: RwLock::new(Log {
                entries: VecDeque::from([Arc::from(Vec::new())]),
                first_revision: 1,
                compact_revision: 0,
                visible: 1,
                closed: false,
            }),
            visible: AtomicI64::new(1),
            closed: AtomicBool::new(false),
            groups: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            progress_interval,
        }
    }

    /// The newest revision readers may see.
    pub(crate) fn visible(&self) -> Revision {
        self.visible.load(Ordering::SeqCst)
    }

    /// Load history read back from disk: the events of revisions `first ..= visible`, one entry
    /// per revision.
    pub(crate) fn restore(&self, first: Revision, entries: Vec<Arc<[Event]>>, visible: Revision) {
        let mut log = self.log.write();
        log.first_revision = first;
        log.entries = entries.into();
        log.visible = visible;
        self.visible.store(visible, Ordering::Release);
    }

    /// Make `revision` visible and wake the idle watchers it concerns. Revisions must be
    /// published in order, each exactly once.
    pub(crate) fn publish(&self, revision: Revision, events: Arc<[Event]>) {
        {
            let mut log = self.log.write();
            debug_assert_eq!(
                revision,
                log.visible + 1,
                "revisions are published in order"
            );
            if log.entries.is_empty() {
                log.first_revision = revision;
            }
            log.entries.push_back(events.clone());
            log.visible = revision;
            self.visible.store(revision, Ordering::SeqCst);
        }
        if events.is_empty() || self.streams.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut woken: Vec<(MatchKey, IdMap<Waker>)> = Vec::new();
        {
            let mut groups = self.groups.lock();
            for (key, group) in groups.iter_mut() {
                if group.parked.is_empty() || !events.iter().any(|e| group.matcher.matches(e)) {
                    continue;
                }
                let spare = std::mem::take(&mut group.spare);
                woken.push((key.clone(), std::mem::replace(&mut group.parked, spare)));
            }
        }
        if woken.is_empty() {
            return;
        }
        for (key, mut parked) in woken {
            for (_, waker) in parked.drain() {
                waker.wake();
            }
            if let Some(group) = self.groups.lock().get_mut(&key)
                && group.spare.capacity() < parked.capacity()
            {
                group.spare = parked;
            }
        }
    }

    /// Call `f` with each revision of `from ..= to` and its events, in order; `Compacted` when
    /// the log no longer holds `from`.
    pub(crate) fn for_each_revision(
        &self,
        from: Revision,
        to: Revision,
        mut f: impl FnMut(Revision, &[Event]),
    ) -> Result<(), StoreError> {
        let log = self.log.read();
        let from = from.max(1);
        if from < log.first_revision && from <= to {
            return Err(StoreError::Compacted {
                requested: from,
                compact_revision: log.compact_revision.max(log.first_revision),
            });
        }
        for revision in from..=to.min(log.visible) {
            if let Some(entry) = usize::try_from(revision - log.first_revision)
                .ok()
                .and_then(|index| log.entries.get(index))
            {
                f(revision, entry);
            }
        }
        Ok(())
    }

    /// Drop the log below `revision`.
    pub(crate) fn compact(&self, revision: Revision) {
        let mut log = self.log.write();
        while log.first_revision < revision && log.entries.len() > 1 {
            log.entries.pop_front();
            log.first_revision += 1;
        }
        log.compact_revision = revision;
    }

    /// End every watch (the store is shutting down).
    pub(crate) fn close(&self) {
        self.log.write().closed = true;
        self.closed.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self
            .groups
            .lock()
            .values_mut()
            .flat_map(|group| group.parked.drain().map(|(_, waker)| waker))
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Start a watch.
    pub(crate) fn watch(
        self: &Arc<Self>,
        request: WatchRequest,
    ) -> Result<WatchStream, StoreError> {
        let log = self.log.read();
        if log.closed {
            return Err(StoreError::Closed);
        }
        let start = if request.start_revision <= 0 {
            log.visible + 1
        } else {
            request.start_revision
        };
        if start < log.compact_revision || start < log.first_revision {
            return Err(StoreError::Compacted {
                requested: start,
                compact_revision: log.compact_revision.max(log.first_revision),
            });
        }
        drop(log);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = MatchKey::of(&request);
        self.groups
            .lock()
            .entry(key.clone())
            .or_insert_with(|| Group {
                matcher: WatchRequest {
                    range: key.range.clone(),
                    filter_puts: key.filter_puts,
                    filter_deletes: key.filter_deletes,
                    ..Default::default()
                },
                members: 0,
                parked: IdMap::default(),
                spare: IdMap::default(),
            })
            .members += 1;
        self.streams.fetch_add(1, Ordering::SeqCst);
        let wants_progress = Arc::new(AtomicBool::new(false));
        let ticker = request.progress_notify.then(|| {
            let mut interval = tokio::time::interval(self.progress_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.reset();
            interval
        });
        let stream = HubStream {
            hub: self.clone(),
            id,
            key: key.clone(),
            request,
            next: start,
            wants_progress: wants_progress.clone(),
            ticker,
            done: false,
        };
        let control = ProgressRequest {
            hub: self.clone(),
            id,
            key,
            wants_progress,
        };
        Ok(WatchStream::new(stream, control))
    }

    /// Read what a watcher at `next` has to receive.
    fn read(&self, request: &WatchRequest, next: Revision) -> Step {
        // A caught-up watcher (most polls after a response) needs no lock to learn that there
        // is nothing more: every watcher taking the log's read lock twice per wake-up made
        // its lock word the busiest cache line of a large fan-out.
        let visible = self.visible();
        if next > visible && !self.closed.load(Ordering::Acquire) {
            return Step::CaughtUp(visible);
        }
        let log = self.log.read();
        if log.closed {
            return Step::End(None);
        }
        if next < log.first_revision {
            let compact_revision = log.compact_revision.max(log.first_revision);
            return Step::End(Some(StoreError::Compacted {
                requested: next,
                compact_revision,
            }));
        }
        if next > log.visible {
            return Step::CaughtUp(log.visible);
        }
        // Most watches take an event or so of each revision they read: size the events for
        // that, so that a watcher catching up does not regrow (and copy) them several times.
        let pending = usize::try_from(log.visible - next + 1).unwrap_or(1);
        let mut events: Vec<Event> = Vec::new();
        // The one revision taken whole so far, if that is all the response holds: shared
        // with the log instead of copied (a caught-up watcher's usual read).
        let mut whole: Option<&Arc<[Event]>> = None;
        let mut header_revision = 0;
        let mut rev = next;
        let mut scanned = 0;
        while rev <= log.visible
            && scanned < SCAN_REVISIONS
            && events.len() + whole.map_or(0, |w| w.len()) < RESPONSE_EVENTS
        {
            let entry = &log.entries[(rev - log.first_revision) as usize];
            let taken = entry.iter().filter(|e| request.matches(e)).count();
            if taken > 0 {
                let as_is = taken == entry.len()
                    && (request.prev_kv || entry.iter().all(|e| e.prev_kv.is_none()));
                if as_is && events.is_empty() && whole.is_none() {
                    whole = Some(entry);
                } else {
                    if let Some(w) = whole.take() {
                        events.reserve(pending.min(SCAN_REVISIONS));
                        events.extend(w.iter().map(|e| strip(e, request.prev_kv)));
                    }
                    // Every watcher of a revision clones its events from the same log entry,
                    // so each refcount bump here is contended: skip prev_kv's two unless the
                    // watch asked for it.
                    events.extend(
                        entry
                            .iter()
                            .filter(|e| request.matches(e))
                            .map(|e| strip(e, request.prev_kv)),
                    );
                }
                header_revision = rev;
            }
            rev += 1;
            scanned += 1;
        }
        let response = WatchResponse {
            header_revision,
            events: match whole {
                Some(w) => w.clone(),
                None => events.into(),
            },
        };
        Step::Read {
            response,
            next: rev,
        }
    }

    /// Park a caught-up watcher until a revision concerns it.
    fn wait(&self, key: &MatchKey, id: u64, waker: &Waker) {
        if let Some(group) = self.groups.lock().get_mut(key) {
            group.parked.insert(id, waker.clone());
        }
    }

    /// Wake a parked watcher (for a progress request).
    fn wake(&self, key: &MatchKey, id: u64) {
        let waker = self
            .groups
            .lock()
            .get_mut(key)
            .and_then(|group| group.parked.remove(&id));
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Unpark a watcher that will not wait again.
    fn forget(&self, key: &MatchKey, id: u64) {
        if let Some(group) = self.groups.lock().get_mut(key) {
            group.parked.remove(&id);
        }
    }

    /// A stream is gone: unpark it, and drop its group if it was the last member.
    fn leave(&self, key: &MatchKey, id: u64) {
        let mut groups = self.groups.lock();
        if let Some(group) = groups.get_mut(key) {
            group.parked.remove(&id);
            group.members -= 1;
            self.streams.fetch_sub(1, Ordering::SeqCst);
            if group.members == 0 {
                groups.remove(key);
            }
        }
    }
}

/// A copy of `e` for a watch, without `prev_kv` unless the watch asked for it.
fn strip(e: &Event, prev_kv: bool) -> Event {
    Event {
        kind: e.kind,
        kv: e.kv.clone(),
        prev_kv: if prev_kv { e.prev_kv.clone() } else { None },
    }
}

enum Step {
    /// Events (possibly none, when the scanned revisions did not concern the watch) and the
    /// next revision to read.
    Read {
        response: WatchResponse,
        next: Revision,
    },
    /// Nothing to read: the watch has everything up to this revision.
    CaughtUp(Revision),
    End(Option<StoreError>),
}

/// A watch's progress requests: set the flag, and wake the stream if it is parked.
struct ProgressRequest {
    hub: Arc<Hub>,
    id: u64,
    key: MatchKey,
    wants_progress: Arc<AtomicBool>,
}

impl WatchControl for ProgressRequest {
    fn request_progress(&self) {
        self.wants_progress.store(true, Ordering::Release);
        self.hub.wake(&self.key, self.id);
    }
}

struct HubStream {
    hub: Arc<Hub>,
    id: u64,
    key: MatchKey,
    request: WatchRequest,
    /// The next revision this watch must deliver.
    next: Revision,
    wants_progress: Arc<AtomicBool>,
    ticker: Option<tokio::time::Interval>,
    done: bool,
}

impl Stream for HubStream {
    type Item = Result<WatchResponse, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(ticker) = this.ticker.as_mut()
            && ticker.poll_tick(cx).is_ready()
        {
            this.wants_progress.store(true, Ordering::Release);
        }
        loop {
            match this.hub.read(&this.request, this.next) {
                Step::Read { response, next } => {
                    this.next = next;
                    if !response.events.is_empty() {
                        return Poll::Ready(Some(Ok(response)));
                    }
                }
                Step::CaughtUp(visible) => {
                    if this.wants_progress.swap(false, Ordering::AcqRel) {
                        let progress = WatchResponse {
                            header_revision: visible,
                            events: Arc::new([]),
                        };
                        return Poll::Ready(Some(Ok(progress)));
                    }
                    this.hub.wait(&this.key, this.id, cx.waker());
                    // A revision published (or the close) between the read and the parking
                    // found no waker: look again now that the waker is in place.
                    if this.hub.visible() < this.next
                        && !this.wants_progress.load(Ordering::Acquire)
                        && !this.hub.closed.load(Ordering::Acquire)
                    {
                        return Poll::Pending;
                    }
                }
                Step::End(err) => {
                    this.done = true;
                    this.hub.forget(&this.key, this.id);
                    return Poll::Ready(err.map(Err));
                }
            }
        }
    }
}

impl Drop for HubStream {
    fn drop(&mut self) {
        self.hub.leave(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;

    use super::*;
    use crate::types::{EventKind, KeyValue};

    fn put(key: &'static str, revision: Revision) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: Bytes::from_static(key.as_bytes()),
                value: Bytes::from_static(b"v"),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            },
            prev_kv: None,
        }
    }

    fn keys(resp: &WatchResponse) -> Vec<&[u8]> {
        resp.events.iter().map(|e| e.kv.key.as_ref()).collect()
    }

    #[tokio::test]
    async fn watches_of_one_range_share_a_group_that_goes_with_its_last_member() {
        let hub = Arc::new(Hub::new(Duration::from_secs(600)));
        let mut a1 = hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/");
        let mut a2 = hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/");
        let mut b = hub.watch(WatchRequest::prefix("/b/")).expect("watch /b/");
        assert_eq!(hub.groups.lock().len(), 2);

        hub.publish(2, Arc::from(vec![put("/a/1", 2)]));
        hub.publish(3, Arc::from(vec![put("/b/1", 3)]));
        hub.publish(4, Arc::from(vec![put("/a/2", 4), put("/b/2", 4)]));

        for stream in [&mut a1, &mut a2] {
            let resp = stream.next().await.expect("an item").expect("events");
            assert_eq!(keys(&resp), [b"/a/1".as_ref(), b"/a/2".as_ref()]);
            assert_eq!(resp.header_revision, 4);
        }
        let resp = b.next().await.expect("an item").expect("events");
        assert_eq!(keys(&resp), [b"/b/1".as_ref(), b"/b/2".as_ref()]);

        drop(a1);
        assert_eq!(hub.groups.lock().len(), 2, "a2 still watches /a/");
        drop(a2);
        drop(b);
        assert!(hub.groups.lock().is_empty());
    }

    /// The fan-out's saving: watchers that take one whole revision share the log's copy of its
    /// events; one that takes part of it gets its own.
    #[tokio::test]
    async fn watchers_taking_a_whole_revision_share_its_events() {
        let hub = Arc::new(Hub::new(Duration::from_secs(600)));
        let mut a1 = hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/");
        let mut a2 = hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/");
        let mut one = hub.watch(WatchRequest::key("/a/1")).expect("watch /a/1");
        let published: Arc<[Event]> = Arc::from(vec![put("/a/1", 2), put("/a/2", 2)]);
        hub.publish(2, Arc::clone(&published));

        let r1 = a1.next().await.expect("an item").expect("events");
        let r2 = a2.next().await.expect("an item").expect("events");
        assert!(
            Arc::ptr_eq(&r1.events, &published),
            "a1 shares the log's events"
        );
        assert!(
            Arc::ptr_eq(&r2.events, &published),
            "a2 shares the log's events"
        );
        let part = one.next().await.expect("an item").expect("events");
        assert_eq!(keys(&part), [b"/a/1".as_ref()]);
        assert!(!Arc::ptr_eq(&part.events, &published));
    }

    #[tokio::test]
    async fn a_parked_watcher_wakes_for_its_group_only_and_for_the_close() {
        let hub = Arc::new(Hub::new(Duration::from_secs(600)));
        let mut a = hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/");
        let reader = tokio::spawn(async move {
            let first = a.next().await.expect("an item").expect("events");
            let end = a.next().await;
            (first, end)
        });
        // Wait (on observable state) until the watcher has parked.
        while hub
            .groups
            .lock()
            .values()
            .all(|group| group.parked.is_empty())
        {
            tokio::task::yield_now().await;
        }
        hub.publish(2, Arc::from(vec![put("/b/1", 2)]));
        assert!(
            hub.groups.lock().values().any(|g| !g.parked.is_empty()),
            "an event of another range leaves the watcher parked"
        );
        hub.publish(3, Arc::from(vec![put("/a/1", 3)]));
        while hub
            .groups
            .lock()
            .values()
            .all(|group| group.parked.is_empty())
        {
            tokio::task::yield_now().await;
        }
        hub.close();
        let (first, end) = reader.await.expect("the reader");
        assert_eq!(keys(&first), [b"/a/1".as_ref()]);
        assert!(end.is_none(), "the stream ends when the hub closes");
    }
}
