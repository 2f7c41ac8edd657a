//! [`EventCorrelator`]: decides whether an event is new or a repeat, with no I/O, so that
//! tests assert its exact decisions with a given clock.

use std::collections::HashSet;
use std::time::Duration;

use super::lru::Lru;
use crate::meta::{ObjectMeta, Time};
use crate::resource::Resource;
use crate::resources::{Event, EventSource, ObjectReference};

/// The start of the message of an event that combines similar ones.
pub const AGGREGATE_PREFIX: &str = "(combined from similar events): ";

/// The limits of an [`EventCorrelator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelatorOptions {
    /// How many different messages of similar events (same object, type, reason and source)
    /// are recorded as events of their own within `similar_window`; later ones are combined.
    pub max_distinct_messages: usize,
    /// How long a group of similar events is remembered after its last one.
    pub similar_window: Duration,
    /// How many events (and groups of similar events) are remembered; the least recently
    /// seen are forgotten first.
    pub max_entries: usize,
}

impl Default for CorrelatorOptions {
    /// Kubernetes' figures: 10 messages, 10 minutes, 4096 entries.
    fn default() -> Self {
        CorrelatorOptions {
            max_distinct_messages: 10,
            similar_window: Duration::from_secs(600),
            max_entries: 4096,
        }
    }
}

/// What makes events similar: the object, the type, the reason and the source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SimilarKey {
    source: (String, String),
    object: [String; 6],
    type_: String,
    reason: String,
}

/// What makes an event a repeat: a similar event with the same message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventKey {
    similar: SimilarKey,
    message: String,
}

/// A recorded event.
#[derive(Clone, Debug)]
struct Seen {
    namespace: String,
    name: String,
    count: i32,
}

/// A group of similar events.
#[derive(Clone, Debug)]
struct Similar {
    messages: HashSet<String>,
    last: i64,
}

/// What to do with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create this event (count 1); then tell [`EventCorrelator::stored`].
    Create {
        /// The event to create.
        event: Box<Event>,
        /// Its identity for [`EventCorrelator::stored`].
        key: EventKey,
    },
    /// Bump the event recorded before: set its count, lastTimestamp and message (a merge
    /// patch); then tell [`EventCorrelator::stored`], or [`EventCorrelator::forget`] if it
    /// is gone (it expired) and decide again.
    Bump {
        /// The event's namespace.
        namespace: String,
        /// The event's name.
        name: String,
        /// The new count.
        count: i32,
        /// The new lastTimestamp.
        last_timestamp: Time,
        /// The message (the latest one, for a combined event).
        message: String,
        /// Its identity.
        key: EventKey,
    },
}

/// Remembers recorded events to turn repeats into count bumps and bursts of similar events
/// into one combined event.
///
/// Both caches forget the least recently used entry first (LRUs, as Kubernetes keeps them),
/// in constant time: a full cache is the normal state of a busy component.
#[derive(Clone, Debug)]
pub struct EventCorrelator {
    options: CorrelatorOptions,
    seen: Lru<EventKey, Seen>,
    similar: Lru<SimilarKey, Similar>,
}

impl Default for EventCorrelator {
    fn default() -> Self {
        EventCorrelator::new(CorrelatorOptions::default())
    }
}

/// A reference to `object` for an event's `involvedObject`.
pub fn reference_to<R: Resource>(object: &R) -> ObjectReference {
    let meta = object.meta();
    ObjectReference {
        api_version: R::API_VERSION.to_owned(),
        kind: R::KIND.to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: String::new(),
    }
}

impl EventCorrelator {
    /// A correlator with these limits.
    pub fn new(options: CorrelatorOptions) -> Self {
        EventCorrelator {
            seen: Lru::new(options.max_entries),
            similar: Lru::new(options.max_entries),
            options,
        }
    }

    /// Decides what to record for an event of `type_` and `reason` with `message` about
    /// `object`, reported by `source`, at `now`.
    pub fn decide(
        &mut self,
        object: ObjectReference,
        source: &EventSource,
        type_: &str,
        reason: &str,
        message: &str,
        now: Time,
    ) -> Decision {
        let similar = SimilarKey {
            source: (source.component.clone(), source.host.clone()),
            object: [
                object.api_version.clone(),
                object.kind.clone(),
                object.namespace.clone(),
                object.name.clone(),
                object.uid.clone(),
                object.field_path.clone(),
            ],
            type_: type_.to_owned(),
            reason: reason.to_owned(),
        };
        let (key_message, message) = self.aggregate(&similar, message, now.as_second());
        let key = EventKey {
            similar,
            message: key_message,
        };
        if let Some(seen) = self.seen.cache().get(&key) {
            return Decision::Bump {
                namespace: seen.namespace.clone(),
                name: seen.name.clone(),
                count: seen.count.saturating_add(1),
                last_timestamp: now,
                message,
                key,
            };
        }
        let namespace = if object.namespace.is_empty() {
            // Events about cluster-scoped objects (nodes) live in `default`, as in Kubernetes.
            "default".to_owned()
        } else {
            object.namespace.clone()
        };
        let event = Event {
            metadata: ObjectMeta {
                namespace,
                generate_name: format!("{}.", object.name),
                ..ObjectMeta::default()
            },
            involved_object: object,
            reason: reason.to_owned(),
            message,
            source: Some(source.clone()),
            first_timestamp: Some(now),
            last_timestamp: Some(now),
            count: Some(1),
            type_: type_.to_owned(),
            reporting_component: source.component.clone(),
            reporting_instance: source.host.clone(),
            ..Event::default()
        };
        Decision::Create {
            event: Box::new(event),
            key,
        }
    }

    /// Remembers the event `key` as stored (created or bumped).
    pub fn stored(&mut self, key: &EventKey, event: &Event) {
        let seen = Seen {
            namespace: event.metadata.namespace.clone(),
            name: event.metadata.name.clone(),
            count: event.count.unwrap_or(1),
        };
        self.seen.room_for(key).put(key.clone(), seen);
    }

    /// Forgets the event `key` (it is gone from the cluster: expired or deleted).
    pub fn forget(&mut self, key: &EventKey) {
        self.seen.cache().pop(key);
    }

    /// How many events are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no event is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The message an event is known by, and the message it is recorded with: its own, or,
    /// once its similar events had too many different messages, the combined one.
    fn aggregate(&mut self, similar: &SimilarKey, message: &str, now: i64) -> (String, String) {
        let window = i64::try_from(self.options.similar_window.as_secs()).unwrap_or(i64::MAX);
        let group = self
            .similar
            .room_for(similar)
            .get_or_insert_mut_ref(similar, || Similar {
                messages: HashSet::new(),
                last: now,
            });
        if now.saturating_sub(group.last) > window {
            group.messages.clear();
        }
        group.last = now;
        let individual = group.messages.contains(message)
            || group.messages.len() < self.options.max_distinct_messages;
        if individual {
            group.messages.insert(message.to_owned());
            (message.to_owned(), message.to_owned())
        } else {
            // The key of every combined event of the group is the prefix alone.
            (
                AGGREGATE_PREFIX.to_owned(),
                format!("{AGGREGATE_PREFIX}{message}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Pod;

    fn at(seconds: i64) -> Time {
        Time::new(jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    fn pod() -> ObjectReference {
        let mut pod = Pod {
            metadata: ObjectMeta::namespaced("shop", "web-1"),
            ..Pod::default()
        };
        pod.metadata.uid = "u-1".into();
        reference_to(&pod)
    }

    fn kubelet() -> EventSource {
        EventSource {
            component: "kubelet".into(),
            host: "node-1".into(),
        }
    }

    fn created(decision: Decision, name: &str) -> (EventKey, Event) {
        match decision {
            Decision::Create { mut event, key } => {
                event.metadata.name = name.to_owned();
                (key, *event)
            }
            other => panic!("expected a create, got {other:?}"),
        }
    }

    #[test]
    fn a_new_event_is_created_with_count_one() {
        let mut c = EventCorrelator::default();
        let (_, event) = created(
            c.decide(pod(), &kubelet(), "Warning", "BackOff", "back-off", at(0)),
            "x",
        );
        assert_eq!(event.metadata.namespace, "shop");
        assert_eq!(event.metadata.generate_name, "web-1.");
        assert_eq!(event.involved_object.kind, "Pod");
        assert_eq!(event.involved_object.uid, "u-1");
        assert_eq!((event.count, event.first_timestamp), (Some(1), Some(at(0))));
        assert_eq!(event.last_timestamp, Some(at(0)));
        assert_eq!(event.reporting_component, "kubelet");
        assert!(c.is_empty(), "nothing is remembered before it is stored");
    }

    #[test]
    fn a_repeat_bumps_the_stored_event() {
        let mut c = EventCorrelator::default();
        let (key, mut event) = created(
            c.decide(pod(), &kubelet(), "Warning", "BackOff", "back-off", at(0)),
            "web-1.abcde",
        );
        c.stored(&key, &event);
        let decision = c.decide(pod(), &kubelet(), "Warning", "BackOff", "back-off", at(30));
        assert_eq!(
            decision,
            Decision::Bump {
                namespace: "shop".into(),
                name: "web-1.abcde".into(),
                count: 2,
                last_timestamp: at(30),
                message: "back-off".into(),
                key: key.clone(),
            }
        );
        event.count = Some(2);
        c.stored(&key, &event);
        let Decision::Bump { count, .. } =
            c.decide(pod(), &kubelet(), "Warning", "BackOff", "back-off", at(40))
        else {
            panic!("expected a bump");
        };
        assert_eq!(count, 3);
        // Another message, reason, or source is another event.
        for decision in [
            c.decide(pod(), &kubelet(), "Warning", "BackOff", "other", at(41)),
            c.decide(pod(), &kubelet(), "Warning", "Failed", "back-off", at(41)),
            c.decide(
                pod(),
                &EventSource::default(),
                "Warning",
                "BackOff",
                "back-off",
                at(41),
            ),
        ] {
            assert!(matches!(decision, Decision::Create { .. }), "{decision:?}");
        }
        c.forget(&key);
        assert!(matches!(
            c.decide(pod(), &kubelet(), "Warning", "BackOff", "back-off", at(50)),
            Decision::Create { .. }
        ));
    }

    #[test]
    fn similar_events_beyond_ten_messages_are_combined() {
        let mut c = EventCorrelator::default();
        for i in 0..10 {
            let (key, event) = created(
                c.decide(
                    pod(),
                    &kubelet(),
                    "Warning",
                    "Failed",
                    &format!("m{i}"),
                    at(i),
                ),
                &format!("e{i}"),
            );
            assert_eq!(event.message, format!("m{i}"));
            c.stored(&key, &event);
        }
        let (key, event) = created(
            c.decide(pod(), &kubelet(), "Warning", "Failed", "m10", at(10)),
            "combined",
        );
        assert_eq!(event.message, "(combined from similar events): m10");
        c.stored(&key, &event);
        assert_eq!(
            c.decide(pod(), &kubelet(), "Warning", "Failed", "m11", at(11)),
            Decision::Bump {
                namespace: "shop".into(),
                name: "combined".into(),
                count: 2,
                last_timestamp: at(11),
                message: "(combined from similar events): m11".into(),
                key,
            }
        );
        // A message seen before is still its own event.
        assert!(matches!(
            c.decide(pod(), &kubelet(), "Warning", "Failed", "m3", at(12)),
            Decision::Bump { ref name, .. } if name == "e3"
        ));
        // Ten quiet minutes later, messages are separate again.
        let (_, event) = created(
            c.decide(pod(), &kubelet(), "Warning", "Failed", "m12", at(12 + 601)),
            "late",
        );
        assert_eq!(event.message, "m12");
    }

    #[test]
    fn cluster_scoped_objects_get_events_in_default_and_the_cache_is_bounded() {
        let mut c = EventCorrelator::new(CorrelatorOptions {
            max_entries: 2,
            ..CorrelatorOptions::default()
        });
        let node = ObjectReference {
            kind: "Node".into(),
            name: "node-1".into(),
            ..ObjectReference::default()
        };
        let mut keys = Vec::new();
        for (i, reason) in ["A", "B", "C"].into_iter().enumerate() {
            let (key, event) = created(
                c.decide(
                    node.clone(),
                    &kubelet(),
                    "Normal",
                    reason,
                    "m",
                    at(i as i64),
                ),
                reason,
            );
            assert_eq!(event.metadata.namespace, "default");
            c.stored(&key, &event);
            keys.push(key);
        }
        assert_eq!(c.len(), 2);
        assert!(matches!(
            c.decide(node.clone(), &kubelet(), "Normal", "A", "m", at(5)),
            Decision::Create { .. }
        ));
        assert!(matches!(
            c.decide(node, &kubelet(), "Normal", "C", "m", at(5)),
            Decision::Bump { .. }
        ));
    }
}
