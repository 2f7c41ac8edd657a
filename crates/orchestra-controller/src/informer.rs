//! Shared informers: one watch and one cache per kind, shared by every controller of a
//! process.
//!
//! [`SharedInformers::informer`] starts, on first use, a task that lists and watches the kind
//! (the `orchestra_api` watcher with its retries), applies every event to a
//! [`reflector::Store`] and then broadcasts a [`Notification`] (with the object's previous
//! state) to the subscribers. Cache and notifications share the watcher's `Arc`s (with an
//! in-process client, the API watch cache's own objects): no object is copied on the way. Later calls for the same kind return the same [`Informer`].
//! [`Informer::revision`] tells how far the cache has caught up, so that a controller can wait
//! until it sees its own writes before it decides again.

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use orchestra_api::reflector::{self, ObjectKey, ReflectorError, Store};
use orchestra_api::watcher::{self, Event, WatcherConfig};
use orchestra_api::{Client, Resource};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

/// How many notifications a slow subscriber may fall behind before it must resync from the
/// cache. A resync loses nothing but re-queues every object; at 4,096 the controllers'
/// feeders lagged 370 times while `orchestra bench cluster` loaded 30,000 pods on 2 busy
/// cores. The slots are allocated up front (a few MB per kind at this size).
const NOTIFICATION_BUFFER: usize = 16_384;

/// A change the cache has applied, as subscribers receive it.
#[derive(Debug)]
pub enum Notification<K> {
    /// A (re)list replaced the cache: `objects` is everything now, `removed` what was cached
    /// before and is gone.
    Resync {
        /// Every object after the list.
        objects: Vec<Arc<K>>,
        /// The objects the list no longer has.
        removed: Vec<Arc<K>>,
    },
    /// An object was created or changed.
    Applied {
        /// Its previous state, if it was cached.
        old: Option<Arc<K>>,
        /// Its new state.
        new: Arc<K>,
    },
    /// An object was deleted; its last state.
    Deleted(Arc<K>),
}

impl<K> Notification<K> {
    /// Every object the notification concerns, previous states included.
    pub fn objects(&self) -> Vec<&Arc<K>> {
        match self {
            Notification::Resync { objects, removed } => objects.iter().chain(removed).collect(),
            Notification::Applied { old, new } => old.iter().chain(Some(new)).collect(),
            Notification::Deleted(object) => vec![object],
        }
    }
}

/// Aborts the informer's task when the last handle goes.
#[derive(Debug)]
struct TaskGuard(AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One kind's shared watch and cache. Cheap to clone.
pub struct Informer<K> {
    store: Store<K>,
    notifications: broadcast::Sender<Arc<Notification<K>>>,
    revision: watch::Receiver<i64>,
    _task: Arc<TaskGuard>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            notifications: self.notifications.clone(),
            revision: self.revision.clone(),
            _task: Arc::clone(&self._task),
        }
    }
}

impl<K> std::fmt::Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("revision", &*self.revision.borrow())
            .finish_non_exhaustive()
    }
}

impl<K: Resource> Informer<K> {
    /// The cache.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// A receiver of every later notification.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notification<K>>> {
        self.notifications.subscribe()
    }

    /// Waits until the first complete list is cached.
    pub async fn wait_until_ready(&self) -> Result<(), ReflectorError> {
        self.store.wait_until_ready().await
    }

    /// The highest resourceVersion the cache has applied (0 before anything).
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// Waits until the cache has applied resourceVersion `revision` (a write's), so that it
    /// reflects that write and everything before it.
    pub async fn wait_for_revision(&self, revision: i64) {
        let mut receiver = self.revision.clone();
        // An error means the informer task ended: nothing will ever arrive, so stop waiting.
        let _ = receiver.wait_for(|seen| *seen >= revision).await;
    }
}

/// Creates and shares [`Informer`]s over one client. Cheap to clone; the watches stop when the
/// last clone and the last informer handle are dropped, or at [`SharedInformers::shut_down`].
#[derive(Clone)]
pub struct SharedInformers<C> {
    client: C,
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    informers: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    configs: HashMap<TypeId, WatcherConfig>,
    tasks: Vec<AbortHandle>,
}

impl<C> std::fmt::Debug for SharedInformers<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInformers").finish_non_exhaustive()
    }
}

impl<C: Client> SharedInformers<C> {
    /// Informers over `client`.
    pub fn new(client: C) -> Self {
        SharedInformers {
            client,
            inner: Arc::default(),
        }
    }

    /// The client the informers watch through (controllers write through it too).
    pub fn client(&self) -> &C {
        &self.client
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets how kind `K` is watched (namespace, selectors, backoff) before its informer starts;
    /// the default watches every object of the kind.
    pub fn configure<K: Resource>(&self, config: WatcherConfig) {
        self.registry().configs.insert(TypeId::of::<K>(), config);
    }

    /// The informer of kind `K`, started on first use (must be called within a tokio
    /// runtime).
    pub fn informer<K: Resource>(&self) -> Informer<K> {
        let mut registry = self.registry();
        if let Some(informer) = registry
            .informers
            .get(&TypeId::of::<K>())
            .and_then(|existing| existing.downcast_ref::<Informer<K>>())
        {
            return informer.clone();
        }
        let config = registry
            .configs
            .get(&TypeId::of::<K>())
            .cloned()
            .unwrap_or_default();
        let (store, writer) = reflector::store::<K>();
        let (notifications, _) = broadcast::channel(NOTIFICATION_BUFFER);
        let (revision_tx, revision) = watch::channel(0);
        let events = watcher::watcher::<K, C>(self.client.clone(), config);
        let task = tokio::spawn(run_informer(
            events,
            writer,
            store.clone(),
            notifications.clone(),
            revision_tx,
        ));
        registry.tasks.push(task.abort_handle());
        let informer = Informer {
            store,
            notifications,
            revision,
            _task: Arc::new(TaskGuard(task.abort_handle())),
        };
        registry
            .informers
            .insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }

    /// The cache of kind `K` (its informer started on first use).
    pub fn store<K: Resource>(&self) -> Store<K> {
        self.informer::<K>().store().clone()
    }

    /// Stops every informer's watch; their caches stay as they are.
    pub fn shut_down(&self) {
        let mut registry = self.registry();
        for task in registry.tasks.drain(..) {
            task.abort();
        }
        registry.informers.clear();
    }
}

/// The resourceVersion of an object as a number (0 when it has none or it is not a number).
fn revision_of<K: Resource>(object: &K) -> i64 {
    object.meta().resource_version.parse().unwrap_or(0)
}

async fn run_informer<K: Resource>(
    mut events: watcher::WatcherStream<K>,
    mut writer: reflector::Writer<K>,
    reader: Store<K>,
    notifications: broadcast::Sender<Arc<Notification<K>>>,
    revision: watch::Sender<i64>,
) {
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(kind = K::KIND, error = %err, "watch failed; retrying");
                continue;
            }
        };
        let notification = match &event {
            Event::Restarted(objects) => {
                let before = reader.list();
                writer.apply(&event);
                let now: BTreeSet<ObjectKey> =
                    objects.iter().map(|o| ObjectKey::of(o.as_ref())).collect();
                Notification::Resync {
                    objects: reader.list(),
                    removed: before
                        .into_iter()
                        .filter(|old| !now.contains(&ObjectKey::of(old.as_ref())))
                        .collect(),
                }
            }
            Event::Applied(object) => {
                let meta = object.meta();
                let old = reader.get(&meta.namespace, &meta.name);
                writer.apply(&event);
                Notification::Applied {
                    old,
                    new: Arc::clone(object),
                }
            }
            Event::Deleted(object) => {
                writer.apply(&event);
                Notification::Deleted(Arc::clone(object))
            }
        };
        let highest = event
            .objects()
            .iter()
            .map(|o| revision_of(o.as_ref()))
            .max()
            .unwrap_or(0);
        revision.send_if_modified(|seen| {
            if highest > *seen {
                *seen = highest;
                true
            } else {
                false
            }
        });
        // No subscriber is fine: the cache is what matters then.
        let _ = notifications.send(Arc::new(notification));
    }
}
