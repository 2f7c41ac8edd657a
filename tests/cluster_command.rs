//! `orchestra cluster --nodes 2 --runtime fake`: the whole cluster in one process registers
//! its nodes, runs a Deployment's pods on them (scheduler, controllers and agents at work),
//! and stops with exit 0 on SIGTERM.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{ConditionStatus, Deployment, Node, Pod, PodPhase};
use orchestra_api::{Client, RemoteClient};
use support::{free_port, spawn_orchestra, stop_with_sigterm};

/// Polls `done` every 50 ms; a failure guard of 60 s, not a timing assumption.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn running_pods(client: &RemoteClient) -> Vec<Pod> {
    client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_cluster_runs_a_deployment_on_its_nodes() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cluster = spawn_orchestra([
        "cluster",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--nodes",
        "2",
        "--runtime",
        "fake",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    // The cluster's API is TLS with authentication: the admin's credentials are in its data
    // directory.
    let client = support::connect_secure(&dir.path().join("admin.credentials")).await;
    eventually("both nodes are Ready", || async {
        let nodes = client
            .list::<Node>(None, &ListOptions::default())
            .await
            .unwrap();
        nodes.items.len() == 2
            && nodes.items.iter().all(|n| {
                n.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
                })
            })
    })
    .await;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    client.create(&deployment).await.unwrap();
    eventually("4 pods run", || async {
        running_pods(&client).await.len() == 4
    })
    .await;
    let nodes: std::collections::BTreeSet<String> = running_pods(&client)
        .await
        .into_iter()
        .map(|p| p.spec.node_name)
        .collect();
    assert_eq!(
        nodes,
        ["node-1".to_owned(), "node-2".to_owned()].into(),
        "the scheduler spreads the pods over both nodes"
    );
    stop_with_sigterm(cluster, "orchestra cluster");
}

#[test]
fn a_data_dir_of_orchestra_server_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let format = dir.path().join("FORMAT");
    std::fs::write(&format, "server 1\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(["cluster", "--runtime", "fake", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("holds orchestra server's files, not orchestra cluster's"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["FORMAT"], "nothing written next to it");
}
