//! What the tests of a secure cluster share: polling observable state under one failure
//! guard, a secure `orchestra server` with only the API (the components started apart, or not
//! at all), the Deployment they run and its Ready pods, and the audit log read back.
//!
//! Each test file uses part of this, so unused items are expected here.
#![allow(dead_code)]

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Deployment, Pod};
use orchestra_api::{Client, RemoteClient};
use serde_json::Value;

/// The failure guard of every wait (none of them relies on it elapsing).
pub const GUARD: Duration = Duration::from_secs(90);

/// Polls `check` every 100 ms until it returns `Some`, failing with `what` after [`GUARD`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `orchestra server` as it starts by default (TLS, authentication, authorization, the audit
/// log, credentials written into `data`) on `127.0.0.1:PORT`, over the memory store, with no
/// scheduler and no controllers, plus `extra` arguments.
pub fn spawn_secure_server(port: u16, data: &Path, extra: &[&str]) -> Child {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "server",
        "--store",
        "memory",
        "--no-scheduler",
        "--no-controllers",
        "--listen",
        &listen,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    super::spawn_orchestra(args)
}

/// The Deployment `default/web` of `replicas` pods (label `app: web`, image `web:1`).
pub fn web_deployment(replicas: u32) -> Deployment {
    serde_json::from_value(serde_json::json!({
      "apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "web", "namespace": "default"},
      "spec": {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
          "metadata": {"labels": {"app": "web"}},
          "spec": {"containers": [{"name": "main", "image": "web:1"}]}
        }
      }
    }))
    .unwrap()
}

/// How many pods of `default` are Running and Ready (on `node` only, when given); `None`
/// when the list fails.
pub async fn ready_pods(client: &RemoteClient, node: Option<&str>) -> Option<usize> {
    let pods = client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .ok()?;
    Some(
        pods.items
            .iter()
            .filter(|p| node.is_none_or(|node| p.spec.node_name == node))
            .filter(|p| p.is_running_and_ready())
            .count(),
    )
}

/// An audit log (`<data-dir>/audit.log`), one JSON entry per line, read back.
pub struct Audit(pub Vec<Value>);

impl Audit {
    /// Reads the audit log at `path`.
    pub fn read(path: &Path) -> Audit {
        let text = std::fs::read_to_string(path).unwrap();
        Audit(
            text.lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
        )
    }

    /// Whether `user` was allowed `verb` on `resource` at least once.
    pub fn allowed(&self, user: &str, verb: &str, resource: &str) -> bool {
        self.0.iter().any(|e| {
            e["user"] == user
                && e["verb"] == verb
                && e["resource"] == resource
                && e["allowed"] == true
        })
    }

    /// The entries of `user`.
    pub fn of(&self, user: &str) -> Vec<&Value> {
        self.0.iter().filter(|e| e["user"] == user).collect()
    }

    /// The denials of the users `who` picks, but for the one a component may meet in a
    /// correct cluster: a node refused a write to a pod bound to it a moment before the Node
    /// authorizer's graph saw the binding (documented in `auth/node.rs`; the agent retries).
    pub fn unexpected_denials(&self, who: impl Fn(&str) -> bool) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|e| e["allowed"] == false)
            .filter(|e| who(e["user"].as_str().unwrap_or_default()))
            .filter(|e| {
                !(e["user"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("system:node:")
                    && e["resource"] == "pods")
            })
            .collect()
    }
}
