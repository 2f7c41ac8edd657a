//! Cluster DNS: Services and Endpoints as DNS names, served on UDP and TCP.
//!
//! Built on the Hickory DNS crates: `hickory-proto` for the records and messages,
//! `hickory-server` for the sockets, framing, FORMERR and UDP truncation, `hickory-net`'s
//! client to forward names outside the cluster to upstream resolvers.
//!
//! The answer is a pure function of a [`DnsSnapshot`] ([`resolve`]), so its tests assert
//! exact records; [`DnsFollower`] builds snapshots from the API (the same watcher and
//! reflector mechanism as [`ProxyFollower`](crate::ProxyFollower)) and [`DnsServer`] serves
//! the latest one.
//!
//! # Names
//!
//! The names follow Kubernetes' DNS specification for services:
//!
//! | name (under `DOMAIN`, `cluster.local.` by default) | records |
//! |---|---|
//! | `DOMAIN` | SOA, NS (`ns.dns.DOMAIN`) |
//! | `ns.dns.DOMAIN` | A/AAAA of the DNS server |
//! | `SVC.NS.svc.DOMAIN` | A/AAAA: the ClusterIPs; for a headless service, the ready endpoints |
//! | `HOST.SVC.NS.svc.DOMAIN` | A/AAAA of one endpoint of a headless service (its hostname, or its address with dashes) |
//! | `_PORT._PROTO.SVC.NS.svc.DOMAIN` | SRV for a named port (per endpoint for a headless service), targets' addresses as additionals |
//! | reverse names of ClusterIPs and headless endpoints | PTR |
//! | `1-2-3-4.NS.pod.DOMAIN` (`fd00--1` for IPv6) | A/AAAA of the address the name spells, as Kubernetes' default CoreDNS (`pods insecure`) answers; [`DnsConfig::pod_records`] turns it off |
//!
//! Any other name in the domain (or in a reverse range of the config) is NXDOMAIN, with the
//! SOA in the authority section (negative caching for the TTL); a name that exists without
//! records of the asked type is NOERROR with no answer and the SOA. Names elsewhere are
//! forwarded when upstreams are configured, REFUSED otherwise. Zone transfers and classes
//! other than IN are refused.
//!
//! ```no_run
//! use orchestra_api::LocalClient;
//! use orchestra_mesh::dns::{DnsConfig, DnsFollower, DnsServer};
//! use orchestra_store::MemStore;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = LocalClient::new(MemStore::new());
//! let follower = DnsFollower::new(client);
//! let config = DnsConfig::new("cluster.local")?.with_upstreams(["127.0.0.53:53".parse()?]);
//! let server = DnsServer::bind("127.0.0.1:0".parse()?, config, follower.snapshots()).await?;
//! tokio::spawn(follower.run());
//! // dig @127.0.0.1 -p PORT web.default.svc.cluster.local
//! println!("cluster DNS on {}", server.local_addr());
//! server.wait().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `config`: [`DnsConfig`] (domain, TTL, upstreams, reverse ranges).
//! - `snapshot`: [`DnsSnapshot`], the names of the cluster at one moment.
//! - `answer`: [`resolve`], the pure answer to one question.
//! - `follower`: [`DnsFollower`], snapshots from the API.
//! - `server`: [`DnsServer`], the UDP and TCP server.
//! - `forward`: the upstream forwarder.
//! - `running`: [`ClusterDns`], the server and its follower started together.

mod answer;
mod config;
mod follower;
mod forward;
mod running;
mod server;
mod snapshot;
#[cfg(test)]
mod tests;

pub use answer::{Answer, Resolution, resolve};
pub use config::{DEFAULT_CLUSTER_DOMAIN, DEFAULT_TTL, DnsConfig, DnsConfigError};
pub use follower::{DEFAULT_DNS_DEBOUNCE, DnsFollower};
pub use forward::ForwardError;
pub use running::ClusterDns;
pub use server::{DnsServer, DnsServerError, MAX_UDP_PAYLOAD};
pub use snapshot::{DnsSnapshot, EndpointRecord, PortRecord, ServiceRecords, dashed};
