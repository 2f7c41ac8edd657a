//! The NodeLifecycle controller over LocalClient in paused time: a node whose agent stops
//! renewing its Lease turns Unknown and unreachable after the grace period, its pods go as
//! their tolerations say, and the taints go when it is Ready again.

mod support;

use std::time::Duration;

use orchestra_api::meta::{MicroTime, Time};
use orchestra_api::resources::{
    ConditionStatus, Lease, LeaseSpec, Node, NodeCondition, NodeStatus, Pod, TaintEffect,
    Toleration, TolerationOperator,
};
use orchestra_api::{Client, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::NodeLifecycleController;
use orchestra_controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra_controller::controllers::node_lifecycle::plan::UNREACHABLE_TAINT;
use orchestra_store::MemStore;
use support::{events_about, eventually_within, start};
use tokio::time::Instant;

const GRACE: Duration = Duration::from_secs(40);

fn wall(second: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + second).unwrap()
}

fn ready_node(name: &str, heartbeat: i64) -> Node {
    Node {
        metadata: ObjectMeta::named(name),
        status: Some(NodeStatus {
            conditions: vec![NodeCondition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                last_heartbeat_time: Some(Time::new(wall(heartbeat))),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn renew(client: &LocalClient, node: &str, second: i64) {
    // Distinct renewTimes by construction: the controller only looks for a change.
    let spec = LeaseSpec {
        holder_identity: Some(node.into()),
        lease_duration_seconds: Some(40),
        renew_time: Some(MicroTime::new(wall(second))),
        ..Default::default()
    };
    match client.get::<Lease>("kube-node-lease", node).await {
        Ok(mut lease) => {
            lease.spec = spec;
            client.update(&lease).await.unwrap();
        }
        Err(_) => {
            client
                .create(&Lease {
                    metadata: ObjectMeta::namespaced("kube-node-lease", node),
                    spec,
                })
                .await
                .unwrap();
        }
    }
}

/// Healthy nodes `names`, whose agent renews their Leases every 10 s until the task is
/// aborted: they keep the unhealthy fraction under the threshold that pauses evictions.
async fn healthy_nodes(
    client: &LocalClient,
    names: &[&'static str],
) -> tokio::task::JoinHandle<()> {
    for name in names {
        let node = client.create(&ready_node(name, 0)).await.unwrap();
        client
            .update_status(&Node {
                status: ready_node(name, 0).status,
                ..node
            })
            .await
            .unwrap();
        renew(client, name, 0).await;
    }
    let client = client.clone();
    let names = names.to_vec();
    tokio::spawn(async move {
        let mut second = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            second += 10;
            for name in &names {
                renew(&client, name, second).await;
            }
        }
    })
}

fn bound_pod(name: &str, tolerate_unreachable: Option<Option<i64>>) -> Pod {
    let mut pod = testing::pod("default", name, "web");
    pod.spec.node_name = "n1".into();
    if let Some(seconds) = tolerate_unreachable {
        pod.spec.tolerations = vec![Toleration {
            key: UNREACHABLE_TAINT.into(),
            operator: Some(TolerationOperator::Exists),
            effect: Some(TaintEffect::NoExecute),
            toleration_seconds: seconds,
            ..Default::default()
        }];
    }
    pod
}

async fn exists(client: &LocalClient, pod: &str) -> bool {
    client.get::<Pod>("default", pod).await.is_ok()
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_turns_unknown_its_pods_go_by_their_tolerations_and_it_recovers() {
    let client = LocalClient::new(MemStore::new());
    let node = client.create(&ready_node("n1", 0)).await.unwrap();
    client
        .update_status(&Node {
            status: ready_node("n1", 0).status,
            ..node
        })
        .await
        .unwrap();
    renew(&client, "n1", 0).await;
    client.create(&bound_pod("intolerant", None)).await.unwrap();
    client
        .create(&bound_pod("patient", Some(Some(300))))
        .await
        .unwrap();
    client
        .create(&bound_pod("forever", Some(None)))
        .await
        .unwrap();
    let others = healthy_nodes(&client, &["n2", "n3"]).await;

    let informers = SharedInformers::new(client.clone());
    let controller = start(NodeLifecycleController::controller(
        &informers,
        NodeLifecycleConfig::default(),
    ));

    // The agent renews every 10 s for two minutes: nothing happens.
    let mut second = 0;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        second += 10;
        renew(&client, "n1", second).await;
    }
    let node: Node = client.get("", "n1").await.unwrap();
    assert!(node.spec.taints.is_empty());
    assert!(exists(&client, "intolerant").await);

    // The agent stops.
    let silent = Instant::now();
    tokio::time::sleep(GRACE - Duration::from_secs(1)).await;
    let node: Node = client.get("", "n1").await.unwrap();
    assert!(node.spec.taints.is_empty(), "not within the grace period");
    assert_eq!(
        node.status.unwrap().condition("Ready").unwrap().status,
        ConditionStatus::True
    );
    eventually_within("the node turns unknown", Duration::from_secs(2), || async {
        let node: Node = client.get("", "n1").await.unwrap();
        node.status.unwrap().condition("Ready").unwrap().status == ConditionStatus::Unknown
    })
    .await;
    let node: Node = client.get("", "n1").await.unwrap();
    let taints: Vec<_> = node
        .spec
        .taints
        .iter()
        .map(|t| (t.key.as_str(), t.effect))
        .collect();
    assert_eq!(
        taints,
        [
            (UNREACHABLE_TAINT, TaintEffect::NoSchedule),
            (UNREACHABLE_TAINT, TaintEffect::NoExecute)
        ]
    );
    let ready = node.status.unwrap().condition("Ready").cloned().unwrap();
    assert_eq!(
        ready.last_heartbeat_time,
        Some(Time::new(wall(0))),
        "the agent's last heartbeat is kept"
    );
    let tainted = Instant::now();
    assert!(tainted >= silent + GRACE);
    eventually_within(
        "NodeNotReady is recorded",
        Duration::from_secs(1),
        || async {
            !events_about(&client, "default", "Node", "n1", "NodeNotReady")
                .await
                .is_empty()
        },
    )
    .await;
    let not_ready = &events_about(&client, "default", "Node", "n1", "NodeNotReady").await[0];
    assert_eq!(not_ready.message, "Node n1 status is now: NodeNotReady");
    assert_eq!(
        not_ready.source.as_ref().unwrap().component,
        "node-controller"
    );

    // No toleration: evicted at once.
    eventually_within(
        "the intolerant pod is evicted",
        Duration::from_secs(1),
        || async { !exists(&client, "intolerant").await },
    )
    .await;
    eventually_within(
        "the eviction is recorded",
        Duration::from_secs(1),
        || async {
            !events_about(
                &client,
                "default",
                "Pod",
                "intolerant",
                "TaintManagerEviction",
            )
            .await
            .is_empty()
        },
    )
    .await;
    let evicted = &events_about(
        &client,
        "default",
        "Pod",
        "intolerant",
        "TaintManagerEviction",
    )
    .await[0];
    assert_eq!(
        evicted.message,
        "Marking for deletion Pod default/intolerant"
    );
    assert_eq!(evicted.type_, "Normal");
    // 300 s of toleration: not before.
    tokio::time::sleep(Duration::from_secs(295)).await;
    assert!(exists(&client, "patient").await);
    eventually_within(
        "the patient pod is evicted",
        Duration::from_secs(10),
        || async { !exists(&client, "patient").await },
    )
    .await;
    assert!(Instant::now() >= tainted + Duration::from_secs(300));
    assert!(exists(&client, "forever").await);

    // The agent is back: Ready again, taints removed.
    renew(&client, "n1", second + 1000).await;
    let mut node: Node = client.get("", "n1").await.unwrap();
    let status = node.status.as_mut().unwrap();
    status.conditions[0].status = ConditionStatus::True;
    status.conditions[0].last_heartbeat_time = Some(Time::new(wall(second + 1000)));
    client.update_status(&node).await.unwrap();
    eventually_within("the taints are removed", Duration::from_secs(1), || async {
        let node: Node = client.get("", "n1").await.unwrap();
        node.spec.taints.is_empty()
    })
    .await;
    assert!(exists(&client, "forever").await);
    others.abort();
    controller.stop().await;
}

#[tokio::test(start_paused = true)]
async fn evictions_pause_when_most_nodes_are_unhealthy() {
    let client = LocalClient::new(MemStore::new());
    let others = healthy_nodes(&client, &["n1", "n2", "n3"]).await;
    client.create(&bound_pod("intolerant", None)).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let controller = start(NodeLifecycleController::controller(
        &informers,
        NodeLifecycleConfig::default(),
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    // Every agent goes silent at once (as when the control plane is cut off).
    others.abort();
    eventually_within(
        "all nodes unreachable",
        GRACE + Duration::from_secs(15),
        || async {
            let nodes = client
                .list::<Node>(None, &Default::default())
                .await
                .unwrap()
                .items;
            nodes
                .iter()
                .all(|n| n.spec.taints.iter().any(|t| t.key == UNREACHABLE_TAINT))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(
        exists(&client, "intolerant").await,
        "no eviction while most nodes are unhealthy"
    );

    // Two nodes come back: one of three unhealthy, evictions resume.
    for name in ["n2", "n3"] {
        renew(&client, name, 5000).await;
        let mut node: Node = client.get("", name).await.unwrap();
        let status = node.status.as_mut().unwrap();
        status.conditions[0].status = ConditionStatus::True;
        status.conditions[0].last_heartbeat_time = Some(Time::new(wall(5000)));
        client.update_status(&node).await.unwrap();
    }
    eventually_within("the pod is evicted", Duration::from_secs(20), || async {
        !exists(&client, "intolerant").await
    })
    .await;
    controller.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_node_reporting_not_ready_gets_not_ready_taints_and_the_grace_period_is_configurable() {
    let client = LocalClient::new(MemStore::new());
    let mut node = ready_node("n1", 0);
    node.status.as_mut().unwrap().conditions[0].status = ConditionStatus::False;
    let created = client.create(&node).await.unwrap();
    client
        .update_status(&Node {
            status: node.status,
            ..created
        })
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let config = NodeLifecycleConfig {
        grace_period: Duration::from_secs(5),
        ..Default::default()
    };
    let others = healthy_nodes(&client, &["n2", "n3"]).await;
    let controller = start(NodeLifecycleController::controller(&informers, config));
    eventually_within("not-ready taints", Duration::from_secs(1), || async {
        let node: Node = client.get("", "n1").await.unwrap();
        node.spec
            .taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/not-ready" && t.effect == TaintEffect::NoExecute)
    })
    .await;
    // No heartbeat at all: unreachable after the (short) grace period.
    eventually_within("unreachable after 5 s", Duration::from_secs(6), || async {
        let node: Node = client.get("", "n1").await.unwrap();
        node.spec.taints.iter().all(|t| t.key == UNREACHABLE_TAINT) && !node.spec.taints.is_empty()
    })
    .await;
    others.abort();
    controller.stop().await;
}
