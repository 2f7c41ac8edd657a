//! [`MemoryProxy`]: a [`ServiceProxy`] that routes nothing and answers "which backend would
//! this connection reach?", with the same [`Balancer`] as [`TcpProxy`](super::TcpProxy).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::l4::Balancer;
use crate::proxy::{ProxyError, ServiceProxy};
use crate::table::{Protocol, ServiceEntry, ServiceKey, ServiceTable};

/// Resolves connections to backends exactly as the real proxy would (round-robin, ClientIP
/// affinity on tokio's clock, nothing when a service has no ready backend), without sockets:
/// for tests, simulations and the conformance suite.
///
/// ```
/// use std::net::SocketAddr;
/// use orchestra_mesh::{Affinity, MemoryProxy, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cluster: SocketAddr = "127.2.0.1:80".parse()?;
/// let backends: Vec<SocketAddr> = vec!["10.0.0.1:8080".parse()?, "10.0.0.2:8080".parse()?];
/// let table: ServiceTable = [(
///     ServiceKey::new("default", "web", "http"),
///     ServiceEntry { cluster, node_port: None, protocol: Protocol::Tcp, affinity: Affinity::None, endpoints: backends.clone() },
/// )].into_iter().collect();
/// let proxy = MemoryProxy::new();
/// proxy.apply(&table).await?;
/// let client = "127.0.0.9".parse()?;
/// assert_eq!(proxy.resolve(Protocol::Tcp, cluster, client), Some(backends[0]));
/// assert_eq!(proxy.resolve(Protocol::Tcp, cluster, client), Some(backends[1]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct MemoryProxy {
    /// The node address NodePorts answer on (`0.0.0.0`: any address).
    node_address: IpAddr,
    /// Each service port's entry and balancer.
    ports: Mutex<BTreeMap<ServiceKey, (ServiceEntry, Balancer)>>,
}

impl Default for MemoryProxy {
    fn default() -> Self {
        MemoryProxy::new()
    }
}

impl MemoryProxy {
    /// A proxy with no services whose NodePorts answer on any address.
    pub fn new() -> Self {
        MemoryProxy::with_node_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// A proxy whose NodePorts answer on `node_address` only (unless it is unspecified).
    pub fn with_node_address(node_address: IpAddr) -> Self {
        MemoryProxy {
            node_address,
            ports: Mutex::new(BTreeMap::new()),
        }
    }

    /// The backend a new connection (or UDP flow) from `client` to `dest` would reach now,
    /// or `None` when it would be refused (no such service port, or no ready backend).
    /// Counts as a connection: it advances round-robin and refreshes affinity.
    pub fn resolve(
        &self,
        protocol: Protocol,
        dest: SocketAddr,
        client: IpAddr,
    ) -> Option<SocketAddr> {
        let mut ports = self.lock();
        let (_, balancer) = ports.values_mut().find(|(entry, _)| {
            entry.protocol == protocol
                && (entry.cluster == dest
                    || (entry.node_port == Some(dest.port())
                        && (self.node_address.is_unspecified() || self.node_address == dest.ip())))
        })?;
        balancer.pick(client, Instant::now())
    }

    /// The table applied last.
    pub fn table(&self) -> ServiceTable {
        self.lock()
            .iter()
            .map(|(key, (entry, _))| (key.clone(), entry.clone()))
            .collect()
    }

    /// The map, even after a panic elsewhere (it holds no invariant a panic could break).
    fn lock(&self) -> MutexGuard<'_, BTreeMap<ServiceKey, (ServiceEntry, Balancer)>> {
        self.ports.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ServiceProxy for MemoryProxy {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        let mut ports = self.lock();
        ports.retain(|key, _| table.get(key).is_some());
        for (key, entry) in table.iter() {
            match ports.get_mut(key) {
                Some((current, balancer)) if current.same_frontend(entry) => {
                    if current != entry {
                        balancer.update(entry.endpoints.clone(), entry.affinity);
                        *current = entry.clone();
                    }
                }
                _ => {
                    let balancer = Balancer::new(entry.endpoints.clone(), entry.affinity);
                    ports.insert(key.clone(), (entry.clone(), balancer));
                }
            }
        }
        Ok(())
    }
}
