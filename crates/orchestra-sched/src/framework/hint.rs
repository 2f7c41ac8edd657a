//! Queueing hints: which cluster changes may make a pod that no node accepted schedulable,
//! so that the queue moves it back only then (kube-scheduler's QueueingHint and
//! `EventsToRegister`).
//!
//! When a cycle places a pod nowhere, the queue keeps the names of the plugins that rejected
//! it ([`Unschedulable::rejected_by`]: the first failing Filter of every node, or the PreFilter
//! or Permit plugin that rejected the pod as a whole). On a [`ClusterEvent`], each of those
//! plugins says through [`Plugin::queueing_hint`] whether the change could turn its verdict
//! from reject to accept. One [`QueueingHint::Queue`] moves the pod to backoff or active;
//! otherwise it stays unschedulable (until another event, or the 5-minute flush).
//!
//! Why no pod is stranded: if a change makes the pod fit some node `N`, then either `N`'s
//! recorded plugin `P` now accepts `N`, or `N` is new. A plugin that reads only `N` (its
//! object or its pods) therefore changed its verdict on `N` because of this change, and its
//! hint says Queue whenever "rejected before, accepted now" is possible for that kind of
//! change. Plugins that look beyond the node (InterPodAffinity, PodTopologySpread) say Queue
//! for every change that can move pods between topology domains. A plugin that does not
//! override the hint (custom plugins) says Queue for everything, and a pod with no recorded
//! plugin, or rejected by a plugin its profile does not know, is moved by every event.
//!
//! Pods coming: an assigned pod added ([`ClusterEvent::AssignedPodAdded`]: bound by anyone,
//! or placed by this scheduler) takes room, so it helps only the plugins that need pods
//! somewhere: InterPodAffinity (a pod matching a required affinity term) and
//! PodTopologySpread (a matching pod raising a domain's count). A nomination cleared
//! ([`ClusterEvent::NominationCleared`]: the preemptor was placed elsewhere, deleted, or
//! nominated nowhere) frees the room its node held for it from the pods of lower or equal
//! priority, which the Filter phase counted there ([`nomination_counted`]). A PodGroup
//! created or changed ([`ClusterEvent::PodGroupChanged`]) helps its members that
//! Coscheduling rejected.
//!
//! A node update that changes nothing the default filters read (a status report: conditions,
//! heartbeat times, addresses) has an empty [`NodeChange`], and every default plugin says
//! Skip for it (a custom plugin that does not override its hint still says Queue: it may
//! read conditions).
//!
//! [`Unschedulable::rejected_by`]: crate::Unschedulable::rejected_by
//! [`Plugin::queueing_hint`]: super::Plugin::queueing_hint

use orchestra_api::resources::{Node, PodGroup};

use crate::resources::Resources;
use crate::snapshot::{NodeInfo, PodInfo};

/// Whether a cluster change may help a pod that was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueingHint {
    /// The change may make the pod schedulable: try it again (after its backoff).
    Queue,
    /// The change cannot help the pod: it stays unschedulable.
    Skip,
}

impl QueueingHint {
    /// `Queue` when `may_help`, else `Skip`.
    pub fn queue_if(may_help: bool) -> Self {
        if may_help {
            QueueingHint::Queue
        } else {
            QueueingHint::Skip
        }
    }
}

/// What a node update changed, among what Filter plugins read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// `metadata.labels`.
    pub labels: bool,
    /// `spec.taints`.
    pub taints: bool,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// The allocatable resources (`status.allocatable`, or `status.capacity` without it).
    pub allocatable: bool,
}

impl NodeChange {
    /// What changed from `old` to `new` (a pure comparison of the two objects).
    pub fn between(old: &Node, new: &Node) -> NodeChange {
        NodeChange {
            labels: old.metadata.labels != new.metadata.labels,
            taints: old.spec.taints != new.spec.taints,
            unschedulable: old.spec.unschedulable != new.spec.unschedulable,
            allocatable: allocatable(old) != allocatable(new),
        }
    }

    /// Whether nothing a Filter reads changed (a heartbeat, a condition, an address).
    pub fn is_empty(&self) -> bool {
        *self == NodeChange::default()
    }
}

/// A node's allocatable resources as the snapshot reads them (see [`NodeInfo::new`]).
fn allocatable(node: &Node) -> Resources {
    node.status.as_ref().map_or_else(Resources::default, |s| {
        if s.allocatable.is_empty() {
            Resources::from_list(&s.capacity)
        } else {
            Resources::from_list(&s.allocatable)
        }
    })
}

/// A change in the cluster that may make unschedulable pods schedulable.
#[derive(Clone, Copy, Debug)]
pub enum ClusterEvent<'a> {
    /// A node was added (with any pods already assigned to it).
    NodeAdded(&'a NodeInfo),
    /// A node changed. `old` is the node before, without its pods (an update does not move
    /// pods: read them, and the updated node, in `new`).
    NodeUpdated {
        /// The node before the update (its object only).
        old: &'a NodeInfo,
        /// The node after the update, with its pods.
        new: &'a NodeInfo,
        /// What changed.
        change: NodeChange,
    },
    /// A node was deleted (its pods no longer count anywhere).
    NodeDeleted(&'a Node),
    /// A pod assigned to a node was deleted, or an assumed pod forgotten: room was freed.
    AssignedPodDeleted,
    /// A pod was assigned to a node: bound by someone (another scheduler, a manifest with
    /// `spec.nodeName`), or placed (assumed) by this scheduler. `node` holds it already.
    AssignedPodAdded {
        /// The pod.
        pod: &'a PodInfo,
        /// Its node, with its pods (the added one included).
        node: &'a NodeInfo,
    },
    /// A pending pod's nomination (preemption cleared room for it on `node`) was dropped:
    /// it was placed, deleted, nominated elsewhere or nowhere. The pods of lower or equal
    /// priority no longer count it on `node`.
    NominationCleared {
        /// The pod that was nominated.
        pod: &'a PodInfo,
        /// The node it was nominated to.
        node: &'a str,
    },
    /// A PodGroup (a gang's minimum and timeout) was created or changed.
    PodGroupChanged(&'a PodGroup),
    /// The cluster was listed again: anything may have changed, every pod is moved.
    Resync,
}

/// The hint of a plugin whose Filter reads only the node object (`accepts`): a node added
/// that it accepts, or a node whose `relevant` part changed from rejected to accepted.
/// Pods coming or going change nothing for it.
pub fn node_object_hint(
    event: &ClusterEvent<'_>,
    relevant: impl Fn(&NodeChange) -> bool,
    accepts: impl Fn(&NodeInfo) -> bool,
) -> QueueingHint {
    QueueingHint::queue_if(match event {
        ClusterEvent::NodeAdded(new) => accepts(new),
        ClusterEvent::NodeUpdated { old, new, change } => {
            relevant(change) && !accepts(old) && accepts(new)
        }
        ClusterEvent::NodeDeleted(_)
        | ClusterEvent::AssignedPodDeleted
        | ClusterEvent::AssignedPodAdded { .. }
        | ClusterEvent::NominationCleared { .. }
        | ClusterEvent::PodGroupChanged(_) => false,
        ClusterEvent::Resync => true,
    })
}

/// Whether the Filter phase counted `nominated` on its node for `pod` (see the framework's
/// nominated pods): only a pod of at least `pod`'s priority, and not `pod` itself.
pub fn nomination_counted(pod: &PodInfo, nominated: &PodInfo) -> bool {
    nominated.priority >= pod.priority && nominated.key() != pod.key()
}

/// The hint of a plugin whose Filter reads the pods on the node it filters (resources,
/// ports): room is freed by a pod deleted, or by a nomination that counted for `pod`
/// cleared; a pod added frees none. Node events are `node_events`' to answer.
pub fn pods_on_node_hint(
    pod: &PodInfo,
    event: &ClusterEvent<'_>,
    node_events: impl FnOnce() -> bool,
) -> QueueingHint {
    QueueingHint::queue_if(match event {
        ClusterEvent::AssignedPodDeleted | ClusterEvent::Resync => true,
        ClusterEvent::NominationCleared { pod: nominated, .. } => {
            nomination_counted(pod, nominated)
        }
        ClusterEvent::AssignedPodAdded { .. } | ClusterEvent::PodGroupChanged(_) => false,
        ClusterEvent::NodeAdded(_)
        | ClusterEvent::NodeUpdated { .. }
        | ClusterEvent::NodeDeleted(_) => node_events(),
    })
}

/// The hint of a plugin that reads node labels beyond the node it filters (topology domains):
/// any node added or deleted, any label change, any pod deleted, a nomination that counted
/// for `pod` cleared; a pod added when `added_helps` says it may (it matches what the pod
/// looks for).
pub fn topology_hint(
    pod: &PodInfo,
    event: &ClusterEvent<'_>,
    added_helps: impl FnOnce(&PodInfo, &NodeInfo) -> bool,
) -> QueueingHint {
    QueueingHint::queue_if(match event {
        ClusterEvent::NodeUpdated { change, .. } => change.labels,
        ClusterEvent::NodeAdded(_)
        | ClusterEvent::NodeDeleted(_)
        | ClusterEvent::AssignedPodDeleted
        | ClusterEvent::Resync => true,
        ClusterEvent::AssignedPodAdded { pod: added, node } => added_helps(added, node),
        ClusterEvent::NominationCleared { pod: nominated, .. } => {
            nomination_counted(pod, nominated)
        }
        ClusterEvent::PodGroupChanged(_) => false,
    })
}

/// Whether `pod` asks for some resource whose allocatable amount grew from `old` to `new`
/// (the pod slot counts: every pod takes one).
pub fn requested_resource_grew(pod: &PodInfo, old: &Resources, new: &Resources) -> bool {
    let want = &pod.requests.requests;
    new.pods > old.pods
        || (want.milli_cpu > 0 && new.milli_cpu > old.milli_cpu)
        || (want.memory > 0 && new.memory > old.memory)
        || (want.ephemeral_storage > 0 && new.ephemeral_storage > old.ephemeral_storage)
        || want
            .scalar
            .iter()
            .any(|(name, amount)| *amount > 0 && new.scalar(name) > old.scalar(name))
}

#[cfg(test)]
mod tests {
    use orchestra_api::meta::{ObjectMeta, Time};
    use orchestra_api::resources::{
        ConditionStatus, NodeCondition, NodeSpec, NodeStatus, Taint, TaintEffect,
    };

    use super::*;

    fn node() -> Node {
        Node {
            metadata: ObjectMeta::named("n").with_label("zone", "a"),
            spec: NodeSpec::default(),
            status: Some(NodeStatus {
                capacity: [("cpu".to_owned(), "4".parse().unwrap())].into(),
                conditions: vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ConditionStatus::True,
                    ..NodeCondition::default()
                }],
                ..NodeStatus::default()
            }),
        }
    }

    #[test]
    fn a_heartbeat_changes_nothing_the_filters_read() {
        let old = node();
        let mut new = node();
        let status = new.status.as_mut().unwrap();
        status.conditions[0].last_heartbeat_time = Some(Time::now());
        status.conditions[0].status = ConditionStatus::False;
        assert!(NodeChange::between(&old, &new).is_empty());
    }

    #[test]
    fn each_field_is_told_apart() {
        let old = node();
        let mut new = node();
        new.metadata.labels.insert("zone".into(), "b".into());
        assert_eq!(
            NodeChange::between(&old, &new),
            NodeChange {
                labels: true,
                ..NodeChange::default()
            }
        );
        let mut new = node();
        new.spec.taints.push(Taint {
            key: "k".into(),
            effect: TaintEffect::NoSchedule,
            ..Taint::default()
        });
        new.spec.unschedulable = true;
        let change = NodeChange::between(&old, &new);
        assert!(change.taints && change.unschedulable && !change.labels && !change.allocatable);
        // Allocatable replaces capacity; the same amount written otherwise is no change.
        let mut new = node();
        new.status.as_mut().unwrap().capacity =
            [("cpu".to_owned(), "4000m".parse().unwrap())].into();
        assert!(NodeChange::between(&old, &new).is_empty());
        new.status.as_mut().unwrap().allocatable =
            [("cpu".to_owned(), "3".parse().unwrap())].into();
        assert_eq!(
            NodeChange::between(&old, &new),
            NodeChange {
                allocatable: true,
                ..NodeChange::default()
            }
        );
    }
}
