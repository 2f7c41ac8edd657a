//! The L7 mesh: HTTP-aware service routing built from tower layers on hyper.
//!
//! A request for a service goes through, outermost first: a per-route timeout
//! (`tower::timeout`), retries under a budget (`tower::retry` with
//! `tower::retry::budget::TpsBudget`), a buffer that lets every connection share the service's
//! balancer (`tower::buffer`), the balancer (`tower::balance::p2c` over `tower::load::PeakEwma`),
//! and then, per endpoint, a circuit breaker ([`CircuitBreaker`], written here: tower has none)
//! in front of a pooled hyper client.
//!
//! A sidecar's outbound proxy, fed here by hand (in a cluster, a
//! [`ProxyFollower`](crate::ProxyFollower) applies the API's Services and Endpoints to the
//! directory instead):
//!
//! ```no_run
//! use orchestra_mesh::l7::{DirectoryConfig, HttpProxy, HttpProxyConfig, MeshDirectory};
//! use orchestra_mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = MeshDirectory::new(DirectoryConfig::default());
//! let web = ServiceEntry {
//!     cluster: "127.2.0.10:80".parse()?,
//!     node_port: None,
//!     protocol: Protocol::Tcp,
//!     affinity: Affinity::None,
//!     endpoints: vec!["127.0.0.1:8081".parse()?, "127.0.0.1:8082".parse()?],
//! };
//! let table: ServiceTable = [(ServiceKey::new("shop", "web", ""), web)].into_iter().collect();
//! directory.apply(&table).await?;
//! let proxy = HttpProxy::new(directory, HttpProxyConfig::default());
//! tokio::spawn(proxy.clone().serve_admin(tokio::net::TcpListener::bind("127.0.0.1:4191").await?));
//! // `curl -H 'Host: web.shop' http://127.0.0.1:4140/` now reaches one of the two endpoints.
//! proxy.serve(tokio::net::TcpListener::bind("127.0.0.1:4140").await?).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `directory`: [`MeshDirectory`], the services and their names, fed like any
//!   [`ServiceProxy`](crate::ServiceProxy), and each endpoint's [`EndpointTarget`] (the
//!   identity its server must prove, when known).
//! - `discover`: [`EndpointDiscover`], a service's endpoints as a tower `Discover` stream.
//! - `body`: [`MeshBody`], request bodies that can be replayed when held in memory.
//! - `endpoint`: [`Endpoint`], hyper's pooled client to one endpoint address.
//! - `breaker`: [`CircuitBreaker`], per-endpoint ejection with a doubling backoff.
//! - `retry`: [`RetryPolicy`], retryable failures only, under a `TpsBudget`.
//! - `route`: [`RouteTimeouts`], a timeout per path prefix.
//! - `stack`: [`Outbound`], one service's stack from those pieces.
//! - `split`: [`TrafficSplit`], weighted backends per service (SMI's TrafficSplit, for
//!   canaries), picked by a smooth weighted round-robin ([`SplitPicker`], pure).
//! - `split_follower`: [`SplitFollower`], the API's TrafficSplit objects into the directory
//!   ([`build_splits`], pure).
//! - `detect`: [`detect`], HTTP/1, HTTP/2 or opaque from a connection's first bytes.
//! - `http_proxy`: [`HttpProxy`], the outbound listener routing by authority, connecting to
//!   each endpoint over mTLS that requires the endpoint's own identity of the server.
//! - `metrics`: [`MeshMetrics`], Prometheus counters and a latency histogram.
//! - `original_dst`: [`original_dst()`], where a connection the pod's redirect rules sent to
//!   a listener was headed, and [`Redirected`], what the outbound listener does with it.
//! - `policy`: [`AuthorizationPolicy`], which identities may call which port, and which HTTP
//!   paths and methods, pure.
//! - `inbound`: [`InboundProxy`], the inbound sidecar: mTLS termination, policy, forward
//!   to the local application.
//! - `listen`: [`Listeners`], a listener address and its IPv6 twin (`[::]` for `0.0.0.0`,
//!   `[::1]` for `127.0.0.1`, IPv6-only sockets), IPv4 alone on a host without IPv6.
//! - `drain`: [`Drain`], the graceful end of the listeners (stop accepting, let requests
//!   finish).
//! - `sidecar`: [`Sidecar`], all of the above composed into the proxy next to an
//!   application: certificate, service table, outbound, inbound and admin listeners,
//!   readiness and graceful shutdown.
//! - [`identity`]: the mesh CA, SPIFFE identities, trust bundles and the rustls
//!   configurations for mTLS between sidecars.

mod body;
mod breaker;
mod detect;
mod directory;
mod discover;
mod drain;
mod endpoint;
mod http_proxy;
pub mod identity;
mod inbound;
mod listen;
mod metrics;
mod original_dst;
mod policy;
mod retry;
mod route;
mod sidecar;
mod split;
mod split_follower;
mod stack;

pub use body::{BodyError, MeshBody};
pub use breaker::{
    Admit, BreakerConfig, BreakerState, CircuitBreaker, CircuitBreakerLayer, Classify,
    HttpFailures, Probe,
};
pub use detect::{Detected, H2_PREFACE, PrefixedIo, detect};
pub use directory::{DirectoryConfig, EndpointTarget, MeshDirectory, ServiceName};
pub use discover::{EndpointDiff, EndpointDiscover, diff_endpoints};
pub use drain::{ConnectionGuard, Drain};
pub use endpoint::{Endpoint, EndpointError, EndpointStream, FixedConnector, connect_tls};
pub use http_proxy::{HttpProxy, HttpProxyConfig, OutboundTls, ProxyBody};
pub use inbound::{InboundConfig, InboundProxy, PEER_IDENTITY_HEADER};
pub use listen::{ListenError, Listeners, TwinFailure, ipv6_twin, twin_failure};
pub use metrics::{LATENCY_BUCKETS, MeshMetrics};
pub use original_dst::{Redirected, original_dst};
pub use policy::{
    AuthorizationPolicy, Caller, Decision, DefaultAction, HttpRequestInfo, HttpRoute,
    NamespacePolicy, PathMatch, Rule,
};
pub use retry::{RetryConfig, RetryPolicy, is_idempotent, is_retryable};
pub use route::{Route, RouteTimeouts};
pub use sidecar::{ShutdownHandle, Sidecar, SidecarConfig, SidecarError, SidecarStatus};
pub use split::{SplitError, SplitPicker, TrafficSplit, WeightedBackend};
pub use split_follower::{BuiltSplits, SplitFollower, build_splits};
pub use stack::{Outbound, StackConfig};
