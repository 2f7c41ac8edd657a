//! NodeName (Filter): a pod that names its node (`spec.nodeName`) fits that node only.

use std::sync::Arc;

use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, Plugin, PreFilterPlugin, QueueingHint,
    Status, hint::node_object_hint,
};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// The reason for nodes other than the one the pod names.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeName;

impl NodeName {
    /// The plugin's name.
    pub const NAME: &'static str = "NodeName";
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// A pod naming a node waits for that node to be added; no update of a node changes
    /// its name.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        let wanted = &pod.pod.spec.node_name;
        node_object_hint(
            event,
            |_| false,
            |node| wanted.is_empty() || wanted.as_str() == &**node.name(),
        )
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().pre_filter(self.clone()).filter(self)
    }
}

impl PreFilterPlugin for NodeName {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &ClusterSnapshot) -> Status {
        if pod.pod.spec.node_name.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let wanted = &pod.pod.spec.node_name;
        if wanted.is_empty() || wanted.as_str() == &**node.name() {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}
