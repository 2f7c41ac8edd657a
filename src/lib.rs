//! orchestra: a Kubernetes-style orchestration SDK. This facade re-exports the component crates,
//! so that one dependency gives the whole cluster's parts.
//!
//! # Layout
//! - [`store`]: `orchestra-store`, the MVCC key-value store (etcd's job).
//! - [`api`]: `orchestra-api`, the resources, the registry over a store with admission, the
//!   API server, clients, watcher and reflector.
//! - [`sched`]: `orchestra-sched`, the `Scheduler` trait, the plugin framework, the default
//!   plugins (preemption and gangs included) and the scheduling loop against the API.
//! - [`controller`]: `orchestra-controller`, the controller runtime, the built-in controllers,
//!   leader election and the controller manager.
//! - [`node`]: `orchestra-node`, the `RuntimeDriver` trait, the fake and process runtimes and
//!   the node agent.
//! - [`mesh`]: `orchestra-mesh`, the `ServiceProxy` trait, `MemoryProxy`, the userspace
//!   `TcpProxy` and the follower that feeds it Services and Endpoints.
//! - [`cluster`]: [`cluster::Cluster`], all of the above composed into one running cluster
//!   (feature `server`).
//! - [`data_dir`]: the layout and format version of a data directory (`orchestra server`'s or `orchestra cluster`'s).

#[cfg(feature = "server")]
pub mod cluster;
pub mod data_dir;

pub use orchestra_api as api;
pub use orchestra_controller as controller;
pub use orchestra_mesh as mesh;
pub use orchestra_node as node;
pub use orchestra_sched as sched;
pub use orchestra_store as store;

/// The README's code, compiled by `cargo test --doc` so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The store crate's README, compiled by `cargo test --doc` so that its example stays true.
#[cfg(doctest)]
#[doc = include_str!("../crates/orchestra-store/README.md")]
pub struct StoreReadmeDoctests;

/// The API crate's README, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../crates/orchestra-api/README.md")]
pub struct ApiReadmeDoctests;

/// The guides in `docs/`, compiled and run by `cargo test --doc` so that their code stays
/// true (their shell commands are parsed against the command line by a test of the binary).
#[cfg(doctest)]
pub mod guides {
    /// docs/architecture.md.
    #[doc = include_str!("../docs/architecture.md")]
    pub struct Architecture;
    /// docs/api-server.md.
    #[doc = include_str!("../docs/api-server.md")]
    pub struct ApiServer;
    /// docs/benchmarks.md.
    #[doc = include_str!("../docs/benchmarks.md")]
    pub struct Benchmarks;
    /// docs/controllers.md.
    #[doc = include_str!("../docs/controllers.md")]
    pub struct Controllers;
    /// docs/fuzzing.md.
    #[doc = include_str!("../docs/fuzzing.md")]
    pub struct Fuzzing;
    /// docs/mesh.md.
    #[doc = include_str!("../docs/mesh.md")]
    pub struct Mesh;
    /// docs/node-runtimes.md.
    #[doc = include_str!("../docs/node-runtimes.md")]
    pub struct NodeRuntimes;
    /// docs/node.md.
    #[doc = include_str!("../docs/node.md")]
    pub struct Node;
    /// docs/operations.md.
    #[doc = include_str!("../docs/operations.md")]
    pub struct Operations;
    /// docs/scheduler.md.
    #[doc = include_str!("../docs/scheduler.md")]
    pub struct Scheduler;
    /// docs/store.md.
    #[doc = include_str!("../docs/store.md")]
    pub struct Store;
}
