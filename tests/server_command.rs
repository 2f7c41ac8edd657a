//! `orchestra server`: the binary serves the API over the embedded store on one address, a
//! pod created through `RemoteClient` reads back over gRPC and over HTTP, the server stops with
//! exit 0 on SIGTERM (even with a watch open), and the pod is there after a restart.

#![cfg(feature = "server")]

mod support;

use std::io::{Read, Write};
use std::process::Child;

use support::{connect_api, free_port, spawn_orchestra, stop_with_sigterm};

use futures::StreamExt;
use orchestra_api::registry::WatchOptions;
use orchestra_api::resources::{Namespace, Pod};
use orchestra_api::{Client, ObjectMeta, testing};

fn start(port: u16, data_dir: &std::path::Path) -> Child {
    let listen = format!("127.0.0.1:{port}");
    spawn_orchestra([
        std::ffi::OsStr::new("server"),
        "--insecure".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
}

/// Connects, retrying while the server starts (a failure guard, not a timing assumption).
/// A plain HTTP/1.1 GET (the server speaks HTTP/JSON on the gRPC port).
fn http_get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_api_and_keeps_objects_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(port, dir.path());
    let client = connect_api(&format!("http://127.0.0.1:{}", port)).await;
    // Admission: objects go into namespaces that exist (the system ones do from the start).
    let refused = client
        .create(&testing::pod("shop", "web", "web"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), 403, "{refused}");
    let _: Namespace = client.get("", "kube-system").await.unwrap();
    client
        .create(&Namespace {
            metadata: ObjectMeta::named("shop"),
            ..Namespace::default()
        })
        .await
        .unwrap();
    let created = client
        .create(&testing::pod("shop", "web", "web"))
        .await
        .unwrap();
    let read: Pod = client.get("shop", "web").await.unwrap();
    assert_eq!(read, created);
    let over_http = http_get(port, "/api/v1/namespaces/shop/pods/web");
    assert!(over_http.starts_with("HTTP/1.1 200"), "{over_http}");
    assert!(
        over_http.contains(&format!(
            "\"resourceVersion\":\"{}\"",
            created.metadata.resource_version
        )),
        "{over_http}"
    );
    assert!(http_get(port, "/healthz").ends_with("ok"));
    // An open watch must not keep the server from stopping.
    let mut watch = client
        .watch::<Pod>(Some("shop"), &WatchOptions::default())
        .await
        .unwrap();
    assert!(matches!(watch.next().await, Some(Ok(_))));
    stop_with_sigterm(server, "orchestra server");
    drop((watch, client));

    let port = free_port();
    let server = start(port, dir.path());
    let client = connect_api(&format!("http://127.0.0.1:{}", port)).await;
    let read: Pod = client.get("shop", "web").await.unwrap();
    assert_eq!(read, created, "the pod survived the restart");
    drop(client);
    stop_with_sigterm(server, "orchestra server");
}

/// Secure by default: TLS, a CA and admin credentials in the data directory; `ctl` with them
/// works, without them it is refused; the CA survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_with_admin_credentials_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let server = spawn_orchestra([
        "server",
        "--store",
        "memory",
        "--no-scheduler",
        "--no-controllers",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let credentials = data.join("admin.credentials");
    support::connect_secure(&credentials).await;
    let ca = std::fs::read_to_string(data.join("tls/ca.crt")).unwrap();
    let run = |envs: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
            .args(["ctl", "get", "namespaces"])
            .env_remove("ORCHESTRA_SERVER")
            .env_remove("ORCHESTRA_CREDENTIALS")
            .env("HOME", dir.path())
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };
    let ok = run(&[("ORCHESTRA_CREDENTIALS", credentials.to_str().unwrap())]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("kube-system"));
    let refused = run(&[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no credentials"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let plain = run(&[("ORCHESTRA_SERVER", &format!("http://127.0.0.1:{port}"))]);
    assert!(
        !plain.status.success(),
        "a plaintext client must not get in"
    );
    stop_with_sigterm(server, "the secure server");
    // A restart reuses the CA.
    let server = spawn_orchestra([
        "server",
        "--store",
        "memory",
        "--no-scheduler",
        "--no-controllers",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    support::connect_secure(&credentials).await;
    assert_eq!(
        std::fs::read_to_string(data.join("tls/ca.crt")).unwrap(),
        ca
    );
    stop_with_sigterm(server, "the restarted secure server");
}

#[test]
fn insecure_refuses_an_address_beyond_loopback() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args([
            "server",
            "--insecure",
            "--store",
            "memory",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only on a loopback address"), "{stderr}");
}
