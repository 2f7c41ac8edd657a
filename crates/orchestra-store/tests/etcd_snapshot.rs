//! Backups through the etcd API: the real `etcdctl snapshot save` against orchestra's served
//! store (Maintenance.Snapshot), while a writer keeps writing; the saved file is the store at
//! one revision, exactly; `DiskStore::restore` turns it into a data directory holding exactly
//! that revision's keys, which serves again; damaged files are refused without a trace.
//!
//! Skipped (with a message) when etcdctl is not installed, unless `ORCHESTRA_SYSTEM_TESTS=1`.

#![cfg(feature = "etcd")]

mod etcd_harness;

use etcd_harness::json_number;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use orchestra_store::etcd::server::{ServerOptions, serve};
use orchestra_store::snapshot::{Snapshot, SnapshotError};
use orchestra_store::{DiskStore, KeyRange, PutRequest, RangeRequest, Store, StoreExt};
use tokio::sync::oneshot;

/// Serve `store` on a free loopback port until the returned sender is dropped; its address
/// without a scheme (etcdctl 3.4 sends an endpoint's URL as the HTTP/2 `:authority` of
/// `endpoint` and `defrag` requests, which the h2 library rejects; a bare address works for
/// every command).
async fn serve_on_loopback(store: Arc<dyn Store>) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = listener.local_addr().expect("local address").to_string();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(err) = serve(store, listener, ServerOptions::default(), shutdown).await {
            eprintln!("etcd server failed: {err}");
        }
    });
    (url, tx)
}

/// etcdctl on PATH, or `None` after saying why the test is skipped (a failure under
/// `ORCHESTRA_SYSTEM_TESTS=1`).
fn etcdctl_or_skip(test: &str) -> Option<PathBuf> {
    etcd_harness::trace();
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcdctl"))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(binary) => Some(binary),
        None if etcd_harness::required() => panic!(
            "{test}: etcdctl is not on PATH and ORCHESTRA_SYSTEM_TESTS=1 requires it; install it with `apt-get install etcd-client`"
        ),
        None => {
            eprintln!("{test}: skipped: etcdctl is not on PATH (apt-get install etcd-client)");
            None
        }
    }
}

/// Run etcdctl against `url` (on the blocking pool: the server shares this runtime); it must
/// succeed. Its stdout.
async fn etcdctl(binary: &Path, url: &str, args: &[&str]) -> String {
    let mut command = Command::new(binary);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .arg("--command-timeout=30s")
        .args(args);
    let what = format!("etcdctl {args:?}");
    tokio::task::spawn_blocking(move || {
        let out = command.output().expect("run etcdctl");
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("the etcdctl thread")
}

/// Every key of `store` at `revision`.
async fn all_at(store: &dyn Store, revision: i64) -> Vec<orchestra_store::KeyValue> {
    store
        .range(RangeRequest {
            range: KeyRange::prefix(""),
            revision,
            ..Default::default()
        })
        .await
        .expect("read every key")
        .kvs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_snapshot_save_then_restore() {
    let Some(ctl) = etcdctl_or_skip("etcdctl_snapshot_save_then_restore") else {
        return;
    };
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let store = DiskStore::open(dirs.path().join("source"))
        .await
        .expect("open the source store");
    for i in 0..300 {
        store
            .put(format!("/registry/pods/p{i:03}"), format!("v{i}"))
            .await
            .expect("put");
    }
    for i in (0..300).step_by(7) {
        store
            .put(format!("/registry/pods/p{i:03}"), "rewritten")
            .await
            .expect("rewrite");
    }
    store.delete("/registry/pods/p001").await.expect("delete");
    let lease = store
        .lease_grant(Duration::from_secs(120))
        .await
        .expect("grant a lease");
    store
        .put_one(PutRequest {
            key: Bytes::from("/registry/leases/node-1"),
            value: Bytes::from("held"),
            lease,
            prev_kv: false,
        })
        .await
        .expect("put with a lease");
    let (url, _stop) = serve_on_loopback(Arc::new(store.clone())).await;

    // A writer keeps writing during the whole save: the snapshot must still be one revision.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while writing.load(Ordering::Relaxed) || n < 50 {
                store
                    .put(format!("/registry/events/e{}", n % 97), format!("{n}"))
                    .await
                    .expect("concurrent put");
                n += 1;
            }
            n
        })
    };
    let file = dirs.path().join("backup.db");
    let file_arg = file.to_str().expect("a UTF-8 path");
    let saved = etcdctl(&ctl, &url, &["snapshot", "save", file_arg]).await;
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.expect("the writer");
    assert!(written >= 50);

    // The file is the store at exactly one revision: the same keys, values and revisions as
    // a read of the live store at that revision.
    let snapshot = Snapshot::read_file(&file).expect("the saved snapshot reads back");
    let revision = snapshot.revision;
    assert_eq!(snapshot.kvs, all_at(&store, revision).await);
    assert!(
        snapshot
            .kvs
            .iter()
            .all(|kv| kv.key.as_ref() != b"/registry/pods/p001")
    );
    assert_eq!(snapshot.leases.len(), 1);
    assert_eq!(snapshot.leases[0].id, lease);

    // More writes after the snapshot: none of them may appear in the restored store.
    store.put("/registry/after", "x").await.expect("put after");
    store
        .delete("/registry/pods/p002")
        .await
        .expect("delete after");
    let hash_at = |url: String| {
        let ctl = ctl.clone();
        async move {
            let out = etcdctl(
                &ctl,
                &url,
                &[
                    "endpoint",
                    "hashkv",
                    &format!("--rev={revision}"),
                    "-w",
                    "json",
                ],
            )
            .await;
            json_number(&out, "hash")
        }
    };
    let source_hash = hash_at(url.clone()).await;

    let restored_dir = dirs.path().join("restored");
    let restored = DiskStore::restore(&file, &restored_dir)
        .await
        .expect("restore the snapshot");
    assert_eq!(restored.revision, revision);
    assert_eq!(restored.keys, snapshot.kvs.len());
    let restored_store = DiskStore::open(&restored_dir)
        .await
        .expect("open the restored store");
    let status = restored_store.status().await.expect("status");
    assert_eq!(status.revision, revision);
    assert_eq!(all_at(&restored_store, 0).await, snapshot.kvs);
    let ttl = restored_store
        .lease_time_to_live(lease)
        .await
        .expect("the lease was restored");
    assert_eq!(ttl.keys, [Bytes::from("/registry/leases/node-1")]);

    // Served again, etcdctl sees the snapshot's revision and its keys.
    let (restored_url, _stop_restored) = serve_on_loopback(Arc::new(restored_store.clone())).await;
    let out = etcdctl(&ctl, &restored_url, &["endpoint", "status", "-w", "json"]).await;
    assert_eq!(json_number(&out, "revision"), revision);
    let out = etcdctl(
        &ctl,
        &restored_url,
        &["get", "/registry/", "--prefix", "--keys-only", "-w", "json"],
    )
    .await;
    assert_eq!(json_number(&out, "count"), snapshot.kvs.len() as i64);
    // etcd's HashKV hashes every change by its position in its transaction; an orchestra
    // snapshot keeps no history, so the restored store starts compacted at the snapshot's
    // revision, where etcd's rule refuses a hash. The source still gives one (above).
    assert_ne!(source_hash, 0);
    let defrag = etcdctl(&ctl, &restored_url, &["defrag"]).await;
    assert!(defrag.contains("Finished defragmenting"), "{defrag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshots_are_refused_and_leave_no_store() {
    let Some(ctl) = etcdctl_or_skip("damaged_snapshots_are_refused_and_leave_no_store") else {
        return;
    };
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let store = orchestra_store::MemStore::new();
    for i in 0..50 {
        store.put(format!("k{i}"), "v").await.expect("put");
    }
    let (url, _stop) = serve_on_loopback(Arc::new(store)).await;
    let file = dirs.path().join("good.db");
    etcdctl(
        &ctl,
        &url,
        &["snapshot", "save", file.to_str().expect("a UTF-8 path")],
    )
    .await;
    let bytes = std::fs::read(&file).expect("read the snapshot");

    let truncated = dirs.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let flipped = dirs.path().join("flipped.db");
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 3] ^= 0x40;
    std::fs::write(&flipped, &damaged).expect("write");

    for bad in [&truncated, &flipped] {
        let err = Snapshot::read_file(bad).expect_err("a damaged snapshot");
        assert!(
            matches!(err, SnapshotError::ChecksumMismatch { .. }),
            "{}: {err}",
            bad.display()
        );
        let dir = dirs.path().join("never");
        let err = DiskStore::restore(bad, &dir)
            .await
            .expect_err("restoring a damaged snapshot");
        let text = err.to_string();
        assert!(text.contains(&bad.display().to_string()), "{text}");
        assert!(text.contains("damaged or truncated"), "{text}");
        assert!(!dir.exists(), "a refused restore created {}", dir.display());
    }
    // The good one still restores.
    let restored = DiskStore::restore(&file, &dirs.path().join("ok"))
        .await
        .expect("restore");
    assert_eq!(restored.keys, 50);
}
