//! `orchestra agent --runtime fake|process`: with `orchestra server` and `orchestra scheduler`,
//! a pod created without a node is bound to the agent's node and reported Running and Ready
//! (with the process runtime: a real process, with a pod IP from the agent's range); the agent
//! registers its Node, deleting the pod goes through the agent, and the agent stops with exit 0
//! on SIGTERM.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use orchestra_api::resources::{Node, Pod};
use orchestra_api::{Client, testing};
use support::{connect_api, free_port, spawn_orchestra, stop_with_sigterm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_agent_runs_a_scheduled_pod_and_stops_on_sigterm() {
    let pod = run_one_pod(
        &["--runtime", "fake"],
        testing::pod("default", "web", "web"),
    )
    .await;
    assert!(!pod.status.unwrap().pod_ip.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_agent_runs_a_real_process_with_its_own_pod_ip() {
    let state = tempfile::tempdir().unwrap();
    let mut pod = testing::pod("default", "web", "web");
    pod.spec.containers[0].command = vec!["sleep".into(), "1000".into()];
    pod.spec.termination_grace_period_seconds = Some(1);
    let pod = run_one_pod(
        &[
            "--runtime",
            "process",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--pod-ip-range",
            "127.3.7.0/24",
        ],
        pod,
    )
    .await;
    let ip = pod.status.unwrap().pod_ip;
    assert!(
        ip.starts_with("127.3.7."),
        "pod IP {ip} is outside the agent's range"
    );
}

/// Starts a server (without its own scheduler), an agent with `runtime_args` and a scheduler;
/// creates `pod` unbound, waits until it runs on the agent's node, deletes it through the
/// agent, stops everything, and returns the pod as it was when Running and Ready.
async fn run_one_pod(runtime_args: &[&str], pod: Pod) -> Pod {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_url = format!("http://127.0.0.1:{port}");
    let server = spawn_orchestra([
        std::ffi::OsStr::new("server"),
        "--insecure".as_ref(),
        "--listen".as_ref(),
        format!("127.0.0.1:{port}").as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--no-scheduler".as_ref(),
    ]);
    let client = connect_api(&server_url).await;
    let mut agent_args = vec![
        "agent",
        "--server",
        &server_url,
        "--node-name",
        "node-1",
        "--cpu",
        "8",
        "--memory",
        "32Gi",
    ];
    agent_args.extend_from_slice(runtime_args);
    let agent = spawn_orchestra(agent_args);
    let scheduler = spawn_orchestra(["scheduler", "--server", &server_url]);
    client.create(&pod).await.unwrap();

    // A failure guard, not a timing assumption: in practice this takes well under a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let pod = loop {
        let pod: Pod = client.get("default", "web").await.unwrap();
        if pod.is_running_and_ready() {
            break pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not Running and Ready: {pod:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pod.spec.node_name, "node-1");
    let node: Node = client.get("", "node-1").await.unwrap();
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

    stop_with_sigterm(agent, "orchestra agent");
    stop_with_sigterm(scheduler, "orchestra scheduler");
    stop_with_sigterm(server, "orchestra server");
    pod
}
