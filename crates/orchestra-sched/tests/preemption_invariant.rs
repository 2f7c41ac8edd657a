//! Property: what DefaultPreemption proposes is right and minimal. On random clusters of
//! pods with priorities, CPU requests and host ports, when a pod fits nowhere and preemption
//! proposes a node and victims: every victim is on that node with a lower priority; with the
//! victims gone the pod fits there; and putting back any one victim makes it not fit (CPU and
//! host ports only grow with more pods, so the greedy reprieve is minimal). When nothing is
//! proposed, no node would fit the pod even with all its lower-priority pods gone.

use std::sync::Arc;

use orchestra_api::Quantity;
use orchestra_api::meta::ObjectMeta;
use orchestra_api::resources::{
    Container, ContainerPort, Node, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use orchestra_sched::{ClusterSnapshot, Framework, PodInfo, Scheduler, plugins};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct PodParams {
    node: usize,
    milli_cpu: i64,
    priority: i32,
    host_port: Option<i32>,
}

fn pod_params(nodes: usize) -> impl Strategy<Value = PodParams> {
    (
        0..nodes,
        0i64..2500,
        0i32..6,
        proptest::option::weighted(0.2, 80i32..82),
    )
        .prop_map(|(node, milli_cpu, priority, host_port)| PodParams {
            node,
            milli_cpu,
            priority,
            host_port,
        })
}

fn node(i: usize, cores: i64) -> Node {
    Node {
        metadata: ObjectMeta::named(format!("n{i}")),
        status: Some(NodeStatus {
            allocatable: [
                ("cpu".to_owned(), Quantity::from_value(cores)),
                ("memory".to_owned(), Quantity::parse("8Gi").unwrap()),
                ("pods".to_owned(), Quantity::from_value(110)),
            ]
            .into(),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

fn pod(name: &str, p: &PodParams, bound: bool) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: ResourceRequirements {
                    requests: [(
                        "cpu".to_owned(),
                        Quantity::parse(&format!("{}m", p.milli_cpu)).unwrap(),
                    )]
                    .into(),
                    ..ResourceRequirements::default()
                },
                ports: p
                    .host_port
                    .map(|port| ContainerPort {
                        container_port: port,
                        host_port: Some(port),
                        ..ContainerPort::default()
                    })
                    .into_iter()
                    .collect(),
                ..Container::default()
            }],
            node_name: if bound {
                format!("n{}", p.node)
            } else {
                String::new()
            },
            priority: Some(p.priority),
            ..PodSpec::default()
        },
        status: None,
    }
}

fn cluster_strategy() -> impl Strategy<Value = (Vec<i64>, Vec<PodParams>, PodParams)> {
    (1usize..5).prop_flat_map(|n| {
        (
            proptest::collection::vec(1i64..4, n),
            proptest::collection::vec(pod_params(n), 0..14),
            pod_params(n).prop_map(|mut p| {
                p.priority += 1;
                p.milli_cpu *= 2;
                p
            }),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn proposals_free_enough_room_and_no_more((cores, existing, preemptor) in cluster_strategy()) {
        let cluster = ClusterSnapshot::from_objects(
            cores.iter().enumerate().map(|(i, c)| node(i, *c)),
            existing.iter().enumerate().map(|(i, p)| pod(&format!("e{i}"), p, true)),
        ).unwrap();
        let framework = Framework::new(plugins::default_profile());
        let incoming = pod("p", &preemptor, false);
        let info = PodInfo::new(incoming.clone()).unwrap();
        let Err(rejection) = framework.schedule(&incoming, &cluster) else {
            return Ok(());
        };
        let fits_without = |node: &str, gone: &[String]| {
            let mut what_if = cluster.clone();
            for key in gone {
                what_if.remove_pod(key).unwrap();
            }
            let n = what_if.get(node).unwrap();
            framework.check_node(&info, &what_if, n).is_none()
        };
        match rejection.post_filter.as_deref() {
            Some(proposal) => {
                let node = proposal.nominated_node.clone().unwrap();
                for key in &proposal.victims {
                    prop_assert_eq!(cluster.pod_node(key).map(|n| n.to_string()), Some(node.clone()));
                    let victim = cluster.get(&node).unwrap().pods().iter()
                        .find(|p| p.key() == key).unwrap().clone();
                    prop_assert!(victim.priority < info.priority);
                }
                prop_assert!(fits_without(&node, &proposal.victims), "the pod fits once the victims are gone");
                for spared in &proposal.victims {
                    let others: Vec<String> = proposal.victims.iter().filter(|v| *v != spared).cloned().collect();
                    prop_assert!(!fits_without(&node, &others), "{} need not be evicted", spared);
                }
            }
            None => {
                for i in 0..cluster.len() {
                    let n = cluster.node(i);
                    let lower: Vec<String> = n.pods().iter()
                        .filter(|p| p.priority < info.priority)
                        .map(|p: &Arc<PodInfo>| p.key().to_owned())
                        .collect();
                    prop_assert!(!fits_without(n.name(), &lower), "{} would fit the pod", n.name());
                }
            }
        }
    }
}
