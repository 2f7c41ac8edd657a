//! `orchestra ctl`: apply a multi-document manifest (create, then unchanged, then configured),
//! get objects as tables, JSON and YAML, and readable errors, against `orchestra server` run
//! by the test on a free loopback port.

#![cfg(feature = "server")]

mod support;

use std::process::{Child, Command};

use std::time::Duration;
use support::{ctl, spawn_on_free_port, spawn_orchestra, stdout};

use orchestra_api::RemoteClient;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn start() -> (Server, String) {
    // Only the API: controllers would add pods and annotations the checks below do not expect.
    server(&["--no-controllers", "--no-scheduler"]).await
}

/// `orchestra server --insecure --store memory` with `extra` flags on a free loopback port,
/// once it answers.
async fn server(extra: &[&str]) -> (Server, String) {
    let (child, port) = spawn_on_free_port(|port| {
        let listen = format!("127.0.0.1:{port}");
        let args = [
            "server",
            "--insecure",
            "--store",
            "memory",
            "--listen",
            &listen,
        ];
        spawn_orchestra(args.iter().chain(extra))
    });
    let url = format!("http://127.0.0.1:{port}");
    support::connect_api(&url).await;
    (Server(child), url)
}

const MANIFEST: &str = r#"
# a namespace, its default service account (the controller manager, not running here,
# would make it), a service and its deployment, and one bare pod
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
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
      containers: [{name: web, image: "nginx:1.27"}]
---
apiVersion: v1
kind: Pod
metadata: {name: tools, namespace: shop, labels: {app: tools}}
spec:
  containers: [{name: sh, image: "busybox:1.36"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_get() {
    let (_server, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let file = file.to_str().unwrap();

    let out = stdout(&ctl(&url, &["apply", "-f", file]));
    assert_eq!(
        out,
        "namespace/shop created\nserviceaccount/default created\nservice/web created\ndeployment/web created\npod/tools created\n"
    );
    let out = stdout(&ctl(&url, &["apply", "-f", file]));
    assert_eq!(
        out,
        "namespace/shop unchanged\nserviceaccount/default unchanged\nservice/web unchanged\ndeployment/web unchanged\npod/tools unchanged\n"
    );
    std::fs::write(
        dir.path().join("shop.yaml"),
        MANIFEST.replace("replicas: 2", "replicas: 3"),
    )
    .unwrap();
    let out = stdout(&ctl(&url, &["apply", "-f", dir.path().to_str().unwrap()]));
    assert_eq!(
        out,
        "namespace/shop unchanged\nserviceaccount/default unchanged\nservice/web unchanged\ndeployment/web configured\npod/tools unchanged\n"
    );

    let table = stdout(&ctl(&url, &["get", "pods", "-n", "shop"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "NAME    READY   STATUS    RESTARTS   AGE   NODE");
    assert!(
        lines[1].starts_with("tools   0/1     Pending   0          "),
        "{table}"
    );
    assert!(lines[1].ends_with("<none>"), "{table}");
    let table = stdout(&ctl(&url, &["get", "deploy", "-A"]));
    assert!(
        table.starts_with(
            "NAMESPACE   NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nshop        web    0/3     0            0"
        ),
        "{table}"
    );

    let json: serde_json::Value = serde_json::from_str(&stdout(&ctl(
        &url,
        &["get", "po", "tools", "-n", "shop", "-o", "json"],
    )))
    .unwrap();
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["spec"]["containers"][0]["image"], "busybox:1.36");
    let yaml = stdout(&ctl(
        &url,
        &[
            "get", "services", "-n", "shop", "-o", "yaml", "-l", "app!=x",
        ],
    ));
    assert!(
        yaml.contains("kind: List") && yaml.contains("name: web"),
        "{yaml}"
    );

    let empty = ctl(&url, &["get", "pods", "-n", "nowhere"]);
    assert!(empty.status.success());
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("No resources found in nowhere namespace.")
    );
    let missing = ctl(&url, &["get", "pod", "nope", "-n", "shop"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Pod \"shop/nope\" not found"),
        "{missing:?}"
    );
    let unknown = ctl(&url, &["get", "widgets"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("doesn't have a resource type \"widgets\""),
        "{unknown:?}"
    );
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\n",
    )
    .unwrap();
    let bad = ctl(
        &url,
        &["apply", "-f", dir.path().join("bad.yaml").to_str().unwrap()],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("metadata.name"),
        "{bad:?}"
    );

    let described = stdout(&ctl(&url, &["describe", "deploy", "web", "-n", "shop"]));
    assert!(
        described.starts_with("Name:         web\nNamespace:    shop\n"),
        "{described}"
    );
    assert!(described.contains("replicas: 3"), "{described}");
    let deleted = stdout(&ctl(&url, &["delete", "pod", "tools", "-n", "shop"]));
    assert_eq!(deleted, "pod \"tools\" deleted\n");
    let gone = ctl(&url, &["get", "pod", "tools", "-n", "shop"]);
    assert!(!gone.status.success());
}

const WEB_V1: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  minReadySeconds: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "nginx:1.26"
        env: [{name: MODE, value: blue}, {name: DEBUG, value: "1"}]
        ports: [{containerPort: 80}, {containerPort: 9090, name: metrics}]
"#;

/// The same deployment with the `tier` label, `minReadySeconds`, `DEBUG` and the metrics
/// port removed and the image changed.
const WEB_V2: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: "nginx:1.27"
        env: [{name: MODE, value: blue}]
        ports: [{containerPort: 80}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_merges_three_ways() {
    use orchestra_api::Client;
    use orchestra_api::apply::LAST_APPLIED_ANNOTATION;
    use orchestra_api::resources::{Deployment, EnvVar};

    let (_server, url) = start().await;
    let client = RemoteClient::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, WEB_V1).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        stdout(&ctl(&url, &["apply", "-f", file])),
        "deployment/web created\n"
    );
    let created: Deployment = client.get("default", "web").await.unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(&created.metadata.annotations[LAST_APPLIED_ANNOTATION]).unwrap();
    assert_eq!(recorded["spec"]["minReadySeconds"], 5);

    // Another writer scales it, annotates it and injects an env var.
    let mut other = created.clone();
    other.spec.replicas = Some(4);
    other
        .metadata
        .annotations
        .insert("team".into(), "ops".into());
    other.spec.template.spec.containers[0].env.push(EnvVar {
        name: "INJECTED".into(),
        value: Some("yes".into()),
        ..EnvVar::default()
    });
    client.update(&other).await.unwrap();

    std::fs::write(dir.path().join("web.yaml"), WEB_V2).unwrap();
    assert_eq!(
        stdout(&ctl(&url, &["apply", "-f", file])),
        "deployment/web configured\n"
    );
    let web: Deployment = client.get("default", "web").await.unwrap();
    let labels: Vec<&str> = web.metadata.labels.keys().map(String::as_str).collect();
    assert_eq!(labels, ["app"], "the removed label is gone");
    assert_eq!(
        web.metadata.annotations["team"], "ops",
        "others' annotation kept"
    );
    assert_eq!(
        web.spec.min_ready_seconds, None,
        "the removed field is gone"
    );
    // The manifest says 2 replicas both times: the scale to 4 by someone else is overwritten
    // only because the manifest sets the field (as kubectl does).
    assert_eq!(web.spec.replicas, Some(2));
    let container = &web.spec.template.spec.containers[0];
    assert_eq!(container.image, "nginx:1.27");
    let env: Vec<&str> = container.env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(env, ["MODE", "INJECTED"], "DEBUG removed, INJECTED kept");
    let ports: Vec<i32> = container.ports.iter().map(|p| p.container_port).collect();
    assert_eq!(ports, [80]);

    assert_eq!(
        stdout(&ctl(&url, &["apply", "-f", file])),
        "deployment/web unchanged\n"
    );
}

/// `ctl scale` and `ctl rollout status|pause|resume|undo` against a server running the
/// controllers (no scheduler and no node: pods stay pending, so rollouts never finish).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_rollout() {
    use orchestra::api::Client;
    use orchestra::api::resources::{Deployment, ReplicaSet};

    let (server, url) = server(&["--no-scheduler"]).await;
    let client = support::connect_api(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    let manifest = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
        apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
        spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    \
        metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"web:v1\"}]\n";
    std::fs::write(&file, manifest).unwrap();
    let file = file.to_str().unwrap();
    stdout(&ctl(&url, &["apply", "-f", file]));

    // Waits until the deployment has its `revision`th replica set and knows it.
    let at_revision = |revision: &'static str| {
        let client = client.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let d: Deployment = client.get("shop", "web").await.unwrap();
                let sets = client
                    .list::<ReplicaSet>(Some("shop"), &Default::default())
                    .await
                    .unwrap();
                let current = d
                    .metadata
                    .annotations
                    .get("deployment.kubernetes.io/revision")
                    .map(String::as_str);
                if current == Some(revision) && sets.items.len().to_string() == revision {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no revision {revision} in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    at_revision("1").await;

    let out = stdout(&ctl(
        &url,
        &["scale", "deploy/web", "--replicas", "3", "-n", "shop"],
    ));
    assert_eq!(out, "deployment/web scaled\n");
    let d: Deployment = client.get("shop", "web").await.unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    let bad = ctl(&url, &["scale", "pod/web", "--replicas", "1", "-n", "shop"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cannot scale pods"),
        "{bad:?}"
    );

    // The controllers observe the change; no pod can become ready without a node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = stdout(&ctl(
            &url,
            &[
                "rollout",
                "status",
                "deployment/web",
                "--watch=false",
                "-n",
                "shop",
            ],
        ));
        if out.starts_with(
            "Waiting for deployment \"web\" rollout to finish: 0 of 3 updated replicas are available",
        ) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "unexpected status: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timed_out = ctl(
        &url,
        &["rollout", "status", "web", "--timeout", "1", "-n", "shop"],
    );
    assert!(!timed_out.status.success());
    assert!(
        String::from_utf8_lossy(&timed_out.stderr).contains("timed out waiting for the rollout"),
        "{timed_out:?}"
    );

    let out = stdout(&ctl(
        &url,
        &["rollout", "pause", "deployment/web", "-n", "shop"],
    ));
    assert_eq!(out, "deployment/web paused\n");
    let again = ctl(&url, &["rollout", "pause", "deployment/web", "-n", "shop"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already paused"),
        "{again:?}"
    );
    let out = stdout(&ctl(&url, &["rollout", "resume", "web", "-n", "shop"]));
    assert_eq!(out, "deployment/web resumed\n");

    // A second revision, then undo back to the first.
    let mut d: Deployment = client.get("shop", "web").await.unwrap();
    d.spec.template.spec.containers[0].image = "web:v2".into();
    client.update(&d).await.unwrap();
    at_revision("2").await;
    let missing = ctl(
        &url,
        &[
            "rollout",
            "undo",
            "deployment/web",
            "--to-revision",
            "9",
            "-n",
            "shop",
        ],
    );
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("unable to find specified revision 9"),
        "{missing:?}"
    );
    assert_eq!(
        stdout(&ctl(&url, &["rollout", "history", "web", "-n", "shop"])),
        "deployment.apps/web\nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"
    );
    let out = stdout(&ctl(
        &url,
        &["rollout", "undo", "deployment/web", "-n", "shop"],
    ));
    assert_eq!(out, "deployment/web rolled back\n");
    let d: Deployment = client.get("shop", "web").await.unwrap();
    assert_eq!(d.spec.template.spec.containers[0].image, "web:v1");

    // A daemon set keeps its history as ControllerRevisions, which undo and history read.
    let agent = dir.path().join("agent.yaml");
    let daemon_set = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent, namespace: shop}}\n\
             spec:\n  selector: {{matchLabels: {{app: agent}}}}\n  template:\n    \
             metadata: {{labels: {{app: agent}}}}\n    spec:\n      containers: [{{name: agent, image: \"{image}\"}}]\n"
        )
    };
    let agent = agent.to_str().unwrap();
    let history = || {
        stdout(&ctl(
            &url,
            &["rollout", "history", "ds/agent", "-n", "shop"],
        ))
    };
    let wait_for_history = |want: &'static str| {
        let history = &history;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let out = history();
                if out.ends_with(want) {
                    return;
                }
                assert!(tokio::time::Instant::now() < deadline, "history: {out}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    std::fs::write(agent, daemon_set("agent:v1")).unwrap();
    stdout(&ctl(&url, &["apply", "-f", agent]));
    wait_for_history("REVISION  CHANGE-CAUSE\n1         <none>\n").await;
    std::fs::write(agent, daemon_set("agent:v2")).unwrap();
    stdout(&ctl(&url, &["apply", "-f", agent]));
    wait_for_history("1         <none>\n2         <none>\n").await;
    assert_eq!(
        history(),
        "daemonset.apps/agent\nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"
    );
    let listed = stdout(&ctl(&url, &["get", "controllerrevisions", "-n", "shop"]));
    assert!(
        listed.starts_with("NAME") && listed.contains("daemonset.apps/agent"),
        "{listed}"
    );
    let out = stdout(&ctl(
        &url,
        &["rollout", "undo", "daemonset/agent", "-n", "shop"],
    ));
    assert_eq!(out, "daemonset.apps/agent rolled back\n");
    let ds: orchestra::api::resources::DaemonSet = client.get("shop", "agent").await.unwrap();
    assert_eq!(ds.spec.template.spec.containers[0].image, "agent:v1");
    // The controller renumbers revision 1 to the top rather than copying it.
    wait_for_history("2         <none>\n3         <none>\n").await;
    let cannot = ctl(&url, &["rollout", "undo", "pod/x", "-n", "shop"]);
    assert!(
        String::from_utf8_lossy(&cannot.stderr)
            .contains("deployments, daemonsets and statefulsets, not pods"),
        "{cannot:?}"
    );
    drop(server);
}
