//! The registry's storage contracts — key layout, resourceVersion = mod_revision, consistent
//! pages and their expiry, watch start points, selector transitions, bookmarks, finalizers,
//! concurrent binds — against MemStore and against DiskStore in a temporary directory.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::registry::{
    ApiError, DeleteOptions, ListOptions, Registry, WatchEvent, WatchEvents, WatchOptions,
};
use orchestra_api::resources::{Node, Pod};
use orchestra_api::selector::FieldSelector;
use orchestra_api::testing::pod;
use orchestra_api::{ObjectMeta, Selector};
use orchestra_store::StoreExt;
use serde_json::Value;

/// Runs each named check against a MemStore and a DiskStore registry.
macro_rules! both_stores {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                #[tokio::test(start_paused = true)]
                async fn mem_store() {
                    super::$check(orchestra_api::Registry::new(orchestra_store::MemStore::new())).await;
                }

                #[tokio::test(start_paused = true)]
                async fn disk_store() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = orchestra_store::DiskStore::open(dir.path()).await.expect("open");
                    super::$check(orchestra_api::Registry::new(store)).await;
                }
            }
        )*
    };
}

both_stores!(
    keys_and_resource_versions,
    cluster_scoped_kinds,
    continue_token_expires_after_compaction,
    pages_skip_objects_the_selectors_reject,
    watch_starts_after_the_given_version,
    watch_from_a_compacted_version_is_expired,
    watch_field_selector_transitions,
    watch_all_namespaces,
    finalizers_hold_the_object_until_removed,
    bookmarks_arrive_on_the_interval,
    concurrent_binds_one_wins,
    updates_keep_system_fields,
    oversize_updates_are_refused,
);

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta::named(name),
        ..Node::default()
    }
}

async fn next(stream: &mut WatchEvents<Pod>) -> WatchEvent<Pod> {
    stream
        .next()
        .await
        .expect("the watch ended early")
        .expect("watch error")
}

async fn keys_and_resource_versions(registry: Registry) {
    let created = registry.create(pod("default", "a", "web")).await.unwrap();
    let kv = registry
        .store()
        .get("/registry/pods/default/a")
        .await
        .unwrap()
        .expect("stored at /registry/pods/{namespace}/{name}");
    assert_eq!(
        created.metadata.resource_version,
        kv.mod_revision.to_string()
    );
    let json: Value = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["metadata"]["uid"], created.metadata.uid.as_str());
    assert!(
        json["metadata"].get("resourceVersion").is_none(),
        "the resourceVersion is the key's revision, not stored"
    );
    let updated = registry
        .patch::<Pod>(
            "default",
            "a",
            &serde_json::json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await
        .unwrap();
    let kv = registry
        .store()
        .get("/registry/pods/default/a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated.metadata.resource_version,
        kv.mod_revision.to_string()
    );
    assert_eq!(kv.version, 2);
}

async fn cluster_scoped_kinds(registry: Registry) {
    registry.create(node("n2")).await.unwrap();
    registry.create(node("n1")).await.unwrap();
    assert!(
        registry
            .store()
            .get("/registry/nodes/n1")
            .await
            .unwrap()
            .is_some()
    );
    let read: Node = registry.get("ignored", "n1").await.unwrap();
    assert_eq!(read.metadata.namespace, "");
    let list = registry
        .list::<Node>(Some("ignored"), &ListOptions::default())
        .await
        .unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|n| n.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["n1", "n2"]);
    let err = registry.create(node("n1")).await.unwrap_err();
    assert_eq!((err.code(), err.reason()), (409, "AlreadyExists"));
    assert_eq!(
        err.to_string(),
        "Node \"n1\" already exists; update it, or delete it first"
    );
}

async fn continue_token_expires_after_compaction(registry: Registry) {
    for name in ["a", "b", "c"] {
        registry.create(pod("default", name, "web")).await.unwrap();
    }
    let first = registry
        .list::<Pod>(Some("default"), &ListOptions::default().with_limit(1))
        .await
        .unwrap();
    let token = first.continue_token.clone().expect("more pages");
    registry.create(pod("default", "d", "web")).await.unwrap();
    registry
        .delete::<Pod>("default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    let head = registry.store().status().await.unwrap().revision;
    registry.store().compact(head).await.unwrap();
    let options = ListOptions {
        continue_token: Some(token),
        limit: 1,
        ..ListOptions::default()
    };
    let err = registry
        .list::<Pod>(Some("default"), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Expired(_)), "{err:?}");
    assert_eq!(err.code(), 410);
    let other_ns = registry
        .list::<Pod>(Some("other"), &options)
        .await
        .unwrap_err();
    assert_eq!(other_ns.code(), 400, "a token of another list: {other_ns}");
}

async fn pages_skip_objects_the_selectors_reject(registry: Registry) {
    for (i, app) in ["web", "db", "db", "web", "db", "web"].iter().enumerate() {
        registry
            .create(pod("default", &format!("p{i}"), app))
            .await
            .unwrap();
    }
    let mut options = ListOptions::labels(Selector::parse("app=web").unwrap()).with_limit(2);
    let mut pages = Vec::new();
    loop {
        let page = registry
            .list::<Pod>(Some("default"), &options)
            .await
            .unwrap();
        pages.push(
            page.items
                .iter()
                .map(|p| p.metadata.name.clone())
                .collect::<Vec<_>>(),
        );
        match page.continue_token {
            Some(token) => options.continue_token = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["p0", "p3"], vec!["p5"]]);
}

async fn watch_starts_after_the_given_version(registry: Registry) {
    let a = registry.create(pod("default", "a", "web")).await.unwrap();
    let b = registry.create(pod("default", "b", "web")).await.unwrap();
    let mut watch = registry
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
    let mut from_now = registry
        .watch::<Pod>(Some("default"), &WatchOptions::default())
        .await
        .unwrap();
    let c = registry.create(pod("default", "c", "web")).await.unwrap();
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(a)),
        "the current state first"
    );
    assert_eq!(next(&mut from_now).await, WatchEvent::Added(Arc::new(b)));
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(c)),
        "then what changed after it"
    );
    let bad = registry
        .watch::<Pod>(None, &WatchOptions::from_version("yesterday"))
        .await
        .err()
        .expect("a bad resourceVersion");
    assert_eq!(bad.code(), 400);
}

async fn watch_from_a_compacted_version_is_expired(registry: Registry) {
    let a = registry.create(pod("default", "a", "web")).await.unwrap();
    for name in ["b", "c"] {
        registry.create(pod("default", name, "web")).await.unwrap();
    }
    let head = registry.store().status().await.unwrap().revision;
    registry.store().compact(head).await.unwrap();
    let options = WatchOptions::from_version(a.metadata.resource_version);
    let result = registry.watch::<Pod>(Some("default"), &options).await;
    let err = match result {
        Err(err) => err,
        Ok(mut stream) => stream.next().await.expect("an error").expect_err("expired"),
    };
    assert!(matches!(err, ApiError::Expired(_)), "{err:?}");
}

async fn watch_field_selector_transitions(registry: Registry) {
    let options = WatchOptions {
        field_selector: FieldSelector::parse("spec.nodeName=node-1").unwrap(),
        ..WatchOptions::from_version("1")
    };
    let mut on_node = registry
        .watch::<Pod>(Some("default"), &options)
        .await
        .unwrap();
    registry.create(pod("default", "a", "web")).await.unwrap();
    let bound = registry.bind("default", "a", "node-1").await.unwrap();
    let deleted = registry
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
    let err = registry
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

async fn watch_all_namespaces(registry: Registry) {
    let mut all = registry
        .watch::<Pod>(None, &WatchOptions::default())
        .await
        .unwrap();
    let a = registry.create(pod("ns-a", "x", "web")).await.unwrap();
    let b = registry.create(pod("ns-b", "x", "web")).await.unwrap();
    registry.create(node("n1")).await.unwrap();
    assert_eq!(next(&mut all).await, WatchEvent::Added(Arc::new(a)));
    assert_eq!(next(&mut all).await, WatchEvent::Added(Arc::new(b)));
}

async fn finalizers_hold_the_object_until_removed(registry: Registry) {
    let mut held = pod("default", "held", "web");
    held.metadata.finalizers = vec!["example.com/a".into(), "example.com/b".into()];
    let created = registry.create(held).await.unwrap();
    let mut watch = registry
        .watch::<Pod>(
            Some("default"),
            &WatchOptions::from_version(created.metadata.resource_version.clone()),
        )
        .await
        .unwrap();
    let marked = registry
        .delete::<Pod>("default", "held", &DeleteOptions::default())
        .await
        .unwrap();
    let marked = marked.object().clone();
    assert_eq!(
        marked.metadata.generation,
        Some(2),
        "marking bumps the generation"
    );
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    let mut one_left = marked.clone();
    one_left.metadata.finalizers.remove(0);
    let one_left = registry.update(one_left).await.unwrap();
    assert_eq!(
        one_left.metadata.deletion_timestamp,
        marked.metadata.deletion_timestamp
    );
    let mut cleared = one_left.clone();
    cleared.metadata.deletion_timestamp = None;
    cleared.metadata.finalizers.clear();
    let last = registry.update(cleared).await.unwrap();
    assert!(
        last.metadata.deletion_timestamp.is_some(),
        "cannot be undone"
    );
    assert!(
        registry
            .get::<Pod>("default", "held")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Modified(Arc::new(marked))
    );
    assert_eq!(
        next(&mut watch).await,
        WatchEvent::Modified(Arc::new(one_left.clone()))
    );
    match next(&mut watch).await {
        WatchEvent::Deleted(gone) => {
            assert_eq!(gone.metadata.finalizers, one_left.metadata.finalizers);
            assert_eq!(
                gone.metadata.resource_version,
                last.metadata.resource_version
            );
        }
        other => panic!("expected Deleted, got {other:?}"),
    }
}

async fn bookmarks_arrive_on_the_interval(registry: Registry) {
    let created = registry.create(pod("default", "a", "web")).await.unwrap();
    let options = WatchOptions {
        bookmark_interval: Some(Duration::from_secs(60)),
        ..WatchOptions::from_version(created.metadata.resource_version.clone())
    };
    let mut watch = registry
        .watch::<Pod>(Some("other"), &options)
        .await
        .unwrap();
    registry.create(pod("default", "b", "web")).await.unwrap();
    let head = registry.store().status().await.unwrap().revision;
    match next(&mut watch).await {
        WatchEvent::Bookmark(rv) => assert_eq!(rv, head.to_string()),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    assert!(matches!(next(&mut watch).await, WatchEvent::Bookmark(_)));
    let mut quiet = registry
        .watch::<Pod>(Some("empty"), &WatchOptions::default())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3600), quiet.next()).await;
    assert!(waited.is_err(), "no bookmarks unless asked: {waited:?}");
}

async fn concurrent_binds_one_wins(registry: Registry) {
    registry.create(pod("default", "a", "web")).await.unwrap();
    let (one, two) = tokio::join!(
        registry.bind("default", "a", "node-1"),
        registry.bind("default", "a", "node-2"),
    );
    let winners: Vec<_> = [&one, &two].into_iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "{one:?} {two:?}");
    let loser = if one.is_ok() { two } else { one };
    assert!(loser.unwrap_err().is_conflict());
}

async fn updates_keep_system_fields(registry: Registry) {
    let created = registry.create(pod("default", "a", "web")).await.unwrap();
    let mut blank = created.clone();
    blank.metadata.uid.clear();
    blank.metadata.creation_timestamp = None;
    blank.metadata.resource_version.clear();
    blank.metadata.generation = Some(40);
    blank.spec.containers[0].image = "busybox:2".into();
    let updated = registry.update(blank).await.unwrap();
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert_eq!(
        updated.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_eq!(updated.metadata.generation, Some(2));
    let mut other_uid = updated.clone();
    other_uid.metadata.uid = "0000".into();
    let err = registry.update(other_uid).await.unwrap_err();
    assert!(matches!(err, ApiError::Invalid { .. }), "{err:?}");
    assert_eq!(err.code(), 422);
    let missing = registry
        .update(pod("default", "nope", "web"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
}

async fn oversize_updates_are_refused(registry: Registry) {
    let created = registry.create(pod("default", "a", "web")).await.unwrap();
    let mut big = created.clone();
    big.metadata.labels.insert("big".into(), "yes".into());
    big.spec.containers[0].image = "x".repeat(2 * 1024 * 1024);
    let err = registry.update(big).await.unwrap_err();
    assert_eq!(
        (err.code(), err.reason()),
        (413, "RequestEntityTooLarge"),
        "{err}"
    );
    let read: Pod = registry.get("default", "a").await.unwrap();
    assert_eq!(read, created, "nothing stored");
}

/// A store that, once armed, lets another writer change the key of the next guarded
/// transaction just before it runs: the deterministic way to lose a race.
struct Racing {
    inner: orchestra_store::MemStore,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl orchestra_store::Store for Racing {
    async fn range(
        &self,
        req: orchestra_store::RangeRequest,
    ) -> Result<orchestra_store::RangeResponse, orchestra_store::StoreError> {
        self.inner.range(req).await
    }

    async fn txn(
        &self,
        txn: orchestra_store::Txn,
    ) -> Result<orchestra_store::TxnResponse, orchestra_store::StoreError> {
        let guarded = txn.compares.first().map(|c| c.key.clone());
        if let Some(key) = guarded
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Some(kv) = self.inner.get(key.clone()).await?
        {
            let mut json: Value = serde_json::from_slice(&kv.value).expect("stored JSON");
            json["metadata"]["labels"]["racer"] = "won".into();
            self.inner.put(key, json.to_string()).await?;
        }
        self.inner.txn(txn).await
    }

    async fn watch(
        &self,
        req: orchestra_store::WatchRequest,
    ) -> Result<orchestra_store::WatchStream, orchestra_store::StoreError> {
        self.inner.watch(req).await
    }

    async fn compact(&self, revision: i64) -> Result<(), orchestra_store::StoreError> {
        self.inner.compact(revision).await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<i64, orchestra_store::StoreError> {
        self.inner.lease_grant(ttl).await
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<Duration, orchestra_store::StoreError> {
        self.inner.lease_keep_alive(id).await
    }

    async fn lease_revoke(&self, id: i64) -> Result<(), orchestra_store::StoreError> {
        self.inner.lease_revoke(id).await
    }

    async fn lease_time_to_live(
        &self,
        id: i64,
    ) -> Result<orchestra_store::LeaseStatus, orchestra_store::StoreError> {
        self.inner.lease_time_to_live(id).await
    }

    async fn lease_list(&self) -> Result<Vec<i64>, orchestra_store::StoreError> {
        self.inner.lease_list().await
    }

    async fn status(&self) -> Result<orchestra_store::StoreStatus, orchestra_store::StoreError> {
        self.inner.status().await
    }
}

fn racing() -> (Registry, std::sync::Arc<Racing>) {
    let store = std::sync::Arc::new(Racing {
        inner: orchestra_store::MemStore::new(),
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    (Registry::from_arc(store.clone()), store)
}

#[tokio::test]
async fn a_lost_race_is_a_conflict_for_a_pinned_update_and_a_retry_for_a_patch() {
    let (registry, store) = racing();
    let created = registry.create(pod("default", "a", "web")).await.unwrap();
    let arm = || store.armed.store(true, std::sync::atomic::Ordering::SeqCst);

    arm();
    let mut labelled = created.clone();
    labelled.metadata.labels.insert("mine".into(), "yes".into());
    let err = registry.update(labelled).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(
        err.to_string().contains("the object has been modified"),
        "{err}"
    );

    arm();
    let patched: Pod = registry
        .patch(
            "default",
            "a",
            &serde_json::json!({"metadata": {"labels": {"mine": "yes"}}}),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels["mine"], "yes");
    assert_eq!(
        patched.metadata.labels["racer"], "won",
        "re-applied to the newer object"
    );

    arm();
    let first = registry.bind("default", "a", "node-1").await.unwrap_err();
    assert!(first.is_conflict(), "a lost binding race: {first:?}");
    registry.bind("default", "a", "node-1").await.unwrap();

    arm();
    let outcome = registry
        .delete::<Pod>("default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(outcome.is_deleted(), "an unconditional delete retries");
}
