//! Nodes and pods for the cache and loop tests.
#![allow(dead_code)]

use orchestra_api::meta::ObjectMeta;
use orchestra_api::resources::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements};

/// A node with `cpu` allocatable, 8Gi of memory and room for 110 pods.
pub fn node(name: &str, cpu: &str) -> Node {
    Node {
        metadata: ObjectMeta::named(name),
        status: Some(NodeStatus {
            allocatable: [
                ("cpu".to_owned(), cpu.parse().expect("cpu")),
                ("memory".to_owned(), "8Gi".parse().expect("memory")),
                ("pods".to_owned(), "110".parse().expect("pods")),
            ]
            .into(),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// A pending pod in `default` requesting `cpu`.
pub fn pod(name: &str, cpu: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: "nginx".into(),
                resources: ResourceRequirements {
                    requests: [("cpu".to_owned(), cpu.parse().expect("cpu"))].into(),
                    ..ResourceRequirements::default()
                },
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        status: None,
    }
}

/// The pod bound to `node`.
pub fn bound(mut pod: Pod, node: &str) -> Pod {
    pod.spec.node_name = node.into();
    pod
}
