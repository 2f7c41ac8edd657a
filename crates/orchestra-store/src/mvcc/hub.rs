//! The watch hub: the event log since the last compaction, read by every watch stream.
//!
//! A watch stream keeps its own cursor (the next revision it must deliver) and reads whole
//! revisions from the shared log, so a writer never waits for a watcher and never copies an
//! event per watcher: publishing a revision appends one entry (the events, shared) and wakes
//! the parked watchers that some event of that revision concerns. A woken watcher leaves the
//! parked set until it has read everything visible, so however many revisions are published
//! meanwhile it is woken once, and reads them all under one lock into a queue of its own: a
//! watcher that falls behind gets fewer wake-ups, which is what lets a few cores serve
//! thousands of watchers. Only compaction of the revisions a watcher still needs ends its
//! watch (`Compacted`).
//!
//! Nor does a reader copy events in the common case: a watch that takes every event of a
//! revision gets that revision's shared slice as its response (the slice without `prev_kv`
//! when it did not ask for them, made once per revision by the first such reader), so one
//! write reaching 10,000 watchers costs 10,000 reference counts, not 10,000 copies of each
//! event. Only a watch that takes part of a revision (a transaction spanning its range's
//! edge, or a filter) gets a copy of its part.
//!
//! Parked watchers are grouped by what they match (range and filters), as etcd's watcher
//! groups are: the writer tests a revision's events once per group, not once per watcher,
//! takes a matching group's whole parked set in one swap, and wakes its members after
//! releasing the lock, so that watchers parking meanwhile never wait behind the wake-ups.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use parking_lot::{Mutex, RwLock};

use crate::error::StoreError;
use crate::types::{Event, KeyRange, Revision, WatchRequest, WatchResponse};
use crate::watch::{WatchControl, WatchStream};

/// The most revisions one read of the log scans, so that the read lock is held briefly.
const SCAN_REVISIONS: usize = 1024;

/// The most responses one read queues for a watcher.
const QUEUED_RESPONSES: usize = 1024;

/// One revision's events as watchers receive them.
struct Entry {
    /// The events, `prev_kv` included.
    events: Arc<[Event]>,
    /// The same events without `prev_kv`, for watches that did not ask for it: made by the
    /// first such reader (the `events` themselves when no event has a `prev_kv`).
    bare: OnceLock<Arc<[Event]>>,
}

impl Entry {
    fn new(events: Arc<[Event]>) -> Self {
        Entry {
            events,
            bare: OnceLock::new(),
        }
    }

    /// The events without `prev_kv`.
    fn bare(&self) -> &Arc<[Event]> {
        self.bare.get_or_init(|| {
            if self.events.iter().all(|e| e.prev_kv.is_none()) {
                self.events.clone()
            } else {
                self.events.iter().map(without_prev_kv).collect()
            }
        })
    }
}

/// A copy of an event without its `prev_kv`.
fn without_prev_kv(event: &Event) -> Event {
    Event {
        kind: event.kind,
        kv: event.kv.clone(),
        prev_kv: None,
    }
}

/// The events of revisions `first_revision ..= visible`, one entry per revision.
struct Log {
    entries: VecDeque<Entry>,
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
    next_id: AtomicU64,
    progress_interval: Duration,
}

impl Hub {
    /// The hub of an empty store: revision 1, which has no events.
    pub(crate) fn new(progress_interval: Duration) -> Self {
        Hub {
            log: RwLock::new(Log {
                entries: VecDeque::from([Entry::new(Arc::default())]),
                first_revision: 1,
                compact_revision: 0,
                visible: 1,
                closed: false,
            }),
            visible: AtomicI64::new(1),
            closed: AtomicBool::new(false),
            groups: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            progress_interval,
        }
    }

    /// The newest revision readers may see.
    pub(crate) fn visible(&self) -> Revision {
        self.visible.load(Ordering::Acquire)
    }

    /// Load history read back from disk: the events of revisions `first ..= visible`, one entry
    /// per revision.
    pub(crate) fn restore(&self, first: Revision, entries: Vec<Arc<[Event]>>, visible: Revision) {
        let mut log = self.log.write();
        log.first_revision = first;
        log.entries = entries.into_iter().map(Entry::new).collect();
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
            log.entries.push_back(Entry::new(events.clone()));
            log.visible = revision;
            self.visible.store(revision, Ordering::Release);
        }
        if events.is_empty() {
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
                f(revision, &entry.events);
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
            queued: VecDeque::new(),
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

    /// Queue what a watcher at `next` has to receive in `out`, one response per revision
    /// that concerns it, and say where the watcher is now.
    fn read(
        &self,
        request: &WatchRequest,
        next: Revision,
        out: &mut VecDeque<WatchResponse>,
    ) -> Step {
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
        let mut rev = next;
        let mut scanned = 0;
        while rev <= log.visible && scanned < SCAN_REVISIONS && out.len() < QUEUED_RESPONSES {
            let entry = &log.entries[(rev - log.first_revision) as usize];
            let matching = entry.events.iter().filter(|e| request.matches(e)).count();
            if matching == entry.events.len() && matching > 0 {
                let events = if request.prev_kv {
                    &entry.events
                } else {
                    entry.bare()
                };
                out.push_back(WatchResponse::new(rev, events.clone()));
            } else if matching > 0 {
                let events: Vec<Event> = entry
                    .events
                    .iter()
                    .filter(|e| request.matches(e))
                    .map(|e| {
                        if request.prev_kv {
                            e.clone()
                        } else {
                            without_prev_kv(e)
                        }
                    })
                    .collect();
                out.push_back(WatchResponse::new(rev, events));
            }
            rev += 1;
            scanned += 1;
        }
        Step::Read { next: rev }
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
            if group.members == 0 {
                groups.remove(key);
            }
        }
    }
}

enum Step {
    /// Revisions read (their responses queued, none when they did not concern the watch) up
    /// to the next revision to read.
    Read {
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
    /// The next revision this watch must read from the log.
    next: Revision,
    /// Responses read from the log and not yet delivered.
    queued: VecDeque<WatchResponse>,
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
            if let Some(response) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(response)));
            }
            match this.hub.read(&this.request, this.next, &mut this.queued) {
                Step::Read { next } => this.next = next,
                Step::CaughtUp(visible) => {
                    if this.wants_progress.swap(false, Ordering::AcqRel) {
                        return Poll::Ready(Some(Ok(WatchResponse::progress(visible))));
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
        resp.events().iter().map(|e| e.kv.key.as_ref()).collect()
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
            assert_eq!(keys(&resp), [b"/a/1".as_ref()]);
            assert_eq!(resp.header_revision, 2);
            let resp = stream.next().await.expect("an item").expect("events");
            assert_eq!(keys(&resp), [b"/a/2".as_ref()]);
            assert_eq!(resp.header_revision, 4);
        }
        let resp = b.next().await.expect("an item").expect("events");
        assert_eq!(keys(&resp), [b"/b/1".as_ref()]);
        let resp = b.next().await.expect("an item").expect("events");
        assert_eq!(keys(&resp), [b"/b/2".as_ref()]);

        drop(a1);
        assert_eq!(hub.groups.lock().len(), 2, "a2 still watches /a/");
        drop(a2);
        drop(b);
        assert!(hub.groups.lock().is_empty());
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

    fn update(key: &'static str, revision: Revision) -> Event {
        let mut event = put(key, revision);
        event.kv.version = 2;
        event.prev_kv = Some(put(key, revision - 1).kv);
        event
    }

    #[tokio::test]
    async fn watchers_taking_a_whole_revision_share_its_events_and_others_get_their_part() {
        let hub = Arc::new(Hub::new(Duration::from_secs(600)));
        let mut bare = [
            hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/"),
            hub.watch(WatchRequest::prefix("/a/")).expect("watch /a/"),
        ];
        let mut with_prev = [
            hub.watch(WatchRequest::prefix("/a/").with_prev_kv())
                .expect("watch /a/ with prev_kv"),
            hub.watch(WatchRequest::prefix("/a/").with_prev_kv())
                .expect("watch /a/ with prev_kv"),
        ];
        let mut one_key = hub
            .watch(WatchRequest::key("/a/1").with_prev_kv())
            .expect("watch /a/1");

        hub.publish(2, Arc::from(vec![update("/a/1", 2), update("/a/2", 2)]));

        let mut bare_responses = Vec::new();
        for stream in &mut bare {
            bare_responses.push(stream.next().await.expect("an item").expect("events"));
        }
        let mut prev_responses = Vec::new();
        for stream in &mut with_prev {
            prev_responses.push(stream.next().await.expect("an item").expect("events"));
        }
        for responses in [&bare_responses, &prev_responses] {
            assert_eq!(keys(&responses[0]), [b"/a/1".as_ref(), b"/a/2".as_ref()]);
            assert!(
                Arc::ptr_eq(responses[0].shared_events(), responses[1].shared_events()),
                "watchers of a whole revision share one slice"
            );
        }
        assert!(
            bare_responses[0]
                .events()
                .iter()
                .all(|e| e.prev_kv.is_none()),
            "a watch without prev_kv gets none"
        );
        assert!(
            prev_responses[0]
                .events()
                .iter()
                .all(|e| e.prev_kv.is_some()),
            "a watch with prev_kv gets them"
        );
        assert!(!Arc::ptr_eq(
            bare_responses[0].shared_events(),
            prev_responses[0].shared_events()
        ));

        let part = one_key.next().await.expect("an item").expect("events");
        assert_eq!(keys(&part), [b"/a/1".as_ref()]);
        assert_eq!(part.header_revision, 2);
        assert!(part.events()[0].prev_kv.is_some());
    }
}
