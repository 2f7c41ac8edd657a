//! The watcher: list, then watch, for one kind over any [`Client`], as a stream of [`Event`]s
//! that survives disconnects.
//!
//! After each (re)list the stream yields [`Event::Restarted`] with the complete state, then
//! [`Event::Applied`] and [`Event::Deleted`] for every later change. When a watch ends or
//! fails, the next one resumes from the last resourceVersion seen (an event's or a bookmark's),
//! so nothing is repeated or missed; when that version was compacted away
//! ([`ApiError::Expired`], 410) the watcher lists again at once (after a backoff delay when the
//! 410 came before any event since the last list, so that it cannot spin). Failed attempts are retried
//! after a [`Backoff`] (800 ms doubling to 30 s, with jitter; reset by any success), slept on
//! tokio's clock so that tests run it in paused time. Errors are yielded for the caller to see
//! (log, count) but need no action: the stream retries by itself and never ends.
//!
//! Objects come as `Arc<R>`, shared with the watch they came from (with an in-process
//! client, the watch cache's own decoded object), so that a cache of them costs a pointer
//! per object, not a copy.
//!
//! ```
//! use futures::StreamExt;
//! use orchestra_api::resources::Pod;
//! use orchestra_api::watcher::{self, Event, WatcherConfig};
//! use orchestra_api::{Client, LocalClient, testing};
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! client.create(&testing::pod("default", "a", "web")).await?;
//! let mut events = watcher::watcher::<Pod, _>(client.clone(), WatcherConfig::default());
//! let Some(Ok(Event::Restarted(pods))) = events.next().await else { panic!("no list") };
//! assert_eq!(pods.len(), 1);
//! client.create(&testing::pod("default", "b", "web")).await?;
//! let Some(Ok(Event::Applied(pod))) = events.next().await else { panic!("no event") };
//! assert_eq!(pod.metadata.name, "b");
//! # Ok::<(), orchestra_api::ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - `backoff`: [`Backoff`], the pure retry-delay policy.
//! - [`faults`]: [`FaultyClient`](faults::FaultyClient), a client wrapper that injects errors
//!   and disconnects, for tests.
//! - `state`: the list/watch state machine behind [`watcher()`].

mod backoff;
pub mod faults;
mod state;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use crate::client::Client;
use crate::registry::ApiError;
use crate::resource::Resource;
use crate::selector::{FieldSelector, Selector};

pub use backoff::Backoff;

/// What a watcher reports. Objects are shared (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub enum Event<R> {
    /// A (re)list completed: this is every selected object now; anything known before and
    /// missing here is gone.
    Restarted(Vec<Arc<R>>),
    /// The object was created or changed (or started matching the selectors).
    Applied(Arc<R>),
    /// The object was deleted (or stopped matching); its last state.
    Deleted(Arc<R>),
}

impl<R: Resource> Event<R> {
    /// The objects this event carries.
    pub fn objects(&self) -> &[Arc<R>] {
        match self {
            Event::Restarted(objects) => objects,
            Event::Applied(object) | Event::Deleted(object) => std::slice::from_ref(object),
        }
    }
}

/// Which objects a watcher follows, and how it retries.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    /// One namespace, or all (`None`, the default). Ignored for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Only objects whose labels match (default: everything).
    pub label_selector: Selector,
    /// Only objects whose fields match (default: everything).
    pub field_selector: FieldSelector,
    /// List this many objects per page (0, the default: all in one).
    pub page_size: usize,
    /// Ask the server for bookmarks at this interval, so that a resumed watch starts from a
    /// recent resourceVersion even when nothing selected changes (default: 60 s).
    pub bookmark_interval: Option<Duration>,
    /// The delays between failed attempts.
    pub backoff: Backoff,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            namespace: None,
            label_selector: Selector::default(),
            field_selector: FieldSelector::default(),
            page_size: 0,
            bookmark_interval: Some(Duration::from_secs(60)),
            backoff: Backoff::default(),
        }
    }
}

impl WatcherConfig {
    /// Follows one namespace only.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Follows objects whose labels match.
    pub fn labels(mut self, selector: Selector) -> Self {
        self.label_selector = selector;
        self
    }

    /// Follows objects whose fields match.
    pub fn fields(mut self, selector: FieldSelector) -> Self {
        self.field_selector = selector;
        self
    }
}

/// A watcher's stream: events, and the errors it retried after (never ends by itself).
pub type WatcherStream<R> = Pin<Box<dyn Stream<Item = Result<Event<R>, ApiError>> + Send>>;

/// Lists and watches the objects of kind `R` that `config` selects, through `client`, forever
/// (see the [module docs](self)). Poll it to make progress; drop it to stop.
pub fn watcher<R: Resource, C: Client>(client: C, config: WatcherConfig) -> WatcherStream<R> {
    Box::pin(futures::stream::unfold(
        state::Machine::<R, C>::new(client, config),
        state::Machine::next,
    ))
}
