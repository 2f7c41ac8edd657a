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
//! pod is deleted (`OnDelete`). Without surge, a node's new pod is created only once its old one
//! is gone; with `maxSurge` above zero (`maxUnavailable` must then be 0, as Kubernetes'
//! validation requires), up to `maxSurge` nodes at a time get their new pod next to the old
//! one, and the old one goes once the new one is available, so that no node is left without
//! an available daemon.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::OwnerReference;
use orchestra_api::resources::{
    DaemonSet, DaemonSetStatus, DaemonSetUpdateStrategyType, Node, NodeAffinity, NodeSelector,
    NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodPhase, TaintEffect,
    Toleration, TolerationOperator,
};

use crate::controllers::history;
use crate::controllers::pods::{self, Availability};

/// The label with the hash of the template a daemon pod was made from.
pub use crate::controllers::history::REVISION_HASH_LABEL;

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
    /// maxSurge is neither a number nor a percentage.
    #[error(
        "spec.updateStrategy.rollingUpdate.maxSurge: {value:?} is neither a number nor a percentage"
    )]
    BadMaxSurge {
        /// The value given.
        value: String,
    },
    /// maxSurge and maxUnavailable are both above zero (Kubernetes' validation refuses it).
    #[error(
        "spec.updateStrategy.rollingUpdate: maxUnavailable must be 0 when maxSurge is not 0 \
         (they are {max_unavailable:?} and {max_surge:?}); set maxUnavailable to 0"
    )]
    SurgeWithUnavailable {
        /// The maxSurge given.
        max_surge: String,
        /// The maxUnavailable given.
        max_unavailable: String,
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
    history::controller_ref(ds)
}

/// The hash of the daemon set's current template (the [`REVISION_HASH_LABEL`] of its pods).
pub fn current_hash(ds: &DaemonSet) -> String {
    history::current_hash(ds)
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

/// The rolling update's bounds over `desired` nodes: `(max_unavailable, max_surge)`, both
/// rounded up as Kubernetes does. With a surge, maxUnavailable is 0 (unset means 0 then);
/// without, it is at least 1 (zero would stall every update; validation refuses it).
fn rolling_bounds(ds: &DaemonSet, desired: i32) -> Result<(i32, i32), PlanError> {
    let rolling = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge_value = rolling.and_then(|r| r.max_surge.as_ref());
    let surge = match surge_value {
        Some(value) => value
            .scaled_value(desired, true)
            .map_err(|_| PlanError::BadMaxSurge {
                value: format!("{value:?}"),
            })?
            .max(0),
        None => 0,
    };
    let unavailable_value = rolling.and_then(|r| r.max_unavailable.as_ref());
    let unavailable = match unavailable_value {
        Some(value) => value
            .scaled_value(desired, true)
            .map_err(|_| PlanError::BadMaxUnavailable {
                value: format!("{value:?}"),
            })?
            .max(0),
        None if surge > 0 => 0,
        None => 1,
    };
    if surge > 0 && unavailable > 0 {
        return Err(PlanError::SurgeWithUnavailable {
            max_surge: surge_value.map(|v| v.to_string()).unwrap_or_default(),
            max_unavailable: unavailable_value.map(|v| v.to_string()).unwrap_or_default(),
        });
    }
    Ok((unavailable.max(i32::from(surge == 0)), surge))
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
    let rolling = ds.spec.update_strategy.as_ref().and_then(|s| s.type_)
        != Some(DaemonSetUpdateStrategyType::OnDelete);
    // Whether this rolling update surges (the bounds scale over the node count below; any
    // count turns a non-zero maxSurge into at least 1).
    let surge = rolling && !deleting && rolling_bounds(ds, 1)?.1 > 0;
    let is_current = |p: &Pod| p.metadata.labels.get(REVISION_HASH_LABEL) == Some(&hash);
    // Surge: nodes whose old pod is not available (a new pod may start at once), nodes whose
    // old pod is available (a new pod may start within the surge), and nodes surging now.
    let mut surge_free: Vec<String> = Vec::new();
    let mut surge_candidates: Vec<String> = Vec::new();
    let mut surging = 0;
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
        // One pod per node: keep the oldest (of the current template, if any), delete the rest;
        // with a surge, also the oldest old pod next to a new one until the new one is available.
        active.sort_by_key(|p| {
            (
                !is_current(p),
                p.metadata.creation_timestamp,
                p.metadata.name.clone(),
            )
        });
        let (new_pod, old_pod) = if !is_current(active[0]) {
            (None, Some(active[0]))
        } else if surge {
            (
                Some(active[0]),
                active.iter().copied().find(|p| !is_current(p)),
            )
        } else {
            (Some(active[0]), None)
        };
        let kept = |p: &Pod| {
            [new_pod, old_pod]
                .iter()
                .flatten()
                .any(|k| std::ptr::eq(*k, p))
        };
        plan.delete.extend(
            active
                .iter()
                .filter(|p| !kept(p))
                .map(|p| p.metadata.name.clone()),
        );
        let available_now = |p: &Pod| {
            matches!(
                pods::availability(p, min_ready, now),
                Availability::Available
            )
        };
        let new_available = new_pod.is_some_and(available_now);
        // The pod that serves the node now: the new one once it is available (or if it is
        // alone), else the old one.
        let pod = match (new_pod, old_pod) {
            (Some(_), Some(old)) if !new_available => old,
            (Some(new), _) => new,
            (None, Some(old)) => old,
            (None, None) => continue,
        };
        status.current_number_scheduled += 1;
        if new_pod.is_some() {
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
        if let Some(new) = new_pod
            && !std::ptr::eq(new, pod)
        {
            // A surge pod that is not available yet may be only becoming ready.
            if let Availability::ReadyFor(wait) = pods::availability(new, min_ready, now) {
                plan.recheck_after = Some(plan.recheck_after.map_or(wait, |w| w.min(wait)));
            }
        }
        match (surge, new_pod, old_pod) {
            (false, None, Some(old)) if pod_available => replaceable.push(old),
            (false, None, Some(old)) => old_unavailable.push(old),
            // The old pod is not serving: its replacement costs nothing.
            (true, None, Some(old)) if !available_now(old) => surge_free.push(name.to_owned()),
            (true, None, Some(_)) => surge_candidates.push(name.to_owned()),
            (true, Some(_), Some(old)) if new_available => {
                plan.delete.push(old.metadata.name.clone());
            }
            (true, Some(_), Some(_)) => surging += 1,
            _ => {}
        }
    }
    // OnDelete keeps old pods, even unavailable ones, until someone deletes them.
    if surge {
        let (_, max_surge) = rolling_bounds(ds, status.desired_number_scheduled)?;
        let room = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
        plan.create.extend(surge_free);
        plan.create.extend(surge_candidates.into_iter().take(room));
    } else if rolling && !deleting {
        // Replacing a pod that is not available costs no availability.
        plan.delete
            .extend(old_unavailable.iter().map(|p| p.metadata.name.clone()));
        let (max_unavailable, _) = rolling_bounds(ds, status.desired_number_scheduled)?;
        let budget = max_unavailable - unavailable_nodes;
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
    use orchestra_api::{IntOrString, LabelSelector, ObjectMeta, Time};

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

    fn surging(max_surge: IntOrString, max_unavailable: Option<IntOrString>) -> DaemonSet {
        let mut d = ds();
        d.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some(DaemonSetUpdateStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable,
                max_surge: Some(max_surge),
            }),
        });
        d
    }

    #[test]
    fn a_surging_update_starts_new_pods_next_to_old_ones_within_max_surge() {
        let d = surging(IntOrString::Int(2), Some(IntOrString::Int(0)));
        let names = ["a", "b", "c", "d"];
        let nodes: Vec<Arc<Node>> = names.iter().map(|n| node(n, &[], &[])).collect();
        let old: Vec<Arc<Pod>> = names
            .iter()
            .map(|n| pod(&d, &format!("{n}-old"), n, false, true))
            .collect();
        let step = plan(&d, &nodes, &old, now()).unwrap();
        assert_eq!(step.create, ["a", "b"], "two nodes surge, in name order");
        assert!(
            step.delete.is_empty(),
            "no old pod goes before its successor"
        );
        assert_eq!(step.status.number_available, Some(4));

        // a's new pod is available, b's is not yet: a's old pod goes, b keeps both, and one
        // more node may surge (b still counts against the surge).
        let mut pods = old.clone();
        pods.push(pod(&d, "a-new", "a", true, true));
        pods.push(pod(&d, "b-new", "b", true, false));
        let step = plan(&d, &nodes, &pods, now()).unwrap();
        assert_eq!(step.delete, ["a-old"]);
        assert_eq!(step.create, ["c"]);
        assert_eq!(step.status.updated_number_scheduled, Some(2));
        assert_eq!(
            step.status.number_available,
            Some(4),
            "b is still served by its old pod"
        );

        // An old pod that is not available gets its successor at once, beyond the surge.
        let mut pods = old.clone();
        pods[3] = pod(&d, "d-old", "d", false, false);
        pods.push(pod(&d, "a-new", "a", true, false));
        pods.push(pod(&d, "b-new", "b", true, false));
        let step = plan(&d, &nodes, &pods, now()).unwrap();
        assert_eq!(step.create, ["d"], "the surge is used up by a and b");
        assert!(step.delete.is_empty());

        // A node that runs only its new pod is done; extra old pods go.
        let pods = vec![
            pod(&d, "a-new", "a", true, true),
            pod(&d, "b-new", "b", true, true),
            pod(&d, "b-old", "b", false, true),
            pod(&d, "b-old2", "b", false, true),
        ];
        let step = plan(&d, &nodes[..2], &pods, now()).unwrap();
        let mut delete = step.delete.clone();
        delete.sort();
        assert_eq!(delete, ["b-old", "b-old2"]);
        assert!(step.create.is_empty());
    }

    #[test]
    fn a_surge_needs_max_unavailable_zero_and_a_percentage_rounds_up() {
        let d = surging(IntOrString::Int(1), Some(IntOrString::Int(1)));
        let nodes = vec![node("a", &[], &[])];
        let err = plan(&d, &nodes, &[], now()).unwrap_err();
        assert!(
            matches!(err, PlanError::SurgeWithUnavailable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("set maxUnavailable to 0"), "{err}");

        // 10% of 4 nodes rounds up to 1; maxUnavailable unset means 0 with a surge.
        let d = surging(IntOrString::from("10%"), None);
        let names = ["a", "b", "c", "d"];
        let nodes: Vec<Arc<Node>> = names.iter().map(|n| node(n, &[], &[])).collect();
        let old: Vec<Arc<Pod>> = names
            .iter()
            .map(|n| pod(&d, &format!("{n}-old"), n, false, true))
            .collect();
        let step = plan(&d, &nodes, &old, now()).unwrap();
        assert_eq!(step.create, ["a"]);
        assert!(step.delete.is_empty());

        let bad = surging(IntOrString::from("lots"), None);
        assert!(matches!(
            plan(&bad, &nodes, &old, now()),
            Err(PlanError::BadMaxSurge { .. })
        ));
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
