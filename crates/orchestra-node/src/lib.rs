//! orchestra's node agent: the [`RuntimeDriver`] trait, a CRI-shaped container lifecycle
//! (pod sandboxes, containers, exec, logs, images), and the runtimes that implement it.
//!
//! The trait is deliberately close to Kubernetes' CRI so that containerd can sit behind it
//! unchanged, while a fake runtime can simulate thousands of nodes and a process runtime can run
//! pods as plain local processes.
//!
//! # Layout
//! - [`runtime`]: the [`RuntimeDriver`] trait, its request and status types, [`RuntimeError`].
//! - [`fake`]: [`FakeRuntime`], containers simulated on tokio's clock, for tests and scale.
//! - [`process`]: [`ProcessRuntime`], containers as local processes.
//! - `cri` (feature `cri`): `CriRuntime`, containerd over the CRI gRPC API.
//! - [`testing`]: the runtimes' conformance suite ([`testing::Suite`]) and its portable [`testing::Workload`]s.
//! - [`pod`]: the pod state machine, a pure function from desired and observed state to actions.
//! - [`probe`]: startup, liveness and readiness probes (exec, httpGet, tcpSocket).
//! - [`agent`]: the node agent: node registration, lease, one worker per pod.
//! - `endpoint` (feature `endpoint`): the agent's HTTP endpoint, container logs for the API
//!   server (plain, or mutual TLS with the node's certificate).

pub mod agent;
#[cfg(feature = "cri")]
pub mod cri;
#[cfg(feature = "endpoint")]
pub mod endpoint;
pub mod fake;
pub mod pod;
pub mod probe;
pub mod process;
pub mod runtime;
pub mod testing;

pub use agent::{Agent, AgentConfig};
#[cfg(feature = "cri")]
pub use cri::{CriRuntime, CriRuntimeConfig};
pub use fake::{FakeBehaviour, FakeRuntime};
pub use pod::{Action, Plan, plan};
pub use process::{IpRange, LimitsMode, ProcessRuntime, ProcessRuntimeConfig};
pub use runtime::{
    ContainerConfig, ContainerId, ContainerResources, ContainerSecurity, ContainerState,
    ContainerStatus, ContainerSummary, ExecResult, LogOptions, LogStream, RuntimeDriver,
    RuntimeError, RuntimeState, RuntimeSummary, SandboxConfig, SandboxId, SandboxState,
    SandboxStatus, SandboxSummary,
};
