//! The [`RuntimeDriver`] trait: a container runtime as the node agent sees it, shaped after
//! Kubernetes' CRI (RuntimeService and ImageService) so that containerd fits behind it.
//!
//! # Layout
//! - [`types`]: the identifiers, configurations and statuses.
//! - [`error`]: the error type, [`RuntimeError`].

pub mod error;
pub mod types;

use std::time::Duration;

use async_trait::async_trait;

pub use error::RuntimeError;
pub use types::{
    ContainerConfig, ContainerId, ContainerResources, ContainerSecurity, ContainerState,
    ContainerStatus, ContainerSummary, ExecResult, LogOptions, LogStream, Mount, PodDns,
    RuntimeState, RuntimeSummary, SandboxConfig, SandboxId, SandboxState, SandboxStatus,
    SandboxSummary,
};

/// A container runtime: pod sandboxes, the containers inside them, exec, logs and images.
///
/// Stop and remove are idempotent: stopping a stopped container or removing an absent one
/// succeeds, so the agent can retry after a crash without special cases. Every call may be made
/// concurrently from many pod workers.
#[async_trait]
pub trait RuntimeDriver: Send + Sync + 'static {
    /// A short name for logs and benchmark reports (`fake`, `process`, `cri`).
    fn name(&self) -> &str;

    /// Creates and starts a pod sandbox (the pod's network identity: its IP, hostname).
    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError>;
    /// Stops a sandbox and every container in it (killing them at once). Idempotent.
    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError>;
    /// Removes a sandbox and its containers. Idempotent: an absent sandbox is not an error.
    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError>;
    /// The sandbox's state and IP.
    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus, RuntimeError>;

    /// Creates (does not start) a container in a sandbox.
    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError>;
    /// Starts a created container.
    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// Stops a container: its stop signal (TERM by default), then KILL once `grace` has
    /// passed. Returns once it has exited. Idempotent.
    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError>;
    /// Removes a container (stopping it at once if it still runs). Idempotent.
    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// One container's state, exit code and timestamps.
    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError>;
    /// Every sandbox and container the runtime knows: what an agent re-adopts after a restart.
    async fn list(&self) -> Result<RuntimeState, RuntimeError>;
    /// Every sandbox and container with its state only (CRI's `ListPodSandbox` and
    /// `ListContainers`, without the per-item status calls): the agent's periodic relist,
    /// made once per period for the whole node, so it should be cheap. The default derives it
    /// from [`list`](Self::list); runtimes that can answer without building full statuses
    /// override it.
    async fn list_summary(&self) -> Result<RuntimeSummary, RuntimeError> {
        Ok(RuntimeSummary::from(&self.list().await?))
    }

    /// Runs a command inside a running container and waits for it, up to `timeout`.
    async fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError>;
    /// A container's output (stdout and stderr interleaved as written), optionally followed.
    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogStream, RuntimeError>;

    /// Makes an image available locally (a no-op for runtimes without images).
    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError>;
}
