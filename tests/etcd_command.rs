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

/// Run `orchestra ARGS...` to completion.
fn orchestra(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(args)
        .output()
        .expect("run orchestra")
}

/// The documented backup procedure, end to end with the binary: `etcdctl snapshot save`
/// against a running `orchestra etcd`, more writes, `orchestra etcd snapshot status` and
/// `restore` into a new data directory, `orchestra etcd` on it: exactly the snapshot's keys
/// at the snapshot's revision. Needs etcdctl (skipped without it, unless
/// `ORCHESTRA_SYSTEM_TESTS=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_with_etcdctl_and_restore_with_the_binary() {
    let ctl = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcdctl"))
            .find(|candidate| candidate.is_file())
    });
    let Some(ctl) = ctl else {
        assert!(
            std::env::var("ORCHESTRA_SYSTEM_TESTS").as_deref() != Ok("1"),
            "etcdctl is not on PATH and ORCHESTRA_SYSTEM_TESTS=1 requires it (apt-get install etcd-client)"
        );
        eprintln!("skipped: etcdctl is not on PATH (apt-get install etcd-client)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(port, &dir.path().join("live"));
    let store = connect(port).await;
    for i in 0..20 {
        store
            .put(format!("/registry/k{i:02}"), "before")
            .await
            .unwrap();
    }
    let file = dir.path().join("backup.db");
    let saved = tokio::task::spawn_blocking({
        let (ctl, file) = (ctl.clone(), file.clone());
        move || {
            std::process::Command::new(ctl)
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=127.0.0.1:{port}"))
                .args(["snapshot".as_ref(), "save".as_ref(), file.as_os_str()])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(saved.status.success(), "{saved:?}");
    let revision = store.put("/registry/after", "x").await.unwrap() - 1;
    store.delete("/registry/k00").await.unwrap();
    drop(store);
    stop_with_sigterm(server, "orchestra etcd");

    let status = orchestra(&[
        "etcd".as_ref(),
        "snapshot".as_ref(),
        "status".as_ref(),
        file.as_os_str(),
    ]);
    assert!(status.status.success(), "{status:?}");
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.starts_with(&format!("{{\"revision\":{revision},\"keys\":20,")),
        "{status}"
    );

    let restored = dir.path().join("restored");
    let restore = [
        "etcd".as_ref(),
        "snapshot".as_ref(),
        "restore".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
    ];
    let out = orchestra(&restore);
    assert!(out.status.success(), "{out:?}");
    // A second restore into the same directory is refused, naming the reason.
    let again = orchestra(&restore);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a store"),
        "{again:?}"
    );

    let port = free_port();
    let server = start(port, &restored);
    let store = connect(port).await;
    let all = store.list_prefix("/registry/").await.unwrap();
    assert_eq!(all.kvs.len(), 20);
    assert!(all.kvs.iter().all(|kv| kv.value.as_ref() == b"before"));
    assert_eq!(all.header_revision, revision);
    drop(store);
    stop_with_sigterm(server, "orchestra etcd");
}
