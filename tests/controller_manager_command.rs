//! The control plane from the binary: `orchestra server` runs the controllers and the
//! scheduler in-process (a Deployment applied with `orchestra ctl apply` gets its ReplicaSet
//! and Pods, bound once a Node exists), and `orchestra controller-manager` does the same
//! against a bare API server, holding the leader Lease, serving metrics, and releasing the
//! Lease when it stops on SIGTERM.

#![cfg(feature = "server")]

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Lease, Pod, ReplicaSet};
use orchestra_api::{Client, RemoteClient};
use support::{free_port, http_get, spawn_orchestra};

/// A child process stopped with SIGTERM when dropped.
struct Process(Option<Child>);

impl Process {
    /// SIGTERM, then its exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.0.is_some() {
            let _ = self.terminate();
        }
    }
}

async fn server(extra: &[&str]) -> (Process, String, RemoteClient) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "server",
        "--insecure",
        "--store",
        "memory",
        "--listen",
        &listen,
    ];
    args.extend_from_slice(extra);
    let process = Process(Some(spawn_orchestra(args)));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        if let Ok(client) = RemoteClient::connect(&url).await {
            break client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orchestra server did not come up in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (process, url, client)
}

fn apply(url: &str, manifest: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, manifest).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(["ctl", "apply", "-f"])
        .arg(&path)
        .env("ORCHESTRA_SERVER", url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ctl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits (real time: separate processes) until `cond` holds, failing after 30 s.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pods(client: &RemoteClient) -> Vec<Pod> {
    client
        .list::<Pod>(Some("shop"), &ListOptions::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

const DEPLOYMENT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "nginx:1.27"
        resources: {requests: {cpu: 100m, memory: 64Mi}}
"#;

const NODE: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_the_controllers_and_the_scheduler() {
    let (mut server, url, client) = server(&[]).await;
    apply(&url, DEPLOYMENT);
    eventually("a replica set owned by the deployment", || async {
        client
            .list::<ReplicaSet>(Some("shop"), &ListOptions::default())
            .await
            .is_ok_and(|list| {
                list.items.len() == 1
                    && list.items[0]
                        .metadata
                        .controller_ref()
                        .is_some_and(|owner| owner.kind == "Deployment" && owner.name == "web")
            })
    })
    .await;
    eventually("two pods", || async { pods(&client).await.len() == 2 }).await;
    assert!(
        pods(&client)
            .await
            .iter()
            .all(|p| p.spec.node_name.is_empty()),
        "no node yet: nothing is bound"
    );

    apply(&url, NODE);
    eventually("both pods bound to node-1", || async {
        let pods = pods(&client).await;
        pods.len() == 2 && pods.iter().all(|p| p.spec.node_name == "node-1")
    })
    .await;
    assert!(server.terminate().success(), "exit 0 on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_manager_leads_reconciles_serves_metrics_and_releases_its_lease() {
    let (_server, url, client) = server(&["--no-controllers", "--no-scheduler"]).await;
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut manager = Process(Some(spawn_orchestra([
        "controller-manager",
        "--server",
        &url,
        "--identity",
        "manager-1",
        "--metrics-listen",
        &metrics_listen,
    ])));
    eventually("manager-1 holds the lease", || async {
        client
            .get::<Lease>("kube-system", "controller-manager")
            .await
            .is_ok_and(|l| l.spec.holder_identity.as_deref() == Some("manager-1"))
    })
    .await;
    apply(&url, DEPLOYMENT);
    eventually("two pods from the manager's controllers", || async {
        pods(&client).await.len() == 2
    })
    .await;
    assert!(
        pods(&client)
            .await
            .iter()
            .all(|p| p.spec.node_name.is_empty()),
        "no scheduler runs"
    );
    let metrics = http_get(metrics_port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("controller=\"replicaset\""), "{metrics}");
    assert!(
        metrics.contains("controller=\"nodelifecycle\""),
        "{metrics}"
    );

    assert!(manager.terminate().success(), "exit 0 on SIGTERM");
    let lease: Lease = client
        .get("kube-system", "controller-manager")
        .await
        .unwrap();
    assert_eq!(lease.spec.holder_identity, None, "released on shutdown");
}
