//! The DaemonSet controller's decisions, as pure functions: a daemon set, the nodes, and the
//! pods it controls in, the exact writes out.
//!
//! Kubernetes' rules: a node should run the daemon pod when it matches the template's
//! `nodeSelector` and required node affinity and every `NoSchedule`/`NoExecute` taint of it is
//! tolerated, counting the tolerations every daemon pod gets (not-ready and unreachable for
//! `NoExecute`, so that daemons stay on failing nodes; the pressure and unschedulable taints
//! for `NoSchedule`); a pod already there may continue as long as its `NoExecute` taints are
//! tolerated. Each pod is created for its node through a required node affinity on
//! `metadata.name`, and the scheduler binds it there. A template change rolls out node by node
//! (`RollingUpdate`, at most `maxUnavailable` nodes without an available pod) or waits until a
//! pod is deleted (`OnDelete`). A node's new pod is created only once its old one is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::resources::{
    DaemonSet, DaemonSetStatus, DaemonSetUpdateStrategyType, Node, NodeAffinity, NodeSelector,
    NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodPhase, TaintEffect,
    Toleration, TolerationOperator,
};
use orchestra_api::{IntOrString, OwnerReference, Resource};

use crate::controllers::deployment::plan::template_hash;
use crate::controllers::pods::{self, Availability};

/// The label with the hash of the template a daemon pod was made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// What went wrong deciding (the daemon set is invalid in a way validation lets through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// maxUnavailable is neither a number nor a percentage.
    #[error(
        "spec.updateStrategy.rollingUpdate.maxUnavailable: {value:?} is neither a number nor a percentage"
    )]
    BadMaxUnavailable {
        /// The value given.
        value: String,
    },
}

/// What one sync of a daemon set must do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes to create a daemon pod for.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// The status the daemon set should report.
    pub status: DaemonSetStatus,
    /// When a ready pod will become available (minReadySeconds): sync again then.
    pub recheck_after: Option<Duration>,
}

/// The tolerations Kubernetes adds to every daemon pod (`network-unavailable` only with host
/// networking, whose pods can run before the node's network is set up).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect| Toleration {
        key: key.into(),
        operator: Some(TolerationOperator::Exists),
        effect: Some(effect),
        ..Toleration::default()
    };
    let mut tolerations = vec![
        exists("node.kubernetes.io/not-ready", TaintEffect::NoExecute),
        exists("node.kubernetes.io/unreachable", TaintEffect::NoExecute),
        exists("node.kubernetes.io/disk-pressure", TaintEffect::NoSchedule),
        exists(
            "node.kubernetes.io/memory-pressure",
            TaintEffect::NoSchedule,
        ),
        exists("node.kubernetes.io/pid-pressure", TaintEffect::NoSchedule),
        exists("node.kubernetes.io/unschedulable", TaintEffect::NoSchedule),
    ];
    if host_network {
        tolerations.push(exists(
            "node.kubernetes.io/network-unavailable",
            TaintEffect::NoSchedule,
        ));
    }
    tolerations
}

/// The template's tolerations plus the daemon tolerations it lacks.
fn tolerations(ds: &DaemonSet) -> Vec<Toleration> {
    let spec = &ds.spec.template.spec;
    let mut all = spec.tolerations.clone();
    for extra in daemon_tolerations(spec.host_network) {
        if !all
            .iter()
            .any(|t| t.key == extra.key && t.effect == extra.effect)
        {
            all.push(extra);
        }
    }
    all
}

/// Whether a node's label (or, for `metadata.name` fields, its name) satisfies a requirement.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let listed = |v: &str| r.values.iter().any(|x| x == v);
    let compare = |greater: bool| {
        let actual = value.and_then(|v| v.parse::<i64>().ok());
        let bound = match &r.values[..] {
            [bound] => bound.parse::<i64>().ok(),
            _ => None,
        };
        match (actual, bound) {
            (Some(a), Some(b)) => (greater && a > b) || (!greater && a < b),
            _ => false,
        }
    };
    match r.operator {
        NodeSelectorOperator::In => value.is_some_and(listed),
        NodeSelectorOperator::NotIn => !value.is_some_and(listed),
        NodeSelectorOperator::Exists => value.is_some(),
        NodeSelectorOperator::DoesNotExist => value.is_none(),
        NodeSelectorOperator::Gt => compare(true),
        NodeSelectorOperator::Lt => compare(false),
    }
}

/// Whether the node matches a term (every requirement; an empty term matches nothing).
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    let labels = &node.metadata.labels;
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && term
            .match_fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&node.metadata.name)))
}

/// Where a node stands for a daemon set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    /// A new daemon pod should run there.
    pub should_run: bool,
    /// A daemon pod already there may keep running.
    pub should_continue: bool,
}

/// Whether `node` should run (or keep running) the daemon set's pod.
pub fn fit(ds: &DaemonSet, node: &Node) -> Fit {
    let spec = &ds.spec.template.spec;
    let selected = spec
        .node_selector
        .iter()
        .all(|(k, v)| node.metadata.labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affine = required.is_none_or(|sel| {
        sel.node_selector_terms
            .iter()
            .any(|term| term_matches(term, node))
    });
    if !(selected && affine) {
        return Fit {
            should_run: false,
            should_continue: false,
        };
    }
    let tolerations = tolerations(ds);
    let tolerated = |effect: TaintEffect| {
        node.spec
            .taints
            .iter()
            .filter(|t| t.effect == effect)
            .all(|t| tolerations.iter().any(|tol| tol.tolerates(t)))
    };
    let no_execute = tolerated(TaintEffect::NoExecute);
    Fit {
        should_run: no_execute && tolerated(TaintEffect::NoSchedule),
        should_continue: no_execute,
    }
}

/// The controller reference a daemon set puts on its pods.
pub fn controller_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: DaemonSet::API_VERSION.into(),
        kind: DaemonSet::KIND.into(),
        name: ds.metadata.name.clone(),
        uid: ds.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The hash of the daemon set's current template (the [`REVISION_HASH_LABEL`] of its pods).
pub fn current_hash(ds: &DaemonSet) -> String {
    template_hash(
        &ds.spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    )
}

/// The daemon pod for `node`: the template with the daemon tolerations, the revision hash
/// label, and a required node affinity for exactly that node (which replaces the template's
/// required terms: the node matched them already).
pub fn pod_for_node(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = &ds.spec.template;
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Pod::default()
    };
    let meta = &mut pod.metadata;
    meta.generate_name = format!("{}-", ds.metadata.name);
    meta.namespace.clone_from(&ds.metadata.namespace);
    meta.labels.clone_from(&template.metadata.labels);
    meta.labels
        .insert(REVISION_HASH_LABEL.into(), hash.to_owned());
    meta.annotations.clone_from(&template.metadata.annotations);
    meta.owner_references = vec![controller_ref(ds)];
    pod.spec.tolerations = tolerations(ds);
    let affinity = pod.spec.affinity.get_or_insert_with(Default::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: NodeSelectorOperator::In,
                values: vec![node.to_owned()],
            }],
            ..NodeSelectorTerm::default()
        }],
    });
    pod
}

/// The node a daemon pod is for: its `spec.nodeName` once bound, else the node its required
/// affinity names.
pub fn pod_node(pod: &Pod) -> Option<&str> {
    if !pod.spec.node_name.is_empty() {
        return Some(&pod.spec.node_name);
    }
    let required = pod
        .spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| &t.match_fields)
        .find(|r| r.key == "metadata.name" && r.operator == NodeSelectorOperator::In)
        .and_then(|r| match &r.values[..] {
            [node] => Some(node.as_str()),
            _ => None,
        })
}

fn max_unavailable(ds: &DaemonSet, desired: i32) -> Result<i32, PlanError> {
    let default = IntOrString::Int(1);
    let value = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&default);
    let n = value
        .scaled_value(desired, true)
        .map_err(|_| PlanError::BadMaxUnavailable {
            value: format!("{value:?}"),
        })?;
    // Zero (with no surge, which orchestra does not do) would stall every update.
    Ok(n.max(1))
}

/// Decides one sync of `ds` given the cluster's nodes and the pods it controls, at `now` (see
/// the module docs).
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    owned: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> Result<Plan, PlanError> {
    let hash = current_hash(ds);
    let min_ready = Duration::from_secs(
        ds.spec
            .min_ready_seconds
            .unwrap_or(0)
            .max(0)
            .unsigned_abs()
            .into(),
    );
    let mut plan = Plan::default();
    // Pods by node; pods naming no node, or a node that is gone, are deleted.
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    let node_names: HashMap<&str, &Node> = nodes
        .iter()
        .map(|n| (n.metadata.name.as_str(), n.as_ref()))
        .collect();
    for pod in owned {
        match pod_node(pod).filter(|n| node_names.contains_key(n)) {
            Some(node) => by_node.entry(node).or_default().push(pod),
            None if pod.metadata.deletion_timestamp.is_none() => {
                plan.delete.push(pod.metadata.name.clone());
            }
            None => {}
        }
    }
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
        ..DaemonSetStatus::default()
    };
    let (mut updated, mut available) = (0, 0);
    // Nodes that should run a pod and have none available now, and old available pods that a
    // rolling update may replace.
    let mut unavailable_nodes = 0;
    let mut replaceable: Vec<&Pod> = Vec::new();
    let mut old_unavailable: Vec<&Pod> = Vec::new();
    let mut sorted: Vec<&Node> = node_names.values().copied().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for node in sorted {
        let name = node.metadata.name.as_str();
        let pods_here = by_node.get(name).map(Vec::as_slice).unwrap_or_default();
        let terminating = pods_here
            .iter()
            .any(|p| p.metadata.deletion_timestamp.is_some());
        // Failed daemon pods are replaced (after deletion, by the next sync).
        for pod in pods_here {
            let failed = pod.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Failed);
            if failed && pod.metadata.deletion_timestamp.is_none() {
                plan.delete.push(pod.metadata.name.clone());
            }
        }
        let mut active: Vec<&Pod> = pods_here
            .iter()
            .copied()
            .filter(|p| pods::is_active(p))
            .collect();
        let fit = fit(ds, node);
        let stays = fit.should_run || (fit.should_continue && !active.is_empty());
        if !stays {
            if !active.is_empty() {
                status.number_misscheduled += 1;
            }
            plan.delete
                .extend(active.iter().map(|p| p.metadata.name.clone()));
            continue;
        }
        status.desired_number_scheduled += 1;
        if active.is_empty() {
            unavailable_nodes += 1;
            if !terminating && !deleting {
                plan.create.push(name.to_owned());
            }
            continue;
        }
        // One pod per node: keep the oldest (of the current template, if any), delete the rest.
        active.sort_by_key(|p| {
            (
                p.metadata.labels.get(REVISION_HASH_LABEL) != Some(&hash),
                p.metadata.creation_timestamp,
                p.metadata.name.clone(),
            )
        });
        plan.delete
            .extend(active[1..].iter().map(|p| p.metadata.name.clone()));
        let pod = active[0];
        status.current_number_scheduled += 1;
        let is_updated = pod.metadata.labels.get(REVISION_HASH_LABEL) == Some(&hash);
        if is_updated {
            updated += 1;
        }
        let pod_available = match pods::availability(pod, min_ready, now) {
            Availability::NotReady => false,
            Availability::ReadyFor(wait) => {
                status.number_ready += 1;
                plan.recheck_after = Some(plan.recheck_after.map_or(wait, |w| w.min(wait)));
                false
            }
            Availability::Available => {
                status.number_ready += 1;
                true
            }
        };
        if pod_available {
            available += 1;
        } else {
            unavailable_nodes += 1;
        }
        if !is_updated {
            if pod_available {
                replaceable.push(pod);
            } else {
                old_unavailable.push(pod);
            }
        }
    }
    let rolling = ds.spec.update_strategy.as_ref().and_then(|s| s.type_)
        != Some(DaemonSetUpdateStrategyType::OnDelete);
    // OnDelete keeps old pods, even unavailable ones, until someone deletes them.
    if rolling && !deleting {
        // Replacing a pod that is not available costs no availability.
        plan.delete
            .extend(old_unavailable.iter().map(|p| p.metadata.name.clone()));
        let budget = max_unavailable(ds, status.desired_number_scheduled)? - unavailable_nodes;
        let budget = usize::try_from(budget.max(0)).unwrap_or(0);
        plan.delete.extend(
            replaceable
                .iter()
                .take(budget)
                .map(|p| p.metadata.name.clone()),
        );
    }
    if deleting {
        plan.delete.clear();
    }
    status.updated_number_scheduled = Some(updated);
    status.number_available = Some(available);
    status.number_unavailable = Some(status.desired_number_scheduled - available);
    plan.status = status;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{
        Affinity, ConditionStatus, DaemonSetUpdateStrategy, PodCondition, PodStatus,
        RollingUpdateDaemonSet, Taint,
    };
    use orchestra_api::{LabelSelector, ObjectMeta, Time};

    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";

    fn now() -> jiff::Timestamp {
        T0.parse().unwrap()
    }

    fn ds() -> DaemonSet {
        let mut ds = DaemonSet {
            metadata: ObjectMeta::namespaced("ns", "agent"),
            ..DaemonSet::default()
        };
        ds.metadata.uid = "ds-uid".into();
        ds.metadata.generation = Some(2);
        ds.spec.selector = LabelSelector::match_labels([("app", "agent")]);
        ds.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "agent".into());
        ds
    }

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, TaintEffect)]) -> Arc<Node> {
        let mut node = Node {
            metadata: ObjectMeta::named(name),
            ..Node::default()
        };
        for (k, v) in labels {
            node.metadata.labels.insert((*k).into(), (*v).into());
        }
        node.spec.taints = taints
            .iter()
            .map(|(key, effect)| Taint {
                key: (*key).into(),
                effect: *effect,
                ..Taint::default()
            })
            .collect();
        Arc::new(node)
    }

    /// A pod of `ds` on `node`, of the current template or not, ready or not.
    fn pod(ds: &DaemonSet, name: &str, node: &str, current: bool, ready: bool) -> Arc<Pod> {
        let hash = if current {
            current_hash(ds)
        } else {
            "old".into()
        };
        let mut pod = pod_for_node(ds, node, &hash);
        pod.metadata.name = name.into();
        pod.metadata.creation_timestamp = Some(T0.parse::<Time>().unwrap());
        pod.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                ..PodCondition::default()
            }],
            ..PodStatus::default()
        });
        Arc::new(pod)
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let mut ds = ds();
        ds.spec
            .template
            .spec
            .node_selector
            .insert("role".into(), "edge".into());
        let nodes = vec![
            node("a", &[("role", "edge")], &[]),
            node(
                "b",
                &[("role", "edge")],
                &[("dedicated", TaintEffect::NoSchedule)],
            ),
            node("c", &[("role", "core")], &[]),
            node(
                "d",
                &[("role", "edge")],
                &[
                    ("node.kubernetes.io/not-ready", TaintEffect::NoExecute),
                    ("node.kubernetes.io/unschedulable", TaintEffect::NoSchedule),
                ],
            ),
            node(
                "e",
                &[("role", "edge")],
                &[("gpu", TaintEffect::PreferNoSchedule)],
            ),
        ];
        let plan = plan(&ds, &nodes, &[], now()).unwrap();
        assert_eq!(
            plan.create,
            ["a", "d", "e"],
            "b's taint is not tolerated, c is not selected"
        );
        assert_eq!(plan.status.desired_number_scheduled, 3);
        assert_eq!(plan.status.current_number_scheduled, 0);
        assert_eq!(plan.status.number_unavailable, Some(3));
    }

    #[test]
    fn required_node_affinity_selects_nodes() {
        let mut ds = ds();
        ds.spec.template.spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: vec![NodeSelectorRequirement {
                            key: "cores".into(),
                            operator: NodeSelectorOperator::Gt,
                            values: vec!["8".into()],
                        }],
                        ..NodeSelectorTerm::default()
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        let nodes = vec![
            node("small", &[("cores", "4")], &[]),
            node("big", &[("cores", "16")], &[]),
            node("unlabelled", &[], &[]),
        ];
        let plan = plan(&ds, &nodes, &[], now()).unwrap();
        assert_eq!(plan.create, ["big"]);
    }

    #[test]
    fn daemon_pods_are_pinned_to_their_node_and_tolerate_node_trouble() {
        let pod = pod_for_node(&ds(), "n1", "h1");
        assert_eq!(pod_node(&pod), Some("n1"));
        assert_eq!(pod.metadata.labels[REVISION_HASH_LABEL], "h1");
        assert_eq!(pod.metadata.controller_ref().unwrap().uid, "ds-uid");
        let keys: Vec<(&str, Option<TaintEffect>)> = pod
            .spec
            .tolerations
            .iter()
            .map(|t| (t.key.as_str(), t.effect))
            .collect();
        assert!(keys.contains(&("node.kubernetes.io/not-ready", Some(TaintEffect::NoExecute))));
        assert!(keys.contains(&(
            "node.kubernetes.io/unreachable",
            Some(TaintEffect::NoExecute)
        )));
        assert!(
            !keys
                .iter()
                .any(|(k, _)| *k == "node.kubernetes.io/network-unavailable")
        );
        assert!(
            pod.spec
                .tolerations
                .iter()
                .all(|t| t.toleration_seconds.is_none())
        );
    }

    #[test]
    fn pods_leave_nodes_that_stop_fitting_and_extras_go() {
        let d = ds();
        let nodes = vec![
            node("a", &[], &[]),
            node("evicting", &[], &[("maintenance", TaintEffect::NoExecute)]),
            node("cordoned", &[], &[("dedicated", TaintEffect::NoSchedule)]),
        ];
        let pods = vec![
            pod(&d, "a-1", "a", true, true),
            pod(&d, "a-2", "a", true, true),
            pod(&d, "evicting-1", "evicting", true, true),
            pod(&d, "cordoned-1", "cordoned", true, true),
            pod(&d, "gone-1", "gone", true, true),
        ];
        let plan = plan(&d, &nodes, &pods, now()).unwrap();
        let mut delete = plan.delete.clone();
        delete.sort();
        assert_eq!(
            delete,
            ["a-2", "evicting-1", "gone-1"],
            "a NoSchedule taint lets a pod stay"
        );
        assert!(plan.create.is_empty());
        assert_eq!(plan.status.number_misscheduled, 1);
        assert_eq!(plan.status.desired_number_scheduled, 2);
        assert_eq!(plan.status.current_number_scheduled, 2);
        assert_eq!(plan.status.number_ready, 2);
        assert_eq!(plan.status.updated_number_scheduled, Some(2));
    }

    #[test]
    fn a_rolling_update_replaces_at_most_max_unavailable_nodes() {
        let d = ds();
        let nodes: Vec<Arc<Node>> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| node(n, &[], &[]))
            .collect();
        let old: Vec<Arc<Pod>> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| pod(&d, &format!("{n}-old"), n, false, true))
            .collect();
        let step = plan(&d, &nodes, &old, now()).unwrap();
        assert_eq!(step.delete, ["a-old"], "maxUnavailable 1 by default");
        assert_eq!(step.status.updated_number_scheduled, Some(0));

        // a's new pod is not ready yet: nothing more may go.
        let mut pods = old[1..].to_vec();
        pods.push(pod(&d, "a-new", "a", true, false));
        let step = plan(&d, &nodes, &pods, now()).unwrap();
        assert!(step.delete.is_empty() && step.create.is_empty(), "{step:?}");
        assert_eq!(step.status.updated_number_scheduled, Some(1));
        assert_eq!(step.status.number_unavailable, Some(1));

        // An old pod that is not ready anyway is replaced at no cost.
        let mut pods = old[2..].to_vec();
        pods.push(pod(&d, "b-old-broken", "b", false, false));
        pods.push(pod(&d, "a-new", "a", true, true));
        let step = plan(&d, &nodes, &pods, now()).unwrap();
        assert_eq!(step.delete, ["b-old-broken"]);

        // 50% of 4: two at a time; a missing pod is created.
        let mut wide = ds();
        wide.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some(DaemonSetUpdateStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(IntOrString::from("50%")),
                max_surge: None,
            }),
        });
        let step = plan(&wide, &nodes, &old[1..], now()).unwrap();
        assert_eq!(step.create, ["a"]);
        assert_eq!(step.delete, ["b-old"], "a is already unavailable");
    }

    #[test]
    fn on_delete_replaces_only_deleted_pods_and_waits_for_terminating_ones() {
        let mut d = ds();
        d.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some(DaemonSetUpdateStrategyType::OnDelete),
            rolling_update: None,
        });
        let nodes = vec![node("a", &[], &[]), node("b", &[], &[])];
        let mut terminating = (*pod(&d, "b-old", "b", false, true)).clone();
        terminating.metadata.deletion_timestamp = Some(T0.parse().unwrap());
        let pods = vec![pod(&d, "a-old", "a", false, false), Arc::new(terminating)];
        let step = plan(&d, &nodes, &pods, now()).unwrap();
        assert!(step.delete.is_empty(), "old pods stay, even not ready ones");
        assert!(
            step.create.is_empty(),
            "b's new pod waits until its old one is gone"
        );
        let step = plan(&d, &nodes, &pods[..1], now()).unwrap();
        assert_eq!(step.create, ["b"]);
    }
}
