//! The lease table: TTLs, deadlines and the keys attached to each lease. Pure bookkeeping;
//! the engine turns an expiry into a delete transaction.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::types::LeaseId;

/// The shortest TTL a lease may have.
pub(crate) const MIN_TTL: Duration = Duration::from_millis(100);
/// The longest TTL a lease may have (etcd's limit).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(9_000_000_000);

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<Bytes>,
}

/// Every live lease.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    leases: HashMap<LeaseId, Lease>,
    next_id: LeaseId,
}

impl Default for LeaseTable {
    fn default() -> Self {
        LeaseTable {
            leases: HashMap::new(),
            next_id: 1,
        }
    }
}

impl LeaseTable {
    /// Grant a new lease expiring `ttl` after `now`, with id `id`, or (0) the next free id.
    pub(crate) fn grant(
        &mut self,
        id: LeaseId,
        ttl: Duration,
        now: Instant,
    ) -> Result<LeaseId, StoreError> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(StoreError::InvalidTtl {
                ttl_ms: ttl.as_millis(),
                min_ms: MIN_TTL.as_millis(),
                max_ms: MAX_TTL.as_millis(),
            });
        }
        let id = if id == 0 {
            self.free_id()?
        } else if self.leases.contains_key(&id) {
            return Err(StoreError::LeaseExists(id));
        } else {
            id
        };
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    /// The next id no lease holds (a client may have chosen ids ahead of `next_id`).
    fn free_id(&mut self) -> Result<LeaseId, StoreError> {
        let mut id = self.next_id.max(1);
        while self.leases.contains_key(&id) {
            id = id
                .checked_add(1)
                .ok_or_else(|| StoreError::Other("every positive lease id is in use".into()))?;
        }
        self.next_id = id.saturating_add(1);
        Ok(id)
    }

    /// Re-create a lease read back from disk, with its full TTL from `now` (as etcd does on restart).
    pub(crate) fn restore(&mut self, id: LeaseId, ttl: Duration, now: Instant) {
        let ttl = ttl.clamp(MIN_TTL, MAX_TTL);
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// Every lease's id, ascending.
    pub(crate) fn ids(&self) -> Vec<LeaseId> {
        let mut ids: Vec<LeaseId> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The id the next grant will use (persisted so that ids are never reused).
    pub(crate) fn next_id(&self) -> LeaseId {
        self.next_id
    }

    /// Never hand out ids below `next_id`.
    pub(crate) fn reserve_ids_below(&mut self, next_id: LeaseId) {
        self.next_id = self.next_id.max(next_id);
    }

    /// Does the lease exist?
    pub(crate) fn contains(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Renew a lease for its full TTL.
    pub(crate) fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Result<Duration, StoreError> {
        let lease = self
            .leases
            .get_mut(&id)
            .ok_or(StoreError::LeaseNotFound(id))?;
        if lease.deadline <= now {
            // Expired, its revocation pending: renewing must not revive it (etcd's Renew fails too).
            return Err(StoreError::LeaseNotFound(id));
        }
        lease.deadline = now + lease.ttl;
        Ok(lease.ttl)
    }

    /// The granted TTL, the time left and the attached keys.
    pub(crate) fn status(
        &self,
        id: LeaseId,
        now: Instant,
    ) -> Result<(Duration, Duration, Vec<Bytes>), StoreError> {
        let lease = self.leases.get(&id).ok_or(StoreError::LeaseNotFound(id))?;
        let remaining = lease.deadline.saturating_duration_since(now);
        Ok((lease.ttl, remaining, lease.keys.iter().cloned().collect()))
    }

    /// Remove a lease, returning its keys.
    pub(crate) fn remove(&mut self, id: LeaseId) -> Result<Vec<Bytes>, StoreError> {
        let lease = self
            .leases
            .remove(&id)
            .ok_or(StoreError::LeaseNotFound(id))?;
        Ok(lease.keys.into_iter().collect())
    }

    /// Record that `key` now belongs to `lease` (0: none), leaving `previous`.
    pub(crate) fn attach(&mut self, key: &Bytes, previous: LeaseId, lease: LeaseId) {
        if previous != 0 && previous != lease {
            self.detach(key, previous);
        }
        if lease == 0 {
            return;
        }
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.clone());
        }
    }

    /// Record that `key` no longer belongs to `lease`.
    pub(crate) fn detach(&mut self, key: &[u8], lease: LeaseId) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    /// The earliest deadline of any lease.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.deadline).min()
    }

    /// The leases whose deadline has passed.
    pub(crate) fn expired(&self, now: Instant) -> Vec<LeaseId> {
        let mut ids: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}
