//! InterPodAffinity. Filter: the pod's required affinity terms (a matching pod in the node's
//! domain), its required anti-affinity terms (no matching pod in the domain), and existing
//! pods' required anti-affinity terms against it. Score: preferred terms both ways, and
//! existing pods' required affinity terms (weighted by `hardPodAffinityWeight`), summed per
//! domain and min-max normalized.
//!
//! PreFilter and PreScore walk the cluster's pods once per cycle and count matches per
//! topology domain; Filter and Score then only look counts up.

use std::sync::Arc;

use serde::Deserialize;

use super::topology_counts::TopologyCounts;
use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, MAX_NODE_SCORE, NodeSet, Plugin,
    PreFilterPlugin, PreScorePlugin, QueueingHint, ScorePlugin, Status, hint::topology_hint,
};
use crate::snapshot::{AffinityTerm, ClusterSnapshot, NodeInfo, PodInfo};

/// The reason for nodes outside the domains of the pods the pod must be near.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// The reason for nodes in a domain with a pod the pod must avoid.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// The reason for nodes in a domain where an existing pod's anti-affinity forbids the pod.
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// The arguments of InterPodAffinity.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterPodAffinityArgs {
    /// The score an existing pod's required affinity term matching the pod adds (0-100).
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i64,
}

fn one() -> i64 {
    1
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs {
            hard_pod_affinity_weight: 1,
        }
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct InterPodAffinity {
    args: InterPodAffinityArgs,
}

impl InterPodAffinity {
    /// The plugin's name.
    pub const NAME: &'static str = "InterPodAffinity";

    /// The plugin with its arguments; an error names the bad field.
    pub fn new(args: InterPodAffinityArgs) -> Result<Self, String> {
        if !(0..=100).contains(&args.hard_pod_affinity_weight) {
            return Err(format!(
                "hardPodAffinityWeight: {} is out of range; use 0 to 100",
                args.hard_pod_affinity_weight
            ));
        }
        Ok(InterPodAffinity { args })
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// Affinity is counted over topology domains, which node labels define: any node
    /// added, deleted or relabelled, or any pod deleted, may change the verdict anywhere. A
    /// pod added helps only if it may match one of the pod's required affinity terms (one
    /// with a namespace selector is assumed to match: the namespace's labels are not at
    /// hand); existing pods' and the pod's anti-affinity only grow with pods added.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        topology_hint(pod, event, |added, _| {
            pod.required_affinity.iter().any(|term| {
                let ns = added.namespace();
                (term.namespace_selector.is_some() || term.namespaces.iter().any(|n| n == ns))
                    && term.selector.matches(&added.pod.metadata.labels)
            })
        })
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new()
            .pre_filter(self.clone())
            .filter(self.clone())
            .pre_score(self.clone())
            .score(self)
    }
}

/// What PreFilter counted.
#[derive(Clone, Default)]
struct FilterState {
    /// Pods matching all the pod's required affinity terms, per domain of each term's key.
    affinity: TopologyCounts,
    /// Pods matching one of the pod's required anti-affinity terms.
    anti_affinity: TopologyCounts,
    /// Existing pods whose required anti-affinity terms match the pod.
    existing_anti_affinity: TopologyCounts,
    /// Whether the pod matches all its own required affinity terms (the first pod of a group
    /// with affinity to itself may go anywhere its topology keys exist).
    matches_own_affinity: bool,
}

fn matches(term: &AffinityTerm, pod: &PodInfo, cluster: &ClusterSnapshot) -> bool {
    term.matches(pod, |ns| cluster.namespace_labels(ns))
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
    ) -> Status {
        let (aff, anti) = (&pod.required_affinity, &pod.required_anti_affinity);
        if aff.is_empty() && anti.is_empty() && cluster.pods_with_required_anti_affinity() == 0 {
            return Status::skip();
        }
        let mut s = FilterState::default();
        // Pods that look alike are one group: each selector is matched once per group.
        let mut anti_matching: Vec<&AffinityTerm> = Vec::new();
        for group in cluster.pod_groups() {
            let sample = group.sample();
            for term in &sample.required_anti_affinity {
                if matches(term, pod, cluster) {
                    for (i, n) in group.nodes() {
                        s.existing_anti_affinity
                            .add(&term.topology_key, cluster.node(i), n);
                    }
                }
            }
            if aff.is_empty() && anti.is_empty() {
                continue;
            }
            let aff_match = !aff.is_empty() && aff.iter().all(|t| matches(t, sample, cluster));
            anti_matching.clear();
            anti_matching.extend(anti.iter().filter(|t| matches(t, sample, cluster)));
            if !aff_match && anti_matching.is_empty() {
                continue;
            }
            for (i, n) in group.nodes() {
                let node = cluster.node(i);
                if aff_match {
                    for term in aff {
                        s.affinity.add(&term.topology_key, node, n);
                    }
                }
                for term in &anti_matching {
                    s.anti_affinity.add(&term.topology_key, node, n);
                }
            }
        }
        s.matches_own_affinity = aff.iter().all(|t| matches(t, pod, cluster));
        let first_of_group = s.affinity.is_empty() && s.matches_own_affinity;
        if !aff.is_empty() && !first_of_group {
            // Filter accepts only nodes in a domain of each term with a matching pod: visit
            // those nodes only.
            let mut nodes: Option<NodeSet> = None;
            for term in aff {
                let mut set = NodeSet::empty(cluster.len());
                if let Some(index) = cluster.label_domains(&term.topology_key) {
                    for (value, n) in s.affinity.entries(&term.topology_key) {
                        if n > 0 {
                            index.add_nodes_to(value, &mut set);
                        }
                    }
                }
                match &mut nodes {
                    Some(o) => o.intersect(&set),
                    None => nodes = Some(set),
                }
            }
            if let Some(nodes) = nodes {
                state.restrict_nodes(nodes);
            }
        }
        state.write(s);
        Status::success()
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>() else {
            return Status::error("InterPodAffinity: PreFilter state missing");
        };
        if !s.existing_anti_affinity.is_empty() && s.existing_anti_affinity.any_positive(node) {
            return Status::unschedulable(REASON_EXISTING_ANTI_AFFINITY);
        }
        for term in &pod.required_anti_affinity {
            if s.anti_affinity.get_node(&term.topology_key, node) > 0 {
                return Status::unschedulable(REASON_ANTI_AFFINITY);
            }
        }
        let mut pods_exist = true;
        for term in &pod.required_affinity {
            let Some(value) = node.label(&term.topology_key) else {
                return Status::unresolvable(REASON_AFFINITY);
            };
            if s.affinity.get(&term.topology_key, value) <= 0 {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself may go where its keys exist.
        let first_of_group = s.affinity.is_empty() && s.matches_own_affinity;
        if !(pods_exist || first_of_group) {
            return Status::unresolvable(REASON_AFFINITY);
        }
        Status::success()
    }
}

/// What PreScore summed: a score per domain.
#[derive(Clone, Default)]
struct ScoreState(TopologyCounts);

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let has_preferred =
            !(pod.preferred_affinity.is_empty() && pod.preferred_anti_affinity.is_empty());
        if !has_preferred && cluster.pods_with_affinity() == 0 {
            return Status::skip();
        }
        let hard = self.args.hard_pod_affinity_weight;
        let mut scores = TopologyCounts::new();
        // Per group: the (topology key, score) its pods add to their domains.
        let mut deltas: Vec<(&std::sync::Arc<str>, i64)> = Vec::new();
        for group in cluster.pod_groups() {
            let existing = group.sample();
            if !has_preferred && !existing.has_affinity() {
                continue;
            }
            deltas.clear();
            for term in &pod.preferred_affinity {
                if matches(term, existing, cluster) {
                    deltas.push((&term.topology_key, term.weight));
                }
            }
            for term in &pod.preferred_anti_affinity {
                if matches(term, existing, cluster) {
                    deltas.push((&term.topology_key, -term.weight));
                }
            }
            if existing.has_affinity() {
                if hard > 0 {
                    for term in &existing.required_affinity {
                        if matches(term, pod, cluster) {
                            deltas.push((&term.topology_key, hard));
                        }
                    }
                }
                for term in &existing.preferred_affinity {
                    if matches(term, pod, cluster) {
                        deltas.push((&term.topology_key, term.weight));
                    }
                }
                for term in &existing.preferred_anti_affinity {
                    if matches(term, pod, cluster) {
                        deltas.push((&term.topology_key, -term.weight));
                    }
                }
            }
            if deltas.is_empty() {
                continue;
            }
            for (i, n) in group.nodes() {
                let node = cluster.node(i);
                for (key, delta) in &deltas {
                    scores.add(key, node, delta * n);
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(ScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(state.read::<ScoreState>().map_or(0, |s| s.0.sum_node(node)))
    }

    fn normalize(
        &self,
        _: &CycleState,
        _: &PodInfo,
        _: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
            return Status::success();
        };
        for score in scores.iter_mut() {
            *score = if max > min {
                (MAX_NODE_SCORE as f64 * ((*score - min) as f64 / (max - min) as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}
