//! Table-driven scenarios: every `tests/scenarios/*.yaml` file holds a list of cases, each a
//! cluster (nodes, existing pods), one pod to place, and what must happen: the node (or one of
//! several equally good nodes), or the exact `Unschedulable` message and per-reason counts.
//! A case may carry its own scheduler configuration (the `config` field, the YAML of
//! `SchedulerConfig`).

use std::collections::BTreeMap;
use std::path::Path;

use orchestra_api::Quantity;
use orchestra_api::meta::ObjectMeta;
use orchestra_api::resources::{
    Container, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements, Taint,
};
use orchestra_sched::config::SchedulerConfig;
use orchestra_sched::plugins::Registry;
use orchestra_sched::{ClusterSnapshot, Scheduler};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    config: Option<String>,
    nodes: Vec<NodeCase>,
    #[serde(default)]
    existing: Vec<PodCase>,
    pod: PodCase,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeCase {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    taints: Vec<Taint>,
    #[serde(default)]
    unschedulable: bool,
    /// Defaults: cpu 4, memory 16Gi, pods 110.
    #[serde(default)]
    allocatable: BTreeMap<String, Quantity>,
    #[serde(default)]
    images: Vec<Image>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Image {
    name: String,
    size_bytes: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PodCase {
    name: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// The node an existing pod is bound to.
    #[serde(default)]
    node: String,
    /// Requests of one container added to the spec's containers.
    #[serde(default)]
    requests: BTreeMap<String, Quantity>,
    #[serde(default)]
    spec: PodSpec,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The node the pod must go to.
    #[serde(default)]
    node: Option<String>,
    /// Nodes the pod may go to (equally good ones).
    #[serde(default)]
    one_of: Vec<String>,
    /// The exact Unschedulable message.
    #[serde(default)]
    unschedulable: Option<String>,
    /// Text the Unschedulable message must contain.
    #[serde(default)]
    message_contains: Option<String>,
    /// Per-reason node counts of the Unschedulable.
    #[serde(default)]
    reasons: BTreeMap<String, usize>,
    /// What preemption (PostFilter) proposes for the unschedulable pod; `{}` for nothing.
    #[serde(default)]
    preempt: Option<Preempt>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Preempt {
    /// The nominated node (absent: no preemption).
    #[serde(default)]
    node: Option<String>,
    /// The victims' names (namespace `default`), in order.
    #[serde(default)]
    victims: Vec<String>,
}

fn node(case: &NodeCase) -> Node {
    let mut allocatable: BTreeMap<String, Quantity> =
        [("cpu", "4"), ("memory", "16Gi"), ("pods", "110")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Quantity::parse(v).unwrap()))
            .collect();
    allocatable.extend(case.allocatable.clone());
    let mut metadata = ObjectMeta::named(&case.name);
    metadata.labels = case.labels.clone();
    metadata
        .labels
        .entry("kubernetes.io/hostname".into())
        .or_insert_with(|| case.name.clone());
    Node {
        metadata,
        spec: NodeSpec {
            unschedulable: case.unschedulable,
            taints: case.taints.clone(),
            ..NodeSpec::default()
        },
        status: Some(NodeStatus {
            allocatable,
            ..NodeStatus::default()
        }),
    }
}

fn pod(case: &PodCase) -> Pod {
    let mut metadata = ObjectMeta::namespaced(&case.namespace, &case.name);
    metadata.labels = case.labels.clone();
    metadata.annotations = case.annotations.clone();
    let mut spec = case.spec.clone();
    if !case.requests.is_empty() || spec.containers.is_empty() {
        spec.containers.push(Container {
            name: "main".into(),
            resources: ResourceRequirements {
                requests: case.requests.clone(),
                ..ResourceRequirements::default()
            },
            ..Container::default()
        });
    }
    if !case.node.is_empty() {
        spec.node_name = case.node.clone();
    }
    Pod {
        metadata,
        spec,
        status: None,
    }
}

/// Run one case; `Err` says how it went wrong.
fn run(case: &Case) -> Result<(), String> {
    let profiles = SchedulerConfig::parse(case.config.as_deref().unwrap_or("{}"))
        .and_then(|c| c.build(&Registry::default()))
        .map_err(|e| format!("config: {e}"))?;
    let mut cluster =
        ClusterSnapshot::from_objects(case.nodes.iter().map(node), case.existing.iter().map(pod))
            .map_err(|e| format!("snapshot: {e}"))?;
    for n in &case.nodes {
        if !n.images.is_empty() {
            cluster
                .set_images(
                    &n.name,
                    n.images.iter().map(|i| (i.name.clone(), i.size_bytes)),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    let result = profiles.schedule(&pod(&case.pod), &cluster);
    let e = &case.expect;
    match result {
        Ok(placement) => {
            let got = placement.node.to_string();
            if let Some(want) = &e.node {
                if *want != got {
                    return Err(format!("placed on {got}, expected {want}"));
                }
            } else if !e.one_of.is_empty() {
                if !e.one_of.contains(&got) {
                    return Err(format!("placed on {got}, expected one of {:?}", e.one_of));
                }
            } else {
                return Err(format!("placed on {got}, expected unschedulable"));
            }
            Ok(())
        }
        Err(err) => {
            if e.node.is_some() || !e.one_of.is_empty() {
                return Err(format!("unschedulable: {err}"));
            }
            let message = err.to_string();
            if let Some(want) = e.unschedulable.as_ref().filter(|w| **w != message) {
                return Err(format!("message {message:?}, expected {want:?}"));
            }
            if let Some(part) = e
                .message_contains
                .as_ref()
                .filter(|p| !message.contains(p.as_str()))
            {
                return Err(format!("message {message:?} lacks {part:?}"));
            }
            for (reason, count) in &e.reasons {
                let got = err.count(reason);
                if got != *count {
                    return Err(format!(
                        "{got} nodes gave {reason:?}, expected {count} ({err})"
                    ));
                }
            }
            if let Some(want) = &e.preempt {
                let got = err.post_filter.as_deref().cloned().unwrap_or_default();
                let victims: Vec<String> = want
                    .victims
                    .iter()
                    .map(|v| format!("default/{v}"))
                    .collect();
                if got.nominated_node != want.node || got.victims != victims {
                    return Err(format!(
                        "preemption proposed {:?} evicting {:?}, expected {:?} evicting {victims:?}",
                        got.nominated_node, got.victims, want.node
                    ));
                }
            }
            if e.unschedulable.is_none()
                && e.preempt.is_none()
                && e.reasons.is_empty()
                && e.message_contains.is_none()
            {
                return Err(format!(
                    "unschedulable ({err}) but the case expects nothing"
                ));
            }
            Ok(())
        }
    }
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "scenario files missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut total = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let cases: Vec<Case> =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!cases.is_empty(), "{} has no case", file.display());
        for case in &cases {
            total += 1;
            if let Err(why) = run(case) {
                let file = file.file_name().unwrap().to_string_lossy();
                failures.push(format!("{file}: {}: {why}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} scenarios passed");
}
