//! [`EventSink`]: how components record events without waiting for them. Recording an event
//! is a write to the API; a scheduler placing thousands of pods a second, or a controller in
//! the middle of a sync, must neither wait for it nor fail because of it. The sink queues the
//! event on a bounded channel (a non-blocking `try_send`) and one background task records the
//! queue through an [`EventRecorder`], after a [`SpamFilter`]. When the queue is full the event
//! is dropped and counted, as Kubernetes' broadcaster drops events past its 1000 queued; a
//! failed record is logged and counted. Nothing is ever returned to the caller.
//!
//! The task starts with the first event (so a sink can be made outside a runtime) and ends
//! when every clone of the sink is dropped and the queue is empty.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::correlator::reference_to;
use super::recorder::EventRecorder;
use super::spam::{SpamFilter, SpamOptions};
use crate::client::Client;
use crate::resource::Resource;
use crate::resources::{EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING, EventSource, ObjectReference};

/// How many events wait to be recorded before new ones are dropped (Kubernetes' figure).
pub const DEFAULT_QUEUE: usize = 1000;

/// One event waiting to be recorded.
#[derive(Debug)]
struct Pending {
    object: ObjectReference,
    type_: &'static str,
    reason: String,
    message: String,
}

/// What a sink did with the events it was given, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventSinkStats {
    /// Recorded (created, or counted on an earlier event).
    pub recorded: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Dropped by the spam filter (too many events about one object).
    pub filtered: u64,
    /// Given to the API, which refused them (logged).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    recorded: AtomicU64,
    dropped: AtomicU64,
    filtered: AtomicU64,
    failed: AtomicU64,
}

type Drain = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Inner {
    tx: mpsc::Sender<Pending>,
    source: EventSource,
    counters: Arc<Counters>,
    started: AtomicBool,
    /// The recording task until it is spawned.
    drain: Mutex<Option<Drain>>,
}

/// Records events in the background; see the [module docs](self). Cheap to clone: clones
/// share the queue and the task.
#[derive(Clone, Default)]
pub struct EventSink {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("source", &self.inner.as_ref().map(|i| &i.source))
            .field("stats", &self.stats())
            .finish()
    }
}

impl EventSink {
    /// A sink recording through `recorder`, with [`DEFAULT_QUEUE`] and Kubernetes' spam
    /// limits.
    pub fn new<C: Client>(recorder: EventRecorder<C>) -> Self {
        Self::with_options(recorder, DEFAULT_QUEUE, SpamOptions::default())
    }

    /// A sink for `component` (on `host`, empty for control-plane components) recording
    /// through `client`: the usual way a component makes its sink.
    pub fn for_component<C: Client>(client: C, component: &str, host: &str) -> Self {
        Self::new(EventRecorder::new(
            client,
            EventSource {
                component: component.to_owned(),
                host: host.to_owned(),
            },
        ))
    }

    /// A sink with a queue of `queue` events and these spam limits.
    pub fn with_options<C: Client>(
        recorder: EventRecorder<C>,
        queue: usize,
        spam: SpamOptions,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(queue.max(1));
        let counters = Arc::new(Counters::default());
        let source = recorder.source().clone();
        let task_counters = counters.clone();
        let drain: Drain = Box::pin(async move {
            let start = tokio::time::Instant::now();
            let mut filter = SpamFilter::new(spam);
            while let Some(event) = rx.recv().await {
                if !filter.allow(&event.object, event.type_, start.elapsed()) {
                    task_counters.filtered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(reason = %event.reason, object = %event.object.name, "event dropped by the spam filter");
                    continue;
                }
                let recorded = recorder
                    .record_reference(&event.object, event.type_, &event.reason, &event.message)
                    .await;
                match recorded {
                    Ok(_) => task_counters.recorded.fetch_add(1, Ordering::Relaxed),
                    Err(err) => {
                        tracing::warn!(
                            reason = %event.reason,
                            object = %format_args!("{}/{}", event.object.namespace, event.object.name),
                            %err,
                            "recording an event failed; dropped"
                        );
                        task_counters.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        });
        EventSink {
            inner: Some(Arc::new(Inner {
                tx,
                source,
                counters,
                started: AtomicBool::new(false),
                drain: Mutex::new(Some(drain)),
            })),
        }
    }

    /// A sink that discards every event (for components run without events).
    pub fn disabled() -> Self {
        EventSink { inner: None }
    }

    /// Queues a `Normal` event about `object`.
    pub fn normal<R: Resource>(&self, object: &R, reason: &str, message: impl Into<String>) {
        self.emit(reference_to(object), EVENT_TYPE_NORMAL, reason, message);
    }

    /// Queues a `Warning` event about `object`.
    pub fn warning<R: Resource>(&self, object: &R, reason: &str, message: impl Into<String>) {
        self.emit(reference_to(object), EVENT_TYPE_WARNING, reason, message);
    }

    /// Queues an event about the object `object` refers to; `warning` chooses the type.
    /// Never blocks: a full queue drops the event (counted in [`EventSinkStats::dropped`]).
    pub fn emit(
        &self,
        object: ObjectReference,
        type_: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !inner.started.load(Ordering::Acquire) {
            inner.start();
        }
        let event = Pending {
            object,
            type_,
            reason: reason.to_owned(),
            message: message.into(),
        };
        if let Err(err) = inner.tx.try_send(event) {
            let dropped = inner.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Log the 1st, 2nd, 4th, 8th... drop: a flood must not become a flood of logs.
            if dropped.is_power_of_two() {
                let event = match &err {
                    mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e) => e,
                };
                tracing::warn!(
                    component = %inner.source.component,
                    reason = %event.reason,
                    dropped,
                    "the event queue is full; events are dropped"
                );
            }
        }
    }

    /// What the sink did so far.
    pub fn stats(&self) -> EventSinkStats {
        let Some(inner) = &self.inner else {
            return EventSinkStats::default();
        };
        let c = &inner.counters;
        EventSinkStats {
            recorded: c.recorded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            filtered: c.filtered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// Spawns the recording task, once, if a tokio runtime is there (otherwise events wait in
    /// the queue for the first call made inside one).
    fn start(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut drain = self.drain.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = drain.take() {
            handle.spawn(task);
        }
        self.started.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalClient;
    use crate::meta::ObjectMeta;
    use crate::registry::ListOptions;
    use crate::resources::{Event, Pod};
    use orchestra_store::MemStore;
    use std::time::Duration;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("default", "web"),
            ..Pod::default()
        }
    }

    async fn wait_for(client: &LocalClient, what: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        for _ in 0..1000 {
            let events = client
                .list::<Event>(Some("default"), &ListOptions::default())
                .await
                .unwrap()
                .items;
            if what(&events) {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the events never got there");
    }

    #[tokio::test(start_paused = true)]
    async fn events_are_recorded_in_the_background_with_the_source() {
        let client = LocalClient::new(MemStore::new());
        let sink = EventSink::for_component(client.clone(), "kubelet", "node-1");
        sink.warning(&pod(), "BackOff", "Back-off restarting failed container");
        sink.warning(&pod(), "BackOff", "Back-off restarting failed container");
        let events = wait_for(&client, |e| e.first().and_then(|e| e.count) == Some(2)).await;
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(
            (event.type_.as_str(), event.reason.as_str()),
            ("Warning", "BackOff")
        );
        assert_eq!(event.involved_object.name, "web");
        let source = event.source.clone().unwrap();
        assert_eq!(
            (source.component.as_str(), source.host.as_str()),
            ("kubelet", "node-1")
        );
        assert_eq!(sink.stats().recorded, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_and_counts_and_the_spam_filter_limits_an_object() {
        let client = LocalClient::new(MemStore::new());
        let recorder = EventRecorder::new(client.clone(), EventSource::default());
        let sink = EventSink::with_options(recorder, 30, SpamOptions::default());
        // No await in between: the task cannot take any before the queue is full.
        for i in 0..40 {
            sink.normal(&pod(), "Pulled", format!("message {i}"));
        }
        assert_eq!(sink.stats().dropped, 10);
        // 30 queued, 25 pass the filter (the first ten as events of their own, the rest
        // combined into one).
        wait_for(&client, |_| {
            let s = sink.stats();
            s.recorded + s.filtered == 30
        })
        .await;
        let stats = sink.stats();
        assert_eq!((stats.recorded, stats.filtered, stats.failed), (25, 5, 0));
    }

    #[tokio::test]
    async fn a_disabled_sink_discards() {
        let sink = EventSink::disabled();
        sink.normal(&pod(), "Scheduled", "x");
        assert_eq!(sink.stats(), EventSinkStats::default());
    }
}
