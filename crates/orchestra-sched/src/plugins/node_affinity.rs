//! NodeAffinity. Filter: the node must have every `spec.nodeSelector` label and match one of
//! the required node affinity terms. Score: the sum of the weights of the preferred terms the
//! node matches, normalized so the best node gets 100.

use std::sync::Arc;

use orchestra_api::resources::{NodeSelector, NodeSelectorOperator, NodeSelectorTerm};

use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, NodeSet, Plugin, PreFilterPlugin,
    PreScorePlugin, QueueingHint, ScorePlugin, Status, hint::node_object_hint,
};
use crate::plugins::helpers::{default_normalize, term_matches};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// The reason for nodes that do not match.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeAffinity;

impl NodeAffinity {
    /// The plugin's name.
    pub const NAME: &'static str = "NodeAffinity";
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// A node added that matches the pod's selector and required affinity, or whose labels
    /// changed so that it now matches.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        node_object_hint(
            event,
            |change| change.labels,
            |node| required_matches(pod, node),
        )
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new()
            .pre_filter(self.clone())
            .filter(self.clone())
            .pre_score(self.clone())
            .score(self)
    }
}

/// The pod's required node affinity, if any.
fn required(pod: &PodInfo) -> Option<&NodeSelector> {
    pod.pod
        .spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
}

/// Whether the pod has a node selector or required node affinity (some nodes may fail
/// [`required_matches`]).
pub fn has_required(pod: &PodInfo) -> bool {
    !pod.pod.spec.node_selector.is_empty() || required(pod).is_some()
}

/// The nodes that can match a term, judged by its `In` requirements only (`None`: the term
/// has none, any node may match). A node outside the set fails one of them.
fn term_candidates(term: &NodeSelectorTerm, cluster: &ClusterSnapshot) -> Option<NodeSet> {
    let len = cluster.len();
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        // An empty term matches nothing.
        return Some(NodeSet::empty(len));
    }
    let mut out: Option<NodeSet> = None;
    let mut narrow = |set: NodeSet| match &mut out {
        Some(o) => o.intersect(&set),
        None => out = Some(set),
    };
    for r in &term.match_expressions {
        if r.operator != NodeSelectorOperator::In {
            continue;
        }
        let mut set = NodeSet::empty(len);
        if let Some(k) = cluster.label_domains(&r.key) {
            for v in &r.values {
                k.add_nodes_to(v, &mut set);
            }
        }
        narrow(set);
    }
    for r in &term.match_fields {
        if r.operator == NodeSelectorOperator::In && r.key == "metadata.name" {
            let indexes = r.values.iter().filter_map(|n| cluster.position(n));
            narrow(NodeSet::from_indexes(len, indexes.map(|i| i as u32)));
        }
    }
    out
}

/// The nodes that can satisfy the pod's node selector and required node affinity, judged by
/// label values (`None`: no narrowing possible). A node outside it fails
/// [`required_matches`].
fn candidates(pod: &PodInfo, cluster: &ClusterSnapshot) -> Option<NodeSet> {
    let len = cluster.len();
    let mut out: Option<NodeSet> = None;
    for (k, v) in &pod.pod.spec.node_selector {
        let mut set = NodeSet::empty(len);
        if let Some(index) = cluster.label_domains(k) {
            index.add_nodes_to(v, &mut set);
        }
        match &mut out {
            Some(o) => o.intersect(&set),
            None => out = Some(set),
        }
    }
    let union = required(pod).and_then(|required| {
        let mut union = NodeSet::empty(len);
        for term in &required.node_selector_terms {
            // A term any node may match: the terms cannot narrow.
            let set = term_candidates(term, cluster)?;
            union.union(&set);
        }
        Some(union)
    });
    match (out, union) {
        (Some(mut o), Some(u)) => {
            o.intersect(&u);
            Some(o)
        }
        (o, u) => o.or(u),
    }
}

/// Whether a node satisfies the pod's node selector and required node affinity.
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    let spec = &pod.pod.spec;
    let selector_ok = spec
        .node_selector
        .iter()
        .all(|(k, v)| node.label(k).is_some_and(|x| **x == **v));
    selector_ok
        && spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_none_or(|sel| {
                sel.node_selector_terms
                    .iter()
                    .any(|t| term_matches(t, node))
            })
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
    ) -> Status {
        let spec = &pod.pod.spec;
        let required = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        if spec.node_selector.is_empty() && required.is_none() {
            return Status::skip();
        }
        if required.is_some_and(|r| r.node_selector_terms.is_empty()) {
            // No term can match: reject the pod once instead of every node.
            return Status::unresolvable(
                "the pod's required node affinity has no nodeSelectorTerms: no node can match",
            );
        }
        if let Some(nodes) = candidates(pod, cluster) {
            state.restrict_nodes(nodes);
        }
        Status::success()
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }

    fn passes(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        required_matches(pod, node)
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &ClusterSnapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let preferred = pod
            .pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_some_and(|na| {
                !na.preferred_during_scheduling_ignored_during_execution
                    .is_empty()
            });
        if preferred {
            Status::success()
        } else {
            Status::skip()
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(na) = pod
            .pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
        else {
            return Ok(0);
        };
        Ok(na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
            .map(|p| i64::from(p.weight))
            .sum())
    }

    fn normalize(
        &self,
        _: &CycleState,
        _: &PodInfo,
        _: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        default_normalize(scores, false);
        Status::success()
    }
}
