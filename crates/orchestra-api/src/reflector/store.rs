//! The cache itself: [`Store`] (the cloneable readers) and [`Writer`] (the one writer) over a
//! shared map of objects and its secondary indexes. The map keeps the watcher's `Arc`s as
//! they come (no copy), so the cache shares its objects with the watch cache they came from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use crate::resource::Resource;
use crate::watcher::Event;

/// What went wrong using a cache.
#[derive(Debug, thiserror::Error)]
pub enum ReflectorError {
    /// No index has this name; register it with [`Store::add_index`] first.
    #[error("no index named {0:?}; register it with add_index first")]
    UnknownIndex(String),
    /// An index with this name exists already; pick another name, or reuse it.
    #[error("an index named {0:?} exists already; reuse it or pick another name")]
    IndexExists(String),
    /// The writer was dropped before the first complete list arrived: the cache will never be
    /// ready (the reflector stream stopped; start it again).
    #[error("the cache's writer stopped before the first list arrived; restart the reflector")]
    WriterDropped,
}

/// An index function: the values an object is found under.
pub type IndexFn<R> = Arc<dyn Fn(&R) -> Vec<String> + Send + Sync>;

/// An object's identity in the cache: namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `object`.
    pub fn of<R: Resource>(object: &R) -> Self {
        let meta = object.meta();
        ObjectKey {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
        }
    }
}

/// One secondary index: its function and the keys under each value.
struct Index<R> {
    func: IndexFn<R>,
    entries: HashMap<String, BTreeSet<ObjectKey>>,
}

impl<R> Index<R> {
    fn insert(&mut self, key: &ObjectKey, object: &R) {
        for value in (self.func)(object) {
            self.entries.entry(value).or_default().insert(key.clone());
        }
    }

    fn remove(&mut self, key: &ObjectKey, object: &R) {
        for value in (self.func)(object) {
            if let Some(keys) = self.entries.get_mut(&value) {
                keys.remove(key);
                if keys.is_empty() {
                    self.entries.remove(&value);
                }
            }
        }
    }
}

/// The objects and their indexes.
struct State<R> {
    objects: BTreeMap<ObjectKey, Arc<R>>,
    indexes: BTreeMap<String, Index<R>>,
}

impl<R: Resource> State<R> {
    fn upsert(&mut self, object: &Arc<R>) {
        let key = ObjectKey::of(object.as_ref());
        self.remove(&key);
        let object = Arc::clone(object);
        for index in self.indexes.values_mut() {
            index.insert(&key, &object);
        }
        self.objects.insert(key, object);
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.objects.remove(key) {
            for index in self.indexes.values_mut() {
                index.remove(key, &old);
            }
        }
    }

    fn replace(&mut self, objects: &[Arc<R>]) {
        self.objects.clear();
        for index in self.indexes.values_mut() {
            index.entries.clear();
        }
        for object in objects {
            self.upsert(object);
        }
    }
}

/// Shared state of one cache.
struct Shared<R> {
    state: RwLock<State<R>>,
}

impl<R> Shared<R> {
    fn read(&self) -> RwLockReadGuard<'_, State<R>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way readers
        // could misuse more than a stale entry, so poisoning is ignored.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<R>> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A reader of the cache: cheap to clone (an `Arc`), safe to share between tasks and
/// controllers. Objects come out as `Arc<R>`, not copied.
pub struct Store<R> {
    shared: Arc<Shared<R>>,
    ready: watch::Receiver<bool>,
}

impl<R> Clone for Store<R> {
    fn clone(&self) -> Self {
        Store {
            shared: Arc::clone(&self.shared),
            ready: self.ready.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Store<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.read();
        f.debug_struct("Store")
            .field("objects", &state.objects.len())
            .field("indexes", &state.indexes.keys().collect::<Vec<_>>())
            .field("ready", &*self.ready.borrow())
            .finish()
    }
}

impl<R: Resource> Store<R> {
    /// The object `namespace/name` (namespace `""` for cluster-scoped kinds), if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<R>> {
        let key = ObjectKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.shared.read().objects.get(&key).cloned()
    }

    /// Every cached object, in (namespace, name) order.
    pub fn list(&self) -> Vec<Arc<R>> {
        self.shared.read().objects.values().cloned().collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.shared.read().objects.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first complete list has arrived.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first complete list has arrived (at once if it has);
    /// [`ReflectorError::WriterDropped`] if it never will.
    pub async fn wait_until_ready(&self) -> Result<(), ReflectorError> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|ready| *ready)
            .await
            .map(|_| ())
            .map_err(|_| ReflectorError::WriterDropped)
    }

    /// Registers a secondary index named `name`: `func` gives the values each object is found
    /// under by [`Store::by_index`]. Built over the current contents at once and kept up to
    /// date after. [`ReflectorError::IndexExists`] if the name is taken.
    pub fn add_index<F>(&self, name: impl Into<String>, func: F) -> Result<(), ReflectorError>
    where
        F: Fn(&R) -> Vec<String> + Send + Sync + 'static,
    {
        let name = name.into();
        let mut state = self.shared.write();
        if state.indexes.contains_key(&name) {
            return Err(ReflectorError::IndexExists(name));
        }
        let mut index = Index {
            func: Arc::new(func) as IndexFn<R>,
            entries: HashMap::new(),
        };
        for (key, object) in &state.objects {
            index.insert(key, object);
        }
        state.indexes.insert(name, index);
        Ok(())
    }

    /// The objects found under `value` in the index `name`, in (namespace, name) order.
    pub fn by_index(&self, name: &str, value: &str) -> Result<Vec<Arc<R>>, ReflectorError> {
        let state = self.shared.read();
        let index = state
            .indexes
            .get(name)
            .ok_or_else(|| ReflectorError::UnknownIndex(name.to_owned()))?;
        Ok(index
            .entries
            .get(value)
            .into_iter()
            .flatten()
            .filter_map(|key| state.objects.get(key).cloned())
            .collect())
    }

    /// The values of the index `name` that have at least one object, sorted.
    pub fn index_values(&self, name: &str) -> Result<Vec<String>, ReflectorError> {
        let state = self.shared.read();
        let index = state
            .indexes
            .get(name)
            .ok_or_else(|| ReflectorError::UnknownIndex(name.to_owned()))?;
        let mut values: Vec<String> = index.entries.keys().cloned().collect();
        values.sort();
        Ok(values)
    }
}

/// The one writer of a cache (not cloneable): applies watcher events. Dropping it before the
/// first list makes [`Store::wait_until_ready`] fail instead of waiting forever.
pub struct Writer<R> {
    shared: Arc<Shared<R>>,
    ready: watch::Sender<bool>,
}

impl<R> std::fmt::Debug for Writer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl<R: Resource> Writer<R> {
    /// A new, empty cache: its first reader and its writer.
    pub fn new() -> (Store<R>, Writer<R>) {
        let shared = Arc::new(Shared {
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                indexes: BTreeMap::new(),
            }),
        });
        let (sender, receiver) = watch::channel(false);
        let reader = Store {
            shared: Arc::clone(&shared),
            ready: receiver,
        };
        (
            reader,
            Writer {
                shared,
                ready: sender,
            },
        )
    }

    /// Another reader of this writer's cache.
    pub fn reader(&self) -> Store<R> {
        Store {
            shared: Arc::clone(&self.shared),
            ready: self.ready.subscribe(),
        }
    }

    /// Applies one event: `Restarted` replaces everything (and makes the cache ready),
    /// `Applied` inserts or replaces one object, `Deleted` removes it; indexes follow.
    pub fn apply(&mut self, event: &Event<R>) {
        {
            let mut state = self.shared.write();
            match event {
                Event::Restarted(objects) => state.replace(objects),
                Event::Applied(object) => state.upsert(object),
                Event::Deleted(object) => state.remove(&ObjectKey::of(object.as_ref())),
            }
        }
        if matches!(event, Event::Restarted(_)) {
            self.ready.send_replace(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reflector::index::pods_by_node;
    use crate::testing::pod;

    fn on(node: &str, name: &str) -> Arc<crate::resources::Pod> {
        let mut p = pod("ns", name, "web");
        p.spec.node_name = node.into();
        Arc::new(p)
    }

    fn names(objects: Vec<Arc<crate::resources::Pod>>) -> Vec<String> {
        objects.iter().map(|p| p.metadata.name.clone()).collect()
    }

    #[test]
    fn indexes_follow_every_event() {
        let (reader, mut writer) = Writer::new();
        reader.add_index("node", pods_by_node).expect("add");
        writer.apply(&Event::Restarted(vec![on("n1", "a"), on("n1", "b")]));
        assert_eq!(
            names(reader.by_index("node", "n1").expect("index")),
            ["a", "b"]
        );
        writer.apply(&Event::Applied(on("n2", "a")));
        assert_eq!(names(reader.by_index("node", "n1").expect("index")), ["b"]);
        assert_eq!(names(reader.by_index("node", "n2").expect("index")), ["a"]);
        writer.apply(&Event::Deleted(on("n1", "b")));
        assert_eq!(reader.index_values("node").expect("values"), ["n2"]);
        writer.apply(&Event::Restarted(vec![on("n3", "c")]));
        assert_eq!(reader.index_values("node").expect("values"), ["n3"]);
        assert_eq!(names(reader.list()), ["c"]);
    }

    #[test]
    fn the_cache_keeps_the_events_objects_without_copying() {
        let (reader, mut writer) = Writer::new();
        reader.add_index("node", pods_by_node).expect("add");
        let a = on("n1", "a");
        writer.apply(&Event::Restarted(vec![a.clone()]));
        let cached = reader.get("ns", "a").expect("cached");
        assert!(Arc::ptr_eq(&cached, &a), "the list's object is shared");
        let changed = on("n2", "a");
        writer.apply(&Event::Applied(changed.clone()));
        let cached = reader.get("ns", "a").expect("cached");
        assert!(
            Arc::ptr_eq(&cached, &changed),
            "the change's object is shared"
        );
        let indexed = reader.by_index("node", "n2").expect("index");
        assert!(
            Arc::ptr_eq(&indexed[0], &changed),
            "the index finds the same object"
        );
    }

    #[test]
    fn index_names_are_checked() {
        let (reader, mut writer) = Writer::new();
        writer.apply(&Event::Applied(on("n1", "a")));
        reader.add_index("node", pods_by_node).expect("add");
        assert_eq!(
            names(reader.by_index("node", "n1").expect("built at once")),
            ["a"]
        );
        assert!(matches!(
            reader.add_index("node", pods_by_node),
            Err(ReflectorError::IndexExists(_))
        ));
        assert!(matches!(
            reader.by_index("owner", "x"),
            Err(ReflectorError::UnknownIndex(_))
        ));
    }

    #[tokio::test]
    async fn ready_after_the_first_list_and_never_without_a_writer() {
        let (reader, mut writer) = Writer::<crate::resources::Pod>::new();
        assert!(!reader.is_ready());
        writer.apply(&Event::Applied(on("n1", "a")));
        assert!(!reader.is_ready(), "an event is not a complete list");
        writer.apply(&Event::Restarted(Vec::new()));
        reader.wait_until_ready().await.expect("ready");
        drop(writer);
        reader.wait_until_ready().await.expect("still ready");

        let (reader, writer) = Writer::<crate::resources::Pod>::new();
        drop(writer);
        assert!(matches!(
            reader.wait_until_ready().await,
            Err(ReflectorError::WriterDropped)
        ));
    }
}
