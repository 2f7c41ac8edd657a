//! The events the workload controllers record, over LocalClient in paused time: a replica set's
//! `SuccessfulCreate`, `SuccessfulDelete` and `FailedCreate`, a deployment's
//! `ScalingReplicaSet`, a daemon set's `SuccessfulCreate` (the Job's and the node lifecycle's
//! are asserted in their own test files).

mod support;

use std::collections::BTreeMap;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{DaemonSet, Deployment, Node, Pod, ReplicaSet};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::{
    DaemonSetController, DeploymentController, ReplicaSetController,
};
use orchestra_store::MemStore;
use support::{events_about, eventually, flaky_client, start};

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), app.to_owned())])
}

fn replica_set(replicas: i32) -> ReplicaSet {
    let mut rs = ReplicaSet {
        metadata: ObjectMeta::namespaced("ns", "web"),
        ..ReplicaSet::default()
    };
    rs.spec.replicas = Some(replicas);
    rs.spec.selector = LabelSelector::match_labels([("app", "web")]);
    rs.spec.template.metadata.labels = labels("web");
    rs.spec.template.spec = testing::pod("ns", "x", "web").spec;
    rs
}

async fn pod_names<C: Client>(client: &C) -> Vec<String> {
    let mut names: Vec<String> = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

async fn messages<C: Client>(client: &C, kind: &str, name: &str, reason: &str) -> Vec<String> {
    let mut messages: Vec<String> = events_about(client, "ns", kind, name, reason)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    messages.sort();
    messages
}

#[tokio::test(start_paused = true)]
async fn a_replica_set_reports_each_pod_it_creates_and_deletes() {
    let client = LocalClient::new(MemStore::new());
    let rs = client.create(&replica_set(3)).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(ReplicaSetController::controller(&informers));
    eventually("three SuccessfulCreate events", || async {
        events_about(&client, "ns", "ReplicaSet", "web", "SuccessfulCreate")
            .await
            .len()
            == 3
    })
    .await;
    let pods = pod_names(&client).await;
    let expected: Vec<String> = pods.iter().map(|p| format!("Created pod: {p}")).collect();
    assert_eq!(
        messages(&client, "ReplicaSet", "web", "SuccessfulCreate").await,
        expected
    );
    let event = &events_about(&client, "ns", "ReplicaSet", "web", "SuccessfulCreate").await[0];
    assert_eq!(event.type_, "Normal");
    assert_eq!(event.involved_object.uid, rs.metadata.uid);
    assert_eq!(
        event.source.as_ref().unwrap().component,
        "replicaset-controller"
    );

    let mut rs: ReplicaSet = client.get("ns", "web").await.unwrap();
    rs.spec.replicas = Some(1);
    client.update(&rs).await.unwrap();
    eventually("two SuccessfulDelete events", || async {
        events_about(&client, "ns", "ReplicaSet", "web", "SuccessfulDelete")
            .await
            .len()
            == 2
    })
    .await;
    let remaining = pod_names(&client).await;
    let deleted: Vec<String> = pods
        .iter()
        .filter(|p| !remaining.contains(p))
        .map(|p| format!("Deleted pod: {p}"))
        .collect();
    assert_eq!(
        messages(&client, "ReplicaSet", "web", "SuccessfulDelete").await,
        deleted
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_pod_creation_is_a_warning_on_the_replica_set() {
    let client = flaky_client(LocalClient::new(MemStore::new()));
    client.inner.create(&replica_set(1)).await.unwrap();
    // The controller's first write, its first pod, fails; its retry succeeds.
    client.hook.plan_writes([true]);
    let informers = SharedInformers::new(client.clone());
    let running = start(ReplicaSetController::controller(&informers));
    eventually("a FailedCreate event", || async {
        !events_about(&client, "ns", "ReplicaSet", "web", "FailedCreate")
            .await
            .is_empty()
    })
    .await;
    let failed = &events_about(&client, "ns", "ReplicaSet", "web", "FailedCreate").await[0];
    assert_eq!(failed.type_, "Warning");
    assert!(
        failed.message.starts_with("Error creating: ") && failed.message.contains("planned"),
        "{}",
        failed.message
    );
    // The sync was retried and the pod made after all.
    eventually("the pod is created on retry", || async {
        pod_names(&client).await.len() == 1
    })
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deployment_reports_scaling_its_replica_set() {
    let client = LocalClient::new(MemStore::new());
    let mut d = Deployment {
        metadata: ObjectMeta::namespaced("ns", "web"),
        ..Deployment::default()
    };
    d.spec.replicas = Some(2);
    d.spec.selector = LabelSelector::match_labels([("app", "web")]);
    d.spec.template.metadata.labels = labels("web");
    d.spec.template.spec = testing::pod("ns", "x", "web").spec;
    client.create(&d).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DeploymentController::controller(&informers));
    // It scales only replica sets whose status is current: their controller runs too.
    let replica_sets = start(ReplicaSetController::controller(&informers));
    eventually("the replica set is created", || async {
        !client
            .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    let rs = client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .remove(0)
        .metadata
        .name;
    eventually("a ScalingReplicaSet event", || async {
        !messages(&client, "Deployment", "web", "ScalingReplicaSet")
            .await
            .is_empty()
    })
    .await;
    assert_eq!(
        messages(&client, "Deployment", "web", "ScalingReplicaSet").await,
        [format!("Scaled up replica set {rs} to 2")]
    );

    let mut d: Deployment = client.get("ns", "web").await.unwrap();
    d.spec.replicas = Some(4);
    client.update(&d).await.unwrap();
    let up = format!("Scaled up replica set {rs} to 4 from 2");
    eventually("the scale-up is reported", || async {
        messages(&client, "Deployment", "web", "ScalingReplicaSet")
            .await
            .contains(&up)
    })
    .await;
    let event = events_about(&client, "ns", "Deployment", "web", "ScalingReplicaSet").await;
    assert!(event.iter().all(|e| e.type_ == "Normal"));
    assert_eq!(
        event[0].source.as_ref().unwrap().component,
        "deployment-controller"
    );
    replica_sets.stop().await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_daemon_set_reports_the_pod_it_creates_on_each_node() {
    let client = LocalClient::new(MemStore::new());
    for name in ["n1", "n2"] {
        client
            .create(&Node {
                metadata: ObjectMeta::named(name),
                ..Node::default()
            })
            .await
            .unwrap();
    }
    let mut ds = DaemonSet {
        metadata: ObjectMeta::namespaced("ns", "agent"),
        ..DaemonSet::default()
    };
    ds.spec.selector = LabelSelector::match_labels([("app", "agent")]);
    ds.spec.template.metadata.labels = labels("agent");
    ds.spec.template.spec = testing::pod("ns", "x", "agent").spec;
    client.create(&ds).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    eventually("a SuccessfulCreate per node", || async {
        messages(&client, "DaemonSet", "agent", "SuccessfulCreate")
            .await
            .len()
            == 2
    })
    .await;
    let expected: Vec<String> = pod_names(&client)
        .await
        .iter()
        .map(|p| format!("Created pod: {p}"))
        .collect();
    assert_eq!(
        messages(&client, "DaemonSet", "agent", "SuccessfulCreate").await,
        expected
    );
    let event = &events_about(&client, "ns", "DaemonSet", "agent", "SuccessfulCreate").await[0];
    assert_eq!(
        event.source.as_ref().unwrap().component,
        "daemonset-controller"
    );
    running.stop().await;
}
