//! The seam between the in-memory engine and durable storage: the records the engine asks a
//! [`Journal`] to persist, and what a journal hands back on reopen.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::StoreError;
use crate::types::{Event, KeyValue, LeaseId, Revision};

/// One durable change, in the order the engine made it.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    /// A write transaction's events at its revision.
    Txn {
        revision: Revision,
        events: Arc<[Event]>,
    },
    /// A lease was granted; `next_id` is the id the next grant will use.
    LeaseGrant {
        id: LeaseId,
        ttl: Duration,
        next_id: LeaseId,
    },
    /// A lease was revoked or expired (its keys' deletion is a `Txn` record just before).
    LeaseRevoke { id: LeaseId },
    /// History below `revision` was dropped.
    Compact { revision: Revision },
}

/// Durable storage under the engine. `persist` is called from one flusher at a time, with the
/// records of every write since the previous call, and must not return before they are durable.
pub(crate) trait Journal: Send + Sync + 'static {
    /// Make a batch durable (one fsync for the whole batch: this is the group commit).
    fn persist(&self, batch: &[Record]) -> Result<(), StoreError>;
    /// Bytes used on disk.
    fn size(&self) -> u64;
}

/// One change of a stored revision, enough to replay it.
#[derive(Clone, Debug)]
pub(crate) enum ReplayOp {
    /// The key was written.
    Put {
        key: Bytes,
        value: Bytes,
        lease: LeaseId,
    },
    /// The key was deleted.
    Delete { key: Bytes },
}

/// What a journal read back on open.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The keys alive at `base_revision` (the history up to it folded in), each with its sub
    /// revision (`UNKNOWN_SUB` when not stored).
    pub base: Vec<(KeyValue, u32)>,
    /// The revision `base` reflects (1 when nothing was folded).
    pub base_revision: Revision,
    /// The revision history was compacted at (0: never); at or above `base_revision`.
    pub compact_revision: Revision,
    /// The revisions after `base_revision`, contiguous and in order.
    pub revisions: Vec<(Revision, Vec<ReplayOp>)>,
    /// The newest revision (the store's revision when it was closed).
    pub revision: Revision,
    /// The leases and their TTLs.
    pub leases: Vec<(LeaseId, Duration)>,
    /// The id the next lease grant will use.
    pub next_lease_id: LeaseId,
}
