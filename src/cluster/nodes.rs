//! The cluster's node agents: one [`Agent`] per node over an in-process client (acting as the
//! node's user, `system:node:NAME`, when the cluster authorizes its components), with the fake
//! runtime or the process runtime (each node its own state directory and pod IP range, so that
//! several nodes share one host without colliding).

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::{Client, Quantity};
use orchestra_node::agent::env::ClusterDnsSettings;
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::endpoint::{AgentEndpoint, EndpointTls, RunningEndpoint};
use orchestra_node::fake::FakeRuntime;
use orchestra_node::process::{IpRange, ProcessRuntime, ProcessRuntimeConfig};
use orchestra_node::{RuntimeDriver, SandboxState};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::ClusterError;

/// Which runtime the cluster's nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "server", derive(clap::ValueEnum))]
pub enum NodeRuntime {
    /// Simulated containers: no processes, for scale.
    Fake,
    /// Containers as local processes, each pod with its own loopback IP.
    #[default]
    Process,
}

/// What one node is made of.
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    /// Its position: picks its pod IP range (127.3.{index + 1}.0/24).
    pub(crate) index: usize,
    pub(crate) runtime: NodeRuntime,
    pub(crate) state_dir: PathBuf,
    pub(crate) cpu: i64,
    pub(crate) memory: i64,
    pub(crate) lease_renew_interval: Duration,
    pub(crate) lease_duration: Duration,
    /// The cluster DNS the node's pods are pointed at.
    pub(crate) cluster_dns: Option<ClusterDnsSettings>,
    /// The TLS of the agent's endpoint (container logs) on a loopback port; `None`: plain.
    pub(crate) endpoint_tls: Option<EndpointTls>,
}

type Teardown = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A node agent running in the cluster's process.
pub struct RunningNode {
    name: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Stops every sandbox of the node's runtime (what a lost machine does to its pods).
    kill_pods: Option<Teardown>,
    /// The agent's endpoint (container logs); it goes with the agent.
    endpoint: Option<RunningEndpoint>,
}

impl RunningNode {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its agent still runs.
    pub fn is_running(&self) -> bool {
        self.stop.is_some()
    }

    /// Stops the agent, then kills its pods' containers.
    pub(crate) async fn crash(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(endpoint) = self.endpoint.take() {
            endpoint.shutdown();
        }
        if let Some(kill) = self.kill_pods.take() {
            kill().await;
        }
    }
}

/// Starts one node's runtime and agent.
pub(crate) async fn start<C: Client>(
    client: C,
    spec: NodeSpec,
) -> Result<RunningNode, ClusterError> {
    let mut config = AgentConfig::new(spec.name.clone());
    config.cpu = Quantity::from_value(spec.cpu);
    config.memory = Quantity::from_bytes(spec.memory);
    config.lease_renew_interval = spec.lease_renew_interval;
    config.lease_duration = spec.lease_duration;
    config.cluster_dns = spec.cluster_dns.clone();
    config.volumes_dir = spec.state_dir.join("volumes");
    match spec.runtime {
        NodeRuntime::Fake => {
            spawn(
                client,
                Arc::new(FakeRuntime::new()),
                config,
                spec.endpoint_tls,
            )
            .await
        }
        NodeRuntime::Process => {
            let mut runtime_config = ProcessRuntimeConfig::new(&spec.state_dir);
            let third = u8::try_from(spec.index + 1).unwrap_or(u8::MAX);
            runtime_config.ip_range =
                IpRange::new(Ipv4Addr::new(127, 3, third, 0), 24).map_err(|source| {
                    ClusterError::Runtime {
                        node: spec.name.clone(),
                        source,
                    }
                })?;
            let runtime = ProcessRuntime::new(runtime_config)
                .await
                .map_err(|source| ClusterError::Runtime {
                    node: spec.name.clone(),
                    source,
                })?;
            spawn(client, Arc::new(runtime), config, spec.endpoint_tls).await
        }
    }
}

/// Starts the agent's endpoint on a loopback port, then the agent, which publishes the port.
async fn spawn<C: Client, R: RuntimeDriver>(
    client: C,
    runtime: Arc<R>,
    mut config: AgentConfig,
    tls: Option<EndpointTls>,
) -> Result<RunningNode, ClusterError> {
    let mut endpoint = AgentEndpoint::new(runtime.clone());
    if let Some(tls) = tls {
        endpoint = endpoint.with_tls(tls);
    }
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let endpoint = endpoint
        .bind(addr)
        .await
        .map_err(|source| ClusterError::Listen { addr, source })?;
    config.endpoint_port = Some(endpoint.local_addr().port());
    let name = config.node_name.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = Agent::with_shared_runtime(client, runtime.clone(), config);
    let task = tokio::spawn(agent.run(async move {
        let _ = stopped.await;
    }));
    let kill_pods: Teardown = Box::new(move || Box::pin(stop_all_sandboxes(runtime)));
    Ok(RunningNode {
        name,
        stop: Some(stop),
        task: Some(task),
        kill_pods: Some(kill_pods),
        endpoint: Some(endpoint),
    })
}

/// Stops every ready sandbox of `runtime` (killing its containers at once).
async fn stop_all_sandboxes<R: RuntimeDriver>(runtime: Arc<R>) {
    let state = match runtime.list().await {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(%error, "listing the runtime's sandboxes failed; pods may be left running");
            return;
        }
    };
    for sandbox in state.sandboxes {
        if sandbox.state == SandboxState::Ready
            && let Err(error) = runtime.stop_pod_sandbox(&sandbox.id).await
        {
            tracing::warn!(sandbox = %sandbox.id, %error, "stopping a sandbox failed");
        }
    }
}
