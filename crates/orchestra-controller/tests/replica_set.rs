//! The ReplicaSet controller over LocalClient in paused time: scaling up and down, adoption
//! and release, status, slow start, and (proptest) convergence under random pod deletions and
//! API conflicts.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use orchestra_api::registry::{DeleteOptions, ListOptions};
use orchestra_api::resources::{
    ConditionStatus, Pod, PodCondition, PodPhase, PodStatus, ReplicaSet,
};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::ReplicaSetController;
use orchestra_store::MemStore;
use proptest::prelude::*;
use support::{eventually, eventually_within, flaky_client, start};

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    let mut rs = ReplicaSet {
        metadata: ObjectMeta::namespaced("ns", name),
        ..ReplicaSet::default()
    };
    rs.spec.replicas = Some(replicas);
    rs.spec.selector = LabelSelector::match_labels([("app", name)]);
    rs.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    rs.spec.template.spec = testing::pod("ns", "x", name).spec;
    rs
}

/// The active pods `rs` controls.
async fn owned<C: Client>(client: &C, rs: &str) -> Vec<Pod> {
    let rs: ReplicaSet = client.get("ns", rs).await.unwrap();
    let pods = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    pods.items
        .into_iter()
        .filter(|p| {
            p.metadata
                .controller_ref()
                .is_some_and(|o| o.uid == rs.metadata.uid)
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn status<C: Client>(client: &C, rs: &str) -> (i32, Option<i32>) {
    let rs: ReplicaSet = client.get("ns", rs).await.unwrap();
    rs.status
        .map_or((-1, None), |s| (s.replicas, s.ready_replicas))
}

async fn converged<C: Client>(client: &C, rs: &str, replicas: usize) -> bool {
    owned(client, rs).await.len() == replicas && status(client, rs).await.0 == replicas as i32
}

async fn mark_ready<C: Client>(client: &C, name: &str) {
    let mut pod: Pod = client.get("ns", name).await.unwrap();
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

#[tokio::test(start_paused = true)]
async fn creates_replicas_reports_status_and_scales_down_not_ready_first() {
    let client = LocalClient::new(MemStore::new());
    client.create(&replica_set("web", 5)).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(ReplicaSetController::controller(&informers).concurrency(2));
    eventually("5 pods and status", || converged(&client, "web", 5)).await;
    let pods = owned(&client, "web").await;
    assert!(pods.iter().all(|p| p.metadata.name.starts_with("web-")));
    assert!(pods.iter().all(|p| p.metadata.labels["app"] == "web"));

    let mut names: Vec<String> = pods.iter().map(|p| p.metadata.name.clone()).collect();
    names.sort();
    for name in &names[..2] {
        mark_ready(&client, name).await;
    }
    eventually("2 ready", || async {
        status(&client, "web").await == (5, Some(2))
    })
    .await;

    let mut rs: ReplicaSet = client.get("ns", "web").await.unwrap();
    rs.spec.replicas = Some(2);
    client.update(&rs).await.unwrap();
    eventually("scaled to 2", || converged(&client, "web", 2)).await;
    let mut left: Vec<String> = owned(&client, "web")
        .await
        .into_iter()
        .map(|p| p.metadata.name)
        .collect();
    left.sort();
    assert_eq!(left, names[..2], "the not-ready pods went first");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&testing::pod("ns", "orphan", "web"))
        .await
        .unwrap();
    client
        .create(&testing::pod("ns", "stranger", "db"))
        .await
        .unwrap();
    client.create(&replica_set("web", 3)).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(ReplicaSetController::controller(&informers));
    eventually("3 pods", || converged(&client, "web", 3)).await;
    let pods = owned(&client, "web").await;
    assert!(pods.iter().any(|p| p.metadata.name == "orphan"), "adopted");
    let stranger: Pod = client.get("ns", "stranger").await.unwrap();
    assert!(stranger.metadata.owner_references.is_empty());
    let pod_count = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(
        pod_count, 4,
        "two created, one adopted, the stranger left alone"
    );

    let mut orphan: Pod = client.get("ns", "orphan").await.unwrap();
    orphan.metadata.labels.insert("app".into(), "debug".into());
    client.update(&orphan).await.unwrap();
    eventually("released and replaced", || async {
        let orphan: Pod = client.get("ns", "orphan").await.unwrap();
        orphan.metadata.owner_references.is_empty() && converged(&client, "web", 3).await
    })
    .await;

    // An orphan that appears later is adopted, and an extra pod is deleted instead.
    client
        .create(&testing::pod("ns", "late", "web"))
        .await
        .unwrap();
    eventually("adopted, then back to 3", || async {
        let late: Option<Pod> = client.get("ns", "late").await.ok();
        let adopted_or_gone = late.is_none_or(|p| p.metadata.controller_ref().is_some());
        adopted_or_gone && converged(&client, "web", 3).await
    })
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn creation_slow_starts_and_a_failing_batch_stops_the_rest() {
    let flaky = flaky_client(LocalClient::new(MemStore::new()));
    flaky.inner.create(&replica_set("web", 10)).await.unwrap();
    flaky.hook.creates_succeed(Some(0));
    let informers = SharedInformers::new(flaky.clone());
    let running = start(ReplicaSetController::controller(&informers));
    eventually("four syncs tried", || async {
        flaky.hook.create_attempts().len() >= 4
    })
    .await;
    let attempts = flaky.hook.create_attempts();
    let gaps: Vec<Duration> = attempts.windows(2).take(3).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [5, 10, 20].map(Duration::from_millis),
        "each sync stops after its failing first batch of 1 (not 10 calls), then backs off"
    );

    // Once creates work again, the replica set fills up.
    flaky.hook.creates_succeed(None);
    eventually("10 pods", || converged(&flaky.inner, "web", 10)).await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_replica_sets_share_the_pod_cache_and_keep_to_their_own() {
    let client = LocalClient::new(MemStore::new());
    client.create(&replica_set("web", 2)).await.unwrap();
    client.create(&replica_set("api", 3)).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(ReplicaSetController::controller(&informers).concurrency(4));
    eventually("both converge", || async {
        converged(&client, "web", 2).await && converged(&client, "api", 3).await
    })
    .await;
    let total = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(total, 5);
    running.stop().await;
}

#[derive(Clone, Debug)]
enum Disturbance {
    /// Delete the i-th owned pod (modulo their number).
    DeletePod(usize),
    /// Let this much time pass.
    Wait(u64),
    /// Scale to this many replicas.
    Scale(i32),
}

fn disturbance() -> impl Strategy<Value = Disturbance> {
    prop_oneof![
        4 => (0usize..16).prop_map(Disturbance::DeletePod),
        3 => (1u64..200).prop_map(Disturbance::Wait),
        1 => (0i32..8).prop_map(Disturbance::Scale),
    ]
}

fn converges(replicas: i32, conflicts: Vec<bool>, disturbances: Vec<Disturbance>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let flaky = flaky_client(LocalClient::new(MemStore::new()));
        let client = flaky.inner.clone();
        client.create(&replica_set("web", replicas)).await.unwrap();
        flaky.hook.plan_writes(conflicts);
        let informers = SharedInformers::new(flaky.clone());
        let running = start(ReplicaSetController::controller(&informers).concurrency(2));
        let mut desired = replicas;
        for step in disturbances {
            match step {
                Disturbance::DeletePod(i) => {
                    let pods = owned(&client, "web").await;
                    if !pods.is_empty() {
                        let name = &pods[i % pods.len()].metadata.name;
                        // The controller may have deleted it first.
                        let _ = client
                            .delete::<Pod>("ns", name, &DeleteOptions::default())
                            .await;
                    }
                }
                Disturbance::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Disturbance::Scale(n) => {
                    // A conflict with the controller's status write is retried, as a user would.
                    loop {
                        let mut rs: ReplicaSet = client.get("ns", "web").await.unwrap();
                        rs.spec.replicas = Some(n);
                        if client.update(&rs).await.is_ok() {
                            break;
                        }
                    }
                    desired = n;
                }
            }
        }
        let want = usize::try_from(desired).unwrap();
        eventually_within("convergence", Duration::from_secs(600), || {
            converged(&client, "web", want)
        })
        .await;
        // And it stays there: no late duplicate creations or deletions.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(owned(&client, "web").await.len(), want);
        running.stop().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_replica_set_converges_under_deletions_and_conflicts(
        replicas in 0i32..8,
        conflicts in proptest::collection::vec(proptest::bool::weighted(0.4), 0..40),
        disturbances in proptest::collection::vec(disturbance(), 0..25),
    ) {
        converges(replicas, conflicts, disturbances);
    }
}
