//! One cached watch: the backlog from the window, then the changes the cache queues for it,
//! each viewed through its [`Filter`]; bookmarks on its interval; an [`ApiError::Expired`]
//! when the cache cut it off or restarted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::filter::{Change, Filter};
use super::kind::{Entry, KindCache};
use crate::registry::ApiError;

/// One watch's state. Dropping it removes the watch from the cache.
pub(crate) struct Subscription {
    cache: Arc<KindCache>,
    id: u64,
    backlog: VecDeque<Arc<Entry>>,
    receiver: mpsc::Receiver<Arc<Entry>>,
    cut: Arc<AtomicBool>,
    filter: Filter,
    ticker: Option<tokio::time::Interval>,
    done: bool,
}

enum Wake {
    Tick,
    Entry(Option<Arc<Entry>>),
}

impl Subscription {
    pub(crate) fn new(
        cache: Arc<KindCache>,
        id: u64,
        backlog: VecDeque<Arc<Entry>>,
        receiver: mpsc::Receiver<Arc<Entry>>,
        cut: Arc<AtomicBool>,
        filter: Filter,
        bookmark_interval: Option<Duration>,
    ) -> Self {
        let ticker = bookmark_interval.map(|period| {
            let period = period.max(Duration::from_millis(1));
            tokio::time::interval_at(tokio::time::Instant::now() + period, period)
        });
        Subscription {
            cache,
            id,
            backlog,
            receiver,
            cut,
            filter,
            ticker,
            done: false,
        }
    }

    /// The next change for this watch; `None` after an error.
    pub(crate) async fn next(mut self) -> Option<(Result<Change, ApiError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let entry = match self.backlog.pop_front() {
                Some(entry) => Some(entry),
                None => {
                    let wake = match &mut self.ticker {
                        Some(ticker) => tokio::select! {
                            _ = ticker.tick() => Wake::Tick,
                            entry = self.receiver.recv() => Wake::Entry(entry),
                        },
                        None => Wake::Entry(self.receiver.recv().await),
                    };
                    match wake {
                        Wake::Tick => {
                            // Under the lock nothing is being queued: an empty queue means this
                            // watch has every change up to the cache's revision (and, as the
                            // registry's, a bookmark comes on every tick, even when idle).
                            let revision = {
                                let state = self.cache.lock();
                                self.receiver
                                    .is_empty()
                                    .then_some(state.revision.max(self.filter.from))
                            };
                            if let Some(revision) = revision {
                                return Some((Ok(Change::Bookmark(revision)), self));
                            }
                            continue;
                        }
                        Wake::Entry(entry) => entry,
                    }
                }
            };
            let Some(entry) = entry else {
                self.done = true;
                let message = if self.cut.load(Ordering::Relaxed) {
                    "the watch fell behind: its client did not read events as fast as they came; watch again from the last resourceVersion received"
                } else {
                    "the watch cache restarted; watch again from the last resourceVersion received"
                };
                return Some((Err(ApiError::Expired(message.to_owned())), self));
            };
            if let Some(change) = self.filter.view(&entry) {
                return Some((Ok(change), self));
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cache.lock().subscribers.remove(self.id);
    }
}
