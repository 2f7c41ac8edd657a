//! The events the node agent records, as kubelet does (source `kubelet`, host = the node), with
//! its reasons and wording: a container's `Pulling`, `Pulled`, `Created`, `Started`, `Killing`,
//! `Failed`, `BackOff`, `Unhealthy` and `ProbeWarning` (each on the pod, with the container in the reference's
//! `fieldPath`), and the node's `Starting` and `NodeReady`. Recording goes through an
//! [`EventSink`]: it never waits and never fails a pod's work.

use std::time::Duration;

use orchestra_api::Client;
use orchestra_api::events::{EventSink, reference_to};
use orchestra_api::resources::{
    EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING, Node, ObjectReference, Pod, PodStatus,
};

use crate::probe::ProbeEvent;
use crate::runtime::RuntimeError;

/// The agent's event source component (kubelet's name, which `describe` readers know).
pub const COMPONENT: &str = "kubelet";

/// The waiting reason of a container in restart backoff.
const CRASH_LOOP: &str = "CrashLoopBackOff";

/// The node agent's events; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AgentEvents {
    sink: EventSink,
    node: String,
}

impl AgentEvents {
    /// Events of the agent of `node`, recorded through `client`.
    pub fn new<C: Client>(client: &C, node: &str) -> Self {
        AgentEvents {
            sink: EventSink::for_component(client.clone(), COMPONENT, node),
            node: node.to_owned(),
        }
    }

    /// The sink, for its statistics.
    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    fn container(&self, pod: &Pod, container: &str, warning: bool, reason: &str, message: String) {
        let type_ = if warning {
            EVENT_TYPE_WARNING
        } else {
            EVENT_TYPE_NORMAL
        };
        let object = container_ref(pod, container);
        self.sink.emit(object, type_, reason, message);
    }

    /// `Pulling`: `Pulling image "IMAGE"`.
    pub fn pulling(&self, pod: &Pod, container: &str, image: &str) {
        let message = format!("Pulling image {image:?}");
        self.container(pod, container, false, "Pulling", message);
    }

    /// `Pulled`: `Successfully pulled image "IMAGE" in 1.234s`.
    pub fn pulled(&self, pod: &Pod, container: &str, image: &str, took: Duration) {
        let message = format!(
            "Successfully pulled image {image:?} in {:.3}s",
            took.as_secs_f64()
        );
        self.container(pod, container, false, "Pulled", message);
    }

    /// `Created`: "Created container NAME".
    pub fn created(&self, pod: &Pod, container: &str) {
        let message = format!("Created container {container}");
        self.container(pod, container, false, "Created", message);
    }

    /// `Started`: "Started container NAME".
    pub fn started(&self, pod: &Pod, container: &str) {
        let message = format!("Started container {container}");
        self.container(pod, container, false, "Started", message);
    }

    /// `Failed` (Warning): `Failed to pull image "IMAGE": WHY` when the pull failed, else
    /// "Error: WHY".
    pub fn failed(&self, pod: &Pod, container: &str, image: Option<&str>, err: &RuntimeError) {
        let message = match image {
            Some(image) => format!("Failed to pull image {image:?}: {err}"),
            None => format!("Error: {err}"),
        };
        self.container(pod, container, true, "Failed", message);
    }

    /// `Failed` (Warning) for a configuration the container cannot start with (a missing
    /// ConfigMap, Secret or key): "Error: WHY". `why` names objects and keys, never values.
    pub fn config_failed(&self, pod: &Pod, container: &str, why: &str) {
        self.container(pod, container, true, "Failed", format!("Error: {why}"));
    }

    /// `Killing`: "Stopping container NAME", or, for a failed liveness or startup probe,
    /// "Container NAME failed liveness probe, will be restarted".
    pub fn killing(&self, pod: &Pod, container: &str, why: &str) {
        let probe = ["Liveness", "Startup"]
            .into_iter()
            .find(|kind| why.starts_with(&format!("{kind} probe failed")));
        let message = match probe {
            Some(kind) => format!(
                "Container {container} failed {} probe, will be restarted",
                kind.to_ascii_lowercase()
            ),
            None => format!("Stopping container {container}"),
        };
        self.container(pod, container, false, "Killing", message);
    }

    /// `Unhealthy` (Warning): a probe attempt failed, e.g. "Readiness probe failed: HTTP
    /// probe failed with statuscode: 503".
    pub fn unhealthy(&self, pod: &Pod, container: &str, message: String) {
        self.container(pod, container, true, "Unhealthy", message);
    }

    /// What a prober reports: `Unhealthy` for a failed attempt, `ProbeWarning` (Warning, as
    /// kubelet names it) for one that passed with a warning, e.g. "Liveness probe warning:
    /// Probe terminated redirects, Response body: ...".
    pub fn probe(&self, pod: &Pod, container: &str, event: ProbeEvent) {
        match event {
            ProbeEvent::Failed(message) => self.unhealthy(pod, container, message),
            ProbeEvent::Warning(message) => {
                self.container(pod, container, true, "ProbeWarning", message);
            }
        }
    }

    /// The events a status change shows: `BackOff` (Warning, "Back-off restarting failed
    /// container NAME in pod POD_NAMESPACE(UID)") for each container that just went into
    /// restart backoff (it was not in it, or has restarted since).
    pub fn status_changed(&self, pod: &Pod, before: Option<&PodStatus>, after: &PodStatus) {
        for (container, _) in backed_off(before, after) {
            let meta = &pod.metadata;
            let message = format!(
                "Back-off restarting failed container {container} in pod {}_{}({})",
                meta.name, meta.namespace, meta.uid
            );
            self.container(pod, &container, true, "BackOff", message);
        }
    }

    /// The node's `Starting` ("Starting kubelet.") and `NodeReady` ("Node NAME status is now:
    /// NodeReady"), once it is registered and posting ready status.
    pub fn node_started(&self) {
        let node = Node {
            metadata: orchestra_api::ObjectMeta::named(self.node.clone()),
            ..Node::default()
        };
        self.sink.normal(&node, "Starting", "Starting kubelet.");
        let message = format!("Node {} status is now: NodeReady", self.node);
        self.sink.normal(&node, "NodeReady", message);
    }
}

/// A reference to `container` of `pod`: the pod, with `fieldPath` `spec.containers{NAME}` (or
/// `spec.initContainers{NAME}`), as kubelet refers to containers.
pub fn container_ref(pod: &Pod, container: &str) -> ObjectReference {
    let mut reference = reference_to(pod);
    let init = pod.spec.init_containers.iter().any(|c| c.name == container);
    let list = if init { "initContainers" } else { "containers" };
    reference.field_path = format!("spec.{list}{{{container}}}");
    reference
}

/// The containers (name, restart count) that are in `CrashLoopBackOff` in `after` and were not
/// in `before` (or were, with fewer restarts): each entry into backoff is one event.
pub fn backed_off(before: Option<&PodStatus>, after: &PodStatus) -> Vec<(String, i32)> {
    let in_backoff = |status: &PodStatus| -> Vec<(String, i32)> {
        status
            .init_container_statuses
            .iter()
            .chain(&status.container_statuses)
            .filter(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason == CRASH_LOOP)
            })
            .map(|c| (c.name.clone(), c.restart_count))
            .collect()
    };
    let earlier = before.map(in_backoff).unwrap_or_default();
    in_backoff(after)
        .into_iter()
        .filter(|now| !earlier.contains(now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_api::resources::{
        Container, ContainerState as ApiState, ContainerStateWaiting, ContainerStatus,
    };

    fn status(reason: &str, restarts: i32) -> PodStatus {
        PodStatus {
            container_statuses: vec![ContainerStatus {
                name: "app".into(),
                restart_count: restarts,
                state: Some(ApiState {
                    waiting: Some(ContainerStateWaiting {
                        reason: reason.into(),
                        message: String::new(),
                    }),
                    ..ApiState::default()
                }),
                ..ContainerStatus::default()
            }],
            ..PodStatus::default()
        }
    }

    #[test]
    fn each_entry_into_backoff_is_one_back_off() {
        let backoff = status(CRASH_LOOP, 1);
        assert_eq!(backed_off(None, &backoff), vec![("app".into(), 1)]);
        let creating = status("ContainerCreating", 0);
        assert_eq!(backed_off(Some(&creating), &backoff).len(), 1);
        // Still in the same backoff: nothing new.
        assert!(backed_off(Some(&backoff), &backoff).is_empty());
        // Crashed again after a restart: a new entry.
        assert_eq!(backed_off(Some(&backoff), &status(CRASH_LOOP, 2)).len(), 1);
        assert!(backed_off(Some(&backoff), &creating).is_empty());
    }

    #[test]
    fn container_references_name_the_container_by_field_path() {
        let mut pod = Pod::default();
        pod.metadata.name = "web".into();
        pod.spec.init_containers = vec![Container {
            name: "setup".into(),
            ..Container::default()
        }];
        assert_eq!(
            container_ref(&pod, "app").field_path,
            "spec.containers{app}"
        );
        assert_eq!(
            container_ref(&pod, "setup").field_path,
            "spec.initContainers{setup}"
        );
        assert_eq!(container_ref(&pod, "app").kind, "Pod");
    }
}
