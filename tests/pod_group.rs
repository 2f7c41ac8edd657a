//! PodGroup (`scheduling.x-k8s.io/v1alpha1`) through the in-process API server on a free
//! loopback port: `ctl apply` and `ctl get podgroups`, a bad PodGroup refused by field path,
//! and the scheduling loop (over `RemoteClient`) binding a gang only once its `minMember`
//! members are placed, then writing the group's status.

#![cfg(feature = "server")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use orchestra::api::registry::{DynRegistry, ListOptions};
use orchestra::api::resources::{
    Container, Node, NodeStatus, Pod, PodGroup, PodGroupPhase, PodSpec, ResourceRequirements,
};
use orchestra::api::server::{ApiServer, RunningServer};
use orchestra::api::{Client, ObjectMeta, Quantity, Registry, RemoteClient};
use orchestra::sched::plugins;
use orchestra::sched::run::SchedulerLoop;
use orchestra::sched::{Profiles, plugins::coscheduling::POD_GROUP_LABEL};
use orchestra::store::MemStore;
use support::{ctl, stdout};

async fn serve() -> (RemoteClient, RunningServer) {
    let registry = DynRegistry::new(Registry::from_arc(Arc::new(MemStore::new())));
    let server = ApiServer::new(registry)
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind 127.0.0.1:0");
    let client = RemoteClient::connect(&server.url())
        .await
        .expect("connect to the server");
    (client, server)
}

fn node(name: &str, cpu: i64) -> Node {
    Node {
        metadata: ObjectMeta::named(name),
        status: Some(NodeStatus {
            allocatable: [
                ("cpu".to_owned(), Quantity::from_value(cpu)),
                ("memory".to_owned(), Quantity::parse("8Gi").unwrap()),
                ("pods".to_owned(), Quantity::from_value(110)),
            ]
            .into(),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

fn member(name: &str, group: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name).with_label(POD_GROUP_LABEL, group),
        spec: PodSpec {
            containers: vec![Container {
                name: "worker".into(),
                image: "trainer:1".into(),
                resources: ResourceRequirements {
                    requests: [("cpu".to_owned(), Quantity::from_value(1))].into(),
                    ..ResourceRequirements::default()
                },
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        status: None,
    }
}

async fn bound(client: &RemoteClient) -> Vec<String> {
    let mut names: Vec<String> = client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| !p.spec.node_name.is_empty())
        .map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

/// Polls `done` every 50 ms for up to 30 s (real time: the server is on a socket).
async fn until<F, Fut>(mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done().await
}

const GROUP: &str = r#"
apiVersion: scheduling.x-k8s.io/v1alpha1
kind: PodGroup
metadata: {name: train, namespace: default}
spec: {minMember: 3, scheduleTimeoutSeconds: 120}
"#;

const BAD_GROUP: &str = r#"
apiVersion: scheduling.x-k8s.io/v1alpha1
kind: PodGroup
metadata: {name: broken, namespace: default}
spec: {minMember: 0}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_group_applied_with_ctl_gates_its_gang_and_shows_its_status() {
    let (client, server) = serve().await;
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("group.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, GROUP).unwrap();
    std::fs::write(&bad, BAD_GROUP).unwrap();

    // ctl knows the kind: apply, then get by its names.
    let applied = stdout(&ctl(&url, &["apply", "-f", good.to_str().unwrap()]));
    assert_eq!(applied.trim(), "podgroup/train created");
    // A bad one is refused with the field's path.
    let refused = ctl(&url, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("spec.minMember: Invalid value: 0: must be greater than or equal to 1"),
        "{err}"
    );

    // The scheduler over the API: a node with room for the gang, two members first.
    client.create(&node("big", 8)).await.unwrap();
    let mut profiles = Profiles::new();
    profiles.insert(plugins::default_profile());
    let scheduler = SchedulerLoop::new(client.clone(), profiles).expect("a profile");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    for name in ["w0", "w1"] {
        client.create(&member(name, "train")).await.unwrap();
    }
    // Two placed and waiting at Permit: the status says Scheduling, nothing is bound.
    let phase = |client: RemoteClient| async move {
        client
            .get::<PodGroup>("default", "train")
            .await
            .unwrap()
            .status
            .map(|s| (s.phase, s.scheduled))
    };
    assert!(
        until(|| async { phase(client.clone()).await == Some((PodGroupPhase::Scheduling, 0)) })
            .await,
        "Scheduling: {:?}",
        phase(client.clone()).await
    );
    assert!(bound(&client).await.is_empty());
    // The third completes it: all three bound, the group Scheduled with 3.
    client.create(&member("w2", "train")).await.unwrap();
    assert!(
        until(|| async { phase(client.clone()).await == Some((PodGroupPhase::Scheduled, 3)) })
            .await,
        "Scheduled: {:?}",
        phase(client.clone()).await
    );
    assert_eq!(bound(&client).await, ["w0", "w1", "w2"]);
    let table = stdout(&ctl(&url, &["get", "pg", "-n", "default"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "MIN",
            "MEMBER",
            "PHASE",
            "SCHEDULED",
            "RUNNING",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(
        lines[1].split_whitespace().take(5).collect::<Vec<_>>(),
        ["train", "3", "Scheduled", "3", "0"],
        "{table}"
    );

    stop.send(()).unwrap();
    task.await.unwrap();
    server.shutdown().await.unwrap();
}
