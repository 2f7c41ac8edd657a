//! The watch hub: the event log since the last compaction, and the fan-out of each new
//! revision to the watchers.
//!
//! A watcher is *synced* while it keeps up: each new revision is pushed into its bounded
//! channel with `try_send`, so a writer never waits for a watcher. When a channel is full, the
//! watcher becomes *unsynced* at the first revision it missed, and its stream, once it has
//! drained the channel, reads the missed revisions from the log itself and becomes synced again
//! when it has caught up. Only compaction of the revisions it still needs ends a watch
//! (`Compacted`). All of this happens under one mutex, so a revision is either in a watcher's
//! channel or in its catch-up range, never both and never neither.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::types::{Event, Revision, WatchRequest, WatchResponse};
use crate::watch::{WatchControl, WatchStream};

/// How many revisions a watcher's channel holds before it falls back to catching up.
const CHANNEL_CAPACITY: usize = 256;
/// The most revisions a stream merges into one response when several are waiting.
const MERGE_REVISIONS: usize = 64;

/// One revision's events as pushed to a watcher: shared by every watcher, filtered by the
/// receiving stream, so that the writer's cost per watcher is a range check and a pointer copy.
struct Delivery {
    revision: Revision,
    events: Arc<[Event]>,
}
/// The most revisions one catch-up step reads, so that the hub's lock is held briefly.
const CATCH_UP_REVISIONS: usize = 512;

struct Watcher {
    request: Arc<WatchRequest>,
    tx: mpsc::Sender<Delivery>,
    synced: bool,
    /// The next revision this watcher must receive.
    next: Revision,
}

struct HubState {
    /// The events of revisions `first_revision ..`, one entry per revision, contiguous.
    log: VecDeque<Arc<[Event]>>,
    first_revision: Revision,
    compact_revision: Revision,
    visible: Revision,
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
    closed: bool,
}

/// The event log and the watchers of one store.
pub(crate) struct Hub {
    state: Mutex<HubState>,
    visible: AtomicI64,
    progress_interval: Duration,
}

impl Hub {
    /// The hub of an empty store: revision 1, which has no events.
    pub(crate) fn new(progress_interval: Duration) -> Self {
        let visible = 1;
        Hub {
            state: Mutex::new(HubState {
                log: VecDeque::from([Arc::from(Vec::new())]),
                first_revision: visible,
                compact_revision: 0,
                visible,
                watchers: HashMap::new(),
                next_id: 0,
                closed: false,
            }),
            visible: AtomicI64::new(visible),
            progress_interval,
        }
    }

    /// The newest revision readers may see.
    pub(crate) fn visible(&self) -> Revision {
        self.visible.load(Ordering::Acquire)
    }

    /// Load history read back from disk: the events of revisions `first ..= visible`, one entry
    /// per revision.
    pub(crate) fn restore(&self, first: Revision, log: Vec<Arc<[Event]>>, visible: Revision) {
        let mut st = self.state.lock();
        st.first_revision = first;
        st.log = log.into();
        st.visible = visible;
        self.visible.store(visible, Ordering::Release);
    }

    /// Make `revision` visible and send its events to the synced watchers that want them.
    /// Revisions must be published in order, each exactly once.
    pub(crate) fn publish(&self, revision: Revision, events: Arc<[Event]>) {
        let mut st = self.state.lock();
        debug_assert_eq!(revision, st.visible + 1, "revisions are published in order");
        if st.log.is_empty() {
            st.first_revision = revision;
        }
        st.log.push_back(events.clone());
        st.visible = revision;
        self.visible.store(revision, Ordering::Release);
        let mut gone = Vec::new();
        for (id, watcher) in st.watchers.iter_mut() {
            if !watcher.synced || revision < watcher.next {
                continue;
            }
            if !events.iter().any(|e| watcher.request.matches(e)) {
                watcher.next = revision + 1;
                continue;
            }
            match watcher.tx.try_send(Delivery {
                revision,
                events: events.clone(),
            }) {
                Ok(()) => watcher.next = revision + 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    watcher.synced = false;
                    watcher.next = revision;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            st.watchers.remove(&id);
        }
    }

    /// Drop the log below `revision`.
    pub(crate) fn compact(&self, revision: Revision) {
        let mut st = self.state.lock();
        while st.first_revision < revision && !st.log.is_empty() {
            st.log.pop_front();
            st.first_revision += 1;
        }
        if st.log.is_empty() {
            st.first_revision = st.visible + 1;
        }
        st.compact_revision = revision;
    }

    /// End every watch (the store is shutting down).
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.watchers.clear();
    }

    /// Start a watch.
    pub(crate) fn watch(
        self: &Arc<Self>,
        request: WatchRequest,
    ) -> Result<WatchStream, StoreError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(StoreError::Closed);
        }
        let start = if request.start_revision <= 0 {
            st.visible + 1
        } else {
            request.start_revision
        };
        if start < st.compact_revision {
            return Err(StoreError::Compacted {
                requested: start,
                compact_revision: st.compact_revision,
            });
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let id = st.next_id;
        st.next_id += 1;
        let synced = start > st.visible;
        let progress = request.progress_notify;
        let request = Arc::new(request);
        st.watchers.insert(
            id,
            Watcher {
                request: request.clone(),
                tx,
                synced,
                next: start,
            },
        );
        drop(st);
        let wants_progress = Arc::new(AtomicBool::new(false));
        let ticker = progress.then(|| {
            let mut interval = tokio::time::interval(self.progress_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.reset();
            interval
        });
        let stream = HubStream {
            hub: self.clone(),
            request,
            id,
            rx,
            wants_progress: wants_progress.clone(),
            ticker,
            done: false,
        };
        Ok(WatchStream::new(stream, ProgressFlag(wants_progress)))
    }

    /// One step of a watcher's stream once its channel is empty: catch up from the log, send a
    /// requested progress notification, or wait.
    fn poll_watcher(
        &self,
        id: u64,
        rx: &mut mpsc::Receiver<Delivery>,
        wants_progress: &AtomicBool,
    ) -> WatcherStep {
        let mut st = self.state.lock();
        if st.closed {
            return WatcherStep::End(None);
        }
        let (first, compact, visible) = (st.first_revision, st.compact_revision, st.visible);
        let Some(watcher) = st.watchers.get(&id) else {
            return WatcherStep::End(None);
        };
        if watcher.synced {
            // A publish may have slipped in between the caller's poll and our lock.
            if let Ok(delivery) = rx.try_recv() {
                return WatcherStep::Received(delivery);
            }
            if wants_progress.swap(false, Ordering::AcqRel) {
                // The store's revision, as etcd sends: a watch that starts in the future has
                // nothing below its start anyway, and a client may re-list at this revision.
                let header_revision = visible;
                return WatcherStep::Deliver(WatchResponse {
                    header_revision,
                    events: Vec::new(),
                });
            }
            return WatcherStep::Wait;
        }
        if watcher.next < first {
            let err = StoreError::Compacted {
                requested: watcher.next,
                compact_revision: compact,
            };
            st.watchers.remove(&id);
            return WatcherStep::End(Some(err));
        }
        let request = watcher.request.clone();
        let mut next = watcher.next;
        let mut events = Vec::new();
        let mut header_revision = next;
        let mut scanned = 0;
        while next <= visible && scanned < CATCH_UP_REVISIONS {
            let entry = &st.log[(next - first) as usize];
            let matching = filter(&request, entry);
            if !matching.is_empty() {
                events.extend(matching);
                header_revision = next;
            }
            next += 1;
            scanned += 1;
        }
        let watcher = st.watchers.get_mut(&id).expect("watcher checked above");
        watcher.next = next;
        watcher.synced = next > visible;
        if events.is_empty() {
            WatcherStep::Retry
        } else {
            WatcherStep::Deliver(WatchResponse {
                header_revision,
                events,
            })
        }
    }

    fn remove(&self, id: u64) {
        self.state.lock().watchers.remove(&id);
    }
}

/// The events of one revision that a watch wants, with `prev_kv` stripped unless asked for.
fn filter(request: &WatchRequest, events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| request.matches(e))
        .map(|e| {
            let mut e = e.clone();
            if !request.prev_kv {
                e.prev_kv = None;
            }
            e
        })
        .collect()
}

enum WatcherStep {
    Received(Delivery),
    Deliver(WatchResponse),
    Retry,
    Wait,
    End(Option<StoreError>),
}

struct ProgressFlag(Arc<AtomicBool>);

impl WatchControl for ProgressFlag {
    fn request_progress(&self) {
        self.0.store(true, Ordering::Release);
    }
}

struct HubStream {
    hub: Arc<Hub>,
    request: Arc<WatchRequest>,
    id: u64,
    rx: mpsc::Receiver<Delivery>,
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
            let first = match this.rx.poll_recv(cx) {
                Poll::Ready(Some(delivery)) => delivery,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    match this
                        .hub
                        .poll_watcher(this.id, &mut this.rx, &this.wants_progress)
                    {
                        WatcherStep::Received(delivery) => delivery,
                        WatcherStep::Deliver(resp) => return Poll::Ready(Some(Ok(resp))),
                        WatcherStep::Retry => continue,
                        WatcherStep::Wait => return Poll::Pending,
                        WatcherStep::End(err) => {
                            this.done = true;
                            return Poll::Ready(err.map(Err));
                        }
                    }
                }
            };
            if let Some(resp) = this.merge(first) {
                return Poll::Ready(Some(Ok(resp)));
            }
        }
    }
}

impl HubStream {
    /// Turn a delivery, and any others already waiting, into one response of the events this
    /// watch wants (None if it wants none of them).
    fn merge(&mut self, first: Delivery) -> Option<WatchResponse> {
        let mut resp = WatchResponse::default();
        let add = |delivery: Delivery, resp: &mut WatchResponse| {
            let matching = filter(&self.request, &delivery.events);
            if !matching.is_empty() {
                resp.events.extend(matching);
                resp.header_revision = delivery.revision;
            }
        };
        add(first, &mut resp);
        for _ in 1..MERGE_REVISIONS {
            match self.rx.try_recv() {
                Ok(delivery) => add(delivery, &mut resp),
                Err(_) => break,
            }
        }
        (!resp.events.is_empty()).then_some(resp)
    }
}

impl Drop for HubStream {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}
