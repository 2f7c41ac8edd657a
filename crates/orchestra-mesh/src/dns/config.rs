//! [`DnsConfig`]: what the cluster DNS answers for, and how.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

/// Kubernetes' default cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The default TTL of every record (seconds): short, so that clients see Endpoints changes
/// soon after the server does.
pub const DEFAULT_TTL: u32 = 5;

/// Why a [`DnsConfig`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DnsConfigError {
    /// The cluster domain is not a domain name.
    #[error("cluster domain {domain:?} is not a valid domain name (e.g. cluster.local)")]
    BadDomain {
        /// The value given.
        domain: String,
        /// Why hickory refused it.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// The cluster domain is the root, which would swallow every name.
    #[error("cluster domain {domain:?} is the DNS root; give a domain such as cluster.local")]
    RootDomain {
        /// The value given.
        domain: String,
    },
}

/// Settings of the cluster DNS: its domain, TTL, upstream resolvers and reverse zones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// The cluster domain, lowercase and fully qualified (`cluster.local.`).
    pub domain: Name,
    /// The TTL of every record, and the SOA's negative-caching TTL (default 5 s).
    pub ttl: u32,
    /// Resolvers that names outside the cluster domain are forwarded to, tried in order;
    /// empty: such queries are refused (REFUSED).
    pub upstreams: Vec<SocketAddr>,
    /// How long one upstream may take to answer before the next is tried (default 2 s).
    pub upstream_timeout: Duration,
    /// The address ranges whose reverse (`in-addr.arpa`/`ip6.arpa`) names this server
    /// answers authoritatively: PTR for ClusterIPs and headless endpoints, NXDOMAIN for the
    /// rest. Default: the ClusterIP range, 127.2.0.0/16. Other reverse names are forwarded
    /// like any name outside the domain.
    pub reverse_ranges: Vec<IpNet>,
    /// The address `ns.dns.DOMAIN` resolves to (the server itself); filled in by
    /// [`DnsServer::bind`](crate::dns::DnsServer::bind) when unset.
    pub nameserver: Option<IpAddr>,
    /// Answer pod names, `1-2-3-4.NAMESPACE.pod.DOMAIN` -> 1.2.3.4, the way Kubernetes'
    /// default CoreDNS configuration does (`pods insecure`: the address is read from the
    /// name, no pod is looked up). Default: on; off, such names are NXDOMAIN.
    pub pod_records: bool,
}

impl DnsConfig {
    /// The defaults for `domain` (`cluster.local` when empty): TTL 5 s, no upstream,
    /// reverse zone 127.2.0.0/16.
    pub fn new(domain: &str) -> Result<Self, DnsConfigError> {
        let text = if domain.trim().is_empty() {
            DEFAULT_CLUSTER_DOMAIN
        } else {
            domain.trim()
        };
        let mut name = Name::from_ascii(text).map_err(|source| DnsConfigError::BadDomain {
            domain: domain.to_owned(),
            source,
        })?;
        name.set_fqdn(true);
        if name.is_root() {
            return Err(DnsConfigError::RootDomain {
                domain: domain.to_owned(),
            });
        }
        Ok(DnsConfig {
            domain: name.to_lowercase(),
            ttl: DEFAULT_TTL,
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(2),
            reverse_ranges: vec![IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(127, 2, 0, 0), 16).unwrap_or_default(),
            )],
            nameserver: None,
            pod_records: true,
        })
    }

    /// The same settings with these upstream resolvers.
    pub fn with_upstreams(mut self, upstreams: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.upstreams = upstreams.into_iter().collect();
        self
    }

    /// The search list Kubernetes gives a pod of `namespace` (`NS.svc.DOMAIN svc.DOMAIN
    /// DOMAIN`), without the trailing dots.
    pub fn search_list(&self, namespace: &str) -> Vec<String> {
        let domain = self.domain.to_ascii();
        let domain = domain.trim_end_matches('.');
        vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_owned(),
        ]
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        // The default domain is a constant that parses.
        DnsConfig::new(DEFAULT_CLUSTER_DOMAIN).unwrap_or_else(|_| DnsConfig {
            domain: Name::root(),
            ttl: DEFAULT_TTL,
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(2),
            reverse_ranges: Vec::new(),
            nameserver: None,
            pod_records: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_normalised_and_checked() {
        let config = DnsConfig::new("Cluster.Local").unwrap();
        assert_eq!(config.domain.to_ascii(), "cluster.local.");
        assert_eq!(
            DnsConfig::new("").unwrap().domain.to_ascii(),
            "cluster.local."
        );
        assert_eq!(DnsConfig::default().domain.to_ascii(), "cluster.local.");
        let err = DnsConfig::new(".").unwrap_err().to_string();
        assert!(err.contains("root"), "{err}");
        let err = DnsConfig::new("a..b").unwrap_err().to_string();
        assert!(err.contains("\"a..b\""), "{err}");
    }

    #[test]
    fn the_search_list_is_kubernetes_one() {
        let config = DnsConfig::new("cluster.local").unwrap();
        assert_eq!(
            config.search_list("shop"),
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
    }
}
