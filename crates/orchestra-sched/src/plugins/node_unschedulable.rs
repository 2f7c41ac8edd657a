//! NodeUnschedulable (Filter): cordoned nodes (`spec.unschedulable`) take no new pods, except
//! pods tolerating the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use std::sync::Arc;

use orchestra_api::resources::{Taint, TaintEffect};

use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, Plugin, QueueingHint, Status,
    hint::node_object_hint,
};
use crate::snapshot::{NodeInfo, PodInfo};

/// The taint key a cordoned node implies.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";
/// The reason for cordoned nodes.
pub const REASON: &str = "node(s) were unschedulable";

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeUnschedulable;

impl NodeUnschedulable {
    /// The plugin's name.
    pub const NAME: &'static str = "NodeUnschedulable";
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// A node added schedulable, or uncordoned.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        let state = CycleState::new();
        node_object_hint(
            event,
            |change| change.unschedulable,
            |node| self.passes(&state, pod, node),
        )
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().filter(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable() {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_KEY.into(),
            effect: TaintEffect::NoSchedule,
            ..Taint::default()
        };
        if pod.pod.spec.tolerations.iter().any(|t| t.tolerates(&taint)) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }

    fn passes(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        !node.unschedulable() || self.filter(state, pod, node).is_success()
    }
}
