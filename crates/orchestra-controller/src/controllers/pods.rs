//! Facts about pods that several controllers decide on: readiness, activity, and which pods
//! to delete first. Pure functions.

use std::cmp::{Ordering, Reverse};
use std::time::Duration;

use orchestra_api::resources::{ConditionStatus, Pod, PodPhase};

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod became ready (its `Ready` condition's lastTransitionTime), if it is ready;
/// `Some(None)` when ready with no time recorded.
pub fn ready_since(pod: &Pod) -> Option<Option<jiff::Timestamp>> {
    let status = pod.status.as_ref()?;
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
        .map(|c| c.last_transition_time.map(|t| t.timestamp()))
}

/// Whether the pod has been ready for at least `min_ready` at `now` (a pod ready with no time
/// recorded counts as available; so does any ready pod when `min_ready` is zero). Returns the
/// wait until it will be, for a ready pod that is not yet.
pub fn availability(pod: &Pod, min_ready: Duration, now: jiff::Timestamp) -> Availability {
    match ready_since(pod) {
        None => Availability::NotReady,
        Some(_) if min_ready.is_zero() => Availability::Available,
        Some(None) => Availability::Available,
        Some(Some(since)) => {
            let elapsed = now.duration_since(since);
            let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
            if elapsed >= min_ready {
                Availability::Available
            } else {
                Availability::ReadyFor(min_ready - elapsed)
            }
        }
    }
}

/// A pod's availability (see [`availability`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Not ready.
    NotReady,
    /// Ready, and will be available after this much longer.
    ReadyFor(Duration),
    /// Ready for at least minReadySeconds.
    Available,
}

/// Whether the pod counts toward a controller's replicas: not terminated (`Succeeded` or
/// `Failed`) and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase);
    !matches!(phase, Some(PodPhase::Succeeded | PodPhase::Failed))
        && pod.metadata.deletion_timestamp.is_none()
}

/// How eagerly a pod should be deleted when there are too many (Kubernetes' `ActivePods`
/// order): unscheduled before scheduled, Pending before Unknown before Running, not ready before
/// ready, more recently ready first, more restarts first, newer first; names break ties.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    fn rank(pod: &Pod) -> impl Ord + '_ {
        let phase = match pod.status.as_ref().and_then(|s| s.phase) {
            Some(PodPhase::Pending) | None => 0,
            Some(PodPhase::Unknown) => 1,
            _ => 2,
        };
        let ready = ready_since(pod);
        let restarts: i32 = pod
            .status
            .as_ref()
            .map(|s| s.container_statuses.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0);
        let created = pod.metadata.creation_timestamp.map(|t| t.timestamp());
        (
            !pod.spec.node_name.is_empty(),
            phase,
            ready.is_some(),
            Reverse(ready.flatten()),
            Reverse(restarts),
            Reverse(created),
            pod.metadata.name.as_str(),
        )
    }
    rank(a).cmp(&rank(b))
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{ContainerStatus, PodCondition, PodStatus};
    use orchestra_api::{ObjectMeta, Time};

    use super::*;

    fn pod(name: &str, node: &str, phase: PodPhase, ready_at: Option<&str>, created: &str) -> Pod {
        let mut pod = Pod {
            metadata: ObjectMeta::namespaced("ns", name),
            ..Pod::default()
        };
        pod.metadata.creation_timestamp = Some(created.parse().unwrap());
        pod.spec.node_name = node.into();
        pod.status = Some(PodStatus {
            phase: Some(phase),
            conditions: ready_at
                .map(|at| PodCondition {
                    type_: "Ready".into(),
                    status: ConditionStatus::True,
                    last_transition_time: Some(at.parse::<Time>().unwrap()),
                    ..PodCondition::default()
                })
                .into_iter()
                .collect(),
            ..PodStatus::default()
        });
        pod
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-01-01T00:01:00Z";

    #[test]
    fn deletion_prefers_unscheduled_pending_not_ready_then_newest() {
        let mut pods = vec![
            pod("ready-old", "n1", PodPhase::Running, Some(T1), T1),
            pod("ready-new", "n1", PodPhase::Running, Some(T1), T2),
            pod("running-not-ready", "n1", PodPhase::Running, None, T1),
            pod("unknown", "n1", PodPhase::Unknown, None, T1),
            pod("pending", "n1", PodPhase::Pending, None, T1),
            pod("unscheduled", "", PodPhase::Pending, None, T1),
            pod("ready-recently", "n1", PodPhase::Running, Some(T2), T1),
        ];
        let mut restarted = pod("ready-restarted", "n1", PodPhase::Running, Some(T1), T1);
        restarted.status.as_mut().unwrap().container_statuses = vec![ContainerStatus {
            restart_count: 3,
            ..ContainerStatus::default()
        }];
        pods.push(restarted);
        pods.sort_by(deletion_order);
        let names: Vec<&str> = pods.iter().map(|p| p.metadata.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "unknown",
                "running-not-ready",
                "ready-recently",
                "ready-restarted",
                "ready-new",
                "ready-old",
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("a", "n1", PodPhase::Running, Some(T1), T1);
        let t1: jiff::Timestamp = T1.parse().unwrap();
        let later = t1 + jiff::SignedDuration::from_secs(4);
        assert_eq!(
            availability(&p, Duration::from_secs(10), later),
            Availability::ReadyFor(Duration::from_secs(6))
        );
        assert_eq!(
            availability(&p, Duration::from_secs(3), later),
            Availability::Available
        );
        let not_ready = pod("b", "n1", PodPhase::Running, None, T1);
        assert_eq!(
            availability(&not_ready, Duration::ZERO, later),
            Availability::NotReady
        );
        assert!(is_active(&p));
        let done = pod("c", "n1", PodPhase::Succeeded, None, T1);
        assert!(!is_active(&done));
    }
}
