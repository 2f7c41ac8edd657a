//! `orchestra bench ...`: benchmarks that print one JSON object per result line on stdout
//! (logs go to stderr), so that runs can be compared and recorded in `docs/benchmarks.md`.
//!
//! # Layout
//! - [`api`]: `orchestra bench api`, creates/gets/lists/watch through the bare store,
//!   LocalClient and RemoteClient.
//! - [`store`]: `orchestra bench store`, the key-value store's put/get/txn/watch benchmark.
//! - [`proxy`]: `orchestra bench proxy`, the L4 service proxy against direct and nginx.
//! - [`mesh`]: `orchestra bench mesh`, the L7 sidecar (plain and the mTLS pair) against
//!   direct and nginx.
//! - [`node`]: `orchestra bench node`, the node agent's pod start and teardown per runtime.
//! - [`sched`]: `orchestra bench sched`, the scheduler's workloads, on the framework alone
//!   and end to end through the API.
//! - [`cluster`]: `orchestra bench cluster`, the whole control plane with fake nodes at scale.
//! - [`dns`]: `orchestra bench dns`, the cluster DNS against dnsmasq on loopback UDP.
//! - [`controller`]: `orchestra bench controller`, the ReplicaSet controller's pod creations
//!   and a Deployment's rolling update on an in-process API.
//! - [`report`]: the result lines and latency summaries.
//! - [`error`]: why a benchmark stops ([`BenchError`]).

pub mod api;
#[cfg(feature = "server")]
pub mod cluster;
pub mod controller;
pub mod dns;
pub mod error;
pub mod mesh;
pub mod node;
pub mod proxy;
pub mod report;
pub mod sched;
pub mod shards;
pub mod store;

pub use error::BenchError;

use crate::cli::bench::{BenchCommand, BenchTarget};

/// Run the benchmark a [`BenchCommand`] names.
pub async fn run(command: BenchCommand) -> Result<(), BenchError> {
    match command.target {
        BenchTarget::Store(args) => store::run(args).await,
        BenchTarget::Sched(args) => sched::run(args).await,
        BenchTarget::Proxy(args) => proxy::run(args).await,
        BenchTarget::Mesh(args) => mesh::run(args).await,
        BenchTarget::Node(args) => node::run(args).await,
        #[cfg(feature = "server")]
        BenchTarget::Cluster(args) => cluster::run(args).await,
        BenchTarget::Api(args) => api::run(args).await,
        BenchTarget::Dns(args) => dns::run(args).await,
        BenchTarget::Controller(args) => controller::run(args).await,
    }
}
