use super::*;
use crate::resources::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeStatus, PodStatus,
};
use crate::testing;

fn scheduled(containers: &[&str]) -> Pod {
    let mut pod = testing::pod("default", "web", "web");
    pod.spec.node_name = "node-1".into();
    pod.spec.containers = containers
        .iter()
        .map(|name| Container {
            name: (*name).into(),
            image: "busybox".into(),
            ..Container::default()
        })
        .collect();
    pod
}

fn with_state(
    mut pod: Pod,
    name: &str,
    state: ContainerState,
    last: Option<ContainerState>,
) -> Pod {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.container_statuses.push(ContainerStatus {
        name: name.into(),
        state: Some(state),
        last_state: last,
        ..ContainerStatus::default()
    });
    pod
}

fn running() -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..ContainerState::default()
    }
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.into(),
            ..ContainerStateWaiting::default()
        }),
        ..ContainerState::default()
    }
}

fn terminated() -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated::default()),
        ..ContainerState::default()
    }
}

fn options(container: Option<&str>, previous: bool) -> PodLogOptions {
    PodLogOptions {
        container: container.map(Into::into),
        previous,
        ..PodLogOptions::default()
    }
}

fn err(pod: &Pod, options: &PodLogOptions) -> String {
    let err = select_container(pod, options).unwrap_err();
    assert_eq!(err.code(), 400, "{err}");
    err.to_string()
}

#[test]
fn the_only_container_is_chosen_and_a_running_one_is_readable() {
    let pod = with_state(scheduled(&["app"]), "app", running(), None);
    assert_eq!(
        select_container(&pod, &options(None, false)).unwrap(),
        "app"
    );
    assert_eq!(
        select_container(&pod, &options(Some("app"), false)).unwrap(),
        "app"
    );
}

#[test]
fn kubectl_errors_for_unscheduled_ambiguous_unknown_and_waiting() {
    let mut unscheduled = scheduled(&["app"]);
    unscheduled.spec.node_name.clear();
    assert!(err(&unscheduled, &options(None, false)).contains("does not have a host assigned"));

    let two = scheduled(&["app", "sidecar"]);
    assert_eq!(
        err(&two, &options(None, false)),
        "a container name must be specified for pod web, choose one of: [app sidecar]"
    );
    assert!(
        err(&two, &options(Some("db"), false)).contains("container db is not valid for pod web")
    );

    let fresh = scheduled(&["app"]);
    assert!(
        err(&fresh, &options(None, false))
            .contains("container \"app\" in pod \"web\" is waiting to start: ContainerCreating")
    );
    let pulling = with_state(
        scheduled(&["app"]),
        "app",
        waiting("ImagePullBackOff"),
        None,
    );
    assert!(err(&pulling, &options(None, false)).contains("waiting to start: ImagePullBackOff"));
}

#[test]
fn previous_needs_a_terminated_instance_and_a_restarting_container_shows_its_last_run() {
    let once = with_state(scheduled(&["app"]), "app", running(), None);
    assert!(
        err(&once, &options(None, true))
            .contains("previous terminated container \"app\" in pod \"web\" not found")
    );
    let restarted = with_state(scheduled(&["app"]), "app", running(), Some(terminated()));
    assert_eq!(
        select_container(&restarted, &options(None, true)).unwrap(),
        "app"
    );
    let crashing = with_state(
        scheduled(&["app"]),
        "app",
        waiting("CrashLoopBackOff"),
        Some(terminated()),
    );
    assert_eq!(
        select_container(&crashing, &options(None, false)).unwrap(),
        "app"
    );
}

#[test]
fn the_agent_endpoint_is_the_internal_ip_and_the_published_port() {
    let mut node = Node::default();
    node.metadata.name = "node-1".into();
    let err = agent_endpoint(&node).unwrap_err().to_string();
    assert!(err.contains("publishes no agent endpoint"), "{err}");
    node.status = Some(NodeStatus {
        addresses: vec![
            NodeAddress {
                type_: "Hostname".into(),
                address: "n1".into(),
            },
            NodeAddress {
                type_: "InternalIP".into(),
                address: "10.0.0.7".into(),
            },
        ],
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        ..NodeStatus::default()
    });
    assert_eq!(agent_endpoint(&node).unwrap(), ("10.0.0.7".into(), 10250));
}
