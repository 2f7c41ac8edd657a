//! The L4 service proxy: connections and datagrams forwarded by address, without looking
//! inside (kube-proxy's job).
//!
//! # Layout
//! - `balancer`: [`Balancer`], the backend choice (round-robin, ClientIP affinity).
//! - `memory`: [`MemoryProxy`], resolution without sockets.
//! - [`tcp`]: [`TcpProxy`], the userspace proxy on tokio.

mod balancer;
mod memory;
pub mod tcp;

pub use balancer::Balancer;
pub use memory::MemoryProxy;
pub use tcp::{TcpProxy, TcpProxyConfig};
