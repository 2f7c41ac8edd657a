//! Recorded concurrent histories of `EtcdStore` are linearizable: against a real etcd
//! (Debian's `etcd-server`; skipped with a message when it is missing, unless
//! `ORCHESTRA_SYSTEM_TESTS=1`), including across a SIGKILL and restart of etcd in the middle
//! of the clients' writes; and against our own etcd server (`etcd::server`, in-process) over a
//! MemStore and a DiskStore.

#![cfg(feature = "etcd")]

mod etcd_harness;

use std::sync::Arc;
use std::time::Duration;

use orchestra_store::etcd::server::{ServerOptions, serve};
use orchestra_store::etcd::{EtcdOptions, EtcdStore};
use orchestra_store::linearizability::{CheckOptions, History, Recorder, check, workload};
use orchestra_store::{DiskStore, MemStore, Store};
use tokio::sync::oneshot;

use etcd_harness::{Member, etcd_or_skip};

const FAST: &[&str] = &["--heartbeat-interval", "25", "--election-timeout", "250"];

fn workload(seed: u64) -> workload::Workload {
    workload::Workload {
        clients: 5,
        ops_per_client: 60,
        seed,
        ..Default::default()
    }
}

fn assert_linearizable(history: &History) -> orchestra_store::linearizability::Report {
    let report = check(history, &CheckOptions::default()).expect("checkable history");
    assert!(report.is_linearizable(), "{report:?}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_histories_are_linearizable() {
    let Some(binary) = etcd_or_skip("etcd_histories_are_linearizable") else {
        return;
    };
    let member = Member::single_with(&binary, FAST).await;
    let store = Recorder::new(member.store().await);
    workload::run(&store, &workload(1)).await;
    let report = assert_linearizable(&store.history());
    assert_eq!(report.open, 0, "no call failed: {report:?}");
}

/// SIGKILL etcd while the clients write, restart it on the same data directory, go on: the
/// whole history, the calls that lost their answer included, must be linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_histories_across_a_kill_and_restart_are_linearizable() {
    let Some(binary) = etcd_or_skip("etcd_histories_across_a_kill_and_restart_are_linearizable")
    else {
        return;
    };
    let mut member = Member::single_with(&binary, FAST).await;
    let store = Recorder::new(member.store().await);
    let running = {
        let store = store.clone();
        tokio::spawn(async move { workload::run(&store, &workload(2)).await })
    };
    // Kill once the clients are well into their writes.
    while store.history().operations.len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    member.kill();
    member.restart().await;
    running.await.expect("the clients finish");
    // Go on after the restart with a fresh client.
    let after = store.with_store(member.store().await);
    workload::run(&after, &workload(3)).await;
    let history = store.history();
    let report = assert_linearizable(&history);
    eprintln!("across a kill: {report:?}");
    assert!(report.operations > 200, "{report:?}");
}

/// Our etcd server over `store`, on a free loopback port, and a recorded client of it.
async fn served(store: Arc<dyn Store>) -> (Recorder<EtcdStore>, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(err) = serve(store, listener, ServerOptions::default(), shutdown).await {
            eprintln!("etcd server failed: {err}");
        }
    });
    let client = EtcdStore::connect(EtcdOptions::new([url]))
        .await
        .expect("connect to the served store");
    (Recorder::new(client), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestra_etcd_over_mem_store_histories_are_linearizable() {
    let (store, _shutdown) = served(Arc::new(MemStore::new())).await;
    workload::run(&store, &workload(4)).await;
    let report = assert_linearizable(&store.history());
    assert_eq!(report.open, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestra_etcd_over_disk_store_histories_are_linearizable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let disk = DiskStore::open(dir.path()).await.expect("open a DiskStore");
    let (store, _shutdown) = served(Arc::new(disk)).await;
    workload::run(&store, &workload(5)).await;
    let report = assert_linearizable(&store.history());
    assert_eq!(report.open, 0, "{report:?}");
}
