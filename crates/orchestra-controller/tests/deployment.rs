//! The Deployment controller with the ReplicaSet controller over LocalClient in paused time,
//! with a stand-in kubelet that makes pods ready: a rolling update never exceeds maxSurge nor
//! drops below the availability maxUnavailable allows; Recreate never runs old and new pods
//! together; revisions are recorded. Adoption: matching orphan replica sets are adopted (also
//! one that appears later), one relabelled out of the selector is released, another
//! controller's is left alone, and a deployment deleted with orphan propagation and created
//! again takes its replica sets and their pods back.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use std::time::Duration;

use orchestra_api::registry::{
    DeleteOptions, ListOptions, PropagationPolicy, WatchEvent, WatchOptions,
};
use orchestra_api::resources::{
    ConditionStatus, Deployment, DeploymentStrategy, DeploymentStrategyType, Pod, PodCondition,
    PodPhase, PodStatus, ReplicaSet,
};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, OwnerReference, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::deployment::plan::{REVISION_ANNOTATION, new_replica_set};
use orchestra_controller::controllers::deployment::progress::{
    DEADLINE_EXCEEDED, NEW_RS_AVAILABLE, PAUSED, RolloutStatus, rollout_status,
};
use orchestra_controller::controllers::deployment::rollback::{Rollback, rollback};
use orchestra_controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra_controller::controllers::{DeploymentController, ReplicaSetController};
use orchestra_controller::manager::selected_controllers;
use orchestra_store::MemStore;
use support::{eventually, start};

fn deployment(replicas: i32, image: &str) -> Deployment {
    let mut d = Deployment {
        metadata: ObjectMeta::namespaced("ns", "web"),
        ..Deployment::default()
    };
    d.spec.replicas = Some(replicas);
    d.spec.selector = LabelSelector::match_labels([("app", "web")]);
    d.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    d.spec.template.spec = testing::pod("ns", "x", "web").spec;
    d.spec.template.spec.containers[0].image = image.into();
    d
}

/// Marks every pod ready 30 ms (virtual) after it appears, as a kubelet would after starting it.
fn kubelet(client: LocalClient) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let pods = client
                .list::<Pod>(Some("ns"), &ListOptions::default())
                .await
                .unwrap();
            for mut pod in pods.items {
                if pod.status.is_some() || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                // A broken image never starts (for the progress deadline).
                if pod.spec.containers[0].image.ends_with(":broken") {
                    continue;
                }
                pod.status = Some(PodStatus {
                    phase: Some(PodPhase::Running),
                    pod_ip: "10.0.0.1".into(),
                    conditions: vec![PodCondition {
                        type_: "Ready".into(),
                        status: ConditionStatus::True,
                        ..PodCondition::default()
                    }],
                    ..PodStatus::default()
                });
                // A pod deleted meanwhile is fine to miss.
                let _ = client.update_status(&pod).await;
            }
        }
    })
}

struct Sample {
    spec_total: i32,
    ready: usize,
    images: Vec<String>,
}

async fn sample(client: &LocalClient) -> Sample {
    let sets = client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let pods = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let live: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let mut images: Vec<String> = live
        .iter()
        .map(|p| p.spec.containers[0].image.clone())
        .collect();
    images.sort();
    images.dedup();
    Sample {
        spec_total: sets
            .items
            .iter()
            .map(|rs| rs.spec.replicas.unwrap_or(0))
            .sum(),
        ready: live
            .iter()
            .filter(|p| orchestra_controller::controllers::pods::is_ready(p))
            .count(),
        images,
    }
}

async fn rolled_out(client: &LocalClient, image: &str, replicas: usize) -> bool {
    let d: Deployment = client.get("ns", "web").await.unwrap();
    let status = d.status.unwrap_or_default();
    let s = sample(client).await;
    s.images == [image]
        && s.ready == replicas
        && status.updated_replicas == Some(replicas as i32)
        && status.available_replicas == Some(replicas as i32)
        && status.replicas == Some(replicas as i32)
}

async fn set_image(client: &LocalClient, image: &str) {
    let mut d: Deployment = client.get("ns", "web").await.unwrap();
    d.spec.template.spec.containers[0].image = image.into();
    client.update(&d).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_rolling_update_stays_within_max_surge_and_max_unavailable() {
    let client = LocalClient::new(MemStore::new());
    client.create(&deployment(8, "web:v1")).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let deployments = start(DeploymentController::controller(&informers));
    let replica_sets = start(ReplicaSetController::controller(&informers).concurrency(2));
    let kubelet = kubelet(client.clone());
    eventually("v1 rolled out", || rolled_out(&client, "web:v1", 8)).await;

    set_image(&client, "web:v2").await;
    // 8 replicas, 25% each: at most 10 asked for, at least 6 ready, at every moment.
    let mut samples = 0;
    loop {
        let s = sample(&client).await;
        assert!(
            s.spec_total <= 10,
            "maxSurge exceeded: {} pods asked for",
            s.spec_total
        );
        assert!(s.ready >= 6, "maxUnavailable exceeded: {} ready", s.ready);
        samples += 1;
        if rolled_out(&client, "web:v2", 8).await {
            break;
        }
        assert!(samples < 100_000, "the rollout did not finish");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(samples > 10, "the rollout took steps: {samples} samples");

    let d: Deployment = client.get("ns", "web").await.unwrap();
    assert_eq!(d.metadata.annotations[REVISION_ANNOTATION], "2");
    let sets = client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let mut scaled: Vec<(i32, String)> = sets
        .items
        .iter()
        .map(|rs| {
            (
                rs.spec.replicas.unwrap_or(0),
                rs.metadata.annotations[REVISION_ANNOTATION].clone(),
            )
        })
        .collect();
    scaled.sort();
    assert_eq!(scaled, [(0, "1".to_owned()), (8, "2".to_owned())]);
    kubelet.abort();
    deployments.stop().await;
    replica_sets.stop().await;
}

#[tokio::test(start_paused = true)]
async fn recreate_never_runs_old_and_new_pods_together() {
    let client = LocalClient::new(MemStore::new());
    let mut d = deployment(3, "web:v1");
    d.spec.strategy = Some(DeploymentStrategy {
        type_: Some(DeploymentStrategyType::Recreate),
        rolling_update: None,
    });
    client.create(&d).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let deployments = start(DeploymentController::controller(&informers));
    let replica_sets = start(ReplicaSetController::controller(&informers));
    let kubelet = kubelet(client.clone());
    eventually("v1 rolled out", || rolled_out(&client, "web:v1", 3)).await;

    // Follow every pod change in order: the live pods never mix images.
    let list = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let mut live: BTreeMap<String, String> = list
        .items
        .iter()
        .map(|p| (p.metadata.name.clone(), p.spec.containers[0].image.clone()))
        .collect();
    let mut events = client
        .watch::<Pod>(
            Some("ns"),
            &WatchOptions::from_version(list.resource_version),
        )
        .await
        .unwrap();
    set_image(&client, "web:v2").await;
    let mut saw_none = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !rolled_out(&client, "web:v2", 3).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollout stalled"
        );
        let next = tokio::select! {
            next = events.next() => next,
            // Status changes are not pod events: look again now and then.
            () = tokio::time::sleep(Duration::from_millis(5)) => continue,
        };
        match next.expect("watch open").expect("watch event") {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                live.insert(p.metadata.name.clone(), p.spec.containers[0].image.clone());
            }
            WatchEvent::Deleted(p) => {
                live.remove(&p.metadata.name);
            }
            WatchEvent::Bookmark(_) => {}
        }
        let images: BTreeSet<&String> = live.values().collect();
        assert!(images.len() <= 1, "old and new together: {images:?}");
        saw_none |= images.is_empty();
    }
    assert!(saw_none, "all old pods went before new ones came");
    kubelet.abort();
    deployments.stop().await;
    replica_sets.stop().await;
}

async fn progressing(client: &LocalClient) -> Option<(ConditionStatus, String)> {
    let d: Deployment = client.get("ns", "web").await.unwrap();
    d.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| (c.status, c.reason))
}

#[tokio::test(start_paused = true)]
async fn a_stalled_rollout_exceeds_its_progress_deadline_and_rolls_back() {
    let client = LocalClient::new(MemStore::new());
    let mut d = deployment(4, "web:v1");
    d.spec.progress_deadline_seconds = Some(30);
    client.create(&d).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let deployments = start(DeploymentController::controller(&informers));
    let replica_sets = start(ReplicaSetController::controller(&informers));
    let kubelet = kubelet(client.clone());
    eventually("v1 rolled out", || async {
        rolled_out(&client, "web:v1", 4).await
            && progressing(&client).await == Some((ConditionStatus::True, NEW_RS_AVAILABLE.into()))
    })
    .await;

    set_image(&client, "web:broken").await;
    let changed = tokio::time::Instant::now();
    eventually("the deadline passes", || async {
        progressing(&client).await == Some((ConditionStatus::False, DEADLINE_EXCEEDED.into()))
    })
    .await;
    let waited = changed.elapsed();
    assert!(
        waited >= Duration::from_secs(29) && waited <= Duration::from_secs(33),
        "timed out after {waited:?}, not the 30 s deadline"
    );
    let stalled: Deployment = client.get("ns", "web").await.unwrap();
    assert!(matches!(rollout_status(&stalled), RolloutStatus::Failed(_)));
    assert_eq!(
        sample(&client).await.ready,
        3,
        "maxUnavailable kept 3 of 4 old pods"
    );

    // Undo: back to revision 1's template, which becomes revision 3.
    let sets: Vec<ReplicaSet> = client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items;
    let Rollback::To { revision, template } = rollback(&stalled, &sets, None).unwrap() else {
        panic!("a rollback to revision 1");
    };
    assert_eq!(revision, 1);
    let mut undone = stalled.clone();
    undone.spec.template = *template;
    client.update(&undone).await.unwrap();
    eventually("v1 back", || async {
        rolled_out(&client, "web:v1", 4).await
            && progressing(&client).await == Some((ConditionStatus::True, NEW_RS_AVAILABLE.into()))
    })
    .await;
    let d: Deployment = client.get("ns", "web").await.unwrap();
    assert_eq!(d.metadata.annotations[REVISION_ANNOTATION], "3");
    assert!(matches!(rollout_status(&d), RolloutStatus::Done(_)));
    kubelet.abort();
    deployments.stop().await;
    replica_sets.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_paused_deployment_rolls_out_only_when_resumed() {
    let client = LocalClient::new(MemStore::new());
    let mut d = deployment(2, "web:v1");
    d.spec.progress_deadline_seconds = Some(30);
    client.create(&d).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let deployments = start(DeploymentController::controller(&informers));
    let replica_sets = start(ReplicaSetController::controller(&informers));
    let kubelet = kubelet(client.clone());
    eventually("v1 rolled out", || rolled_out(&client, "web:v1", 2)).await;

    let mut d: Deployment = client.get("ns", "web").await.unwrap();
    d.spec.paused = true;
    d.spec.template.spec.containers[0].image = "web:v2".into();
    client.update(&d).await.unwrap();
    eventually("paused", || async {
        progressing(&client).await == Some((ConditionStatus::Unknown, PAUSED.into()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await; // twice the deadline
    let sets = client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(sets.items.len(), 1, "no new replica set while paused");
    assert_eq!(sample(&client).await.images, ["web:v1"]);
    assert_eq!(
        progressing(&client).await,
        Some((ConditionStatus::Unknown, PAUSED.into())),
        "no deadline while paused"
    );

    let mut d: Deployment = client.get("ns", "web").await.unwrap();
    d.spec.paused = false;
    client.update(&d).await.unwrap();
    eventually("v2 rolled out", || async {
        rolled_out(&client, "web:v2", 2).await
            && progressing(&client).await == Some((ConditionStatus::True, NEW_RS_AVAILABLE.into()))
    })
    .await;
    kubelet.abort();
    deployments.stop().await;
    replica_sets.stop().await;
}

/// The replica sets by name: (uid, the uid of their controller).
async fn replica_sets(client: &LocalClient) -> BTreeMap<String, (String, Option<String>)> {
    client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| {
            let controller = rs.metadata.controller_ref().map(|o| o.uid.clone());
            (rs.metadata.name, (rs.metadata.uid, controller))
        })
        .collect()
}

/// An orphan replica set as `d` would make it with its current template.
fn orphan_replica_set(d: &Deployment) -> ReplicaSet {
    let mut rs = new_replica_set(d, 2, 1);
    rs.metadata.owner_references.clear();
    rs
}

#[tokio::test(start_paused = true)]
async fn adopts_matching_orphan_replica_sets_releases_relabelled_ones_and_never_steals() {
    let client = LocalClient::new(MemStore::new());
    // The deployment is stored first (with its defaults), its controller started later (alone:
    // no replica set controller, so it only claims and never scales): an orphan replica set
    // of its current template, and one of another controller that matches its selector too.
    let d = client.create(&deployment(2, "web:v1")).await.unwrap();
    let uid = d.metadata.uid.clone();
    let orphan = client.create(&orphan_replica_set(&d)).await.unwrap();
    let mut theirs = ReplicaSet {
        metadata: ObjectMeta::namespaced("ns", "someone-else").with_label("app", "web"),
        ..ReplicaSet::default()
    };
    theirs.spec.selector = LabelSelector::match_labels([("app", "web")]);
    theirs.spec.template = d.spec.template.clone();
    theirs.metadata.owner_references = vec![OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Other".into(),
        name: "other".into(),
        uid: "other-uid".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }];
    let theirs = client.create(&theirs).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let deployments = start(DeploymentController::controller(&informers));

    let name = orphan.metadata.name.clone();
    eventually("the orphan adopted", || async {
        replica_sets(&client).await[&name].1.as_deref() == Some(uid.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let all = replica_sets(&client).await;
    assert_eq!(
        all,
        BTreeMap::from([
            (
                name.clone(),
                (orphan.metadata.uid.clone(), Some(uid.clone()))
            ),
            (
                "someone-else".to_owned(),
                (theirs.metadata.uid.clone(), Some("other-uid".to_owned()))
            ),
        ]),
        "adopted as the new replica set (none created), another controller's left alone"
    );

    // An orphan of an older template that appears later is heard of through the selector
    // and adopted too.
    let mut older = deployment(2, "web:v0");
    older.metadata.uid = uid.clone();
    let mut old_rs = orphan_replica_set(&older);
    old_rs.spec.replicas = Some(0);
    client.create(&old_rs).await.unwrap();
    let old_name = old_rs.metadata.name.clone();
    eventually("the older orphan adopted", || async {
        replica_sets(&client).await[&old_name].1.as_deref() == Some(uid.as_str())
    })
    .await;

    // Relabelled out of the selector, it is released (not deleted).
    let mut relabelled: ReplicaSet = client.get("ns", &old_name).await.unwrap();
    relabelled
        .metadata
        .labels
        .insert("app".into(), "other".into());
    client.update(&relabelled).await.unwrap();
    eventually("released", || async {
        replica_sets(&client)
            .await
            .get(&old_name)
            .is_some_and(|rs| rs.1.is_none())
    })
    .await;
    assert_eq!(
        replica_sets(&client).await["someone-else"].1.as_deref(),
        Some("other-uid")
    );
    deployments.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deployment_deleted_with_orphan_propagation_and_recreated_takes_its_replica_sets_back() {
    let client = LocalClient::new(MemStore::new());
    let first = client.create(&deployment(3, "web:v1")).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let set = selected_controllers(
        &informers,
        NodeLifecycleConfig::default(),
        &["deployment", "replicaset", "garbagecollector"],
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(set.run(async move {
        let _ = stopped.await;
    }));
    let kubelet = kubelet(client.clone());
    eventually("v1 rolled out", || rolled_out(&client, "web:v1", 3)).await;
    let pod_uids = || async {
        let mut uids: Vec<String> = client
            .list::<Pod>(Some("ns"), &ListOptions::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| p.metadata.uid)
            .collect();
        uids.sort();
        uids
    };
    let pods_before = pod_uids().await;
    let sets_before = replica_sets(&client).await;
    assert_eq!(sets_before.len(), 1, "{sets_before:?}");

    // `kubectl delete --cascade=orphan`: the deployment goes, its replica set stays, ownerless.
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteOptions::default()
    };
    client
        .delete::<Deployment>("ns", "web", &orphan)
        .await
        .unwrap();
    eventually("the replica set orphaned", || async {
        client.get::<Deployment>("ns", "web").await.is_err()
            && replica_sets(&client)
                .await
                .values()
                .all(|rs| rs.1.is_none())
    })
    .await;

    // The same deployment again: it adopts the replica set, whose pods keep running.
    let second = client.create(&deployment(3, "web:v1")).await.unwrap();
    assert_ne!(second.metadata.uid, first.metadata.uid);
    eventually("the replica set adopted and rolled out", || async {
        replica_sets(&client)
            .await
            .values()
            .all(|rs| rs.1.as_deref() == Some(second.metadata.uid.as_str()))
            && rolled_out(&client, "web:v1", 3).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let sets_after = replica_sets(&client).await;
    assert_eq!(
        sets_after.keys().collect::<Vec<_>>(),
        sets_before.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        sets_after.values().map(|rs| &rs.0).collect::<Vec<_>>(),
        sets_before.values().map(|rs| &rs.0).collect::<Vec<_>>(),
        "the same replica set"
    );
    assert_eq!(pod_uids().await, pods_before, "no pod restarted");
    kubelet.abort();
    let _ = stop.send(());
    task.await.unwrap();
}
