//! orchestra's node agent: the [`RuntimeDriver`] trait, a CRI-shaped container lifecycle
//! (pod sandboxes, containers, exec, logs, images), and the runtimes that implement it.
//!
//! The trait is deliberately close to Kubernetes' CRI so that containerd can sit behind it
//! unchanged, while a fake runtime can simulate thousands of nodes and a process runtime can run
//! pods as plain local processes.
//!
//! # Layout
//! - [`process`]: [`ProcessRuntime`], containers as local processes.
//! - [`runtime`]: the [`RuntimeDriver`] trait, its request and status types, [`RuntimeError`].
//! - [`testing`]: the runtimes' conformance suite ([`testing::Suite`]) and its portable [`testing::Workload`]s.

pub mod process;
pub mod runtime;
pub mod testing;

pub use process::{IpRange, LimitsMode, ProcessRuntime, ProcessRuntimeConfig};
pub use runtime::{
    ContainerConfig, ContainerId, ContainerResources, ContainerState, ContainerStatus, ExecResult,
    LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeState, SandboxConfig, SandboxId,
    SandboxState, SandboxStatus,
};
