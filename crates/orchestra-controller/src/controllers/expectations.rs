//! Expectations: a controller that wrote objects must not decide again from a cache that does
//! not show those writes yet, or it would create (or delete) the same pods twice.
//!
//! After its writes, a controller records the highest resourceVersion they produced for the
//! key; before deciding, it checks that the informer's cache has applied that version (a
//! watch delivers changes in revision order, so the cache then shows every one of them). An
//! expectation expires after a timeout, as Kubernetes' do, so that a lost event delays a
//! controller rather than wedging it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use orchestra_api::reflector::ObjectKey;
use tokio::time::Instant;

/// How long an unmet expectation holds a key back (Kubernetes': 5 minutes).
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(300);

/// Per-key revisions the cache must reach.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, (i64, Instant)>>,
}

impl Expectations {
    /// Records that `key`'s writes produced `revision` (keeps the highest).
    pub fn expect(&self, key: &ObjectKey, revision: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + EXPECTATION_TIMEOUT;
        let entry = pending.entry(key.clone()).or_insert((revision, deadline));
        *entry = (entry.0.max(revision), deadline);
    }

    /// The revision `key` waits for, if its expectation is unmet at `cache_revision` and has
    /// not expired; a met or expired expectation is forgotten.
    pub fn unmet(&self, key: &ObjectKey, cache_revision: i64) -> Option<i64> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let (revision, deadline) = *pending.get(key)?;
        if cache_revision >= revision || Instant::now() >= deadline {
            pending.remove(key);
            return None;
        }
        Some(revision)
    }

    /// Forgets `key` (its object was deleted).
    pub fn forget(&self, key: &ObjectKey) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn met_by_the_cache_or_expired_by_time() {
        let expectations = Expectations::default();
        let key = ObjectKey {
            namespace: "ns".into(),
            name: "web".into(),
        };
        assert_eq!(expectations.unmet(&key, 0), None);
        expectations.expect(&key, 10);
        expectations.expect(&key, 7);
        assert_eq!(expectations.unmet(&key, 9), Some(10), "the highest is kept");
        assert_eq!(expectations.unmet(&key, 10), None);
        assert_eq!(expectations.unmet(&key, 0), None, "met ones are forgotten");
        expectations.expect(&key, 20);
        tokio::time::advance(EXPECTATION_TIMEOUT).await;
        assert_eq!(expectations.unmet(&key, 0), None, "expired");
    }
}
