//! The garbage collector and the Namespace controller over LocalClient in paused time:
//! cascading deletes leave nothing behind, objects with a living owner stay, and a deleted
//! namespace is emptied before it goes.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use orchestra_api::registry::{DeleteOptions, ListOptions, PropagationPolicy};
use orchestra_api::resources::{
    ConfigMap, Deployment, Namespace, Pod, ReplicaSet, Role, Secret, Service, ServicePort,
};
use orchestra_api::{
    Client, LabelSelector, LocalClient, ObjectMeta, OwnerReference, Resource, testing,
};
use orchestra_controller::controllers::garbage_collector::add_garbage_collectors;
use orchestra_controller::controllers::namespace::NAMESPACE_FINALIZER;
use orchestra_controller::controllers::{
    DeploymentController, NamespaceController, ReplicaSetController,
};
use orchestra_controller::{ControllerSet, SharedInformers};
use orchestra_store::MemStore;
use support::eventually_within;
use tokio::sync::oneshot;

fn deployment(namespace: &str, replicas: i32) -> Deployment {
    let mut d = Deployment {
        metadata: ObjectMeta::namespaced(namespace, "web"),
        ..Deployment::default()
    };
    d.spec.replicas = Some(replicas);
    d.spec.selector = LabelSelector::match_labels([("app", "web")]);
    d.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    d.spec.template.spec = testing::pod(namespace, "x", "web").spec;
    d
}

fn service(namespace: &str, name: &str) -> Service {
    let mut svc = Service {
        metadata: ObjectMeta::namespaced(namespace, name),
        ..Service::default()
    };
    svc.spec.ports = vec![ServicePort {
        port: 80,
        ..ServicePort::default()
    }];
    svc
}

fn owner_ref<K: Resource>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: owner.meta().name.clone(),
        uid: owner.meta().uid.clone(),
        controller: None,
        block_owner_deletion: None,
    }
}

async fn count<K: Resource>(client: &LocalClient, namespace: &str) -> usize {
    client
        .list::<K>(Some(namespace), &ListOptions::default())
        .await
        .unwrap()
        .items
        .len()
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn run(set: ControllerSet) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(set.run(async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

fn all_controllers(informers: &SharedInformers<LocalClient>) -> ControllerSet {
    let mut set = ControllerSet::new();
    set.add(DeploymentController::controller(informers));
    set.add(ReplicaSetController::controller(informers));
    set.add(NamespaceController::controller(informers));
    add_garbage_collectors(&mut set, informers);
    set
}

#[tokio::test(start_paused = true)]
async fn deleting_a_deployment_deletes_its_replica_sets_and_pods() {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let running = run(all_controllers(&informers));
    client.create(&deployment("ns", 3)).await.unwrap();
    eventually_within("three pods", Duration::from_secs(10), || async {
        count::<Pod>(&client, "ns").await == 3
    })
    .await;
    client
        .delete::<Deployment>("ns", "web", &DeleteOptions::default())
        .await
        .unwrap();
    eventually_within("nothing left", Duration::from_secs(10), || async {
        count::<ReplicaSet>(&client, "ns").await == 0 && count::<Pod>(&client, "ns").await == 0
    })
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_object_with_a_living_owner_stays_and_one_whose_owners_all_went_goes() {
    let client = LocalClient::new(MemStore::new());
    let svc = |name: &str| service("ns", name);
    let a = client.create(&svc("a")).await.unwrap();
    let b = client.create(&svc("b")).await.unwrap();
    let mut both = testing::pod("ns", "both", "x");
    both.metadata.owner_references = vec![owner_ref(&a), owner_ref(&b)];
    client.create(&both).await.unwrap();
    let mut only_a = testing::pod("ns", "only-a", "x");
    only_a.metadata.owner_references = vec![owner_ref(&a)];
    client.create(&only_a).await.unwrap();
    let mut unowned = testing::pod("ns", "unowned", "x");
    unowned.metadata.owner_references = Vec::new();
    client.create(&unowned).await.unwrap();

    let informers = SharedInformers::new(client.clone());
    let running = run(all_controllers(&informers));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count::<Pod>(&client, "ns").await, 3, "every owner is alive");

    client
        .delete::<Service>("ns", "a", &DeleteOptions::default())
        .await
        .unwrap();
    // A new "a" is another object (another uid): it does not keep only-a alive.
    client.create(&svc("a")).await.unwrap();
    eventually_within("only-a is collected", Duration::from_secs(10), || async {
        client.get::<Pod>("ns", "only-a").await.is_err()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        client.get::<Pod>("ns", "both").await.is_ok(),
        "b still owns it"
    );
    assert!(client.get::<Pod>("ns", "unowned").await.is_ok());

    client
        .delete::<Service>("ns", "b", &DeleteOptions::default())
        .await
        .unwrap();
    eventually_within("both is collected", Duration::from_secs(10), || async {
        client.get::<Pod>("ns", "both").await.is_err()
    })
    .await;
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_namespace_is_emptied_then_removed() {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let running = run(all_controllers(&informers));
    client
        .create(&Namespace {
            metadata: ObjectMeta::named("shop"),
            ..Namespace::default()
        })
        .await
        .unwrap();
    // The API holds every namespace with the `kubernetes` finalizer in its spec.
    let ns: Namespace = client.get("", "shop").await.unwrap();
    assert_eq!(ns.spec.unwrap().finalizers, [NAMESPACE_FINALIZER]);
    client.create(&deployment("shop", 2)).await.unwrap();
    client.create(&service("shop", "web")).await.unwrap();
    // Kinds no controller here owns are emptied too.
    let config = ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "settings"),
        ..ConfigMap::default()
    };
    client.create(&config).await.unwrap();
    let secret = Secret {
        metadata: ObjectMeta::namespaced("shop", "token"),
        ..Secret::default()
    };
    client.create(&secret).await.unwrap();
    let role = Role {
        metadata: ObjectMeta::namespaced("shop", "reader"),
        ..Role::default()
    };
    client.create(&role).await.unwrap();
    // A pod with a finalizer of its own holds the namespace until that is removed.
    let mut held = testing::pod("shop", "held", "held");
    held.metadata.finalizers = vec!["example.com/hold".into()];
    client.create(&held).await.unwrap();
    // Another namespace is left alone.
    client.create(&deployment("other", 1)).await.unwrap();
    eventually_within("pods run", Duration::from_secs(10), || async {
        count::<Pod>(&client, "shop").await == 3 && count::<Pod>(&client, "other").await == 1
    })
    .await;

    let outcome = client
        .delete::<Namespace>("", "shop", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!outcome.is_deleted(), "held by its finalizer");
    eventually_within(
        "emptied but for the held pod",
        Duration::from_secs(10),
        || async {
            count::<Deployment>(&client, "shop").await == 0
                && count::<ReplicaSet>(&client, "shop").await == 0
                && count::<Service>(&client, "shop").await == 0
                && count::<ConfigMap>(&client, "shop").await == 0
                && count::<Secret>(&client, "shop").await == 0
                && count::<Role>(&client, "shop").await == 0
                && count::<Pod>(&client, "shop").await == 1
        },
    )
    .await;
    let ns: Namespace = client.get("", "shop").await.unwrap();
    assert_eq!(
        ns.status.and_then(|s| s.phase),
        Some(orchestra_api::resources::NamespacePhase::Terminating)
    );

    let mut held: Pod = client.get("shop", "held").await.unwrap();
    held.metadata.finalizers.clear();
    client.update(&held).await.unwrap();
    eventually_within("the namespace is gone", Duration::from_secs(60), || async {
        client.get::<Namespace>("", "shop").await.is_err()
    })
    .await;
    assert_eq!(count::<Pod>(&client, "shop").await, 0);
    assert_eq!(count::<Deployment>(&client, "other").await, 1);
    assert_eq!(count::<Pod>(&client, "other").await, 1);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_orphaning_delete_leaves_the_dependents_without_the_owner() {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let running = run(all_controllers(&informers));
    client.create(&deployment("ns", 2)).await.unwrap();
    eventually_within("two pods", Duration::from_secs(10), || async {
        count::<Pod>(&client, "ns").await == 2
    })
    .await;
    let options = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteOptions::default()
    };
    let outcome = client
        .delete::<Deployment>("ns", "web", &options)
        .await
        .unwrap();
    assert!(!outcome.is_deleted(), "held by the orphan finalizer");
    eventually_within(
        "the deployment is gone",
        Duration::from_secs(10),
        || async { client.get::<Deployment>("ns", "web").await.is_err() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let replica_sets = client
        .list::<ReplicaSet>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items;
    assert_eq!(replica_sets.len(), 1);
    assert!(replica_sets[0].metadata.owner_references.is_empty());
    assert_eq!(count::<Pod>(&client, "ns").await, 2);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_foreground_delete_removes_the_dependents_before_the_owner() {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let running = run(all_controllers(&informers));
    client.create(&deployment("ns", 2)).await.unwrap();
    eventually_within("two pods", Duration::from_secs(10), || async {
        count::<Pod>(&client, "ns").await == 2
    })
    .await;
    let options = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteOptions::default()
    };
    client
        .delete::<Deployment>("ns", "web", &options)
        .await
        .unwrap();
    eventually_within("everything is gone", Duration::from_secs(10), || async {
        let deployment_gone = client.get::<Deployment>("ns", "web").await.is_err();
        let pods = count::<Pod>(&client, "ns").await;
        let replica_sets = count::<ReplicaSet>(&client, "ns").await;
        assert!(
            !deployment_gone || (pods == 0 && replica_sets == 0),
            "the owner went before its dependents ({replica_sets} replica sets, {pods} pods)"
        );
        deployment_gone
    })
    .await;
    running.stop().await;
}
