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
