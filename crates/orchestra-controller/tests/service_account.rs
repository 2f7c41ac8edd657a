//! The ServiceAccount controller over LocalClient in paused time: every namespace gets its
//! `default` account, a deleted one comes back, and a terminating namespace gets none.

mod support;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Namespace, ServiceAccount};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::ServiceAccountController;
use orchestra_store::MemStore;
use support::{eventually, start};

async fn has_default(client: &LocalClient, namespace: &str) -> bool {
    client
        .get::<ServiceAccount>(namespace, "default")
        .await
        .is_ok()
}

async fn create_namespace(client: &LocalClient, name: &str) {
    client
        .create(&Namespace {
            metadata: ObjectMeta::named(name),
            ..Namespace::default()
        })
        .await
        .unwrap();
}

async fn delete_default(client: &LocalClient, namespace: &str) {
    client
        .delete::<ServiceAccount>(namespace, "default", &DeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_namespace_keeps_a_default_service_account() {
    let client = LocalClient::new(MemStore::new());
    create_namespace(&client, "shop").await;
    let informers = SharedInformers::new(client.clone());
    let running = start(ServiceAccountController::controller(&informers));

    eventually("shop's default account", || has_default(&client, "shop")).await;
    // A namespace made later gets one too; other accounts are left as they are.
    create_namespace(&client, "other").await;
    eventually("other's default account", || has_default(&client, "other")).await;
    client
        .create(&ServiceAccount {
            metadata: ObjectMeta::namespaced("shop", "builder"),
            ..ServiceAccount::default()
        })
        .await
        .unwrap();

    // Deleted, it is made again (a new object: a new uid).
    let before: ServiceAccount = client.get("shop", "default").await.unwrap();
    delete_default(&client, "shop").await;
    eventually("shop's default account again", || async {
        client
            .get::<ServiceAccount>("shop", "default")
            .await
            .is_ok_and(|sa| sa.metadata.uid != before.metadata.uid)
    })
    .await;

    // A terminating namespace (deleted; its finalizer holds it, no namespace controller runs
    // here) does not get it back.
    client
        .delete::<Namespace>("", "shop", &DeleteOptions::default())
        .await
        .unwrap();
    let shop: Namespace = client.get("", "shop").await.unwrap();
    assert!(shop.metadata.deletion_timestamp.is_some());
    delete_default(&client, "shop").await;
    // Deleted after shop's, other's account comes back: the controller has seen both.
    delete_default(&client, "other").await;
    eventually("other's default account again", || {
        has_default(&client, "other")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert!(!has_default(&client, "shop").await);
    assert!(
        client
            .get::<ServiceAccount>("shop", "builder")
            .await
            .is_ok()
    );
    running.stop().await;
}
