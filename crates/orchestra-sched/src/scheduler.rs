//! The [`Scheduler`] trait: place one pod on a snapshot of the cluster.

use orchestra_api::resources::Pod;

use crate::snapshot::ClusterSnapshot;
use crate::unschedulable::{Placement, Unschedulable};

/// Places one pod on a snapshot of the cluster. The snapshot is not changed: the caller
/// assumes the pod onto the chosen node ([`ClusterSnapshot::assume`]) before the next pod.
///
/// The plugin framework ([`crate::Framework`], [`crate::Profiles`]) is the default
/// implementation; a wholly custom scheduler implements this trait directly.
pub trait Scheduler: Send + Sync {
    /// Choose a node for `pod`, or explain why none fits.
    fn schedule(&self, pod: &Pod, cluster: &ClusterSnapshot) -> Result<Placement, Unschedulable>;
}
