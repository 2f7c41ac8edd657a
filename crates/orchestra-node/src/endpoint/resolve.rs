//! Which runtime container a log request means (pure): the pod's containers of that name
//! in the runtime's listing, newest last; the newest, or with `previous` the one before it.

use orchestra_api::logs::AgentLogRequest;

use crate::runtime::{ContainerId, RuntimeState, SandboxState};

/// Why a request names no container of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The runtime has no such pod or container (404).
    NotFound(String),
    /// `previous` and there is no earlier instance (400).
    NoPrevious(String),
}

/// Finds the container `request` names in `state`.
pub fn find_container(
    state: &RuntimeState,
    request: &AgentLogRequest,
) -> Result<ContainerId, Unresolved> {
    let pod = format!("{}/{}", request.namespace, request.pod);
    // The pod's current incarnation: the uid of its newest sandbox (a ready one first).
    let uid = state
        .sandboxes
        .iter()
        .filter(|s| s.config.namespace == request.namespace && s.config.name == request.pod)
        .max_by_key(|s| (s.state == SandboxState::Ready, s.created_at))
        .map(|s| s.config.uid.clone())
        .ok_or_else(|| Unresolved::NotFound(format!("pod {pod} has no sandbox on this node")))?;
    let sandboxes: Vec<_> = state
        .sandboxes
        .iter()
        .filter(|s| s.config.uid == uid)
        .map(|s| &s.id)
        .collect();
    let mut instances: Vec<_> = state
        .containers
        .iter()
        .filter(|c| sandboxes.contains(&&c.sandbox) && c.config.name == request.container)
        .collect();
    instances.sort_by_key(|c| (c.created_at, c.config.attempt));
    let pick = if request.previous {
        instances.len().checked_sub(2)
    } else {
        instances.len().checked_sub(1)
    };
    match pick.and_then(|i| instances.get(i)) {
        Some(container) => Ok(container.id.clone()),
        None if request.previous => Err(Unresolved::NoPrevious(format!(
            "previous terminated container {:?} in pod {pod:?} not found",
            request.container
        ))),
        None => Err(Unresolved::NotFound(format!(
            "container {:?} in pod {pod:?} has not been created on this node yet",
            request.container
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::runtime::{
        ContainerConfig, ContainerState, ContainerStatus, SandboxConfig, SandboxId, SandboxStatus,
    };

    fn sandbox(id: &str, uid: &str, ready: bool, at: u64) -> SandboxStatus {
        SandboxStatus {
            id: SandboxId(id.into()),
            config: SandboxConfig {
                name: "web".into(),
                namespace: "shop".into(),
                uid: uid.into(),
                ..SandboxConfig::default()
            },
            state: if ready {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            ip: None,
        }
    }

    fn container(id: &str, sandbox: &str, name: &str, attempt: u32, at: u64) -> ContainerStatus {
        ContainerStatus {
            id: ContainerId(id.into()),
            sandbox: SandboxId(sandbox.into()),
            config: ContainerConfig {
                name: name.into(),
                attempt,
                ..ContainerConfig::default()
            },
            state: ContainerState::Running,
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
            log_path: None,
        }
    }

    fn request(container: &str, previous: bool) -> AgentLogRequest {
        AgentLogRequest {
            namespace: "shop".into(),
            pod: "web".into(),
            container: container.into(),
            previous,
            ..AgentLogRequest::default()
        }
    }

    #[test]
    fn the_newest_instance_of_the_current_pod_and_the_one_before_it() {
        let state = RuntimeState {
            sandboxes: vec![
                sandbox("old-pod", "uid-1", false, 1),
                sandbox("s1", "uid-2", false, 5),
                sandbox("s2", "uid-2", true, 9),
            ],
            containers: vec![
                container("stale", "old-pod", "app", 7, 2),
                container("c0", "s1", "app", 0, 6),
                container("c1", "s2", "app", 0, 10),
                container("c2", "s2", "app", 1, 12),
                container("side", "s2", "sidecar", 0, 10),
            ],
        };
        assert_eq!(
            find_container(&state, &request("app", false)),
            Ok("c2".into())
        );
        assert_eq!(
            find_container(&state, &request("app", true)),
            Ok("c1".into())
        );
        assert_eq!(
            find_container(&state, &request("sidecar", false)),
            Ok("side".into())
        );
        assert!(matches!(
            find_container(&state, &request("sidecar", true)),
            Err(Unresolved::NoPrevious(m)) if m.contains("previous terminated container \"sidecar\"")
        ));
        assert!(matches!(
            find_container(&state, &request("db", false)),
            Err(Unresolved::NotFound(m)) if m.contains("has not been created")
        ));
        assert!(matches!(
            find_container(&RuntimeState::default(), &request("app", false)),
            Err(Unresolved::NotFound(m)) if m.contains("no sandbox")
        ));
    }
}
