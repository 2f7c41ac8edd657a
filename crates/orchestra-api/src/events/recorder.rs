//! [`EventRecorder`]: records events through any [`Client`], deduplicated and aggregated by
//! an [`EventCorrelator`].

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Mutex;

use super::correlator::{CorrelatorOptions, Decision, EventCorrelator, reference_to};
use crate::client::Client;
use crate::meta::Time;
use crate::registry::ApiError;
use crate::resource::Resource;
use crate::resources::{
    EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING, Event, EventSource, ObjectReference,
};

/// How many times a record is decided again after its earlier event vanished.
const ATTEMPTS: usize = 3;

/// Records events about objects on behalf of one component (its [`EventSource`]). Cheap to
/// clone: clones share the correlator, so repeats are recognised across them.
#[derive(Clone)]
pub struct EventRecorder<C: Client> {
    client: C,
    source: EventSource,
    correlator: Arc<Mutex<EventCorrelator>>,
    clock: Clock,
}

/// The recorder's clock: the wall time at its creation plus tokio's monotonic time since, so
/// that timestamps never go backwards and follow tokio's paused time in tests.
#[derive(Clone, Copy, Debug)]
struct Clock {
    wall: jiff::Timestamp,
    start: tokio::time::Instant,
}

impl Clock {
    fn start() -> Self {
        Clock {
            wall: jiff::Timestamp::now(),
            start: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Time {
        let elapsed = jiff::SignedDuration::try_from(self.start.elapsed()).unwrap_or_default();
        Time::new(self.wall.saturating_add(elapsed).unwrap_or(self.wall))
    }
}

impl<C: Client> std::fmt::Debug for EventRecorder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<C: Client> EventRecorder<C> {
    /// A recorder for `source` with Kubernetes' correlation limits.
    pub fn new(client: C, source: EventSource) -> Self {
        Self::with_options(client, source, CorrelatorOptions::default())
    }

    /// The source its events carry.
    pub fn source(&self) -> &EventSource {
        &self.source
    }

    /// A recorder with custom correlation limits.
    pub fn with_options(client: C, source: EventSource, options: CorrelatorOptions) -> Self {
        EventRecorder {
            client,
            source,
            correlator: Arc::new(Mutex::new(EventCorrelator::new(options))),
            clock: Clock::start(),
        }
    }

    /// Records a `Normal` event.
    pub async fn normal<R: Resource>(
        &self,
        object: &R,
        reason: &str,
        message: &str,
    ) -> Result<Event, ApiError> {
        self.record(object, EVENT_TYPE_NORMAL, reason, message)
            .await
    }

    /// Records a `Warning` event.
    pub async fn warning<R: Resource>(
        &self,
        object: &R,
        reason: &str,
        message: &str,
    ) -> Result<Event, ApiError> {
        self.record(object, EVENT_TYPE_WARNING, reason, message)
            .await
    }

    /// Records an event about `object`: creates it, or bumps the count and lastTimestamp of
    /// the same event recorded before (a merge patch). Returns the event as stored.
    ///
    /// Records of one recorder are serialised (so that two records of one event cannot both
    /// create it); events are informational, so callers usually log a failure and go on.
    pub async fn record<R: Resource>(
        &self,
        object: &R,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<Event, ApiError> {
        self.record_reference(&reference_to(object), type_, reason, message)
            .await
    }

    /// [`EventRecorder::record`] for an object known by its reference, e.g. one with a
    /// `fieldPath` naming a container (`spec.containers{web}`), as the node agent records.
    pub async fn record_reference(
        &self,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<Event, ApiError> {
        let mut correlator = self.correlator.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reference = object.clone();
            let decision = correlator.decide(
                reference,
                &self.source,
                type_,
                reason,
                message,
                self.clock.now(),
            );
            match decision {
                Decision::Create { event, key } => {
                    let stored = self.client.create(event.as_ref()).await?;
                    correlator.stored(&key, &stored);
                    return Ok(stored);
                }
                Decision::Bump {
                    namespace,
                    name,
                    count,
                    last_timestamp,
                    message,
                    key,
                } => {
                    let patch = json!({
                        "count": count,
                        "lastTimestamp": last_timestamp,
                        "message": message,
                    });
                    match self.client.patch::<Event>(&namespace, &name, &patch).await {
                        Ok(stored) => {
                            correlator.stored(&key, &stored);
                            return Ok(stored);
                        }
                        // Expired (or deleted): record it anew.
                        Err(err) if err.is_not_found() && attempt < ATTEMPTS => {
                            correlator.forget(&key);
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
}
