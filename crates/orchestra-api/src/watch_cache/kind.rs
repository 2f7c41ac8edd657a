//! The cache of one kind: one list and one store watch feed the current objects and a
//! bounded window of recent changes; every change is decoded once, kept as an `Arc`, and
//! queued for the watches it may concern (see [`index`](super::index)). A change this
//! process's registry wrote is not decoded at all: the write left its typed object in the
//! kind's [`Stash`], which the feeder takes when the event's value is the bytes it put.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use orchestra_store::{EventKind, KeyValue, RangeRequest, Store, StoreError, WatchRequest};
use tokio::sync::{Notify, mpsc};

use super::CacheOptions;
use super::filter::Filter;
use super::index::{Subscriber, Subscribers};
use super::stash::Stash;
use super::subscription::Subscription;
use crate::registry::ApiError;
use crate::scheme::DynResource;

/// An object of any kind.
pub(crate) type Object = Box<dyn DynResource>;

/// Decodes a stored key-value at its mod_revision.
pub(crate) type Decode = Arc<dyn Fn(&KeyValue) -> Result<Object, ApiError> + Send + Sync>;

/// One change to a kind, shared by every watch it concerns.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) revision: i64,
    pub(crate) deleted: bool,
    /// The new state; for a deletion, the last state at the deletion's revision.
    pub(crate) object: Arc<Object>,
    /// The state before (absent for a creation).
    pub(crate) prev: Option<Arc<Object>>,
    /// `object` as the API server's JSON, encoded by the first remote watch that needs it
    /// (in-process watches never do).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) json: OnceLock<Bytes>,
}

/// Where a kind's objects are.
#[derive(Clone)]
pub(crate) struct Source {
    pub(crate) store: Arc<dyn Store>,
    /// `/registry/{plural}/`.
    pub(crate) prefix: String,
    pub(crate) decode: Decode,
    /// Where the registry's writes leave the objects they encode, if they do for this kind
    /// (see [`stash`](super::stash)): taken instead of decoding.
    pub(crate) stash: Option<Arc<Stash>>,
    /// The kind, for logs.
    pub(crate) kind: &'static str,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) ready: bool,
    /// The cache has seen every change up to here.
    pub(crate) revision: i64,
    /// The history covers the changes after this revision.
    pub(crate) oldest: i64,
    /// By store key, so that sorting by key is the store's order.
    pub(crate) objects: HashMap<Bytes, Arc<Object>>,
    history: VecDeque<Arc<Entry>>,
    pub(crate) subscribers: Subscribers,
}

/// The cache of one kind. See the [module docs](self).
pub(crate) struct KindCache {
    state: Mutex<State>,
    ready: Notify,
    /// Notified whenever `State::revision` moves (and when the cache becomes ready).
    advanced: Notify,
    /// Asks the feeder for a progress notification now, so that an idle kind's revision
    /// catches up with the store without waiting for the next tick.
    progress_wanted: Notify,
    options: CacheOptions,
    stash: Option<Arc<Stash>>,
}

impl KindCache {
    /// A cache and the future that feeds it (forever: spawn it, and abort it to stop). The
    /// first list reads `start` when given and not compacted (so that the watch that
    /// creates a cache lazily is served from it), else the latest state.
    pub(crate) fn new(
        source: Source,
        options: CacheOptions,
        start: Option<i64>,
    ) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let cache = Arc::new(KindCache {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            advanced: Notify::new(),
            progress_wanted: Notify::new(),
            options,
            stash: source.stash.clone(),
        });
        let feeder = feed(cache.clone(), source, start);
        (cache, feeder)
    }

    /// The stash the registry's writes of this kind leave their objects in, if any.
    pub(crate) fn stash(&self) -> Option<&Arc<Stash>> {
        self.stash.as_ref()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the cache has listed and is watching.
    pub(crate) async fn wait_ready(&self) {
        loop {
            let notified = self.ready.notified();
            if self.lock().ready {
                return;
            }
            notified.await;
        }
    }

    /// A watch of the changes after `filter.from`, or `None` when the cache cannot serve it
    /// (not ready, or `from` is older than the window).
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        filter: Filter,
        bookmark_interval: Option<Duration>,
    ) -> Option<Subscription> {
        let (sender, receiver) = mpsc::channel(self.options.client_buffer.max(1));
        let cut = Arc::new(AtomicBool::new(false));
        let (id, backlog) = {
            let mut state = self.lock();
            if !state.ready || filter.from < state.oldest {
                return None;
            }
            let backlog: VecDeque<Arc<Entry>> = state
                .history
                .iter()
                .filter(|e| e.revision > filter.from)
                .cloned()
                .collect();
            let id = state.subscribers.insert(Subscriber {
                sender,
                cut: cut.clone(),
                key: filter.index_key(),
            });
            (id, backlog)
        };
        Some(Subscription::new(
            self.clone(),
            id,
            backlog,
            receiver,
            cut,
            filter,
            bookmark_interval,
        ))
    }

    /// The selected objects in the store's key order, and the revision they are at; `None`
    /// until the cache is ready.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn snapshot(&self, filter: &Filter) -> Option<(Vec<Arc<Object>>, i64)> {
        let state = self.lock();
        if !state.ready {
            return None;
        }
        Some(Self::select(&state, filter))
    }

    /// [`snapshot`](Self::snapshot) once the cache has seen every change up to `revision`
    /// (the store's revision when a consistent read was asked for), so that it holds what a
    /// consistent list from the store would: it waits for the cache to be ready and asks the
    /// store for a progress notification while the cache is behind.
    pub(crate) async fn snapshot_from(
        &self,
        filter: &Filter,
        revision: i64,
    ) -> (Vec<Arc<Object>>, i64) {
        loop {
            let advanced = self.advanced.notified();
            tokio::pin!(advanced);
            // Registered before the check, so that an advance in between is not missed.
            advanced.as_mut().enable();
            {
                let state = self.lock();
                if state.ready && state.revision >= revision {
                    return Self::select(&state, filter);
                }
                if state.ready {
                    self.progress_wanted.notify_one();
                }
            }
            advanced.await;
        }
    }

    /// The selected objects in the store's key order, and the revision they are at.
    fn select(state: &State, filter: &Filter) -> (Vec<Arc<Object>>, i64) {
        let mut items: Vec<(&Bytes, &Arc<Object>)> = state
            .objects
            .iter()
            .filter(|(_, object)| filter.matches(object))
            .collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        (
            items.into_iter().map(|(_, o)| o.clone()).collect(),
            state.revision,
        )
    }

    /// The number of watches it serves now.
    pub(crate) fn subscriber_count(&self) -> usize {
        let mut state = self.lock();
        state.subscribers.prune();
        state.subscribers.len()
    }

    /// Records a change and queues it for the watches it concerns.
    fn apply(&self, state: &mut State, entry: Entry) {
        let entry = Arc::new(entry);
        state.history.push_back(entry.clone());
        while state.history.len() > self.options.history.max(1) {
            if let Some(dropped) = state.history.pop_front() {
                state.oldest = dropped.revision;
            }
        }
        state.revision = state.revision.max(entry.revision);
        state.subscribers.send(&entry);
    }
}

/// Lists, then watches, applying every change; after a failure, drops the watches (they end
/// with an error and watch again) and starts over.
async fn feed(cache: Arc<KindCache>, source: Source, mut start: Option<i64>) {
    loop {
        if let Err(err) = feed_once(&cache, &source, start.take()).await {
            tracing::warn!(kind = source.kind, error = %err, "watch cache restarts");
        }
        *cache.lock() = State::default();
        // The next list holds what the entries left were for; an entry is exact for any
        // event with its bytes, but kept it would only take room.
        if let Some(stash) = &source.stash {
            stash.clear();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The object of a Put event: the one the write stashed when its bytes are the event's
/// value, with what decoding derives from the event (the resourceVersion, from the
/// mod_revision, as `registry::decode_at` sets it); else decoded.
fn object_of(source: &Source, kv: &KeyValue) -> Result<Object, ApiError> {
    let Some(mut object) = source
        .stash
        .as_ref()
        .and_then(|stash| stash.take(&kv.key, &kv.value))
    else {
        return (source.decode)(kv);
    };
    object.meta_mut().resource_version = kv.mod_revision.to_string();
    #[cfg(debug_assertions)]
    check_handoff(source, kv, object.as_ref());
    Ok(object)
}

/// Debug builds: the object handed off is what decoding the event gives, in every field
/// (their `Debug` forms, which show what JSON may not: a `None` against an empty value both
/// skipped) and in JSON.
#[cfg(debug_assertions)]
fn check_handoff(source: &Source, kv: &KeyValue, object: &dyn DynResource) {
    let decoded = (source.decode)(kv).unwrap_or_else(|err| {
        panic!(
            "a {} handed off by a write does not decode from its bytes: {err}",
            source.kind
        )
    });
    assert_eq!(
        format!("{object:?}"),
        format!("{decoded:?}"),
        "a {} handed off by a write differs from its decoding",
        source.kind
    );
    assert_eq!(
        object.to_json().ok(),
        decoded.to_json().ok(),
        "a {} handed off by a write differs from its decoding in JSON",
        source.kind
    );
}

fn store_error(message: &str) -> ApiError {
    ApiError::Internal(StoreError::Other(message.to_owned()))
}

async fn feed_once(cache: &KindCache, source: &Source, start: Option<i64>) -> Result<(), ApiError> {
    let latest = RangeRequest::prefix(source.prefix.clone());
    let (listed, revision) = match start {
        Some(rev) => match source.store.range(latest.clone().at_revision(rev)).await {
            Ok(listed) => (listed, rev),
            // Compacted, or not written yet: the latest state will do.
            Err(_) => {
                let listed = source.store.range(latest).await?;
                let rev = listed.header_revision;
                (listed, rev)
            }
        },
        None => {
            let listed = source.store.range(latest).await?;
            let rev = listed.header_revision;
            (listed, rev)
        }
    };
    let mut objects = HashMap::with_capacity(listed.kvs.len());
    for kv in &listed.kvs {
        objects.insert(kv.key.clone(), Arc::new((source.decode)(kv)?));
    }
    let request = WatchRequest::prefix(source.prefix.clone())
        .from_revision(revision + 1)
        .with_progress_notify();
    let mut events = source.store.watch(request).await?;
    {
        let mut state = cache.lock();
        state.objects = objects;
        state.revision = revision;
        state.oldest = revision;
        state.ready = true;
    }
    cache.ready.notify_waiters();
    cache.advanced.notify_waiters();
    let period = cache
        .options
        .progress_interval
        .max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        let response = tokio::select! {
            _ = ticker.tick() => {
                events.request_progress();
                continue;
            }
            () = cache.progress_wanted.notified() => {
                events.request_progress();
                continue;
            }
            response = events.next() => response,
        };
        let response = response.ok_or_else(|| store_error("the store watch ended"))??;
        if response.is_progress_notify() {
            let mut state = cache.lock();
            state.revision = state.revision.max(response.header_revision);
            drop(state);
            cache.advanced.notify_waiters();
            continue;
        }
        // Decoding is the expensive part: done once, outside the lock, and not at all for
        // the objects this process's registry wrote (taken from the stash).
        let mut decoded = Vec::with_capacity(response.events.len());
        for event in response.events.iter() {
            let object = match event.kind {
                EventKind::Put => Some(object_of(source, &event.kv)?),
                EventKind::Delete => None,
            };
            decoded.push((event, object));
        }
        let mut state = cache.lock();
        for (event, object) in decoded {
            let key = &event.kv.key;
            let revision = event.kv.mod_revision;
            let entry = match object {
                Some(object) => {
                    let object = Arc::new(object);
                    let prev = state.objects.insert(key.clone(), object.clone());
                    Entry {
                        revision,
                        deleted: false,
                        object,
                        prev,
                        json: OnceLock::new(),
                    }
                }
                None => {
                    // A key the cache never saw (deleted before it listed) concerns nobody.
                    let Some(prev) = state.objects.remove(key) else {
                        continue;
                    };
                    let mut last = prev.clone_boxed();
                    last.meta_mut().resource_version = revision.to_string();
                    Entry {
                        revision,
                        deleted: true,
                        object: Arc::new(last),
                        prev: Some(prev),
                        json: OnceLock::new(),
                    }
                }
            };
            cache.apply(&mut state, entry);
        }
        state.revision = state.revision.max(response.header_revision);
        drop(state);
        cache.advanced.notify_waiters();
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use orchestra_store::MemStore;

    use super::*;
    use crate::registry::{decode_kv, encode};
    use crate::resources::Pod;
    use crate::scheme::erase;
    use crate::testing::pod;

    fn source() -> Source {
        Source {
            store: Arc::new(MemStore::new()),
            prefix: "/registry/pods/".into(),
            decode: Arc::new(|kv| decode_kv::<Pod>(kv).map(erase)),
            stash: Some(Arc::new(Stash::new(16))),
            kind: "Pod",
        }
    }

    fn kv(value: Bytes) -> KeyValue {
        KeyValue {
            key: Bytes::from_static(b"/registry/pods/default/a"),
            value,
            create_revision: 7,
            mod_revision: 9,
            version: 2,
            lease: 0,
        }
    }

    #[test]
    fn a_handed_off_object_gets_the_events_resource_version() {
        let source = source();
        let pod = pod("default", "a", "web");
        let bytes = encode(&pod).unwrap();
        let stash = source.stash.clone().unwrap();
        stash
            .put("/registry/pods/default/a", &bytes, &pod)
            .written();
        let object = object_of(&source, &kv(bytes)).unwrap();
        assert_eq!(object.meta().resource_version, "9");
        assert_eq!(stash.hits(), 1);
    }

    /// The debug check catches an object that is not its bytes' decoding.
    #[test]
    #[should_panic(expected = "differs from its decoding")]
    fn a_handoff_unlike_the_decoding_is_caught() {
        let source = source();
        let stored = pod("default", "a", "web");
        let bytes = encode(&stored).unwrap();
        let other = pod("default", "a", "db");
        let stash = source.stash.clone().unwrap();
        stash
            .put("/registry/pods/default/a", &bytes, &other)
            .written();
        let _ = object_of(&source, &kv(bytes));
    }
}
