//! `orchestra etcd`: the binary serves a durable store over etcd's v3 API, stops cleanly on
//! SIGTERM, and what it acknowledged is there when it starts again; concurrent clients'
//! histories across a SIGKILL and restart of the process are linearizable.

#![cfg(feature = "etcd")]

mod support;

use std::process::Child;

use std::time::Duration;
use support::{free_port, spawn_orchestra, stop_with_sigterm};

use orchestra_store::linearizability::{CheckOptions, Recorder, check, workload};
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
    connect_with(port, EtcdOptions::default()).await
}

/// [`connect`] with `options` (their endpoints replaced by the server's).
async fn connect_with(port: u16, options: EtcdOptions) -> EtcdStore {
    let options = EtcdOptions {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        ..options
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

/// SIGKILL the process while clients write, start it again on the same data directory and
/// port, go on: the whole history, the calls that lost their answer included, must be
/// linearizable, so no acknowledged write was lost and none came back from the dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_across_a_kill_and_restart_are_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(port, dir.path());
    // Calls to the killed process must fail rather than wait for it: short timeouts.
    let options = EtcdOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let store = Recorder::new(connect_with(port, options.clone()).await);
    let load = |seed| workload::Workload {
        clients: 4,
        ops_per_client: 60,
        seed,
        ..Default::default()
    };
    let running = {
        let store = store.clone();
        tokio::spawn(async move { workload::run(&store, &load(1)).await })
    };
    // Kill once the clients are well into their writes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.history().operations.len() < 60 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clients made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().expect("SIGKILL orchestra etcd");
    server.wait().expect("reap orchestra etcd");
    let server = start(port, dir.path());
    tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the clients finish within 2 minutes of the restart")
        .expect("the clients finish");
    // Go on after the restart with a fresh client.
    let after = store.with_store(connect_with(port, options).await);
    workload::run(&after, &load(2)).await;
    let history = store.history();
    let report = check(&history, &CheckOptions::default()).expect("a checkable history");
    assert!(report.is_linearizable(), "{report:?}");
    assert!(report.operations > 200, "{report:?}");
    eprintln!("across a kill: {report:?}");
    stop_with_sigterm(server, "orchestra etcd");
}
