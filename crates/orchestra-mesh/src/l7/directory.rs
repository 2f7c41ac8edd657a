//! [`MeshDirectory`]: the services the mesh knows, their names and their live endpoint lists.
//!
//! It is a [`ServiceProxy`], so the [`ProxyFollower`](crate::ProxyFollower) that drives the L4
//! proxy drives it the same way (Services and Endpoints from the API, debounced, as a
//! [`ServiceTable`]); a test applies a table it wrote by hand. Each service port gets a
//! `watch` channel of its ready endpoints, which [`EndpointDiscover`](super::EndpointDiscover)
//! turns into balancer changes, and a set of names by which HTTP requests address it.
//!
//! Each service port also has a channel of [`EndpointTarget`]s: its endpoints with the
//! ServiceAccount of each one's pod when the table says it
//! ([`ServiceTable::identities`], filled by a follower
//! [`with_endpoint_identities`](crate::ProxyFollower::with_endpoint_identities)), which the
//! outbound proxy connects by, requiring that identity of the server.
//!
//! It also holds the services' traffic splits ([`MeshDirectory::apply_splits`], fed by a
//! [`SplitFollower`](super::SplitFollower) from the API's TrafficSplits): a split names a
//! service, not a port, so the request's port is matched by name on the backend chosen.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::watch;

use super::split::{SplitError, SplitPicker, TrafficSplit};
use crate::proxy::{ProxyError, ServiceProxy};
use crate::table::{ServiceAccountRef, ServiceEntry, ServiceKey, ServiceTable};

/// One endpoint of a service port as the outbound proxy connects to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointTarget {
    /// Its address.
    pub addr: SocketAddr,
    /// The ServiceAccount its pod runs as, when known: its server must prove that identity.
    /// `None` (an endpoint of no known pod: not meshed, not seen yet, or a table built
    /// without identities): any identity of the trust domain is accepted, as before
    /// identities were followed.
    pub account: Option<ServiceAccountRef>,
}

impl EndpointTarget {
    /// The targets of `key`'s endpoints in `table` (sorted by address, as the entry's
    /// endpoints are).
    fn of(table: &ServiceTable, key: &ServiceKey, entry: &ServiceEntry) -> Vec<EndpointTarget> {
        entry
            .endpoints
            .iter()
            .map(|addr| EndpointTarget {
                addr: *addr,
                account: table.identity(key, addr).cloned(),
            })
            .collect()
    }
}

/// A service by namespace and name (all its ports): what a traffic split is declared for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    /// The namespace.
    pub namespace: String,
    /// The service's name.
    pub name: String,
}

impl ServiceName {
    /// A service name from its two parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How HTTP authorities name services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// The cluster's DNS domain (default `cluster.local`): `NAME.NS.svc.DOMAIN` names a service.
    pub cluster_domain: String,
    /// The namespace of the workload the sidecar serves, where a bare `NAME` resolves
    /// (none: bare names resolve nowhere).
    pub namespace: Option<String>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            cluster_domain: "cluster.local".to_owned(),
            namespace: None,
        }
    }
}

/// One service port as the mesh sees it.
#[derive(Debug)]
struct Known {
    endpoints: watch::Sender<Vec<SocketAddr>>,
    /// The same endpoints, with their identities.
    targets: watch::Sender<Vec<EndpointTarget>>,
    cluster: SocketAddr,
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<ServiceKey, Known>,
    /// (lower-case host, port) -> service port.
    names: HashMap<(String, u16), ServiceKey>,
    /// Apex service -> its split, whose backends' keys have an empty port (any port).
    splits: BTreeMap<ServiceName, SplitPicker>,
}

/// The mesh's view of services: shared (cheap to clone) between the follower that applies
/// tables and the proxies that route by it.
#[derive(Clone, Debug, Default)]
pub struct MeshDirectory {
    config: Arc<DirectoryConfig>,
    state: Arc<Mutex<State>>,
}

impl MeshDirectory {
    /// An empty directory.
    pub fn new(config: DirectoryConfig) -> Self {
        MeshDirectory {
            config: Arc::new(config),
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced whole under the lock; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The service port an HTTP authority (`Host` header or `:authority`) names: by DNS name
    /// (`NAME.NS.svc.DOMAIN`, `NAME.NS.svc`, `NAME.NS`, bare `NAME` in the configured
    /// namespace) or by cluster IP, with the service's port (80 when the authority has none).
    pub fn resolve(&self, authority: &str) -> Option<ServiceKey> {
        let (host, port) = split_authority(authority)?;
        self.state().names.get(&(host, port)).cloned()
    }

    /// The live endpoint list of a service port, for [`EndpointDiscover`](super::EndpointDiscover).
    pub fn endpoints(&self, key: &ServiceKey) -> Option<watch::Receiver<Vec<SocketAddr>>> {
        self.state()
            .services
            .get(key)
            .map(|known| known.endpoints.subscribe())
    }

    /// The live endpoints of a service port with their pods' accounts, for the outbound
    /// proxy's connections (see [`EndpointTarget`]).
    pub fn targets(&self, key: &ServiceKey) -> Option<watch::Receiver<Vec<EndpointTarget>>> {
        self.state()
            .services
            .get(key)
            .map(|known| known.targets.subscribe())
    }

    /// The service ports the directory knows, with their cluster addresses.
    pub fn services(&self) -> Vec<(ServiceKey, SocketAddr)> {
        self.state()
            .services
            .iter()
            .map(|(key, known)| (key.clone(), known.cluster))
            .collect()
    }

    /// Replaces the services' traffic splits with `splits` (apex service -> split; the
    /// backends' ports are ignored: a request keeps its port name). A split that did not
    /// change keeps its place in the weighted round-robin; a changed or new one starts
    /// over. Requests already on their way are not affected: only the next pick is.
    /// An invalid split is refused, and none of `splits` applied.
    pub fn apply_splits(
        &self,
        splits: BTreeMap<ServiceName, TrafficSplit>,
    ) -> Result<(), SplitError> {
        let mut state = self.state();
        // Every new or changed split is checked before anything is replaced.
        let mut next = BTreeMap::new();
        let mut unchanged = Vec::new();
        for (apex, split) in splits {
            match state.splits.get(&apex) {
                Some(picker) if *picker.split() == split => unchanged.push(apex),
                _ => {
                    next.insert(apex, SplitPicker::new(split)?);
                }
            }
        }
        for apex in unchanged {
            if let Some(picker) = state.splits.remove(&apex) {
                next.insert(apex, picker);
            }
        }
        state.splits = next;
        Ok(())
    }

    /// The traffic splits in force (apex service -> split).
    pub fn splits(&self) -> BTreeMap<ServiceName, TrafficSplit> {
        self.state()
            .splits
            .iter()
            .map(|(apex, picker)| (apex.clone(), picker.split().clone()))
            .collect()
    }

    /// Where a request for service port `apex` goes under its service's split: `None`
    /// when the service has no split; `Some(None)` when no backend with weight has a
    /// ready endpoint on the port of the same name; else the backend's port.
    pub fn pick_split(&self, apex: &ServiceKey) -> Option<Option<ServiceKey>> {
        let mut state = self.state();
        let state = &mut *state;
        let name = ServiceName::new(apex.namespace.as_str(), apex.name.as_str());
        let picker = state.splits.get_mut(&name)?;
        let on_port = |backend: &ServiceKey| {
            ServiceKey::new(
                backend.namespace.as_str(),
                backend.name.as_str(),
                apex.port.as_str(),
            )
        };
        let services = &state.services;
        let ready = |backend: &ServiceKey| {
            services
                .get(&on_port(backend))
                .is_some_and(|known| !known.endpoints.borrow().is_empty())
        };
        Some(picker.pick(ready).map(on_port))
    }

    /// The names under which `key` (at `cluster`) is reachable.
    fn names_of(&self, key: &ServiceKey, cluster: SocketAddr) -> Vec<String> {
        let domain = self
            .config
            .cluster_domain
            .trim_matches('.')
            .to_ascii_lowercase();
        let (name, ns) = (
            key.name.to_ascii_lowercase(),
            key.namespace.to_ascii_lowercase(),
        );
        let mut names = vec![
            format!("{name}.{ns}.svc.{domain}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}"),
            cluster.ip().to_string(),
        ];
        if self.config.namespace.as_deref() == Some(key.namespace.as_str()) {
            names.push(name);
        }
        names
    }
}

/// Splits `host[:port]` (IPv6 hosts in brackets) into a lower-case host without a trailing dot
/// and a port (80 by default); `None` when it is not an authority.
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let authority: http::uri::Authority = authority.parse().ok()?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    // Canonical text for IP literals, so that `::0001` finds `::1`.
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host,
    };
    Some((host, authority.port_u16().unwrap_or(80)))
}

#[async_trait]
impl ServiceProxy for MeshDirectory {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        let mut names = HashMap::new();
        for (key, entry) in table.iter() {
            for name in self.names_of(key, entry.cluster) {
                names.insert((name, entry.cluster.port()), key.clone());
            }
        }
        let mut state = self.state();
        state.services.retain(|key, known| {
            let keep = table.get(key).is_some();
            if !keep {
                // Balancers still holding the channel see the service emptied, then closed.
                known.targets.send_replace(Vec::new());
                known.endpoints.send_replace(Vec::new());
            }
            keep
        });
        for (key, entry) in table.iter() {
            let targets = EndpointTarget::of(table, key, entry);
            match state.services.get_mut(key) {
                Some(known) => {
                    known.cluster = entry.cluster;
                    known.targets.send_if_modified(|current| {
                        let changed = *current != targets;
                        if changed {
                            *current = targets;
                        }
                        changed
                    });
                    known.endpoints.send_if_modified(|current| {
                        let changed = *current != entry.endpoints;
                        if changed {
                            current.clone_from(&entry.endpoints);
                        }
                        changed
                    });
                }
                None => {
                    state.services.insert(
                        key.clone(),
                        Known {
                            endpoints: watch::Sender::new(entry.endpoints.clone()),
                            targets: watch::Sender::new(targets),
                            cluster: entry.cluster,
                        },
                    );
                }
            }
        }
        state.names = names;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Affinity, Protocol, ServiceEntry};

    fn entry(cluster: &str, endpoints: &[&str]) -> ServiceEntry {
        ServiceEntry {
            cluster: cluster.parse().unwrap(),
            node_port: None,
            protocol: Protocol::Tcp,
            affinity: Affinity::None,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    fn weighted(namespace: &str, backends: &[(&str, u32)]) -> TrafficSplit {
        TrafficSplit {
            backends: backends
                .iter()
                .map(|(name, weight)| super::super::split::WeightedBackend {
                    service: ServiceKey::new(namespace, *name, ""),
                    weight: *weight,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_service_split_keeps_the_port_and_its_place_until_it_changes() {
        let directory = MeshDirectory::new(DirectoryConfig::default());
        let port = |name: &str, port: &str| ServiceKey::new("shop", name, port);
        let table: ServiceTable = [
            (
                port("web", "http"),
                entry("127.2.0.1:80", &["127.0.0.1:9001"]),
            ),
            (
                port("web", "admin"),
                entry("127.2.0.1:81", &["127.0.0.1:9002"]),
            ),
            (
                port("v1", "http"),
                entry("127.2.0.2:80", &["127.0.0.1:9003"]),
            ),
            (
                port("v1", "admin"),
                entry("127.2.0.2:81", &["127.0.0.1:9004"]),
            ),
            // v2 has no admin port: admin requests never go there.
            (
                port("v2", "http"),
                entry("127.2.0.3:80", &["127.0.0.1:9005"]),
            ),
        ]
        .into_iter()
        .collect();
        directory.apply(&table).await.unwrap();
        assert_eq!(directory.pick_split(&port("web", "http")), None, "no split");

        let apex = ServiceName::new("shop", "web");
        let canary = weighted("shop", &[("v1", 2), ("v2", 1)]);
        directory
            .apply_splits([(apex.clone(), canary.clone())].into())
            .unwrap();
        let picks = |n: usize, key: ServiceKey| -> Vec<String> {
            (0..n)
                .map(|_| {
                    let picked = directory.pick_split(&key).unwrap().unwrap();
                    assert_eq!(picked.port, key.port, "the request's port is kept");
                    picked.name
                })
                .collect()
        };
        assert_eq!(picks(2, port("web", "http")), ["v1", "v2"]);
        // Re-applying the same split keeps its place in the round-robin.
        directory
            .apply_splits([(apex.clone(), canary)].into())
            .unwrap();
        assert_eq!(picks(1, port("web", "http")), ["v1"]);
        // A backend without the request's port is skipped.
        assert_eq!(picks(3, port("web", "admin")), ["v1", "v1", "v1"]);
        // A weight change starts over with the new weights.
        directory
            .apply_splits([(apex.clone(), weighted("shop", &[("v1", 0), ("v2", 1)]))].into())
            .unwrap();
        assert_eq!(picks(2, port("web", "http")), ["v2", "v2"]);
        assert_eq!(directory.pick_split(&port("web", "admin")), Some(None));
        // An invalid set is refused whole; the splits in force stay.
        let error = directory
            .apply_splits([(apex.clone(), weighted("shop", &[("v1", 0)]))].into())
            .unwrap_err();
        assert_eq!(error, SplitError::NoWeight);
        assert_eq!(picks(1, port("web", "http")), ["v2"]);
        // No split: the apex's own endpoints.
        directory.apply_splits(BTreeMap::new()).unwrap();
        assert_eq!(directory.pick_split(&port("web", "http")), None);
        assert!(directory.splits().is_empty());
    }

    #[tokio::test]
    async fn resolves_names_and_follows_endpoints() {
        let directory = MeshDirectory::new(DirectoryConfig {
            namespace: Some("shop".into()),
            ..DirectoryConfig::default()
        });
        let web = ServiceKey::new("shop", "web", "");
        let db = ServiceKey::new("data", "db", "sql");
        let table: ServiceTable = [
            (web.clone(), entry("127.2.0.1:80", &["127.0.0.1:9001"])),
            (db.clone(), entry("127.2.0.2:5432", &[])),
        ]
        .into_iter()
        .collect();
        directory.apply(&table).await.unwrap();

        for name in [
            "web.shop.svc.cluster.local",
            "WEB.shop.svc.cluster.local.:80",
            "web.shop.svc",
            "web.shop",
            "web",
            "127.2.0.1:80",
        ] {
            assert_eq!(directory.resolve(name), Some(web.clone()), "{name}");
        }
        assert_eq!(directory.resolve("db.data:5432"), Some(db.clone()));
        assert_eq!(
            directory.resolve("db:5432"),
            None,
            "bare names only in the own namespace"
        );
        assert_eq!(directory.resolve("web.shop:8080"), None, "wrong port");
        assert_eq!(directory.resolve("not an authority"), None);

        let mut rx = directory.endpoints(&web).unwrap();
        assert_eq!(
            *rx.borrow_and_update(),
            vec!["127.0.0.1:9001".parse::<SocketAddr>().unwrap()]
        );
        // Re-applying the same table does not wake discoverers; a change does.
        directory.apply(&table).await.unwrap();
        assert!(!rx.has_changed().unwrap());
        let mut changed = table.clone();
        changed.insert(
            web.clone(),
            entry("127.2.0.1:80", &["127.0.0.1:9001", "127.0.0.1:9002"]),
        );
        directory.apply(&changed).await.unwrap();
        assert_eq!(rx.borrow_and_update().len(), 2);
        // A removed service is emptied, then its channel closes.
        directory.apply(&ServiceTable::new()).await.unwrap();
        assert!(rx.borrow_and_update().is_empty());
        assert!(rx.changed().await.is_err());
        assert_eq!(directory.resolve("web"), None);
    }

    #[tokio::test]
    async fn targets_carry_the_endpoints_accounts_and_follow_them_alone() {
        use crate::table::ServiceAccountRef;
        let directory = MeshDirectory::new(DirectoryConfig::default());
        let web = ServiceKey::new("shop", "web", "");
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
        );
        let table = |account: &str| {
            let mut table = ServiceTable::new();
            table.insert_with_identities(
                web.clone(),
                entry("127.2.0.1:80", &["127.0.0.1:9001", "127.0.0.1:9002"]),
                [(a, ServiceAccountRef::new("shop", account))].into(),
            );
            table
        };
        directory.apply(&table("web")).await.unwrap();
        let mut endpoints = directory.endpoints(&web).unwrap();
        let mut targets = directory.targets(&web).unwrap();
        assert_eq!(
            *targets.borrow_and_update(),
            [
                EndpointTarget {
                    addr: a,
                    account: Some(ServiceAccountRef::new("shop", "web")),
                },
                EndpointTarget {
                    addr: b,
                    account: None,
                },
            ]
        );
        endpoints.borrow_and_update();
        // Only an account changed: the targets change, the addresses do not.
        directory.apply(&table("other")).await.unwrap();
        assert!(targets.has_changed().unwrap());
        assert_eq!(
            targets.borrow_and_update()[0].account,
            Some(ServiceAccountRef::new("shop", "other"))
        );
        assert!(!endpoints.has_changed().unwrap());
        directory.apply(&table("other")).await.unwrap();
        assert!(!targets.has_changed().unwrap());
        // A removed service empties its targets too.
        directory.apply(&ServiceTable::new()).await.unwrap();
        assert!(targets.borrow_and_update().is_empty());
    }
}
