//! The agent's cache of the ConfigMaps and Secrets its pods' volumes refer to (kubelet's
//! `Watch` change-detection strategy). Each referenced object gets one list+watch of its own,
//! restricted by the field selector `metadata.name=NAME` (so that a node may be allowed it
//! like a `get` of that object), shared by every pod that uses it and stopped when the last
//! of them lets go. A change wakes the workers of those pods, which rewrite their volumes
//! from the cache at once, instead of re-reading every object of every pod each period. An
//! immutable object is read once and not watched: it cannot change.

use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use orchestra_api::resources::{ConfigMap, Secret};
use orchestra_api::watcher::{self, Event, WatcherConfig};
use orchestra_api::{Client, FieldSelector, Resource};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// The kinds the cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// A cached object (a ConfigMap or a Secret, told apart by its key's [`Kind`]).
type Object = Arc<dyn Any + Send + Sync>;

/// A kind the cache can hold.
pub trait Cached: Resource + Clone {
    /// Its [`Kind`].
    const CACHE_KIND: Kind;
    /// Whether the object is marked immutable.
    fn is_immutable(&self) -> bool;
}

impl Cached for ConfigMap {
    const CACHE_KIND: Kind = Kind::ConfigMap;
    fn is_immutable(&self) -> bool {
        self.immutable == Some(true)
    }
}

impl Cached for Secret {
    const CACHE_KIND: Kind = Kind::Secret;
    fn is_immutable(&self) -> bool {
        self.immutable == Some(true)
    }
}

/// An object: (kind, namespace, name).
pub type Key = (Kind, String, String);

struct Entry {
    /// The pods (by uid) that use it.
    users: HashSet<String>,
    /// `None` until the first list answered; then the object, or `None` when it does not exist.
    state: Option<Option<Object>>,
    /// The watch (it ends by itself for an immutable object).
    watch: Option<AbortHandle>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// The pods that use objects, by uid.
    pods: HashMap<String, PodEntry>,
}

struct PodEntry {
    /// Its worker's wake-up.
    notify: Arc<Notify>,
    /// The objects it uses.
    keys: BTreeSet<Key>,
    /// Whether one of them changed since its worker last looked.
    changed: bool,
}

/// The agent's object cache (see the [module docs](self)). Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct ObjectCache {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectCache({} objects)", self.lock().entries.len())
    }
}

impl ObjectCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `keys` the objects pod `uid` uses (woken through `notify` when one changes):
    /// starts the watches of new ones and lets go of those it no longer uses. Cheap when
    /// nothing changed.
    pub fn track<C: Client>(
        &self,
        client: &C,
        uid: &str,
        notify: &Arc<Notify>,
        keys: BTreeSet<Key>,
    ) {
        let inner = &mut *self.lock();
        if inner.pods.get(uid).is_some_and(|pod| pod.keys == keys) {
            return;
        }
        let old = match inner.pods.get_mut(uid) {
            Some(pod) => std::mem::replace(&mut pod.keys, keys.clone()),
            None => {
                inner.pods.insert(
                    uid.to_owned(),
                    PodEntry {
                        notify: notify.clone(),
                        keys: keys.clone(),
                        changed: false,
                    },
                );
                BTreeSet::new()
            }
        };
        for key in old.difference(&keys) {
            release(inner, uid, key);
        }
        for key in keys.difference(&old) {
            let entry = inner.entries.entry(key.clone()).or_insert_with(|| Entry {
                users: HashSet::new(),
                state: None,
                watch: Some(self.spawn_watch(client, key.clone())),
            });
            entry.users.insert(uid.to_owned());
        }
        if keys.is_empty() {
            inner.pods.remove(uid);
        }
    }

    /// Lets go of everything pod `uid` uses (its pod is gone or finished).
    pub fn forget(&self, uid: &str) {
        let inner = &mut *self.lock();
        if let Some(pod) = inner.pods.remove(uid) {
            for key in &pod.keys {
                release(inner, uid, key);
            }
        }
    }

    /// The cached object: `None` when the cache does not know it (yet), `Some(None)` when it
    /// does not exist.
    pub fn get<R: Cached>(&self, namespace: &str, name: &str) -> Option<Option<R>> {
        let key = (R::CACHE_KIND, namespace.to_owned(), name.to_owned());
        let inner = self.lock();
        let state = inner.entries.get(&key)?.state.as_ref()?;
        Some(state.as_ref().and_then(|o| o.downcast_ref::<R>()).cloned())
    }

    /// Whether a watch runs for the object (for tests and diagnostics).
    pub fn is_watching(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.lock()
            .entries
            .get(&key)
            .is_some_and(|e| e.watch.as_ref().is_some_and(|w| !w.is_finished()))
    }

    /// Whether the cache holds the object (a pod uses it).
    pub fn contains(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.lock().entries.contains_key(&key)
    }

    fn spawn_watch<C: Client>(&self, client: &C, key: Key) -> AbortHandle {
        let task = match key.0 {
            Kind::ConfigMap => {
                tokio::spawn(follow::<ConfigMap, C>(self.clone(), client.clone(), key))
            }
            Kind::Secret => tokio::spawn(follow::<Secret, C>(self.clone(), client.clone(), key)),
        };
        task.abort_handle()
    }

    /// Stores what the watch saw and wakes the object's users.
    fn store(&self, key: &Key, object: Option<Object>) {
        let inner = &mut *self.lock();
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        entry.state = Some(object);
        for uid in &entry.users {
            if let Some(pod) = inner.pods.get_mut(uid) {
                pod.changed = true;
                pod.notify.notify_one();
            }
        }
    }

    /// Whether an object pod `uid` uses changed since the last call (and clears it).
    pub fn take_changed(&self, uid: &str) -> bool {
        self.lock()
            .pods
            .get_mut(uid)
            .is_some_and(|pod| std::mem::take(&mut pod.changed))
    }
}

fn release(inner: &mut Inner, uid: &str, key: &Key) {
    if let Some(entry) = inner.entries.get_mut(key) {
        entry.users.remove(uid);
        if entry.users.is_empty() {
            if let Some(watch) = &entry.watch {
                watch.abort();
            }
            inner.entries.remove(key);
        }
    }
}

/// Lists and watches one object by name until aborted, or until it is seen immutable.
async fn follow<R: Cached, C: Client>(cache: ObjectCache, client: C, key: Key) {
    let (_, namespace, name) = &key;
    let config = WatcherConfig::default()
        .namespace(namespace.clone())
        .fields(FieldSelector::equals("metadata.name", name.clone()));
    let events = watcher::watcher::<R, C>(client, config);
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let object = match event {
            Ok(Event::Restarted(objects)) => objects.into_iter().find(|o| o.meta().name == *name),
            Ok(Event::Applied(object)) => Some(object),
            Ok(Event::Deleted(_)) => None,
            Err(err) => {
                tracing::warn!(%namespace, %name, kind = R::KIND, %err, "watching failed; retrying");
                continue;
            }
        };
        let immutable = object.as_ref().is_some_and(|o| o.is_immutable());
        cache.store(&key, object.map(|o| o as Object));
        if immutable {
            // It cannot change: stop watching, keep the object.
            return;
        }
    }
}
