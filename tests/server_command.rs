//! `orchestra server`: the binary serves the API over the embedded store on one address, a
//! pod created through `RemoteClient` reads back over gRPC and over HTTP, the server stops with
//! exit 0 on SIGTERM (even with a watch open), and the pod is there after a restart.

#![cfg(feature = "server")]

mod support;

use std::process::Child;

use support::secure::spawn_secure_server;
use support::{connect_api, free_port, http_get, spawn_orchestra, stop_with_sigterm};

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
    let server = spawn_secure_server(port, &data, &[]);
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
    let server = spawn_secure_server(port, &data, &[]);
    support::connect_secure(&credentials).await;
    assert_eq!(
        std::fs::read_to_string(data.join("tls/ca.crt")).unwrap(),
        ca
    );
    stop_with_sigterm(server, "the restarted secure server");
}

#[tokio::test]
async fn rbac_refuses_a_user_without_a_role_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "bob-token,bob,u-bob,\"developers\"\n").unwrap();
    let server = spawn_secure_server(
        port,
        &data,
        &["--token-auth-file", tokens.to_str().unwrap()],
    );
    let admin = data.join("admin.credentials");
    support::connect_secure(&admin).await;
    let mut bob = orchestra_api::tls::Credentials::load(&admin).unwrap();
    bob.client_certificate = None;
    bob.client_key = None;
    bob.token = Some("bob-token".into());
    let bob_file = dir.path().join("bob.credentials");
    bob.save(&bob_file).unwrap();
    let ctl = |credentials: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
            .arg("ctl")
            .args(args)
            .env_remove("ORCHESTRA_SERVER")
            .env("ORCHESTRA_CREDENTIALS", credentials)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };

    let refused = ctl(&bob_file, &["get", "pods", "-n", "default"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "bob has no role yet");
    assert!(
        stderr.contains("\"bob\"") && stderr.contains("list") && stderr.contains("pods"),
        "the denial names user, verb and resource: {stderr}"
    );

    // The built-in `view` role, bound to bob's group in one namespace, lets him read there.
    let binding = dir.path().join("binding.yaml");
    std::fs::write(
        &binding,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: developers-view\n  namespace: default\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: view\nsubjects:\n- kind: Group\n  name: developers\n",
    )
    .unwrap();
    let applied = ctl(&admin, &["apply", "-f", binding.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let mut allowed = false;
    for _ in 0..100 {
        // The authorizer's cache follows the binding through a watch; poll until it has.
        if ctl(&bob_file, &["get", "pods", "-n", "default"])
            .status
            .success()
        {
            allowed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(allowed, "the binding grants bob view in default");
    let elsewhere = ctl(&bob_file, &["get", "pods", "-n", "kube-system"]);
    assert!(
        !elsewhere.status.success(),
        "only in the binding's namespace"
    );
    let delete = ctl(&bob_file, &["delete", "namespace", "default"]);
    assert!(!delete.status.success(), "view does not delete");

    stop_with_sigterm(server, "the secure server");
    let audit = std::fs::read_to_string(data.join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|line| line.contains("\"bob\"") && line.contains("\"allowed\":false")),
        "the denials are audited: {audit}"
    );
    assert!(
        audit
            .lines()
            .any(|line| line.contains("rolebindings") && line.contains("\"allowed\":true")),
        "the admin's write is audited: {audit}"
    );
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

#[test]
fn a_data_dir_of_a_newer_format_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let format = dir.path().join("FORMAT");
    std::fs::write(&format, "2\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("says format 2, newer than format 1"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["FORMAT"], "nothing written next to it");
}

/// `--insecure` says so loudly: the first thing on stderr names the address and says there is
/// no TLS and no authentication.
#[test]
fn insecure_says_so_loudly_at_start() {
    use std::io::BufRead;
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args([
            "server",
            "--insecure",
            "--store",
            "memory",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // The reader thread ends with the process; the timeout only bounds a server that never
    // prints the warning and never exits.
    let warning = loop {
        match lines.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) if line.contains("WARNING: --insecure") => break line,
            Ok(_) => continue,
            Err(err) => {
                let _ = server.kill();
                panic!("no --insecure warning on stderr: {err}");
            }
        }
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(warning.contains("NO TLS"), "{warning}");
    assert!(warning.contains("NO AUTHENTICATION"), "{warning}");
    assert!(warning.contains("127.0.0.1:"), "{warning}");
}
