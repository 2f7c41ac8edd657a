//! The [`Store`] trait: what every key-value engine under orchestra provides.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::types::{
    KvHash, LeaseId, LeaseStatus, Op, OpResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, Revision, StoreStatus, Txn, TxnResponse, WatchRequest,
};
use crate::watch::WatchStream;

/// An MVCC key-value store with etcd v3's semantics: one global revision per write
/// transaction, reads at past revisions, watches from a revision, leases and compaction.
///
/// Implementations: [`MemStore`](crate::MemStore), [`DiskStore`](crate::DiskStore) and (in its
/// own module) an etcd client. Any implementation can check itself with
/// [`testing::run_conformance`](crate::testing::run_conformance).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read one key, a prefix or a range, at the latest or a past revision.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError>;

    /// Run a transaction atomically; a transaction that writes uses exactly one new revision.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;

    /// Write one key unconditionally: exactly `txn` of a transaction with no compares and this
    /// one put (the same checks, errors, revision and watch event), which is what the default
    /// does. The most common write, so stores may serve it without the transaction machinery.
    async fn put_one(&self, req: PutRequest) -> Result<PutResponse, StoreError> {
        let resp = self.txn(Txn::new().and_then([Op::Put(req)])).await?;
        let prev_kv = match resp.responses.into_iter().next() {
            Some(OpResponse::Put { prev_kv }) => prev_kv,
            _ => None,
        };
        Ok(PutResponse {
            header_revision: resp.header_revision,
            prev_kv,
        })
    }

    /// Follow changes from a revision: ordered, each exactly once, whole transactions together.
    async fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError>;

    /// Drop the history below `revision`: reads and watches below it fail with `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// Grant a lease that expires after `ttl` unless kept alive.
    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Grant a lease with the id the caller chose, as etcd's LeaseGrant with a nonzero ID does:
    /// `LeaseExists` when a lease with that id exists. An id of 0 lets the store choose, as
    /// [`Store::lease_grant`] does. The default supports only 0; every store of this crate
    /// supports any id.
    async fn lease_grant_id(&self, id: LeaseId, ttl: Duration) -> Result<LeaseId, StoreError> {
        if id == 0 {
            return self.lease_grant(ttl).await;
        }
        Err(StoreError::Other(format!(
            "this store cannot grant a lease with a chosen id ({id}); grant with id 0"
        )))
    }

    /// Renew a lease for its full TTL; returns that TTL.
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError>;

    /// Revoke a lease now, deleting its keys in one transaction.
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError>;

    /// A lease's TTL, remaining time and keys.
    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError>;

    /// Every lease that exists (granted, not yet revoked or expired), in ascending id order.
    async fn lease_list(&self) -> Result<Vec<LeaseId>, StoreError>;

    /// The current and compacted revisions, and the size on disk.
    async fn status(&self) -> Result<StoreStatus, StoreError>;

    /// etcd's `HashKV` of the history up to `revision` (0: the current one): equal for two
    /// stores (or a store and an etcd member) that went through the same writes. As in etcd,
    /// a revision at or below the compact revision fails with `Compacted` and one ahead of
    /// the store with `FutureRevision`. The default says the store cannot compute it.
    async fn hash_kv(&self, revision: Revision) -> Result<KvHash, StoreError> {
        Err(StoreError::Other(format!(
            "this store cannot compute etcd's HashKV (asked at revision {revision})"
        )))
    }
}
