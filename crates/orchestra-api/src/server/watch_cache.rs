//! The watch cache: per kind, one list and one store watch feed the current objects and a
//! bounded window of recent events, and every client watch from a resourceVersion inside the
//! window is served from memory, each event encoded to JSON once for all watchers.
//!
//! Lists that accept any recent state (`resourceVersion=0`) are served from the same
//! objects; a list without resourceVersion is a consistent read from the store.
//!
//! A watch the cache cannot serve (not ready yet, a resourceVersion older than the window, a
//! watch without resourceVersion, which needs a consistent snapshot) goes to the registry as
//! before, so the contracts (410 for compacted versions, the initial ADDED list) are the
//! registry's exactly. A client that does not keep up (its buffer of events is full) is cut
//! off with an [`ApiError::Expired`] that says so, instead of slowing the others; it watches
//! again from its last resourceVersion.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::grpc::encode;
use crate::registry::{
    ApiError, DynOps, DynRegistry, ListOptions, ObjectList, WatchEvent, WatchOptions,
};
use crate::scheme::DynResource;
use crate::selector::{FieldSelector, Selector};

type Object = Box<dyn DynResource>;

/// How much the cache keeps.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Events kept per kind: watches from a resourceVersion older than this window go to the
    /// store.
    pub history: usize,
    /// Events queued per client before it is cut off as too slow.
    pub client_buffer: usize,
    /// How often the cache asks the store for progress, so that an idle kind's
    /// resourceVersion (and the bookmarks it sends) keep up with the store.
    pub progress_interval: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            history: 4096,
            client_buffer: 4096,
            progress_interval: Duration::from_secs(1),
        }
    }
}

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

/// One change to a kind, as the cache keeps it.
#[derive(Debug)]
struct Entry {
    revision: i64,
    deleted: bool,
    /// The new state; for a deletion, the last state at the deletion's revision.
    object: Arc<Object>,
    /// The state before (absent for a creation).
    prev: Option<Arc<Object>>,
    json: Bytes,
}

struct Subscriber {
    sender: mpsc::Sender<Arc<Entry>>,
    cut: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    ready: bool,
    /// The cache has seen every change up to here.
    revision: i64,
    /// The history covers the changes after this revision.
    oldest: i64,
    objects: HashMap<String, Arc<Object>>,
    history: VecDeque<Arc<Entry>>,
    subscribers: Vec<Subscriber>,
}

/// The cache of one kind.
struct KindCache {
    ops: DynOps,
    state: Mutex<State>,
    ready: tokio::sync::Notify,
}

impl KindCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The watch caches of every kind of a [`DynRegistry`]. See the [module docs](self).
#[derive(Clone)]
pub struct WatchCache {
    kinds: Arc<HashMap<String, Arc<KindCache>>>,
    options: CacheOptions,
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

fn object_key(object: &dyn DynResource) -> String {
    let meta = object.meta();
    format!("{}/{}", meta.namespace, meta.name)
}

impl WatchCache {
    /// Starts one feeder task per kind of `registry`; they stop when `shutdown` completes.
    pub fn start(
        registry: &DynRegistry,
        options: CacheOptions,
        shutdown: impl Fn() -> Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Self {
        let mut kinds = HashMap::new();
        for ops in registry.kinds() {
            let cache = Arc::new(KindCache {
                ops: *ops,
                state: Mutex::new(State::default()),
                ready: tokio::sync::Notify::new(),
            });
            let info = ops.info();
            kinds.insert(key(info.api_version, info.kind), cache.clone());
            let feeder = feed(registry.clone(), cache, options.clone());
            let stop = shutdown();
            tokio::spawn(async move {
                tokio::select! {
                    () = feeder => {}
                    () = stop => {}
                }
            });
        }
        WatchCache {
            kinds: Arc::new(kinds),
            options,
        }
    }

    /// Waits until the cache of a kind has listed and is watching (for tests and warm-up).
    pub async fn wait_ready(&self, api_version: &str, kind: &str) {
        let Some(cache) = self.kinds.get(&key(api_version, kind)) else {
            return;
        };
        loop {
            let notified = cache.ready.notified();
            if cache.lock().ready {
                return;
            }
            notified.await;
        }
    }

    /// Serves a watch from the cache, or `None` when the cache cannot (not ready, no
    /// resourceVersion, one older than the window, or one the store has compacted): the
    /// caller asks the registry then, which answers exactly as without a cache (410 for a
    /// compacted resourceVersion).
    pub async fn watch(
        &self,
        store: &dyn orchestra_store::Store,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<Option<CacheEvents>, ApiError> {
        let Some(cache) = self.kinds.get(&key(api_version, kind)) else {
            return Ok(None);
        };
        let from = match options.resource_version.as_deref() {
            None | Some("" | "0") => return Ok(None),
            Some(rv) => match rv.parse::<i64>() {
                Ok(rev) if rev >= 0 => rev,
                // The registry words the error.
                _ => return Ok(None),
            },
        };
        cache.ops.check_field_selector(&options.field_selector)?;
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
        let (sender, receiver) = mpsc::channel(self.options.client_buffer.max(1));
        let cut = Arc::new(AtomicBool::new(false));
        let backlog: Vec<Arc<Entry>> = {
            let mut state = cache.lock();
            if !state.ready || from < state.oldest {
                return Ok(None);
            }
            let backlog = state
                .history
                .iter()
                .filter(|e| e.revision > from)
                .cloned()
                .collect();
            state.subscribers.push(Subscriber {
                sender,
                cut: cut.clone(),
            });
            backlog
        };
        let filter = Filter {
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from,
        };
        let ticker = options.bookmark_interval.map(|period| {
            let period = period.max(Duration::from_millis(1));
            tokio::time::interval_at(tokio::time::Instant::now() + period, period)
        });
        let stream = Subscription {
            cache: cache.clone(),
            backlog: backlog.into(),
            receiver,
            cut,
            filter,
            ticker,
            done: false,
        };
        Ok(Some(Box::pin(futures::stream::unfold(
            stream,
            Subscription::next,
        ))))
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
        let Some(cache) = self.kinds.get(&key(api_version, kind)) else {
            return Ok(None);
        };
        cache.ops.check_field_selector(&options.field_selector)?;
        let filter = Filter {
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
            labels: options.label_selector.clone(),
            fields: options.field_selector.clone(),
            from: 0,
        };
        let state = cache.lock();
        if !state.ready {
            return Ok(None);
        }
        let mut items: Vec<(&String, &Arc<Object>)> = state
            .objects
            .iter()
            .filter(|(_, object)| filter.matches(object.as_ref().as_ref()))
            .collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        Ok(Some(ObjectList {
            items: items.into_iter().map(|(_, o)| (**o).clone()).collect(),
            resource_version: state.revision.to_string(),
            continue_token: None,
        }))
    }

    /// The number of client watches the cache serves now, per kind.
    pub fn subscribers(&self, api_version: &str, kind: &str) -> usize {
        self.kinds.get(&key(api_version, kind)).map_or(0, |cache| {
            let mut state = cache.lock();
            state.subscribers.retain(|s| !s.sender.is_closed());
            state.subscribers.len()
        })
    }
}

/// Lists, then watches, applying every change; after a failure, drops the clients (they get
/// an error and watch again) and starts over.
async fn feed(registry: DynRegistry, cache: Arc<KindCache>, options: CacheOptions) {
    let info = cache.ops.info();
    loop {
        if let Err(err) = feed_once(&registry, &cache, &options).await {
            tracing::warn!(kind = info.kind, error = %err, "watch cache restarts");
        }
        {
            let mut state = cache.lock();
            *state = State::default();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn feed_once(
    registry: &DynRegistry,
    cache: &KindCache,
    options: &CacheOptions,
) -> Result<(), ApiError> {
    let info = cache.ops.info();
    let list = registry
        .list(info.api_version, info.kind, None, &ListOptions::default())
        .await?;
    let revision: i64 = list.resource_version.parse().unwrap_or_default();
    let watch_options = WatchOptions {
        bookmark_interval: Some(options.progress_interval),
        ..WatchOptions::from_version(list.resource_version.clone())
    };
    let mut events = registry
        .watch(info.api_version, info.kind, None, &watch_options)
        .await?;
    {
        let mut state = cache.lock();
        state.objects = list
            .items
            .into_iter()
            .map(|o| (object_key(o.as_ref()), Arc::new(o)))
            .collect();
        state.revision = revision;
        state.oldest = revision;
        state.history.clear();
        state.ready = true;
    }
    cache.ready.notify_waiters();
    while let Some(event) = events.next().await {
        let event = event?;
        let mut state = cache.lock();
        let (deleted, object) = match event {
            WatchEvent::Bookmark(rv) => {
                if let Ok(rev) = rv.parse::<i64>() {
                    state.revision = state.revision.max(rev);
                }
                continue;
            }
            WatchEvent::Added(o) | WatchEvent::Modified(o) => (false, o),
            WatchEvent::Deleted(o) => (true, o),
        };
        let revision: i64 = object
            .meta()
            .resource_version
            .parse()
            .unwrap_or(state.revision);
        let json = encode(object.as_ref())?;
        let key = object_key(object.as_ref());
        let object = Arc::new(object);
        let prev = if deleted {
            state.objects.remove(&key)
        } else {
            state.objects.insert(key, object.clone())
        };
        let entry = Arc::new(Entry {
            revision,
            deleted,
            object,
            prev,
            json,
        });
        state.history.push_back(entry.clone());
        while state.history.len() > options.history.max(1) {
            if let Some(dropped) = state.history.pop_front() {
                state.oldest = dropped.revision;
            }
        }
        state.revision = revision;
        // A client whose buffer is full is cut off (its sender dropped) rather than waited
        // for.
        state
            .subscribers
            .retain(|s| match s.sender.try_send(entry.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.cut.store(true, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
    Err(ApiError::Internal(orchestra_store::StoreError::Other(
        "the store watch ended".into(),
    )))
}

/// What one client watch selects.
struct Filter {
    namespace: Option<String>,
    labels: Selector,
    fields: FieldSelector,
    from: i64,
}

impl Filter {
    fn matches(&self, object: &dyn DynResource) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.meta().namespace == ns)
            && self.labels.matches(&object.meta().labels)
            && self.fields.matches_dyn(object).unwrap_or(false)
    }

    /// The event this entry is for this watch, with selector transitions as the registry
    /// makes them (stops matching: DELETED with the last matching state).
    fn view(&self, entry: &Entry) -> Result<Option<CacheEvent>, ApiError> {
        if entry.revision <= self.from {
            return Ok(None);
        }
        let rv = entry.revision.to_string();
        let event = |kind, json: Bytes| {
            Some(CacheEvent::Object {
                kind,
                json,
                resource_version: rv.clone(),
            })
        };
        if entry.deleted {
            let matched = self.matches(entry.object.as_ref().as_ref());
            return Ok(if matched {
                event("DELETED", entry.json.clone())
            } else {
                None
            });
        }
        let before = entry
            .prev
            .as_ref()
            .map(|p| self.matches(p.as_ref().as_ref()));
        let now = self.matches(entry.object.as_ref().as_ref());
        Ok(match (before, now) {
            (None | Some(false), true) => event("ADDED", entry.json.clone()),
            (Some(true), true) => event("MODIFIED", entry.json.clone()),
            (Some(true), false) => {
                // Rare: encode the last matching state at this revision for this client.
                let Some(prev) = &entry.prev else {
                    return Ok(None);
                };
                let mut value = prev.to_json().map_err(|err| {
                    ApiError::BadRequest(format!("the object does not encode: {err}"))
                })?;
                value["metadata"]["resourceVersion"] = rv.clone().into();
                let json = serde_json::to_vec(&value).map_err(|err| {
                    ApiError::BadRequest(format!("the object does not encode: {err}"))
                })?;
                event("DELETED", Bytes::from(json))
            }
            (_, false) => None,
        })
    }
}

/// One client watch's state.
struct Subscription {
    cache: Arc<KindCache>,
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
    async fn next(mut self) -> Option<(Result<CacheEvent, ApiError>, Self)> {
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
                            // Under the lock nothing is being sent: an empty queue means this
                            // client has every change up to the cache's revision.
                            let state = self.cache.lock();
                            if self.receiver.is_empty() && state.revision > self.filter.from {
                                let rv = state.revision.to_string();
                                drop(state);
                                return Some((Ok(CacheEvent::Bookmark(rv)), self));
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
            match self.filter.view(&entry) {
                Ok(Some(event)) => return Some((Ok(event), self)),
                Ok(None) => {}
                Err(err) => {
                    self.done = true;
                    return Some((Err(err), self));
                }
            }
        }
    }
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
        json: encode(object.as_ref())?,
        resource_version: object.meta().resource_version.clone(),
    })
}
