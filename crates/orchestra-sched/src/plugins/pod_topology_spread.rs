//! PodTopologySpread. Filter (`whenUnsatisfiable: DoNotSchedule`): placing the pod on the
//! node must keep `count(node's domain) + 1 - min(count over domains) <= maxSkew`, where
//! counts are the pods matching the constraint's selector in the pod's namespace, and the
//! minimum is 0 while fewer than `minDomains` domains exist. Score (`ScheduleAnyway`): fewer
//! matching pods in the node's domain is better.
//!
//! Only nodes that pass the pod's node selector and required node affinity, and carry every
//! constraint's topology key, count as domains (Kubernetes' `nodeAffinityPolicy: Honor`).

use std::sync::Arc;

use orchestra_api::resources::UnsatisfiableConstraintAction;

use super::node_affinity::{has_required, required_matches};
use super::topology_counts::TopologyCounts;
use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, MAX_NODE_SCORE, NodeSet, Plugin,
    PreFilterPlugin, PreScorePlugin, QueueingHint, ScorePlugin, Status, hint::topology_hint,
};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// The reason for nodes that would exceed a constraint's skew.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// The reason for nodes without a constraint's topology key.
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct PodTopologySpread;

impl PodTopologySpread {
    /// The plugin's name.
    pub const NAME: &'static str = "PodTopologySpread";
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// Skew is counted over topology domains, which node labels define: any node added,
    /// deleted or relabelled, or any pod deleted, may change the verdict anywhere. A pod
    /// added helps only if a `DoNotSchedule` constraint counts it (same namespace, matching
    /// selector, on a node with the topology key): it may raise the least-filled domain.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        topology_hint(pod, event, |added, node| {
            added.namespace() == pod.namespace()
                && pod.spread_constraints.iter().any(|c| {
                    c.action == UnsatisfiableConstraintAction::DoNotSchedule
                        && c.selector.matches(&added.pod.metadata.labels)
                        && node.label(&c.topology_key).is_some()
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

/// The indexes of the pod's constraints with this action.
fn constraints(pod: &PodInfo, action: UnsatisfiableConstraintAction) -> Vec<usize> {
    (0..pod.spread_constraints.len())
        .filter(|&i| pod.spread_constraints[i].action == action)
        .collect()
}

/// Count, per domain of each constraint, the matching pods on eligible nodes (every eligible
/// node's domain is present, with 0 when it has no matching pod).
fn count(pod: &PodInfo, cluster: &ClusterSnapshot, which: &[usize]) -> TopologyCounts {
    let mut counts = TopologyCounts::new();
    let cs = &pod.spread_constraints;
    // Eligible nodes carry every constraint's key and pass the pod's node affinity. Without
    // node affinity, and with one key (or keys every node carries), the eligible domains are
    // the snapshot's label index: no walk over the nodes.
    let every_node_has_keys = which.iter().all(|&c| {
        cluster
            .label_domains(&cs[c].topology_key)
            .is_some_and(|k| k.num_nodes() == cluster.len())
    });
    let eligible = if !has_required(pod) && (which.len() == 1 || every_node_has_keys) {
        for &c in which {
            if let Some(index) = cluster.label_domains(&cs[c].topology_key) {
                for (value, _) in index.domains() {
                    counts.add_value(&cs[c].topology_key, value, 0);
                }
            }
        }
        // Nodes without the key are in no domain: `TopologyCounts::add` skips them.
        None
    } else {
        let mut eligible = vec![false; cluster.len()];
        for (i, node) in cluster.nodes().enumerate() {
            if which
                .iter()
                .all(|&c| node.label(&cs[c].topology_key).is_some())
                && required_matches(pod, node)
            {
                eligible[i] = true;
                for &c in which {
                    counts.add(&cs[c].topology_key, node, 0);
                }
            }
        }
        Some(eligible)
    };
    for group in cluster.pod_groups() {
        let sample = group.sample();
        if sample.namespace() != pod.namespace() || sample.pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        for &c in which {
            if !cs[c].selector.matches(&sample.pod.metadata.labels) {
                continue;
            }
            for (i, n) in group.nodes() {
                if eligible.as_ref().is_none_or(|e| e[i]) {
                    counts.add(&cs[c].topology_key, cluster.node(i), n);
                }
            }
        }
    }
    counts
}

/// The nodes Filter can accept: for every constraint, the nodes of the domains whose skew
/// stays within `maxSkew` (`None`: every node may pass).
fn candidates(pod: &PodInfo, cluster: &ClusterSnapshot, s: &FilterState) -> Option<NodeSet> {
    let mut out: Option<NodeSet> = None;
    for (j, &i) in s.which.iter().enumerate() {
        let c = &pod.spread_constraints[i];
        let mut set = NodeSet::empty(cluster.len());
        let mut all = false;
        if let Some(index) = cluster.label_domains(&c.topology_key) {
            let allowed = |value: &str| {
                s.counts.get(&c.topology_key, value) + s.self_match[j] - s.min[j] <= c.max_skew
            };
            all = index.num_nodes() == cluster.len() && index.domains().all(|(v, _)| allowed(v));
            if !all {
                for (value, _) in index.domains() {
                    if allowed(value) {
                        index.add_nodes_to(value, &mut set);
                    }
                }
            }
        }
        if all {
            continue;
        }
        match &mut out {
            Some(o) => o.intersect(&set),
            None => out = Some(set),
        }
    }
    out
}

/// What PreFilter computed for the `DoNotSchedule` constraints.
#[derive(Clone)]
struct FilterState {
    which: Vec<usize>,
    counts: TopologyCounts,
    /// Per entry of `which`: the minimum count, and 1 if the pod matches its own selector.
    min: Vec<i64>,
    self_match: Vec<i64>,
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
    ) -> Status {
        let which = constraints(pod, UnsatisfiableConstraintAction::DoNotSchedule);
        if which.is_empty() {
            return Status::skip();
        }
        let counts = count(pod, cluster, &which);
        let cs = &pod.spread_constraints;
        let min = which
            .iter()
            .map(|&i| {
                let c = &cs[i];
                let domains = counts.domains(&c.topology_key) as i64;
                if c.min_domains.is_some_and(|m| domains < m) {
                    0
                } else {
                    counts.values(&c.topology_key).min().unwrap_or(0)
                }
            })
            .collect();
        let self_match = which
            .iter()
            .map(|&i| i64::from(cs[i].selector.matches(&pod.pod.metadata.labels)))
            .collect();
        let s = FilterState {
            which,
            counts,
            min,
            self_match,
        };
        if let Some(nodes) = candidates(pod, cluster, &s) {
            state.restrict_nodes(nodes);
        }
        state.write(s);
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>() else {
            return Status::error("PodTopologySpread: PreFilter state missing");
        };
        for (j, &i) in s.which.iter().enumerate() {
            let c = &pod.spread_constraints[i];
            let Some(value) = node.label(&c.topology_key) else {
                return Status::unresolvable(REASON_MISSING_LABEL);
            };
            let skew = s.counts.get(&c.topology_key, value) + s.self_match[j] - s.min[j];
            if skew > c.max_skew {
                return Status::unschedulable(REASON);
            }
        }
        Status::success()
    }
}

/// What PreScore computed for the `ScheduleAnyway` constraints.
#[derive(Clone)]
struct ScoreState {
    which: Vec<usize>,
    counts: TopologyCounts,
    /// Per entry of `which`: `ln(domains among feasible nodes + 2)`.
    weights: Vec<f64>,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        nodes: &[&NodeInfo],
    ) -> Status {
        let which = constraints(pod, UnsatisfiableConstraintAction::ScheduleAnyway);
        if which.is_empty() {
            return Status::skip();
        }
        let counts = count(pod, cluster, &which);
        let cs = &pod.spread_constraints;
        let weights = which
            .iter()
            .map(|&i| {
                let mut seen: Vec<&str> = nodes
                    .iter()
                    .filter_map(|n| n.label(&cs[i].topology_key).map(|v| &**v))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                ((seen.len() + 2) as f64).ln()
            })
            .collect();
        state.write(ScoreState {
            which,
            counts,
            weights,
        });
        Status::success()
    }
}

impl PodTopologySpread {
    /// Whether a node lacks one of the scored constraints' keys (it then scores 0).
    fn ignored(s: &ScoreState, pod: &PodInfo, node: &NodeInfo) -> bool {
        s.which.iter().any(|&i| {
            node.label(&pod.spread_constraints[i].topology_key)
                .is_none()
        })
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<ScoreState>() else {
            return Ok(0);
        };
        if Self::ignored(s, pod, node) {
            return Ok(0);
        }
        let mut score = 0.0;
        for (j, &i) in s.which.iter().enumerate() {
            let c = &pod.spread_constraints[i];
            let n = s.counts.get_node(&c.topology_key, node);
            score += n as f64 * s.weights[j] + (c.max_skew - 1) as f64;
        }
        Ok(score.round() as i64)
    }

    fn normalize(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        let Some(s) = state.read::<ScoreState>() else {
            return Status::success();
        };
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for (node, score) in nodes.iter().zip(scores.iter()) {
            if !Self::ignored(s, pod, node) {
                min = min.min(*score);
                max = max.max(*score);
            }
        }
        for (node, score) in nodes.iter().zip(scores.iter_mut()) {
            *score = if Self::ignored(s, pod, node) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *score) / max
            };
        }
        Status::success()
    }
}
