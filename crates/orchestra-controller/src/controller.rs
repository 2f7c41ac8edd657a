//! [`Controller`]: runs a [`Reconciler`] over its primary kind, the kinds it owns and the kinds
//! it watches, with a work queue, N workers and graceful shutdown.
//!
//! Events come from [`SharedInformers`]: a change of a primary object queues its key; a change
//! of an owned object queues its controller owner's key (the ownerReference with
//! `controller: true` whose kind is the primary kind, before and after the change, so that an
//! adopted or released object reaches both owners); a change of a watched object queues the
//! keys its mapper returns. The work queue deduplicates keys and never hands one key to two
//! workers, so the same object is never reconciled twice at once. Reconcilers read objects from
//! the shared cache.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use orchestra_api::reflector::{ObjectKey, Store};
use orchestra_api::{Client, Resource};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::informer::{Informer, Notification, SharedInformers};
use crate::metrics::Metrics;
use crate::queue::{RateLimiter, WorkQueue, default_controller_rate_limiter};
use crate::reconciler::{Action, Context, Reconciler};

/// Maps a changed object to the keys of the primary objects to reconcile.
type Mapper<K> = Arc<dyn Fn(&K) -> Vec<ObjectKey> + Send + Sync>;

/// A source of keys: started when the controller runs.
struct Source {
    /// Resolves once the source's cache holds its first list.
    ready: BoxFuture<'static, ()>,
    /// Feeds the queue until the stop signal; calls the resync closure when it fell behind.
    run: SourceRun,
}

/// Starts feeding a queue until the stop signal.
type SourceRun = Box<
    dyn FnOnce(
            WorkQueue<ObjectKey>,
            Resync,
            watch::Receiver<bool>,
            Duration,
        ) -> BoxFuture<'static, ()>
        + Send,
>;

/// Queues every primary key (after a subscriber fell behind and lost notifications).
type Resync = Arc<dyn Fn() + Send + Sync>;

/// Runs one [`Reconciler`]. Build it with [`Controller::new`], add sources, then
/// [`Controller::run`].
pub struct Controller<R: Reconciler, C> {
    name: String,
    reconciler: Arc<R>,
    informers: SharedInformers<C>,
    primary: Informer<R::Object>,
    sources: Vec<Source>,
    concurrency: usize,
    debounce: Duration,
    queue: WorkQueue<ObjectKey>,
    metrics: Arc<Metrics>,
}

impl<R: Reconciler, C> std::fmt::Debug for Controller<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("sources", &self.sources.len())
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

fn keys_of<K: Resource>(object: &K) -> Vec<ObjectKey> {
    vec![ObjectKey::of(object)]
}

impl<R: Reconciler, C: Client> Controller<R, C> {
    /// A controller of `reconciler`'s primary kind, reading from (and starting) `informers`.
    /// Named after the kind; one worker. Must be called within a tokio runtime.
    pub fn new(reconciler: R, informers: &SharedInformers<C>) -> Self {
        let primary = informers.informer::<R::Object>();
        let mut controller = Controller {
            name: R::Object::KIND.to_lowercase(),
            reconciler: Arc::new(reconciler),
            informers: informers.clone(),
            primary: primary.clone(),
            sources: Vec::new(),
            concurrency: 1,
            debounce: Duration::ZERO,
            queue: WorkQueue::with_rate_limiter(default_controller_rate_limiter()),
            metrics: Arc::default(),
        };
        controller.add_source(primary, Arc::new(keys_of::<R::Object>));
        controller
    }

    /// Names the controller (logs, metrics).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Runs up to `workers` reconciles at once (of different keys; at least 1).
    pub fn concurrency(mut self, workers: usize) -> Self {
        self.concurrency = workers.max(1);
        self
    }

    /// Waits `delay` after a change before reconciling its key, so that a burst of changes
    /// (a rollout touching many pods) makes one reconcile instead of many (default: none). The
    /// first change of a burst sets the time; later ones within it are merged into it.
    pub fn debounce(mut self, delay: Duration) -> Self {
        self.debounce = delay;
        self
    }

    /// Retries failures as `limiter` says instead of the default (per-key 5 ms to 1000 s, and
    /// 10 qps with a burst of 100 overall).
    pub fn rate_limiter(mut self, limiter: impl RateLimiter<ObjectKey>) -> Self {
        self.queue = WorkQueue::with_rate_limiter(limiter);
        self
    }

    /// Reconciles the owner when an object of kind `K` it controls changes (through the
    /// `controller: true` ownerReference of the primary kind).
    pub fn owns<K: Resource>(mut self) -> Self {
        let informer = self.informers.informer::<K>();
        self.add_source(informer, Arc::new(owner_keys::<K, R::Object>));
        self
    }

    /// Reconciles the keys `mapper` returns when an object of kind `K` changes (it is called
    /// with the old and the new state).
    pub fn watches<K, F>(mut self, mapper: F) -> Self
    where
        K: Resource,
        F: Fn(&K) -> Vec<ObjectKey> + Send + Sync + 'static,
    {
        let informer = self.informers.informer::<K>();
        self.add_source(informer, Arc::new(mapper));
        self
    }

    /// The controller's queue (its depth and retries, for metrics and tests).
    pub fn queue(&self) -> WorkQueue<ObjectKey> {
        self.queue.clone()
    }

    /// The controller's metrics (call after [`Controller::name`]): counters and the queue, in
    /// Prometheus' text format with [`MetricsHandle::render`].
    pub fn metrics(&self) -> MetricsHandle {
        MetricsHandle {
            name: Arc::from(self.name.as_str()),
            queue: self.queue.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// The primary kind's cache.
    pub fn store(&self) -> Store<R::Object> {
        self.primary.store().clone()
    }

    fn add_source<K: Resource>(&mut self, informer: Informer<K>, mapper: Mapper<K>) {
        // Subscribing now, before the caches are ready, means no change is missed between the
        // first list and the first reconcile.
        let receiver = informer.subscribe();
        let ready = {
            let informer = informer.clone();
            async move {
                let _ = informer.wait_until_ready().await;
            }
            .boxed()
        };
        let run = Box::new(move |queue, resync, stop, debounce| {
            feed(receiver, mapper, queue, resync, stop, debounce).boxed()
        });
        self.sources.push(Source { ready, run });
    }

    /// Runs until `shutdown` resolves: waits for every cache's first list, queues every primary
    /// object, then reconciles with the configured number of workers. On shutdown, no new
    /// reconcile starts, the ones running finish, and `run` returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Controller {
            name,
            reconciler,
            primary,
            sources,
            concurrency,
            debounce,
            queue,
            metrics,
            ..
        } = self;
        let name: Arc<str> = Arc::from(name);
        let (stop_tx, stop_rx) = watch::channel(false);
        let store = primary.store().clone();
        let resync: Resync = {
            let store = store.clone();
            let queue = queue.clone();
            Arc::new(move || {
                for object in store.list() {
                    queue.add(ObjectKey::of(object.as_ref()));
                }
            })
        };

        let mut tasks = JoinSet::new();
        let mut readiness = Vec::new();
        for source in sources {
            readiness.push(source.ready);
            tasks.spawn((source.run)(
                queue.clone(),
                resync.clone(),
                stop_rx.clone(),
                debounce,
            ));
        }
        let mut shutdown = std::pin::pin!(shutdown);
        tokio::select! {
            () = futures::future::join_all(readiness).map(|_| ()) => {}
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                queue.shut_down();
                tasks.shutdown().await;
                return;
            }
        }
        resync();
        tracing::debug!(controller = %name, objects = store.len(), "caches ready; reconciling");

        let mut workers = JoinSet::new();
        for _ in 0..concurrency {
            workers.spawn(work(
                Arc::clone(&name),
                Arc::clone(&reconciler),
                store.clone(),
                queue.clone(),
                Arc::clone(&metrics),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        // Workers finish the reconcile they are in, then stop; nothing new is handed out.
        while workers.join_next().await.is_some() {}
        queue.shut_down();
        tasks.shutdown().await;
        tracing::debug!(controller = %name, "stopped");
    }
}

/// The keys of the controller owners of kind `P` of `object`.
fn owner_keys<K: Resource, P: Resource>(object: &K) -> Vec<ObjectKey> {
    object
        .meta()
        .controller_ref()
        .filter(|owner| owner.kind == P::KIND && owner.api_version == P::API_VERSION)
        .map(|owner| ObjectKey {
            namespace: if P::NAMESPACED {
                object.meta().namespace.clone()
            } else {
                String::new()
            },
            name: owner.name.clone(),
        })
        .into_iter()
        .collect()
}

async fn feed<K: Resource>(
    mut receiver: broadcast::Receiver<Arc<Notification<K>>>,
    mapper: Mapper<K>,
    queue: WorkQueue<ObjectKey>,
    resync: Resync,
    mut stop: watch::Receiver<bool>,
    debounce: Duration,
) {
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            received = receiver.recv() => received,
        };
        // `recv` is budgeted (tokio gives a task 128 of them per poll): in a bulk load the
        // informer sends thousands of notifications a second while this task is polled once
        // per round of a long run queue, so it fell behind and resynced. What is ready is taken
        // here without going back to the scheduler (each costs a key lookup and a queue add).
        let mut next = Some(received);
        let mut taken = 0;
        while let Some(received) = next.take() {
            match received {
                Ok(notification) => {
                    for object in notification.objects() {
                        for key in mapper(object) {
                            queue.add_after(key, debounce);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        kind = K::KIND,
                        missed,
                        "fell behind the informer; resyncing"
                    );
                    resync();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
            taken += 1;
            if taken < DRAIN_BATCH {
                next = ready(&mut receiver);
            }
        }
    }
}

/// How many ready notifications a feeder takes in one go before it lets other tasks run.
const DRAIN_BATCH: usize = 4096;

/// The next notification if one is ready now (outside tokio's per-poll budget).
fn ready<T: Clone>(
    receiver: &mut broadcast::Receiver<T>,
) -> Option<Result<T, broadcast::error::RecvError>> {
    use broadcast::error::{RecvError, TryRecvError};
    match receiver.try_recv() {
        Ok(value) => Some(Ok(value)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

async fn work<R: Reconciler>(
    name: Arc<str>,
    reconciler: Arc<R>,
    store: Store<R::Object>,
    queue: WorkQueue<ObjectKey>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let key = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            key = queue.get() => match key {
                Some(key) => key,
                None => return,
            },
        };
        let started = tokio::time::Instant::now();
        let ok = reconcile_one(&name, reconciler.as_ref(), &store, &queue, &key).await;
        metrics.record(started.elapsed(), ok);
        if !ok {
            metrics.record_retry();
        }
        queue.done(&key);
    }
}

async fn reconcile_one<R: Reconciler>(
    name: &Arc<str>,
    reconciler: &R,
    store: &Store<R::Object>,
    queue: &WorkQueue<ObjectKey>,
    key: &ObjectKey,
) -> bool {
    let ctx = Context::new(name, key.clone())
        .with_retries(queue.num_requeues(key), std::time::Duration::ZERO);
    let (action, ok) = match store.get(&key.namespace, &key.name) {
        Some(object) => match reconciler.reconcile(Arc::clone(&object), &ctx).await {
            Ok(action) => {
                queue.forget(key);
                (action, true)
            }
            Err(err) => {
                let backoff = queue.next_backoff(key);
                tracing::warn!(controller = %name, namespace = %key.namespace, name = %key.name, error = %err, retry_in = ?backoff, "reconcile failed");
                let ctx = ctx.with_retries(queue.num_requeues(key), backoff);
                (reconciler.error_policy(&object, &err, &ctx), false)
            }
        },
        None => match reconciler.deleted(key, &ctx).await {
            Ok(action) => {
                queue.forget(key);
                (action, true)
            }
            Err(err) => {
                let backoff = queue.next_backoff(key);
                tracing::warn!(controller = %name, namespace = %key.namespace, name = %key.name, error = %err, retry_in = ?backoff, "cleanup after deletion failed");
                (Action::Requeue(backoff), false)
            }
        },
    };
    if let Action::Requeue(delay) = action {
        queue.add_after(key.clone(), delay);
    }
    ok
}

/// Reads a controller's metrics while it runs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    name: Arc<str>,
    queue: WorkQueue<ObjectKey>,
    metrics: Arc<Metrics>,
}

impl MetricsHandle {
    /// The counters.
    pub fn counters(&self) -> &Metrics {
        &self.metrics
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything in Prometheus' text format, labelled `controller="<name>"`.
    pub fn render(&self) -> String {
        self.metrics.render(&self.name, &self.queue)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use orchestra_api::ObjectMeta;
    use orchestra_api::resources::Pod;

    use super::*;

    fn applied(name: String) -> Arc<Notification<Pod>> {
        let pod = Pod {
            metadata: ObjectMeta::namespaced("default", name),
            ..Pod::default()
        };
        Arc::new(Notification::Applied {
            old: None,
            new: Arc::new(pod),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_feeder_takes_a_burst_beyond_the_poll_budget_in_one_go() {
        let (sender, receiver) = broadcast::channel(16_384);
        let queue = WorkQueue::new();
        let resyncs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&resyncs);
        let resync: Resync = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let (_stop, stop) = watch::channel(false);
        let mapper: Mapper<Pod> = Arc::new(|pod: &Pod| keys_of(pod));
        let feeder = tokio::spawn(feed(
            receiver,
            mapper,
            queue.clone(),
            resync,
            stop,
            Duration::ZERO,
        ));
        // The feeder now waits in `recv`.
        tokio::task::yield_now().await;
        for i in 0..1000 {
            sender
                .send(applied(format!("p{i}")))
                .expect("the feeder listens");
        }
        // One turn of the scheduler: tokio's budget alone would let `recv` take 128.
        tokio::task::yield_now().await;
        assert_eq!(queue.len(), 1000);
        assert_eq!(resyncs.load(Ordering::SeqCst), 0);
        feeder.abort();
    }
}
