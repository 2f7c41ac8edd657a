//! [`PortShared`]: what the listener and connection tasks of one service port share: the
//! balancer, and a removal signal per backend that starts the drain of its connections.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::l4::Balancer;
use crate::table::{Affinity, ServiceKey};

use super::TcpProxyConfig;

/// The state of one service port shared by its tasks.
#[derive(Debug)]
pub(crate) struct PortShared {
    /// The service port (for logs).
    pub key: ServiceKey,
    /// The proxy's settings.
    pub config: Arc<TcpProxyConfig>,
    /// The balancer and the backends' removal signals, changed together.
    inner: Mutex<Inner>,
}

/// The mutable part of [`PortShared`].
#[derive(Debug)]
struct Inner {
    /// Chooses the backend of new connections.
    balancer: Balancer,
    /// Per current backend: `true` once it is removed.
    removed: HashMap<SocketAddr, watch::Sender<bool>>,
}

/// A chosen backend and its removal signal.
pub(crate) struct Pick {
    /// Where to connect.
    pub backend: SocketAddr,
    /// Turns `true` when the backend leaves the table.
    pub removed: watch::Receiver<bool>,
}

impl PortShared {
    /// A service port with these backends.
    pub fn new(
        key: ServiceKey,
        config: Arc<TcpProxyConfig>,
        endpoints: Vec<SocketAddr>,
        affinity: Affinity,
    ) -> Self {
        let removed = endpoints
            .iter()
            .map(|e| (*e, watch::Sender::new(false)))
            .collect();
        PortShared {
            key,
            config,
            inner: Mutex::new(Inner {
                balancer: Balancer::new(endpoints, affinity),
                removed,
            }),
        }
    }

    /// The backend for a new connection from `client`, or `None`: refuse it.
    pub fn pick(&self, client: IpAddr) -> Option<Pick> {
        let mut inner = self.lock();
        let backend = inner.balancer.pick(client, Instant::now())?;
        let removed = inner.removed.get(&backend)?.subscribe();
        Some(Pick { backend, removed })
    }

    /// Replaces the backends and affinity; removed backends' connections start draining.
    pub fn update(&self, endpoints: Vec<SocketAddr>, affinity: Affinity) {
        let mut inner = self.lock();
        inner.removed.retain(|backend, signal| {
            let keep = endpoints.contains(backend);
            if !keep {
                signal.send_replace(true);
            }
            keep
        });
        for backend in &endpoints {
            inner
                .removed
                .entry(*backend)
                .or_insert_with(|| watch::Sender::new(false));
        }
        inner.balancer.update(endpoints, affinity);
    }

    /// Removes every backend (the service port is gone or moves to another address).
    pub fn remove_all(&self) {
        self.update(Vec::new(), Affinity::None);
    }

    /// The drain timeout of removed backends' connections.
    pub fn drain_timeout(&self) -> Duration {
        self.config.drain_timeout
    }

    /// The state, even after a panic elsewhere (no invariant spans a panic point).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Completes `drain` after the backend was removed: the connection may finish its work
/// until then. Never completes while the backend stays.
pub(crate) async fn drained(mut removed: watch::Receiver<bool>, drain: Duration) {
    // An error means the sender is gone, which only happens after removal.
    let _ = removed.wait_for(|removed| *removed).await;
    tokio::time::sleep(drain).await;
}
