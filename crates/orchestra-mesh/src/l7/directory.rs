//! [`MeshDirectory`]: the services the mesh knows, their names and their live endpoint lists.
//!
//! It is a [`ServiceProxy`], so the [`ProxyFollower`](crate::ProxyFollower) that drives the L4
//! proxy drives it the same way (Services and Endpoints from the API, debounced, as a
//! [`ServiceTable`]); a test applies a table it wrote by hand. Each service port gets a
//! `watch` channel of its ready endpoints, which [`EndpointDiscover`](super::EndpointDiscover)
//! turns into balancer changes, and a set of names by which HTTP requests address it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::proxy::{ProxyError, ServiceProxy};
use crate::table::{ServiceKey, ServiceTable};

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
    cluster: SocketAddr,
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<ServiceKey, Known>,
    /// (lower-case host, port) -> service port.
    names: HashMap<(String, u16), ServiceKey>,
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

    /// The service ports the directory knows, with their cluster addresses.
    pub fn services(&self) -> Vec<(ServiceKey, SocketAddr)> {
        self.state()
            .services
            .iter()
            .map(|(key, known)| (key.clone(), known.cluster))
            .collect()
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
                known.endpoints.send_replace(Vec::new());
            }
            keep
        });
        for (key, entry) in table.iter() {
            match state.services.get_mut(key) {
                Some(known) => {
                    known.cluster = entry.cluster;
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
}
