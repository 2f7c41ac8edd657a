//! Objects that expire: kinds with a time-to-live (Events, after an hour by default, as
//! kube-apiserver's `--event-ttl`) are written attached to a store lease, so the store deletes
//! them when the lease runs out, with no sweeper and a DELETED event to every watcher.
//!
//! Granting one lease per object would fill the store's lease table (a busy cluster records
//! thousands of events a minute), so objects written close together share one: a lease is
//! granted a little longer than the TTL (the reuse window: 5% of the TTL, at most a minute,
//! the figures kube-apiserver uses) and every object written within that window is attached
//! to it, up to [`MAX_OBJECTS_PER_LEASE`]. Each object therefore lives at least its TTL and
//! at most the TTL plus the window. An update re-attaches the object to the current lease, so
//! a recurring event (its count bumped) lives on.

use std::collections::HashMap;
use std::time::Duration;

use orchestra_store::{LeaseId, Store, StoreError};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The default TTL of Events (kube-apiserver's `--event-ttl`).
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(3600);

/// The most objects attached to one lease before a new one is granted (so that revoking one
/// lease is a bounded transaction).
pub const MAX_OBJECTS_PER_LEASE: usize = 1000;

/// The longest reuse window of a lease.
const MAX_REUSE_WINDOW: Duration = Duration::from_secs(60);

/// How long after its grant a lease for `ttl` still takes new objects: 5% of the TTL, at most
/// a minute.
pub fn reuse_window(ttl: Duration) -> Duration {
    (ttl / 20).min(MAX_REUSE_WINDOW)
}

/// The lease currently handed out for one TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SharedLease {
    /// The store's lease.
    pub(crate) id: LeaseId,
    /// Until when it takes new objects.
    pub(crate) reusable_until: Instant,
    /// How many objects were attached to it.
    pub(crate) attached: usize,
}

impl SharedLease {
    /// Can an object written at `now` join this lease and still live its full TTL?
    fn takes_one_more(&self, now: Instant) -> bool {
        now <= self.reusable_until && self.attached < MAX_OBJECTS_PER_LEASE
    }
}

/// The kinds with a TTL, and the lease each TTL currently shares. Cheap to clone (shared).
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    /// TTL per kind, by plural (the store keys' second segment).
    ttls: HashMap<&'static str, Duration>,
    /// The shared lease per TTL.
    leases: Mutex<HashMap<Duration, SharedLease>>,
}

impl Expiry {
    /// Events expire after [`DEFAULT_EVENT_TTL`]; nothing else expires.
    pub(crate) fn kubernetes_defaults() -> Self {
        let mut expiry = Expiry::default();
        expiry.ttls.insert("events", DEFAULT_EVENT_TTL);
        expiry
    }

    /// A copy of the settings with `plural`'s TTL set (`None`: never expires); the leases
    /// are not shared with the original.
    pub(crate) fn with_ttl(&self, plural: &'static str, ttl: Option<Duration>) -> Self {
        let mut ttls = self.ttls.clone();
        match ttl {
            Some(ttl) => ttls.insert(plural, ttl),
            None => ttls.remove(plural),
        };
        Expiry {
            ttls,
            leases: Mutex::default(),
        }
    }

    /// The TTL of `plural`'s objects, if they expire.
    pub(crate) fn ttl(&self, plural: &str) -> Option<Duration> {
        self.ttls.get(plural).copied()
    }

    /// The lease to attach a new or updated `plural` object to (0: none, it does not
    /// expire), granting one when the current one is too old or too full.
    pub(crate) async fn lease_for(
        &self,
        store: &dyn Store,
        plural: &str,
    ) -> Result<LeaseId, StoreError> {
        let Some(ttl) = self.ttl(plural) else {
            return Ok(0);
        };
        let mut leases = self.leases.lock().await;
        let now = Instant::now();
        if let Some(lease) = leases.get_mut(&ttl).filter(|l| l.takes_one_more(now)) {
            lease.attached += 1;
            return Ok(lease.id);
        }
        let window = reuse_window(ttl);
        let id = store.lease_grant(ttl + window).await?;
        leases.insert(
            ttl,
            SharedLease {
                id,
                reusable_until: now + window,
                attached: 1,
            },
        );
        Ok(id)
    }

    /// Forgets `id` (the store no longer has it: revoked, or lost with an etcd restart), so
    /// that the next write grants a new lease.
    pub(crate) async fn forget(&self, plural: &str, id: LeaseId) {
        let Some(ttl) = self.ttl(plural) else {
            return;
        };
        let mut leases = self.leases.lock().await;
        if leases.get(&ttl).is_some_and(|lease| lease.id == id) {
            leases.remove(&ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestra_store::MemStore;

    use super::*;

    #[test]
    fn the_reuse_window_is_five_percent_of_the_ttl_and_at_most_a_minute() {
        assert_eq!(reuse_window(Duration::from_secs(3600)), MAX_REUSE_WINDOW);
        assert_eq!(
            reuse_window(Duration::from_secs(100)),
            Duration::from_secs(5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn objects_written_within_the_window_share_a_lease() {
        let store = MemStore::new();
        let expiry = Expiry::kubernetes_defaults();
        assert_eq!(expiry.lease_for(&store, "pods").await.unwrap(), 0);
        let first = expiry.lease_for(&store, "events").await.unwrap();
        assert_ne!(first, 0);
        let status = store.lease_time_to_live(first).await.unwrap();
        assert_eq!(status.granted_ttl, Duration::from_secs(3660));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(expiry.lease_for(&store, "events").await.unwrap(), first);
        tokio::time::advance(Duration::from_millis(1)).await;
        let second = expiry.lease_for(&store, "events").await.unwrap();
        assert_ne!(second, first);
        expiry.forget("events", second).await;
        let third = expiry.lease_for(&store, "events").await.unwrap();
        assert_ne!(third, second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_lease_is_replaced() {
        let store = MemStore::new();
        let expiry = Expiry::kubernetes_defaults();
        let first = expiry.lease_for(&store, "events").await.unwrap();
        for _ in 1..MAX_OBJECTS_PER_LEASE {
            assert_eq!(expiry.lease_for(&store, "events").await.unwrap(), first);
        }
        assert_ne!(expiry.lease_for(&store, "events").await.unwrap(), first);
    }

    #[test]
    fn ttls_can_be_changed_and_removed() {
        let expiry = Expiry::kubernetes_defaults();
        let short = expiry.with_ttl("events", Some(Duration::from_secs(5)));
        assert_eq!(short.ttl("events"), Some(Duration::from_secs(5)));
        assert_eq!(short.with_ttl("events", None).ttl("events"), None);
        assert_eq!(expiry.ttl("events"), Some(DEFAULT_EVENT_TTL));
    }
}
