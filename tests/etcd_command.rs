//! `orchestra etcd`: the binary serves a durable store over etcd's v3 API, stops cleanly on
//! SIGTERM, and what it acknowledged is there when it starts again.

#![cfg(feature = "etcd")]

mod support;

use std::process::Child;

use std::time::Duration;
use support::{free_port, spawn_orchestra, stop_with_sigterm};

use orchestra_store::{EtcdOptions, EtcdStore, StoreExt};

fn start(port: u16, data_dir: &std::path::Path) -> Child {
    let listen = format!("127.0.0.1:{port}");
    spawn_orchestra([
        std::ffi::OsStr::new("etcd"),
        "--listen".as_ref(),
        listen.as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
}

/// Connect, retrying while the server starts (a failure guard, not a timing assumption).
async fn connect(port: u16) -> EtcdStore {
    let options = EtcdOptions {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(store) = EtcdStore::connect(options.clone()).await
            && store.get("/probe").await.is_ok()
        {
            return store;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orchestra etcd did not come up in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_durable_store_over_the_etcd_api() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(port, dir.path());
    let store = connect(port).await;
    let rev = store.put("/registry/pods/default/web", "v1").await.unwrap();
    assert_eq!(
        store
            .get("/registry/pods/default/web")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        rev
    );
    drop(store);
    stop_with_sigterm(server, "orchestra etcd");

    let port = free_port();
    let server = start(port, dir.path());
    let store = connect(port).await;
    let kv = store
        .get("/registry/pods/default/web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kv.value.as_ref(), kv.mod_revision), (&b"v1"[..], rev));
    drop(store);
    stop_with_sigterm(server, "orchestra etcd");
}
