//! The StatefulSet controller over LocalClient in paused time, run through the controller
//! manager's selection (with the garbage collector), with the node's part played by the test:
//! it marks pods running and ready, and holds each deleted pod with a finalizer until it lets
//! it go, so that every "wait until it is gone" of the controller is observable.
//!
//! Covered: ordered creation (each pod only once the one before is ready), stable identities
//! (names, labels, hostname and subdomain), scale down from the highest ordinal waiting for
//! each pod to be gone, a rolling update one pod at a time from the top down to the partition,
//! the rest of it once the partition is lowered, the revisions in status and as
//! ControllerRevisions, recreation of a deleted pod under its name, and cascading deletion;
//! adoption of orphan pods named `NAME-ORDINAL` that match the selector, release of pods
//! relabelled out of it, pods of other controllers left alone, no adoption by a set being
//! deleted, and a set deleted with orphan propagation and created again taking its running
//! pods and revisions back without restarting them; an adopted pod lacking its identity
//! labels, or with wrong ones, repaired in place (the same pod, not restarted).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use orchestra_api::registry::{DeleteOptions, ListOptions, PropagationPolicy};
use orchestra_api::resources::{
    ConditionStatus, ControllerRevision, Pod, PodCondition, PodPhase, PodStatus, ReplicaSet,
    STATEFUL_SET_POD_INDEX_LABEL, STATEFUL_SET_POD_NAME_LABEL, StatefulSet, StatefulSetStatus,
};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, OwnerReference, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::history::{
    REVISION_HASH_LABEL, current_hash, revision_name,
};
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

/// The uid of the pod's controller, if the pod exists and has one.
async fn controller_uid(client: &LocalClient, name: &str) -> Option<String> {
    let pod: Pod = client.get("ns", name).await.ok()?;
    pod.metadata.controller_ref().map(|owner| owner.uid.clone())
}

#[tokio::test(start_paused = true)]
async fn adopts_matching_orphans_releases_relabelled_pods_and_never_steals() {
    let client = LocalClient::new(MemStore::new());
    // A running orphan that is one of the set's identities, one that only matches the
    // selector (not NAME-ORDINAL), and a pod of another controller with a condemned ordinal
    // (the set would delete it, were it its own).
    // (It carries the revision of the set's template, as a pod the set made would: an adopted
    // pod of another revision is replaced by the rolling update, as in Kubernetes. The set is
    // created first, as stored with its defaults; its controller starts later.)
    let sts = client.create(&stateful_set(2, "web:1")).await.unwrap();
    let mut orphan = testing::pod("ns", "web-0", "web");
    orphan.metadata.labels.insert(
        REVISION_HASH_LABEL.into(),
        revision_name(&sts, &current_hash(&sts)),
    );
    let orphan = client.create(&orphan).await.unwrap();
    run_ready(&client, "web-0").await;
    client
        .create(&testing::pod("ns", "web-x", "web"))
        .await
        .unwrap();
    // (The ReplicaSet exists, so that the garbage collector keeps its pod; no ReplicaSet
    // controller runs.)
    let mut other = ReplicaSet {
        metadata: ObjectMeta::namespaced("ns", "someone-else"),
        ..ReplicaSet::default()
    };
    other.spec.selector = LabelSelector::match_labels([("app", "web")]);
    other.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    other.spec.template.spec = testing::pod("ns", "x", "web").spec;
    let other = client.create(&other).await.unwrap();
    let other_uid = other.metadata.uid.clone();
    let mut theirs = testing::pod("ns", "web-3", "web");
    theirs.metadata.owner_references = vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "someone-else".into(),
        uid: other_uid.clone(),
        controller: Some(true),
        block_owner_deletion: None,
    }];
    client.create(&theirs).await.unwrap();
    let (stop, task) = start(&client);

    // web-0 is adopted (the same pod, running: so web-1 follows at once), web-x and web-3
    // are left alone.
    settles_at(&client, &["web-0", "web-1", "web-3", "web-x"]).await;
    let all = pods(&client).await;
    assert_eq!(
        all["web-0"].metadata.uid, orphan.metadata.uid,
        "not recreated"
    );
    let reference = all["web-0"].metadata.controller_ref().unwrap().clone();
    assert_eq!(
        (reference.kind.as_str(), reference.uid.as_str()),
        ("StatefulSet", sts.metadata.uid.as_str())
    );
    assert_eq!(
        controller_uid(&client, "web-3").await.as_deref(),
        Some(other_uid.as_str())
    );
    assert!(all["web-x"].metadata.owner_references.is_empty());
    run_ready(&client, "web-1").await;
    eventually("2 ready", || async {
        status(&client).await.ready_replicas == 2
    })
    .await;

    // web-0 relabelled out of the selector is released; the set cannot make a new web-0 while
    // the released pod holds the name (its creation fails, so no status is written meanwhile).
    let mut relabelled: Pod = client.get("ns", "web-0").await.unwrap();
    relabelled
        .metadata
        .labels
        .insert("app".into(), "debug".into());
    client.update(&relabelled).await.unwrap();
    eventually("web-0 released", || async {
        let pod: Pod = client.get("ns", "web-0").await.unwrap();
        pod.metadata.owner_references.is_empty()
    })
    .await;
    settles_at(&client, &["web-0", "web-1", "web-3", "web-x"]).await;
    assert_eq!(controller_uid(&client, "web-0").await, None);

    // Once the released pod is gone, the set makes its own web-0.
    client
        .delete::<Pod>("ns", "web-0", &DeleteOptions::default())
        .await
        .unwrap();
    let_go(&client, "web-0").await;
    eventually("a new web-0", || async {
        controller_uid(&client, "web-0").await.as_deref() == Some(sts.metadata.uid.as_str())
    })
    .await;
    assert_ne!(
        pods(&client).await["web-0"].metadata.uid,
        orphan.metadata.uid
    );
    assert_eq!(
        controller_uid(&client, "web-3").await.as_deref(),
        Some(other_uid.as_str())
    );
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_set_being_deleted_adopts_nothing() {
    let client = LocalClient::new(MemStore::new());
    client.create(&stateful_set(1, "web:1")).await.unwrap();
    let (stop, task) = start(&client);
    settles_at(&client, &["web-0"]).await;
    run_ready(&client, "web-0").await;
    // Foreground deletion holds the set (being deleted) until web-0, which the node holds,
    // is gone; an orphan that would be its web-1 appears meanwhile.
    let foreground = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteOptions::default()
    };
    client
        .delete::<StatefulSet>("ns", "web", &foreground)
        .await
        .unwrap();
    settles_at(&client, &["web-0*"]).await;
    client
        .create(&testing::pod("ns", "web-1", "web"))
        .await
        .unwrap();
    settles_at(&client, &["web-0*", "web-1"]).await;
    assert_eq!(controller_uid(&client, "web-1").await, None);
    let_go(&client, "web-0").await;
    eventually("the set is gone", || async {
        client.get::<StatefulSet>("ns", "web").await.is_err()
    })
    .await;
    settles_at(&client, &["web-1"]).await;
    assert_eq!(controller_uid(&client, "web-1").await, None);
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_set_deleted_with_orphan_propagation_and_recreated_takes_its_pods_back() {
    let client = LocalClient::new(MemStore::new());
    let first = client.create(&stateful_set(3, "web:1")).await.unwrap();
    let (stop, task) = start(&client);
    for (name, expected) in [
        ("web-0", &["web-0"][..]),
        ("web-1", &["web-0", "web-1"]),
        ("web-2", &["web-0", "web-1", "web-2"]),
    ] {
        settles_at(&client, expected).await;
        run_ready(&client, name).await;
    }
    eventually("3 ready", || async {
        status(&client).await.ready_replicas == 3
    })
    .await;
    let before = pods(&client).await;
    let revision = status(&client).await.update_revision;

    // `kubectl delete --cascade=orphan`: the set goes, its pods and revisions stay, ownerless.
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteOptions::default()
    };
    client
        .delete::<StatefulSet>("ns", "web", &orphan)
        .await
        .unwrap();
    eventually("the set is gone", || async {
        client.get::<StatefulSet>("ns", "web").await.is_err()
    })
    .await;
    eventually("everything orphaned", || async {
        let revisions = client
            .list::<ControllerRevision>(Some("ns"), &ListOptions::default())
            .await
            .unwrap()
            .items;
        pods(&client)
            .await
            .values()
            .all(|p| p.metadata.owner_references.is_empty())
            && revisions.len() == 1
            && revisions[0].metadata.owner_references.is_empty()
    })
    .await;

    // The same set again: it adopts the pods and the revision, and restarts nothing.
    let second = client.create(&stateful_set(3, "web:1")).await.unwrap();
    assert_ne!(second.metadata.uid, first.metadata.uid);
    eventually("everything adopted", || async {
        let revisions = client
            .list::<ControllerRevision>(Some("ns"), &ListOptions::default())
            .await
            .unwrap()
            .items;
        let adopted = |meta: &ObjectMeta| {
            meta.controller_ref().map(|o| o.uid.as_str()) == Some(second.metadata.uid.as_str())
        };
        pods(&client).await.values().all(|p| adopted(&p.metadata))
            && revisions.len() == 1
            && adopted(&revisions[0].metadata)
    })
    .await;
    settles_at(&client, &["web-0", "web-1", "web-2"]).await;
    let after = pods(&client).await;
    for (name, pod) in &before {
        assert_eq!(
            after[name].metadata.uid, pod.metadata.uid,
            "{name} restarted"
        );
    }
    eventually("status of the adopted pods", || async {
        let s = status(&client).await;
        s.ready_replicas == 3
            && s.current_replicas == 3
            && s.current_revision == revision
            && s.update_revision == revision
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_adopted_pod_gets_its_identity_labels_repaired_in_place() {
    let client = LocalClient::new(MemStore::new());
    let sts = client.create(&stateful_set(2, "web:1")).await.unwrap();
    // A running orphan web-1 of the set's revision, whose pod-name label names another pod
    // and which lacks the pod-index label.
    let mut orphan = testing::pod("ns", "web-1", "web");
    orphan.metadata.labels.insert(
        REVISION_HASH_LABEL.into(),
        revision_name(&sts, &current_hash(&sts)),
    );
    orphan
        .metadata
        .labels
        .insert(STATEFUL_SET_POD_NAME_LABEL.into(), "web-7".into());
    let orphan = client.create(&orphan).await.unwrap();
    run_ready(&client, "web-1").await;
    let (stop, task) = start(&client);

    eventually("web-1 adopted and repaired", || async {
        let pod: Pod = client.get("ns", "web-1").await.unwrap();
        let label = |key: &str| pod.metadata.labels.get(key).cloned();
        pod.metadata.controller_ref().map(|o| o.uid.clone()) == Some(sts.metadata.uid.clone())
            && label(STATEFUL_SET_POD_NAME_LABEL).as_deref() == Some("web-1")
            && label(STATEFUL_SET_POD_INDEX_LABEL).as_deref() == Some("1")
    })
    .await;
    // web-0 is made meanwhile; once it runs, nothing else happens: web-1 is the same pod,
    // running, never deleted, and keeps the rest of its labels.
    settles_at(&client, &["web-0", "web-1"]).await;
    run_ready(&client, "web-0").await;
    eventually("2 ready", || async {
        status(&client).await.ready_replicas == 2
    })
    .await;
    settles_at(&client, &["web-0", "web-1"]).await;
    let repaired = &pods(&client).await["web-1"];
    assert_eq!(
        repaired.metadata.uid, orphan.metadata.uid,
        "web-1 recreated"
    );
    assert_eq!(
        repaired.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Running)
    );
    assert_eq!(repaired.metadata.labels["app"], "web");
    assert_eq!(
        repaired.metadata.labels[REVISION_HASH_LABEL],
        revision_name(&sts, &current_hash(&sts))
    );
    let _ = stop.send(());
    task.await.unwrap();
}
