//! The ServiceAccount admission plug-in through a registry with the recommended chain: pods
//! run as `default` unless they name an account, an account that does not exist is refused
//! by name, and the token volume is mounted unless the pod or its account says no.

use std::time::Duration;

use orchestra_api::admission::service_account::{TOKEN_MOUNT_PATH, api_access_volume};
use orchestra_api::admission::{Admission, AdmissionConfig};
use orchestra_api::resources::{Container, Namespace, Pod, ServiceAccount};
use orchestra_api::testing::pod;
use orchestra_api::{ObjectMeta, Registry};
use orchestra_store::MemStore;

fn registry(mount_tokens: bool) -> Registry {
    Registry::new(MemStore::new()).with_admission(Admission::recommended(AdmissionConfig {
        mount_service_account_tokens: mount_tokens,
        ..AdmissionConfig::default()
    }))
}

async fn account(registry: &Registry, name: &str, automount: Option<bool>) {
    registry
        .create(ServiceAccount {
            metadata: ObjectMeta::namespaced("shop", name),
            automount_service_account_token: automount,
        })
        .await
        .expect("service account");
}

async fn shop(mount_tokens: bool) -> Registry {
    let registry = registry(mount_tokens);
    registry
        .create(Namespace {
            metadata: ObjectMeta::named("shop"),
            ..Namespace::default()
        })
        .await
        .expect("namespace");
    registry
}

/// The token volume's name, if every container and init container mounts it read-only at
/// the token path.
fn token_volume(pod: &Pod) -> Option<String> {
    let volume = pod
        .spec
        .volumes
        .iter()
        .find(|v| v.name.starts_with("kube-api-access-"))?;
    let everyone_mounts = pod
        .spec
        .containers
        .iter()
        .chain(&pod.spec.init_containers)
        .all(|c| {
            c.volume_mounts
                .iter()
                .any(|m| m.name == volume.name && m.mount_path == TOKEN_MOUNT_PATH && m.read_only)
        });
    everyone_mounts.then(|| volume.name.clone())
}

#[tokio::test(start_paused = true)]
async fn a_pod_runs_as_default_and_mounts_its_token() {
    let registry = shop(true).await;
    account(&registry, "default", None).await;
    let mut web = pod("shop", "web", "web");
    web.spec.init_containers.push(Container {
        name: "setup".into(),
        image: "busybox".into(),
        ..Container::default()
    });
    let created = registry.create(web).await.expect("create");
    assert_eq!(created.spec.service_account_name, "default");
    let name = token_volume(&created).expect("token volume mounted everywhere");
    assert_eq!(name.len(), "kube-api-access-".len() + 5, "{name}");
    let volume = created
        .spec
        .volumes
        .iter()
        .find(|v| v.name == name)
        .unwrap();
    assert_eq!(*volume, api_access_volume(&name));

    // An update changes nothing (the spec's volumes are immutable anyway).
    let updated = registry.update(created.clone()).await.expect("update");
    assert_eq!(updated.spec.volumes, created.spec.volumes);
}

#[tokio::test(start_paused = true)]
async fn a_missing_account_is_refused_naming_the_field() {
    let registry = shop(true).await;
    let mut builder = pod("shop", "build", "build");
    builder.spec.service_account_name = "builder".into();
    let err = registry.create(builder.clone()).await.unwrap_err();
    assert_eq!(err.code(), 403, "{err}");
    let message = err.to_string();
    assert!(message.contains("spec.serviceAccountName"), "{message}");
    assert!(message.contains("shop/builder"), "{message}");
    assert!(registry.get::<Pod>("shop", "build").await.is_err());

    account(&registry, "builder", None).await;
    let created = registry.create(builder).await.expect("now it exists");
    assert_eq!(created.spec.service_account_name, "builder");
    assert!(token_volume(&created).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_pod_waits_a_little_for_the_default_account() {
    let registry = shop(true).await;
    // Without a default account (no controller made it), the pod is refused after the
    // reads.
    let err = registry
        .create(pod("shop", "early", "web"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403);
    assert!(err.to_string().contains("shop/default"), "{err}");

    // Made while the pod waits for it, as the ServiceAccount controller does just after the
    // namespace: the pod is admitted.
    let maker = registry.clone();
    let made = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        account(&maker, "default", None).await;
    });
    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("admitted once the account exists");
    made.await.unwrap();
    assert!(token_volume(&created).is_some());
}

#[tokio::test(start_paused = true)]
async fn automount_false_on_the_pod_or_the_account_mounts_nothing() {
    let registry = shop(true).await;
    account(&registry, "default", None).await;
    account(&registry, "quiet", Some(false)).await;

    let mut opted_out = pod("shop", "a", "a");
    opted_out.spec.automount_service_account_token = Some(false);
    let created = registry.create(opted_out).await.expect("create");
    assert!(created.spec.volumes.is_empty());
    assert!(created.spec.containers[0].volume_mounts.is_empty());

    let mut quiet = pod("shop", "b", "b");
    quiet.spec.service_account_name = "quiet".into();
    let created = registry.create(quiet.clone()).await.expect("create");
    assert!(created.spec.volumes.is_empty());

    // The pod's own setting wins over its account's.
    quiet.metadata.name = "c".into();
    quiet.spec.automount_service_account_token = Some(true);
    let created = registry.create(quiet).await.expect("create");
    assert!(token_volume(&created).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_server_without_tokens_still_names_and_checks_the_account() {
    let registry = shop(false).await;
    account(&registry, "default", None).await;
    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    assert_eq!(created.spec.service_account_name, "default");
    assert!(created.spec.volumes.is_empty());
    let mut builder = pod("shop", "build", "build");
    builder.spec.service_account_name = "builder".into();
    assert_eq!(registry.create(builder).await.unwrap_err().code(), 403);
}
