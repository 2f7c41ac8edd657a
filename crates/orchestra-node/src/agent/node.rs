//! The node's presence in the API: registering the [`Node`], renewing its [`Lease`] in
//! `kube-node-lease`, and posting the node status.

use std::collections::BTreeMap;
use std::time::Duration;

use orchestra_api::resources::{
    ConditionStatus, DaemonEndpoint, Lease, LeaseSpec, Node, NodeAddress, NodeCondition,
    NodeDaemonEndpoints, NodeStatus, NodeSystemInfo, RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PODS,
};
use orchestra_api::{ApiError, Client, MicroTime, ObjectMeta, Quantity};

use super::AgentConfig;
use crate::pod::{clock, to_time};

/// The namespace of node heartbeat leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Kubernetes' name for this machine's architecture (`amd64`, `arm64`, ...).
pub fn kube_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The Node object this agent registers.
pub fn node_object(config: &AgentConfig, runtime: &str) -> Node {
    let mut labels = BTreeMap::from([
        (
            "kubernetes.io/hostname".to_owned(),
            config.node_name.clone(),
        ),
        (
            "kubernetes.io/os".to_owned(),
            std::env::consts::OS.to_owned(),
        ),
        ("kubernetes.io/arch".to_owned(), kube_arch().to_owned()),
    ]);
    labels.extend(config.labels.clone());
    Node {
        metadata: ObjectMeta {
            labels,
            ..ObjectMeta::named(config.node_name.clone())
        },
        spec: Default::default(),
        status: Some(node_status(config, runtime, None)),
    }
}

/// The node's status: capacity and allocatable, `Ready`, addresses, system info; the Ready
/// condition's transition time is kept from `previous` when it did not change.
pub fn node_status(
    config: &AgentConfig,
    runtime: &str,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let capacity = BTreeMap::from([
        (RESOURCE_CPU.to_owned(), config.cpu),
        (RESOURCE_MEMORY.to_owned(), config.memory),
        (
            RESOURCE_PODS.to_owned(),
            Quantity::from_value(i64::from(config.pods)),
        ),
    ]);
    let now = to_time(clock::now());
    let since = previous
        .and_then(|s| s.condition("Ready"))
        .filter(|c| c.status == ConditionStatus::True)
        .and_then(|c| c.last_transition_time);
    NodeStatus {
        allocatable: capacity.clone(),
        capacity,
        conditions: vec![NodeCondition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            last_heartbeat_time: Some(now),
            last_transition_time: since.or(Some(now)),
            reason: "KubeletReady".into(),
            message: "orchestra agent is posting ready status".into(),
        }],
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.address.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.node_name.clone(),
            },
        ],
        daemon_endpoints: config.endpoint_port.map(|port| NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            operating_system: std::env::consts::OS.into(),
            architecture: kube_arch().into(),
            container_runtime_version: format!("{runtime}://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: format!("orchestra-{}", env!("CARGO_PKG_VERSION")),
            ..NodeSystemInfo::default()
        }),
    }
}

/// Creates the Node, or updates its labels and status when it exists.
pub async fn register<C: Client>(
    client: &C,
    config: &AgentConfig,
    runtime: &str,
) -> Result<(), ApiError> {
    let wanted = node_object(config, runtime);
    match client.create(&wanted).await {
        Ok(_) => return Ok(()),
        Err(ApiError::AlreadyExists { .. }) => {}
        Err(err) => return Err(err),
    }
    let mut node: Node = client.get("", &config.node_name).await?;
    let missing = wanted
        .metadata
        .labels
        .iter()
        .any(|(k, v)| node.metadata.labels.get(k) != Some(v));
    if missing {
        node.metadata.labels.extend(wanted.metadata.labels.clone());
        client.update(&node).await?;
    }
    post_status(client, config, runtime).await
}

/// Writes a fresh node status (heartbeat now), keeping the Ready transition time.
pub async fn post_status<C: Client>(
    client: &C,
    config: &AgentConfig,
    runtime: &str,
) -> Result<(), ApiError> {
    let mut node: Node = client.get("", &config.node_name).await?;
    node.status = Some(node_status(config, runtime, node.status.as_ref()));
    node.metadata.resource_version.clear();
    client.update_status(&node).await.map(drop)
}

/// Renews (or creates) the node's lease once.
pub async fn renew_lease<C: Client>(client: &C, config: &AgentConfig) -> Result<(), ApiError> {
    let now = MicroTime::new(
        jiff::Timestamp::try_from(clock::now()).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    );
    let seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(40);
    match client
        .get::<Lease>(LEASE_NAMESPACE, &config.node_name)
        .await
    {
        Ok(mut lease) => {
            lease.spec.renew_time = Some(now);
            lease.spec.holder_identity = Some(config.node_name.clone());
            lease.spec.lease_duration_seconds = Some(seconds);
            client.update(&lease).await.map(drop)
        }
        Err(err) if err.is_not_found() => {
            let lease = Lease {
                metadata: ObjectMeta::namespaced(LEASE_NAMESPACE, config.node_name.clone()),
                spec: LeaseSpec {
                    holder_identity: Some(config.node_name.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: None,
                },
            };
            client.create(&lease).await.map(drop)
        }
        Err(err) => Err(err),
    }
}

/// The delay after `failures` failed renewals in a row: 200 ms doubling to 7 s.
pub fn lease_retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (Duration::from_millis(200) * 2u32.pow(exp)).min(Duration::from_secs(7))
}

/// Renews the lease forever: every `lease_renew_interval`, retrying failures after
/// [`lease_retry_delay`]. Never returns; errors are logged.
pub async fn lease_loop<C: Client>(client: C, config: std::sync::Arc<AgentConfig>) {
    let mut failures = 0;
    loop {
        let delay = match renew_lease(&client, &config).await {
            Ok(()) => {
                failures = 0;
                config.lease_renew_interval
            }
            Err(err) => {
                failures += 1;
                let delay = lease_retry_delay(failures);
                tracing::warn!(node = %config.node_name, %err, ?delay, "renewing the node lease failed");
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// Posts the node status every `status_report_interval` (and retries failures after a few
/// seconds). Never returns.
pub async fn status_loop<C: Client>(
    client: C,
    config: std::sync::Arc<AgentConfig>,
    runtime: String,
) {
    loop {
        let delay = match post_status(&client, &config, &runtime).await {
            Ok(()) => config.status_report_interval,
            Err(err) if err.is_not_found() => match register(&client, &config, &runtime).await {
                Ok(()) => config.status_report_interval,
                Err(err) => {
                    tracing::warn!(node = %config.node_name, %err, "re-registering the node failed");
                    Duration::from_secs(5)
                }
            },
            Err(err) => {
                tracing::warn!(node = %config.node_name, %err, "posting the node status failed");
                Duration::from_secs(5)
            }
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_retries_back_off_from_200ms_to_7s() {
        let delays: Vec<u128> = (1..=8).map(|n| lease_retry_delay(n).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 7000, 7000]);
    }
}
