//! `Cluster` (what `orchestra cluster` runs) authorizes like `orchestra server`: its API
//! refuses a user without a role, and its in-process scheduler, controllers and node agents
//! act as their own users (`system:kube-scheduler`, `system:kube-controller-manager`,
//! `system:node:NAME`) through the Node authorizer and RBAC with the built-in roles: a
//! Deployment runs to Ready with none of them refused, and the audit log names each.

#![cfg(feature = "server")]

use std::time::Duration;

use orchestra::api::registry::ListOptions;
use orchestra::api::resources::{Deployment, Pod};
use orchestra::api::tls::{ClusterPki, Credentials};
use orchestra::api::{Client, RemoteClient};
use orchestra::cluster::{Cluster, NodeRuntime};
use serde_json::Value;

const DEPLOYMENT: &str = r#"{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "default"},
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"app": "web"}},
    "template": {
      "metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "main", "image": "web:1"}]}
    }
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_components_act_as_themselves_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::builder()
        .nodes(2)
        .runtime(NodeRuntime::Fake)
        .proxy(false)
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();

    // A certificate from the cluster CA for a user no role names: authenticated, not allowed.
    let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
    let stranger = pki.issue_client("mallory", &[]).unwrap();
    let stranger = RemoteClient::connect_with(&Credentials {
        client_certificate: Some(stranger.cert_pem.clone()),
        client_key: Some(stranger.key_pem.clone()),
        ..cluster.credentials().clone()
    })
    .await
    .unwrap();
    let refused = stranger
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), 403, "{refused}");
    assert!(refused.to_string().contains("\"mallory\""), "{refused}");

    let admin = RemoteClient::connect_with(cluster.credentials())
        .await
        .unwrap();
    let deployment: Deployment = serde_json::from_str(DEPLOYMENT).unwrap();
    admin.create(&deployment).await.unwrap();
    // A failure guard, not a timing assumption.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let pods = admin
            .list::<Pod>(Some("default"), &ListOptions::default())
            .await
            .unwrap();
        let ready = pods
            .items
            .iter()
            .filter(|p| p.is_running_and_ready())
            .count();
        if ready == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Deployment's pods never all ran: {ready} of 3 Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.shutdown().await;

    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let entries: Vec<Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let allowed = |user: &str, verb: &str, resource: &str| {
        entries.iter().any(|e| {
            e["user"] == user
                && e["verb"] == verb
                && e["resource"] == resource
                && e["allowed"] == true
        })
    };
    assert!(allowed(
        "system:kube-controller-manager",
        "create",
        "replicasets"
    ));
    assert!(allowed("system:kube-controller-manager", "create", "pods"));
    assert!(
        allowed("system:kube-scheduler", "create", "pods"),
        "bindings"
    );
    assert!(
        allowed("system:node:node-1", "create", "nodes")
            && allowed("system:node:node-2", "create", "nodes")
    );
    // A node may be refused a write to a pod bound to it a moment before the Node
    // authorizer's graph saw the binding (documented in `auth/node.rs`; the agent retries):
    // that transient refusal is the only one allowed.
    let denied: Vec<&Value> = entries
        .iter()
        .filter(|e| e["allowed"] == false && e["user"] != "mallory")
        .filter(|e| {
            !(e["user"].as_str().unwrap().starts_with("system:node:") && e["resource"] == "pods")
        })
        .collect();
    assert!(
        denied.is_empty(),
        "the built-in roles let every component do its job: {denied:#?}"
    );
}
