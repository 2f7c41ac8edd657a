//! [`LocalWatchCache`]: the per-kind caches behind [`LocalClient`](crate::LocalClient)'s
//! watches, created lazily on a kind's first watch and shared by every clone of the
//! [`Registry`] (so all the in-process components of a control plane share them).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use orchestra_store::RangeRequest;

use super::CacheOptions;
use super::filter::{Change, Filter};
use super::kind::{Decode, KindCache, Object, Source};
use super::stash::{self, Stash};
use super::subscription::Subscription;
use crate::registry::{
    ApiError, ListOptions, ObjectList, Registry, WatchEvent, WatchEvents, WatchOptions, decode_kv,
    parse_resource_version,
};
use crate::resource::Resource;
use crate::scheme::erase;

/// How long a watch without resourceVersion waits for its kind's cache to catch up with the
/// store before it lists from the store instead (the cache restarting, or far behind).
const CATCH_UP: Duration = Duration::from_secs(5);

/// The in-process watch caches of one registry. Cheap to clone (shared); the feeders stop
/// when the last clone is dropped.
#[derive(Clone, Default)]
pub struct LocalWatchCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    kinds: Mutex<HashMap<TypeId, Arc<KindCache>>>,
    feeders: Mutex<Vec<tokio::task::AbortHandle>>,
    options: Mutex<Option<CacheOptions>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let feeders = self
            .feeders
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for feeder in feeders.drain(..) {
            feeder.abort();
        }
    }
}

impl std::fmt::Debug for LocalWatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = self
            .inner
            .kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("LocalWatchCache")
            .field("kinds", &kinds)
            .finish()
    }
}

impl LocalWatchCache {
    /// Sets the options of the caches not started yet ([`CacheOptions::in_process`] by
    /// default).
    pub fn set_options(&self, options: CacheOptions) {
        *self
            .inner
            .options
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(options);
    }

    /// Starts the cache of kind `R` now (at the latest state) and waits until it is ready,
    /// so that watches from any later resourceVersion are served from it. Without this, a
    /// kind's cache starts on its first watch, and watches from versions older than that
    /// go to the store.
    pub async fn start<R: Resource>(&self, registry: &Registry) {
        self.kind::<R>(registry, None).wait_ready().await;
    }

    /// The number of watches of kind `R` served from the cache now.
    pub fn watches<R: Resource>(&self) -> usize {
        self.inner
            .kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<R>())
            .map_or(0, |cache| cache.subscriber_count())
    }

    /// Where the registry's writes of `R` leave the objects they encode for the feeder of
    /// `R`'s cache (see [`stash`](super::stash)): none while the kind has no cache (nothing
    /// would take them), or for kinds not handed off.
    pub(crate) fn stash<R: Resource>(&self) -> Option<Arc<Stash>> {
        self.inner
            .kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<R>())?
            .stash()
            .cloned()
    }

    fn kind<R: Resource>(&self, registry: &Registry, start: Option<i64>) -> Arc<KindCache> {
        let mut kinds = self
            .inner
            .kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cache) = kinds.get(&TypeId::of::<R>()) {
            return cache.clone();
        }
        let decode: Decode = Arc::new(|kv| decode_kv::<R>(kv).map(erase));
        let source = Source {
            store: registry.store().clone(),
            prefix: format!("/registry/{}/", R::PLURAL),
            decode,
            stash: stash::handed_off::<R>().then(|| Arc::new(Stash::new(stash::CAPACITY))),
            kind: R::KIND,
        };
        let options = self
            .inner
            .options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(CacheOptions::in_process);
        let (cache, feeder) = KindCache::new(source, options, start);
        let handle = tokio::spawn(feeder).abort_handle();
        self.inner
            .feeders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
        kinds.insert(TypeId::of::<R>(), cache.clone());
        cache
    }

    /// [`Registry::list`] with the objects shared: a list of the latest state (no
    /// resourceVersion, or `"0"`) without `limit` or `continue` is served from the kind's
    /// cache, once it has caught up with the store's revision of now (so it is as fresh as
    /// a read from the store), and hands out the cache's own decoded objects, not copies;
    /// any other list, or one the cache cannot serve within a few seconds (restarting, far
    /// behind), is the registry's.
    pub(crate) async fn list<R: Resource>(
        &self,
        registry: &Registry,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<Arc<R>>, ApiError> {
        let latest = matches!(options.resource_version.as_deref(), None | Some("" | "0"));
        if !latest || options.limit > 0 || options.continue_token.is_some() {
            return shared(registry.list::<R>(namespace, options).await?);
        }
        options
            .field_selector
            .check::<R>()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        let cache = self.kind::<R>(registry, None);
        self.consistent_list(registry, &cache, namespace, options)
            .await
    }

    /// The selected objects from `cache` once it has seen the store's revision of now, else
    /// (after [`CATCH_UP`]) from the store.
    async fn consistent_list<R: Resource>(
        &self,
        registry: &Registry,
        cache: &KindCache,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<Arc<R>>, ApiError> {
        let filter = Filter {
            namespace: namespace
                .filter(|ns| R::NAMESPACED && !ns.is_empty())
                .map(str::to_owned),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from: 0,
        };
        let head = registry.store().status().await?.revision;
        let snapshot = tokio::time::timeout(CATCH_UP, cache.snapshot_from(&filter, head));
        match snapshot.await {
            Ok((objects, revision)) => Ok(ObjectList {
                items: objects
                    .iter()
                    .map(object::<R>)
                    .collect::<Result<Vec<_>, _>>()?,
                resource_version: revision.to_string(),
                continue_token: None,
            }),
            Err(_) => shared(registry.list::<R>(namespace, options).await?),
        }
    }

    /// [`Registry::watch`], served from the cache when it can be (see the
    /// [module docs](super)), from the registry otherwise.
    pub(crate) async fn watch<R: Resource>(
        &self,
        registry: &Registry,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        options
            .field_selector
            .check::<R>()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        let namespace = namespace
            .filter(|ns| R::NAMESPACED && !ns.is_empty())
            .map(str::to_owned);
        let mut filter = Filter {
            namespace: namespace.clone(),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from: 0,
        };
        let (initial, cache) = match options.resource_version.as_deref() {
            None | Some("" | "0") => {
                // One consistent list as ADDED events, then the changes after it, as the
                // registry does; served from the cache's own objects when it can be.
                let cache = self.kind::<R>(registry, None);
                let list_options = ListOptions {
                    label_selector: options.label_selector.clone(),
                    field_selector: options.field_selector.clone(),
                    ..ListOptions::default()
                };
                let list = self
                    .consistent_list::<R>(registry, &cache, namespace.as_deref(), &list_options)
                    .await?;
                filter.from = parse_resource_version(&list.resource_version)?;
                (list.items, cache)
            }
            Some(rv) => {
                let from = parse_resource_version(rv)?;
                // A compacted resourceVersion gets the store's 410 through the registry, as
                // it would without the cache, even while the window still holds it.
                let probe = RangeRequest::key("/registry/")
                    .at_revision(from + 1)
                    .count_only();
                if let Err(err) = registry.store().range(probe).await
                    && err.is_compacted()
                {
                    return registry.watch(namespace.as_deref(), options).await;
                }
                filter.from = from;
                (Vec::new(), self.kind::<R>(registry, Some(from)))
            }
        };
        cache.wait_ready().await;
        let from = filter.from;
        let initial = futures::stream::iter(initial.into_iter().map(|o| Ok(WatchEvent::Added(o))));
        match cache.subscribe(filter, options.bookmark_interval) {
            Some(subscription) => {
                let changes = futures::stream::unfold(subscription, Subscription::next)
                    .map(|change| change.and_then(typed::<R>));
                Ok(Box::pin(initial.chain(changes)))
            }
            None => {
                let rest = WatchOptions {
                    resource_version: Some(from.to_string()),
                    ..options.clone()
                };
                let events = registry.watch(namespace.as_deref(), &rest).await?;
                Ok(Box::pin(initial.chain(events)))
            }
        }
    }
}

/// A list of the registry's own copies, as shared objects.
fn shared<R: Resource>(list: ObjectList<R>) -> Result<ObjectList<Arc<R>>, ApiError> {
    Ok(ObjectList {
        items: list.items.into_iter().map(Arc::new).collect(),
        resource_version: list.resource_version,
        continue_token: list.continue_token,
    })
}

/// The typed event of a change: the cache's own object, shared (no copy), except for a
/// change that leaves the watch, whose last state is reported at the change's revision.
fn typed<R: Resource>(change: Change) -> Result<WatchEvent<R>, ApiError> {
    Ok(match change {
        Change::Added(entry) => WatchEvent::Added(object(&entry.object)?),
        Change::Modified(entry) => WatchEvent::Modified(object(&entry.object)?),
        Change::Deleted(entry) => WatchEvent::Deleted(object(&entry.object)?),
        Change::Left(entry) => {
            let prev = entry
                .prev
                .as_ref()
                .ok_or_else(|| internal("a change that leaves a watch has no previous state"))?;
            let mut last: R = Arc::unwrap_or_clone(object::<R>(prev)?);
            last.meta_mut().resource_version = entry.revision.to_string();
            WatchEvent::Deleted(Arc::new(last))
        }
        Change::Bookmark(revision) => WatchEvent::Bookmark(revision.to_string()),
    })
}

fn object<R: Resource>(object: &Arc<Object>) -> Result<Arc<R>, ApiError> {
    object
        .as_ref()
        .as_ref()
        .downcast_arc::<R>()
        .ok_or_else(|| internal("the watch cache holds an object of another kind"))
}

fn internal(message: &str) -> ApiError {
    ApiError::Internal(orchestra_store::StoreError::Other(message.to_owned()))
}

#[cfg(test)]
mod tests {
    use orchestra_store::{MemStore, StoreExt};

    use super::*;
    use crate::registry::object_key;
    use crate::resources::{Node, Pod};
    use crate::testing::pod;

    async fn head(registry: &Registry) -> String {
        registry
            .store()
            .status()
            .await
            .expect("status")
            .revision
            .to_string()
    }

    async fn next(events: &mut WatchEvents<Pod>) -> Arc<Pod> {
        match events
            .next()
            .await
            .expect("the watch ended")
            .expect("watch")
        {
            WatchEvent::Added(pod) | WatchEvent::Modified(pod) => pod,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A registry whose pod cache runs, its pod stash, and a watch of pods from now on.
    async fn watched_pods() -> (Registry, Arc<Stash>, WatchEvents<Pod>) {
        let registry = Registry::new(MemStore::new());
        let cache = registry.watch_cache().clone();
        cache.start::<Pod>(&registry).await;
        let stash = cache.stash::<Pod>().expect("pods are handed off");
        let from = head(&registry).await;
        let events = cache
            .watch::<Pod>(&registry, None, &WatchOptions::from_version(from))
            .await
            .expect("watch");
        (registry, stash, events)
    }

    #[tokio::test]
    async fn the_feeder_takes_the_objects_the_registry_wrote() {
        let (registry, stash, mut events) = watched_pods().await;
        let a = registry.create(pod("default", "a", "web")).await.unwrap();
        let b = registry.create(pod("default", "b", "web")).await.unwrap();
        let mut status = a.clone();
        status.status.get_or_insert_with(Default::default).phase =
            Some(crate::resources::PodPhase::Running);
        let a2 = registry.update_status(status).await.unwrap();
        for written in [a, b, a2] {
            // Exactly what the write returned (and, in debug builds, what decoding gives).
            let seen = next(&mut events).await;
            assert_eq!(format!("{seen:?}"), format!("{written:?}"));
        }
        assert_eq!(stash.hits(), 3);
        assert_eq!(stash.len(), 0);
    }

    #[tokio::test]
    async fn other_writes_and_failed_writes_are_decoded() {
        let (registry, stash, mut events) = watched_pods().await;
        // Written around the registry: nothing stashed, decoded.
        let mut outside = pod("default", "outside", "web");
        outside.metadata.uid = "u1".into();
        let json = serde_json::to_vec_pretty(&outside).unwrap();
        registry
            .store()
            .put(object_key::<Pod>("default", "outside"), json)
            .await
            .unwrap();
        let seen = next(&mut events).await;
        assert_eq!(seen.metadata.uid, "u1");
        assert_eq!(stash.hits(), 0);
        // A create of a name taken: its entry is withdrawn.
        let created = registry.create(pod("default", "a", "web")).await.unwrap();
        next(&mut events).await;
        assert_eq!(stash.hits(), 1);
        let err = registry
            .create(pod("default", "a", "web"))
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::AlreadyExists { .. }), "{err:?}");
        assert_eq!(stash.len(), 0);
        // An entry whose bytes are not the event's value is left, and the event decoded.
        let mut other = created.clone();
        other.metadata.resource_version.clear();
        other.metadata.labels.insert("stale".into(), "yes".into());
        let key = object_key::<Pod>("default", "a");
        let stale = crate::registry::encode(&other).unwrap();
        stash.put(&key, &stale, &other).written();
        let mut update = created.clone();
        update.metadata.labels.insert("tier".into(), "front".into());
        // (The update stashes its own entry over the stale one, so write around it.)
        update.metadata.resource_version.clear();
        let bytes = crate::registry::encode(&update).unwrap();
        registry.store().put(key.clone(), bytes).await.unwrap();
        let seen = next(&mut events).await;
        assert_eq!(
            seen.metadata.labels.get("tier").map(String::as_str),
            Some("front")
        );
        assert_eq!(stash.hits(), 1);
        assert_eq!(stash.len(), 1);
    }

    #[tokio::test]
    async fn kinds_without_a_cache_stash_nothing() {
        let registry = Registry::new(MemStore::new());
        registry
            .create(Node {
                metadata: crate::ObjectMeta::named("n1"),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(registry.watch_cache().stash::<Node>().is_none());
    }
}
