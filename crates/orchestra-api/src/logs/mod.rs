//! Container logs, the `pods/log` subresource: what a client asks for ([`PodLogOptions`]),
//! how the pod's container and node are chosen (pure: [`select_container`],
//! [`agent_endpoint`]), the request the node agent serves ([`AgentLogRequest`], Kubernetes'
//! `GET /containerLogs/{namespace}/{pod}/{container}`), and [`pod_logs`], which puts them
//! together over a [`Client`] and a [`NodeConnector`] (the hop to the node agent).
//!
//! The API server and [`LocalClient`](crate::LocalClient) both read logs this way: they look
//! up the pod and its node, then stream the agent's answer chunk by chunk. Errors are the
//! ones kubectl shows: a pod that is not found or not scheduled, a pod of several containers
//! and no container named, an unknown container, a container still waiting to start, and a
//! node that cannot be reached.
//!
//! ```
//! use orchestra_api::logs::{PodLogOptions, select_container};
//! use orchestra_api::testing;
//!
//! let mut pod = testing::pod("default", "web", "web");
//! pod.spec.node_name = "node-1".into();
//! pod.spec.containers.push(pod.spec.containers[0].clone());
//! pod.spec.containers[1].name = "sidecar".into();
//! let err = select_container(&pod, &PodLogOptions::default()).unwrap_err();
//! assert!(err.to_string().contains("choose one of: [main sidecar]"), "{err}");
//! ```
//!
//! # Layout
//! - [`agent`]: the agent's request, encoded and parsed (shared by both ends).
//! - `http` (feature `server`): [`HttpNodeConnector`], the hop over HTTP or mutual TLS.

pub mod agent;
#[cfg(feature = "server")]
mod http;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use agent::AgentLogRequest;
#[cfg(feature = "server")]
pub use http::HttpNodeConnector;

use crate::client::Client;
use crate::registry::ApiError;
use crate::resources::{ContainerStatus, Node, Pod};

/// A container's log output as it arrives, chunk by chunk.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>;

/// The agent's port in Kubernetes (`kubelet --port`), the default of `orchestra agent
/// --agent-listen`.
pub const DEFAULT_AGENT_PORT: u16 = 10250;

/// What to read (Kubernetes' `PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLogOptions {
    /// The container; may be left out when the pod has exactly one.
    pub container: Option<String>,
    /// Keep streaming new output until the container stops or the reader goes away.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// The previous, terminated instance of the container (after a restart).
    pub previous: bool,
    /// At most this many bytes.
    pub limit_bytes: Option<u64>,
    /// Only the output of the last N seconds (Kubernetes' `sinceSeconds`; not with
    /// `since_time`).
    pub since_seconds: Option<u64>,
    /// Only the output written at or after this time (`sinceTime`; not with `since_seconds`).
    pub since_time: Option<jiff::Timestamp>,
    /// Start each line with the RFC 3339 time it was written at (`timestamps`).
    pub timestamps: bool,
}

/// A connection to node agents: streams one container's log from the agent of `node`.
#[async_trait]
pub trait NodeConnector: fmt::Debug + Send + Sync + 'static {
    /// Asks the agent of `node` for `request` and streams its answer.
    async fn container_logs(
        &self,
        node: &Node,
        request: &AgentLogRequest,
    ) -> Result<LogStream, ApiError>;
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

fn status_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .chain(&status.init_container_statuses)
        .find(|s| s.name == name)
}

/// The container whose log `options` asks for, with kubectl's errors: a pod not yet bound to
/// a node, several containers and none named, a name the pod does not have, a container that
/// is still waiting to start (or, with `previous`, one that never terminated).
pub fn select_container(pod: &Pod, options: &PodLogOptions) -> Result<String, ApiError> {
    let name = &pod.metadata.name;
    if pod.spec.node_name.is_empty() {
        return Err(bad(format!(
            "pod {name:?} does not have a host assigned: it is not scheduled yet"
        )));
    }
    let names: Vec<&str> = pod
        .spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    let container = match options.container.as_deref() {
        Some(container) => {
            if !names.contains(&container) {
                return Err(bad(format!(
                    "container {container} is not valid for pod {name}: choose one of: [{}]",
                    names.join(" ")
                )));
            }
            container.to_owned()
        }
        None => match pod.spec.containers.as_slice() {
            [only] => only.name.clone(),
            _ => {
                let regular: Vec<&str> = pod
                    .spec
                    .containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(bad(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    regular.join(" ")
                )));
            }
        },
    };
    let status = status_of(pod, &container);
    if options.previous {
        let terminated = status
            .and_then(|s| s.last_state.as_ref())
            .is_some_and(|s| s.terminated.is_some());
        if !terminated {
            return Err(bad(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )));
        }
        return Ok(container);
    }
    let state = status.and_then(|s| s.state.as_ref());
    let waiting = match state {
        None => Some("ContainerCreating"),
        Some(state) if state.running.is_some() || state.terminated.is_some() => None,
        Some(state) => Some(
            state
                .waiting
                .as_ref()
                .map(|w| w.reason.as_str())
                .filter(|r| !r.is_empty())
                .unwrap_or("ContainerCreating"),
        ),
    };
    // A container waiting to restart has a log from its last run: show that one, as kubelet.
    let ran_before = status
        .and_then(|s| s.last_state.as_ref())
        .is_some_and(|s| s.terminated.is_some());
    match waiting {
        Some(reason) if !ran_before => Err(bad(format!(
            "container {container:?} in pod {name:?} is waiting to start: {reason}"
        ))),
        _ => Ok(container),
    }
}

/// Where the agent of `node` listens: its InternalIP (else any address) and its
/// `daemonEndpoints.kubeletEndpoint.Port`.
pub fn agent_endpoint(node: &Node) -> Result<(String, u16), ApiError> {
    let name = &node.metadata.name;
    let status = node.status.as_ref();
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|port| *port > 0)
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| {
            bad(format!(
                "node {name:?} publishes no agent endpoint (status.daemonEndpoints.kubeletEndpoint.Port): its agent does not serve container logs"
            ))
        })?;
    let addresses = status.map(|s| s.addresses.as_slice()).unwrap_or_default();
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|kind| addresses.iter().find(|a| a.type_ == *kind))
        .map(|a| a.address.clone())
        .ok_or_else(|| {
            bad(format!(
                "node {name:?} publishes no address (status.addresses)"
            ))
        })?;
    Ok((address, port))
}

/// Reads the pod, chooses its container, finds its node and streams the agent's answer.
pub async fn pod_logs<C: Client>(
    client: &C,
    connector: &dyn NodeConnector,
    namespace: &str,
    name: &str,
    options: &PodLogOptions,
) -> Result<LogStream, ApiError> {
    let pod: Pod = client.get(namespace, name).await?;
    let container = select_container(&pod, options)?;
    let node: Node = client.get("", &pod.spec.node_name).await.map_err(|err| {
        if err.is_not_found() {
            bad(format!(
                "pod {name:?} is bound to node {:?}, which does not exist",
                pod.spec.node_name
            ))
        } else {
            err
        }
    })?;
    let request = AgentLogRequest {
        namespace: namespace.to_owned(),
        pod: name.to_owned(),
        container,
        follow: options.follow,
        tail_lines: options.tail_lines,
        previous: options.previous,
        limit_bytes: options.limit_bytes,
        since_seconds: options.since_seconds,
        since_time: options.since_time,
        timestamps: options.timestamps,
    };
    connector.container_logs(&node, &request).await
}

#[cfg(test)]
mod tests;
