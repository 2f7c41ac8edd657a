//! orchestra: a Kubernetes-style orchestration SDK. This facade re-exports the component crates.
//!
//! # Layout
//! - [`store`]: `orchestra-store`, the MVCC key-value store (etcd's job).

pub use orchestra_store as store;
