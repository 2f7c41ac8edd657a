//! TaintToleration. Filter: a node with a `NoSchedule` or `NoExecute` taint the pod does not
//! tolerate is rejected. Score: fewer untolerated `PreferNoSchedule` taints is better
//! (normalized in reverse: the node with the most gets 0).

use std::sync::Arc;

use orchestra_api::resources::{TaintEffect, Toleration};

use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, Plugin, PreScorePlugin, QueueingHint,
    ScorePlugin, Status, hint::node_object_hint,
};
use crate::plugins::helpers::default_normalize;
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct TaintToleration;

impl TaintToleration {
    /// The plugin's name.
    pub const NAME: &'static str = "TaintToleration";
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// A node added with taints the pod tolerates, or whose taints changed so that it now
    /// tolerates them all.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        let state = CycleState::new();
        node_object_hint(
            event,
            |change| change.taints,
            |node| self.passes(&state, pod, node),
        )
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new()
            .filter(self.clone())
            .pre_score(self.clone())
            .score(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tolerations = &pod.pod.spec.tolerations;
        let untolerated = node.taints().iter().find(|taint| {
            matches!(
                taint.effect,
                TaintEffect::NoSchedule | TaintEffect::NoExecute
            ) && !tolerations.iter().any(|t| t.tolerates(taint))
        });
        match untolerated {
            None => Status::success(),
            Some(taint) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key, taint.value
            )),
        }
    }

    fn passes(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        node.taints().is_empty() || self.filter(state, pod, node).is_success()
    }
}

/// The pod's tolerations that can tolerate `PreferNoSchedule` taints.
#[derive(Clone)]
struct Prefer(Vec<Toleration>);

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &ClusterSnapshot,
        nodes: &[&NodeInfo],
    ) -> Status {
        let any_prefer = nodes.iter().any(|n| {
            n.taints()
                .iter()
                .any(|t| t.effect == TaintEffect::PreferNoSchedule)
        });
        if !any_prefer {
            return Status::skip();
        }
        let tolerations = pod
            .pod
            .spec
            .tolerations
            .iter()
            .filter(|t| t.effect.is_none_or(|e| e == TaintEffect::PreferNoSchedule))
            .cloned()
            .collect();
        state.write(Prefer(tolerations));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let tolerations = state.read::<Prefer>().map_or(&[][..], |p| &p.0[..]);
        Ok(node
            .taints()
            .iter()
            .filter(|taint| {
                taint.effect == TaintEffect::PreferNoSchedule
                    && !tolerations.iter().any(|t| t.tolerates(taint))
            })
            .count() as i64)
    }

    fn normalize(
        &self,
        _: &CycleState,
        _: &PodInfo,
        _: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        default_normalize(scores, true);
        Status::success()
    }
}
