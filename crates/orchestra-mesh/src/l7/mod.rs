//! The L7 mesh: HTTP-aware service routing built from tower layers on hyper.
//!
//! A request for a service goes through, outermost first: a per-route timeout
//! (`tower::timeout`), retries under a budget (`tower::retry` with
//! `tower::retry::budget::TpsBudget`), a buffer that lets every connection share the service's
//! balancer (`tower::buffer`), the balancer (`tower::balance::p2c` over `tower::load::PeakEwma`),
//! and then, per endpoint, a circuit breaker ([`CircuitBreaker`], written here: tower has none)
//! in front of a pooled hyper client.
//!
//! # Layout
//! - `directory`: [`MeshDirectory`], the services and their names, fed like any
//!   [`ServiceProxy`](crate::ServiceProxy).
//! - `discover`: [`EndpointDiscover`], a service's endpoints as a tower `Discover` stream.

mod directory;
mod discover;

pub use directory::{DirectoryConfig, MeshDirectory};
pub use discover::{EndpointDiff, EndpointDiscover, diff_endpoints};
