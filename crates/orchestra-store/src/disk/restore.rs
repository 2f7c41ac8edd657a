//! Restoring a [`Snapshot`] into a new data directory: [`DiskStore::restore`].
//!
//! The snapshot is read and checked in full before the directory is touched; the store file
//! is written under a temporary name, read back with every check that opening a store makes,
//! and only then renamed into place. Whatever fails, the directory holds either no store or
//! the complete restored one, never a damaged one. An existing store is never overwritten.

use std::path::{Path, PathBuf};

use crate::disk::journal::{RedbJournal, create_from_snapshot};
use crate::disk::lock::DirLock;
use crate::disk::{DB_FILE, DiskStore};
use crate::error::StoreError;
use crate::snapshot::{Snapshot, SnapshotError};
use crate::types::Revision;

/// The store file's name while it is being restored.
const RESTORING_FILE: &str = "orchestra.redb.restoring";

/// Why a restore failed; the data directory was left as it was (or without a store).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot file is unreadable, damaged or not a snapshot.
    #[error("cannot restore {file}: {source}")]
    Snapshot {
        /// The snapshot file.
        file: PathBuf,
        /// What was wrong with it.
        #[source]
        source: SnapshotError,
    },
    /// The data directory already holds a store.
    #[error(
        "{dir} already holds a store ({DB_FILE}); restore into a new or empty directory, then point --data-dir at it"
    )]
    NotEmpty {
        /// The data directory.
        dir: PathBuf,
    },
    /// Writing or checking the restored store failed.
    #[error("restoring into {dir} failed: {source}")]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

/// What a restore wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The restored store's revision (the snapshot's).
    pub revision: Revision,
    /// How many keys it holds.
    pub keys: usize,
    /// How many leases it holds.
    pub leases: usize,
}

impl DiskStore {
    /// Restore the snapshot file `snapshot` into the data directory `dir`, which must not
    /// hold a store yet (it is created if missing). The restored store opens at the
    /// snapshot's revision with exactly its keys; history before it is compacted away.
    pub async fn restore(snapshot: &Path, dir: &Path) -> Result<Restored, RestoreError> {
        let file = snapshot.to_path_buf();
        let read = file.clone();
        let snapshot = tokio::task::spawn_blocking(move || Snapshot::read_file(&read))
            .await
            .map_err(|err| RestoreError::Store {
                dir: dir.to_path_buf(),
                source: StoreError::Failed(format!("reading the snapshot failed: {err}")),
            })?
            .map_err(|source| RestoreError::Snapshot { file, source })?;
        restore_snapshot(snapshot, dir).await
    }
}

/// Restore an already-read snapshot into `dir`.
pub async fn restore_snapshot(snapshot: Snapshot, dir: &Path) -> Result<Restored, RestoreError> {
    let store_err = |source: StoreError| RestoreError::Store {
        dir: dir.to_path_buf(),
        source,
    };
    if dir.join(DB_FILE).exists() {
        return Err(RestoreError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir)
        .map_err(|err| store_err(StoreError::Io(format!("{}: {err}", dir.display()))))?;
    // Held while writing: a store opened on `dir` meanwhile (or a second restore) is refused.
    let lock = DirLock::acquire(dir).await.map_err(store_err)?;
    if dir.join(DB_FILE).exists() {
        return Err(RestoreError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    let dir_buf = dir.to_path_buf();
    let written = tokio::task::spawn_blocking(move || write_and_check(&snapshot, &dir_buf, lock))
        .await
        .map_err(|err| store_err(StoreError::Failed(format!("the restore failed: {err}"))))?;
    written.map_err(store_err)
}

/// Write the store under a temporary name, check it as an open would, and rename it in.
fn write_and_check(snapshot: &Snapshot, dir: &Path, lock: DirLock) -> Result<Restored, StoreError> {
    let tmp = dir.join(RESTORING_FILE);
    let io = |err: std::io::Error| StoreError::Io(format!("{}: {err}", tmp.display()));
    if tmp.exists() {
        // Left by a restore that died midway: it was never renamed in, so nothing uses it.
        std::fs::remove_file(&tmp).map_err(io)?;
    }
    let result = (|| {
        create_from_snapshot(&tmp, snapshot)?;
        let (journal, recovered) = RedbJournal::open(&tmp, 1 << 20, lock)?;
        drop(journal);
        if recovered.revision != snapshot.revision || recovered.base.len() != snapshot.kvs.len() {
            return Err(StoreError::Corrupt {
                path: tmp.display().to_string(),
                detail: format!(
                    "read back revision {} with {} keys, wrote revision {} with {} keys",
                    recovered.revision,
                    recovered.base.len(),
                    snapshot.revision,
                    snapshot.kvs.len()
                ),
            });
        }
        std::fs::rename(&tmp, dir.join(DB_FILE)).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(Restored {
        revision: snapshot.revision,
        keys: snapshot.kvs.len(),
        leases: snapshot.leases.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::snapshot::capture;
    use crate::{PutRequest, RangeRequest, Store, StoreExt};

    #[tokio::test]
    async fn a_restored_store_has_the_snapshots_keys_revision_and_leases() {
        let source = tempfile::tempdir().unwrap();
        let store = DiskStore::open(source.path()).await.unwrap();
        store.put("a", "1").await.unwrap();
        store.put("a", "2").await.unwrap();
        let lease = store.lease_grant(Duration::from_secs(90)).await.unwrap();
        store
            .put_one(PutRequest {
                key: Bytes::from("b"),
                value: Bytes::from("leased"),
                lease,
                prev_kv: false,
            })
            .await
            .unwrap();
        let snap = capture(&store).await.unwrap();
        store.put("after", "x").await.unwrap();
        drop(store);

        let file = source.path().join("snap.db");
        std::fs::write(&file, snap.encode()).unwrap();
        let target = tempfile::tempdir().unwrap();
        let dir = target.path().join("restored");
        let restored = DiskStore::restore(&file, &dir).await.unwrap();
        assert_eq!(
            restored,
            Restored {
                revision: snap.revision,
                keys: 2,
                leases: 1
            }
        );

        let store = DiskStore::open(&dir).await.unwrap();
        let status = store.status().await.unwrap();
        assert_eq!(status.revision, snap.revision);
        assert_eq!(status.compact_revision, snap.revision);
        let all = store.range(RangeRequest::prefix("")).await.unwrap();
        assert_eq!(all.kvs, snap.kvs);
        let at = store
            .range(RangeRequest {
                revision: snap.revision,
                ..RangeRequest::prefix("")
            })
            .await
            .unwrap();
        assert_eq!(at.kvs, snap.kvs);
        let older = store
            .range(RangeRequest {
                revision: snap.revision - 1,
                ..RangeRequest::prefix("")
            })
            .await;
        assert!(
            matches!(older, Err(StoreError::Compacted { .. })),
            "{older:?}"
        );
        let ttl = store.lease_time_to_live(lease).await.unwrap();
        assert_eq!(ttl.granted_ttl, Duration::from_secs(90));
        assert_eq!(ttl.keys, [Bytes::from("b")]);
        // It goes on from the snapshot's revision, and new leases do not reuse its ids.
        let next = store.put("c", "3").await.unwrap();
        assert_eq!(next, snap.revision + 1);
        assert!(store.lease_grant(Duration::from_secs(5)).await.unwrap() > lease);
        drop(store);
        // Reopening reads the same store back.
        let store = DiskStore::open(&dir).await.unwrap();
        assert_eq!(store.status().await.unwrap().revision, snap.revision + 1);
    }

    #[tokio::test]
    async fn an_empty_store_restores_to_an_empty_store() {
        let snap = capture(&crate::MemStore::new()).await.unwrap();
        let target = tempfile::tempdir().unwrap();
        restore_snapshot(snap, target.path()).await.unwrap();
        let store = DiskStore::open(target.path()).await.unwrap();
        assert_eq!(store.status().await.unwrap().revision, 1);
        assert_eq!(store.put("k", "v").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn bad_snapshots_and_occupied_directories_leave_the_directory_as_it_was() {
        let store = crate::MemStore::new();
        store.put("k", "v").await.unwrap();
        let bytes = capture(&store).await.unwrap().encode();
        let scratch = tempfile::tempdir().unwrap();

        // Truncated: refused before the directory is created.
        let truncated = scratch.path().join("truncated.db");
        std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
        let dir = scratch.path().join("never");
        let err = DiskStore::restore(&truncated, &dir).await.unwrap_err();
        assert!(err.to_string().contains("truncated.db"), "{err}");
        assert!(matches!(err, RestoreError::Snapshot { .. }), "{err}");
        assert!(!dir.exists());

        // Missing file: named.
        let err = DiskStore::restore(&scratch.path().join("missing.db"), &dir)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing.db"), "{err}");

        // An existing store is never overwritten.
        let good = scratch.path().join("good.db");
        std::fs::write(&good, &bytes).unwrap();
        let occupied = scratch.path().join("occupied");
        let existing = DiskStore::open(&occupied).await.unwrap();
        existing.put("mine", "keep").await.unwrap();
        drop(existing);
        let err = DiskStore::restore(&good, &occupied).await.unwrap_err();
        assert!(matches!(err, RestoreError::NotEmpty { .. }), "{err}");
        let existing = DiskStore::open(&occupied).await.unwrap();
        assert!(existing.get("mine").await.unwrap().is_some());
        assert!(existing.get("k").await.unwrap().is_none());
    }
}
