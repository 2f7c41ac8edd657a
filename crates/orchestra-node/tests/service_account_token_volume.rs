//! A projected `serviceAccountToken` source: the agent has a token issued for the pod's
//! service account, bound to the pod, with the source's audience, writes it into the volume,
//! and replaces it once 80% of its lifetime has passed. The ServiceAccount admission's
//! `kube-api-access-*` volume gets `ca.crt` from the `kube-root-ca.crt` ConfigMap (which the
//! root CA publisher keeps) at /var/run/secrets/kubernetes.io/serviceaccount/ca.crt, and
//! follows it. FakeRuntime, paused time.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orchestra_api::auth::token::{ServiceAccountTokens, SigningKey, service_account_user};
use orchestra_api::resources::{
    ConfigMap, ContainerStateWaiting, Pod, ProjectedVolumeSource, ServiceAccount,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::agent::AgentConfig;
use orchestra_node::fake::FakeRuntime;
use orchestra_node::{ContainerStatus, RuntimeDriver};
use orchestra_store::MemStore;
use tokio::time::sleep;

mod fake_agent;

use fake_agent::{NODE, start_agent_with};

fn pod(account: &str) -> Pod {
    let mut pod = orchestra_api::testing::pod("shop", "web", "web");
    pod.spec.node_name = NODE.into();
    pod.spec.service_account_name = account.into();
    pod.spec.enable_service_links = Some(false);
    pod.spec.volumes = vec![Volume {
        name: "identity".into(),
        projected: Some(ProjectedVolumeSource {
            sources: vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: "vault".into(),
                    expiration_seconds: Some(600),
                    path: "token".into(),
                }),
                ..VolumeProjection::default()
            }],
            default_mode: None,
        }),
        ..Volume::default()
    }];
    pod.spec.containers[0].volume_mounts = vec![VolumeMount {
        name: "identity".into(),
        mount_path: "/var/run/secrets/tokens".into(),
        ..VolumeMount::default()
    }];
    pod
}

async fn cluster() -> (LocalClient, Arc<ServiceAccountTokens>) {
    let registry = orchestra_api::Registry::new(MemStore::new());
    let tokens = Arc::new(ServiceAccountTokens::new(
        SigningKey::generate().unwrap(),
        registry.clone(),
    ));
    let client = LocalClient::from_registry(registry).with_token_issuer(tokens.clone());
    client
        .create(&ServiceAccount {
            metadata: ObjectMeta::namespaced("shop", "web"),
            ..ServiceAccount::default()
        })
        .await
        .unwrap();
    (client, tokens)
}

fn agent_config(volumes: &Path, refresh: Duration) -> AgentConfig {
    let mut config = AgentConfig::new(NODE);
    config.volumes_dir = volumes.to_owned();
    config.volume_refresh_interval = refresh;
    config
}

/// The pod's container once the runtime has it.
async fn container_of(runtime: &FakeRuntime) -> ContainerStatus {
    for _ in 0..300 {
        if let Some(container) = runtime.list().await.unwrap().containers.into_iter().next() {
            return container;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("the pod's container never appeared");
}

fn token_file(container: &ContainerStatus) -> PathBuf {
    container
        .config
        .mounts
        .iter()
        .find(|m| m.container_path == Path::new("/var/run/secrets/tokens"))
        .expect("the token volume is mounted")
        .host_path
        .join("token")
}

#[tokio::test(start_paused = true)]
async fn the_token_file_appears_and_is_renewed_at_80_percent_of_its_life() {
    let (client, tokens) = cluster().await;
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let refresh = Duration::from_secs(30);
    let agent = start_agent_with(&client, &runtime, agent_config(tmp.path(), refresh));
    client.create(&pod("web")).await.unwrap();
    let container = container_of(&runtime).await;
    let path = token_file(&container);
    let first = fs::read_to_string(&path).unwrap();
    let vault = vec!["vault".to_owned()];
    let user = tokens
        .authenticate_at(&first, &vault, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(user, service_account_user("shop", "web"));
    // Bound to the pod, for the source's audience only.
    assert!(
        tokens
            .authenticate_at(&first, tokens.api_audiences(), SystemTime::now())
            .await
            .is_err()
    );

    // 600 s tokens are renewed after 480 s: well before, the file is unchanged.
    sleep(Duration::from_secs(400)).await;
    assert_eq!(fs::read_to_string(&path).unwrap(), first);
    // Within a refresh period after 480 s it holds a new, valid token.
    sleep(Duration::from_secs(80) + refresh * 2).await;
    let second = fs::read_to_string(&path).unwrap();
    assert_ne!(second, first, "the token was renewed");
    tokens
        .authenticate_at(&second, &vault, SystemTime::now())
        .await
        .unwrap();
    // The container kept running through it.
    assert_eq!(container_of(&runtime).await.id, container.id);

    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_whose_account_does_not_exist_waits_in_container_creating() {
    let (client, _) = cluster().await;
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let agent = start_agent_with(
        &client,
        &runtime,
        agent_config(tmp.path(), Duration::from_secs(30)),
    );
    client.create(&pod("nobody")).await.unwrap();
    let mut waiting: Option<ContainerStateWaiting> = None;
    for _ in 0..100 {
        let pod: Pod = client.get("shop", "web").await.unwrap();
        waiting = pod
            .status
            .and_then(|s| s.container_statuses.into_iter().next())
            .and_then(|c| c.state)
            .and_then(|s| s.waiting);
        if waiting.as_ref().is_some_and(|w| !w.message.is_empty()) {
            break;
        }
        sleep(Duration::from_secs(1)).await;
    }
    let waiting = waiting.expect("the container waits");
    let message = waiting.message;
    assert!(
        message.contains("shop/nobody") && message.contains("not found"),
        "{message}"
    );
    assert!(runtime.list().await.unwrap().containers.is_empty());
    agent.stop().await;
}

/// The pod as the ServiceAccount admission makes it: the `kube-api-access-*` volume (token,
/// `ca.crt` from `kube-root-ca.crt`, namespace) mounted at the well-known path.
fn pod_with_api_access() -> Pod {
    use orchestra_api::admission::service_account::{TOKEN_MOUNT_PATH, api_access_volume};
    let mut pod = pod("web");
    pod.spec.volumes = vec![api_access_volume("kube-api-access-x7k2p")];
    pod.spec.containers[0].volume_mounts = vec![VolumeMount {
        name: "kube-api-access-x7k2p".into(),
        mount_path: TOKEN_MOUNT_PATH.into(),
        read_only: true,
        ..VolumeMount::default()
    }];
    pod
}

/// Where the API access volume of `container` is on the node.
fn api_access_dir(container: &ContainerStatus) -> PathBuf {
    container
        .config
        .mounts
        .iter()
        .find(|m| m.container_path == Path::new("/var/run/secrets/kubernetes.io/serviceaccount"))
        .expect("the API access volume is mounted at the well-known path")
        .host_path
        .clone()
}

fn root_ca(pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "kube-root-ca.crt"),
        data: std::collections::BTreeMap::from([("ca.crt".to_owned(), pem.to_owned())]),
        ..ConfigMap::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_api_access_volume_holds_the_published_ca_and_follows_it() {
    let (client, tokens) = cluster().await;
    let first_ca = "-----BEGIN CERTIFICATE-----\nMIIBfirst\n-----END CERTIFICATE-----\n";
    client.create(&root_ca(first_ca)).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let refresh = Duration::from_secs(30);
    let agent = start_agent_with(&client, &runtime, agent_config(tmp.path(), refresh));
    client.create(&pod_with_api_access()).await.unwrap();
    let container = container_of(&runtime).await;
    let dir = api_access_dir(&container);
    assert_eq!(fs::read_to_string(dir.join("ca.crt")).unwrap(), first_ca);
    assert_eq!(fs::read_to_string(dir.join("namespace")).unwrap(), "shop");
    let token = fs::read_to_string(dir.join("token")).unwrap();
    let user = tokens
        .authenticate_at(&token, tokens.api_audiences(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(user, service_account_user("shop", "web"));

    // The published CA changes (a new bundle): the file follows within a refresh period or two.
    let second_ca = "-----BEGIN CERTIFICATE-----\nMIIBsecond\n-----END CERTIFICATE-----\n";
    let mut map: ConfigMap = client.get("shop", "kube-root-ca.crt").await.unwrap();
    map.data.insert("ca.crt".into(), second_ca.into());
    client.update(&map).await.unwrap();
    sleep(refresh * 3).await;
    assert_eq!(fs::read_to_string(dir.join("ca.crt")).unwrap(), second_ca);

    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_published_ca_the_pod_runs_without_ca_crt() {
    let (client, _) = cluster().await;
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let agent = start_agent_with(
        &client,
        &runtime,
        agent_config(tmp.path(), Duration::from_secs(30)),
    );
    client.create(&pod_with_api_access()).await.unwrap();
    let container = container_of(&runtime).await;
    let dir = api_access_dir(&container);
    assert!(dir.join("token").exists());
    assert!(!dir.join("ca.crt").exists(), "the CA source is optional");
    agent.stop().await;
}
