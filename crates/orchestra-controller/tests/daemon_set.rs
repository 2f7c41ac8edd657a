//! The DaemonSet controller over LocalClient in paused time: pods follow the eligible nodes
//! (selector, taints, the daemon tolerations), a rolling update never leaves more than
//! maxUnavailable nodes without an available pod, a surging one (maxSurge) starts new pods
//! next to old ones and never leaves a node uncovered, OnDelete replaces only deleted pods, and
//! every template is kept as a ControllerRevision that a rollback brings back. Adoption by
//! Kubernetes' ControllerRefManager rules: matching orphan pods are adopted (also one that
//! appears later), a pod relabelled out of the selector is released, another controller's
//! pod is left alone, a daemon set being deleted adopts nothing, one deleted with orphan
//! propagation and created again takes its pods and revision back, and an invalid selector is
//! an error that touches no pod.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::reflector::ObjectKey;
use orchestra_api::registry::{DeleteOptions, ListOptions, PropagationPolicy};
use orchestra_api::resources::{
    ConditionStatus, ControllerRevision, DaemonSet, DaemonSetStatus, DaemonSetUpdateStrategy,
    DaemonSetUpdateStrategyType, Node, Pod, PodCondition, PodPhase, PodStatus,
    RollingUpdateDaemonSet, Taint, TaintEffect,
};
use orchestra_api::{
    Client, IntOrString, LabelSelector, LabelSelectorOperator, LabelSelectorRequirement,
    LocalClient, ObjectMeta, testing,
};
use orchestra_controller::controllers::DaemonSetController;
use orchestra_controller::controllers::daemon_set::DaemonSetError;
use orchestra_controller::controllers::daemon_set::plan::{current_hash, pod_for_node, pod_node};
use orchestra_controller::controllers::history;
use orchestra_controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra_controller::controllers::pods::is_ready;
use orchestra_controller::manager::selected_controllers;
use orchestra_controller::{Context, Reconciler, SharedInformers};
use orchestra_store::MemStore;
use support::{eventually, orphan, other_controller, others_pod, start};

fn daemon_set(image: &str) -> DaemonSet {
    let mut ds = DaemonSet {
        metadata: ObjectMeta::namespaced("ns", "agent"),
        ..DaemonSet::default()
    };
    ds.spec.selector = LabelSelector::match_labels([("app", "agent")]);
    ds.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "agent".to_owned())]);
    ds.spec.template.spec = testing::pod("ns", "x", "agent").spec;
    ds.spec.template.spec.containers[0].image = image.into();
    ds
}

fn node(name: &str, role: &str, taints: &[(&str, TaintEffect)]) -> Node {
    let mut node = Node {
        metadata: ObjectMeta::named(name).with_label("role", role),
        ..Node::default()
    };
    node.spec.taints = taints
        .iter()
        .map(|(key, effect)| Taint {
            key: (*key).into(),
            effect: *effect,
            ..Taint::default()
        })
        .collect();
    node
}

/// The live pods: node -> image.
async fn placement(client: &LocalClient) -> BTreeMap<String, Vec<String>> {
    let pods = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods.items {
        if pod.metadata.deletion_timestamp.is_none() {
            out.entry(pod_node(&pod).unwrap_or("?").to_owned())
                .or_default()
                .push(pod.spec.containers[0].image.clone());
        }
    }
    out
}

async fn status(client: &LocalClient) -> DaemonSetStatus {
    let ds: DaemonSet = client.get("ns", "agent").await.unwrap();
    ds.status.unwrap_or_default()
}

fn on(nodes: &[&str], image: &str) -> BTreeMap<String, Vec<String>> {
    nodes
        .iter()
        .map(|n| ((*n).to_owned(), vec![image.to_owned()]))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn pods_follow_the_eligible_nodes() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "edge", &[])).await.unwrap();
    client
        .create(&node(
            "b",
            "edge",
            &[("dedicated", TaintEffect::NoSchedule)],
        ))
        .await
        .unwrap();
    client.create(&node("c", "core", &[])).await.unwrap();
    client
        .create(&node(
            "d",
            "edge",
            &[("node.kubernetes.io/unreachable", TaintEffect::NoExecute)],
        ))
        .await
        .unwrap();
    let mut ds = daemon_set("v1");
    ds.spec
        .template
        .spec
        .node_selector
        .insert("role".into(), "edge".into());
    let created = client.create(&ds).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    eventually("pods on a and d", || async {
        placement(&client).await == on(&["a", "d"], "v1")
            && status(&client).await.current_number_scheduled == 2
    })
    .await;
    let s = status(&client).await;
    assert_eq!((s.desired_number_scheduled, s.number_misscheduled), (2, 0));
    let pods = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    assert!(pods.items.iter().all(|p| {
        p.metadata.controller_ref().unwrap().uid == created.metadata.uid
            && p.spec.node_name.is_empty()
    }));

    // A new edge node gets a pod; a node relabelled out loses its pod.
    client.create(&node("e", "edge", &[])).await.unwrap();
    let mut a: Node = client.get("", "a").await.unwrap();
    a.metadata.labels.insert("role".into(), "core".into());
    client.update(&a).await.unwrap();
    eventually("pods on d and e", || async {
        placement(&client).await == on(&["d", "e"], "v1")
            && status(&client).await.desired_number_scheduled == 2
    })
    .await;

    // A NoExecute taint the daemon does not tolerate evicts its pod.
    let mut e: Node = client.get("", "e").await.unwrap();
    e.spec.taints.push(Taint {
        key: "maintenance".into(),
        effect: TaintEffect::NoExecute,
        ..Taint::default()
    });
    client.update(&e).await.unwrap();
    eventually("pod only on d", || async {
        placement(&client).await == on(&["d"], "v1")
    })
    .await;
    running.stop().await;
}

/// Marks every daemon pod ready 1 s (virtual) after it appears, and binds it to its node.
fn kubelet(client: LocalClient) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let pods = client
                .list::<Pod>(Some("ns"), &ListOptions::default())
                .await
                .unwrap();
            for mut pod in pods.items {
                if pod.status.is_some() || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                pod.status = Some(PodStatus {
                    phase: Some(PodPhase::Running),
                    conditions: vec![PodCondition {
                        type_: "Ready".into(),
                        status: ConditionStatus::True,
                        ..PodCondition::default()
                    }],
                    ..PodStatus::default()
                });
                let _ = client.update_status(&pod).await;
            }
        }
    })
}

/// How many of the `nodes` have no ready, live pod of `image` or any other image.
async fn nodes_without_a_ready_pod(client: &LocalClient, nodes: usize) -> usize {
    let pods = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let mut covered: Vec<String> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .filter_map(|p| pod_node(p).map(str::to_owned))
        .collect();
    covered.sort();
    covered.dedup();
    nodes - covered.len()
}

#[tokio::test(start_paused = true)]
async fn a_rolling_update_keeps_all_but_max_unavailable_nodes_covered() {
    let client = LocalClient::new(MemStore::new());
    let names = ["n1", "n2", "n3", "n4", "n5"];
    for name in names {
        client.create(&node(name, "edge", &[])).await.unwrap();
    }
    client.create(&daemon_set("v1")).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    let kubelet = kubelet(client.clone());
    eventually("v1 everywhere, ready", || async {
        placement(&client).await == on(&names, "v1") && status(&client).await.number_ready == 5
    })
    .await;

    let mut ds: DaemonSet = client.get("ns", "agent").await.unwrap();
    ds.spec.template.spec.containers[0].image = "v2".into();
    client.update(&ds).await.unwrap();
    let mut worst = 0;
    for _ in 0..2000 {
        worst = worst.max(nodes_without_a_ready_pod(&client, 5).await);
        let s = status(&client).await;
        if placement(&client).await == on(&names, "v2")
            && s.updated_number_scheduled == Some(5)
            && s.number_ready == 5
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(placement(&client).await, on(&names, "v2"), "rolled out");
    assert_eq!(worst, 1, "one node at a time (maxUnavailable 1)");
    let s = status(&client).await;
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.updated_number_scheduled,
            s.number_available,
        ),
        (5, 5, 5, Some(5), Some(5))
    );
    kubelet.abort();
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn on_delete_replaces_only_the_pods_deleted() {
    let client = LocalClient::new(MemStore::new());
    for name in ["n1", "n2"] {
        client.create(&node(name, "edge", &[])).await.unwrap();
    }
    let mut ds = daemon_set("v1");
    ds.spec.update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some(DaemonSetUpdateStrategyType::OnDelete),
        rolling_update: None,
    });
    client.create(&ds).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    eventually("v1 on both", || async {
        placement(&client).await == on(&["n1", "n2"], "v1")
    })
    .await;
    let mut ds: DaemonSet = client.get("ns", "agent").await.unwrap();
    ds.spec.template.spec.containers[0].image = "v2".into();
    client.update(&ds).await.unwrap();
    eventually("the new generation observed", || async {
        let s = status(&client).await;
        s.observed_generation == Some(2) && s.updated_number_scheduled == Some(0)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        placement(&client).await,
        on(&["n1", "n2"], "v1"),
        "nothing replaced"
    );

    let pods = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap();
    let n1 = pods
        .items
        .iter()
        .find(|p| pod_node(p) == Some("n1"))
        .unwrap();
    client
        .delete::<Pod>("ns", &n1.metadata.name, &DeleteOptions::default())
        .await
        .unwrap();
    eventually("n1 replaced with v2", || async {
        let mut want = on(&["n2"], "v1");
        want.insert("n1".into(), vec!["v2".into()]);
        placement(&client).await == want
            && status(&client).await.updated_number_scheduled == Some(1)
    })
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_surging_update_never_leaves_a_node_uncovered_nor_surges_beyond_max_surge() {
    let client = LocalClient::new(MemStore::new());
    let names = ["n1", "n2", "n3", "n4", "n5"];
    for name in names {
        client.create(&node(name, "edge", &[])).await.unwrap();
    }
    let mut ds = daemon_set("v1");
    ds.spec.update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some(DaemonSetUpdateStrategyType::RollingUpdate),
        rolling_update: Some(RollingUpdateDaemonSet {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(2)),
        }),
    });
    client.create(&ds).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    let kubelet = kubelet(client.clone());
    eventually("v1 everywhere, ready", || async {
        placement(&client).await == on(&names, "v1") && status(&client).await.number_ready == 5
    })
    .await;

    let mut ds: DaemonSet = client.get("ns", "agent").await.unwrap();
    ds.spec.template.spec.containers[0].image = "v2".into();
    client.update(&ds).await.unwrap();
    let (mut uncovered, mut most_doubled, mut saw_both) = (0, 0, false);
    for _ in 0..2000 {
        uncovered = uncovered.max(nodes_without_a_ready_pod(&client, 5).await);
        let now = placement(&client).await;
        let doubled = now.values().filter(|images| images.len() > 1).count();
        most_doubled = most_doubled.max(doubled);
        saw_both |= now
            .values()
            .any(|i| i.contains(&"v1".into()) && i.contains(&"v2".into()));
        let s = status(&client).await;
        if now == on(&names, "v2") && s.updated_number_scheduled == Some(5) && s.number_ready == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(placement(&client).await, on(&names, "v2"), "rolled out");
    assert_eq!(
        uncovered, 0,
        "maxUnavailable 0: every node always had a ready pod"
    );
    assert!(saw_both, "new pods started next to old ones");
    assert!(
        (1..=2).contains(&most_doubled),
        "at most maxSurge (2) nodes ran two pods at once, saw {most_doubled}"
    );
    kubelet.abort();
    running.stop().await;
}

/// The ControllerRevisions in namespace `ns`.
async fn revisions(client: &LocalClient) -> Vec<ControllerRevision> {
    client
        .list::<ControllerRevision>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
}

/// The daemon set's revisions: (number, image), oldest first.
async fn history(client: &LocalClient) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = revisions(client)
        .await
        .iter()
        .map(|r| {
            let template = history::revision_template(r).expect("a template");
            (r.revision, template.spec.containers[0].image.clone())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn every_template_is_kept_as_a_revision_and_a_rollback_renumbers_it() {
    let client = LocalClient::new(MemStore::new());
    for name in ["n1", "n2"] {
        client.create(&node(name, "edge", &[])).await.unwrap();
    }
    client.create(&daemon_set("v1")).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    let kubelet = kubelet(client.clone());
    eventually("revision 1 recorded, v1 everywhere", || async {
        history(&client).await == [(1, "v1".to_owned())]
            && placement(&client).await == on(&["n1", "n2"], "v1")
    })
    .await;

    let mut ds: DaemonSet = client.get("ns", "agent").await.unwrap();
    ds.spec.template.spec.containers[0].image = "v2".into();
    client.update(&ds).await.unwrap();
    eventually("revision 2 recorded, v2 everywhere", || async {
        history(&client).await == [(1, "v1".to_owned()), (2, "v2".to_owned())]
            && placement(&client).await == on(&["n1", "n2"], "v2")
    })
    .await;

    // `rollout undo`: the previous revision's template goes back into the daemon set.
    let ds: DaemonSet = client.get("ns", "agent").await.unwrap();
    let all = revisions(&client).await;
    let owned: Vec<ControllerRevision> = history::owned_by(&ds, &all).cloned().collect();
    assert_eq!(owned.len(), 2, "both revisions are the daemon set's");
    let history::RevisionRollback::To { revision, template } =
        history::rollback(&ds, &owned, None).unwrap()
    else {
        panic!("expected a rollback");
    };
    assert_eq!(revision, 1);
    let mut ds = ds;
    ds.spec.template = *template;
    client.update(&ds).await.unwrap();
    eventually("v1 back everywhere as revision 3, not a copy", || async {
        history(&client).await == [(2, "v2".to_owned()), (3, "v1".to_owned())]
            && placement(&client).await == on(&["n1", "n2"], "v1")
    })
    .await;

    kubelet.abort();
    running.stop().await;
}

/// The live pods by name: (node, uid, the uid of their controller), and a `*` after the name
/// of each one being deleted.
async fn pods(client: &LocalClient) -> BTreeMap<String, (String, String, Option<String>)> {
    client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            let mark = if p.metadata.deletion_timestamp.is_some() {
                "*"
            } else {
                ""
            };
            let node = pod_node(&p).unwrap_or("?").to_owned();
            let controller = p.metadata.controller_ref().map(|o| o.uid.clone());
            (
                format!("{}{mark}", p.metadata.name),
                (node, p.metadata.uid, controller),
            )
        })
        .collect()
}

/// Node -> the names of the pods there that `uid` controls.
async fn owned_by(client: &LocalClient, uid: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, (node, _, controller)) in pods(client).await {
        if controller.as_deref() == Some(uid) {
            out.entry(node).or_default().push(name);
        }
    }
    out
}

/// The pod `ds` would make for `node` (owned by `ds`: see [`orphan`] and [`others_pod`]).
fn daemon_pod(ds: &DaemonSet, node: &str) -> Pod {
    pod_for_node(ds, node, &current_hash(ds))
}

/// Lets the controller run on for a while (virtual time) and checks that the pods did not
/// change: it is waiting.
async fn settled(client: &LocalClient) -> BTreeMap<String, (String, String, Option<String>)> {
    let before = pods(client).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(pods(client).await, before, "the controller did not wait");
    before
}

#[tokio::test(start_paused = true)]
async fn adopts_matching_orphans_releases_relabelled_pods_and_never_steals() {
    let client = LocalClient::new(MemStore::new());
    for name in ["n1", "n2", "n3"] {
        client.create(&node(name, "edge", &[])).await.unwrap();
    }
    // The daemon set is stored first (with its defaults), its controller started later: an
    // orphan on n1 as it would make it, and on n2 a pod of another controller that matches
    // its selector too.
    let ds = client.create(&daemon_set("v1")).await.unwrap();
    let uid = ds.metadata.uid.clone();
    let orphan = client
        .create(&orphan(daemon_pod(&ds, "n1"), "orphan"))
        .await
        .unwrap();
    let other = other_controller();
    let theirs = client
        .create(&others_pod(daemon_pod(&ds, "n2"), "theirs"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));

    // The orphan serves n1 (adopted, not recreated); n2 and n3 get pods of their own.
    eventually("one owned pod per node, the orphan's on n1", || async {
        let owned = owned_by(&client, &uid).await;
        owned.len() == 3
            && owned.values().all(|names| names.len() == 1)
            && owned["n1"] == ["orphan"]
    })
    .await;
    let all = settled(&client).await;
    assert_eq!(all["orphan"].1, orphan.metadata.uid, "the same pod");
    assert_eq!(
        all["theirs"],
        (
            "n2".to_owned(),
            theirs.metadata.uid.clone(),
            Some(other.uid.clone())
        ),
        "another controller's pod is left alone"
    );
    assert_eq!(all.len(), 4, "{all:?}");

    // Relabelled out of the selector, the pod is released (not deleted) and replaced.
    let mut relabelled: Pod = client.get("ns", "orphan").await.unwrap();
    relabelled
        .metadata
        .labels
        .insert("app".into(), "debug".into());
    client.update(&relabelled).await.unwrap();
    eventually("released and replaced", || async {
        let all = pods(&client).await;
        let owned = owned_by(&client, &uid).await;
        all.get("orphan").is_some_and(|p| p.2.is_none())
            && owned
                .get("n1")
                .is_some_and(|names| names.len() == 1 && names[0] != "orphan")
    })
    .await;
    let all = settled(&client).await;
    assert_eq!(all["orphan"].1, orphan.metadata.uid);
    assert_eq!(all["theirs"].2.as_deref(), Some(other.uid.as_str()));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_orphan_that_appears_later_is_adopted() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("n1", "edge", &[])).await.unwrap();
    let ds = client.create(&daemon_set("v1")).await.unwrap();
    let uid = ds.metadata.uid.clone();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    eventually("a pod on n1", || async {
        owned_by(&client, &uid).await.len() == 1
    })
    .await;
    // Its pod is being deleted, held by a finalizer: the daemon set waits for it to be gone
    // before making another.
    let name = owned_by(&client, &uid).await["n1"][0].clone();
    let mut held: Pod = client.get("ns", &name).await.unwrap();
    held.metadata.finalizers = vec!["test.orchestra.dev/hold".into()];
    client.update(&held).await.unwrap();
    client
        .delete::<Pod>("ns", &name, &DeleteOptions::default())
        .await
        .unwrap();
    let all = settled(&client).await;
    assert_eq!(all.len(), 1, "{all:?}");

    // An orphan for n1 appears: nothing of the daemon set's changed, yet it hears of the
    // orphan (its selector matches) and adopts it.
    let orphan = client
        .create(&orphan(daemon_pod(&ds, "n1"), "orphan"))
        .await
        .unwrap();
    eventually("the orphan adopted", || async {
        pods(&client).await["orphan"].2.as_deref() == Some(uid.as_str())
    })
    .await;
    let mut held: Pod = client.get("ns", &name).await.unwrap();
    held.metadata.finalizers.clear();
    client.update(&held).await.unwrap();
    eventually("only the orphan", || async {
        pods(&client).await.keys().eq(["orphan"])
    })
    .await;
    let all = settled(&client).await;
    assert_eq!(all["orphan"].1, orphan.metadata.uid);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_daemon_set_being_deleted_adopts_nothing() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("n1", "edge", &[])).await.unwrap();
    // A finalizer holds the daemon set while it is being deleted.
    let mut held = daemon_set("v1");
    held.metadata.finalizers = vec!["test.orchestra.dev/hold".into()];
    let ds = client.create(&held).await.unwrap();
    let uid = ds.metadata.uid.clone();
    let informers = SharedInformers::new(client.clone());
    let running = start(DaemonSetController::controller(&informers));
    eventually("a pod on n1", || async {
        owned_by(&client, &uid).await.len() == 1
    })
    .await;
    client
        .delete::<DaemonSet>("ns", "agent", &DeleteOptions::default())
        .await
        .unwrap();
    let deleting: DaemonSet = client.get("ns", "agent").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    client
        .create(&orphan(daemon_pod(&ds, "n1"), "orphan"))
        .await
        .unwrap();
    let all = settled(&client).await;
    assert_eq!(
        all["orphan"].2, None,
        "adopted by a daemon set being deleted"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_daemon_set_deleted_with_orphan_propagation_and_recreated_takes_its_pods_back() {
    let client = LocalClient::new(MemStore::new());
    for name in ["n1", "n2"] {
        client.create(&node(name, "edge", &[])).await.unwrap();
    }
    let first = client.create(&daemon_set("v1")).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let set = selected_controllers(
        &informers,
        NodeLifecycleConfig::default(),
        &["daemonset", "garbagecollector"],
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(set.run(async move {
        let _ = stopped.await;
    }));
    eventually("a pod on each node and a revision", || async {
        owned_by(&client, &first.metadata.uid).await.len() == 2
            && revisions(&client).await.len() == 1
    })
    .await;
    let before = settled(&client).await;

    // `kubectl delete --cascade=orphan`: the daemon set goes, its pods and revision stay,
    // ownerless.
    let orphan = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteOptions::default()
    };
    client
        .delete::<DaemonSet>("ns", "agent", &orphan)
        .await
        .unwrap();
    eventually("everything orphaned", || async {
        let revisions = revisions(&client).await;
        client.get::<DaemonSet>("ns", "agent").await.is_err()
            && pods(&client).await.values().all(|p| p.2.is_none())
            && revisions.len() == 1
            && revisions[0].metadata.owner_references.is_empty()
    })
    .await;

    // The same daemon set again: it adopts the pods and the revision, and starts no pod.
    let second = client.create(&daemon_set("v1")).await.unwrap();
    assert_ne!(second.metadata.uid, first.metadata.uid);
    let adopted = |uid: Option<&str>| uid == Some(second.metadata.uid.as_str());
    eventually("everything adopted", || async {
        let revisions = revisions(&client).await;
        pods(&client)
            .await
            .values()
            .all(|p| adopted(p.2.as_deref()))
            && revisions.len() == 1
            && adopted(
                revisions[0]
                    .metadata
                    .controller_ref()
                    .map(|o| o.uid.as_str()),
            )
    })
    .await;
    let after = settled(&client).await;
    let uids = |all: &BTreeMap<String, (String, String, Option<String>)>| {
        all.iter()
            .map(|(name, (node, uid, _))| (name.clone(), node.clone(), uid.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(uids(&after), uids(&before), "the same pods, none restarted");
    eventually("the status counts the adopted pods", || async {
        status(&client).await.current_number_scheduled == 2
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_invalid_selector_is_an_error_naming_it_and_touches_no_pod() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("n1", "edge", &[])).await.unwrap();
    let ds = client.create(&daemon_set("v1")).await.unwrap();
    let orphan = client
        .create(&orphan(daemon_pod(&ds, "n1"), "orphan"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let controller = DaemonSetController::new(&informers);
    informers
        .informer::<Pod>()
        .wait_until_ready()
        .await
        .unwrap();
    // Validation refuses such a selector, so it reaches the reconciler directly.
    let mut bad = ds.clone();
    bad.spec.selector.match_expressions = vec![LabelSelectorRequirement {
        key: "tier".into(),
        operator: LabelSelectorOperator::In,
        values: Vec::new(),
    }];
    let ctx = Context::new("daemonset", ObjectKey::of(&bad));
    let err = controller
        .reconcile(Arc::new(bad), &ctx)
        .await
        .expect_err("an invalid selector");
    assert!(matches!(err, DaemonSetError::Selector { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("\"ns/agent\" has an invalid selector") && message.contains("tier"),
        "{message}"
    );
    let all = client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 1, "no pod created");
    assert_eq!(
        all[0].metadata.resource_version, orphan.metadata.resource_version,
        "the orphan untouched"
    );
}
