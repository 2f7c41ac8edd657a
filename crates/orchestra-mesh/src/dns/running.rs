//! [`ClusterDns`]: a [`DnsServer`] and the [`DnsFollower`] that feeds it, started together
//! (what `orchestra server`, `orchestra agent --dns` and the in-process cluster run).

use std::net::SocketAddr;

use orchestra_api::Client;
use tokio::task::JoinHandle;

use super::config::DnsConfig;
use super::follower::DnsFollower;
use super::server::{DnsServer, DnsServerError};

/// A running cluster DNS: the server on its sockets, the follower as a task.
pub struct ClusterDns {
    server: DnsServer,
    follower: JoinHandle<()>,
}

impl ClusterDns {
    /// Binds `addr` (UDP and TCP; port 0 picks a free one) and follows `client`'s Services
    /// and Endpoints. Must be called within a tokio runtime.
    pub async fn start<C: Client + Clone>(
        client: C,
        addr: SocketAddr,
        config: DnsConfig,
    ) -> Result<Self, DnsServerError> {
        let follower = DnsFollower::new(client);
        let server = DnsServer::bind(addr, config, follower.snapshots()).await?;
        let follower = tokio::spawn(follower.run());
        Ok(ClusterDns { server, follower })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stops following and serving.
    pub async fn shutdown(self) -> Result<(), DnsServerError> {
        self.follower.abort();
        self.server.shutdown().await
    }
}
