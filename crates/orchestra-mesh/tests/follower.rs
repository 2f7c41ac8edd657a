//! ProxyFollower over LocalClient and MemStore in paused time: Services and Endpoints written
//! through the API reach the proxy, in one debounced apply per burst of changes.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_mesh::{
    FollowerConfig, MemoryProxy, Protocol, ProxyError, ProxyFollower, ServiceKey, ServiceProxy,
    ServiceTable,
};
use orchestra_store::MemStore;

/// A MemoryProxy that also records every table it is given.
#[derive(Default)]
struct Recording {
    proxy: MemoryProxy,
    tables: Mutex<Vec<ServiceTable>>,
}

#[async_trait]
impl ServiceProxy for Recording {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        self.tables.lock().unwrap().push(table.clone());
        self.proxy.apply(table).await
    }
}

impl Recording {
    fn applies(&self) -> usize {
        self.tables.lock().unwrap().len()
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
