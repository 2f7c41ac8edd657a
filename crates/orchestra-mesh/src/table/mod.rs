//! The service table: what a [`ServiceProxy`](crate::ServiceProxy) must route, as plain data.
//!
//! One [`ServiceEntry`] per service port, keyed by [`ServiceKey`] (namespace, service name,
//! port name): the frontend (cluster address and port, optional NodePort, protocol), the
//! session affinity and the ready backends. [`build_table`] derives it from the API's
//! `Service` and `Endpoints` objects; proxies compare tables entry by entry, so that a change
//! to one service touches only that service.
//!
//! # Layout
//! - this file: [`ServiceTable`], [`ServiceKey`], [`ServiceEntry`], [`Protocol`], [`Affinity`].
//! - `build`: [`build_table`], the pure function from Services and Endpoints to a table, and
//!   the [`TableWarning`]s for objects it had to skip.

mod build;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use build::{BuiltTable, TableWarning, build_table};

/// Kubernetes' default ClientIP affinity timeout: 10800 s (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// Identifies one port of one service: `namespace/name:port` (the port's name, empty for a
/// service's single unnamed port).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub name: String,
    /// The service port's name (may be empty when the service has one port).
    pub port: String,
}

impl ServiceKey {
    /// A key from its three parts.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        port: impl Into<String>,
    ) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
            port: port.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// The transport a service port carries (SCTP is not supported by the L4 proxy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP: one backend connection per client connection.
    Tcp,
    /// UDP: one backend flow per client address, closed after an idle timeout.
    Udp,
}

impl Protocol {
    /// The name as written in manifests (`TCP`, `UDP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How clients stick to backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Affinity {
    /// Every new connection (or UDP flow) takes the next backend in turn.
    #[default]
    None,
    /// A client IP keeps its backend until it has not been seen for `timeout`.
    ClientIp {
        /// How long an idle client keeps its backend.
        timeout: Duration,
    },
}

/// One service port: where clients reach it, and where it sends them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The cluster IP and the service port.
    pub cluster: SocketAddr,
    /// The port on every node's address, for NodePort services.
    pub node_port: Option<u16>,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The session affinity.
    pub affinity: Affinity,
    /// The ready backends, sorted and without duplicates; empty: clients are refused.
    pub endpoints: Vec<SocketAddr>,
}

impl ServiceEntry {
    /// Whether `other` listens on the same addresses with the same protocol (so that only
    /// the backends or the affinity differ, and listeners can be kept).
    pub fn same_frontend(&self, other: &ServiceEntry) -> bool {
        self.cluster == other.cluster
            && self.node_port == other.node_port
            && self.protocol == other.protocol
    }
}

/// The desired state of a proxy: every service port and its ready backends.
///
/// Entries are shared (`Arc`): a clone of the table shares them, and an entry that was not
/// replaced since is the same allocation in both, so a proxy comparing the table it applied
/// last with a new one tells unchanged entries by pointer, without comparing their
/// endpoints (see [`ServiceTable::shared_iter`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTable {
    entries: BTreeMap<ServiceKey, Arc<ServiceEntry>>,
}

impl ServiceTable {
    /// An empty table (a proxy applying it closes everything).
    pub fn new() -> Self {
        ServiceTable::default()
    }

    /// Adds or replaces one service port.
    pub fn insert(&mut self, key: ServiceKey, mut entry: ServiceEntry) {
        entry.endpoints.sort_unstable();
        entry.endpoints.dedup();
        self.entries.insert(key, Arc::new(entry));
    }

    /// Adds or replaces one service port with an entry shared with another table (whose
    /// endpoints are already sorted and deduplicated, as every table's are).
    pub(crate) fn insert_shared(&mut self, key: ServiceKey, entry: Arc<ServiceEntry>) {
        self.entries.insert(key, entry);
    }

    /// Removes one service port, returning it.
    pub fn remove(&mut self, key: &ServiceKey) -> Option<ServiceEntry> {
        self.entries.remove(key).map(Arc::unwrap_or_clone)
    }

    /// One service port.
    pub fn get(&self, key: &ServiceKey) -> Option<&ServiceEntry> {
        self.entries.get(key).map(Arc::as_ref)
    }

    /// The service ports in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ServiceKey, &ServiceEntry)> {
        self.entries
            .iter()
            .map(|(key, entry)| (key, entry.as_ref()))
    }

    /// The service ports in key order, as the shared entries: two tables hold the same
    /// `Arc` for an entry that one was cloned from the other with and neither replaced.
    pub fn shared_iter(&self) -> impl Iterator<Item = (&ServiceKey, &Arc<ServiceEntry>)> {
        self.entries.iter()
    }

    /// How many service ports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no service port.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(ServiceKey, ServiceEntry)> for ServiceTable {
    fn from_iter<T: IntoIterator<Item = (ServiceKey, ServiceEntry)>>(iter: T) -> Self {
        let mut table = ServiceTable::new();
        for (key, entry) in iter {
            table.insert(key, entry);
        }
        table
    }
}
