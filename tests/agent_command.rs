//! `orchestra agent --runtime fake`: with `orchestra server` and `orchestra scheduler`, a pod
//! created without a node is bound to the agent's node and reported Running and Ready; the
//! agent registers its Node, deleting the pod goes through the agent, and the agent stops with exit 0 on SIGTERM; `--runtime process` is refused
//! with a clear message until that runtime is built in.

#![cfg(feature = "server")]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orchestra_api::resources::{ConditionStatus, Node, Pod, PodPhase};
use orchestra_api::{Client, RemoteClient, testing};
use support::{free_port, spawn_orchestra};

async fn connect(server: &str) -> RemoteClient {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(client) = RemoteClient::connect(server).await {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orchestra server did not come up in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stop(mut child: Child, what: &str) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "{what} should exit 0 on SIGTERM, got {exit}"
    );
}

fn ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase == Some(PodPhase::Running)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_a_scheduled_pod_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_url = format!("http://127.0.0.1:{port}");
    let server = spawn_orchestra([
        std::ffi::OsStr::new("server"),
        "--listen".as_ref(),
        format!("127.0.0.1:{port}").as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
    ]);
    let client = connect(&server_url).await;
    let agent = spawn_orchestra([
        "agent",
        "--server",
        &server_url,
        "--node-name",
        "fake-1",
        "--runtime",
        "fake",
        "--cpu",
        "8",
        "--memory",
        "32Gi",
    ]);
    let scheduler = spawn_orchestra(["scheduler", "--server", &server_url]);
    client
        .create(&testing::pod("default", "web", "web"))
        .await
        .unwrap();

    // A failure guard, not a timing assumption: in practice this takes well under a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let pod = loop {
        let pod: Pod = client.get("default", "web").await.unwrap();
        if ready(&pod) {
            break pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not Running and Ready: {pod:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pod.spec.node_name, "fake-1");
    let node: Node = client.get("", "fake-1").await.unwrap();
    let capacity = node.status.unwrap().capacity;
    assert_eq!(capacity["cpu"].value(), 8);
    assert_eq!(capacity["memory"].value(), 32 << 30);

    // Deleting goes through the agent: the pod is marked, its container stopped, then removed.
    let deleted = client
        .delete::<Pod>(
            "default",
            "web",
            &orchestra_api::registry::DeleteOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        !deleted.is_deleted(),
        "the agent's finalizer should hold the pod"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client.get::<Pod>("default", "web").await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop(agent, "orchestra agent");
    stop(scheduler, "orchestra scheduler");
    stop(server, "orchestra server");
}

#[test]
fn the_process_runtime_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args([
            "agent",
            "--server",
            "http://127.0.0.1:1",
            "--node-name",
            "n1",
            "--runtime",
            "process",
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("process runtime is not built in this version"),
        "{stderr}"
    );
}
