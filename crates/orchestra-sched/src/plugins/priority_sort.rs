//! PrioritySort (QueueSort): higher `spec.priority` first, then the pod that entered the queue
//! first.

use std::sync::Arc;

use crate::framework::{Extensions, Plugin, QueueSortPlugin, QueuedPodInfo};

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct PrioritySort;

impl PrioritySort {
    /// The plugin's name.
    pub const NAME: &'static str = "PrioritySort";
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().queue_sort(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let (pa, pb) = (a.pod.priority, b.pod.priority);
        pa > pb || (pa == pb && a.sequence < b.sequence)
    }
}
