//! The root CA publisher over LocalClient in paused time: every namespace, including one made
//! later, gets `kube-root-ca.crt` holding the CA; an edited or deleted one is restored; other
//! ConfigMaps are left alone; a terminating namespace gets none.

mod support;

use std::collections::BTreeMap;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{ConfigMap, Namespace};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::RootCaPublisher;
use orchestra_controller::controllers::root_ca::ROOT_CA_CONFIG_MAP;
use orchestra_controller::manager::{ControllerManager, parse_controllers};
use orchestra_store::MemStore;
use support::{eventually, start};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n";

async fn create_namespace(client: &LocalClient, name: &str) {
    client
        .create(&Namespace {
            metadata: ObjectMeta::named(name),
            ..Namespace::default()
        })
        .await
        .unwrap();
}

/// The namespace's `ca.crt` entry, if it has the ConfigMap.
async fn published(client: &LocalClient, namespace: &str) -> Option<String> {
    client
        .get::<ConfigMap>(namespace, ROOT_CA_CONFIG_MAP)
        .await
        .ok()
        .and_then(|map| map.data.get("ca.crt").cloned())
}

async fn holds_the_ca(client: &LocalClient, namespace: &str) -> bool {
    client
        .get::<ConfigMap>(namespace, ROOT_CA_CONFIG_MAP)
        .await
        .is_ok_and(|map| map.data == BTreeMap::from([("ca.crt".to_owned(), CA.to_owned())]))
}

async fn delete_it(client: &LocalClient, namespace: &str) {
    client
        .delete::<ConfigMap>(namespace, ROOT_CA_CONFIG_MAP, &DeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_namespace_keeps_the_root_ca() {
    let client = LocalClient::new(MemStore::new());
    create_namespace(&client, "shop").await;
    let other = ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "settings"),
        data: BTreeMap::from([("ca.crt".to_owned(), "mine".to_owned())]),
        ..ConfigMap::default()
    };
    let other = client.create(&other).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let running = start(RootCaPublisher::controller(&informers, CA));

    eventually("shop's CA", || holds_the_ca(&client, "shop")).await;
    // A namespace made later gets it too.
    create_namespace(&client, "later").await;
    eventually("later's CA", || holds_the_ca(&client, "later")).await;

    // Edited, it is written back (the same object, the entries fixed).
    let mut edited: ConfigMap = client.get("shop", ROOT_CA_CONFIG_MAP).await.unwrap();
    let uid = edited.metadata.uid.clone();
    edited.data.insert("ca.crt".into(), "tampered".into());
    edited.data.insert("extra".into(), "x".into());
    client.update(&edited).await.unwrap();
    eventually("shop's CA restored", || async {
        client
            .get::<ConfigMap>("shop", ROOT_CA_CONFIG_MAP)
            .await
            .is_ok_and(|map| map.metadata.uid == uid && map.data.len() == 1)
            && holds_the_ca(&client, "shop").await
    })
    .await;

    // Deleted, it is made again (a new object: a new uid).
    delete_it(&client, "shop").await;
    eventually("shop's CA made again", || async {
        client
            .get::<ConfigMap>("shop", ROOT_CA_CONFIG_MAP)
            .await
            .is_ok_and(|map| map.metadata.uid != uid)
            && holds_the_ca(&client, "shop").await
    })
    .await;

    // Immutable and wrong (a user made it so): replaced.
    delete_it(&client, "later").await;
    let frozen = ConfigMap {
        metadata: ObjectMeta::namespaced("later", ROOT_CA_CONFIG_MAP),
        data: BTreeMap::from([("ca.crt".to_owned(), "stale".to_owned())]),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    // The controller may have made it again first: then it is right, and the test goes on.
    if client.create(&frozen).await.is_ok() {
        eventually("later's immutable CA replaced", || {
            holds_the_ca(&client, "later")
        })
        .await;
    }

    // A terminating namespace (deleted; its finalizer holds it, no namespace controller runs
    // here) does not get it back.
    client
        .delete::<Namespace>("", "shop", &DeleteOptions::default())
        .await
        .unwrap();
    let shop: Namespace = client.get("", "shop").await.unwrap();
    assert!(shop.metadata.deletion_timestamp.is_some());
    delete_it(&client, "shop").await;
    // Deleted after shop's, later's comes back: the controller has seen both deletions.
    delete_it(&client, "later").await;
    eventually("later's CA again", || holds_the_ca(&client, "later")).await;
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert_eq!(published(&client, "shop").await, None);
    // The other ConfigMap was never touched.
    let untouched: ConfigMap = client.get("shop", "settings").await.unwrap();
    assert_eq!(untouched.data, other.data);
    assert_eq!(
        untouched.metadata.resource_version,
        other.metadata.resource_version
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_manager_publishes_only_when_given_a_ca() {
    let client = LocalClient::new(MemStore::new());
    create_namespace(&client, "shop").await;
    // Without a CA (a server without TLS): no ConfigMap, whatever --controllers says.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let manager = ControllerManager::new(client.clone())
        .controllers(parse_controllers("serviceaccount,root-ca-cert-publisher").unwrap());
    let running = tokio::spawn(manager.run(async {
        let _ = stopped.await;
    }));
    eventually("shop's default account", || async {
        client
            .get::<orchestra_api::resources::ServiceAccount>("shop", "default")
            .await
            .is_ok()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert_eq!(published(&client, "shop").await, None);
    let _ = stop.send(());
    running.await.unwrap();

    // With one: published; and `-root-ca-cert-publisher` turns it off.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let manager = ControllerManager::new(client.clone())
        .controllers(parse_controllers("*,-nodelifecycle").unwrap())
        .root_ca(Some(CA.to_owned()));
    let running = tokio::spawn(manager.run(async {
        let _ = stopped.await;
    }));
    eventually("shop's CA", || holds_the_ca(&client, "shop")).await;
    let _ = stop.send(());
    running.await.unwrap();
    assert!(
        !parse_controllers("*,-root-ca-cert-publisher")
            .unwrap()
            .contains(&"root-ca-cert-publisher")
    );
}
