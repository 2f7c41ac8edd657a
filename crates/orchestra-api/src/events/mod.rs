//! Recording [`Event`](crate::resources::Event)s from components, as Kubernetes' event
//! recorder does: an event that happens again (same object, type, reason, message and
//! source) bumps the `count` and `lastTimestamp` of the event recorded first instead of
//! creating another, and a burst of similar events whose messages differ (more than ten kinds
//! within ten minutes) is folded into one event marked
//! `(combined from similar events): ...`. Events expire after an hour (the registry's TTL,
//! see [`Registry::with_ttl`](crate::Registry::with_ttl)), so a recurring event that expired
//! is simply recorded anew.
//!
//! ```
//! use orchestra_api::events::EventRecorder;
//! use orchestra_api::resources::{Event, EventSource, Pod};
//! use orchestra_api::{Client, LocalClient, ObjectMeta};
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! let recorder = EventRecorder::new(client.clone(), EventSource { component: "my-controller".into(), host: String::new() });
//! let pod = Pod { metadata: ObjectMeta::namespaced("default", "web"), ..Default::default() };
//! recorder.warning(&pod, "BackOff", "Back-off restarting failed container").await?;
//! let again = recorder.warning(&pod, "BackOff", "Back-off restarting failed container").await?;
//! assert_eq!(again.count, Some(2));
//! let events = client.list::<Event>(Some("default"), &Default::default()).await?;
//! assert_eq!(events.items.len(), 1);
//! # Ok::<(), orchestra_api::ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`correlator`]: [`EventCorrelator`], the pure decision (create, or bump which event)
//!   with its bounded caches.
//! - `lru`: the bounded LRU caches of both, allocated as they fill.
//! - [`recorder`]: [`EventRecorder`], the correlator over a [`Client`](crate::Client).
//! - [`spam`]: [`SpamFilter`], the per-object rate limit (a burst of 25, then one per 5 min).
//! - [`sink`]: [`EventSink`], what components record through: a bounded queue and a background
//!   task, so that recording never slows or fails the caller (full queue: dropped, counted).

pub mod correlator;
mod lru;
pub mod recorder;
pub mod sink;
pub mod spam;

pub use correlator::{
    AGGREGATE_PREFIX, CorrelatorOptions, Decision, EventCorrelator, reference_to,
};
pub use recorder::EventRecorder;
pub use sink::{DEFAULT_QUEUE, EventSink, EventSinkStats};
pub use spam::{SpamFilter, SpamOptions};
