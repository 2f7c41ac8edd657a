//! The cluster DNS flags shared by `orchestra server` and `orchestra agent`
//! (`--cluster-domain`, `--dns-upstream`), and starting the DNS from them.

use std::net::SocketAddr;

use clap::Args;
use orchestra_api::Client;
use orchestra_mesh::dns::{ClusterDns, DnsConfig, DnsConfigError, DnsServerError};

/// `--cluster-domain DOMAIN --dns-upstream IP:PORT,...`.
#[derive(Clone, Debug, Args)]
pub struct DnsArgs {
    /// The cluster domain: services are `NAME.NAMESPACE.svc.DOMAIN`.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resolvers the cluster DNS forwards other names to (comma-separated `IP:PORT`); none:
    /// such names are refused.
    #[arg(long, value_delimiter = ',')]
    pub dns_upstream: Vec<SocketAddr>,
}

/// Why the cluster DNS did not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsStartError {
    /// `--cluster-domain` is not a domain.
    #[error("--cluster-domain")]
    Config(#[source] DnsConfigError),
    /// The sockets could not be bound.
    #[error("starting the cluster DNS")]
    Serve(#[source] DnsServerError),
}

impl DnsArgs {
    /// The DNS configuration the flags describe.
    pub fn config(&self) -> Result<DnsConfig, DnsStartError> {
        Ok(DnsConfig::new(&self.cluster_domain)
            .map_err(DnsStartError::Config)?
            .with_upstreams(self.dns_upstream.iter().copied()))
    }

    /// The domain without its trailing dot, as pods' search lists use it.
    pub fn domain(&self) -> String {
        self.cluster_domain.trim().trim_end_matches('.').to_owned()
    }

    /// Serves the cluster DNS on `addr`, fed by `client`'s Services and Endpoints.
    pub async fn start<C: Client + Clone>(
        &self,
        client: C,
        addr: SocketAddr,
    ) -> Result<ClusterDns, DnsStartError> {
        let dns = ClusterDns::start(client, addr, self.config()?)
            .await
            .map_err(DnsStartError::Serve)?;
        tracing::info!(addr = %dns.local_addr(), domain = %self.cluster_domain, upstreams = ?self.dns_upstream, "serving the cluster DNS");
        Ok(dns)
    }
}
