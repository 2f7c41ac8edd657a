//! ProxyFollower over LocalClient and MemStore in paused time: Services and Endpoints written
//! through the API reach the proxy, in one debounced apply per burst of changes.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_mesh::{
    FollowerConfig, MemoryProxy, Protocol, ProxyError, ProxyFollower, ServiceEntry, ServiceKey,
    ServiceProxy, ServiceTable,
};
use orchestra_store::MemStore;

/// A MemoryProxy that also records every table it is given, and the keys it was told had
/// changed; it fails an apply when asked to.
#[derive(Default)]
struct Recording {
    proxy: MemoryProxy,
    tables: Mutex<Vec<ServiceTable>>,
    changed: Mutex<Vec<BTreeSet<ServiceKey>>>,
    fail_next: AtomicBool,
}

#[async_trait]
impl ServiceProxy for Recording {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        self.tables.lock().unwrap().push(table.clone());
        self.proxy.apply(table).await
    }

    async fn apply_changed(
        &self,
        table: &ServiceTable,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<(), ProxyError> {
        self.changed.lock().unwrap().push(changed.clone());
        if self.fail_next.swap(false, Ordering::SeqCst) {
            self.tables.lock().unwrap().push(table.clone());
            return Err(ProxyError::Closed);
        }
        self.apply(table).await
    }
}

impl Recording {
    fn applies(&self) -> usize {
        self.tables.lock().unwrap().len()
    }

    fn last_changed(&self) -> BTreeSet<ServiceKey> {
        self.changed
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        namespace: "default".to_string(),
        ..ObjectMeta::default()
    }
}

fn service(name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: meta(name),
        spec: ServiceSpec {
            cluster_ip: cluster_ip.to_string(),
            ports: vec![ServicePort {
                name: "http".to_string(),
                port: 80,
                target_port: Some("web".into()),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        status: None,
    }
}

fn endpoints(name: &str, ips: &[&str]) -> Endpoints {
    Endpoints {
        metadata: meta(name),
        subsets: vec![EndpointSubset {
            addresses: ips
                .iter()
                .map(|ip| EndpointAddress {
                    ip: ip.to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                name: "http".to_string(),
                port: 8080,
                ..EndpointPort::default()
            }],
        }],
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn start(
    client: &LocalClient,
) -> (
    Arc<Recording>,
    tokio::sync::watch::Receiver<Arc<ServiceTable>>,
) {
    let proxy = Arc::new(Recording::default());
    let follower = ProxyFollower::new(
        client.clone(),
        proxy.clone(),
        FollowerConfig {
            debounce: Duration::from_millis(100),
            ..FollowerConfig::default()
        },
    );
    let applied = follower.applied();
    tokio::spawn(follower.run());
    (proxy, applied)
}

#[tokio::test(start_paused = true)]
async fn services_and_endpoints_reach_the_proxy_and_follow_changes() {
    let client = LocalClient::new(MemStore::new());
    client.create(&service("web", "127.2.0.80")).await.unwrap();
    client
        .create(&endpoints("web", &["10.0.0.1"]))
        .await
        .unwrap();
    let (proxy, mut applied) = start(&client);
    let key = ServiceKey::new("default", "web", "http");

    let table = applied
        .wait_for(|t| t.get(&key).is_some())
        .await
        .unwrap()
        .clone();
    assert_eq!(
        table.get(&key).unwrap().endpoints,
        vec![sa("10.0.0.1:8080")]
    );
    let client_ip: IpAddr = "127.0.0.5".parse().unwrap();
    let cluster = sa("127.2.0.80:80");
    assert_eq!(
        proxy.proxy.resolve(Protocol::Tcp, cluster, client_ip),
        Some(sa("10.0.0.1:8080"))
    );

    // A new ready pod.
    let mut current: Endpoints = client.get("default", "web").await.unwrap();
    current.subsets = endpoints("web", &["10.0.0.1", "10.0.0.2"]).subsets;
    client.update(&current).await.unwrap();
    applied
        .wait_for(|t| t.get(&key).is_some_and(|e| e.endpoints.len() == 2))
        .await
        .unwrap();

    // The service goes away: nothing to route.
    client
        .delete::<Service>("default", "web", &DeleteOptions::default())
        .await
        .unwrap();
    applied.wait_for(|t| t.is_empty()).await.unwrap();
    assert_eq!(proxy.proxy.resolve(Protocol::Tcp, cluster, client_ip), None);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_is_applied_once() {
    let client = LocalClient::new(MemStore::new());
    let (proxy, mut applied) = start(&client);
    // The first (empty) table once both kinds are listed.
    applied.changed().await.unwrap();
    assert_eq!(proxy.applies(), 1);
    assert!(applied.borrow_and_update().is_empty());

    // Writes take no virtual time, so all of them land inside one debounce window.
    client.create(&service("a", "127.2.0.81")).await.unwrap();
    client.create(&service("b", "127.2.0.82")).await.unwrap();
    client.create(&endpoints("a", &["10.0.1.1"])).await.unwrap();
    client.create(&endpoints("b", &["10.0.2.1"])).await.unwrap();
    let mut a: Endpoints = client.get("default", "a").await.unwrap();
    a.subsets = endpoints("a", &["10.0.1.1", "10.0.1.2"]).subsets;
    client.update(&a).await.unwrap();

    applied.changed().await.unwrap();
    assert_eq!(proxy.applies(), 2, "one apply for the whole burst");
    let table = applied.borrow_and_update().clone();
    assert_eq!(table.len(), 2);
    assert_eq!(
        table
            .get(&ServiceKey::new("default", "a", "http"))
            .unwrap()
            .endpoints,
        vec![sa("10.0.1.1:8080"), sa("10.0.1.2:8080")]
    );
}

/// The entry of `key` in `table`, as the shared allocation.
fn shared(table: &ServiceTable, key: &ServiceKey) -> Arc<ServiceEntry> {
    table
        .shared_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, entry)| Arc::clone(entry))
        .expect("the key is in the table")
}

fn http(name: &str) -> ServiceKey {
    ServiceKey::new("default", name, "http")
}

#[tokio::test(start_paused = true)]
async fn a_change_hands_the_proxy_its_keys_alone_and_shares_the_other_entries() {
    let client = LocalClient::new(MemStore::new());
    for (name, ip) in [
        ("a", "127.2.0.81"),
        ("b", "127.2.0.82"),
        ("c", "127.2.0.83"),
    ] {
        client.create(&service(name, ip)).await.unwrap();
        client
            .create(&endpoints(name, &["10.0.0.1"]))
            .await
            .unwrap();
    }
    let (proxy, mut applied) = start(&client);
    applied.wait_for(|t| t.len() == 3).await.unwrap();
    assert_eq!(
        proxy.last_changed(),
        BTreeSet::from([http("a"), http("b"), http("c")]),
        "the first apply names every port"
    );

    // b gains a ready pod; c gains an unready one, which changes no entry.
    let mut b: Endpoints = client.get("default", "b").await.unwrap();
    b.subsets = endpoints("b", &["10.0.0.1", "10.0.0.2"]).subsets;
    client.update(&b).await.unwrap();
    let mut c: Endpoints = client.get("default", "c").await.unwrap();
    c.subsets[0].not_ready_addresses = vec![EndpointAddress {
        ip: "10.0.0.9".to_string(),
        ..EndpointAddress::default()
    }];
    client.update(&c).await.unwrap();
    applied
        .wait_for(|t| t.get(&http("b")).is_some_and(|e| e.endpoints.len() == 2))
        .await
        .unwrap();
    assert_eq!(proxy.applies(), 2, "one apply for both updates");
    assert_eq!(proxy.last_changed(), BTreeSet::from([http("b")]));
    let tables = proxy.tables.lock().unwrap().clone();
    for unchanged in [http("a"), http("c")] {
        assert!(
            Arc::ptr_eq(
                &shared(&tables[0], &unchanged),
                &shared(&tables[1], &unchanged)
            ),
            "{unchanged} was rebuilt"
        );
    }
    // What the follower announces is what it applied, sharing the same entries.
    let announced = applied.borrow().clone();
    assert_eq!(*announced, tables[1]);
    assert!(Arc::ptr_eq(
        &shared(&announced, &http("b")),
        &shared(&tables[1], &http("b"))
    ));

    // A deleted service is a change of its ports.
    client
        .delete::<Service>("default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    applied.wait_for(|t| t.len() == 2).await.unwrap();
    assert_eq!(proxy.last_changed(), BTreeSet::from([http("a")]));
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_apply_the_next_one_names_its_changes_too() {
    let client = LocalClient::new(MemStore::new());
    for (name, ip) in [("a", "127.2.0.81"), ("b", "127.2.0.82")] {
        client.create(&service(name, ip)).await.unwrap();
        client
            .create(&endpoints(name, &["10.0.0.1"]))
            .await
            .unwrap();
    }
    let (proxy, mut applied) = start(&client);
    applied.wait_for(|t| t.len() == 2).await.unwrap();
    applied.borrow_and_update();

    proxy.fail_next.store(true, Ordering::SeqCst);
    let mut a: Endpoints = client.get("default", "a").await.unwrap();
    a.subsets = endpoints("a", &["10.0.0.2"]).subsets;
    client.update(&a).await.unwrap();
    // Announced although it failed.
    applied.changed().await.unwrap();
    assert_eq!(proxy.applies(), 2);
    assert_eq!(proxy.last_changed(), BTreeSet::from([http("a")]));

    let mut b: Endpoints = client.get("default", "b").await.unwrap();
    b.subsets = endpoints("b", &["10.0.0.2"]).subsets;
    client.update(&b).await.unwrap();
    applied.changed().await.unwrap();
    assert_eq!(proxy.applies(), 3);
    assert_eq!(
        proxy.last_changed(),
        BTreeSet::from([http("a"), http("b")]),
        "a's change was never applied: it is still a change"
    );
    let client_ip: IpAddr = "127.0.0.5".parse().unwrap();
    assert_eq!(
        proxy
            .proxy
            .resolve(Protocol::Tcp, sa("127.2.0.81:80"), client_ip),
        Some(sa("10.0.0.2:8080"))
    );

    // Once applied, the next change names its own keys alone.
    let mut b: Endpoints = client.get("default", "b").await.unwrap();
    b.subsets = endpoints("b", &["10.0.0.3"]).subsets;
    client.update(&b).await.unwrap();
    applied.changed().await.unwrap();
    assert_eq!(proxy.last_changed(), BTreeSet::from([http("b")]));
}
