//! The events the built-in controllers record, with Kubernetes' sources, reasons and wording
//! (`kubectl describe` readers know them): pods created and deleted by a workload controller,
//! replica sets scaled by a Deployment, jobs finished, nodes gone not-ready and pods evicted
//! from them. Everything goes through an [`EventSink`]: queued without waiting, recorded in the
//! background, never failing a sync.

use orchestra_api::events::{EventSink, reference_to};
use orchestra_api::resources::{EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING, ObjectReference, Pod};
use orchestra_api::{ApiError, Client, Resource};

/// The ReplicaSet controller's event source.
pub const REPLICA_SET_CONTROLLER: &str = "replicaset-controller";
/// The Deployment controller's event source.
pub const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
/// The Job controller's event source.
pub const JOB_CONTROLLER: &str = "job-controller";
/// The DaemonSet controller's event source.
pub const DAEMON_SET_CONTROLLER: &str = "daemonset-controller";
/// The StatefulSet controller's event source.
pub const STATEFUL_SET_CONTROLLER: &str = "statefulset-controller";
/// The node lifecycle controller's event source (node status changes).
pub const NODE_CONTROLLER: &str = "node-controller";
/// The source of pod evictions from nodes with `NoExecute` taints.
pub const TAINT_EVICTION_CONTROLLER: &str = "taint-eviction-controller";

/// A pod was created for its owner.
pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
/// Creating a pod failed.
pub const FAILED_CREATE: &str = "FailedCreate";
/// A pod was deleted by its owner.
pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
/// Deleting a pod failed.
pub const FAILED_DELETE: &str = "FailedDelete";
/// A Deployment scaled one of its replica sets.
pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
/// A Job succeeded.
pub const COMPLETED: &str = "Completed";
/// A Node stopped being ready.
pub const NODE_NOT_READY: &str = "NodeNotReady";
/// A pod is deleted because its node has a `NoExecute` taint it does not tolerate.
pub const TAINT_MANAGER_EVICTION: &str = "TaintManagerEviction";

/// The sink of the controller named `component`, recording through `client`.
pub(crate) fn sink<C: Client>(client: &C, component: &str) -> EventSink {
    EventSink::for_component(client.clone(), component, "")
}

/// The pod events of one owner (a ReplicaSet, Job, DaemonSet or StatefulSet) during one sync.
pub(crate) struct PodEvents<'a> {
    sink: &'a EventSink,
    owner: ObjectReference,
}

impl<'a> PodEvents<'a> {
    /// Events about `owner`.
    pub(crate) fn of<R: Resource>(sink: &'a EventSink, owner: &R) -> Self {
        PodEvents {
            sink,
            owner: reference_to(owner),
        }
    }

    fn emit(&self, type_: &'static str, reason: &str, message: String) {
        self.sink.emit(self.owner.clone(), type_, reason, message);
    }

    /// `SuccessfulCreate`: "Created pod: NAME".
    pub(crate) fn created(&self, pod: &Pod) {
        let message = format!("Created pod: {}", pod.metadata.name);
        self.emit(EVENT_TYPE_NORMAL, SUCCESSFUL_CREATE, message);
    }

    /// `FailedCreate`: "Error creating: WHY".
    pub(crate) fn create_failed(&self, err: &ApiError) {
        self.emit(
            EVENT_TYPE_WARNING,
            FAILED_CREATE,
            format!("Error creating: {err}"),
        );
    }

    /// `SuccessfulDelete`: "Deleted pod: NAME".
    pub(crate) fn deleted(&self, name: &str) {
        let message = format!("Deleted pod: {name}");
        self.emit(EVENT_TYPE_NORMAL, SUCCESSFUL_DELETE, message);
    }

    /// `FailedDelete`: "Error deleting: WHY".
    pub(crate) fn delete_failed(&self, err: &ApiError) {
        self.emit(
            EVENT_TYPE_WARNING,
            FAILED_DELETE,
            format!("Error deleting: {err}"),
        );
    }
}

/// The message of a `ScalingReplicaSet` event: "Scaled up replica set NAME to N from M".
pub fn scaling_message(replica_set: &str, from: i32, to: i32) -> String {
    let direction = if to > from { "up" } else { "down" };
    format!("Scaled {direction} replica set {replica_set} to {to} from {from}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_messages_say_the_direction_and_both_sizes() {
        assert_eq!(
            scaling_message("web-5d8f", 0, 3),
            "Scaled up replica set web-5d8f to 3 from 0"
        );
        assert_eq!(
            scaling_message("web-77aa", 3, 1),
            "Scaled down replica set web-77aa to 1 from 3"
        );
    }
}
