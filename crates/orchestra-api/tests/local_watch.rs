//! `LocalClient`'s watches, served by the in-process watch cache: the registry's watch
//! contracts (start points, 410 for compacted versions, selector transitions, bookmarks)
//! hold through the cache, and its index sends a pod's changes only to the watches of its
//! old and new node (and the unindexed ones). Against MemStore and DiskStore, in paused time.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::registry::{
    ApiError, DeleteOptions, ListOptions, WatchEvent, WatchEvents, WatchOptions,
};
use orchestra_api::resources::{Node, Pod};
use orchestra_api::selector::FieldSelector;
use orchestra_api::testing::pod;
use orchestra_api::watch_cache::CacheOptions;
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_store::StoreExt;

/// Runs each named check against a MemStore and a DiskStore client.
macro_rules! both_stores {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                #[tokio::test(start_paused = true)]
                async fn mem_store() {
                    super::$check(orchestra_api::LocalClient::new(orchestra_store::MemStore::new())).await;
                }

                #[tokio::test(start_paused = true)]
                async fn disk_store() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = orchestra_store::DiskStore::open(dir.path()).await.expect("open");
                    super::$check(orchestra_api::LocalClient::new(store)).await;
                }
            }
        )*
    };
}

both_stores!(
    watch_starts_after_the_given_version,
    watch_from_a_compacted_version_is_expired,
    watch_field_selector_transitions,
    watch_all_namespaces,
    bookmarks_arrive_on_the_interval,
    a_pod_moving_between_nodes_leaves_one_watch_and_joins_another,
    watches_of_other_nodes_get_nothing,
    a_watch_that_does_not_read_is_cut_off_and_the_others_go_on,
    watches_share_one_cache,
    watchers_share_one_decoded_object_per_change,
    a_reflector_keeps_the_watch_caches_object,
    lists_and_initial_events_share_the_caches_objects,
    a_reflectors_list_shares_the_caches_objects,
);

async fn next(stream: &mut WatchEvents<Pod>) -> WatchEvent<Pod> {
    stream
        .next()
        .await
        .expect("the watch ended early")
        .expect("watch error")
}

/// Asserts that nothing arrives within an hour (of paused time).
async fn quiet(stream: &mut WatchEvents<Pod>) {
    let waited = tokio::time::timeout(Duration::from_secs(3600), stream.next()).await;
    assert!(waited.is_err(), "expected nothing, got {waited:?}");
}

fn on_node(node: &str, rv: &str) -> WatchOptions {
    WatchOptions {
        field_selector: FieldSelector::equals("spec.nodeName", node),
        ..WatchOptions::from_version(rv)
    }
}

async fn head(client: &LocalClient) -> String {
    client
        .registry()
        .store()
        .status()
        .await
        .expect("status")
        .revision
        .to_string()
}

/// Writes a pod straight to the store (the API refuses to change `spec.nodeName`; the cache
/// must still report such a move exactly).
async fn put_raw(client: &LocalClient, pod: &Pod) -> Pod {
    let key = format!(
        "/registry/pods/{}/{}",
        pod.metadata.namespace, pod.metadata.name
    );
    let json = orchestra_api::to_string(pod).expect("encode");
    let revision = client.registry().store().put(key, json).await.expect("put");
    let mut stored = pod.clone();
    stored.metadata.resource_version = revision.to_string();
    stored
}

async fn watch_starts_after_the_given_version(client: LocalClient) {
    let a = client.create(&pod("default", "a", "web")).await.unwrap();
    let b = client.create(&pod("default", "b", "web")).await.unwrap();
    let mut watch = client
        .watch::<Pod>(
            Some("default"),
            &WatchOptions::from_version(a.metadata.resource_version.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Added(Arc::new(b.clone()))
    );
    let mut from_now = client
        .watch::<Pod>(Some("default"), &WatchOptions::default())
        .await
        .unwrap();
    let c = client.create(&pod("default", "c", "web")).await.unwrap();
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(a)),
        "the current state first"
    );
    assert_eq!(next(&mut from_now).await, WatchEvent::Added(Arc::new(b)));
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(c.clone())),
        "then what changed after it"
    );
    assert_eq!(next(&mut watch).await, WatchEvent::Added(Arc::new(c)));
    let bad = client
        .watch::<Pod>(None, &WatchOptions::from_version("yesterday"))
        .await
        .err()
        .expect("a bad resourceVersion");
    assert_eq!(bad.code(), 400);
}

async fn watch_from_a_compacted_version_is_expired(client: LocalClient) {
    let a = client.create(&pod("default", "a", "web")).await.unwrap();
    // The cache is running and its window holds `a`'s version: still 410, as the store says.
    let mut warm = client
        .watch::<Pod>(
            None,
            &WatchOptions::from_version(a.metadata.resource_version.clone()),
        )
        .await
        .unwrap();
    for name in ["b", "c"] {
        client.create(&pod("default", name, "web")).await.unwrap();
    }
    assert!(matches!(next(&mut warm).await, WatchEvent::Added(_)));
    let head = client.registry().store().status().await.unwrap().revision;
    client.registry().store().compact(head).await.unwrap();
    let options = WatchOptions::from_version(a.metadata.resource_version);
    let result = client.watch::<Pod>(Some("default"), &options).await;
    let err = match result {
        Err(err) => err,
        Ok(mut stream) => stream.next().await.expect("an error").expect_err("expired"),
    };
    assert!(matches!(err, ApiError::Expired(_)), "{err:?}");
}

async fn watch_field_selector_transitions(client: LocalClient) {
    let mut on_node = client
        .watch::<Pod>(Some("default"), &on_node("node-1", "1"))
        .await
        .unwrap();
    client.create(&pod("default", "a", "web")).await.unwrap();
    let bound = client.bind("default", "a", "node-1").await.unwrap();
    let deleted = client
        .delete::<Pod>("default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        next(&mut on_node).await,
        WatchEvent::Added(Arc::new(bound)),
        "the pod starts matching when bound"
    );
    assert_eq!(
        next(&mut on_node).await,
        WatchEvent::Deleted(Arc::new(deleted.object().clone()))
    );
    let err = client
        .watch::<Pod>(
            None,
            &WatchOptions {
                field_selector: FieldSelector::equals("spec.color", "red"),
                ..WatchOptions::default()
            },
        )
        .await
        .err()
        .expect("an unknown field");
    assert_eq!(err.code(), 400);
}

async fn watch_all_namespaces(client: LocalClient) {
    let mut all = client
        .watch::<Pod>(None, &WatchOptions::default())
        .await
        .unwrap();
    let a = client.create(&pod("ns-a", "x", "web")).await.unwrap();
    let b = client.create(&pod("ns-b", "x", "web")).await.unwrap();
    client
        .create(&Node {
            metadata: ObjectMeta::named("n1"),
            ..Node::default()
        })
        .await
        .unwrap();
    assert_eq!(next(&mut all).await, WatchEvent::Added(Arc::new(a)));
    assert_eq!(next(&mut all).await, WatchEvent::Added(Arc::new(b)));
}

async fn bookmarks_arrive_on_the_interval(client: LocalClient) {
    let created = client.create(&pod("default", "a", "web")).await.unwrap();
    let options = WatchOptions {
        bookmark_interval: Some(Duration::from_secs(60)),
        ..WatchOptions::from_version(created.metadata.resource_version.clone())
    };
    let mut watch = client.watch::<Pod>(Some("other"), &options).await.unwrap();
    client.create(&pod("default", "b", "web")).await.unwrap();
    let head = head(&client).await;
    match next(&mut watch).await {
        WatchEvent::Bookmark(rv) => assert_eq!(rv, head),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    assert!(matches!(next(&mut watch).await, WatchEvent::Bookmark(_)));
    let mut silent = client
        .watch::<Pod>(Some("empty"), &WatchOptions::default())
        .await
        .unwrap();
    quiet(&mut silent).await;
}

async fn a_pod_moving_between_nodes_leaves_one_watch_and_joins_another(client: LocalClient) {
    let created = client.create(&pod("default", "a", "web")).await.unwrap();
    let rv = created.metadata.resource_version.clone();
    let mut a = client
        .watch::<Pod>(None, &on_node("node-a", &rv))
        .await
        .unwrap();
    let mut b = client
        .watch::<Pod>(None, &on_node("node-b", &rv))
        .await
        .unwrap();
    let mut all = client
        .watch::<Pod>(None, &WatchOptions::from_version(rv))
        .await
        .unwrap();
    let on_a = client.bind("default", "a", "node-a").await.unwrap();
    let mut moved = on_a.clone();
    moved.spec.node_name = "node-b".into();
    let on_b = put_raw(&client, &moved).await;

    assert_eq!(
        next(&mut a).await,
        WatchEvent::Added(Arc::new(on_a.clone()))
    );
    let mut left = on_a.clone();
    left.metadata.resource_version = on_b.metadata.resource_version.clone();
    assert_eq!(
        next(&mut a).await,
        WatchEvent::Deleted(Arc::new(left)),
        "node-a's watch sees the pod leave, in its last state on node-a"
    );
    assert_eq!(
        next(&mut b).await,
        WatchEvent::Added(Arc::new(on_b.clone()))
    );
    assert_eq!(next(&mut all).await, WatchEvent::Modified(Arc::new(on_a)));
    assert_eq!(next(&mut all).await, WatchEvent::Modified(Arc::new(on_b)));
}

async fn watches_of_other_nodes_get_nothing(client: LocalClient) {
    let rv = head(&client).await;
    let mut other = client
        .watch::<Pod>(None, &on_node("node-c", &rv))
        .await
        .unwrap();
    let mut mine = client
        .watch::<Pod>(None, &on_node("node-a", &rv))
        .await
        .unwrap();
    for name in ["a", "b"] {
        client.create(&pod("default", name, "web")).await.unwrap();
        client.bind("default", name, "node-a").await.unwrap();
    }
    client
        .delete::<Pod>("default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    let kinds: Vec<&str> = [
        next(&mut mine).await,
        next(&mut mine).await,
        next(&mut mine).await,
    ]
    .iter()
    .map(|e| match e {
        WatchEvent::Added(_) => "added",
        WatchEvent::Deleted(_) => "deleted",
        _ => "other",
    })
    .collect();
    assert_eq!(kinds, ["added", "added", "deleted"]);
    quiet(&mut other).await;
}

async fn a_watch_that_does_not_read_is_cut_off_and_the_others_go_on(client: LocalClient) {
    client.watch_cache().set_options(CacheOptions {
        history: 64,
        client_buffer: 2,
        ..CacheOptions::default()
    });
    let rv = head(&client).await;
    let mut slow = client
        .watch::<Pod>(None, &WatchOptions::from_version(rv.clone()))
        .await
        .unwrap();
    let mut fast = client
        .watch::<Pod>(None, &WatchOptions::from_version(rv))
        .await
        .unwrap();
    for i in 0..5 {
        client
            .create(&pod("default", &format!("p{i}"), "web"))
            .await
            .unwrap();
        assert!(matches!(next(&mut fast).await, WatchEvent::Added(_)));
    }
    let mut received = 0;
    let err = loop {
        match slow.next().await.expect("an end") {
            Ok(_) => received += 1,
            Err(err) => break err,
        }
    };
    assert_eq!(received, 2, "what was queued before the cut");
    assert!(
        matches!(&err, ApiError::Expired(m) if m.contains("fell behind")),
        "{err:?}"
    );
    client.create(&pod("default", "p5", "web")).await.unwrap();
    assert!(matches!(next(&mut fast).await, WatchEvent::Added(_)));
}

async fn watches_share_one_cache(client: LocalClient) {
    client.watch_cache().start::<Pod>(client.registry()).await;
    let rv = head(&client).await;
    let mut watches = Vec::new();
    for node in ["n1", "n2", "n3"] {
        watches.push(
            client
                .watch::<Pod>(None, &on_node(node, &rv))
                .await
                .unwrap(),
        );
    }
    let clone = client.clone();
    watches.push(
        clone
            .watch::<Pod>(None, &WatchOptions::default())
            .await
            .unwrap(),
    );
    assert_eq!(client.watch_cache().watches::<Pod>(), 4);
    watches.truncate(1);
    assert_eq!(
        client.watch_cache().watches::<Pod>(),
        1,
        "a dropped watch leaves"
    );
}

/// Two in-process watches (one indexed by node, one unindexed) receive the same allocation
/// for the same change: the cache decodes it once and hands out `Arc`s.
async fn watchers_share_one_decoded_object_per_change(client: LocalClient) {
    client.watch_cache().start::<Pod>(client.registry()).await;
    let rv = head(&client).await;
    let mut all = client
        .watch::<Pod>(None, &WatchOptions::from_version(&rv))
        .await
        .unwrap();
    let mut on_n1 = client
        .watch::<Pod>(None, &on_node("n1", &rv))
        .await
        .unwrap();
    let mut placed = pod("default", "a", "web");
    placed.spec.node_name = "n1".into();
    let stored = put_raw(&client, &placed).await;

    let (WatchEvent::Added(seen_by_all), WatchEvent::Added(seen_on_n1)) =
        (next(&mut all).await, next(&mut on_n1).await)
    else {
        panic!("both watches see the pod added");
    };
    assert_eq!(*seen_by_all, stored);
    assert!(
        Arc::ptr_eq(&seen_by_all, &seen_on_n1),
        "one decoded object per change, shared by every watch"
    );

    client
        .delete::<Pod>("default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    let (WatchEvent::Deleted(gone_for_all), WatchEvent::Deleted(gone_on_n1)) =
        (next(&mut all).await, next(&mut on_n1).await)
    else {
        panic!("both watches see the pod deleted");
    };
    assert!(
        Arc::ptr_eq(&gone_for_all, &gone_on_n1),
        "deletions are shared too"
    );
}

/// A reflector fed by a watcher over a `LocalClient` keeps the watch cache's own object: a
/// raw watch of the same change and the reflector's store hold one allocation.
async fn a_reflector_keeps_the_watch_caches_object(client: LocalClient) {
    use orchestra_api::reflector;
    use orchestra_api::watcher::{self, WatcherConfig};

    client.watch_cache().start::<Pod>(client.registry()).await;
    let rv = head(&client).await;
    let (reader, writer) = reflector::store::<Pod>();
    let config = WatcherConfig {
        bookmark_interval: None,
        ..WatcherConfig::default()
    };
    let events = watcher::watcher::<Pod, _>(client.clone(), config);
    let task = tokio::spawn(reflector::reflector(writer, events).for_each(|_| async {}));
    reader.wait_until_ready().await.expect("listed");
    let mut raw = client
        .watch::<Pod>(None, &WatchOptions::from_version(&rv))
        .await
        .unwrap();

    let created = client.create(&pod("default", "a", "web")).await.unwrap();
    let WatchEvent::Added(seen) = next(&mut raw).await else {
        panic!("the raw watch sees the pod added");
    };
    let cached = tokio::time::timeout(Duration::from_secs(3600), async {
        loop {
            if let Some(cached) = reader.get("default", "a") {
                return cached;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the reflector caches the pod");
    assert_eq!(
        cached.metadata.resource_version,
        created.metadata.resource_version
    );
    assert!(
        Arc::ptr_eq(&cached, &seen),
        "the reflector's store holds the watch cache's object, not a copy"
    );
    task.abort();
}

fn on_node_list(node: &str) -> ListOptions {
    ListOptions {
        field_selector: FieldSelector::equals("spec.nodeName", node),
        ..ListOptions::default()
    }
}

/// A list of the latest state (`list_shared`) and a watch without resourceVersion start from
/// the cache's own objects, not a decoded copy each, and are consistent: a write made just
/// before them (not yet seen by any watch) is in them, as in a read from the store.
async fn lists_and_initial_events_share_the_caches_objects(client: LocalClient) {
    client.watch_cache().start::<Pod>(client.registry()).await;
    let rv = head(&client).await;
    let mut raw = client
        .watch::<Pod>(None, &WatchOptions::from_version(&rv))
        .await
        .unwrap();
    let mut placed = pod("default", "a", "web");
    placed.spec.node_name = "n1".into();
    let stored = put_raw(&client, &placed).await;

    let listed = client
        .list_shared::<Pod>(None, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "the write just made is listed");
    assert_eq!(*listed.items[0], stored);
    assert_eq!(listed.continue_token, None);
    let WatchEvent::Added(seen) = next(&mut raw).await else {
        panic!("the raw watch sees the pod added");
    };
    assert!(
        Arc::ptr_eq(&listed.items[0], &seen),
        "the list hands out the watch cache's object"
    );

    let on_n1 = client
        .list_shared::<Pod>(None, &on_node_list("n1"))
        .await
        .unwrap();
    assert_eq!(on_n1.items.len(), 1);
    assert!(Arc::ptr_eq(&on_n1.items[0], &seen), "selected, and shared");
    let on_n2 = client
        .list_shared::<Pod>(None, &on_node_list("n2"))
        .await
        .unwrap();
    assert!(on_n2.items.is_empty(), "the field selector applies");

    let mut watch = client
        .watch::<Pod>(
            None,
            &WatchOptions {
                field_selector: FieldSelector::equals("spec.nodeName", "n1"),
                ..WatchOptions::default()
            },
        )
        .await
        .unwrap();
    let WatchEvent::Added(initial) = next(&mut watch).await else {
        panic!("the watch starts with the pod");
    };
    assert!(
        Arc::ptr_eq(&initial, &seen),
        "a watch's initial events are the cache's objects too"
    );

    // Another kind moves the store's revision past the pods' latest change: a list still
    // waits for the pod cache to have seen that revision, and says so.
    let node = client
        .create(&Node {
            metadata: ObjectMeta::named("n1"),
            ..Node::default()
        })
        .await
        .unwrap();
    let after = client
        .list_shared::<Pod>(None, &ListOptions::default())
        .await
        .unwrap();
    let listed_at: i64 = after.resource_version.parse().unwrap();
    let node_at: i64 = node.metadata.resource_version.parse().unwrap();
    assert!(listed_at >= node_at, "{listed_at} < {node_at}");
    assert!(Arc::ptr_eq(&after.items[0], &seen));

    // Pages are the registry's (read from the store): copies, equal in value.
    let paged = client
        .list_shared::<Pod>(
            None,
            &ListOptions {
                limit: 10,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(paged.items, after.items);
    assert!(!Arc::ptr_eq(&paged.items[0], &seen));
}

/// A watcher lists through `list_shared`: the objects of its first `Restarted` (and so the
/// reflector's store after a list) are the watch cache's own.
async fn a_reflectors_list_shares_the_caches_objects(client: LocalClient) {
    use orchestra_api::watcher::{self, Event, WatcherConfig};

    client.watch_cache().start::<Pod>(client.registry()).await;
    let rv = head(&client).await;
    let mut raw = client
        .watch::<Pod>(None, &WatchOptions::from_version(&rv))
        .await
        .unwrap();
    client.create(&pod("default", "a", "web")).await.unwrap();
    let WatchEvent::Added(seen) = next(&mut raw).await else {
        panic!("the raw watch sees the pod added");
    };
    let config = WatcherConfig {
        bookmark_interval: None,
        ..WatcherConfig::default()
    };
    let mut events = watcher::watcher::<Pod, _>(client.clone(), config);
    let Some(Ok(Event::Restarted(listed))) = events.next().await else {
        panic!("the watcher lists first");
    };
    assert_eq!(listed.len(), 1);
    assert!(
        Arc::ptr_eq(&listed[0], &seen),
        "the watcher's list holds the watch cache's object, not a copy"
    );
}
