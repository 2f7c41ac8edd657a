//! The API server's watch cache: the shared core of [`crate::watch_cache`] (per kind, one
//! list and one store watch feed the current objects and a bounded window of recent events,
//! watches indexed by the field values they require) with every event encoded to JSON once
//! for all remote watchers, on the first watch that needs it.
//!
//! A kind's cache starts on the first watch or list of that kind, so that an embedded
//! server whose components use [`LocalClient`](crate::LocalClient) (which has a cache of its
//! own) does not decode and hold every object a second time for remote watchers it does not
//! have. That first request is served by the registry, as any request the cache is not yet
//! ready for.
//!
//! Lists that accept any recent state (`resourceVersion=0`) are served from the same
//! objects; a list without resourceVersion is a consistent read from the store.
//!
//! A watch without resourceVersion starts with one consistent list as ADDED events, as the
//! registry's: the cache serves it once it has seen the store's revision of now (so its
//! objects are what a list from the store would return), as
//! [`LocalClient`](crate::LocalClient)'s watches are. Before, every such remote watch was a
//! store watch of its own that decoded and encoded every event for itself: 1,000 watchers
//! decoded and encoded each change 1,000 times (issue #4), where the cache decodes it once
//! and encodes it once.
//!
//! A watch the cache cannot serve (not ready or not caught up within [`CATCH_UP`], a
//! resourceVersion older than the window) goes to the registry as before, so the contracts
//! (410 for compacted versions, the initial ADDED list) are the registry's exactly. A client
//! that does not keep up (its buffer of events is full) is cut off with an
//! [`ApiError::Expired`] that says so, instead of slowing the others; it watches again from
//! its last resourceVersion.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;

use super::grpc::encode;
use crate::registry::{
    ApiError, DynOps, DynRegistry, ListOptions, ObjectList, WatchEvent, WatchOptions,
};
use crate::scheme::DynResource;
use crate::watch_cache::filter::{Change, Filter};
use crate::watch_cache::kind::{Decode, Entry, KindCache, Source};
use crate::watch_cache::subscription::Subscription;

pub use crate::watch_cache::CacheOptions;

type Object = Box<dyn DynResource>;

/// How long a watch without resourceVersion waits for its kind's cache to catch up with the
/// store before the registry serves it instead (the cache starting, restarting, or far
/// behind).
const CATCH_UP: Duration = Duration::from_secs(5);

/// One event as the cache serves it: the type, the object's JSON and its resourceVersion.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`, with the object encoded once.
    Object {
        /// `ADDED`, `MODIFIED` or `DELETED`.
        kind: &'static str,
        /// The object's JSON (with apiVersion and kind).
        json: Bytes,
        /// Its resourceVersion.
        resource_version: String,
    },
    /// Nothing this watch selects changed up to this resourceVersion.
    Bookmark(String),
}

/// The events of a cached watch; the first error ends it.
pub type CacheEvents = Pin<Box<dyn Stream<Item = Result<CacheEvent, ApiError>> + Send>>;

/// Completes when the server shuts down (stops the feeders).
type Shutdown = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One kind: how to decode it, and its cache once something asked for it.
struct KindSlot {
    ops: DynOps,
    cache: OnceLock<Arc<KindCache>>,
}

/// The watch caches of every kind of a [`DynRegistry`]. See the [module docs](self).
#[derive(Clone)]
pub struct WatchCache {
    kinds: Arc<HashMap<String, KindSlot>>,
    store: Arc<dyn orchestra_store::Store>,
    options: CacheOptions,
    shutdown: Shutdown,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("kinds", &self.kinds.len())
            .field("options", &self.options)
            .finish()
    }
}

fn key(api_version: &str, kind: &str) -> String {
    format!("{api_version} {kind}")
}

/// Decodes a stored object of the kind of `ops`, at its mod_revision.
fn decoder(ops: DynOps) -> Decode {
    Arc::new(move |kv| {
        let mut object = match ops.decode_stored(&kv.value) {
            Some(object) => object,
            None => {
                let value: Value = crate::registry::parse_stored(&kv.key, &kv.value)?;
                ops.decode(value)
                    .map_err(|err| ApiError::corrupt(&kv.key, err))?
                    .object
            }
        };
        object.meta_mut().resource_version = kv.mod_revision.to_string();
        Ok(object)
    })
}

/// Whether a watch or list of a kind's objects in `namespace` selects by namespace.
fn namespace_of(ops: &DynOps, namespace: Option<&str>) -> Option<String> {
    namespace
        .filter(|ns| ops.info().namespaced && !ns.is_empty())
        .map(str::to_owned)
}

impl WatchCache {
    /// The caches of every kind of `registry`, each started (one feeder task) on the first
    /// watch or list of its kind; the feeders stop when `shutdown` completes.
    pub fn start(
        registry: &DynRegistry,
        options: CacheOptions,
        shutdown: impl Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static,
    ) -> Self {
        let kinds = registry
            .kinds()
            .map(|ops| {
                let info = ops.info();
                let slot = KindSlot {
                    ops: *ops,
                    cache: OnceLock::new(),
                };
                (key(info.api_version, info.kind), slot)
            })
            .collect();
        WatchCache {
            kinds: Arc::new(kinds),
            store: registry.registry().store().clone(),
            options,
            shutdown: Arc::new(shutdown),
        }
    }

    /// The kind's cache, started now if nothing asked for it before (within a tokio runtime).
    fn kind(&self, api_version: &str, kind: &str) -> Option<(&DynOps, &Arc<KindCache>)> {
        let slot = self.kinds.get(&key(api_version, kind))?;
        let cache = slot.cache.get_or_init(|| {
            let info = slot.ops.info();
            let source = Source {
                store: self.store.clone(),
                prefix: format!("/registry/{}/", info.plural),
                decode: decoder(slot.ops),
                // The registry's writes hand their objects to the in-process caches only.
                stash: None,
                kind: info.kind,
            };
            let (cache, feeder) = KindCache::new(source, self.options.clone(), None);
            let stop = (self.shutdown)();
            tokio::spawn(async move {
                tokio::select! {
                    () = feeder => {}
                    () = stop => {}
                }
            });
            cache
        });
        Some((&slot.ops, cache))
    }

    /// Starts the cache of a kind if needed and waits until it has listed and is watching
    /// (for tests and warm-up).
    pub async fn wait_ready(&self, api_version: &str, kind: &str) {
        if let Some((_, cache)) = self.kind(api_version, kind) {
            cache.wait_ready().await;
        }
    }

    /// Serves a watch from the cache, or `None` when the cache cannot (not caught up within
    /// [`CATCH_UP`], a resourceVersion older than the window, or one the store has
    /// compacted): the caller asks the registry then, which answers exactly as without a
    /// cache (410 for a compacted resourceVersion). A watch without resourceVersion (or
    /// `"0"`) starts, as the registry's, with an ADDED event for every selected object of one
    /// consistent list.
    pub async fn watch(
        &self,
        store: &dyn orchestra_store::Store,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<Option<CacheEvents>, ApiError> {
        let Some((ops, cache)) = self.kind(api_version, kind) else {
            return Ok(None);
        };
        let from = match options.resource_version.as_deref() {
            None | Some("" | "0") => {
                ops.check_field_selector(&options.field_selector)?;
                return self
                    .watch_from_now(store, ops, cache, namespace, options)
                    .await;
            }
            Some(rv) => match rv.parse::<i64>() {
                Ok(rev) if rev >= 0 => rev,
                // The registry words the error.
                _ => return Ok(None),
            },
        };
        ops.check_field_selector(&options.field_selector)?;
        // A compacted resourceVersion gets the store's 410 through the registry, as it would
        // without the cache, even while the window still holds it.
        let probe = orchestra_store::RangeRequest::key("/registry/")
            .at_revision(from + 1)
            .count_only();
        if let Err(err) = store.range(probe).await
            && err.is_compacted()
        {
            return Ok(None);
        }
        let filter = Filter {
            namespace: namespace_of(ops, namespace),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from,
        };
        let Some(subscription) = cache.subscribe(filter, options.bookmark_interval) else {
            return Ok(None);
        };
        let events = futures::stream::unfold(subscription, Subscription::next)
            .map(|change| change.and_then(|change| to_event(&change)));
        Ok(Some(Box::pin(events)))
    }

    /// A watch without resourceVersion: the selected objects once the cache has seen the
    /// store's revision of now, as ADDED events, then the changes after them; `None` when
    /// the cache does not catch up within [`CATCH_UP`] or its window no longer holds the
    /// changes after that list (the registry serves the watch then).
    async fn watch_from_now(
        &self,
        store: &dyn orchestra_store::Store,
        ops: &DynOps,
        cache: &Arc<KindCache>,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<Option<CacheEvents>, ApiError> {
        let mut filter = Filter {
            namespace: namespace_of(ops, namespace),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from: 0,
        };
        let head = store.status().await?.revision;
        let Ok((objects, revision)) =
            tokio::time::timeout(CATCH_UP, cache.snapshot_from(&filter, head)).await
        else {
            return Ok(None);
        };
        filter.from = revision;
        let Some(subscription) = cache.subscribe(filter, options.bookmark_interval) else {
            return Ok(None);
        };
        // The list is this watch's own: its objects are encoded here, as the registry's list
        // would be; the changes after it share one encoding per change.
        let initial = objects
            .iter()
            .map(|object| {
                Ok(CacheEvent::Object {
                    kind: "ADDED",
                    json: encode(object.as_ref().as_ref())?,
                    resource_version: object.meta().resource_version.clone(),
                })
            })
            .collect::<Vec<Result<CacheEvent, ApiError>>>();
        let changes = futures::stream::unfold(subscription, Subscription::next)
            .map(|change| change.and_then(|change| to_event(&change)));
        Ok(Some(Box::pin(
            futures::stream::iter(initial).chain(changes),
        )))
    }

    /// Serves a list from the cache when the request accepts any recent state
    /// (`resourceVersion: "0"`, no `limit`, no `continue`) and the kind's cache is ready;
    /// `None` otherwise: the caller reads the store. Items come in the store's order
    /// (namespace, then name) at the cache's resourceVersion.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<Option<ObjectList<Object>>, ApiError> {
        if options.resource_version.as_deref() != Some("0")
            || options.limit > 0
            || options.continue_token.is_some()
        {
            return Ok(None);
        }
        let Some((ops, cache)) = self.kind(api_version, kind) else {
            return Ok(None);
        };
        ops.check_field_selector(&options.field_selector)?;
        let filter = Filter {
            namespace: namespace_of(ops, namespace),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from: 0,
        };
        Ok(cache.snapshot(&filter).map(|(items, revision)| ObjectList {
            items: items.iter().map(|o| o.clone_boxed()).collect(),
            resource_version: revision.to_string(),
            continue_token: None,
        }))
    }

    /// Whether the cache of a kind has started (something watched or listed the kind).
    pub fn is_started(&self, api_version: &str, kind: &str) -> bool {
        self.kinds
            .get(&key(api_version, kind))
            .is_some_and(|slot| slot.cache.get().is_some())
    }

    /// The number of client watches the cache serves now, per kind.
    pub fn subscribers(&self, api_version: &str, kind: &str) -> usize {
        self.kinds
            .get(&key(api_version, kind))
            .and_then(|slot| slot.cache.get())
            .map_or(0, |cache| cache.subscriber_count())
    }
}

/// The JSON of an entry's new state, encoded by the first watch that needs it.
fn entry_json(entry: &Entry) -> Result<Bytes, ApiError> {
    if let Some(json) = entry.json.get() {
        return Ok(json.clone());
    }
    let json = encode(entry.object.as_ref().as_ref())?;
    // Two watches may race to encode the same entry: either result is the same.
    let _ = entry.json.set(json.clone());
    Ok(json)
}

/// A change as the server sends it.
fn to_event(change: &Change) -> Result<CacheEvent, ApiError> {
    let event = |kind, entry: &Entry, json| CacheEvent::Object {
        kind,
        json,
        resource_version: entry.revision.to_string(),
    };
    Ok(match change {
        Change::Added(entry) => event("ADDED", entry, entry_json(entry)?),
        Change::Modified(entry) => event("MODIFIED", entry, entry_json(entry)?),
        Change::Deleted(entry) => event("DELETED", entry, entry_json(entry)?),
        Change::Left(entry) => {
            // Rare: encode the last matching state at this revision for this client.
            let Some(prev) = &entry.prev else {
                return Err(ApiError::Internal(orchestra_store::StoreError::Other(
                    "a change that leaves a watch has no previous state".to_owned(),
                )));
            };
            let mut last = prev.clone_boxed();
            last.meta_mut().resource_version = entry.revision.to_string();
            event("DELETED", entry, encode(last.as_ref())?)
        }
        Change::Bookmark(revision) => CacheEvent::Bookmark(revision.to_string()),
    })
}

/// Lists: from the cache when the request allows it (see [`WatchCache::list`]), else from
/// the registry.
pub(crate) async fn list(
    registry: &DynRegistry,
    cache: Option<&WatchCache>,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    options: &ListOptions,
) -> Result<ObjectList<Object>, ApiError> {
    if let Some(cache) = cache
        && let Some(list) = cache.list(api_version, kind, namespace, options)?
    {
        return Ok(list);
    }
    registry.list(api_version, kind, namespace, options).await
}

/// Opens a watch: from the cache when it can serve it, else from the registry, as one stream
/// of [`CacheEvent`]s for both protocols.
pub(crate) async fn open(
    registry: &DynRegistry,
    cache: Option<&WatchCache>,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    options: &WatchOptions,
) -> Result<CacheEvents, ApiError> {
    if let Some(cache) = cache
        && let Some(events) = cache
            .watch(
                registry.registry().store().as_ref(),
                api_version,
                kind,
                namespace,
                options,
            )
            .await?
    {
        return Ok(events);
    }
    let events = registry
        .watch(api_version, kind, namespace, options)
        .await?;
    Ok(Box::pin(
        events.map(|event| event.and_then(|e| from_registry(&e))),
    ))
}

fn from_registry(event: &WatchEvent<Object>) -> Result<CacheEvent, ApiError> {
    let (kind, object) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        WatchEvent::Bookmark(rv) => return Ok(CacheEvent::Bookmark(rv.clone())),
    };
    Ok(CacheEvent::Object {
        kind,
        json: encode(object.as_ref().as_ref())?,
        resource_version: object.meta().resource_version.clone(),
    })
}
