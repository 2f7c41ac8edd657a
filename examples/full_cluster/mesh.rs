//! The demo's service mesh: the outbound L7 proxy a sidecar runs, following the cluster's
//! Services and Endpoints like any service proxy. Requests through it name the service
//! (`Host: echo.default`) instead of dialling a ClusterIP; it balances them by load
//! (power of two choices over peak-EWMA latency) and retries retryable failures within a
//! budget, so that a pod going away mid-rollout costs the client nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use orchestra::api::LocalClient;
use orchestra::mesh::l7::{
    DirectoryConfig, HttpProxy, HttpProxyConfig, MeshDirectory, MeshMetrics,
};
use orchestra::mesh::{FollowerConfig, ProxyFollower};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running outbound mesh proxy on a loopback port; stops when dropped.
pub struct Mesh {
    proxy: Arc<HttpProxy>,
    address: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Mesh {
    /// Starts following `client`'s Services and Endpoints and serving on 127.0.0.1.
    pub async fn start(client: LocalClient) -> std::io::Result<Mesh> {
        let directory = MeshDirectory::new(DirectoryConfig::default());
        let follower = ProxyFollower::new(
            client,
            Arc::new(directory.clone()),
            FollowerConfig::default(),
        );
        let proxy = HttpProxy::new(directory, HttpProxyConfig::default());
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let tasks = vec![
            tokio::spawn(follower.run()),
            tokio::spawn(proxy.clone().serve(listener)),
        ];
        Ok(Mesh {
            proxy,
            address,
            tasks,
        })
    }

    /// Where the proxy listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The proxy's counters (requests by authority and status, retries).
    pub fn metrics(&self) -> &MeshMetrics {
        self.proxy.metrics()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
