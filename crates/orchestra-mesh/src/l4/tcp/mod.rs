//! [`TcpProxy`]: the userspace L4 service proxy on tokio (kube-proxy's old userspace mode,
//! done with async I/O): a listener per ClusterIP:port and per NodePort, forwarding TCP
//! connections and UDP flows to ready backends.
//!
//! Each service port runs its own tasks: an accept loop (TCP) or a datagram loop (UDP) per
//! listening address, and one task per connection. `apply` compares the new table with the
//! running one port by port:
//! - same addresses: only the balancer and the backend set change; connections to removed
//!   backends drain (they may finish within `drain_timeout`, then they are closed), new
//!   connections use the new set;
//! - no ready backend: the listeners are closed, so clients are refused by the kernel at once
//!   (a connection refused, or ICMP port unreachable for UDP) instead of hanging; they are
//!   opened again when backends return;
//! - other addresses, or a service port gone: its listeners close and its connections drain.
//!
//! Other service ports are not touched.
//!
//! # Layout
//! - this file: [`TcpProxy`], [`TcpProxyConfig`], the incremental `apply`.
//! - `port`: the state one service port's tasks share (balancer, removal signals).
//! - `stream`: TCP accept loop and connection forwarding.
//! - `datagram`: UDP flows.

mod datagram;
mod port;
mod stream;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::proxy::{ProxyError, ServiceProxy};
use crate::table::{Protocol, ServiceEntry, ServiceKey, ServiceTable};

use port::PortShared;

/// Settings of a [`TcpProxy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProxyConfig {
    /// The address NodePorts listen on (default `0.0.0.0`: every address of the node).
    pub node_address: IpAddr,
    /// How long connections to a removed backend may go on before they are closed
    /// (default 30 s, Kubernetes' default termination grace period).
    pub drain_timeout: Duration,
    /// How long a UDP flow lives without traffic (default 30 s, like Linux conntrack's
    /// UDP timeout).
    pub udp_idle_timeout: Duration,
    /// How long connecting to a backend may take before the client is reset (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for TcpProxyConfig {
    fn default() -> Self {
        TcpProxyConfig {
            node_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            drain_timeout: Duration::from_secs(30),
            udp_idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The userspace L4 service proxy (see the [module docs](self)).
///
/// Listening on a ClusterIP needs that address on the host: addresses in 127.0.0.0/8 (the
/// default service range is 127.2.0.0/16) work on Linux without configuration or
/// privileges. Dropping the proxy stops listening; connections in flight go on until they end.
#[derive(Debug)]
pub struct TcpProxy {
    /// The settings, shared with every task.
    config: Arc<TcpProxyConfig>,
    /// The running service ports.
    ports: Mutex<HashMap<ServiceKey, RunningPort>>,
}

/// One service port as it runs.
#[derive(Debug)]
struct RunningPort {
    /// The entry applied last.
    entry: ServiceEntry,
    /// What its tasks share.
    shared: Arc<PortShared>,
    /// Its accept or datagram loops; empty while it has no backend (clients are refused).
    listeners: Vec<JoinHandle<()>>,
}

impl RunningPort {
    /// Closes the listeners (awaited, so that the ports are closed when this returns).
    async fn close_listeners(&mut self) {
        for listener in self.listeners.drain(..) {
            listener.abort();
            // The handle resolves once the task's future, and so its socket, is dropped.
            let _ = listener.await;
        }
    }

    /// Opens the listeners if backends exist and they are closed, closes them if none.
    async fn sync_listeners(&mut self, node_address: IpAddr) -> Result<(), ProxyError> {
        if self.entry.endpoints.is_empty() {
            self.close_listeners().await;
            return Ok(());
        }
        if !self.listeners.is_empty() {
            return Ok(());
        }
        let mut addrs = vec![self.entry.cluster];
        if let Some(node_port) = self.entry.node_port {
            addrs.push(SocketAddr::new(node_address, node_port));
        }
        for addr in addrs {
            match listen(self.entry.protocol, addr, self.shared.clone()).await {
                Ok(task) => self.listeners.push(task),
                Err(source) => {
                    // All or nothing, so that the next apply retries the whole port.
                    self.close_listeners().await;
                    return Err(ProxyError::Bind {
                        key: self.shared.key.clone(),
                        protocol: self.entry.protocol,
                        addr,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Stops the port: listeners closed, connections draining.
    async fn stop(mut self) {
        self.close_listeners().await;
        self.shared.remove_all();
    }
}

impl Drop for RunningPort {
    fn drop(&mut self) {
        // A dropped proxy stops listening (connections in flight are not listeners: they go on).
        for listener in &self.listeners {
            listener.abort();
        }
    }
}

/// Binds `addr` and spawns its loop.
async fn listen(
    protocol: Protocol,
    addr: SocketAddr,
    shared: Arc<PortShared>,
) -> std::io::Result<JoinHandle<()>> {
    Ok(match protocol {
        Protocol::Tcp => {
            let listener = TcpListener::bind(addr).await?;
            tokio::spawn(stream::accept_loop(listener, shared))
        }
        Protocol::Udp => {
            let socket = UdpSocket::bind(addr).await?;
            tokio::spawn(datagram::datagram_loop(socket, shared))
        }
    })
}

impl Default for TcpProxy {
    fn default() -> Self {
        TcpProxy::new(TcpProxyConfig::default())
    }
}

impl TcpProxy {
    /// A proxy with no services yet.
    pub fn new(config: TcpProxyConfig) -> Self {
        TcpProxy {
            config: Arc::new(config),
            ports: Mutex::new(HashMap::new()),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &TcpProxyConfig {
        &self.config
    }

    /// The addresses it listens on now, per service port (empty for a port without backends).
    pub async fn listening(&self) -> HashMap<ServiceKey, Vec<SocketAddr>> {
        let ports = self.ports.lock().await;
        ports
            .iter()
            .map(|(key, port)| {
                let mut addrs = Vec::new();
                if !port.listeners.is_empty() {
                    addrs.push(port.entry.cluster);
                    if let Some(node_port) = port.entry.node_port {
                        addrs.push(SocketAddr::new(self.config.node_address, node_port));
                    }
                }
                (key.clone(), addrs)
            })
            .collect()
    }
}

#[async_trait]
impl ServiceProxy for TcpProxy {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        let mut ports = self.ports.lock().await;
        // Stop what is gone or moves first, so that a port changing hands in this table can
        // be bound by its new owner.
        let stale: Vec<ServiceKey> = ports
            .iter()
            .filter(|(key, port)| {
                table
                    .get(key)
                    .is_none_or(|entry| !entry.same_frontend(&port.entry))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(port) = ports.remove(&key) {
                info!(service = %key, "stopping service port");
                port.stop().await;
            }
        }
        let mut first_error = None;
        for (key, entry) in table.iter() {
            let port = match ports.get_mut(key) {
                Some(port) => {
                    if port.entry != *entry {
                        debug!(service = %key, endpoints = entry.endpoints.len(), "updating service port");
                        port.shared.update(entry.endpoints.clone(), entry.affinity);
                        port.entry = entry.clone();
                    }
                    port
                }
                None => {
                    info!(service = %key, cluster = %entry.cluster, protocol = %entry.protocol, "starting service port");
                    let shared = Arc::new(PortShared::new(
                        key.clone(),
                        self.config.clone(),
                        entry.endpoints.clone(),
                        entry.affinity,
                    ));
                    ports.entry(key.clone()).or_insert(RunningPort {
                        entry: entry.clone(),
                        shared,
                        listeners: Vec::new(),
                    })
                }
            };
            if let Err(error) = port.sync_listeners(self.config.node_address).await {
                tracing::warn!(%error, "service port not listening");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
