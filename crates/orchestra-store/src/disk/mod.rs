//! [`DiskStore`]: the durable embedded store, orchestra's default.
//!
//! It is the in-memory engine of [`MemStore`](crate::MemStore) with a journal on
//! [redb](https://docs.rs/redb), an embedded, pure-Rust, ACID key-value engine with
//! copy-on-write B-trees and checksummed commits. We chose redb over a file format of our own
//! because crash safety (torn writes, partial commits) is exactly what a home-made log gets
//! wrong, and over fjall (an LSM tree) because the store's write volume is small and its data
//! fits in memory, where a B-tree with one file and no background compaction threads is simpler
//! to operate.
//!
//! Guarantees:
//! - a write is acknowledged only after its redb transaction committed with an fsync;
//!   concurrent writers share one commit (group commit), so throughput grows with clients;
//! - reopening restores every key, the revision, the history since the last compaction (so
//!   watchers resume where they were) and the leases (with their full TTL, as etcd restarts them);
//! - the data directory is locked against a second process;
//! - every stored value carries a CRC32, revisions are checked to be contiguous, and redb's own
//!   checks cover its pages: damage is reported as [`StoreError::Corrupt`], never returned as data;
//! - compaction folds old history into the live-key table and shrinks the file.
//!
//! Layout of the data directory: `orchestra.redb` (the database) and `LOCK`.
//!
//! Backups: [`DiskStore::restore`] makes a new data directory from a
//! [`Snapshot`](crate::snapshot::Snapshot) file (see `restore`).

mod format;
mod journal;
mod lock;
mod restore;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StoreError;
use crate::mvcc::EngineOptions;
use crate::mvcc::engine::Engine;

use journal::RedbJournal;
use lock::DirLock;
pub use restore::{RestoreError, Restored, restore_snapshot};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "orchestra.redb";

/// Settings of a [`DiskStore`].
#[derive(Clone, Debug)]
pub struct DiskStoreOptions {
    /// Limits and watch settings shared with [`MemStore`](crate::MemStore).
    pub engine: EngineOptions,
    /// redb's page cache, in bytes.
    pub cache_bytes: usize,
}

impl Default for DiskStoreOptions {
    fn default() -> Self {
        DiskStoreOptions {
            engine: EngineOptions::default(),
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The durable embedded store. Cloning is cheap and shares the store; the data directory stays
/// locked until the last clone is dropped and its last flush has finished.
#[derive(Clone)]
pub struct DiskStore {
    engine: Arc<Engine>,
    dir: Arc<PathBuf>,
}

impl DiskStore {
    /// Open the store in `dir`, creating the directory and an empty store if needed.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, DiskStoreOptions::default()).await
    }

    /// Open with custom settings.
    pub async fn open_with(
        dir: impl AsRef<Path>,
        options: DiskStoreOptions,
    ) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|err| StoreError::Io(format!("{}: {err}", dir.display())))?;
        let lock = DirLock::acquire(&dir).await?;
        let path = dir.join(DB_FILE);
        let cache = options.cache_bytes;
        let opened = tokio::task::spawn_blocking(move || {
            // A damaged file must give an error, never take the process down.
            std::panic::catch_unwind(AssertUnwindSafe(|| RedbJournal::open(&path, cache, lock)))
                .unwrap_or_else(|panic| {
                    let detail = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "the database engine panicked while reading it".into());
                    Err(StoreError::Corrupt {
                        path: path.display().to_string(),
                        detail,
                    })
                })
        })
        .await
        .map_err(|err| StoreError::Failed(format!("opening the store failed: {err}")))?;
        let (journal, recovered) = opened?;
        tracing::info!(
            dir = %dir.display(),
            revision = recovered.revision,
            compact_revision = recovered.compact_revision,
            leases = recovered.leases.len(),
            "opened disk store"
        );
        let engine = Engine::with_journal(options.engine, Some(Arc::new(journal)), recovered);
        engine.start_background();
        Ok(DiskStore {
            engine,
            dir: Arc::new(dir),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.dir)
            .field("status", &self.engine.status())
            .finish()
    }
}

crate::mvcc::engine::store_over_engine!(DiskStore);
