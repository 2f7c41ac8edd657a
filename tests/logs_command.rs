//! `orchestra ctl logs`: a secure `orchestra server` and an `orchestra agent --runtime process`
//! that joined with the node token (so its endpoint serves TLS with its node certificate and
//! answers only the API server); a pod's output printed by `ctl logs`, `--tail`, `-f` seeing a
//! line written after it started, and the errors for a missing pod and a missing container
//! name. Every wait is on observable output, with a generous guard.

#![cfg(feature = "server")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use orchestra_api::resources::{Container, Pod, PodPhase, PodSpec};
use orchestra_api::{Client, ObjectMeta};
use support::{connect_secure, free_port, spawn_orchestra, stop_with_sigterm};

const GUARD: Duration = Duration::from_secs(90);

fn ctl(credentials: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .arg("ctl")
        .args(args)
        .env("ORCHESTRA_CREDENTIALS", credentials)
        .output()
        .unwrap()
}

fn talker(marker: &Path) -> Pod {
    let script = format!(
        "echo one; echo two; while [ ! -e {} ]; do sleep 0.05; done; echo three; sleep 1000",
        marker.display()
    );
    let container = |name: &str, script: &str| Container {
        name: name.into(),
        image: "busybox".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Container::default()
    };
    Pod {
        metadata: ObjectMeta::namespaced("default", "talker"),
        spec: PodSpec {
            termination_grace_period_seconds: Some(1),
            containers: vec![container("app", &script)],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_logs_prints_tails_and_follows_over_the_secure_agent_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = spawn_orchestra([
        "server".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    let credentials = data.join("admin.credentials");
    let client = connect_secure(&credentials).await;
    let token = std::fs::read_to_string(data.join("node-token")).unwrap();
    let state = dir.path().join("agent");
    let url = format!("https://127.0.0.1:{port}");
    let agent = spawn_orchestra([
        "agent".as_ref(),
        "--server".as_ref(),
        url.as_ref(),
        "--token".as_ref(),
        token.trim().as_ref(),
        "--node-name".as_ref(),
        "node-1".as_ref(),
        "--runtime".as_ref(),
        "process".as_ref(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--pod-ip-range".as_ref(),
        "127.3.151.0/24".as_ref(),
        "--agent-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);

    let marker = dir.path().join("go");
    client.create(&talker(&marker)).await.unwrap();
    tokio::time::timeout(GUARD, async {
        loop {
            let pod: Pod = client.get("default", "talker").await.unwrap();
            if pod.status.and_then(|s| s.phase) == Some(PodPhase::Running) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the pod did not run");

    // The whole log, once the container has written it.
    let all = tokio::time::timeout(GUARD, async {
        loop {
            let output = ctl(&credentials, &["logs", "talker"]);
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() && text.contains("two") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("ctl logs never printed the output");
    assert_eq!(all, "one\ntwo\n");
    let tail = ctl(
        &credentials,
        &["logs", "talker", "--tail", "1", "-c", "app"],
    );
    assert_eq!(String::from_utf8_lossy(&tail.stdout), "two\n");

    let missing = ctl(&credentials, &["logs", "nope"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    let wrong = ctl(&credentials, &["logs", "talker", "-c", "db"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("container db is not valid for pod talker"),
        "{stderr}"
    );

    // -f: the stream stays open and shows a line written after it started.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(["ctl", "logs", "-f", "talker"])
        .env("ORCHESTRA_CREDENTIALS", &credentials)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    wait_for_line(&mut lines_rx, "two", &mut seen).await;
    std::fs::write(&marker, b"").unwrap();
    wait_for_line(&mut lines_rx, "three", &mut seen).await;
    assert_eq!(seen, ["one", "two", "three"]);
    follow.kill().unwrap();
    follow.wait().unwrap();

    client
        .delete::<Pod>("default", "talker", &Default::default())
        .await
        .unwrap();
    tokio::time::timeout(GUARD, async {
        while client.get::<Pod>("default", "talker").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the pod was not deleted");
    stop_with_sigterm(agent, "orchestra agent");
    stop_with_sigterm(server, "orchestra server");
}

/// Collects lines into `seen` until `needle` is one of them.
async fn wait_for_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    needle: &str,
    seen: &mut Vec<String>,
) {
    let found = tokio::time::timeout(GUARD, async {
        while !seen.iter().any(|l| l == needle) {
            match lines.recv().await {
                Some(line) => seen.push(line),
                None => return false,
            }
        }
        true
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "ctl logs -f never printed {needle:?}; got {seen:?}"
    );
}
