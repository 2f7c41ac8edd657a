//! A Secret's value never leaves the API except to an authorized reader, checked end to end on
//! the real binary: `orchestra server` with its defaults (TLS, authentication, the durable
//! store, the scheduler and controllers) and debug logging. After a Secret is created, read,
//! refused (duplicate, stale update, invalid key) and the server stopped, its value is nowhere
//! in the data directory, the server's output, the errors clients got, the events, or
//! `/metrics`, in plain text or base64.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{ByteString, Event, Secret};
use orchestra_api::tls::Credentials;
use orchestra_api::{Client, ObjectMeta};
use support::{connect_secure, free_port, stop_with_sigterm};

/// The value that must not leak: distinctive enough that a hit is this test's secret.
const CANARY: &str = "canary-7f2a91c4-secret-value-never-logged";

fn secret(name: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta::namespaced("default", name),
        data: [(key.to_owned(), ByteString(CANARY.as_bytes().to_vec()))].into(),
        ..Secret::default()
    }
}

/// The canary as the API's JSON writes secret data (base64), without the quotes.
fn canary_base64() -> String {
    let json = serde_json::to_string(&ByteString(CANARY.as_bytes().to_vec())).unwrap();
    json.trim_matches('"').to_owned()
}

/// `GET path` over TLS with the admin's client certificate; the whole response as text.
fn https_get(credentials: &Credentials, port: u16, path: &str) -> String {
    let identity = credentials
        .client_certificate
        .as_deref()
        .zip(credentials.client_key.as_deref());
    let config =
        orchestra_api::tls::client_config(&credentials.certificate_authority, identity).unwrap();
    let server_name = "127.0.0.1".try_into().unwrap();
    let connection = rustls::ClientConnection::new(config, server_name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(token) = &credentials.token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    // A peer that closes without close_notify ends the read with an error after the data.
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|window| window == needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_value_is_in_no_file_log_error_event_or_metric() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(["server", "--store", "embedded", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let credentials_path = data.join("admin.credentials");
    let client = connect_secure(&credentials_path).await;
    let credentials = Credentials::load(&credentials_path).unwrap();

    let created = client.create(&secret("db", "password")).await.unwrap();
    let read: Secret = client.get("default", "db").await.unwrap();
    assert_eq!(
        read.data["password"].0,
        CANARY.as_bytes(),
        "an authorized reader gets the value"
    );

    // Refusals of requests that carry the value: their errors must not repeat it.
    let mut errors = Vec::new();
    errors.push(
        client
            .create(&secret("db", "password"))
            .await
            .unwrap_err()
            .to_string(),
    );
    let mut stale = created.clone();
    stale.metadata.resource_version = "1".to_owned();
    stale
        .data
        .insert("other".to_owned(), ByteString(CANARY.as_bytes().to_vec()));
    errors.push(client.update(&stale).await.unwrap_err().to_string());
    errors.push(
        client
            .create(&secret("bad", "not a valid key!"))
            .await
            .unwrap_err()
            .to_string(),
    );

    let events = client
        .list::<Event>(None, &ListOptions::default())
        .await
        .unwrap();
    let events = serde_json::to_string(&events.items).unwrap();
    let metrics = https_get(&credentials, port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    drop(client);
    stop_with_sigterm(server, "orchestra server");

    let server_output = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        server_output.contains("DEBUG") || server_output.contains("INFO"),
        "the server logged something: {server_output}"
    );
    for needle in [CANARY.to_owned(), canary_base64()] {
        for error in &errors {
            assert!(
                !error.contains(&needle),
                "an error holds the secret: {error}"
            );
        }
        assert!(!events.contains(&needle), "an event holds the secret");
        assert!(!metrics.contains(&needle), "/metrics holds the secret");
        assert!(
            !server_output.contains(&needle),
            "the server's output holds the secret"
        );
        let hits = files_containing(&data, needle.as_bytes());
        assert!(hits.is_empty(), "the data dir holds the secret in {hits:?}");
    }
}
