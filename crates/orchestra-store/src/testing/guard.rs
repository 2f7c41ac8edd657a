//! [`Guarded`]: a store that keeps something alive for as long as it lives (a temporary data
//! directory, a test server), so that a factory handed to the suite can return one value.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{
    KvHash, LeaseId, LeaseStatus, PutRequest, PutResponse, RangeRequest, RangeResponse, Revision,
    StoreStatus, Txn, TxnResponse, WatchRequest,
};
use crate::watch::WatchStream;

/// A [`Store`] that delegates to `S` and drops `G` after it: for example a
/// [`DiskStore`](crate::DiskStore) together with the temporary directory it lives in.
///
/// ```no_run
/// # async fn example() -> Result<(), orchestra_store::StoreError> {
/// use orchestra_store::{DiskStore, testing::Guarded};
/// let dir = std::env::temp_dir().join("orchestra-example"); // a tempfile::TempDir in tests
/// let store = Guarded::new(DiskStore::open(&dir).await?, dir);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Guarded<S, G> {
    // Field order matters: the store is dropped before the guard.
    store: S,
    guard: G,
}

impl<S, G> Guarded<S, G> {
    /// Keep `guard` alive as long as `store`.
    pub fn new(store: S, guard: G) -> Self {
        Guarded { store, guard }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

#[async_trait]
impl<S: Store, G: Send + Sync + 'static> Store for Guarded<S, G> {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.store.range(req).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.store.txn(txn).await
    }
    async fn put_one(&self, req: PutRequest) -> Result<PutResponse, StoreError> {
        self.store.put_one(req).await
    }
    async fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError> {
        self.store.watch(req).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.store.compact(revision).await
    }
    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.store.lease_grant(ttl).await
    }
    async fn lease_grant_id(&self, id: LeaseId, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.store.lease_grant_id(id, ttl).await
    }
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        self.store.lease_keep_alive(id).await
    }
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.store.lease_revoke(id).await
    }
    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError> {
        self.store.lease_time_to_live(id).await
    }
    async fn lease_list(&self) -> Result<Vec<LeaseId>, StoreError> {
        self.store.lease_list().await
    }
    async fn status(&self) -> Result<StoreStatus, StoreError> {
        self.store.status().await
    }
    async fn hash_kv(&self, revision: Revision) -> Result<KvHash, StoreError> {
        self.store.hash_kv(revision).await
    }
}
