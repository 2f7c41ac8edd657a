//! The StatefulSet controller over LocalClient in paused time, run through the controller
//! manager's selection (with the garbage collector), with the node's part played by the test:
//! it marks pods running and ready, and holds each deleted pod with a finalizer until it lets
//! it go, so that every "wait until it is gone" of the controller is observable.
//!
//! Covered: ordered creation (each pod only once the one before is ready), stable identities
//! (names, labels, hostname and subdomain), scale down from the highest ordinal waiting for
//! each pod to be gone, a rolling update one pod at a time from the top down to the partition,
//! the rest of it once the partition is lowered, the revisions in status and as
//! ControllerRevisions, recreation of a deleted pod under its name, and cascading deletion.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use orchestra_api::registry::{DeleteOptions, ListOptions};
use orchestra_api::resources::{
    ConditionStatus, ControllerRevision, Pod, PodCondition, PodPhase, PodStatus,
    STATEFUL_SET_POD_INDEX_LABEL, STATEFUL_SET_POD_NAME_LABEL, StatefulSet, StatefulSetStatus,
};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::history::REVISION_HASH_LABEL;
use orchestra_controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra_controller::manager::selected_controllers;
use orchestra_store::MemStore;
use support::eventually;
use tokio::sync::oneshot;

/// The finalizer the test's "node" holds on every pod it runs.
const NODE_FINALIZER: &str = "test.orchestra.dev/node";

fn stateful_set(replicas: i32, image: &str) -> StatefulSet {
    let mut sts = StatefulSet {
        metadata: ObjectMeta::namespaced("ns", "web"),
        ..StatefulSet::default()
    };
    sts.spec.replicas = Some(replicas);
    sts.spec.service_name = "web-hl".into();
    sts.spec.selector = LabelSelector::match_labels([("app", "web")]);
    sts.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    sts.spec.template.spec = testing::pod("ns", "x", "web").spec;
    sts.spec.template.spec.containers[0].image = image.into();
    sts
}

/// The stateful set's controllers run through the manager until the sender is used.
fn start(client: &LocalClient) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let informers = SharedInformers::new(client.clone());
    let set = selected_controllers(
        &informers,
        NodeLifecycleConfig::default(),
        &["statefulset", "garbagecollector"],
    );
    assert!(set.names().contains(&"statefulset"), "{:?}", set.names());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(set.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn pods(client: &LocalClient) -> BTreeMap<String, Pod> {
    client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.clone(), p))
        .collect()
}

/// The pods' names, a `*` after each one being deleted.
async fn names(client: &LocalClient) -> Vec<String> {
    pods(client)
        .await
        .into_values()
        .map(|p| {
            let mark = if p.metadata.deletion_timestamp.is_some() {
                "*"
            } else {
                ""
            };
            format!("{}{mark}", p.metadata.name)
        })
        .collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn image(pod: &Pod) -> &str {
    &pod.spec.containers[0].image
}

async fn status(client: &LocalClient) -> StatefulSetStatus {
    let sts: StatefulSet = client.get("ns", "web").await.unwrap();
    sts.status.unwrap_or_default()
}

/// The node runs `name`: holds it with its finalizer, then reports it running and ready.
async fn run_ready(client: &LocalClient, name: &str) {
    let mut pod: Pod = client.get("ns", name).await.unwrap();
    pod.metadata.finalizers = vec![NODE_FINALIZER.into()];
    let mut pod = client.update(&pod).await.unwrap();
    pod.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        conditions: vec![PodCondition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            ..PodCondition::default()
        }],
        ..PodStatus::default()
    });
    client.update_status(&pod).await.unwrap();
}

/// The node has stopped `name`, which is being deleted: it lets it go.
async fn let_go(client: &LocalClient, name: &str) {
    let mut pod: Pod = client.get("ns", name).await.unwrap();
    assert!(
        pod.metadata.deletion_timestamp.is_some(),
        "{name} is not being deleted"
    );
    pod.metadata.finalizers.clear();
    client.update(&pod).await.unwrap();
}

/// Waits until the pods are exactly `expected`, then lets the controller run on for a while
/// (virtual time) and checks that it did nothing more: it is waiting.
async fn settles_at(client: &LocalClient, expected: &[&str]) {
    let expected = strings(expected);
    eventually(&format!("pods {expected:?}"), || async {
        names(client).await == expected
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(names(client).await, expected, "the controller did not wait");
}

#[tokio::test(start_paused = true)]
async fn ordered_creation_scale_down_rolling_update_and_recreation() {
    let client = LocalClient::new(MemStore::new());
    let created = client.create(&stateful_set(3, "web:1")).await.unwrap();
    let (stop, task) = start(&client);

    // Ordered creation: each pod once the one before it is running and ready.
    settles_at(&client, &["web-0"]).await;
    run_ready(&client, "web-0").await;
    settles_at(&client, &["web-0", "web-1"]).await;
    run_ready(&client, "web-1").await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    run_ready(&client, "web-2").await;
    eventually("3 ready", || async {
        let s = status(&client).await;
        s.ready_replicas == 3 && s.available_replicas == 3 && s.replicas == 3
    })
    .await;

    // Stable identities.
    let all = pods(&client).await;
    let web1 = &all["web-1"];
    assert_eq!(web1.spec.hostname, "web-1");
    assert_eq!(web1.spec.subdomain, "web-hl");
    assert_eq!(web1.metadata.labels[STATEFUL_SET_POD_NAME_LABEL], "web-1");
    assert_eq!(web1.metadata.labels[STATEFUL_SET_POD_INDEX_LABEL], "1");
    assert_eq!(
        web1.metadata.controller_ref().unwrap().uid,
        created.metadata.uid
    );
    let first_revision = web1.metadata.labels[REVISION_HASH_LABEL].clone();
    let s = status(&client).await;
    assert_eq!(s.current_revision, first_revision);
    assert_eq!(s.update_revision, first_revision);
    assert_eq!((s.current_replicas, s.updated_replicas), (3, 3));
    assert_eq!(s.observed_generation, Some(1));

    // A deleted pod comes back under its name (a new pod: a new uid).
    let old_uid = web1.metadata.uid.clone();
    client
        .delete::<Pod>("ns", "web-1", &DeleteOptions::default())
        .await
        .unwrap();
    settles_at(&client, &["web-0", "web-1*", "web-2"]).await;
    let_go(&client, "web-1").await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    assert_ne!(pods(&client).await["web-1"].metadata.uid, old_uid);
    run_ready(&client, "web-1").await;

    // Rolling update with a partition: from the top down to ordinal 1, one at a time, each
    // replacement ready before the next pod goes.
    let mut sts: StatefulSet = client.get("ns", "web").await.unwrap();
    sts.spec.template.spec.containers[0].image = "web:2".into();
    let rolling = sts.spec.update_strategy.as_mut().unwrap();
    rolling.rolling_update.as_mut().unwrap().partition = Some(1);
    client.update(&sts).await.unwrap();
    settles_at(&client, &["web-0", "web-1", "web-2*"]).await;
    let_go(&client, "web-2").await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    assert_eq!(image(&pods(&client).await["web-2"]), "web:2");
    run_ready(&client, "web-2").await;
    settles_at(&client, &["web-0", "web-1*", "web-2"]).await;
    let_go(&client, "web-1").await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    run_ready(&client, "web-1").await;
    eventually("2 updated", || async {
        let s = status(&client).await;
        s.updated_replicas == 2 && s.ready_replicas == 3
    })
    .await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    let all = pods(&client).await;
    let images: Vec<&str> = all.values().map(image).collect();
    assert_eq!(
        images,
        ["web:1", "web:2", "web:2"],
        "web-0 is below the partition"
    );
    let s = status(&client).await;
    assert_eq!(s.current_revision, first_revision);
    assert_ne!(s.update_revision, first_revision);
    assert_eq!(s.current_replicas, 1);
    let revisions = client
        .list::<ControllerRevision>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let mut recorded: Vec<(i64, String)> = revisions
        .items
        .iter()
        .map(|r| (r.revision, r.metadata.name.clone()))
        .collect();
    recorded.sort();
    assert_eq!(
        recorded,
        [(1, first_revision.clone()), (2, s.update_revision.clone())]
    );

    // The partition lowered to 0: web-0 follows, and the update revision becomes current.
    let mut sts: StatefulSet = client.get("ns", "web").await.unwrap();
    let rolling = sts.spec.update_strategy.as_mut().unwrap();
    rolling.rolling_update.as_mut().unwrap().partition = Some(0);
    client.update(&sts).await.unwrap();
    settles_at(&client, &["web-0*", "web-1", "web-2"]).await;
    let_go(&client, "web-0").await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    run_ready(&client, "web-0").await;
    eventually("rolled out", || async {
        let s = status(&client).await;
        s.current_revision == s.update_revision && s.current_replicas == 3
    })
    .await;

    // Scale down: from the highest ordinal, each once the one above it is gone.
    let mut sts: StatefulSet = client.get("ns", "web").await.unwrap();
    sts.spec.replicas = Some(1);
    client.update(&sts).await.unwrap();
    settles_at(&client, &["web-0", "web-1", "web-2*"]).await;
    let_go(&client, "web-2").await;
    settles_at(&client, &["web-0", "web-1*"]).await;
    let_go(&client, "web-1").await;
    settles_at(&client, &["web-0"]).await;
    eventually("1 replica", || async {
        status(&client).await.replicas == 1
    })
    .await;

    // Deleting the set deletes its pods and revisions (the garbage collector).
    client
        .delete::<StatefulSet>("ns", "web", &DeleteOptions::default())
        .await
        .unwrap();
    settles_at(&client, &["web-0*"]).await;
    let_go(&client, "web-0").await;
    eventually("revisions gone", || async {
        client
            .list::<ControllerRevision>(Some("ns"), &ListOptions::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    settles_at(&client, &[]).await;
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn parallel_sets_create_and_delete_all_at_once() {
    let client = LocalClient::new(MemStore::new());
    let mut sts = stateful_set(3, "web:1");
    sts.spec.pod_management_policy =
        Some(orchestra_api::resources::PodManagementPolicyType::Parallel);
    client.create(&sts).await.unwrap();
    let (stop, task) = start(&client);
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    let mut sts: StatefulSet = client.get("ns", "web").await.unwrap();
    sts.spec.replicas = Some(0);
    client.update(&sts).await.unwrap();
    settles_at(&client, &[]).await;
    let _ = stop.send(());
    task.await.unwrap();
}
