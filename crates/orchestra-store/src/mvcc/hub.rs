//! The watch hub: the event log since the last compaction, read by every watch stream.
//!
//! A watch stream keeps its own cursor (the next revision it must deliver) and reads whole
//! revisions from the shared log, so a writer never waits for a watcher and never copies an
//! event per watcher: publishing a revision appends one entry and wakes only the idle
//! watchers that some event of that revision concerns. A watcher that falls behind reads many
//! revisions per wake-up (its responses get bigger, its wake-ups fewer), which is what lets a
//! few cores serve thousands of watchers. Only compaction of the revisions a watcher still
//! needs ends its watch (`Compacted`).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use parking_lot::{Mutex, RwLock};

use crate::error::StoreError;
use crate::types::{Event, Revision, WatchRequest, WatchResponse};
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

/// A watcher waiting for a revision that concerns it.
struct Idle {
    request: Arc<WatchRequest>,
    waker: Waker,
}

/// The event log and the idle watchers of one store.
pub(crate) struct Hub {
    log: RwLock<Log>,
    visible: AtomicI64,
    idle: Mutex<HashMap<u64, Idle>>,
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
            idle: Mutex::new(HashMap::new()),
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
            self.visible.store(revision, Ordering::Release);
        }
        let mut woken = Vec::new();
        self.idle.lock().retain(|_, idle| {
            if events.iter().any(|e| idle.request.matches(e)) {
                woken.push(idle.waker.clone());
                false
            } else {
                true
            }
        });
        for waker in woken {
            waker.wake();
        }
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
        let idle: Vec<Idle> = self.idle.lock().drain().map(|(_, idle)| idle).collect();
        for idle in idle {
            idle.waker.wake();
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
            request: Arc::new(request),
            next: start,
            wants_progress: wants_progress.clone(),
            ticker,
            done: false,
        };
        let control = ProgressRequest {
            hub: self.clone(),
            id,
            wants_progress,
        };
        Ok(WatchStream::new(stream, control))
    }

    /// Read what a watcher at `next` has to receive.
    fn read(&self, request: &WatchRequest, next: Revision) -> Step {
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
        // Most watches take an event or so of each revision they read: size the response for
        // that, so that a watcher catching up does not regrow (and copy) it several times.
        let pending = usize::try_from(log.visible - next + 1).unwrap_or(1);
        let mut response = WatchResponse {
            header_revision: 0,
            events: Vec::with_capacity(pending.min(SCAN_REVISIONS)),
        };
        let mut rev = next;
        let mut scanned = 0;
        while rev <= log.visible
            && scanned < SCAN_REVISIONS
            && response.events.len() < RESPONSE_EVENTS
        {
            let entry = &log.entries[(rev - log.first_revision) as usize];
            let before = response.events.len();
            response
                .events
                .extend(entry.iter().filter(|e| request.matches(e)).map(|e| {
                    // Every watcher of a revision clones its events from the same log entry,
                    // so each refcount bump here is contended: skip prev_kv's two unless the
                    // watch asked for it.
                    Event {
                        kind: e.kind,
                        kv: e.kv.clone(),
                        prev_kv: if request.prev_kv {
                            e.prev_kv.clone()
                        } else {
                            None
                        },
                    }
                }));
            if response.events.len() > before {
                response.header_revision = rev;
            }
            rev += 1;
            scanned += 1;
        }
        Step::Read {
            response,
            next: rev,
        }
    }

    /// Park a caught-up watcher until a revision concerns it.
    fn wait(&self, id: u64, request: &Arc<WatchRequest>, waker: &Waker) {
        self.idle.lock().insert(
            id,
            Idle {
                request: request.clone(),
                waker: waker.clone(),
            },
        );
    }

    /// Wake a parked watcher (for a progress request).
    fn wake(&self, id: u64) {
        if let Some(idle) = self.idle.lock().remove(&id) {
            idle.waker.wake();
        }
    }

    fn forget(&self, id: u64) {
        self.idle.lock().remove(&id);
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
    wants_progress: Arc<AtomicBool>,
}

impl WatchControl for ProgressRequest {
    fn request_progress(&self) {
        self.wants_progress.store(true, Ordering::Release);
        self.hub.wake(self.id);
    }
}

struct HubStream {
    hub: Arc<Hub>,
    id: u64,
    request: Arc<WatchRequest>,
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
                            events: Vec::new(),
                        };
                        return Poll::Ready(Some(Ok(progress)));
                    }
                    this.hub.wait(this.id, &this.request, cx.waker());
                    // A revision published between the read and the parking found no waker:
                    // look again now that the waker is in place.
                    if this.hub.visible() < this.next
                        && !this.wants_progress.load(Ordering::Acquire)
                    {
                        return Poll::Pending;
                    }
                }
                Step::End(err) => {
                    this.done = true;
                    this.hub.forget(this.id);
                    return Poll::Ready(err.map(Err));
                }
            }
        }
    }
}

impl Drop for HubStream {
    fn drop(&mut self) {
        self.hub.forget(self.id);
    }
}
