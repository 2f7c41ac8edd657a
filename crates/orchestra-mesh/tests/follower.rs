//! ProxyFollower over LocalClient and MemStore in paused time: Services and Endpoints written
//! through the API reach the proxy, in one debounced apply per burst of changes; with
//! endpoint identities, each endpoint carries its pod's ServiceAccount, also when the pod
//! arrives after its Endpoints.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    Container, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod,
    PodSpec, Service, ServicePort, ServiceSpec,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_mesh::{
    FollowerConfig, MemoryProxy, Protocol, ProxyError, ProxyFollower, ServiceAccountRef,
    ServiceEntry, ServiceKey, ServiceProxy, ServiceTable,
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

fn pod(name: &str, account: &str) -> Pod {
    Pod {
        metadata: meta(name),
        spec: PodSpec {
            service_account_name: account.to_string(),
            containers: vec![Container {
                name: "app".into(),
                image: "app".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// An Endpoints address of pod `name` (with `uid`), as the endpoints controller writes it.
fn pod_address(ip: &str, name: &str, uid: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.to_string(),
        target_ref: Some(ObjectReference {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
            uid: uid.into(),
            ..ObjectReference::default()
        }),
        ..EndpointAddress::default()
    }
}

#[tokio::test(start_paused = true)]
async fn endpoint_identities_follow_the_pods_accounts_even_when_a_pod_comes_late() {
    let client = LocalClient::new(MemStore::new());
    client.create(&service("web", "127.2.0.80")).await.unwrap();
    let web_1 = client.create(&pod("web-1", "web")).await.unwrap();
    // No serviceAccountName (written around the admission plug-in): `default`.
    let job_1 = client.create(&pod("job-1", "")).await.unwrap();
    let mut eps = endpoints("web", &[]);
    eps.subsets[0].addresses = vec![
        pod_address("10.0.0.1", "web-1", &web_1.metadata.uid),
        pod_address("10.0.0.2", "job-1", &job_1.metadata.uid),
        // A pod the follower has not seen (yet), and an address of no pod.
        pod_address("10.0.0.3", "web-3", "later"),
        EndpointAddress {
            ip: "10.0.0.4".into(),
            ..EndpointAddress::default()
        },
    ];
    client.create(&eps).await.unwrap();

    let proxy = Arc::new(Recording::default());
    let follower = ProxyFollower::new(
        client.clone(),
        proxy.clone(),
        FollowerConfig {
            debounce: Duration::from_millis(100),
            ..FollowerConfig::default()
        },
    )
    .with_endpoint_identities();
    let mut applied = follower.applied();
    tokio::spawn(follower.run());

    let key = http("web");
    let table = applied
        .wait_for(|t| t.get(&key).is_some())
        .await
        .unwrap()
        .clone();
    assert_eq!(
        proxy.applies(),
        1,
        "the first table waited for the pods' list"
    );
    assert_eq!(table.get(&key).unwrap().endpoints.len(), 4);
    let account = |name: &str| ServiceAccountRef::new("default", name);
    let identities = table.identities(&key).unwrap().clone();
    assert_eq!(
        identities.into_iter().collect::<Vec<_>>(),
        [
            (sa("10.0.0.1:8080"), account("web")),
            (sa("10.0.0.2:8080"), account("default")),
        ]
    );

    // A pod status change alters no account: no apply. The late pod arrives with another uid
    // than the Endpoints name (the Endpoints are behind): still no identity for it.
    let mut web_1 = web_1;
    web_1.metadata.labels.insert("touched".into(), "yes".into());
    client.update(&web_1).await.unwrap();
    let web_3 = client.create(&pod("web-3", "web")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(proxy.applies(), 2, "the awaited pod's arrival rebuilt web");
    assert_eq!(
        applied.borrow().identity(&key, &sa("10.0.0.3:8080")),
        None,
        "a pod of another uid is not the one the Endpoints name"
    );
    // The Endpoints catch up: 10.0.0.3 is web's pod.
    let mut current: Endpoints = client.get("default", "web").await.unwrap();
    current.subsets[0].addresses[2] = pod_address("10.0.0.3", "web-3", &web_3.metadata.uid);
    client.update(&current).await.unwrap();
    let table = applied
        .wait_for(|t| t.identity(&key, &sa("10.0.0.3:8080")).is_some())
        .await
        .unwrap()
        .clone();
    assert_eq!(
        table.identity(&key, &sa("10.0.0.3:8080")),
        Some(&account("web"))
    );
    assert_eq!(proxy.last_changed(), BTreeSet::from([key.clone()]));

    // Endpoints that arrive before their pod: built without its identity, then rebuilt
    // when the pod comes.
    client.create(&service("api", "127.2.0.81")).await.unwrap();
    let mut eps = endpoints("api", &[]);
    eps.subsets[0].addresses = vec![pod_address("10.0.1.1", "api-1", "")];
    client.create(&eps).await.unwrap();
    let api = http("api");
    applied.wait_for(|t| t.get(&api).is_some()).await.unwrap();
    assert_eq!(applied.borrow().identities(&api), None);
    client.create(&pod("api-1", "api")).await.unwrap();
    // Bounded (in virtual time): a follower that never rebuilt api would wait forever.
    let table = tokio::time::timeout(
        Duration::from_secs(60),
        applied.wait_for(|t| t.identities(&api).is_some()),
    )
    .await
    .expect("api was not rebuilt when its pod arrived")
    .unwrap()
    .clone();
    assert_eq!(
        table.identity(&api, &sa("10.0.1.1:8080")),
        Some(&account("api"))
    );
    assert_eq!(proxy.last_changed(), BTreeSet::from([api]));
}
