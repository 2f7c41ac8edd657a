//! orchestra-mesh: the service data path of orchestra. A Service's stable address (its
//! ClusterIP, or a NodePort) must reach one of the service's ready pods, through churn; this
//! crate turns the API's Services and Endpoints into a [`ServiceTable`] and hands it to a
//! [`ServiceProxy`] that routes accordingly.
//!
//! Today: the L4 proxy ([`TcpProxy`], userspace TCP and UDP on tokio, kube-proxy's job) and
//! [`MemoryProxy`] (the same decisions, without sockets); with the `nftables` feature,
//! `nftables::NftablesProxy` programs the kernel's nftables instead (kube-proxy's nftables
//! mode). With the `l7` feature, the `l7` module holds the L7 mesh: protocol detection, an
//! HTTP proxy routing by authority through a tower stack per service (p2c over peak-EWMA,
//! retries under a budget, route timeouts, a per-endpoint circuit breaker, traffic splits),
//! mTLS between sidecars with SPIFFE identities from the mesh CA (each endpoint's server
//! identity checked on outbound, authorization policy on inbound), and the sidecar that runs
//! them; cluster DNS is in `dns`.
//!
//! ```
//! use std::net::SocketAddr;
//! use orchestra_mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable, TcpProxy, TcpProxyConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // A backend that says hello.
//! let backend = TcpListener::bind("127.0.0.1:0").await?;
//! let backend_addr = backend.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut s, _)) = backend.accept().await {
//!         let _ = s.write_all(b"hello").await;
//!     }
//! });
//! // A service address on loopback (any port that is free there).
//! let cluster: SocketAddr = std::net::TcpListener::bind("127.2.0.1:0")?.local_addr()?;
//! let table: ServiceTable = [(
//!     ServiceKey::new("default", "hello", ""),
//!     ServiceEntry { cluster, node_port: None, protocol: Protocol::Tcp, affinity: Affinity::None, endpoints: vec![backend_addr] },
//! )].into_iter().collect();
//! let proxy = TcpProxy::new(TcpProxyConfig::default());
//! proxy.apply(&table).await?;
//! let mut reply = String::new();
//! TcpStream::connect(cluster).await?.read_to_string(&mut reply).await?;
//! assert_eq!(reply, "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`table`]: [`ServiceTable`] and its entries, and [`build_table`] from Services and
//!   Endpoints.
//! - [`proxy`]: the [`ServiceProxy`] trait and [`ProxyError`].
//! - [`l4`]: [`Balancer`], [`MemoryProxy`], [`TcpProxy`].
//! - `nftables` (feature `nftables`): `NftablesProxy`, the kernel data path (kube-proxy's
//!   nftables mode) in table `inet orchestra`.
//! - `redirect` (feature `nftables`): the rules of table `inet orchestra-mesh` that redirect a
//!   pod's TCP into its sidecar (Linkerd's proxy-init, on nftables).
//! - [`follower`]: [`ProxyFollower`], which watches the API and applies the table.
//! - `l7` (feature `l7`): `MeshDirectory`, `EndpointDiscover`, `Outbound`, `CircuitBreaker`,
//!   `HttpProxy`, `InboundProxy`, mesh identity, and `Sidecar`, which composes them.
//! - [`dns`]: the cluster DNS server ([`dns::DnsServer`]) fed by [`dns::DnsFollower`].
//! - [`testing`]: the conformance suite every [`ServiceProxy`] runs, and its [`testing::Probe`].

pub mod dns;
pub mod follower;
pub mod l4;
#[cfg(feature = "l7")]
pub mod l7;
#[cfg(feature = "nftables")]
pub mod nftables;
pub mod proxy;
#[cfg(feature = "nftables")]
pub mod redirect;
pub mod table;
pub mod testing;

pub use follower::{FollowerConfig, ProxyFollower};
pub use l4::{Balancer, MemoryProxy, TcpProxy, TcpProxyConfig};
pub use proxy::{ProxyError, ServiceProxy};
pub use table::{
    Affinity, BuiltTable, DEFAULT_AFFINITY_TIMEOUT, EndpointIdentities, PodAccounts, Protocol,
    ServiceAccountRef, ServiceEntry, ServiceKey, ServiceTable, TableWarning, build_table,
    build_table_with_identities,
};
