//! The clusters and pods of each `orchestra bench sched` workload, modelled on
//! kube-scheduler's scheduler_perf: 5,000 identical nodes in 10 zones, pods with small
//! requests and the workload's constraints (the gang workload, which scheduler_perf does not
//! have, is basic pods in gangs of [`GANG_SIZE`]).

use orchestra::api::Quantity;
use orchestra::api::meta::{LabelSelector, ObjectMeta};
use orchestra::api::resources::{
    Affinity, Container, Node, NodeAffinity, NodeSelector, NodeSelectorOperator,
    NodeSelectorRequirement, NodeSelectorTerm, NodeStatus, Pod, PodAffinity, PodAffinityTerm,
    PodAntiAffinity, PodSpec, ResourceRequirements, TopologySpreadConstraint,
    UnsatisfiableConstraintAction,
};

use orchestra::sched::plugins::coscheduling::{MIN_AVAILABLE_ANNOTATION, POD_GROUP_LABEL};

use crate::cli::bench::SchedWorkload;

/// Zones the nodes are spread over.
pub const ZONES: usize = 10;
/// The zone label.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The hostname label.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// Pod groups of the affinity and spreading workloads.
pub const GROUPS: usize = 100;
/// The namespace of every pod.
pub const NAMESPACE: &str = "bench";

/// The `i` of a workload pod's name (`pod-<i>`).
pub fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("pod-")?.parse().ok()
}

/// Node `i`: 32 CPUs, 128 GiB, 110 pods, zone `i % 10`; half the nodes (even `i`) carry
/// `group: a`, the node-affinity workload's requirement.
pub fn node(i: usize) -> Node {
    let name = format!("node-{i}");
    let quantity = |s: &str| Quantity::parse(s).expect("a valid quantity");
    Node {
        metadata: ObjectMeta::named(&name)
            .with_label(HOSTNAME_KEY, &name)
            .with_label(ZONE_KEY, format!("zone-{}", i % ZONES))
            .with_label("group", if i.is_multiple_of(2) { "a" } else { "b" }),
        status: Some(NodeStatus {
            allocatable: [
                ("cpu".to_owned(), quantity("32")),
                ("memory".to_owned(), quantity("128Gi")),
                ("pods".to_owned(), quantity("110")),
            ]
            .into(),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// Low-priority pods per node in the preemption workload (filling its CPUs).
pub const LOW_PRIORITY_PER_NODE: usize = 4;
/// The CPUs of each low-priority pod (and of each preemptor).
pub const LOW_PRIORITY_CPU: i64 = 8;

/// The `j`-th low-priority pod bound to node `i` (the preemption workload fills every node
/// with [`LOW_PRIORITY_PER_NODE`] of them, priority 0).
pub fn low_priority_pod(i: usize, j: usize) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced(NAMESPACE, format!("low-{i}-{j}")),
        spec: PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: "registry.example/batch:1".into(),
                resources: ResourceRequirements {
                    requests: [("cpu".to_owned(), Quantity::from_value(LOW_PRIORITY_CPU))].into(),
                    ..ResourceRequirements::default()
                },
                ..Container::default()
            }],
            node_name: format!("node-{i}"),
            priority: Some(0),
            ..PodSpec::default()
        },
        status: None,
    }
}

/// Members of each gang of the gang workload (the last gang of a run takes what is left).
pub const GANG_SIZE: usize = 10;

/// Pod `i` of `pods` of a workload: 100m CPU and 256 MiB, label `group: g<i % 100>`, and the
/// workload's constraint on that group. Gang pods are labelled with their gang
/// (`gang-<i / 10>`) and its minimum, the gang's size.
pub fn pod(workload: SchedWorkload, i: usize, pods: usize) -> Pod {
    let group = format!("g{}", i % GROUPS);
    let selector = || Some(LabelSelector::match_labels([("group", group.as_str())]));
    let term = |key: &str| PodAffinityTerm {
        label_selector: selector(),
        topology_key: key.into(),
        ..PodAffinityTerm::default()
    };
    let mut spec = PodSpec {
        containers: vec![Container {
            name: "app".into(),
            image: "registry.example/app:1".into(),
            resources: ResourceRequirements {
                requests: [
                    ("cpu".to_owned(), Quantity::from_milli(100)),
                    ("memory".to_owned(), Quantity::from_bytes(256 << 20)),
                ]
                .into(),
                ..ResourceRequirements::default()
            },
            ..Container::default()
        }],
        ..PodSpec::default()
    };
    match workload {
        SchedWorkload::Basic | SchedWorkload::Gang => {}
        SchedWorkload::Preemption => {
            // A quarter of a node at priority 100: one low-priority pod must go.
            spec.containers[0]
                .resources
                .requests
                .insert("cpu".to_owned(), Quantity::from_value(LOW_PRIORITY_CPU));
            spec.priority = Some(100);
        }
        SchedWorkload::NodeAffinity => {
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: vec![NodeSelectorRequirement {
                                key: "group".into(),
                                operator: NodeSelectorOperator::In,
                                values: vec!["a".into()],
                            }],
                            ..NodeSelectorTerm::default()
                        }],
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            });
        }
        SchedWorkload::PodAffinity => {
            spec.affinity = Some(Affinity {
                pod_affinity: Some(PodAffinity {
                    required_during_scheduling_ignored_during_execution: vec![term(ZONE_KEY)],
                    ..PodAffinity::default()
                }),
                ..Affinity::default()
            });
        }
        SchedWorkload::PodAntiAffinity => {
            spec.affinity = Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: vec![term(HOSTNAME_KEY)],
                    ..PodAntiAffinity::default()
                }),
                ..Affinity::default()
            });
        }
        SchedWorkload::TopologySpread => {
            spec.topology_spread_constraints = vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: ZONE_KEY.into(),
                when_unsatisfiable: UnsatisfiableConstraintAction::DoNotSchedule,
                label_selector: selector(),
                min_domains: None,
            }];
        }
    }
    let mut metadata =
        ObjectMeta::namespaced(NAMESPACE, format!("pod-{i}")).with_label("group", &group);
    if workload == SchedWorkload::Gang {
        let gang = i / GANG_SIZE;
        let size = GANG_SIZE.min(pods.saturating_sub(gang * GANG_SIZE)).max(1);
        metadata = metadata.with_label(POD_GROUP_LABEL, format!("gang-{gang}"));
        metadata
            .annotations
            .insert(MIN_AVAILABLE_ANNOTATION.to_owned(), size.to_string());
    }
    Pod {
        metadata,
        spec,
        status: None,
    }
}
