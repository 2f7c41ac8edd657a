//! watch: the store's events under a kind's prefix (with their previous values) as
//! [`WatchEvent`]s, filtered by selectors the way Kubernetes does: an object that stops
//! matching is reported `Deleted` (its last matching state), one that starts matching is
//! `Added`. Bookmarks come from the store's progress notifications, requested on a tokio
//! interval (so paused time drives them in tests).
//!
//! Events carry their objects as `Arc<R>`: a watch served from the in-process watch cache
//! hands every watcher the cache's own decoded object (one allocation per change, however
//! many watchers), and caches downstream (reflector stores, the scheduler's cache, node
//! agents) keep that `Arc` instead of a copy. Read through it as `&R` (`Deref`); take an
//! owned copy with `Arc::unwrap_or_clone` only where one is changed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use orchestra_store::{Event, EventKind, WatchRequest, WatchStream};

use super::list::matches;
use super::{
    ApiError, ListOptions, Registry, WatchOptions, decode_kv, list_prefix, parse_resource_version,
};
use crate::resource::Resource;
use crate::selector::{FieldSelector, Selector};

/// One change seen by a watch. The object is shared (see the [module docs](self)): watchers
/// of the same in-process cache receive the same allocation for the same change.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent<R> {
    /// The object was created, or now matches the watch's selectors.
    Added(Arc<R>),
    /// The object changed and matches before and after.
    Modified(Arc<R>),
    /// The object was deleted, or no longer matches; this is its last (matching) state, at the
    /// resourceVersion of the change.
    Deleted(Arc<R>),
    /// Nothing selected changed up to this resourceVersion; resume from it.
    Bookmark(String),
}

impl<R: Resource> WatchEvent<R> {
    /// The resourceVersion this event brings the watcher to.
    pub fn resource_version(&self) -> &str {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                &o.meta().resource_version
            }
            WatchEvent::Bookmark(rv) => rv,
        }
    }

    /// The object, unless this is a bookmark.
    pub fn object(&self) -> Option<&R> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            WatchEvent::Bookmark(_) => None,
        }
    }

    /// The shared object, unless this is a bookmark.
    pub fn into_object(self) -> Option<Arc<R>> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            WatchEvent::Bookmark(_) => None,
        }
    }
}

/// A watch's events, in revision order. An error ends the stream (an
/// [`ApiError::Expired`] means: list again and watch from the list's resourceVersion).
pub type WatchEvents<R> = Pin<Box<dyn Stream<Item = Result<WatchEvent<R>, ApiError>> + Send>>;

impl Registry {
    /// Watches the objects of one namespace (or all, with `None`) that match the selectors,
    /// from after `options.resource_version` ([`ApiError::Expired`] if that revision was
    /// compacted away). Without a resourceVersion (or with `"0"`), the watch starts with an
    /// `Added` event for every matching object (one consistent list) and continues from there,
    /// as Kubernetes does.
    pub async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        options
            .field_selector
            .check::<R>()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        let mut pending = VecDeque::new();
        let start = match options.resource_version.as_deref() {
            None | Some("") | Some("0") => {
                let list_options = ListOptions {
                    label_selector: options.label_selector.clone(),
                    field_selector: options.field_selector.clone(),
                    ..ListOptions::default()
                };
                let current = self.list::<R>(namespace, &list_options).await?;
                pending.extend(
                    current
                        .items
                        .into_iter()
                        .map(|o| Ok(WatchEvent::Added(Arc::new(o)))),
                );
                parse_resource_version(&current.resource_version)? + 1
            }
            Some(rv) => parse_resource_version(rv)? + 1,
        };
        let mut request = WatchRequest::prefix(list_prefix::<R>(namespace))
            .from_revision(start)
            .with_prev_kv();
        if options.bookmark_interval.is_some() {
            request = request.with_progress_notify();
        }
        let inner = self.store.watch(request).await?;
        let ticker = options.bookmark_interval.map(|period| {
            let period = period.max(Duration::from_millis(1));
            tokio::time::interval_at(tokio::time::Instant::now() + period, period)
        });
        let state = State::<R> {
            inner,
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            bookmarks: options.bookmark_interval.is_some(),
            ticker,
            pending,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, State::next)))
    }
}

/// The state of one watch stream.
struct State<R> {
    inner: WatchStream,
    labels: Selector,
    fields: FieldSelector,
    bookmarks: bool,
    ticker: Option<tokio::time::Interval>,
    pending: VecDeque<Result<WatchEvent<R>, ApiError>>,
    done: bool,
}

/// What woke the stream up.
enum Wake<T> {
    Tick,
    Store(Option<T>),
}

impl<R: Resource> State<R> {
    async fn next(mut self) -> Option<(Result<WatchEvent<R>, ApiError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, self));
            }
            if self.done {
                return None;
            }
            let wake = match &mut self.ticker {
                Some(ticker) => tokio::select! {
                    _ = ticker.tick() => Wake::Tick,
                    next = self.inner.next() => Wake::Store(next),
                },
                None => Wake::Store(self.inner.next().await),
            };
            match wake {
                Wake::Tick => self.inner.request_progress(),
                Wake::Store(None) => return None,
                Wake::Store(Some(Err(err))) => {
                    self.done = true;
                    self.pending.push_back(Err(err.into()));
                }
                Wake::Store(Some(Ok(response))) => {
                    if response.is_progress_notify() {
                        if self.bookmarks {
                            let rv = response.header_revision.to_string();
                            self.pending.push_back(Ok(WatchEvent::Bookmark(rv)));
                        }
                        continue;
                    }
                    for event in response.events.iter() {
                        match convert(event, &self.labels, &self.fields) {
                            Ok(Some(event)) => self.pending.push_back(Ok(event)),
                            Ok(None) => {}
                            Err(err) => {
                                self.done = true;
                                self.pending.push_back(Err(err));
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The watch event a store event is, for a watcher with these selectors (`None`: not its
/// business).
fn convert<R: Resource>(
    event: &Event,
    labels: &Selector,
    fields: &FieldSelector,
) -> Result<Option<WatchEvent<R>>, ApiError> {
    let revision = event.kv.mod_revision.to_string();
    let before = match &event.prev_kv {
        Some(prev) => {
            let old: R = decode_kv(prev)?;
            let matched = matches(&old, labels, fields)?;
            Some((old, matched))
        }
        None => None,
    };
    let last_state = |mut old: R| {
        old.meta_mut().resource_version.clone_from(&revision);
        WatchEvent::Deleted(Arc::new(old))
    };
    if event.kind == EventKind::Delete {
        return Ok(before.and_then(|(old, matched)| matched.then(|| last_state(old))));
    }
    let new: R = decode_kv(&event.kv)?;
    let now = matches(&new, labels, fields)?;
    Ok(match (before, now) {
        (None | Some((_, false)), true) => Some(WatchEvent::Added(Arc::new(new))),
        (Some((_, true)), true) => Some(WatchEvent::Modified(Arc::new(new))),
        (Some((old, true)), false) => Some(last_state(old)),
        (None | Some((_, false)), false) => None,
    })
}
