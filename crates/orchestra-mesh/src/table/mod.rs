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
//!   the [`TableWarning`]s for objects it had to skip; [`build_table_with_identities`], the
//!   same with each endpoint's ServiceAccount (the identity a mesh sidecar must present).
//! - `accounts`: [`ServiceAccountRef`] and [`PodAccounts`], the ServiceAccount of each pod
//!   an endpoint names.

mod accounts;
mod build;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use accounts::{DEFAULT_SERVICE_ACCOUNT, PodAccounts, ServiceAccountRef};
pub use build::{BuiltTable, TableWarning, build_table, build_table_with_identities};

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

/// The ServiceAccounts of a service port's endpoints whose pods are known, by address.
pub type EndpointIdentities = BTreeMap<SocketAddr, ServiceAccountRef>;

/// The desired state of a proxy: every service port and its ready backends.
///
/// Entries are shared (`Arc`): a clone of the table shares them, and an entry that was not
/// replaced since is the same allocation in both, so a proxy comparing the table it applied
/// last with a new one tells unchanged entries by pointer, without comparing their
/// endpoints (see [`ServiceTable::shared_iter`]).
///
/// A table may also say which ServiceAccount the pod behind each endpoint runs as
/// ([`ServiceTable::identities`], filled by [`build_table_with_identities`]): the mesh's
/// outbound proxy then requires each endpoint to prove that identity. They are kept beside
/// the entries, not in them, so that the L4 proxies, which have no use for them, see the
/// same entries as before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTable {
    entries: BTreeMap<ServiceKey, Arc<ServiceEntry>>,
    /// Per service port, the identities of its endpoints whose pods are known; a port
    /// absent here has none known.
    identities: BTreeMap<ServiceKey, Arc<EndpointIdentities>>,
}

impl ServiceTable {
    /// An empty table (a proxy applying it closes everything).
    pub fn new() -> Self {
        ServiceTable::default()
    }

    /// Adds or replaces one service port (with no endpoint identity known).
    pub fn insert(&mut self, key: ServiceKey, mut entry: ServiceEntry) {
        entry.endpoints.sort_unstable();
        entry.endpoints.dedup();
        self.identities.remove(&key);
        self.entries.insert(key, Arc::new(entry));
    }

    /// Adds or replaces one service port, with the ServiceAccounts of those of its
    /// endpoints whose pods are known (identities of addresses that are not endpoints of
    /// `entry` are dropped).
    pub fn insert_with_identities(
        &mut self,
        key: ServiceKey,
        entry: ServiceEntry,
        mut identities: EndpointIdentities,
    ) {
        self.insert(key.clone(), entry);
        let Some(entry) = self.entries.get(&key) else {
            return;
        };
        identities.retain(|addr, _| entry.endpoints.binary_search(addr).is_ok());
        if !identities.is_empty() {
            self.identities.insert(key, Arc::new(identities));
        }
    }

    /// The ServiceAccounts of the endpoints of `key` whose pods are known (none: the table
    /// was built without identities, or no endpoint's pod is known).
    pub fn identities(&self, key: &ServiceKey) -> Option<&EndpointIdentities> {
        self.identities.get(key).map(Arc::as_ref)
    }

    /// The ServiceAccount the pod behind endpoint `addr` of `key` runs as, when known.
    pub fn identity(&self, key: &ServiceKey, addr: &SocketAddr) -> Option<&ServiceAccountRef> {
        self.identities.get(key)?.get(addr)
    }

    /// Adds or replaces one service port with an entry shared with another table (whose
    /// endpoints are already sorted and deduplicated, as every table's are).
    pub(crate) fn insert_shared(&mut self, key: ServiceKey, entry: Arc<ServiceEntry>) {
        self.entries.insert(key, entry);
    }

    /// One service port, as the shared entry.
    pub(crate) fn get_shared(&self, key: &ServiceKey) -> Option<&Arc<ServiceEntry>> {
        self.entries.get(key)
    }

    /// Replaces every port of service `namespace/name` with the ports of `ports` (entries of
    /// other services in it are ignored), and returns the keys whose entries changed: added,
    /// removed, or replaced by a different value. A port whose entry is equal keeps the
    /// entry it had (the same allocation), so a proxy can tell it unchanged by pointer.
    ///
    /// ```
    /// use orchestra_mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};
    ///
    /// let entry = |port: u16| ServiceEntry {
    ///     cluster: ([10, 96, 0, 1], port).into(),
    ///     node_port: None,
    ///     protocol: Protocol::Tcp,
    ///     affinity: Affinity::None,
    ///     endpoints: vec![([10, 1, 0, 1], 8080).into()],
    /// };
    /// let (http, dns) = (ServiceKey::new("default", "web", "http"), ServiceKey::new("default", "web", "dns"));
    /// let mut table: ServiceTable = [(http.clone(), entry(80)), (dns.clone(), entry(53))].into_iter().collect();
    /// let rebuilt: ServiceTable = [(http.clone(), entry(80))].into_iter().collect();
    /// assert_eq!(table.replace_service("default", "web", rebuilt), vec![dns]);
    /// assert_eq!(table.len(), 1);
    /// ```
    pub fn replace_service(
        &mut self,
        namespace: &str,
        name: &str,
        ports: ServiceTable,
    ) -> Vec<ServiceKey> {
        let first = ServiceKey::new(namespace, name, "");
        let olds: Vec<ServiceKey> = self
            .entries
            .range(&first..)
            .map(|(key, _)| key)
            .take_while(|key| key.namespace == namespace && key.name == name)
            .cloned()
            .collect();
        let ours = |key: &ServiceKey| key.namespace == namespace && key.name == name;
        let ServiceTable {
            mut entries,
            mut identities,
        } = ports;
        entries.retain(|key, _| ours(key));
        identities.retain(|key, _| ours(key));
        self.merge(olds, entries, identities)
    }

    /// Replaces the whole table with `new` as [`replace_service`](Self::replace_service)
    /// does one service: equal entries keep their allocation, and the keys whose entries
    /// changed are returned (in key order).
    pub fn replace_all(&mut self, new: ServiceTable) -> Vec<ServiceKey> {
        let olds: Vec<ServiceKey> = self.entries.keys().cloned().collect();
        self.merge(olds, new.entries, new.identities)
    }

    /// Removes the keys of `olds` that `news` does not have, and inserts the entries of
    /// `news` that differ (in the entry or in its endpoints' identities, taken from
    /// `identities`); returns the changed keys, sorted.
    fn merge(
        &mut self,
        olds: Vec<ServiceKey>,
        news: BTreeMap<ServiceKey, Arc<ServiceEntry>>,
        mut identities: BTreeMap<ServiceKey, Arc<EndpointIdentities>>,
    ) -> Vec<ServiceKey> {
        let mut changed = Vec::new();
        for key in olds {
            if !news.contains_key(&key) {
                self.entries.remove(&key);
                self.identities.remove(&key);
                changed.push(key);
            }
        }
        for (key, entry) in news {
            let identity = identities.remove(&key);
            let same_entry = self.entries.get(&key).is_some_and(|old| *old == entry);
            // `Arc`'s `==` looks at the pointers first, then the values.
            let same_identities = self.identities.get(&key) == identity.as_ref();
            if !same_entry {
                self.entries.insert(key.clone(), entry);
            }
            if !same_identities {
                match identity {
                    Some(identity) => self.identities.insert(key.clone(), identity),
                    None => self.identities.remove(&key),
                };
            }
            if !(same_entry && same_identities) {
                changed.push(key);
            }
        }
        changed.sort_unstable();
        changed
    }

    /// Makes the entries of `keys` those of `from` (the same allocations), removing the
    /// keys `from` does not have.
    pub(crate) fn copy_entries(&mut self, from: &ServiceTable, keys: &[ServiceKey]) {
        for key in keys {
            match from.entries.get(key) {
                Some(entry) => {
                    self.entries.insert(key.clone(), Arc::clone(entry));
                }
                None => {
                    self.entries.remove(key);
                }
            }
            match from.identities.get(key) {
                Some(identities) => {
                    self.identities.insert(key.clone(), Arc::clone(identities));
                }
                None => {
                    self.identities.remove(key);
                }
            }
        }
    }

    /// Removes one service port, returning it.
    pub fn remove(&mut self, key: &ServiceKey) -> Option<ServiceEntry> {
        self.identities.remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cluster: &str, endpoints: &[&str]) -> ServiceEntry {
        ServiceEntry {
            cluster: cluster.parse().expect("a literal address"),
            node_port: None,
            protocol: Protocol::Tcp,
            affinity: Affinity::None,
            endpoints: endpoints
                .iter()
                .map(|e| e.parse().expect("a literal address"))
                .collect(),
        }
    }

    fn shared(table: &ServiceTable, key: &ServiceKey) -> Arc<ServiceEntry> {
        Arc::clone(table.get_shared(key).expect("the key is in the table"))
    }

    #[test]
    fn replacing_a_service_reports_its_changed_ports_and_keeps_the_rest_shared() {
        let key = |name: &str, port: &str| ServiceKey::new("default", name, port);
        let mut table: ServiceTable = [
            (key("a", ""), entry("10.96.0.1:80", &["10.1.0.1:8080"])),
            (key("web", "dns"), entry("10.96.0.2:53", &["10.1.0.2:53"])),
            (
                key("web", "http"),
                entry("10.96.0.2:80", &["10.1.0.2:8080"]),
            ),
            (key("web", "old"), entry("10.96.0.2:81", &["10.1.0.2:8081"])),
            (key("webx", ""), entry("10.96.0.3:80", &[])),
        ]
        .into_iter()
        .collect();
        let before = table.clone();
        let ports: ServiceTable = [
            // Equal to what it was: no change, and the old allocation stays.
            (key("web", "dns"), entry("10.96.0.2:53", &["10.1.0.2:53"])),
            (
                key("web", "http"),
                entry("10.96.0.2:80", &["10.1.0.3:8080"]),
            ),
            (key("web", "new"), entry("10.96.0.2:82", &[])),
            // Another service's port: ignored.
            (key("a", ""), entry("10.96.0.9:80", &[])),
        ]
        .into_iter()
        .collect();
        let changed = table.replace_service("default", "web", ports);
        assert_eq!(
            changed,
            [key("web", "http"), key("web", "new"), key("web", "old")]
        );
        let names: Vec<&ServiceKey> = table.iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                &key("a", ""),
                &key("web", "dns"),
                &key("web", "http"),
                &key("web", "new"),
                &key("webx", ""),
            ]
        );
        for unchanged in [key("a", ""), key("web", "dns"), key("webx", "")] {
            assert!(
                Arc::ptr_eq(&shared(&before, &unchanged), &shared(&table, &unchanged)),
                "{unchanged} was reallocated"
            );
        }
        // A service that is gone: all its ports are changes.
        let changed = table.replace_service("default", "web", ServiceTable::new());
        assert_eq!(
            changed,
            [key("web", "dns"), key("web", "http"), key("web", "new")]
        );
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn replacing_the_whole_table_keeps_equal_entries_shared() {
        let key = |name: &str| ServiceKey::new("default", name, "");
        let mut table: ServiceTable = [
            (key("a"), entry("10.96.0.1:80", &["10.1.0.1:8080"])),
            (key("b"), entry("10.96.0.2:80", &["10.1.0.2:8080"])),
            (key("c"), entry("10.96.0.3:80", &[])),
        ]
        .into_iter()
        .collect();
        let before = table.clone();
        // Rebuilt from scratch: every entry a new allocation.
        let rebuilt: ServiceTable = [
            (key("a"), entry("10.96.0.1:80", &["10.1.0.1:8080"])),
            (key("b"), entry("10.96.0.2:80", &["10.1.0.9:8080"])),
            (key("d"), entry("10.96.0.4:80", &[])),
        ]
        .into_iter()
        .collect();
        let changed = table.replace_all(rebuilt.clone());
        assert_eq!(changed, [key("b"), key("c"), key("d")]);
        assert_eq!(table, rebuilt);
        assert!(Arc::ptr_eq(
            &shared(&before, &key("a")),
            &shared(&table, &key("a"))
        ));

        // Copying the changed entries makes the old table the new one, sharing them.
        let mut copy = before.clone();
        copy.copy_entries(&table, &changed);
        assert_eq!(copy, table);
        assert!(Arc::ptr_eq(
            &shared(&copy, &key("b")),
            &shared(&table, &key("b"))
        ));
    }

    #[test]
    fn identity_changes_are_changes_and_travel_with_their_entries() {
        let key = |name: &str| ServiceKey::new("default", name, "");
        let account = |name: &str| ServiceAccountRef::new("default", name);
        let addr: SocketAddr = "10.1.0.1:8080".parse().expect("a literal address");
        let with = |name: &str| {
            let mut table = ServiceTable::new();
            table.insert_with_identities(
                key("a"),
                entry("10.96.0.1:80", &["10.1.0.1:8080"]),
                // An address that is no endpoint of the entry is dropped.
                [
                    (addr, account(name)),
                    (
                        "10.9.9.9:1".parse().expect("a literal address"),
                        account(name),
                    ),
                ]
                .into(),
            );
            table
        };
        let mut table: ServiceTable = [(key("a"), entry("10.96.0.1:80", &["10.1.0.1:8080"]))]
            .into_iter()
            .collect();
        assert_eq!(table.identities(&key("a")), None);
        let before = table.clone();
        // Same entry, an identity now known: a change, the entry's allocation kept.
        assert_eq!(table.replace_all(with("web")), [key("a")]);
        assert_eq!(table.identity(&key("a"), &addr), Some(&account("web")));
        assert_eq!(table.identities(&key("a")).map(BTreeMap::len), Some(1));
        assert!(Arc::ptr_eq(
            &shared(&before, &key("a")),
            &shared(&table, &key("a"))
        ));
        assert_eq!(table.replace_all(with("web")), Vec::<ServiceKey>::new());
        assert_eq!(
            table.replace_service("default", "a", with("other")),
            [key("a")]
        );
        assert_eq!(table.identity(&key("a"), &addr), Some(&account("other")));
        // Copying follows identities too; a plain insert or a removal forgets them.
        let mut copy = before.clone();
        copy.copy_entries(&table, &[key("a")]);
        assert_eq!(copy, table);
        assert_eq!(table.replace_all(before.clone()), [key("a")]);
        assert_eq!(table.identities(&key("a")), None);
        copy.insert(key("a"), entry("10.96.0.1:80", &["10.1.0.1:8080"]));
        assert_eq!(copy, before);
        let mut copy = with("web");
        copy.remove(&key("a"));
        assert_eq!(copy, ServiceTable::new());
    }
}
