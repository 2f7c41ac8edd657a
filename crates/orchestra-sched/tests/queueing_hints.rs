//! Queueing hints: which cluster changes move a pod that no node accepted back to be tried.
//!
//! - per plugin, the decision for each kind of change (pure functions of the old node, the
//!   new node and the pod);
//! - the framework's combination over the plugins that rejected a pod;
//! - the queue: a node status report (a heartbeat) moves no pod, a taint removal moves only
//!   the pod a taint kept out;
//! - no pod is stranded: over random clusters (with a pod nominated somewhere), pods and
//!   changes (nodes added, updated, deleted; assigned pods deleted and added; the nomination
//!   cleared), whenever a change makes an unschedulable pod schedulable, the hint for the
//!   plugins that rejected it said Queue.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::Quantity;
use orchestra_api::meta::{LabelSelector, ObjectMeta, Time};
use orchestra_api::resources::{
    Affinity, ConditionStatus, Container, ContainerPort, Node, NodeCondition, NodeSpec, NodeStatus,
    Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity, PodSpec, ResourceRequirements, Taint,
    TaintEffect, Toleration, TopologySpreadConstraint, UnsatisfiableConstraintAction,
};
use orchestra_sched::framework::{
    ClusterEvent, Extensions, FilterPlugin, NodeChange, Plugin, QueueingHint, Status,
};
use orchestra_sched::plugins::{
    self, Coscheduling, InterPodAffinity, NodeAffinity, NodeName, NodePorts, NodeResourcesFit,
    NodeUnschedulable, PodTopologySpread, TaintToleration,
};
use orchestra_sched::queue::{LessFn, Place, SchedulingQueue};
use orchestra_sched::{ClusterSnapshot, CycleState, Framework, NodeInfo, PodInfo, Profile};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use QueueingHint::{Queue, Skip};

// ---- Builders ----------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct NodeParams {
    zone: Option<u8>,
    /// `(key t0/t1, effect 0 NoSchedule / 1 NoExecute / 2 PreferNoSchedule)`.
    taint: Option<(u8, u8)>,
    cordoned: bool,
    cpu: i64,
    pods: i64,
}

fn node(name: &str, p: &NodeParams) -> Node {
    let mut metadata = ObjectMeta::named(name).with_label("kubernetes.io/hostname", name);
    if let Some(zone) = p.zone {
        metadata = metadata.with_label("zone", format!("z{zone}"));
    }
    Node {
        metadata,
        spec: NodeSpec {
            unschedulable: p.cordoned,
            taints: p
                .taint
                .map(|(k, effect)| Taint {
                    key: format!("t{k}"),
                    value: "x".into(),
                    effect: [
                        TaintEffect::NoSchedule,
                        TaintEffect::NoExecute,
                        TaintEffect::PreferNoSchedule,
                    ][usize::from(effect % 3)],
                    time_added: None,
                })
                .into_iter()
                .collect(),
            ..NodeSpec::default()
        },
        status: Some(NodeStatus {
            allocatable: [
                ("cpu".to_owned(), Quantity::from_value(p.cpu)),
                ("memory".to_owned(), Quantity::parse("8Gi").unwrap()),
                ("pods".to_owned(), Quantity::from_value(p.pods)),
            ]
            .into(),
            conditions: vec![NodeCondition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                ..NodeCondition::default()
            }],
            ..NodeStatus::default()
        }),
    }
}

fn plain_node(name: &str, cpu: i64) -> Node {
    node(
        name,
        &NodeParams {
            zone: Some(0),
            taint: None,
            cordoned: false,
            cpu,
            pods: 110,
        },
    )
}

#[derive(Clone, Debug, Default)]
struct PodParams {
    /// Millicores.
    cpu: i64,
    host_port: bool,
    zone_selector: Option<u8>,
    tolerate: Option<u8>,
    /// Carries `app: web` (counted by spread and anti-affinity).
    web: bool,
    anti_affinity: bool,
    /// Requires a pod with `app: web` in its zone.
    affinity: bool,
    spread: bool,
    node_name: Option<u8>,
    priority: i32,
}

fn pod(name: &str, p: &PodParams) -> Pod {
    let selector = Some(LabelSelector::match_labels([("app", "web")]));
    let mut metadata = ObjectMeta::namespaced("default", name);
    if p.web {
        metadata = metadata.with_label("app", "web");
    }
    Pod {
        metadata,
        spec: PodSpec {
            node_name: p.node_name.map(|n| format!("n{n}")).unwrap_or_default(),
            containers: vec![Container {
                name: "c".into(),
                resources: ResourceRequirements {
                    requests: [("cpu".to_owned(), Quantity::from_milli(p.cpu))].into(),
                    ..ResourceRequirements::default()
                },
                ports: p
                    .host_port
                    .then(|| ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..ContainerPort::default()
                    })
                    .into_iter()
                    .collect(),
                ..Container::default()
            }],
            node_selector: p
                .zone_selector
                .map(|z| BTreeMap::from([("zone".to_owned(), format!("z{z}"))]))
                .unwrap_or_default(),
            tolerations: p
                .tolerate
                .map(|k| Toleration {
                    key: format!("t{k}"),
                    value: "x".into(),
                    ..Toleration::default()
                })
                .into_iter()
                .collect(),
            affinity: (p.anti_affinity || p.affinity).then(|| Affinity {
                pod_anti_affinity: p.anti_affinity.then(|| PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                        label_selector: selector.clone(),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    }],
                    ..PodAntiAffinity::default()
                }),
                pod_affinity: p.affinity.then(|| PodAffinity {
                    required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                        label_selector: selector.clone(),
                        topology_key: "zone".into(),
                        ..PodAffinityTerm::default()
                    }],
                    ..PodAffinity::default()
                }),
                ..Affinity::default()
            }),
            topology_spread_constraints: p
                .spread
                .then(|| TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: "zone".into(),
                    when_unsatisfiable: UnsatisfiableConstraintAction::DoNotSchedule,
                    label_selector: selector.clone(),
                    min_domains: None,
                })
                .into_iter()
                .collect(),
            priority: (p.priority != 0).then_some(p.priority),
            ..PodSpec::default()
        },
        status: None,
    }
}

fn info(pod: Pod) -> PodInfo {
    PodInfo::new(pod).expect("a valid pod")
}

fn cpu_pod(millis: i64) -> PodInfo {
    info(pod(
        "p",
        &PodParams {
            cpu: millis,
            ..PodParams::default()
        },
    ))
}

/// The hint of `plugin` for `pod` when `old` becomes `new`.
fn on_update(plugin: &dyn Plugin, pod: &PodInfo, old: &Node, new: &Node) -> QueueingHint {
    let change = NodeChange::between(old, new);
    let (old, new) = (NodeInfo::new(old.clone()), NodeInfo::new(new.clone()));
    plugin.queueing_hint(
        pod,
        &ClusterEvent::NodeUpdated {
            old: &old,
            new: &new,
            change,
        },
    )
}

fn with_taint(mut n: Node, key: &str, effect: TaintEffect) -> Node {
    n.spec.taints.push(Taint {
        key: key.into(),
        value: "x".into(),
        effect,
        time_added: None,
    });
    n
}

fn heartbeat(mut n: Node) -> Node {
    let status = n.status.as_mut().expect("status");
    status.conditions[0].last_heartbeat_time = Some(Time::now());
    n
}

// ---- Per plugin --------------------------------------------------------------------------

#[test]
fn node_resources_fit_queues_on_room_for_the_pod() {
    let fit = NodeResourcesFit::default();
    let wants_3 = cpu_pod(3000);
    let (small, big) = (plain_node("n0", 2), plain_node("n0", 4));
    // Allocatable grew in CPU, which the pod asks for, enough for it: Queue.
    assert_eq!(on_update(&fit, &wants_3, &small, &big), Queue);
    // Grew, but not enough.
    assert_eq!(on_update(&fit, &cpu_pod(5000), &small, &big), Skip);
    // Shrank.
    assert_eq!(on_update(&fit, &wants_3, &big, &small), Skip);
    // Memory grew; the pod asks for CPU only (and has room for its pod slot already).
    let mut more_memory = small.clone();
    more_memory
        .status
        .as_mut()
        .unwrap()
        .allocatable
        .insert("memory".into(), Quantity::parse("16Gi").unwrap());
    assert_eq!(on_update(&fit, &wants_3, &small, &more_memory), Skip);
    // Labels, taints, heartbeats: Skip.
    let relabelled = small.clone().tap_label("zone", "z1");
    assert_eq!(on_update(&fit, &wants_3, &small, &relabelled), Skip);
    assert_eq!(
        on_update(&fit, &wants_3, &big, &heartbeat(big.clone())),
        Skip
    );
    // A pod deleted frees room: Queue; a node deleted frees none elsewhere.
    assert_eq!(
        fit.queueing_hint(&wants_3, &ClusterEvent::AssignedPodDeleted),
        Queue
    );
    assert_eq!(
        fit.queueing_hint(&wants_3, &ClusterEvent::NodeDeleted(&small)),
        Skip
    );
    // A node added with room: Queue; without: Skip.
    let (small, big) = (NodeInfo::new(small), NodeInfo::new(big));
    assert_eq!(
        fit.queueing_hint(&wants_3, &ClusterEvent::NodeAdded(&big)),
        Queue
    );
    assert_eq!(
        fit.queueing_hint(&wants_3, &ClusterEvent::NodeAdded(&small)),
        Skip
    );
}

#[test]
fn node_resources_fit_reads_the_pods_already_on_the_node() {
    let fit = NodeResourcesFit::default();
    let old = plain_node("n0", 2);
    let new = plain_node("n0", 4);
    let mut busy = ClusterSnapshot::from_objects(
        [new.clone()],
        [{
            let mut p = pod(
                "running",
                &PodParams {
                    cpu: 2000,
                    ..PodParams::default()
                },
            );
            p.spec.node_name = "n0".into();
            p
        }],
    )
    .unwrap();
    let old_info = NodeInfo::new(old.clone());
    let event = |new: &NodeInfo| {
        fit.queueing_hint(
            &cpu_pod(3000),
            &ClusterEvent::NodeUpdated {
                old: &old_info,
                new,
                change: NodeChange::between(&old, new.node()),
            },
        )
    };
    // 4 CPUs with 2 taken leave 2: still too little for 3.
    assert_eq!(event(busy.get("n0").unwrap()), Skip);
    busy.remove_pod("default/running").unwrap();
    assert_eq!(event(busy.get("n0").unwrap()), Queue);
}

trait TapLabel {
    fn tap_label(self, key: &str, value: &str) -> Self;
}
impl TapLabel for Node {
    fn tap_label(mut self, key: &str, value: &str) -> Self {
        self.metadata.labels.insert(key.into(), value.into());
        self
    }
}

#[test]
fn taint_toleration_queues_when_the_last_untolerated_taint_goes() {
    let plugin = TaintToleration;
    let pod = cpu_pod(0);
    let clean = plain_node("n0", 4);
    let tainted = with_taint(clean.clone(), "t0", TaintEffect::NoSchedule);
    assert_eq!(on_update(&plugin, &pod, &tainted, &clean), Queue);
    // Replaced by another untolerated taint; softened to PreferNoSchedule counts as gone.
    let other = with_taint(clean.clone(), "t1", TaintEffect::NoExecute);
    assert_eq!(on_update(&plugin, &pod, &tainted, &other), Skip);
    let prefer = with_taint(clean.clone(), "t0", TaintEffect::PreferNoSchedule);
    assert_eq!(on_update(&plugin, &pod, &tainted, &prefer), Queue);
    // Tainted with one the pod tolerates: it was not rejected by taints before either.
    let tolerant = info(pod_with(|p| p.tolerate = Some(0)));
    assert_eq!(on_update(&plugin, &tolerant, &clean, &tainted), Skip);
    // Allocatable, labels, heartbeats, pods: Skip.
    assert_eq!(
        on_update(&plugin, &pod, &tainted, &heartbeat(tainted.clone())),
        Skip
    );
    let grown = with_taint(plain_node("n0", 8), "t0", TaintEffect::NoSchedule);
    assert_eq!(on_update(&plugin, &pod, &tainted, &grown), Skip);
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::AssignedPodDeleted),
        Skip
    );
    // A node added: Queue only if the pod tolerates its taints.
    let added = NodeInfo::new(tainted);
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::NodeAdded(&added)),
        Skip
    );
    assert_eq!(
        plugin.queueing_hint(&tolerant, &ClusterEvent::NodeAdded(&added)),
        Queue
    );
}

fn pod_with(f: impl FnOnce(&mut PodParams)) -> Pod {
    let mut p = PodParams::default();
    f(&mut p);
    pod("p", &p)
}

#[test]
fn node_affinity_queues_when_the_labels_come_to_match() {
    let plugin = NodeAffinity;
    let pod = info(pod_with(|p| p.zone_selector = Some(1)));
    let z0 = plain_node("n0", 4);
    let z1 = z0.clone().tap_label("zone", "z1");
    assert_eq!(on_update(&plugin, &pod, &z0, &z1), Queue);
    assert_eq!(on_update(&plugin, &pod, &z1, &z0), Skip);
    // An unrelated label on a node that already matched, or still does not.
    assert_eq!(
        on_update(&plugin, &pod, &z1, &z1.clone().tap_label("disk", "ssd")),
        Skip
    );
    assert_eq!(
        on_update(&plugin, &pod, &z0, &z0.clone().tap_label("disk", "ssd")),
        Skip
    );
    // Taints and pods are none of its business.
    let tainted = with_taint(z0.clone(), "t0", TaintEffect::NoSchedule);
    assert_eq!(on_update(&plugin, &pod, &tainted, &z0), Skip);
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::AssignedPodDeleted),
        Skip
    );
}

#[test]
fn node_unschedulable_queues_on_uncordon_only() {
    let plugin = NodeUnschedulable;
    let pod = cpu_pod(0);
    let open = plain_node("n0", 4);
    let mut cordoned = open.clone();
    cordoned.spec.unschedulable = true;
    assert_eq!(on_update(&plugin, &pod, &cordoned, &open), Queue);
    assert_eq!(on_update(&plugin, &pod, &open, &cordoned), Skip);
    assert_eq!(
        on_update(&plugin, &pod, &cordoned, &heartbeat(cordoned.clone())),
        Skip
    );
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::AssignedPodDeleted),
        Skip
    );
}

#[test]
fn node_name_queues_only_when_its_node_is_added() {
    let plugin = NodeName;
    let pod = info(pod_with(|p| p.node_name = Some(7)));
    let n7 = plain_node("n7", 4);
    let n8 = NodeInfo::new(plain_node("n8", 4));
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::NodeAdded(&n8)),
        Skip
    );
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::NodeAdded(&NodeInfo::new(n7.clone()))),
        Queue
    );
    // No update changes a node's name.
    assert_eq!(
        on_update(&plugin, &pod, &n7, &n7.clone().tap_label("a", "b")),
        Skip
    );
}

#[test]
fn node_ports_queues_on_pods_leaving() {
    let plugin = NodePorts;
    let pod = info(pod_with(|p| p.host_port = true));
    let n = plain_node("n0", 4);
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::AssignedPodDeleted),
        Queue
    );
    assert_eq!(on_update(&plugin, &pod, &n, &plain_node("n0", 8)), Skip);
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::NodeDeleted(&n)),
        Skip
    );
}

#[test]
fn topology_plugins_queue_on_anything_that_moves_domains() {
    let pod = info(pod_with(|p| {
        p.spread = true;
        p.anti_affinity = true;
        p.web = true;
    }));
    let n = plain_node("n0", 4);
    for plugin in [
        &InterPodAffinity::default() as &dyn Plugin,
        &PodTopologySpread,
    ] {
        assert_eq!(
            on_update(plugin, &pod, &n, &n.clone().tap_label("zone", "z1")),
            Queue
        );
        assert_eq!(
            plugin.queueing_hint(&pod, &ClusterEvent::NodeDeleted(&n)),
            Queue
        );
        assert_eq!(
            plugin.queueing_hint(&pod, &ClusterEvent::AssignedPodDeleted),
            Queue
        );
        let tainted = with_taint(n.clone(), "t0", TaintEffect::NoSchedule);
        assert_eq!(on_update(plugin, &pod, &tainted, &n), Skip);
        assert_eq!(on_update(plugin, &pod, &n, &heartbeat(n.clone())), Skip);
    }
}

#[test]
fn coscheduling_waits_for_the_pod_itself_to_change() {
    let plugin = Coscheduling::default();
    let pod = cpu_pod(0);
    assert_eq!(
        plugin.queueing_hint(&pod, &ClusterEvent::AssignedPodDeleted),
        Skip
    );
    assert_eq!(plugin.queueing_hint(&pod, &ClusterEvent::Resync), Queue);
}

/// A node `n0` in zone z0 holding `pod` (assigned there), and the pod's info in it.
fn with_assigned(pod: Pod) -> (ClusterSnapshot, String) {
    let mut p = pod;
    p.spec.node_name = "n0".into();
    let key = format!("{}/{}", p.metadata.namespace, p.metadata.name);
    let cluster = ClusterSnapshot::from_objects([plain_node("n0", 4)], [p]).unwrap();
    (cluster, key)
}

/// The hint of `plugin` for `pending` when the pod `added` is assigned to `n0`.
fn on_added(plugin: &dyn Plugin, pending: &PodInfo, added: Pod) -> QueueingHint {
    let (cluster, key) = with_assigned(added);
    let node = cluster.get("n0").unwrap();
    let pod = node.pods().iter().find(|p| p.key() == key).unwrap();
    plugin.queueing_hint(pending, &ClusterEvent::AssignedPodAdded { pod, node })
}

#[test]
fn an_assigned_pod_added_helps_only_affinity_and_spread_that_count_it() {
    let web = pod_with(|p| p.web = true);
    let other = pod_with(|_| {});
    // InterPodAffinity: a pod needing a web pod nearby is helped by a web pod, not another;
    // anti-affinity is never helped by a pod coming.
    let needs_web = info(pod_with(|p| p.affinity = true));
    let avoids_web = info(pod_with(|p| p.anti_affinity = true));
    let affinity = InterPodAffinity::default();
    assert_eq!(on_added(&affinity, &needs_web, web.clone()), Queue);
    assert_eq!(on_added(&affinity, &needs_web, other.clone()), Skip);
    assert_eq!(on_added(&affinity, &avoids_web, web.clone()), Skip);
    // A web pod in another namespace does not match the term (its own namespace only).
    let mut foreign = web.clone();
    foreign.metadata.namespace = "other".into();
    assert_eq!(on_added(&affinity, &needs_web, foreign.clone()), Skip);
    // PodTopologySpread: a counted pod (same namespace, matching) on a node with the key.
    let spread = info(pod_with(|p| {
        p.spread = true;
        p.web = true;
    }));
    assert_eq!(on_added(&PodTopologySpread, &spread, web.clone()), Queue);
    assert_eq!(on_added(&PodTopologySpread, &spread, other.clone()), Skip);
    assert_eq!(on_added(&PodTopologySpread, &spread, foreign), Skip);
    // Room, ports, taints, labels: a pod coming helps none of them.
    for plugin in [
        &NodeResourcesFit::default() as &dyn Plugin,
        &NodePorts,
        &TaintToleration,
        &NodeAffinity,
        &NodeUnschedulable,
        &NodeName,
    ] {
        assert_eq!(
            on_added(plugin, &cpu_pod(3000), web.clone()),
            Skip,
            "{}",
            plugin.name()
        );
    }
}

#[test]
fn a_nomination_cleared_helps_the_pods_it_was_counted_for() {
    let nominated = |priority: i32| {
        info(pod(
            "preemptor",
            &PodParams {
                cpu: 2000,
                host_port: true,
                priority,
                ..PodParams::default()
            },
        ))
    };
    let cleared = |plugin: &dyn Plugin, pending: &PodInfo, priority: i32| {
        let pod = nominated(priority);
        plugin.queueing_hint(
            pending,
            &ClusterEvent::NominationCleared {
                pod: &pod,
                node: "n0",
            },
        )
    };
    let pending = info(pod(
        "p",
        &PodParams {
            cpu: 3000,
            host_port: true,
            priority: 5,
            ..PodParams::default()
        },
    ));
    // Counted for the pending pod only when of at least its priority.
    for plugin in [
        &NodeResourcesFit::default() as &dyn Plugin,
        &NodePorts,
        &InterPodAffinity::default(),
        &PodTopologySpread,
    ] {
        assert_eq!(cleared(plugin, &pending, 5), Queue, "{}", plugin.name());
        assert_eq!(cleared(plugin, &pending, 9), Queue, "{}", plugin.name());
        assert_eq!(cleared(plugin, &pending, 4), Skip, "{}", plugin.name());
    }
    // The node object's plugins never counted it.
    for plugin in [
        &TaintToleration as &dyn Plugin,
        &NodeAffinity,
        &NodeUnschedulable,
        &NodeName,
        &Coscheduling::default(),
    ] {
        assert_eq!(cleared(plugin, &pending, 9), Skip, "{}", plugin.name());
    }
}

#[test]
fn a_lower_priority_pod_kept_out_by_a_nomination_moves_when_it_is_cleared() {
    let framework = Arc::new(Framework::new(plugins::default_profile()));
    let mut cluster = ClusterSnapshot::from_objects([plain_node("n0", 4)], []).unwrap();
    let preemptor = Arc::new(info(pod(
        "preemptor",
        &PodParams {
            cpu: 3000,
            priority: 10,
            ..PodParams::default()
        },
    )));
    cluster.nominate(preemptor.clone(), "n0").unwrap();
    let low = Arc::new(info(pod(
        "low",
        &PodParams {
            cpu: 2000,
            ..PodParams::default()
        },
    )));
    // The nomination keeps the low pod out.
    let rejected = framework
        .schedule_pod(&low, &cluster)
        .expect_err("3 of 4 CPUs are held for the preemptor")
        .rejected_by();
    assert_eq!(rejected, vec!["NodeResourcesFit"]);
    let mut q = queue(&framework);
    let t0 = Duration::from_secs(1);
    q.add(low.clone(), t0);
    q.pop(t0).expect("active");
    assert!(q.requeue_unschedulable("default/low", t0, rejected));
    // A pod added elsewhere does not move it; the nomination cleared does, and it fits.
    let (other_cluster, key) = with_assigned(pod_with(|p| p.web = true));
    let node = other_cluster.get("n0").unwrap();
    let added = node.pods().iter().find(|p| p.key() == key).unwrap();
    let event = ClusterEvent::AssignedPodAdded { pod: added, node };
    q.on_event(t0, |pod, by| framework.queueing_hint(pod, by, &event));
    assert!(matches!(
        q.place("default/low"),
        Some(Place::Unschedulable(_))
    ));
    cluster.clear_nomination(preemptor.key());
    let event = ClusterEvent::NominationCleared {
        pod: &preemptor,
        node: "n0",
    };
    q.on_event(t0, |pod, by| framework.queueing_hint(pod, by, &event));
    assert!(!matches!(
        q.place("default/low"),
        Some(Place::Unschedulable(_))
    ));
    assert!(framework.schedule_pod(&low, &cluster).is_ok());
}

// ---- The framework ----------------------------------------------------------------------

/// A custom Filter that keeps its default hint.
#[derive(Debug, Default)]
struct ReadyOnly;
impl Plugin for ReadyOnly {
    fn name(&self) -> &'static str {
        "ReadyOnly"
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().filter(self)
    }
}
impl FilterPlugin for ReadyOnly {
    fn filter(&self, _: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        if node.node().is_ready() {
            Status::success()
        } else {
            Status::unschedulable("node(s) not ready")
        }
    }
}

#[test]
fn the_framework_asks_the_plugins_that_rejected_the_pod() {
    let framework = Framework::new(plugins::default_profile());
    let pod = cpu_pod(3000);
    let (small, big) = (plain_node("n0", 2), plain_node("n0", 4));
    let (old, new) = (NodeInfo::new(small.clone()), NodeInfo::new(big.clone()));
    let grew = ClusterEvent::NodeUpdated {
        old: &old,
        new: &new,
        change: NodeChange::between(&small, &big),
    };
    let hint = |rejected: Option<&[&'static str]>, event: &ClusterEvent<'_>| {
        framework.queueing_hint(&pod, rejected, event)
    };
    assert_eq!(hint(Some(&["TaintToleration"]), &grew), Skip);
    assert_eq!(
        hint(Some(&["NodeResourcesFit", "TaintToleration"]), &grew),
        Queue
    );
    // Nothing recorded, or a plugin the profile does not have: every event moves the pod.
    assert_eq!(hint(Some(&[]), &grew), Queue);
    assert_eq!(hint(Some(&["Framework"]), &grew), Queue);
    // In flight: any plugin of the profile.
    assert_eq!(hint(None, &grew), Queue);
    let (hb_old, hb_new) = (
        NodeInfo::new(big.clone()),
        NodeInfo::new(heartbeat(big.clone())),
    );
    let beat = ClusterEvent::NodeUpdated {
        old: &hb_old,
        new: &hb_new,
        change: NodeChange::between(&big, hb_new.node()),
    };
    assert_eq!(hint(None, &beat), Skip);
    assert_eq!(
        hint(Some(&["TaintToleration"]), &ClusterEvent::Resync),
        Queue
    );

    // A custom plugin without a hint of its own is asked nothing: any change may help.
    let custom = Framework::new(
        Profile::new("custom")
            .with_plugin(Arc::new(ReadyOnly), 1)
            .unwrap(),
    );
    assert_eq!(
        custom.queueing_hint(&pod, Some(&["ReadyOnly"]), &beat),
        Queue
    );
}

// ---- The queue ---------------------------------------------------------------------------

fn queue(framework: &Arc<Framework>) -> SchedulingQueue {
    let f = framework.clone();
    let less: LessFn = Arc::new(move |a, b| f.less(a, b));
    SchedulingQueue::new(less)
}

#[test]
fn a_heartbeat_moves_no_pod_and_a_taint_removal_moves_only_the_pods_it_kept_out() {
    let framework = Arc::new(Framework::new(plugins::default_profile()));
    let mut q = queue(&framework);
    let t0 = Duration::from_secs(10);
    let rejected: [(&str, &[&'static str]); 7] = [
        ("fit", &["NodeResourcesFit"]),
        ("taint", &["TaintToleration"]),
        ("affinity", &["NodeAffinity"]),
        ("cordon", &["NodeUnschedulable"]),
        ("ports", &["NodePorts"]),
        ("spread", &["PodTopologySpread"]),
        ("anti", &["InterPodAffinity"]),
    ];
    for (name, by) in rejected {
        // The affinity pod wants zone z2 (a pod without a selector is never rejected by
        // NodeAffinity, and its hint knows it).
        let params = PodParams {
            zone_selector: (name == "affinity").then_some(2),
            ..PodParams::default()
        };
        let p = Arc::new(info(pod(name, &params)));
        q.add(p, t0);
        q.pop(t0).expect("active");
        assert!(q.requeue_unschedulable(&format!("default/{name}"), t0, by.to_vec()));
    }
    let unschedulable = |q: &SchedulingQueue| q.count(|p| matches!(p, Place::Unschedulable(_)));
    assert_eq!(unschedulable(&q), 7);

    let tainted = with_taint(plain_node("n0", 4), "t0", TaintEffect::NoSchedule);
    let notify = |q: &mut SchedulingQueue, old: &Node, new: &Node, at: Duration| {
        let (old_info, new_info) = (NodeInfo::new(old.clone()), NodeInfo::new(new.clone()));
        let event = ClusterEvent::NodeUpdated {
            old: &old_info,
            new: &new_info,
            change: NodeChange::between(old, new),
        };
        q.on_event(at, |pod, by| framework.queueing_hint(pod, by, &event));
    };
    // The node reports its status: a new heartbeat time. Nothing moves.
    let t1 = t0 + Duration::from_secs(1);
    notify(&mut q, &tainted, &heartbeat(tainted.clone()), t1);
    assert_eq!(unschedulable(&q), 7);
    assert_eq!(
        q.next_wakeup(),
        Some(t0 + orchestra_sched::queue::UNSCHEDULABLE_FLUSH)
    );
    // Its taint is removed: the pod kept out by the taint moves, the others stay.
    let t2 = t0 + Duration::from_secs(2);
    notify(&mut q, &tainted, &plain_node("n0", 4), t2);
    assert_eq!(unschedulable(&q), 6);
    assert!(!matches!(
        q.place("default/taint"),
        Some(Place::Unschedulable(_))
    ));
    assert_eq!(q.pop(t2).expect("moved").pod.key(), "default/taint");
    // A relabel moves the affinity, spread and anti-affinity pods.
    let relabelled = plain_node("n0", 4).tap_label("zone", "z2");
    notify(&mut q, &plain_node("n0", 4), &relabelled, t2);
    assert_eq!(unschedulable(&q), 3);
    for key in ["default/fit", "default/cordon", "default/ports"] {
        assert!(
            matches!(q.place(key), Some(Place::Unschedulable(_))),
            "{key}"
        );
    }
}

// ---- No pod is stranded ------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Change {
    Update(usize, NodeParams),
    Heartbeat(usize),
    Add(NodeParams),
    DeleteNode(usize),
    DeletePod(usize),
    /// A pod assigned to node `.0`.
    AddPod(usize, PodParams),
    /// The nomination (if any) is cleared.
    ClearNomination,
}

fn node_params() -> impl Strategy<Value = NodeParams> {
    (
        proptest::option::weighted(0.8, 0u8..3),
        proptest::option::weighted(0.4, (0u8..2, 0u8..3)),
        proptest::bool::weighted(0.2),
        1i64..5,
        1i64..4,
    )
        .prop_map(|(zone, taint, cordoned, cpu, pods)| NodeParams {
            zone,
            taint,
            cordoned,
            cpu,
            pods,
        })
}

fn pod_params() -> impl Strategy<Value = PodParams> {
    (
        (0i64..4).prop_map(|c| c * 1000),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.3, 0u8..3),
        proptest::option::weighted(0.3, 0u8..2),
        any::<bool>(),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.1, 0u8..4),
        (proptest::bool::weighted(0.2), -1i32..2),
    )
        .prop_map(
            |(
                cpu,
                host_port,
                zone_selector,
                tolerate,
                web,
                anti_affinity,
                spread,
                node_name,
                (affinity, priority),
            )| {
                PodParams {
                    cpu,
                    host_port,
                    zone_selector,
                    tolerate,
                    web,
                    anti_affinity,
                    affinity,
                    spread,
                    node_name,
                    priority,
                }
            },
        )
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0usize..8, node_params()).prop_map(|(i, p)| Change::Update(i, p)),
        1 => (0usize..8).prop_map(Change::Heartbeat),
        2 => node_params().prop_map(Change::Add),
        1 => (0usize..8).prop_map(Change::DeleteNode),
        3 => (0usize..16).prop_map(Change::DeletePod),
        // Half the pods added carry `app: web`, which affinity and spreading count.
        4 => (0usize..8, pod_params(), any::<bool>()).prop_map(|(i, mut p, web)| {
            p.web |= web;
            Change::AddPod(i, p)
        }),
        2 => Just(Change::ClearNomination),
    ]
}

/// Nodes; assigned pods (node index, pod); a pod nominated to a node (node index, pod);
/// the pending pod; the change.
type Case = (
    Vec<NodeParams>,
    Vec<(usize, PodParams)>,
    Option<(usize, PodParams)>,
    PodParams,
    Change,
);

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(node_params(), 1..4),
        proptest::collection::vec((0usize..8, pod_params()), 0..6),
        proptest::option::weighted(0.4, (0usize..8, pod_params())),
        pod_params(),
        change(),
    )
}

/// What happened in one case, for the counts that show the test is not vacuous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The pod fitted before the change: nothing to check.
    Irrelevant,
    /// The change made it schedulable, and the hint said Queue.
    Helped,
    /// Still unschedulable; the hint said Skip.
    Skipped,
    /// Still unschedulable; the hint said Queue (allowed: hints may over-approximate).
    QueuedInVain,
}

fn run_case((nodes, running, nominated, pending, change): Case) -> Result<Outcome, TestCaseError> {
    let framework = Framework::new(plugins::default_profile());
    let mut node_objects: Vec<Node> = nodes
        .iter()
        .enumerate()
        .map(|(i, p)| node(&format!("n{i}"), p))
        .collect();
    let mut pods: Vec<Pod> = running
        .iter()
        .enumerate()
        .map(|(i, (on, p))| {
            let mut p = pod(
                &format!("r{i}"),
                &PodParams {
                    node_name: None,
                    ..p.clone()
                },
            );
            p.spec.node_name = format!("n{}", on % node_objects.len());
            p
        })
        .collect();
    let nominated = nominated.map(|(on, p)| {
        let p = pod(
            "nominated",
            &PodParams {
                node_name: None,
                ..p
            },
        );
        (format!("n{}", on % node_objects.len()), Arc::new(info(p)))
    });
    let nominate = |snapshot: &mut ClusterSnapshot| {
        if let Some((node, p)) = &nominated {
            // A node deleted takes its nomination with it.
            let _ = snapshot.nominate(p.clone(), node);
        }
    };
    let mut before = ClusterSnapshot::from_objects(node_objects.clone(), pods.clone()).unwrap();
    nominate(&mut before);
    let pending = info(pod("pending", &pending));
    let rejected = match framework.schedule_pod(&pending, &before) {
        Ok(_) => return Ok(Outcome::Irrelevant),
        Err(u) => {
            prop_assert!(u.error.is_none(), "{}", u);
            u.rejected_by()
        }
    };

    // Apply the change; keep what the event needs.
    let mut old_node: Option<Node> = None;
    let mut deleted_node: Option<Node> = None;
    let mut added: Option<String> = None;
    let mut updated: Option<String> = None;
    let mut pod_deleted = false;
    let mut pod_added: Option<String> = None;
    let mut nomination_cleared = false;
    match &change {
        Change::Update(i, _) | Change::Heartbeat(i) if *i < node_objects.len() => {
            let name = node_objects[*i].metadata.name.clone();
            old_node = Some(node_objects[*i].clone());
            node_objects[*i] = match &change {
                Change::Update(_, p) => node(&name, p),
                _ => heartbeat(node_objects[*i].clone()),
            };
            updated = Some(name);
        }
        Change::Add(p) => {
            let name = format!("n{}", node_objects.len());
            node_objects.push(node(&name, p));
            added = Some(name);
        }
        Change::DeleteNode(i) if *i < node_objects.len() => {
            let gone = node_objects.remove(*i);
            pods.retain(|p| p.spec.node_name != gone.metadata.name);
            deleted_node = Some(gone);
        }
        Change::DeletePod(i) if *i < pods.len() => {
            pods.remove(*i);
            pod_deleted = true;
        }
        Change::AddPod(on, p) => {
            let mut p = pod(
                "added",
                &PodParams {
                    node_name: None,
                    ..p.clone()
                },
            );
            p.spec.node_name = format!("n{}", on % node_objects.len());
            pod_added = Some(p.spec.node_name.clone());
            pods.push(p);
        }
        Change::ClearNomination if nominated.is_some() => nomination_cleared = true,
        _ => return Ok(Outcome::Irrelevant),
    }
    let mut after = ClusterSnapshot::from_objects(node_objects, pods).unwrap();
    if !nomination_cleared {
        nominate(&mut after);
    }
    let old_info = old_node.clone().map(NodeInfo::new);
    let event = if let Some(name) = &updated {
        let old = old_node.as_ref().expect("kept");
        let new = after.get(name).expect("updated node");
        ClusterEvent::NodeUpdated {
            old: old_info.as_ref().expect("kept"),
            new,
            change: NodeChange::between(old, new.node()),
        }
    } else if let Some(name) = &added {
        ClusterEvent::NodeAdded(after.get(name).expect("added node"))
    } else if let Some(gone) = &deleted_node {
        ClusterEvent::NodeDeleted(gone)
    } else if let Some(on) = &pod_added {
        let node = after.get(on).expect("its node");
        let pod = node
            .pods()
            .iter()
            .find(|p| p.key() == "default/added")
            .expect("the added pod");
        ClusterEvent::AssignedPodAdded { pod, node }
    } else if nomination_cleared {
        let (node, pod) = nominated.as_ref().expect("a nomination");
        ClusterEvent::NominationCleared { pod, node }
    } else {
        prop_assert!(pod_deleted);
        ClusterEvent::AssignedPodDeleted
    };
    let hint = framework.queueing_hint(&pending, Some(&rejected), &event);
    let fits = framework.schedule_pod(&pending, &after).is_ok();
    if fits {
        prop_assert_eq!(
            hint,
            Queue,
            "stranded: rejected by {:?}, then {:?} made it fit",
            rejected,
            change
        );
        return Ok(Outcome::Helped);
    }
    Ok(if hint == Queue {
        Outcome::QueuedInVain
    } else {
        Outcome::Skipped
    })
}

#[test]
fn whenever_a_change_makes_the_pod_schedulable_the_hint_said_queue() {
    let mut runner = TestRunner::new(Config {
        cases: 10_000,
        failure_persistence: None,
        ..Config::default()
    });
    let counts: [Cell<u32>; 4] = Default::default();
    let helped_by: [Cell<u32>; 2] = Default::default();
    runner
        .run(&case(), |c| {
            let kind = match &c.4 {
                Change::AddPod(..) => Some(0),
                Change::ClearNomination => Some(1),
                _ => None,
            };
            let outcome = run_case(c)?;
            if let (Outcome::Helped, Some(k)) = (outcome, kind) {
                helped_by[k].set(helped_by[k].get() + 1);
            }
            let i = match outcome {
                Outcome::Irrelevant => 0,
                Outcome::Helped => 1,
                Outcome::Skipped => 2,
                Outcome::QueuedInVain => 3,
            };
            counts[i].set(counts[i].get() + 1);
            Ok(())
        })
        .unwrap();
    let [_, helped, skipped, in_vain] = counts.map(|c| c.get());
    // The property was exercised both ways: changes that helped (all queued), and changes
    // that could not help and were skipped.
    assert!(helped >= 50, "only {helped} changes made a pod schedulable");
    assert!(skipped >= 200, "only {skipped} changes were skipped");
    eprintln!("helped {helped}, skipped {skipped}, queued in vain {in_vain}");
    // The new events were exercised too: a pod added that helped a pod (affinity or
    // spread), and a nomination cleared that did.
    let [added_helped, cleared_helped] = helped_by.map(|c| c.get());
    assert!(
        added_helped >= 1,
        "only {added_helped} assigned pods added made a pod schedulable"
    );
    assert!(
        cleared_helped >= 3,
        "only {cleared_helped} nominations cleared made a pod schedulable"
    );
    eprintln!("helped by a pod added {added_helped}, by a nomination cleared {cleared_helped}");
}
