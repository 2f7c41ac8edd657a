//! The watch cache: one store watch per kind serves many client watches from memory, with the
//! registry's selector transitions, cuts off a client that does not read instead of waiting
//! for it, serves watches without resourceVersion after one consistent list, and leaves
//! watches it cannot serve (too old) to the registry.

use std::time::Duration;

use futures::StreamExt;
use orchestra_api::registry::{DynRegistry, ListOptions, WatchOptions};
use orchestra_api::resources::Pod;
use orchestra_api::server::watch_cache::{CacheEvent, CacheEvents};
use orchestra_api::server::{CacheOptions, WatchCache};
use orchestra_api::{ApiError, Registry, Selector, testing, to_value};
use orchestra_store::MemStore;
use serde_json::{Value, json};

async fn setup(options: CacheOptions) -> (Registry, DynRegistry, WatchCache) {
    let registry = Registry::new(MemStore::new());
    let dynamic = DynRegistry::new(registry.clone());
    let cache = WatchCache::start(&dynamic, options, || Box::pin(std::future::pending()));
    cache.wait_ready("v1", "Pod").await;
    (registry, dynamic, cache)
}

async fn watch(cache: &WatchCache, registry: &Registry, options: &WatchOptions) -> CacheEvents {
    cache
        .watch(registry.store().as_ref(), "v1", "Pod", Some("ns"), options)
        .await
        .expect("watch")
        .expect("served from the cache")
}

async fn next(events: &mut CacheEvents) -> Result<(String, Value), ApiError> {
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("no event within 10 s")
        .expect("the watch ended");
    match event? {
        CacheEvent::Object { kind, json, .. } => Ok((
            kind.to_owned(),
            serde_json::from_slice(&json).expect("JSON"),
        )),
        CacheEvent::Bookmark(rv) => Ok(("BOOKMARK".to_owned(), json!(rv))),
    }
}

async fn current_rv(registry: &Registry) -> String {
    registry
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .expect("list")
        .resource_version
}

#[tokio::test]
async fn a_kind_is_cached_only_once_something_asks_for_it() {
    let registry = Registry::new(MemStore::new());
    let dynamic = DynRegistry::new(registry.clone());
    registry
        .create(testing::pod("ns", "a", "web"))
        .await
        .expect("create");
    let cache = WatchCache::start(&dynamic, CacheOptions::default(), || {
        Box::pin(std::future::pending())
    });
    assert!(!cache.is_started("v1", "Pod"));

    // The first list starts the cache; until it is ready, the caller reads the store.
    let any_recent = ListOptions {
        resource_version: Some("0".into()),
        ..ListOptions::default()
    };
    let first = cache
        .list("v1", "Pod", Some("ns"), &any_recent)
        .expect("list");
    assert!(cache.is_started("v1", "Pod"));
    cache.wait_ready("v1", "Pod").await;
    let served = cache
        .list("v1", "Pod", Some("ns"), &any_recent)
        .expect("list")
        .expect("served from the cache once ready");
    assert_eq!(served.items.len(), 1);
    assert!(first.is_none() || first.is_some_and(|list| list.items.len() == 1));
    assert!(
        !cache.is_started("v1", "Service"),
        "no one asked for services"
    );
}

#[tokio::test]
async fn many_watches_share_the_cache_and_each_sees_every_event() {
    let (registry, _, cache) = setup(CacheOptions::default()).await;
    let from = WatchOptions::from_version(current_rv(&registry).await);
    let mut watches = Vec::new();
    for _ in 0..100 {
        watches.push(watch(&cache, &registry, &from).await);
    }
    assert_eq!(cache.subscribers("v1", "Pod"), 100);
    let mut created = Vec::new();
    for i in 0..10 {
        let pod = registry
            .create(testing::pod("ns", &format!("p{i}"), "web"))
            .await
            .expect("create");
        created.push(to_value(&pod).expect("json"));
    }
    for events in &mut watches {
        for want in &created {
            assert_eq!(
                next(events).await.expect("event"),
                ("ADDED".to_owned(), want.clone())
            );
        }
    }
    drop(watches);
    assert_eq!(cache.subscribers("v1", "Pod"), 0);
}

#[tokio::test]
async fn selector_transitions_match_the_registry() {
    let (registry, _, cache) = setup(CacheOptions::default()).await;
    let rv = current_rv(&registry).await;
    let options = WatchOptions {
        label_selector: Selector::parse("app=web").expect("selector"),
        ..WatchOptions::from_version(rv.clone())
    };
    let mut cached = watch(&cache, &registry, &options).await;
    let mut direct = registry
        .watch::<Pod>(Some("ns"), &options)
        .await
        .expect("watch");
    registry
        .create(testing::pod("ns", "a", "web"))
        .await
        .expect("create");
    registry
        .create(testing::pod("other", "a", "web"))
        .await
        .expect("create elsewhere");
    registry
        .patch::<Pod>("ns", "a", &json!({"metadata": {"labels": {"app": "db"}}}))
        .await
        .expect("patch");
    registry
        .patch::<Pod>("ns", "a", &json!({"metadata": {"labels": {"app": "web"}}}))
        .await
        .expect("patch");
    registry.bind("ns", "a", "node-1").await.expect("bind");
    registry
        .delete::<Pod>("ns", "a", &Default::default())
        .await
        .expect("delete");
    for _ in 0..5 {
        let want = direct.next().await.expect("event").expect("ok");
        let (kind, object) = next(&mut cached).await.expect("event");
        let want_kind = match &want {
            orchestra_api::WatchEvent::Added(_) => "ADDED",
            orchestra_api::WatchEvent::Modified(_) => "MODIFIED",
            orchestra_api::WatchEvent::Deleted(_) => "DELETED",
            orchestra_api::WatchEvent::Bookmark(_) => "BOOKMARK",
        };
        assert_eq!(kind, want_kind);
        assert_eq!(
            object,
            to_value(want.object().expect("object")).expect("json")
        );
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_and_the_others_go_on() {
    let options = CacheOptions {
        client_buffer: 4,
        ..CacheOptions::default()
    };
    let (registry, _, cache) = setup(options).await;
    let from = WatchOptions::from_version(current_rv(&registry).await);
    let mut fast = watch(&cache, &registry, &from).await;
    let mut slow = watch(&cache, &registry, &from).await;
    for i in 0..10 {
        registry
            .create(testing::pod("ns", &format!("p{i}"), "web"))
            .await
            .expect("create");
        // The fast client keeps up.
        assert_eq!(next(&mut fast).await.expect("event").0, "ADDED");
    }
    for _ in 0..4 {
        assert_eq!(next(&mut slow).await.expect("buffered event").0, "ADDED");
    }
    match next(&mut slow).await {
        Err(ApiError::Expired(message)) => assert!(message.contains("fell behind"), "{message}"),
        other => panic!("expected the slow client to be cut off, got {other:?}"),
    }
    assert_eq!(cache.subscribers("v1", "Pod"), 1);
}

/// Issue #4: remote watches without resourceVersion (what a client that lists nothing first
/// opens, as the `orchestra bench api` watchers do) went to the registry, one store watch
/// each, decoding and encoding every change once per watcher. The cache serves them now, with
/// the registry's contract: the objects of one consistent list as ADDED (writes made just
/// before the watch included, whether or not the cache has applied them yet), then every
/// change after that list once.
#[tokio::test]
async fn a_watch_without_resource_version_is_served_from_the_cache_after_a_consistent_list() {
    let (registry, _, cache) = setup(CacheOptions::default()).await;
    let mut created = Vec::new();
    for i in 0..10 {
        let pod = registry
            .create(testing::pod("ns", &format!("p{i}"), "web"))
            .await
            .expect("create");
        created.push(pod.metadata.resource_version);
    }
    registry
        .create(testing::pod("elsewhere", "q", "web"))
        .await
        .expect("create");
    let before = cache.subscribers("v1", "Pod");
    let mut events = watch(&cache, &registry, &WatchOptions::default()).await;
    assert_eq!(
        cache.subscribers("v1", "Pod"),
        before + 1,
        "one cache watch"
    );
    for (i, rv) in created.iter().enumerate() {
        let (kind, object) = next(&mut events).await.expect("event");
        assert_eq!(kind, "ADDED");
        assert_eq!(object["metadata"]["name"], format!("p{i}"));
        assert_eq!(&object["metadata"]["resourceVersion"], rv.as_str());
    }
    let later = registry
        .create(testing::pod("ns", "later", "web"))
        .await
        .expect("create");
    let (kind, object) = next(&mut events).await.expect("event");
    assert_eq!(kind, "ADDED");
    assert_eq!(object["metadata"]["name"], "later");
    assert_eq!(
        &object["metadata"]["resourceVersion"],
        later.metadata.resource_version.as_str()
    );
    // "0" is the registry's "from now" too.
    let mut zero = watch(&cache, &registry, &WatchOptions::from_version("0")).await;
    for _ in 0..11 {
        let (kind, _) = next(&mut zero).await.expect("event");
        assert_eq!(kind, "ADDED");
    }
}

#[tokio::test]
async fn watches_it_cannot_serve_go_to_the_registry() {
    let options = CacheOptions {
        history: 3,
        ..CacheOptions::default()
    };
    let (registry, _, cache) = setup(options).await;
    let first = current_rv(&registry).await;
    let mut tail = watch(
        &cache,
        &registry,
        &WatchOptions::from_version(first.clone()),
    )
    .await;
    for i in 0..10 {
        registry
            .create(testing::pod("ns", &format!("p{i}"), "web"))
            .await
            .expect("create");
    }
    // Once this watch has seen all ten writes, the cache has applied them too, and the
    // first seven fell out of its 3-event window.
    for _ in 0..10 {
        next(&mut tail).await.expect("event");
    }
    let store = registry.store().as_ref();
    let stale = cache
        .watch(
            store,
            "v1",
            "Pod",
            Some("ns"),
            &WatchOptions::from_version(first),
        )
        .await
        .expect("watch");
    assert!(
        stale.is_none(),
        "a version older than the window goes to the registry"
    );
    let bad = cache
        .watch(
            store,
            "v1",
            "Pod",
            Some("ns"),
            &WatchOptions {
                field_selector: orchestra_api::FieldSelector::equals("spec.color", "red"),
                ..WatchOptions::from_version("5")
            },
        )
        .await;
    assert!(matches!(&bad, Err(e) if e.code() == 400), "{:?}", bad.err());
}

#[tokio::test]
async fn lists_at_resource_version_0_come_from_the_cache() {
    let (registry, dynamic, cache) = setup(CacheOptions::default()).await;
    let from = WatchOptions::from_version(current_rv(&registry).await);
    let mut events = watch(&cache, &registry, &from).await;
    registry
        .create(testing::pod("other", "elsewhere", "web"))
        .await
        .expect("create");
    for (i, app) in ["web", "db", "web"].iter().enumerate() {
        registry
            .create(testing::pod("ns", &format!("p{i}"), app))
            .await
            .expect("create");
    }
    // The cache has applied a change (and every earlier one) once its watchers got it.
    for _ in 0..3 {
        next(&mut events).await.expect("event");
    }
    let any = ListOptions {
        resource_version: Some("0".into()),
        label_selector: Selector::parse("app=web").expect("selector"),
        ..ListOptions::default()
    };
    let cached = cache
        .list("v1", "Pod", Some("ns"), &any)
        .expect("list")
        .expect("served from the cache");
    let names: Vec<&str> = cached
        .items
        .iter()
        .map(|p| p.meta().name.as_str())
        .collect();
    assert_eq!(names, ["p0", "p2"]);
    let consistent = dynamic
        .list(
            "v1",
            "Pod",
            Some("ns"),
            &ListOptions {
                resource_version: None,
                ..any.clone()
            },
        )
        .await
        .expect("store list");
    assert_eq!(consistent.items.len(), 2);
    let all = cache
        .list(
            "v1",
            "Pod",
            None,
            &ListOptions {
                resource_version: Some("0".into()),
                ..ListOptions::default()
            },
        )
        .expect("list")
        .expect("cached");
    assert_eq!(all.items.len(), 4);
    assert!(all.resource_version.parse::<i64>().expect("rv") >= 4);

    // Unset resourceVersion (a consistent read), a page size or a continue token: the store.
    for options in [
        ListOptions::default(),
        ListOptions {
            resource_version: Some("0".into()),
            limit: 1,
            ..ListOptions::default()
        },
        ListOptions {
            resource_version: Some("5".into()),
            ..ListOptions::default()
        },
    ] {
        assert!(
            cache
                .list("v1", "Pod", Some("ns"), &options)
                .expect("list")
                .is_none()
        );
    }
    // A bad field selector is an error either way.
    let bad = ListOptions {
        resource_version: Some("0".into()),
        field_selector: orchestra_api::FieldSelector::parse("spec.bogus=x").expect("parse"),
        ..ListOptions::default()
    };
    assert!(cache.list("v1", "Pod", None, &bad).is_err());
}
