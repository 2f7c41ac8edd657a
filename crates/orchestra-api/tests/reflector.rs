//! The reflector fed by a watcher over `LocalClient` and `MemStore`: after seeded random
//! sequences of creates, updates, binds and deletes (with watches cut and the store compacted
//! under it), the cache and its indexes equal what the store holds. Paused time throughout.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use orchestra_api::reflector::{self, Store, index};
use orchestra_api::registry::{DeleteOptions, ListOptions};
use orchestra_api::resources::Pod;
use orchestra_api::watcher::faults::FaultyClient;
use orchestra_api::watcher::{self, Backoff, Event, WatcherConfig};
use orchestra_api::{ApiError, Client, LocalClient, OwnerReference, testing};
use orchestra_store::{MemStore, Store as _, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
const NODES: [&str; 3] = ["n0", "n1", "n2"];
const OWNERS: [&str; 3] = ["rs-0", "rs-1", "rs-2"];

fn config() -> WatcherConfig {
    WatcherConfig {
        bookmark_interval: None,
        backoff: Backoff::default().with_jitter(0.0),
        ..WatcherConfig::default()
    }
}

fn sorted(mut pods: Vec<Pod>) -> Vec<Pod> {
    pods.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    pods
}

fn cached(reader: &Store<Pod>) -> Vec<Pod> {
    sorted(reader.list().iter().map(|p| (**p).clone()).collect())
}

fn keys(pods: &[Arc<Pod>]) -> Vec<(String, String)> {
    pods.iter()
        .map(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()))
        .collect()
}

/// Polls the reflector until the cache equals the store (or fails if it stalls).
async fn catch_up<S>(events: &mut S, reader: &Store<Pod>, client: &impl Client) -> Vec<Pod>
where
    S: Stream<Item = Result<Event<Pod>, ApiError>> + Unpin,
{
    let expected = sorted(
        client
            .list::<Pod>(None, &ListOptions::default())
            .await
            .expect("list")
            .items,
    );
    while cached(reader) != expected {
        tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .expect("the reflector stalled before matching the store")
            .expect("the watcher never ends")
            .ok();
    }
    expected
}

/// Every index answer equals a scan of `expected`.
fn check_indexes(reader: &Store<Pod>, expected: &[Pod]) {
    for node in NODES {
        let want: Vec<_> = expected
            .iter()
            .filter(|p| p.spec.node_name == node)
            .map(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()))
            .collect();
        assert_eq!(keys(&reader.by_index("node", node).expect("node")), want);
    }
    for owner in OWNERS {
        let want: Vec<_> = expected
            .iter()
            .filter(|p| p.metadata.controller_ref().is_some_and(|o| o.uid == owner))
            .map(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()))
            .collect();
        assert_eq!(keys(&reader.by_index("owner", owner).expect("owner")), want);
    }
    for namespace in NAMESPACES {
        let count = expected
            .iter()
            .filter(|p| p.metadata.namespace == namespace)
            .count();
        assert_eq!(reader.by_index("ns", namespace).expect("ns").len(), count);
    }
}

fn random_pod(rng: &mut StdRng, namespace: &str, name: &str) -> Pod {
    let mut pod = testing::pod(namespace, name, "web");
    let owner = rng.random_range(0..=OWNERS.len());
    if let Some(uid) = OWNERS.get(owner) {
        pod.metadata.owner_references = vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: (*uid).to_owned(),
            uid: (*uid).to_owned(),
            controller: Some(true),
            ..OwnerReference::default()
        }];
    }
    pod
}

/// One random write; errors that the random choice may cause (AlreadyExists, NotFound,
/// Conflict on a second bind) are part of the game.
async fn random_write(rng: &mut StdRng, client: &impl Client) {
    let namespace = NAMESPACES[rng.random_range(0..NAMESPACES.len())];
    let name = format!("p{}", rng.random_range(0..8));
    match rng.random_range(0..4) {
        0 => {
            let pod = random_pod(rng, namespace, &name);
            let _ = client.create(&pod).await;
        }
        1 => {
            let patch = serde_json::json!({"metadata": {"labels": {"v": rng.random_range(0..100).to_string()}}});
            let _ = client.patch::<Pod>(namespace, &name, &patch).await;
        }
        2 => {
            let node = NODES[rng.random_range(0..NODES.len())];
            let _ = client.bind(namespace, &name, node).await;
        }
        _ => {
            let _ = client
                .delete::<Pod>(namespace, &name, &DeleteOptions::default())
                .await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_cache_equals_the_store_after_random_writes_disconnects_and_compactions() {
    let mut relists = 0;
    for seed in 0..8u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let store = MemStore::new();
        let client = FaultyClient::new(LocalClient::new(store.clone()));
        client.cut_every_watch_after(Some(1 + (seed as usize % 4)));
        let (reader, writer) = reflector::store::<Pod>();
        reader.add_index("node", index::pods_by_node).expect("node");
        reader
            .add_index("owner", index::by_controller_uid::<Pod>)
            .expect("owner");
        let shared = reader.clone();
        let mut events =
            reflector::reflector(writer, watcher::watcher::<Pod, _>(client.clone(), config()))
                .boxed();
        shared
            .add_index("ns", index::by_namespace::<Pod>)
            .expect("ns");
        for round in 0..10 {
            for _ in 0..rng.random_range(1..25) {
                random_write(&mut rng, client.inner()).await;
            }
            if round % 3 == 2 {
                let revision: i64 = client
                    .inner()
                    .list::<Pod>(None, &ListOptions::default())
                    .await
                    .expect("list")
                    .resource_version
                    .parse()
                    .expect("numeric");
                store.compact(revision).await.expect("compact");
            }
            if rng.random_bool(0.3) {
                client.fail_next_watch(ApiError::Internal(StoreError::Closed));
            }
            let expected = catch_up(&mut events, &reader, client.inner()).await;
            assert_eq!(cached(&shared), expected, "seed {seed} round {round}");
            check_indexes(&shared, &expected);
        }
        relists += client.list_calls() - 1;
    }
    assert!(
        relists > 0,
        "compactions under cut watches forced 410s and relists"
    );
}

#[tokio::test(start_paused = true)]
async fn wait_until_ready_returns_after_the_first_complete_list() {
    let client = FaultyClient::new(LocalClient::new(MemStore::new()));
    client
        .create(&testing::pod("ns-a", "a", "web"))
        .await
        .expect("create");
    client.fail_next_list(ApiError::Internal(StoreError::Closed));
    client.fail_next_list(ApiError::Internal(StoreError::Closed));
    let (reader, writer) = reflector::store::<Pod>();
    let events = watcher::watcher::<Pod, _>(client.clone(), config());
    let task = tokio::spawn(reflector::reflector(writer, events).for_each(|_| async {}));
    tokio::task::yield_now().await;
    assert!(!reader.is_ready());
    let started = tokio::time::Instant::now();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move { reader.wait_until_ready().await })
        })
        .collect();
    for waiter in waiters {
        waiter.await.expect("task").expect("ready");
    }
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(800 + 1600),
        "ready right after the list that succeeded"
    );
    assert!(reader.is_ready());
    assert!(reader.get("ns-a", "a").is_some());
    assert!(reader.get("ns-a", "b").is_none());
    task.abort();
}
