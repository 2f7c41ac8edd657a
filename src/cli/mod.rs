//! The command line of the `orchestra` binary (clap derive).
//!
//! [`Cli`] is the whole command line; [`Command`] has one variant per top-level subcommand of
//! the design (`server`, `agent`, `ctl`, `bench`, ...). Each command family keeps its
//! arguments in its own module, so adding a subcommand is one variant here and one module.
//!
//! # Layout
//! - [`agent`]: `orchestra agent ...`, the node agent against an API server.
//! - [`cluster`]: `orchestra cluster ...`, a whole cluster in one process.
//! - [`bench`]: `orchestra bench ...`, the benchmarks.
//! - [`controller_manager`]: `orchestra controller-manager ...`, the built-in controllers.
//! - [`dns`]: the cluster DNS flags of `server` and `agent`.
//! - [`ctl`]: `orchestra ctl ...`, kubectl's everyday verbs.
//! - [`etcd`]: `orchestra etcd ...`, the store served over etcd's v3 API.
//! - [`scheduler`]: `orchestra scheduler ...`, the scheduling loop against an API server.
//! - [`security`]: how commands reach the API server (credentials, join tokens, plain text).
//! - [`server`]: `orchestra server ...`, the API server (gRPC and HTTP/JSON).
//! - [`sidecar`]: `orchestra sidecar ...`, the mesh proxy next to an application.
//! - [`sidecar_init`]: `orchestra sidecar init ...`, the pod's redirect into the sidecar.

#[cfg(feature = "server")]
pub mod agent;
pub mod bench;
#[cfg(feature = "server")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod controller_manager;
#[cfg(feature = "server")]
pub mod ctl;
#[cfg(feature = "server")]
pub mod dns;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "server")]
pub mod scheduler;
#[cfg(feature = "server")]
pub mod security;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod sidecar;
#[cfg(feature = "server")]
pub mod sidecar_init;

use clap::{Parser, Subcommand};

#[cfg(feature = "server")]
pub use agent::AgentArgs;
pub use bench::BenchCommand;
#[cfg(feature = "server")]
pub use cluster::ClusterArgs;
#[cfg(feature = "server")]
pub use ctl::CtlArgs;
#[cfg(feature = "etcd")]
pub use etcd::EtcdArgs;
#[cfg(feature = "server")]
pub use scheduler::SchedulerArgs;
#[cfg(feature = "server")]
pub use server::ServerArgs;
#[cfg(feature = "server")]
pub use sidecar::SidecarArgs;

/// orchestra: a Kubernetes-style orchestration SDK, and the one binary that runs it.
#[derive(Debug, Parser)]
#[command(name = "orchestra", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands. The control plane, the node agent and `ctl` arrive with later
/// issues, each as one more variant.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a benchmark; prints one JSON object per result line on stdout.
    Bench(BenchCommand),
    /// Serve the embedded store over etcd's v3 gRPC API (etcdctl and etcd clients work).
    #[cfg(feature = "etcd")]
    Etcd(EtcdArgs),
    /// Serve the orchestra API: gRPC (RemoteClient) and HTTP/JSON on Kubernetes' REST paths,
    /// with /healthz, /readyz and /metrics, on one address.
    #[cfg(feature = "server")]
    Server(ServerArgs),
    /// Talk to an API server as kubectl does: apply, get, describe, delete.
    #[cfg(feature = "server")]
    Ctl(CtlArgs),
    /// Schedule pending pods onto nodes through an API server.
    #[cfg(feature = "server")]
    Scheduler(SchedulerArgs),
    /// Run the built-in controllers against an API server, behind leader election.
    #[cfg(feature = "server")]
    ControllerManager(controller_manager::ControllerManagerArgs),
    /// Run the pods bound to a node (the node agent, kubelet's job) through a container runtime.
    #[cfg(feature = "server")]
    Agent(AgentArgs),
    /// A whole cluster in one process: store, API server, scheduler, controllers, N node
    /// agents and the service proxy.
    #[cfg(feature = "server")]
    Cluster(ClusterArgs),
    /// The service mesh's proxy next to an application: mTLS with its service account's
    /// identity, outbound and inbound listeners, readiness, and a drain on SIGTERM or
    /// POST /shutdown.
    #[cfg(feature = "server")]
    Sidecar(SidecarArgs),
}

/// The docs' command lines, parsed against [`Cli`].
#[cfg(all(test, feature = "server", feature = "etcd"))]
mod doc_commands;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
