//! Opening a fresh store of each backend for one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestra::store::{DiskStore, DiskStoreOptions, EngineOptions, MemStore, Store};
use tempfile::TempDir;

use crate::bench::BenchError;
use crate::cli::bench::Backend;

/// A fresh store, and the temporary directory that holds a disk store's data.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The data directory, removed when dropped (after the store).
    dir: Option<TempDir>,
}

impl Opened {
    /// Close the store, then remove its data directory.
    pub fn close(self) {
        let Opened { store, dir } = self;
        drop(store);
        if let Some(dir) = dir {
            let path = dir.path().to_path_buf();
            if let Err(err) = dir.close() {
                tracing::warn!(path = %path.display(), %err, "could not remove the benchmark's data directory");
            }
        }
    }
}

/// Open a fresh, empty store of `backend`, compacting automatically when `retain_revisions` is
/// set. The disk backend gets a new directory inside `data_dir` (created if missing), or in
/// the system's temporary directory.
pub async fn open(
    backend: Backend,
    data_dir: Option<&Path>,
    retain_revisions: Option<u64>,
) -> Result<Opened, BenchError> {
    let engine = EngineOptions {
        auto_compaction_retention: retain_revisions,
        ..EngineOptions::default()
    };
    match backend {
        Backend::Memory => Ok(Opened {
            store: Arc::new(MemStore::with_options(engine)),
            dir: None,
        }),
        Backend::Disk => {
            let dir = fresh_dir(data_dir)?;
            let options = DiskStoreOptions {
                engine,
                ..DiskStoreOptions::default()
            };
            let store = DiskStore::open_with(dir.path(), options)
                .await
                .map_err(|source| BenchError::Open {
                    backend: backend.as_str(),
                    path: dir.path().to_path_buf(),
                    source,
                })?;
            tracing::debug!(path = %dir.path().display(), "opened the disk store");
            Ok(Opened {
                store: Arc::new(store),
                dir: Some(dir),
            })
        }
    }
}

/// A new empty directory inside `parent` (or the system's temporary directory).
fn fresh_dir(parent: Option<&Path>) -> Result<TempDir, BenchError> {
    let parent: PathBuf = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let error = |source| BenchError::DataDir {
        path: parent.clone(),
        source,
    };
    std::fs::create_dir_all(&parent).map_err(error)?;
    tempfile::Builder::new()
        .prefix("orchestra-bench-")
        .tempdir_in(&parent)
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_dirs_are_made_inside_the_given_parent_and_removed_on_close() {
        let parent = tempfile::tempdir().unwrap();
        let nested = parent.path().join("a/b");
        let dir = fresh_dir(Some(&nested)).unwrap();
        assert!(dir.path().starts_with(&nested));
        let path = dir.path().to_path_buf();
        Opened {
            store: Arc::new(MemStore::new()),
            dir: Some(dir),
        }
        .close();
        assert!(!path.exists());
    }
}
