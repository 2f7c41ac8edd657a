//! The errors every [`Store`](crate::Store) operation can return.

use crate::types::{LeaseId, Revision};

/// What went wrong with a store operation. Every variant says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The requested revision was compacted away; re-list at the latest revision.
    #[error(
        "revision {requested} has been compacted (oldest available revision is {compact_revision}); re-list at the latest revision and watch from there"
    )]
    Compacted {
        /// The revision the caller asked for.
        requested: Revision,
        /// The oldest revision still available.
        compact_revision: Revision,
    },
    /// The requested revision is ahead of the store.
    #[error("revision {requested} is in the future (current revision is {current})")]
    FutureRevision {
        /// The revision the caller asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A watcher fell too far behind and could not be served from history.
    #[error(
        "watcher lagged behind at revision {revision} and history no longer covers it; re-list and watch again"
    )]
    Lagged {
        /// The first revision the watcher did not receive.
        revision: Revision,
    },
    /// The key is empty; keys must have at least one byte.
    #[error("key is empty: keys must have at least one byte")]
    EmptyKey,
    /// The request is larger than the store accepts.
    #[error("request is {size} bytes, over the limit of {limit} bytes")]
    RequestTooLarge {
        /// The request's size in bytes (keys and values).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A transaction has more operations than the store accepts.
    #[error("transaction has {ops} operations, over the limit of {limit}")]
    TooManyOps {
        /// The number of operations (compares, and the larger of the two branches).
        ops: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A transaction branch writes the same key twice.
    #[error("transaction writes key {key:?} more than once in one branch")]
    DuplicateKey {
        /// The key, lossily decoded as UTF-8.
        key: String,
    },
    /// A request names a key range whose end is not after its start.
    #[error("range end {end:?} is not after key {key:?}")]
    InvalidRange {
        /// The start key, lossily decoded as UTF-8.
        key: String,
        /// The end key, lossily decoded as UTF-8.
        end: String,
    },
    /// The lease does not exist (never granted, expired or revoked).
    #[error("lease {0} not found (it expired, was revoked, or was never granted)")]
    LeaseNotFound(LeaseId),
    /// A lease with the id a grant asked for already exists.
    #[error(
        "lease {0} already exists; grant with another id, or with id 0 to let the store choose"
    )]
    LeaseExists(LeaseId),
    /// A lease TTL outside what the store accepts.
    #[error("lease TTL {ttl_ms} ms is invalid: it must be between {min_ms} ms and {max_ms} ms")]
    InvalidTtl {
        /// The requested TTL in milliseconds.
        ttl_ms: u128,
        /// The smallest accepted TTL in milliseconds.
        min_ms: u128,
        /// The largest accepted TTL in milliseconds.
        max_ms: u128,
    },
    /// The data directory is held by another process.
    #[error(
        "data directory {path} is locked by another process; stop it or choose another --data-dir"
    )]
    Locked {
        /// The data directory.
        path: String,
    },
    /// The on-disk data failed a consistency check.
    #[error(
        "store data in {path} is corrupt: {detail}; restore from a backup or start with an empty data directory"
    )]
    Corrupt {
        /// The file or directory that failed the check.
        path: String,
        /// What was found.
        detail: String,
    },
    /// The on-disk data is in a format newer than this version reads: it was written by a
    /// newer version of orchestra. Nothing was changed.
    #[error(
        "store data in {path} is in on-disk format {found}, newer than format {supported} that this version of orchestra reads: it was written by a newer orchestra; run that version (or newer), or restore a backup of the data directory made before the upgrade"
    )]
    UnsupportedFormat {
        /// The file that records the format.
        path: String,
        /// The format found in it.
        found: i64,
        /// The newest format this version reads.
        supported: i64,
    },
    /// An I/O error from the disk or the network.
    #[error("I/O error: {0}")]
    Io(String),
    /// The store hit an unrecoverable error earlier and refuses further writes; reopen it.
    #[error("store has failed and must be reopened: {0}")]
    Failed(String),
    /// The store is closed.
    #[error("store is closed")]
    Closed,
    /// Any other error from an implementation (for example a remote store's transport).
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// True when a caller should re-list and re-watch (history is gone).
    pub fn is_compacted(&self) -> bool {
        matches!(
            self,
            StoreError::Compacted { .. } | StoreError::Lagged { .. }
        )
    }
}

impl From<std::io::Error> for StoreError {
    fn from(err: std::io::Error) -> Self {
        StoreError::Io(err.to_string())
    }
}
