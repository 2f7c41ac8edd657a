//! Opening a fresh store of each backend for one run.
//!
//! `memory` and `disk` runs get a new, empty store (a new directory for `disk`). An `etcd` run
//! cannot get a new server, so it gets a key prefix of its own instead, unique to the run, and
//! deletes everything under it when it closes: runs never see each other's keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orchestra::store::{
    DiskStore, DiskStoreOptions, EngineOptions, KeyRange, MemStore, Op, Store, Txn,
};
use tempfile::TempDir;

use super::plan::{Plan, Target};
use crate::bench::BenchError;
use crate::cli::bench::Backend;

/// The prefix every benchmark key starts with.
pub const BENCH_PREFIX: &str = "/bench/";

/// A fresh store, the key prefix the run works under, and what to clean up afterwards.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Every key of the run starts with this (ends with `/`).
    pub prefix: String,
    /// The data directory, removed when dropped (after the store).
    dir: Option<TempDir>,
    /// Delete the prefix's keys on close (a shared server: `etcd`).
    shared_server: bool,
}

impl Opened {
    /// Delete the run's keys from a shared server, close the store, then remove its data
    /// directory.
    pub async fn close(self, backend: Backend) -> Result<(), BenchError> {
        let Opened {
            store,
            prefix,
            dir,
            shared_server,
        } = self;
        if shared_server {
            let clear = Txn::new().and_then([Op::delete_range(KeyRange::prefix(prefix))]);
            store
                .txn(clear)
                .await
                .map_err(|e| super::store_error(backend, "deleting the run's keys", e))?;
        }
        drop(store);
        if let Some(dir) = dir {
            let path = dir.path().to_path_buf();
            if let Err(err) = dir.close() {
                tracing::warn!(path = %path.display(), %err, "could not remove the benchmark's data directory");
            }
        }
        Ok(())
    }
}

/// Open a fresh, empty store of `target`. The memory and disk backends compact automatically
/// when the plan sets a retention; the disk backend gets a new directory inside the plan's
/// data directory (created if missing), or in the system's temporary directory; the etcd
/// backend connects to the target's endpoints with `connections` connections to each, and
/// gets a prefix of its own.
pub async fn open(target: &Target, plan: &Plan, connections: usize) -> Result<Opened, BenchError> {
    let backend = target.backend;
    let engine = EngineOptions {
        auto_compaction_retention: plan.retain_revisions,
        ..EngineOptions::default()
    };
    match backend {
        Backend::Memory => Ok(Opened {
            store: Arc::new(MemStore::with_options(engine)),
            prefix: BENCH_PREFIX.to_string(),
            dir: None,
            shared_server: false,
        }),
        Backend::Disk => {
            let dir = fresh_dir(plan.data_dir.as_deref())?;
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
                prefix: BENCH_PREFIX.to_string(),
                dir: Some(dir),
                shared_server: false,
            })
        }
        Backend::Etcd => open_etcd(&target.endpoints, connections).await,
    }
}

#[cfg(feature = "etcd")]
async fn open_etcd(endpoints: &[String], connections: usize) -> Result<Opened, BenchError> {
    use orchestra::store::{EtcdOptions, EtcdStore};
    if endpoints.is_empty() {
        return Err(BenchError::NoEtcdEndpoints);
    }
    let options = EtcdOptions::new(endpoints.iter().cloned()).with_connections(connections);
    let store = EtcdStore::connect(options)
        .await
        .map_err(|source| BenchError::EtcdConnect {
            endpoints: endpoints.join(","),
            source,
        })?;
    let prefix = run_prefix(std::process::id(), wall_clock_nanos());
    tracing::debug!(endpoint = %store.current_endpoint(), %prefix, "connected to etcd");
    Ok(Opened {
        store: Arc::new(store),
        prefix,
        dir: None,
        shared_server: true,
    })
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(_endpoints: &[String], _connections: usize) -> Result<Opened, BenchError> {
    Err(BenchError::EtcdUnsupported)
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
#[cfg(feature = "etcd")]
fn wall_clock_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A prefix no other run uses: the process, the time, and a counter within the process.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub fn run_prefix(pid: u32, nanos: u128) -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    format!("{BENCH_PREFIX}{pid}-{nanos}-{run}/")
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
    use orchestra::store::StoreExt;

    use super::*;

    #[tokio::test]
    async fn fresh_dirs_are_made_inside_the_given_parent_and_removed_on_close() {
        let parent = tempfile::tempdir().unwrap();
        let nested = parent.path().join("a/b");
        let dir = fresh_dir(Some(&nested)).unwrap();
        assert!(dir.path().starts_with(&nested));
        let path = dir.path().to_path_buf();
        Opened {
            store: Arc::new(MemStore::new()),
            prefix: BENCH_PREFIX.to_string(),
            dir: Some(dir),
            shared_server: false,
        }
        .close(Backend::Disk)
        .await
        .unwrap();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn closing_a_shared_server_run_deletes_its_prefix_and_nothing_else() {
        let store = Arc::new(MemStore::new());
        store.put("/bench/run-a/k1", "v").await.unwrap();
        store.put("/bench/run-a/k2", "v").await.unwrap();
        store.put("/bench/run-b/k1", "v").await.unwrap();
        Opened {
            store: store.clone(),
            prefix: "/bench/run-a/".to_string(),
            dir: None,
            shared_server: true,
        }
        .close(Backend::Etcd)
        .await
        .unwrap();
        assert_eq!(store.get("/bench/run-a/k1").await.unwrap(), None);
        assert_eq!(store.get("/bench/run-a/k2").await.unwrap(), None);
        assert!(store.get("/bench/run-b/k1").await.unwrap().is_some());
    }

    #[test]
    fn run_prefixes_are_unique_within_a_process_and_end_with_a_slash() {
        let a = run_prefix(7, 100);
        let b = run_prefix(7, 100);
        assert_ne!(a, b);
        assert!(a.starts_with("/bench/7-100-") && a.ends_with('/'), "{a}");
    }
}
