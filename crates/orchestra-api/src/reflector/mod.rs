//! The reflector: a cache of one kind's objects, fed by a [`watcher`](crate::watcher) stream,
//! with one [`Writer`] and any number of cheap, cloneable [`Store`] readers, so that one process
//! watches each kind once and all its controllers read the same cache.
//!
//! Readers look objects up by `(namespace, name)`, list them, and query secondary indexes
//! registered by name ([`Store::add_index`]) with a function from an object to its index
//! values, e.g. [`index::pods_by_node`] or [`index::by_controller_uid`]. The writer keeps
//! objects and indexes consistent on every [`Event`]; [`Store::wait_until_ready`] returns
//! once the first complete list has arrived.
//!
//! ```
//! use futures::StreamExt;
//! use orchestra_api::reflector::{self, index};
//! use orchestra_api::resources::Pod;
//! use orchestra_api::watcher::{self, WatcherConfig};
//! use orchestra_api::{Client, LocalClient, testing};
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! client.create(&testing::pod("default", "a", "web")).await?;
//! client.bind("default", "a", "node-1").await?;
//!
//! let (reader, writer) = reflector::store::<Pod>();
//! reader.add_index("node", index::pods_by_node)?;
//! let events = watcher::watcher::<Pod, _>(client, WatcherConfig::default());
//! tokio::spawn(reflector::reflector(writer, events).for_each(|_| async {}));
//!
//! reader.wait_until_ready().await?;
//! assert!(reader.get("default", "a").is_some());
//! assert_eq!(reader.by_index("node", "node-1")?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - `store`: [`Store`] (the readers), [`Writer`], [`ObjectKey`] and [`ReflectorError`].
//! - [`index`]: the index functions most controllers need.

pub mod index;
mod store;

use futures::{Stream, StreamExt};

use crate::registry::ApiError;
use crate::resource::Resource;
use crate::watcher::Event;

pub use store::{IndexFn, ObjectKey, ReflectorError, Store, Writer};

/// A new, empty cache: its first reader and its only writer.
pub fn store<R: Resource>() -> (Store<R>, Writer<R>) {
    Writer::new()
}

/// Applies every event of `events` to `writer`'s cache, passing the events (and errors) on
/// unchanged, so that a controller consumes the same stream after the cache has seen it.
pub fn reflector<R, S>(
    mut writer: Writer<R>,
    events: S,
) -> impl Stream<Item = Result<Event<R>, ApiError>> + Send
where
    R: Resource,
    S: Stream<Item = Result<Event<R>, ApiError>> + Send,
{
    events.map(move |event| {
        if let Ok(event) = &event {
            writer.apply(event);
        }
        event
    })
}
