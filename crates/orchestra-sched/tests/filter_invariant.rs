//! Property: a placement never violates a Filter. Random clusters (labels, taints, cordons,
//! capacities, existing pods with requests, host ports and anti-affinity) receive random
//! pods one after another (each assumed onto its node); every chosen node must pass every
//! Filter when checked on its own, and must satisfy the basic rules checked here directly,
//! without the plugins' code (resources fit, NoSchedule taints tolerated, nodeSelector
//! labels, free host ports), and the search must have found every feasible node (the nodes
//! PreFilter plugins narrow the search to lose none). When a pod is unschedulable, every node
//! must have a rejection and really fail a Filter.

use std::collections::BTreeMap;
use std::sync::Arc;

use orchestra_api::Quantity;
use orchestra_api::meta::{LabelSelector, ObjectMeta};
use orchestra_api::resources::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeSelector, NodeSelectorOperator,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinity,
    PodAffinityTerm, PodAntiAffinity, PodSpec, ResourceRequirements, Taint, TaintEffect,
    Toleration, TopologySpreadConstraint, UnsatisfiableConstraintAction,
};
use orchestra_sched::{ClusterSnapshot, Framework, PodInfo, plugins};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct NodeParams {
    zone: u8,
    ssd: bool,
    taint: Option<(u8, bool)>,
    cordoned: bool,
    cpu: i64,
    pods: i64,
}

#[derive(Clone, Debug)]
struct PodParams {
    app: u8,
    cpu: i64,
    host_port: Option<i32>,
    want_ssd: bool,
    tolerate: Option<u8>,
    anti_affinity: bool,
    spread: bool,
    /// 0: required pod affinity to its own app over the zone; 1: required node affinity to
    /// zones z0 and z1.
    affinity: Option<u8>,
    spread_host: bool,
}

fn node_params() -> impl Strategy<Value = NodeParams> {
    (
        0u8..3,
        any::<bool>(),
        proptest::option::weighted(0.3, (0u8..2, any::<bool>())),
        proptest::bool::weighted(0.1),
        1i64..8,
        1i64..6,
    )
        .prop_map(|(zone, ssd, taint, cordoned, cpu, pods)| NodeParams {
            zone,
            ssd,
            taint,
            cordoned,
            cpu,
            pods,
        })
}

fn pod_params() -> impl Strategy<Value = PodParams> {
    (
        0u8..3,
        0i64..3000,
        proptest::option::weighted(0.2, 8080i32..8083),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.3, 0u8..2),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.3, 0u8..2),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(
                app,
                cpu,
                host_port,
                want_ssd,
                tolerate,
                anti_affinity,
                spread,
                affinity,
                spread_host,
            )| PodParams {
                app,
                cpu,
                host_port,
                want_ssd,
                tolerate,
                anti_affinity,
                spread,
                affinity,
                spread_host,
            },
        )
}

fn node(i: usize, p: &NodeParams) -> Node {
    let name = format!("n{i}");
    let mut metadata = ObjectMeta::named(&name)
        .with_label("zone", format!("z{}", p.zone))
        .with_label("kubernetes.io/hostname", &name);
    if p.ssd {
        metadata = metadata.with_label("disk", "ssd");
    }
    Node {
        metadata,
        spec: NodeSpec {
            unschedulable: p.cordoned,
            taints: p
                .taint
                .map(|(k, no_execute)| Taint {
                    key: format!("t{k}"),
                    value: "x".into(),
                    effect: if no_execute {
                        TaintEffect::NoExecute
                    } else {
                        TaintEffect::NoSchedule
                    },
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
            ..NodeStatus::default()
        }),
    }
}

fn pod(i: usize, p: &PodParams) -> Pod {
    let app = format!("a{}", p.app);
    let selector = Some(LabelSelector::match_labels([("app", app.as_str())]));
    Pod {
        metadata: ObjectMeta::namespaced("default", format!("p{i}")).with_label("app", &app),
        spec: PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: ResourceRequirements {
                    requests: [("cpu".to_owned(), Quantity::from_milli(p.cpu))].into(),
                    ..ResourceRequirements::default()
                },
                ports: p
                    .host_port
                    .map(|port| ContainerPort {
                        container_port: 80,
                        host_port: Some(port),
                        ..ContainerPort::default()
                    })
                    .into_iter()
                    .collect(),
                ..Container::default()
            }],
            node_selector: if p.want_ssd {
                BTreeMap::from([("disk".to_owned(), "ssd".to_owned())])
            } else {
                BTreeMap::new()
            },
            tolerations: p
                .tolerate
                .map(|k| Toleration {
                    key: format!("t{k}"),
                    value: "x".into(),
                    ..Toleration::default()
                })
                .into_iter()
                .collect(),
            affinity: (p.anti_affinity || p.affinity.is_some()).then(|| Affinity {
                pod_anti_affinity: p.anti_affinity.then(|| PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                        label_selector: selector.clone(),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    }],
                    ..PodAntiAffinity::default()
                }),
                pod_affinity: (p.affinity == Some(0)).then(|| PodAffinity {
                    required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                        label_selector: selector.clone(),
                        topology_key: "zone".into(),
                        ..PodAffinityTerm::default()
                    }],
                    ..PodAffinity::default()
                }),
                node_affinity: (p.affinity == Some(1)).then(|| NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: vec![NodeSelectorRequirement {
                                key: "zone".into(),
                                operator: NodeSelectorOperator::In,
                                values: vec!["z0".into(), "z1".into()],
                            }],
                            ..NodeSelectorTerm::default()
                        }],
                    }),
                    ..NodeAffinity::default()
                }),
            }),
            topology_spread_constraints: [
                ("zone", p.spread),
                ("kubernetes.io/hostname", p.spread_host),
            ]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(key, _)| TopologySpreadConstraint {
                max_skew: 1,
                topology_key: key.into(),
                when_unsatisfiable: UnsatisfiableConstraintAction::DoNotSchedule,
                label_selector: selector.clone(),
                min_domains: None,
            })
            .collect(),
            ..PodSpec::default()
        },
        status: None,
    }
}

/// The basic rules, checked without the plugins' code.
fn obviously_fits(pod: &PodInfo, node: &orchestra_sched::NodeInfo) -> Result<(), String> {
    let alloc = node.allocatable();
    let used = node.requested();
    if used.milli_cpu + pod.requests.requests.milli_cpu > alloc.milli_cpu {
        return Err("cpu overcommitted".into());
    }
    if used.pods + 1 > alloc.pods {
        return Err("too many pods".into());
    }
    let spec = &pod.pod.spec;
    for taint in node.taints() {
        if taint.effect != TaintEffect::PreferNoSchedule
            && !spec.tolerations.iter().any(|t| t.tolerates(taint))
        {
            return Err(format!("untolerated taint {}", taint.key));
        }
    }
    if node.unschedulable() {
        return Err("cordoned".into());
    }
    for (k, v) in &spec.node_selector {
        if node.label_map().get(k) != Some(v) {
            return Err(format!("label {k} missing"));
        }
    }
    for want in &pod.host_ports {
        if node.used_ports().iter().any(|u| u.conflicts(want)) {
            return Err("host port taken".into());
        }
    }
    if !pod.required_anti_affinity.is_empty()
        && node
            .pods()
            .iter()
            .any(|p| p.pod.metadata.labels == pod.pod.metadata.labels)
    {
        return Err("anti-affinity violated".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn placements_never_violate_a_filter(
        nodes in proptest::collection::vec(node_params(), 1..12),
        pods in proptest::collection::vec(pod_params(), 1..25),
        seed in any::<u64>(),
    ) {
        let mut cluster = ClusterSnapshot::from_objects(
            nodes.iter().enumerate().map(|(i, p)| node(i, p)),
            [],
        ).unwrap();
        let mut profile = plugins::default_profile();
        profile.seed = seed;
        let framework = Framework::new(profile);
        for (i, params) in pods.iter().enumerate() {
            let info = Arc::new(PodInfo::new(pod(i, params)).unwrap());
            match framework.schedule_pod(&info, &cluster) {
                Ok(outcome) => {
                    let chosen = cluster.get(&outcome.placement.node).unwrap();
                    let rejected = framework.check_node(&info, &cluster, chosen);
                    prop_assert!(rejected.is_none(), "pod {i} placed on {} which fails {:?}", chosen.name(), rejected);
                    if let Err(why) = obviously_fits(&info, chosen) {
                        prop_assert!(false, "pod {i} placed on {}: {why}", chosen.name());
                    }
                    // Below 100 nodes every node is searched: the nodes PreFilter plugins left
                    // possible must include every node that passes the Filters.
                    let feasible = cluster
                        .nodes()
                        .filter(|n| framework.check_node(&info, &cluster, n).is_none())
                        .count();
                    prop_assert_eq!(outcome.placement.feasible_nodes, feasible, "pod {}", i);
                    cluster.assume(info, &outcome.placement.node.clone()).unwrap();
                }
                Err(unschedulable) => {
                    prop_assert_eq!(unschedulable.nodes.len(), cluster.len(), "{}", unschedulable);
                    for rejection in &unschedulable.nodes {
                        let node = cluster.get(rejection.node).unwrap();
                        prop_assert!(
                            framework.check_node(&info, &cluster, node).is_some(),
                            "node {} was rejected ({:?}) but passes every filter", node.name(), rejection.reasons
                        );
                    }
                }
            }
        }
    }
}
