//! The Deployment controller with the ReplicaSet controller over LocalClient in paused time,
//! with a stand-in kubelet that makes pods ready: a rolling update never exceeds maxSurge nor
//! drops below the availability maxUnavailable allows; Recreate never runs old and new pods
//! together; revisions are recorded.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use std::time::Duration;

use orchestra_api::registry::{ListOptions, WatchEvent, WatchOptions};
use orchestra_api::resources::{
    ConditionStatus, Deployment, DeploymentStrategy, DeploymentStrategyType, Pod, PodCondition,
    PodPhase, PodStatus, ReplicaSet,
};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::deployment::plan::REVISION_ANNOTATION;
use orchestra_controller::controllers::deployment::progress::{
    DEADLINE_EXCEEDED, NEW_RS_AVAILABLE, PAUSED, RolloutStatus, rollout_status,
};
use orchestra_controller::controllers::deployment::rollback::{Rollback, rollback};
use orchestra_controller::controllers::{DeploymentController, ReplicaSetController};
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
