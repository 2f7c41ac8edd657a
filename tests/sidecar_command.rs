//! The `orchestra sidecar` binary against a started `Cluster`: authenticated as a service
//! account (the credentials file's token, `--token-file`, or in a pod's way the mounted
//! token and CA bundle with no credentials file), it obtains its certificate and
//! the service table and reports ready on its admin listener; it exits 0 after
//! `POST /shutdown`, and on SIGTERM.

#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use orchestra::cluster::Cluster;
use orchestra_api::tls::Credentials;
use support::sidecar::{grant_sidecars_the_service_table, http, mesh_cluster, wait_for};
use support::{free_port, spawn_orchestra, stop_with_sigterm};

const TOKENS: &str = "web-token-0001,system:serviceaccount:shop:web,1,\"system:serviceaccounts,system:serviceaccounts:shop\"\n";

async fn start(dir: &Path) -> Cluster {
    let cluster = mesh_cluster(dir, TOKENS).await;
    grant_sidecars_the_service_table(&cluster).await;
    cluster
}

/// `orchestra sidecar` as shop/web with `auth` (credentials flags), its admin port.
fn sidecar(auth: &[&str]) -> (Child, u16) {
    let admin = free_port();
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let mut args = vec![
        "sidecar".to_owned(),
        "--namespace".to_owned(),
        "shop".to_owned(),
        "--service-account".to_owned(),
        "web".to_owned(),
        "--trust-domain".to_owned(),
        "example.org".to_owned(),
        "--inbound".to_owned(),
        listen(free_port()),
        "--outbound".to_owned(),
        listen(free_port()),
        "--admin".to_owned(),
        listen(admin),
        "--app".to_owned(),
        listen(free_port()),
        "--allow".to_owned(),
        "ns:shop".to_owned(),
        "--drain-timeout".to_owned(),
        "5s".to_owned(),
    ];
    args.extend(auth.iter().map(|arg| (*arg).to_owned()));
    (spawn_orchestra(args), admin)
}

/// Waits until the sidecar's `/ready` answers 200 (it answers 503, or nothing, before).
async fn ready(admin: u16) {
    let addr = ([127, 0, 0, 1], admin).into();
    wait_for("orchestra sidecar to become ready", async {
        loop {
            if http(addr, "GET", "/ready", "admin").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestra_sidecar_becomes_ready_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(dir.path()).await;

    // The service account's token in a credentials file; POST /shutdown stops it.
    let credentials = dir.path().join("web.credentials");
    Credentials {
        client_certificate: None,
        client_key: None,
        token: Some("web-token-0001".to_owned()),
        ..cluster.credentials().clone()
    }
    .save(&credentials)
    .unwrap();
    let (mut child, admin) = sidecar(&["--credentials", credentials.to_str().unwrap()]);
    ready(admin).await;
    let (status, body) = http(([127, 0, 0, 1], admin).into(), "POST", "/shutdown", "admin").await;
    assert_eq!((status, body.as_str()), (200, "shutting down\n"));
    let exit = wait_for(
        "orchestra sidecar to exit after POST /shutdown",
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await
    .unwrap();
    assert!(exit.success(), "exit after POST /shutdown: {exit}");

    // A mounted token file in place of the admin credentials' client certificate; SIGTERM
    // stops it.
    let token = dir.path().join("token");
    std::fs::write(&token, "web-token-0001\n").unwrap();
    let (child, admin) = sidecar(&[
        "--credentials",
        cluster.credentials_path().to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    ready(admin).await;
    tokio::task::spawn_blocking(move || stop_with_sigterm(child, "orchestra sidecar"))
        .await
        .unwrap();

    // In a pod: only the mounted service account volume, the token and the CA bundle
    // beside it, and the server's address; no credentials file at all.
    let volume = dir.path().join("serviceaccount");
    std::fs::create_dir(&volume).unwrap();
    std::fs::write(volume.join("token"), "web-token-0001\n").unwrap();
    let ca = &cluster.credentials().certificate_authority;
    std::fs::write(volume.join("ca.crt"), ca).unwrap();
    let (child, admin) = sidecar(&[
        "--server",
        &cluster.credentials().server,
        "--token-file",
        volume.join("token").to_str().unwrap(),
    ]);
    ready(admin).await;
    tokio::task::spawn_blocking(move || stop_with_sigterm(child, "orchestra sidecar"))
        .await
        .unwrap();
    cluster.shutdown().await;
}
