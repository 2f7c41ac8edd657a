//! NodePorts (Filter): the pod's host ports must be free on the node (same protocol and port
//! conflict when either binds every address or both bind the same one).

use std::sync::Arc;

use crate::framework::{
    ClusterEvent, CycleState, Extensions, FilterPlugin, Plugin, PreFilterPlugin, QueueingHint,
    Status, hint::pods_on_node_hint,
};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// The reason for nodes where a port is taken.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct NodePorts;

impl NodePorts {
    /// The plugin's name.
    pub const NAME: &'static str = "NodePorts";
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// Ports are freed by pods leaving (or a nomination of at least the pod's priority
    /// cleared); a node added may have them free. A node update frees none, a pod added
    /// takes some.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        pods_on_node_hint(pod, event, || match event {
            ClusterEvent::NodeAdded(node) => {
                self.filter(&CycleState::new(), pod, node).is_success()
            }
            _ => false,
        })
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().pre_filter(self.clone()).filter(self)
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &ClusterSnapshot) -> Status {
        if pod.host_ports.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let taken = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports().iter().any(|used| used.conflicts(want)));
        if taken {
            Status::unschedulable(REASON)
        } else {
            Status::success()
        }
    }
}
