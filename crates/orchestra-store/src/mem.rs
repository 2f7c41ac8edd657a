//! [`MemStore`]: the in-memory store, fast and the reference for every other implementation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::mvcc::EngineOptions;
use crate::mvcc::engine::Engine;
use crate::store::Store;
use crate::types::{
    LeaseId, LeaseStatus, RangeRequest, RangeResponse, Revision, StoreStatus, Txn, TxnResponse,
    WatchRequest,
};
use crate::watch::WatchStream;

/// An in-memory MVCC store with etcd's semantics. Nothing survives the process; everything
/// else (revisions, history, watch, leases, compaction) behaves as in [`DiskStore`](crate::DiskStore).
///
/// Cloning is cheap and shares the store.
#[derive(Clone)]
pub struct MemStore {
    engine: Arc<Engine>,
}

impl MemStore {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::with_options(EngineOptions::default())
    }

    /// An empty store with custom limits and settings.
    pub fn with_options(options: EngineOptions) -> Self {
        MemStore {
            engine: Engine::new(options),
        }
    }
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("status", &self.engine.status())
            .finish()
    }
}

#[async_trait]
impl Store for MemStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.engine.range(&req)
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.engine.txn(txn).await
    }
    async fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError> {
        self.engine.watch(req)
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.engine.compact(revision).await
    }
    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.engine.lease_grant(ttl).await
    }
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        self.engine.lease_keep_alive(id)
    }
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.engine.lease_revoke(id).await
    }
    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError> {
        self.engine.lease_time_to_live(id)
    }
    async fn status(&self) -> Result<StoreStatus, StoreError> {
        Ok(self.engine.status())
    }
}
