//! The rules for sidecars (Kubernetes' native sidecar containers): init containers with
//! `restartPolicy: Always`.
//!
//! [`plan`](super::plan) starts a sidecar in init-container order, and lets the next
//! container start once the sidecar has *started* (it runs, and its startup probe, if any, has
//! succeeded). A sidecar runs for the pod's lifetime and is restarted (with the
//! CrashLoopBackOff delays) whenever it exits, whatever the pod's restart policy; its
//! readiness counts for the pod's. It does not keep a pod from finishing: once the regular
//! containers are done for good, the sidecars are stopped, the last declared first, one at a
//! time, and the phase comes from the regular containers only. On deletion the regular
//! containers are stopped first, then the sidecars in the same reverse order, within what is
//! left of the grace period.
//!
//! This module holds the small decisions those rules need; the planner calls them.

use std::time::{Duration, SystemTime};

use orchestra_api::resources::{Container, Pod, RestartPolicy};

use crate::runtime::{ContainerState, ContainerStatus};

/// The least grace a sidecar stopped late in a deletion gets (kubelet's minimum), unless the
/// pod's whole grace period is shorter.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// Why a sidecar is stopped once the regular containers are done (for the log and Event).
pub const FINISHED_REASON: &str = "the pod's regular containers have finished";

/// Whether the regular (app) containers are done for good: each has exited and the pod's
/// restart policy restarts none of them (`Never`, or `OnFailure` and each exited 0). Under
/// `Always` they never are. `latest` gives a container's latest attempt.
pub fn regular_containers_done<'a>(
    pod: &Pod,
    policy: RestartPolicy,
    latest: impl Fn(&str) -> Option<&'a ContainerStatus>,
) -> bool {
    policy != RestartPolicy::Always
        && !pod.spec.containers.is_empty()
        && pod.spec.containers.iter().all(|c| {
            latest(&c.name).is_some_and(|status| {
                status.state == ContainerState::Exited
                    && (policy == RestartPolicy::Never || status.exit_code.unwrap_or(0) == 0)
            })
        })
}

/// Whether an ordinary init container failed under restart policy `Never`, which fails the
/// pod (it is never run again, and the pod's regular containers never start).
pub fn init_failed<'a>(
    pod: &Pod,
    policy: RestartPolicy,
    latest: impl Fn(&str) -> Option<&'a ContainerStatus>,
) -> bool {
    policy == RestartPolicy::Never
        && pod
            .spec
            .init_containers
            .iter()
            .filter(|c| !c.is_sidecar())
            .any(|c| {
                latest(&c.name).is_some_and(|status| {
                    status.state == ContainerState::Exited && status.exit_code.unwrap_or(0) != 0
                })
            })
}

/// The sidecar to stop next: the last declared one that still runs (sidecars stop in the
/// reverse of their start order, one at a time). `running` gives a container's running
/// attempt.
pub fn next_to_stop<'a, 'c>(
    init_containers: &'c [Container],
    running: impl Fn(&str) -> Option<&'a ContainerStatus>,
) -> Option<(&'c Container, &'a ContainerStatus)> {
    init_containers
        .iter()
        .rev()
        .filter(|c| c.is_sidecar())
        .find_map(|c| running(&c.name).map(|status| (c, status)))
}

/// The grace period a sidecar gets when a deletion stops it: what is left of the pod's grace
/// period since the deletion began (the regular containers used the first part), at least
/// [`MIN_GRACE`] (or the whole period when that is shorter).
pub fn remaining_grace(pod: &Pod, grace: Duration, now: SystemTime) -> Duration {
    let since = pod
        .metadata
        .deletion_timestamp
        .and_then(|t| SystemTime::try_from(t.timestamp()).ok());
    let Some(since) = since else {
        return grace;
    };
    let left = (since + grace).duration_since(now).unwrap_or_default();
    left.min(grace).max(MIN_GRACE.min(grace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerConfig, ContainerId};

    fn status(name: &str, state: ContainerState, code: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            id: ContainerId::from(name),
            config: ContainerConfig {
                name: name.into(),
                ..ContainerConfig::default()
            },
            sandbox: "s1".into(),
            state,
            created_at: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            exit_code: code,
            reason: String::new(),
            message: String::new(),
            log_path: None,
        }
    }

    fn named(name: &str, sidecar: bool) -> Container {
        Container {
            name: name.into(),
            restart_policy: sidecar.then_some(RestartPolicy::Always),
            ..Container::default()
        }
    }

    #[test]
    fn regular_containers_are_done_when_the_policy_restarts_none() {
        let mut pod = Pod::default();
        pod.spec.containers = vec![named("a", false), named("b", false)];
        let ok = status("a", ContainerState::Exited, Some(0));
        let failed = status("b", ContainerState::Exited, Some(1));
        let running = status("b", ContainerState::Running, None);
        let done = |policy, b: Option<&ContainerStatus>| {
            regular_containers_done(&pod, policy, |name| if name == "a" { Some(&ok) } else { b })
        };
        assert!(done(RestartPolicy::Never, Some(&failed)));
        assert!(!done(RestartPolicy::OnFailure, Some(&failed)));
        assert!(done(RestartPolicy::OnFailure, Some(&ok)));
        assert!(!done(RestartPolicy::Always, Some(&ok)));
        assert!(!done(RestartPolicy::Never, Some(&running)));
        assert!(!done(RestartPolicy::Never, None));
    }

    #[test]
    fn sidecars_stop_last_declared_first() {
        let inits = [
            named("mesh", true),
            named("setup", false),
            named("log", true),
        ];
        let mesh = status("mesh", ContainerState::Running, None);
        let log = status("log", ContainerState::Running, None);
        let setup = status("setup", ContainerState::Running, None);
        let both = |name: &str| match name {
            "mesh" => Some(&mesh),
            "log" => Some(&log),
            _ => Some(&setup),
        };
        assert_eq!(
            next_to_stop(&inits, both).map(|(c, _)| c.name.as_str()),
            Some("log")
        );
        let mesh_only = |name: &str| (name == "mesh").then_some(&mesh);
        assert_eq!(
            next_to_stop(&inits, mesh_only).map(|(c, _)| c.name.as_str()),
            Some("mesh")
        );
        // An ordinary init container is never a sidecar to stop.
        let setup_only = |name: &str| (name == "setup").then_some(&setup);
        assert!(next_to_stop(&inits, setup_only).is_none());
    }

    #[test]
    fn a_deletions_sidecars_get_what_is_left_of_the_grace_period() {
        let began = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut pod = Pod::default();
        let grace = Duration::from_secs(30);
        assert_eq!(remaining_grace(&pod, grace, began), grace, "not deleting");
        pod.metadata.deletion_timestamp = Some(crate::pod::to_time(began));
        let secs = |s| began + Duration::from_secs(s);
        assert_eq!(
            remaining_grace(&pod, grace, secs(10)),
            Duration::from_secs(20)
        );
        assert_eq!(remaining_grace(&pod, grace, secs(29)), MIN_GRACE);
        assert_eq!(remaining_grace(&pod, grace, secs(90)), MIN_GRACE);
        assert_eq!(
            remaining_grace(&pod, Duration::from_secs(1), secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            remaining_grace(&pod, Duration::ZERO, secs(5)),
            Duration::ZERO
        );
    }
}
