//! orchestra: a Kubernetes-style orchestration SDK. This facade re-exports the component crates.
//!
//! Today the store and the API's resource model, registry and clients exist; the API server,
//! scheduler, controllers, node agent and mesh arrive with later issues, each re-exported here
//! as it lands.
//!
//! # Layout
//! - [`store`]: `orchestra-store`, the MVCC key-value store (etcd's job).
//! - [`api`]: `orchestra-api`, the resources, the registry over a store, clients, watcher
//!   and reflector (the API server itself is in progress).
//! - [`sched`]: `orchestra-sched`, the `Scheduler` trait, the plugin framework and the
//!   default plugins (the scheduling loop against the API is in progress).

pub use orchestra_api as api;
pub use orchestra_mesh as mesh;
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
