//! [`SpamFilter`]: a token bucket per object and event type, as Kubernetes' event spam filter:
//! a component may record a burst of events about one object, then one every few minutes, so
//! that a crash-looping pod or a hot loop cannot flood the API with events. Pure: the caller
//! passes the time, so tests assert exact decisions.

use std::time::Duration;

use super::lru::Lru;

use crate::resources::ObjectReference;

/// The limits of a [`SpamFilter`].
#[derive(Clone, Debug, PartialEq)]
pub struct SpamOptions {
    /// Events about one object (of one type) recorded at once before the limit applies.
    pub burst: u32,
    /// How long it takes to earn one more event after the burst is spent.
    pub refill: Duration,
    /// How many objects are remembered; the least recently seen are forgotten first.
    pub max_entries: usize,
}

impl Default for SpamOptions {
    /// Kubernetes' figures: a burst of 25, then one event every 5 minutes, 4096 objects.
    fn default() -> Self {
        SpamOptions {
            burst: 25,
            refill: Duration::from_secs(300),
            max_entries: 4096,
        }
    }
}

/// What identifies an object's events for the filter: the object and the event type.
type SpamKey = (String, String, String, String, String, String);

#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

/// Rate-limits events per object and type; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct SpamFilter {
    options: SpamOptions,
    /// Least recently seen first out: an LRU, as Kubernetes keeps these buckets.
    buckets: Lru<SpamKey, Bucket>,
}

impl Default for SpamFilter {
    fn default() -> Self {
        SpamFilter::new(SpamOptions::default())
    }
}

impl SpamFilter {
    /// A filter with these limits.
    pub fn new(options: SpamOptions) -> Self {
        SpamFilter {
            buckets: Lru::new(options.max_entries),
            options,
        }
    }

    /// Whether an event of `type_` about `object` may be recorded at `now` (any monotonic
    /// time, e.g. since the component started); takes a token when it may.
    pub fn allow(&mut self, object: &ObjectReference, type_: &str, now: Duration) -> bool {
        let key = (
            object.api_version.clone(),
            object.kind.clone(),
            object.namespace.clone(),
            object.name.clone(),
            object.uid.clone(),
            type_.to_owned(),
        );
        let burst = f64::from(self.options.burst);
        let refill = self.options.refill.as_secs_f64();
        let bucket = self
            .buckets
            .room_for(&key)
            .get_or_insert_mut(key, || Bucket {
                tokens: burst,
                last: now,
            });
        let earned = if refill > 0.0 {
            now.saturating_sub(bucket.last).as_secs_f64() / refill
        } else {
            burst
        };
        bucket.tokens = (bucket.tokens + earned).min(burst);
        bucket.last = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        allowed
    }

    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no object is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> ObjectReference {
        ObjectReference {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
            ..ObjectReference::default()
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_burst_passes_then_one_event_per_refill() {
        let mut f = SpamFilter::default();
        for i in 0..25 {
            assert!(f.allow(&pod("web"), "Warning", secs(0)), "event {i}");
        }
        assert!(!f.allow(&pod("web"), "Warning", secs(0)));
        assert!(!f.allow(&pod("web"), "Warning", secs(299)));
        assert!(f.allow(&pod("web"), "Warning", secs(301)));
        assert!(!f.allow(&pod("web"), "Warning", secs(302)));
        // Another object, or another type, has its own bucket.
        assert!(f.allow(&pod("db"), "Warning", secs(302)));
        assert!(f.allow(&pod("web"), "Normal", secs(302)));
        // A long quiet spell refills the burst, no more.
        let later = secs(302 + 300 * 100);
        for _ in 0..25 {
            assert!(f.allow(&pod("web"), "Warning", later));
        }
        assert!(!f.allow(&pod("web"), "Warning", later));
    }

    #[test]
    fn the_least_recently_seen_objects_are_forgotten() {
        let mut f = SpamFilter::new(SpamOptions {
            burst: 1,
            max_entries: 2,
            ..SpamOptions::default()
        });
        assert!(f.allow(&pod("a"), "Normal", secs(0)));
        assert!(f.allow(&pod("b"), "Normal", secs(1)));
        assert!(f.allow(&pod("c"), "Normal", secs(2)));
        assert_eq!(f.len(), 2);
        // `a` was forgotten, so it starts with a full bucket again; `c` was not.
        assert!(f.allow(&pod("a"), "Normal", secs(3)));
        assert!(!f.allow(&pod("c"), "Normal", secs(3)));
    }
}
