//! The stateful set decisions, for exact actions: which pod is created, deleted or replaced
//! next, under each policy and strategy.

use orchestra_api::resources::{
    ConditionStatus, Container, PodCondition, PodStatus, RollingUpdateStatefulSetStrategy,
    StatefulSetUpdateStrategy,
};
use orchestra_api::{IntOrString, LabelSelector, ObjectMeta, Time};

use super::*;

const NOW: &str = "2026-01-01T00:01:00Z";

fn now() -> jiff::Timestamp {
    NOW.parse().unwrap()
}

fn revisions() -> Revisions {
    Revisions {
        current: "web-old".into(),
        update: "web-new".into(),
    }
}

fn sts(replicas: i32) -> StatefulSet {
    let mut sts = StatefulSet {
        metadata: ObjectMeta::namespaced("ns", "web"),
        ..StatefulSet::default()
    };
    sts.metadata.uid = "sts-uid".into();
    sts.metadata.generation = Some(3);
    sts.spec.replicas = Some(replicas);
    sts.spec.service_name = "web-hl".into();
    sts.spec.selector = LabelSelector::match_labels([("app", "web")]);
    sts.spec
        .template
        .metadata
        .labels
        .insert("app".into(), "web".into());
    sts.spec.template.spec.containers = vec![Container {
        name: "web".into(),
        image: "nginx".into(),
        ..Container::default()
    }];
    orchestra_api::defaulting::default_stateful_set(&mut sts);
    sts
}

fn parallel(replicas: i32) -> StatefulSet {
    let mut sts = sts(replicas);
    sts.spec.pod_management_policy = Some(PodManagementPolicyType::Parallel);
    sts
}

fn with_partition(mut sts: StatefulSet, partition: i32, max_unavailable: i32) -> StatefulSet {
    sts.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some(StatefulSetUpdateStrategyType::RollingUpdate),
        rolling_update: Some(RollingUpdateStatefulSetStrategy {
            partition: Some(partition),
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
        }),
    });
    sts
}

fn on_delete(mut sts: StatefulSet) -> StatefulSet {
    sts.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some(StatefulSetUpdateStrategyType::OnDelete),
        rolling_update: None,
    });
    sts
}

#[derive(Clone, Copy)]
enum State {
    /// Created, no status yet.
    Pending,
    /// Running, not ready.
    Starting,
    /// Running and ready since `NOW`.
    Ready,
    Failed,
    Terminating,
}

fn pod(sts: &StatefulSet, ordinal: i32, revision: &str, state: State) -> Pod {
    let template = sts.spec.template.clone();
    let mut pod = pod_for_ordinal(sts, ordinal, revision, &template);
    let (phase, ready) = match state {
        State::Pending => (None, false),
        State::Starting => (Some(PodPhase::Running), false),
        State::Ready | State::Terminating => (Some(PodPhase::Running), true),
        State::Failed => (Some(PodPhase::Failed), false),
    };
    if matches!(state, State::Terminating) {
        pod.metadata.deletion_timestamp = Some(Time::new(now()));
    }
    if let Some(phase) = phase {
        pod.status = Some(PodStatus {
            phase: Some(phase),
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                last_transition_time: Some(Time::new(now())),
                ..PodCondition::default()
            }],
            ..PodStatus::default()
        });
    }
    pod
}

/// The plan for `sts` over `pods`.
fn decide(sts: &StatefulSet, pods: &[Pod]) -> Plan {
    let owned: Vec<&Pod> = pods.iter().collect();
    plan(sts, &owned, &revisions(), now()).unwrap()
}

fn creates(plan: &Plan) -> Vec<(i32, &str)> {
    plan.create
        .iter()
        .map(|c| (c.ordinal, c.revision.as_str()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn pods_have_stable_names_identity_labels_and_dns_names() {
    let sts = sts(3);
    let pod = pod_for_ordinal(&sts, 2, "web-new", &sts.spec.template);
    assert_eq!(pod.metadata.name, "web-2");
    assert_eq!(pod.metadata.namespace, "ns");
    let label = |key: &str| pod.metadata.labels.get(key).map(String::as_str);
    assert_eq!(label(STATEFUL_SET_POD_NAME_LABEL), Some("web-2"));
    assert_eq!(label(STATEFUL_SET_POD_INDEX_LABEL), Some("2"));
    assert_eq!(label(REVISION_HASH_LABEL), Some("web-new"));
    assert_eq!(label("app"), Some("web"));
    assert_eq!(pod.spec.hostname, "web-2");
    assert_eq!(pod.spec.subdomain, "web-hl");
    let owner = pod.metadata.controller_ref().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("StatefulSet", "sts-uid")
    );
    assert_eq!(ordinal_of(&sts, &pod), Some(2));
}

#[test]
fn only_exact_name_ordinal_names_are_ordinals() {
    let sts = sts(3);
    let named = |name: &str| Pod {
        metadata: ObjectMeta::namespaced("ns", name),
        ..Pod::default()
    };
    assert_eq!(ordinal_of(&sts, &named("web-10")), Some(10));
    for other in [
        "web-01",
        "web--1",
        "web-",
        "webx-1",
        "web-1a",
        "web-abc-1",
        "web",
    ] {
        assert_eq!(ordinal_of(&sts, &named(other)), None, "{other}");
    }
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_after_the_previous_is_ready() {
    let sts = sts(3);
    assert_eq!(creates(&decide(&sts, &[])), [(0, "web-new")]);
    // web-0 exists but is not ready: wait.
    let plan = decide(&sts, &[pod(&sts, 0, "web-new", State::Starting)]);
    assert_eq!((plan.create.len(), plan.delete.len()), (0, 0));
    let plan = decide(&sts, &[pod(&sts, 0, "web-new", State::Pending)]);
    assert!(plan.create.is_empty());
    // Ready: web-1 next.
    let plan = decide(&sts, &[pod(&sts, 0, "web-new", State::Ready)]);
    assert_eq!(creates(&plan), [(1, "web-new")]);
}

#[test]
fn min_ready_seconds_holds_the_next_pod_back_and_asks_for_a_recheck() {
    let mut sts = sts(2);
    sts.spec.min_ready_seconds = Some(10);
    let mut ready = pod(&sts, 0, "web-new", State::Ready);
    let plan = decide(&sts, std::slice::from_ref(&ready));
    assert!(plan.create.is_empty());
    assert_eq!(plan.recheck_after, Some(Duration::from_secs(10)));
    // Ready since 10 s ago: available.
    let since = now() - jiff::SignedDuration::from_secs(10);
    ready.status.as_mut().unwrap().conditions[0].last_transition_time = Some(Time::new(since));
    let plan = decide(&sts, &[ready]);
    assert_eq!(creates(&plan), [(1, "web-new")]);
    assert_eq!(plan.recheck_after, None);
}

#[test]
fn a_missing_lower_ordinal_is_recreated_before_anything_else() {
    let sts = sts(3);
    let pods = [
        pod(&sts, 1, "web-new", State::Ready),
        pod(&sts, 2, "web-new", State::Ready),
    ];
    assert_eq!(creates(&decide(&sts, &pods)), [(0, "web-new")]);
}

#[test]
fn a_failed_pod_is_deleted_then_recreated_under_its_name() {
    let sts = sts(2);
    let pods = [
        pod(&sts, 0, "web-new", State::Failed),
        pod(&sts, 1, "web-new", State::Ready),
    ];
    let plan = decide(&sts, &pods);
    assert_eq!(plan.delete, names(&["web-0"]));
    assert!(plan.create.is_empty());
    // While it terminates: nothing; once gone: created again as web-0.
    let pods = [
        pod(&sts, 0, "web-new", State::Terminating),
        pod(&sts, 1, "web-new", State::Ready),
    ];
    let plan = decide(&sts, &pods);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    let plan = decide(&sts, &pods[1..]);
    assert_eq!(creates(&plan), [(0, "web-new")]);
}

#[test]
fn ordered_scale_down_deletes_the_highest_ordinal_and_waits_for_it_to_go() {
    let sts = sts(1);
    let ready: Vec<Pod> = (0..4)
        .map(|i| pod(&sts, i, "web-new", State::Ready))
        .collect();
    assert_eq!(decide(&sts, &ready).delete, names(&["web-3"]));
    // web-3 terminating: nothing more this time.
    let mut pods = ready.clone();
    pods[3] = pod(&sts, 3, "web-new", State::Terminating);
    assert!(decide(&sts, &pods).delete.is_empty());
    // Gone: web-2 next.
    assert_eq!(decide(&sts, &ready[..3]).delete, names(&["web-2"]));
}

#[test]
fn ordered_scale_down_waits_for_unhealthy_pods() {
    let sts = sts(1);
    // A kept pod is not ready: nothing is deleted.
    let pods = [
        pod(&sts, 0, "web-new", State::Starting),
        pod(&sts, 1, "web-new", State::Ready),
    ];
    assert!(decide(&sts, &pods).delete.is_empty());
    // A lower extra pod is unhealthy: the highest must wait for it...
    let pods = [
        pod(&sts, 0, "web-new", State::Ready),
        pod(&sts, 1, "web-new", State::Starting),
        pod(&sts, 2, "web-new", State::Ready),
    ];
    assert!(decide(&sts, &pods).delete.is_empty());
    // ...but an unhealthy highest pod goes.
    let pods = [
        pod(&sts, 0, "web-new", State::Ready),
        pod(&sts, 1, "web-new", State::Ready),
        pod(&sts, 2, "web-new", State::Starting),
    ];
    assert_eq!(decide(&sts, &pods).delete, names(&["web-2"]));
}

#[test]
fn parallel_creates_and_deletes_all_at_once() {
    let sts = parallel(3);
    assert_eq!(
        creates(&decide(&sts, &[])),
        [(0, "web-new"), (1, "web-new"), (2, "web-new")]
    );
    let pods = [pod(&sts, 1, "web-new", State::Pending)];
    assert_eq!(
        creates(&decide(&sts, &pods)),
        [(0, "web-new"), (2, "web-new")]
    );
    let down = parallel(1);
    let pods: Vec<Pod> = (0..4)
        .map(|i| pod(&down, i, "web-new", State::Starting))
        .collect();
    let mut plan = decide(&down, &pods);
    plan.delete.sort();
    assert_eq!(plan.delete, names(&["web-1", "web-2", "web-3"]));
}

#[test]
fn rolling_update_replaces_the_highest_outdated_pod_first_one_at_a_time() {
    let sts = sts(3);
    let old: Vec<Pod> = (0..3)
        .map(|i| pod(&sts, i, "web-old", State::Ready))
        .collect();
    assert_eq!(decide(&sts, &old).delete, names(&["web-2"]));
    // web-2 is back at the new revision but not ready yet: wait.
    let mut pods = old.clone();
    pods[2] = pod(&sts, 2, "web-new", State::Starting);
    let plan = decide(&sts, &pods);
    assert!(plan.delete.is_empty() && plan.create.is_empty());
    // Ready: web-1 next.
    pods[2] = pod(&sts, 2, "web-new", State::Ready);
    assert_eq!(decide(&sts, &pods).delete, names(&["web-1"]));
    // The deleted pod comes back at the update revision.
    let plan = decide(&sts, &[pods[0].clone(), pods[2].clone()]);
    assert_eq!(creates(&plan), [(1, "web-new")]);
}

#[test]
fn rolling_update_stops_at_the_partition_and_keeps_lower_pods_at_the_current_revision() {
    let sts = with_partition(sts(4), 2, 1);
    let mut pods: Vec<Pod> = (0..4)
        .map(|i| pod(&sts, i, "web-old", State::Ready))
        .collect();
    pods[3] = pod(&sts, 3, "web-new", State::Ready);
    assert_eq!(decide(&sts, &pods).delete, names(&["web-2"]));
    pods[2] = pod(&sts, 2, "web-new", State::Ready);
    let plan = decide(&sts, &pods);
    assert!(
        plan.delete.is_empty(),
        "web-0 and web-1 are below the partition"
    );
    assert_eq!(plan.status.current_revision, "web-old");
    assert_eq!(
        (plan.status.current_replicas, plan.status.updated_replicas),
        (2, 2)
    );
    // A pod below the partition that is lost comes back at the current revision.
    let plan = decide(&sts, &[pods[1].clone(), pods[2].clone(), pods[3].clone()]);
    assert_eq!(creates(&plan), [(0, "web-old")]);
}

#[test]
fn max_unavailable_replaces_several_pods_at_once_counting_unavailable_ones() {
    let sts = with_partition(parallel(5), 0, 2);
    let pods: Vec<Pod> = (0..5)
        .map(|i| pod(&sts, i, "web-old", State::Ready))
        .collect();
    assert_eq!(decide(&sts, &pods).delete, names(&["web-4", "web-3"]));
    // One pod is already unavailable: only one more goes.
    let mut pods = pods;
    pods[0] = pod(&sts, 0, "web-old", State::Starting);
    assert_eq!(decide(&sts, &pods).delete, names(&["web-4"]));
}

#[test]
fn on_delete_replaces_nothing_but_recreates_at_the_update_revision() {
    let sts = on_delete(sts(2));
    let pods = [
        pod(&sts, 0, "web-old", State::Ready),
        pod(&sts, 1, "web-old", State::Ready),
    ];
    let plan = decide(&sts, &pods);
    assert!(plan.delete.is_empty() && plan.create.is_empty());
    assert_eq!(creates(&decide(&sts, &pods[..1])), [(1, "web-new")]);
}

#[test]
fn status_counts_and_completes_the_revision_when_every_pod_is_updated_and_ready() {
    let sts = sts(3);
    let pods = [
        pod(&sts, 0, "web-old", State::Ready),
        pod(&sts, 1, "web-new", State::Starting),
        pod(&sts, 2, "web-new", State::Ready),
    ];
    let status = decide(&sts, &pods).status;
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas,
            status.current_replicas,
            status.updated_replicas
        ),
        (3, 2, 2, 1, 2)
    );
    assert_eq!(
        (
            status.current_revision.as_str(),
            status.update_revision.as_str()
        ),
        ("web-old", "web-new")
    );
    assert_eq!(status.observed_generation, Some(3));
    let done: Vec<Pod> = (0..3)
        .map(|i| pod(&sts, i, "web-new", State::Ready))
        .collect();
    let status = decide(&sts, &done).status;
    assert_eq!(status.current_revision, "web-new");
    assert_eq!((status.current_replicas, status.updated_replicas), (3, 3));
}

#[test]
fn a_stateful_set_being_deleted_is_left_alone() {
    let mut sts = sts(3);
    sts.metadata.deletion_timestamp = Some(Time::new(now()));
    let plan = decide(&sts, &[]);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
}

/// `pod` with its identity labels changed: `Some(value)` sets one, `None` removes it.
fn with_identity(mut pod: Pod, name: Option<&str>, index: Option<&str>) -> Pod {
    for (key, value) in [
        (STATEFUL_SET_POD_NAME_LABEL, name),
        (STATEFUL_SET_POD_INDEX_LABEL, index),
    ] {
        match value {
            Some(value) => pod.metadata.labels.insert(key.into(), value.into()),
            None => pod.metadata.labels.remove(key),
        };
    }
    pod
}

fn relabel(name: &str, labels: &[(&str, &str)]) -> Relabel {
    Relabel {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[test]
fn identity_labels_are_the_ones_created_pods_carry() {
    let sts = sts(3);
    let pod = pod_for_ordinal(&sts, 1, "web-new", &sts.spec.template);
    for (key, value) in identity_labels(&sts, 1) {
        assert_eq!(pod.metadata.labels.get(key), Some(&value), "{key}");
    }
    assert_eq!(
        identity_labels(&sts, 1).map(|(key, _)| key),
        [STATEFUL_SET_POD_NAME_LABEL, STATEFUL_SET_POD_INDEX_LABEL]
    );
}

#[test]
fn missing_or_wrong_identity_labels_are_repaired_not_replaced() {
    let sts = sts(3);
    let pods = [
        pod(&sts, 0, "web-new", State::Ready),
        // An adopted orphan with a wrong name label and no index label.
        with_identity(pod(&sts, 1, "web-new", State::Ready), Some("web-9"), None),
        // Only the index is wrong.
        with_identity(
            pod(&sts, 2, "web-new", State::Ready),
            Some("web-2"),
            Some("7"),
        ),
    ];
    let plan = decide(&sts, &pods);
    assert_eq!(
        plan.relabel,
        [
            relabel(
                "web-1",
                &[
                    (STATEFUL_SET_POD_INDEX_LABEL, "1"),
                    (STATEFUL_SET_POD_NAME_LABEL, "web-1")
                ]
            ),
            relabel("web-2", &[(STATEFUL_SET_POD_INDEX_LABEL, "2")]),
        ]
    );
    assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
}

#[test]
fn pods_with_their_identity_labels_need_no_repair() {
    let sts = sts(3);
    let pods: Vec<Pod> = (0..3)
        .map(|i| pod(&sts, i, "web-new", State::Ready))
        .collect();
    assert!(decide(&sts, &pods).relabel.is_empty());
    assert!(decide(&parallel(3), &[]).relabel.is_empty());
}

#[test]
fn identity_repairs_do_not_wait_for_the_ordered_turn() {
    // web-0 is not ready yet, so OrderedReady does nothing else; a label update disturbs
    // nothing, so web-1 is repaired all the same.
    let sts = sts(2);
    let pods = [
        pod(&sts, 0, "web-new", State::Starting),
        with_identity(pod(&sts, 1, "web-new", State::Ready), None, Some("1")),
    ];
    let plan = decide(&sts, &pods);
    assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
    assert_eq!(
        plan.relabel,
        [relabel("web-1", &[(STATEFUL_SET_POD_NAME_LABEL, "web-1")])]
    );
}

#[test]
fn pods_on_their_way_out_are_not_repaired() {
    let sts = parallel(2);
    let unlabelled =
        |ordinal, state| with_identity(pod(&sts, ordinal, "web-new", state), None, None);
    let pods = [
        // Being deleted: its replacement is created with the labels.
        unlabelled(0, State::Terminating),
        // Finished: deleted, then recreated.
        unlabelled(1, State::Failed),
        // Beyond replicas: deleted.
        unlabelled(2, State::Ready),
    ];
    let plan = decide(&sts, &pods);
    assert_eq!(plan.delete, names(&["web-1", "web-2"]));
    assert!(plan.relabel.is_empty(), "{:?}", plan.relabel);
    // A pod the rolling update deletes is not repaired either.
    let rolling = with_partition(parallel(1), 0, 1);
    let outdated = [with_identity(
        pod(&rolling, 0, "web-old", State::Ready),
        None,
        None,
    )];
    let plan = decide(&rolling, &outdated);
    assert_eq!(plan.delete, names(&["web-0"]));
    assert!(plan.relabel.is_empty(), "{:?}", plan.relabel);
    // Nor the pods of a set being deleted.
    let mut deleting = parallel(1);
    deleting.metadata.deletion_timestamp = Some(Time::new(now()));
    let pods = [with_identity(
        pod(&deleting, 0, "web-new", State::Ready),
        None,
        None,
    )];
    assert!(decide(&deleting, &pods).relabel.is_empty());
}
