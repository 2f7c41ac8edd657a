//! [`MemStore`]: the in-memory store, fast and the reference for every other implementation.

use std::sync::Arc;

use crate::mvcc::EngineOptions;
use crate::mvcc::engine::Engine;

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

crate::mvcc::engine::store_over_engine!(MemStore);
