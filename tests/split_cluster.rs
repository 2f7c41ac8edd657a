//! The split deployment: `orchestra server`, `orchestra scheduler`, `orchestra
//! controller-manager` and three `orchestra agent --runtime process` run as separate processes
//! and form one cluster. Through `orchestra ctl` a Deployment is applied and its pods run as
//! real processes; one agent is SIGKILLed (its machine is lost), its pods are evicted and
//! replaced on the other nodes; the agent comes back on its state directory, re-adopts its
//! processes and finishes the evicted pods; deleting the Deployment through ctl removes every
//! pod.
//!
//! The second test runs the same scenario on `orchestra server --store etcd` over a
//! three-member etcd cluster and SIGKILLs one etcd member midway: the cluster keeps working.
//! It is skipped (with a message) when etcd is not installed, unless
//! `ORCHESTRA_SYSTEM_TESTS=1`.

#![cfg(feature = "server")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Child;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Node, Pod};
use orchestra_api::{Client, RemoteClient};
use support::secure::wait_for;
use support::{connect_api, ctl, free_port, spawn_orchestra, stdout, stop_with_sigterm};

/// How long a silent node stays Ready, and the agents' lease duration (renewed four times
/// within it): short, so that the scenario runs in seconds.
const NODE_GRACE_SECONDS: &str = "2";

/// Three replicas of a real process that tolerate a lost node for one second only (the
/// default is 300 s), with a short grace period so that teardown is quick.
const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
        - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 1}
        - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 1}
      containers:
        - name: main
          image: sleeper
          command: [sleep, "300"]
"#;

/// One `orchestra agent --runtime process`, which can be killed and started again on the
/// same state directory.
struct Agent {
    name: String,
    state_dir: PathBuf,
    pod_ip_range: String,
    child: Option<Child>,
}

impl Agent {
    fn new(base: &Path, index: usize) -> Agent {
        let name = format!("node-{index}");
        Agent {
            state_dir: base.join(&name),
            pod_ip_range: format!("127.3.{}.0/24", 100 + index),
            name,
            child: None,
        }
    }

    fn start(&mut self, server_url: &str) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.child = Some(spawn_orchestra([
            "agent",
            "--server",
            server_url,
            "--node-name",
            &self.name,
            "--runtime",
            "process",
            "--state-dir",
            self.state_dir.to_str().unwrap(),
            "--pod-ip-range",
            &self.pod_ip_range,
            "--cpu",
            "4",
            "--memory",
            "8Gi",
            "--node-lease-duration-seconds",
            NODE_GRACE_SECONDS,
        ]));
    }

    /// SIGKILL: the agent has no chance to stop its pods or to say goodbye.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("the agent is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn stop(&mut self) {
        let child = self.child.take().expect("the agent is running");
        stop_with_sigterm(child, &format!("orchestra agent {}", self.name));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Processes that are killed if the test fails before it stops them.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Guard {
    /// Stop every process with SIGTERM, checking that each exits 0.
    fn stop_all(mut self, what: &str) {
        for child in self.0.drain(..) {
            stop_with_sigterm(child, what);
        }
    }
}

async fn sleeper_pods(client: &RemoteClient) -> Vec<Pod> {
    let options = ListOptions::labels("app=sleeper".parse().unwrap());
    match client.list::<Pod>(Some("default"), &options).await {
        Ok(list) => list.items,
        // The store may be between leaders (etcd): ask again.
        Err(_) => Vec::new(),
    }
}

fn live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
}

/// The scenario both tests run once the control plane is up; `midway` runs after the
/// Deployment's pods are all Running and Ready, before a node is lost.
async fn deploy_lose_a_node_and_recover(
    server_url: &str,
    agents: &mut [Agent],
    midway: impl FnOnce(),
) {
    let client = connect_api(server_url).await;
    for agent in agents.iter_mut() {
        agent.start(server_url);
    }
    wait_for("three Ready nodes", || async {
        let nodes = client
            .list::<Node>(None, &ListOptions::default())
            .await
            .ok()?;
        (nodes.items.iter().filter(|n| n.is_ready()).count() == 3).then_some(())
    })
    .await;

    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest.path(), DEPLOYMENT).unwrap();
    let applied = stdout(&ctl(
        server_url,
        &["apply", "-f", manifest.path().to_str().unwrap()],
    ));
    assert!(applied.contains("sleeper created"), "{applied}");
    let pods = wait_for("three Running and Ready replicas", || async {
        let pods = sleeper_pods(&client).await;
        (pods.len() == 3 && pods.iter().all(|p| live(p) && p.is_running_and_ready()))
            .then_some(pods)
    })
    .await;
    for pod in &pods {
        let ip = &pod.status.as_ref().unwrap().pod_ip;
        assert!(
            ip.starts_with("127.3.10"),
            "{ip} is not from an agent's range"
        );
    }
    let table = stdout(&ctl(server_url, &["get", "pods", "-l", "app=sleeper"]));
    assert_eq!(table.matches("Running").count(), 3, "{table}");

    midway();

    // Lose the node of the first pod: its agent dies without a word.
    let lost = pods[0].spec.node_name.clone();
    let on_lost = pods.iter().filter(|p| p.spec.node_name == lost).count();
    let victim = agents.iter_mut().find(|a| a.name == lost).unwrap();
    victim.kill();
    wait_for(
        &format!("the pods of {lost} replaced on the other nodes"),
        || async {
            let pods = sleeper_pods(&client).await;
            let replaced = pods
                .iter()
                .filter(|p| live(p) && p.is_running_and_ready() && p.spec.node_name != lost)
                .count();
            let evicted = pods
                .iter()
                .filter(|p| !live(p) && p.spec.node_name == lost)
                .count();
            (replaced == 3 && evicted == on_lost).then_some(())
        },
    )
    .await;

    // The node comes back on its state directory: it re-adopts its processes and finishes the
    // evicted pods, so that only the three replacements remain.
    victim.start(server_url);
    wait_for(&format!("{lost} to finish its evicted pods"), || async {
        let pods = sleeper_pods(&client).await;
        (pods.len() == 3 && pods.iter().all(|p| live(p) && p.spec.node_name != lost)).then_some(())
    })
    .await;

    let deleted = stdout(&ctl(server_url, &["delete", "deployment", "sleeper"]));
    assert!(deleted.contains("sleeper"), "{deleted}");
    wait_for("every pod of the Deployment removed", || async {
        sleeper_pods(&client).await.is_empty().then_some(())
    })
    .await;
    for agent in agents.iter_mut() {
        agent.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_form_one_cluster_that_survives_losing_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_url = format!("http://127.0.0.1:{port}");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut control_plane = Guard(vec![spawn_orchestra([
        "server",
        "--insecure",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        dir.path().join("server").to_str().unwrap(),
        "--no-scheduler",
        "--no-controllers",
    ])]);
    // The scheduler and the controller manager need the API up when they start.
    connect_api(&server_url).await;
    control_plane
        .0
        .push(spawn_orchestra(["scheduler", "--server", &server_url]));
    control_plane.0.push(spawn_orchestra([
        "controller-manager",
        "--server",
        &server_url,
        "--metrics-listen",
        &metrics,
        "--node-monitor-grace-period",
        NODE_GRACE_SECONDS,
    ]));
    let mut agents: Vec<Agent> = (1..=3).map(|i| Agent::new(dir.path(), i)).collect();
    deploy_lose_a_node_and_recover(&server_url, &mut agents, || {}).await;
    // Stop in reverse order of dependence: the server last.
    let mut processes = control_plane;
    let server = processes.0.remove(0);
    processes.stop_all("a control plane component");
    stop_with_sigterm(server, "orchestra server");
}

#[cfg(feature = "etcd")]
// The store's etcd harness (shared rather than written twice).
#[path = "../crates/orchestra-store/tests/etcd_harness/mod.rs"]
mod etcd_harness;

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_three_etcd_members_keeps_working_when_one_dies() {
    use etcd_harness::{Member, etcd_or_skip};

    let Some(binary) = etcd_or_skip("a_cluster_on_three_etcd_members_keeps_working_when_one_dies")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--heartbeat-interval", "50", "--election-timeout", "500"];
    let mut members = Member::start_cluster(&binary, dir.path(), 3, &flags).await;
    let endpoints = members
        .iter()
        .map(Member::url)
        .collect::<Vec<_>>()
        .join(",");

    let port = free_port();
    let server_url = format!("http://127.0.0.1:{port}");
    let server = Guard(vec![spawn_orchestra([
        "server",
        "--insecure",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoints,
        "--node-monitor-grace-period",
        NODE_GRACE_SECONDS,
    ])]);
    let mut agents: Vec<Agent> = (4..=6).map(|i| Agent::new(dir.path(), i)).collect();
    let first_member = &mut members[0];
    deploy_lose_a_node_and_recover(&server_url, &mut agents, || first_member.kill()).await;
    server.stop_all("orchestra server");
}
