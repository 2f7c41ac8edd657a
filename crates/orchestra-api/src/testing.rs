//! The client conformance suite: public async checks that take any [`Client`] over an empty
//! cluster and panic (with a message) when it breaks a contract. `LocalClient` runs them in
//! `tests/client.rs`; every other client (the gRPC `RemoteClient`) runs them too.
//!
//! Each check uses its own namespace, so they may share one client. [`run_all`] runs them all.
//!
//! [`intercept`]: a client wrapper for tests that count, refuse or interleave calls.

pub mod intercept;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::json;

use crate::client::Client;
use crate::meta::ObjectMeta;
use crate::registry::{
    ApiError, DeleteOptions, ListOptions, PropagationPolicy, WatchEvent, WatchOptions,
};
use crate::resources::{Container, Pod, PodPhase, PodSpec, PodStatus};
use crate::selector::{FieldSelector, Selector};

/// A valid pod named `name` in `namespace`, labelled `app: {app}`.
pub fn pod(namespace: &str, name: &str, app: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ..ObjectMeta::namespaced(namespace, name)
        },
        spec: PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: "busybox:1.36".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// Runs every check of the suite.
pub async fn run_all<C: Client>(client: &C) {
    create_get_and_already_exists(client).await;
    update_preconditions_and_generation(client).await;
    status_subresource(client).await;
    merge_patch(client).await;
    list_selectors_and_pages(client).await;
    delete_with_finalizers(client).await;
    bind_once(client).await;
    watch_events(client).await;
    bad_input(client).await;
}

/// create sets uid, creationTimestamp, generation 1 and a resourceVersion; a second create is
/// AlreadyExists; get of a missing object is NotFound; generateName makes a name.
pub async fn create_get_and_already_exists<C: Client>(client: &C) {
    let created = client
        .create(&pod("conf-create", "a", "web"))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.uid.len(), 36, "uid is a UUID: {:?}", meta.uid);
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert!(meta.resource_version.parse::<i64>().is_ok_and(|rv| rv > 0));
    let read: Pod = client.get("conf-create", "a").await.expect("get");
    assert_eq!(read, created);
    let again = client.create(&pod("conf-create", "a", "web")).await;
    assert!(
        matches!(again, Err(ApiError::AlreadyExists { .. })),
        "{again:?}"
    );
    let missing = client.get::<Pod>("conf-create", "nope").await;
    assert!(matches!(&missing, Err(e) if e.code() == 404), "{missing:?}");
    let mut generated = pod("conf-create", "", "web");
    generated.metadata.generate_name = "gen-".into();
    let generated = client.create(&generated).await.expect("generateName");
    assert!(generated.metadata.name.starts_with("gen-"));
    assert_eq!(generated.metadata.name.len(), 9);
}

/// update needs the current resourceVersion (Conflict when stale), bumps the generation on
/// spec changes only, and ignores status.
pub async fn update_preconditions_and_generation<C: Client>(client: &C) {
    let created = client
        .create(&pod("conf-update", "a", "web"))
        .await
        .expect("create");
    let mut labelled = created.clone();
    labelled
        .metadata
        .labels
        .insert("tier".into(), "front".into());
    let labelled = client.update(&labelled).await.expect("label update");
    assert_eq!(labelled.metadata.generation, Some(1), "metadata only");
    assert_ne!(
        labelled.metadata.resource_version,
        created.metadata.resource_version
    );
    let stale = client.update(&created).await;
    assert!(matches!(&stale, Err(e) if e.is_conflict()), "{stale:?}");
    let mut image = labelled.clone();
    image.spec.containers[0].image = "busybox:1.37".into();
    image.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        ..PodStatus::default()
    });
    let updated = client.update(&image).await.expect("spec update");
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(updated.status, None, "status is ignored by update");
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    let same = client.update(&updated).await.expect("no-op update");
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );
}

/// update_status changes only the status and never the generation.
pub async fn status_subresource<C: Client>(client: &C) {
    let created = client
        .create(&pod("conf-status", "a", "web"))
        .await
        .expect("create");
    let mut running = created.clone();
    running.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        ..PodStatus::default()
    });
    running.spec.containers[0].image = "ignored:1".into();
    running
        .metadata
        .labels
        .insert("ignored".into(), "yes".into());
    let stored = client.update_status(&running).await.expect("status update");
    assert_eq!(
        stored.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Running)
    );
    assert_eq!(stored.spec, created.spec, "spec is kept");
    assert_eq!(stored.metadata.labels, created.metadata.labels);
    assert_eq!(stored.metadata.generation, Some(1));
    let stale = client.update_status(&running).await;
    assert!(matches!(&stale, Err(e) if e.is_conflict()), "{stale:?}");
}

/// A merge patch adds, replaces and removes fields; a stale resourceVersion in it conflicts.
pub async fn merge_patch<C: Client>(client: &C) {
    let created = client
        .create(&pod("conf-patch", "a", "web"))
        .await
        .expect("create");
    let patched: Pod = client
        .patch(
            "conf-patch",
            "a",
            &json!({"metadata": {"labels": {"app": null, "tier": "db"}}}),
        )
        .await
        .expect("patch");
    assert_eq!(
        patched.metadata.labels,
        BTreeMap::from([("tier".to_owned(), "db".to_owned())])
    );
    let stale = client
        .patch::<Pod>(
            "conf-patch",
            "a",
            &json!({"metadata": {"resourceVersion": created.metadata.resource_version}}),
        )
        .await;
    assert!(matches!(&stale, Err(e) if e.is_conflict()), "{stale:?}");
    let bad = client
        .patch::<Pod>("conf-patch", "a", &json!({"spec": {"containers": "x"}}))
        .await;
    assert!(matches!(&bad, Err(e) if e.code() == 400), "{bad:?}");
    let missing = client.patch::<Pod>("conf-patch", "b", &json!({})).await;
    assert!(
        matches!(&missing, Err(e) if e.is_not_found()),
        "{missing:?}"
    );
}

/// Lists filter by labels and fields, and pages read one revision.
pub async fn list_selectors_and_pages<C: Client>(client: &C) {
    let ns = "conf-list";
    for (name, app) in [
        ("a", "web"),
        ("b", "db"),
        ("c", "web"),
        ("d", "web"),
        ("e", "web"),
    ] {
        client.create(&pod(ns, name, app)).await.expect("create");
    }
    client.bind(ns, "c", "node-1").await.expect("bind");
    let names = |pods: &[Pod]| {
        pods.iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    let web = Selector::parse("app=web").expect("selector");
    let list = client
        .list::<Pod>(Some(ns), &ListOptions::labels(web.clone()))
        .await
        .expect("list");
    assert_eq!(names(&list.items), ["a", "c", "d", "e"]);
    let on_node = FieldSelector::parse("spec.nodeName=node-1").expect("selector");
    let list = client
        .list::<Pod>(Some(ns), &ListOptions::fields(on_node))
        .await
        .expect("list");
    assert_eq!(names(&list.items), ["c"]);

    let mut options = ListOptions::labels(web).with_limit(2);
    let first = client
        .list::<Pod>(Some(ns), &options)
        .await
        .expect("page 1");
    assert_eq!(names(&first.items), ["a", "c"]);
    client
        .delete::<Pod>(ns, "d", &DeleteOptions::default())
        .await
        .expect("delete");
    client.create(&pod(ns, "f", "web")).await.expect("create");
    options.continue_token = first.continue_token.clone();
    assert!(options.continue_token.is_some());
    let second = client
        .list::<Pod>(Some(ns), &options)
        .await
        .expect("page 2");
    assert_eq!(names(&second.items), ["d", "e"], "the snapshot of page 1");
    assert_eq!(second.resource_version, first.resource_version);
    assert_eq!(second.continue_token, None, "f came after the snapshot");
    let fresh = client
        .list::<Pod>(Some(ns), &ListOptions::default())
        .await
        .expect("list");
    assert_eq!(names(&fresh.items), ["a", "b", "c", "e", "f"]);

    let bad = ListOptions {
        continue_token: Some("not-a-token".into()),
        ..ListOptions::default()
    };
    let err = client.list::<Pod>(Some(ns), &bad).await;
    assert!(matches!(&err, Err(e) if e.code() == 400), "{err:?}");
    let err = client
        .list::<Pod>(
            Some(ns),
            &ListOptions::fields(FieldSelector::equals("spec.color", "red")),
        )
        .await;
    assert!(matches!(&err, Err(e) if e.code() == 400), "{err:?}");
}

/// Finalizers keep a deleted object (deletionTimestamp set) until an update removes them.
pub async fn delete_with_finalizers<C: Client>(client: &C) {
    let ns = "conf-delete";
    let mut held = pod(ns, "held", "web");
    held.metadata.finalizers = vec!["example.com/cleanup".into()];
    client.create(&held).await.expect("create");
    let options = DeleteOptions {
        grace_period_seconds: Some(30),
        propagation_policy: Some(PropagationPolicy::Background),
        resource_version: None,
    };
    let outcome = client
        .delete::<Pod>(ns, "held", &options)
        .await
        .expect("delete");
    assert!(!outcome.is_deleted());
    let marked = outcome.object().clone();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert_eq!(
        marked
            .metadata
            .annotations
            .get(crate::registry::PROPAGATION_POLICY_ANNOTATION),
        Some(&"Background".to_owned())
    );
    let still: Pod = client.get(ns, "held").await.expect("still there");
    assert_eq!(still, marked);
    let again = client
        .delete::<Pod>(ns, "held", &options)
        .await
        .expect("again");
    assert_eq!(again.object(), &marked);
    let mut released = marked.clone();
    released.metadata.finalizers.clear();
    client.update(&released).await.expect("remove finalizers");
    let gone = client.get::<Pod>(ns, "held").await;
    assert!(matches!(&gone, Err(e) if e.is_not_found()), "{gone:?}");

    client
        .create(&pod(ns, "plain", "web"))
        .await
        .expect("create");
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteOptions::default()
    };
    let outcome = client
        .delete::<Pod>(ns, "plain", &orphan)
        .await
        .expect("delete");
    assert_eq!(outcome.object().metadata.finalizers, ["orphan"]);
    let created = client.create(&pod(ns, "now", "web")).await.expect("create");
    let stale = DeleteOptions {
        resource_version: Some("1".into()),
        ..DeleteOptions::default()
    };
    let err = client.delete::<Pod>(ns, "now", &stale).await;
    assert!(matches!(&err, Err(e) if e.is_conflict()), "{err:?}");
    let outcome = client
        .delete::<Pod>(ns, "now", &DeleteOptions::default())
        .await
        .expect("delete");
    assert!(outcome.is_deleted());
    assert_eq!(outcome.object().metadata.uid, created.metadata.uid);
    let err = client
        .delete::<Pod>(ns, "now", &DeleteOptions::default())
        .await;
    assert!(matches!(&err, Err(e) if e.is_not_found()), "{err:?}");
}

/// bind sets spec.nodeName once; binding again is a Conflict; the node name is checked.
pub async fn bind_once<C: Client>(client: &C) {
    let ns = "conf-bind";
    client.create(&pod(ns, "a", "web")).await.expect("create");
    let bound = client.bind(ns, "a", "node-1").await.expect("bind");
    assert_eq!(bound.spec.node_name, "node-1");
    let twice = client.bind(ns, "a", "node-2").await;
    assert!(matches!(&twice, Err(e) if e.is_conflict()), "{twice:?}");
    let read: Pod = client.get(ns, "a").await.expect("get");
    assert_eq!(read.spec.node_name, "node-1");
    let missing = client.bind(ns, "nope", "node-1").await;
    assert!(
        matches!(&missing, Err(e) if e.is_not_found()),
        "{missing:?}"
    );
    client.create(&pod(ns, "b", "web")).await.expect("create");
    let bad = client.bind(ns, "b", "Not A Node").await;
    assert!(matches!(&bad, Err(e) if e.code() == 400), "{bad:?}");
    let mut sneaky = client.get::<Pod>(ns, "b").await.expect("get");
    sneaky.spec.node_name = "node-1".into();
    let err = client.update(&sneaky).await;
    assert!(matches!(&err, Err(ApiError::Invalid { .. })), "{err:?}");
}

/// A watch from a list's resourceVersion sees Added, Modified and Deleted (with the last
/// state), and selector transitions as Added/Deleted.
pub async fn watch_events<C: Client>(client: &C) {
    let ns = "conf-watch";
    let start = client
        .list::<Pod>(Some(ns), &ListOptions::default())
        .await
        .expect("list");
    let options = WatchOptions {
        label_selector: Selector::parse("app=web").expect("selector"),
        ..WatchOptions::from_version(start.resource_version.clone())
    };
    let mut all = client
        .watch::<Pod>(
            Some(ns),
            &WatchOptions::from_version(start.resource_version),
        )
        .await
        .expect("watch");
    let mut web = client
        .watch::<Pod>(Some(ns), &options)
        .await
        .expect("watch");

    let created = client.create(&pod(ns, "a", "web")).await.expect("create");
    let relabelled: Pod = client
        .patch(ns, "a", &json!({"metadata": {"labels": {"app": "db"}}}))
        .await
        .expect("patch");
    let back: Pod = client
        .patch(ns, "a", &json!({"metadata": {"labels": {"app": "web"}}}))
        .await
        .expect("patch");
    let bound = client.bind(ns, "a", "node-1").await.expect("bind");
    let deleted = client
        .delete::<Pod>(ns, "a", &DeleteOptions::default())
        .await
        .expect("delete");

    let next = async |stream: &mut crate::registry::WatchEvents<Pod>| {
        stream
            .next()
            .await
            .expect("the watch ended early")
            .expect("watch error")
    };
    assert_eq!(
        next(&mut all).await,
        WatchEvent::Added(Arc::new(created.clone()))
    );
    assert_eq!(
        next(&mut all).await,
        WatchEvent::Modified(Arc::new(relabelled.clone()))
    );
    assert_eq!(
        next(&mut all).await,
        WatchEvent::Modified(Arc::new(back.clone()))
    );
    assert_eq!(
        next(&mut all).await,
        WatchEvent::Modified(Arc::new(bound.clone()))
    );
    assert_eq!(
        next(&mut all).await,
        WatchEvent::Deleted(Arc::new(deleted.object().clone()))
    );

    assert_eq!(
        next(&mut web).await,
        WatchEvent::Added(Arc::new(created.clone()))
    );
    let mut left = created.clone();
    left.metadata.resource_version = relabelled.metadata.resource_version.clone();
    assert_eq!(
        next(&mut web).await,
        WatchEvent::Deleted(Arc::new(left)),
        "stopped matching"
    );
    assert_eq!(next(&mut web).await, WatchEvent::Added(Arc::new(back)));
    assert_eq!(next(&mut web).await, WatchEvent::Modified(Arc::new(bound)));
    let last = next(&mut web).await;
    assert_eq!(
        last,
        WatchEvent::Deleted(Arc::new(deleted.object().clone()))
    );
}

/// Oversize and invalid objects are refused and nothing is stored.
pub async fn bad_input<C: Client>(client: &C) {
    let ns = "conf-bad";
    let mut big = pod(ns, "big", "web");
    big.spec.containers[0].args = vec!["x".repeat(1024); 1600];
    let err = client.create(&big).await;
    assert!(matches!(&err, Err(e) if e.code() == 413), "{err:?}");
    let mut invalid = pod(ns, "Not_Valid", "web");
    invalid.spec.containers.clear();
    let err = client.create(&invalid).await;
    match &err {
        Err(ApiError::Invalid { errors, .. }) => {
            let text = errors.to_string();
            assert!(text.contains("metadata.name"), "{text}");
            assert!(text.contains("spec.containers"), "{text}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut with_rv = pod(ns, "rv", "web");
    with_rv.metadata.resource_version = "5".into();
    let err = client.create(&with_rv).await;
    assert!(matches!(&err, Err(e) if e.code() == 400), "{err:?}");
    let mut garbage_rv = pod(ns, "x", "web");
    client.create(&garbage_rv).await.expect("create");
    garbage_rv.metadata.resource_version = "abc".into();
    let err = client.update(&garbage_rv).await;
    assert!(matches!(&err, Err(e) if e.code() == 400), "{err:?}");
    let list = client
        .list::<Pod>(Some(ns), &ListOptions::default())
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1, "nothing else was stored");
}
