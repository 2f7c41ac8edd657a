//! Events expire through store leases (no sweeper), and the recorder deduplicates them,
//! against MemStore and DiskStore with paused time, through LocalClient.

use std::time::Duration;

use futures::StreamExt;
use orchestra_api::events::EventRecorder;
use orchestra_api::registry::{DEFAULT_EVENT_TTL, ListOptions, WatchOptions, reuse_window};
use orchestra_api::resources::{Container, Event, EventSource, Pod, PodSpec};
use orchestra_api::{Client, LocalClient, ObjectMeta, Registry, WatchEvent};
use orchestra_store::{MemStore, Store};

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: "nginx".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

fn recorder(client: &LocalClient) -> EventRecorder<LocalClient> {
    EventRecorder::new(
        client.clone(),
        EventSource {
            component: "test".into(),
            host: String::new(),
        },
    )
}

async fn events(client: &LocalClient) -> Vec<Event> {
    client
        .list::<Event>(Some("default"), &ListOptions::default())
        .await
        .expect("list events")
        .items
}

#[tokio::test(start_paused = true)]
async fn events_expire_after_the_default_hour_and_watchers_see_them_go() {
    let registry = Registry::new(MemStore::new());
    assert_eq!(registry.ttl::<Event>(), Some(DEFAULT_EVENT_TTL));
    assert_eq!(registry.ttl::<Pod>(), None);
    let client = LocalClient::from_registry(registry);
    client.create(&pod("web")).await.unwrap();
    let recorded = recorder(&client)
        .normal(&pod("web"), "Scheduled", "assigned to node-1")
        .await
        .unwrap();
    let mut watch = client
        .watch::<Event>(
            Some("default"),
            &WatchOptions {
                resource_version: Some(recorded.metadata.resource_version.clone()),
                ..WatchOptions::default()
            },
        )
        .await
        .unwrap();
    // Just before the hour: still there.
    tokio::time::sleep(DEFAULT_EVENT_TTL - Duration::from_secs(1)).await;
    assert_eq!(events(&client).await.len(), 1);
    // The lease is the TTL plus the reuse window long: gone after both.
    tokio::time::sleep(reuse_window(DEFAULT_EVENT_TTL) + Duration::from_secs(2)).await;
    assert!(events(&client).await.is_empty());
    match watch.next().await {
        Some(Ok(WatchEvent::Deleted(event))) => {
            assert_eq!(event.metadata.name, recorded.metadata.name)
        }
        other => panic!("expected the event's deletion, got {other:?}"),
    }
    // The pod does not expire.
    client.get::<Pod>("default", "web").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn events_written_close_together_share_one_lease_and_expire_together() {
    let store = MemStore::new();
    let ttl = Duration::from_secs(20);
    let client =
        LocalClient::from_registry(Registry::new(store.clone()).with_ttl::<Event>(Some(ttl)));
    let recorder = recorder(&client);
    for name in ["a", "b", "c"] {
        recorder
            .normal(&pod(name), "Pulled", "image pulled")
            .await
            .unwrap();
    }
    let leases = store.lease_list().await.unwrap();
    assert_eq!(leases.len(), 1, "one shared lease: {leases:?}");
    assert_eq!(
        store
            .lease_time_to_live(leases[0])
            .await
            .unwrap()
            .keys
            .len(),
        3
    );
    // Past the reuse window (1 s for 20 s), a new event gets a new lease.
    tokio::time::sleep(reuse_window(ttl) + Duration::from_millis(10)).await;
    recorder
        .normal(&pod("d"), "Pulled", "image pulled")
        .await
        .unwrap();
    assert_eq!(store.lease_list().await.unwrap().len(), 2);
    tokio::time::sleep(ttl).await;
    let left: Vec<String> = events(&client)
        .await
        .into_iter()
        .map(|e| e.involved_object.name)
        .collect();
    assert_eq!(left, ["d"]);
    tokio::time::sleep(ttl).await;
    assert!(events(&client).await.is_empty());
    assert!(store.lease_list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_repeated_event_is_bumped_lives_on_and_is_recorded_anew_once_expired() {
    let ttl = Duration::from_secs(20);
    let client =
        LocalClient::from_registry(Registry::new(MemStore::new()).with_ttl::<Event>(Some(ttl)));
    let recorder = recorder(&client);
    let web = pod("web");
    let first = recorder
        .warning(&web, "BackOff", "restarting")
        .await
        .unwrap();
    assert_eq!(first.count, Some(1));
    // Bumped every 15 s: each update moves it to a newer lease, so it outlives its first TTL.
    let mut last = first.clone();
    for count in 2..=4 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        last = recorder
            .warning(&web, "BackOff", "restarting")
            .await
            .unwrap();
        assert_eq!(last.metadata.name, first.metadata.name);
        assert_eq!(last.count, Some(count));
        assert_eq!(last.first_timestamp, first.first_timestamp);
        let seconds = |e: &Event| e.last_timestamp.map(|t| t.as_second());
        assert_eq!(
            seconds(&last),
            seconds(&first).map(|s| s + 15 * (i64::from(count) - 1))
        );
    }
    assert_eq!(events(&client).await, [last.clone()]);
    // Quiet for longer than the TTL: it expired; the next one is a new event, count 1.
    tokio::time::sleep(ttl * 2).await;
    assert!(events(&client).await.is_empty());
    let again = recorder
        .warning(&web, "BackOff", "restarting")
        .await
        .unwrap();
    assert_eq!(again.count, Some(1));
    assert_ne!(again.metadata.name, first.metadata.name);
}

#[tokio::test(start_paused = true)]
async fn events_without_a_ttl_do_not_expire() {
    let store = MemStore::new();
    let client = LocalClient::from_registry(Registry::new(store.clone()).with_ttl::<Event>(None));
    recorder(&client)
        .normal(&pod("web"), "Created", "created")
        .await
        .unwrap();
    assert!(store.lease_list().await.unwrap().is_empty());
    tokio::time::sleep(DEFAULT_EVENT_TTL * 2).await;
    assert_eq!(events(&client).await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn events_expire_on_the_disk_store_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = orchestra_store::DiskStore::open(dir.path()).await.unwrap();
    let ttl = Duration::from_secs(10);
    let client = LocalClient::from_registry(Registry::new(store).with_ttl::<Event>(Some(ttl)));
    recorder(&client)
        .normal(&pod("web"), "Created", "created")
        .await
        .unwrap();
    assert_eq!(events(&client).await.len(), 1);
    tokio::time::sleep(ttl + reuse_window(ttl) + Duration::from_secs(1)).await;
    assert!(events(&client).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_revoked_shared_lease_is_replaced_on_the_next_write() {
    let store = MemStore::new();
    let client = LocalClient::from_registry(Registry::new(store.clone()));
    let recorder = recorder(&client);
    recorder
        .normal(&pod("a"), "Created", "created")
        .await
        .unwrap();
    let lease = store.lease_list().await.unwrap()[0];
    store.lease_revoke(lease).await.unwrap();
    assert!(events(&client).await.is_empty());
    let b = recorder
        .normal(&pod("b"), "Created", "created")
        .await
        .unwrap();
    let leases = store.lease_list().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_ne!(leases[0], lease);
    assert_eq!(events(&client).await, [b]);
}
