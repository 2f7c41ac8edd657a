//! [`CriRuntime`]: pods run by containerd (or any CRI v1 server) through the Container Runtime
//! Interface over gRPC on its unix socket, as kubelet runs them.
//!
//! Enabled by the `cri` feature. The CRI messages are generated at build time by protox from
//! `proto/runtime/v1/cri.proto`, orchestra's own subset of CRI v1 (no `protoc` needed).
//!
//! ```no_run
//! # async fn example() -> Result<(), orchestra_node::RuntimeError> {
//! use orchestra_node::cri::{CriRuntime, CriRuntimeConfig};
//! use orchestra_node::RuntimeDriver;
//!
//! let config = CriRuntimeConfig::new(
//!     "unix:///run/containerd/containerd.sock",
//!     "/var/log/orchestra/pods",
//! );
//! let runtime = CriRuntime::connect(config).await?;
//! println!("{} via {}", runtime.name(), runtime.runtime_version());
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`runtime`]: [`CriRuntime`] and [`CriRuntimeConfig`];
//! - [`endpoint`]: the socket path of an endpoint and a channel over a unix socket;
//! - [`convert`]: orchestra's types to CRI messages and back (pure);
//! - [`logs`]: decoding, reading and following CRI-format log files;
//! - `proto`: the generated messages and clients.

pub mod convert;
pub mod endpoint;
pub mod logs;
mod proto;
pub mod runtime;

pub use runtime::{CriRuntime, CriRuntimeConfig};
