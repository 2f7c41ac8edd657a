//! ConfigMaps and Secrets reach containers: as variables (`valueFrom`, `envFrom`) and as
//! volume files. A missing Secret holds the container in `CreateContainerConfigError` until
//! it is created. FakeRuntime tests run in paused time; the ProcessRuntime test runs a real
//! shell in real time, with bounded waits on observable state.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    ByteString, ConfigMap, Container, ContainerStateWaiting, EnvFromRef, EnvFromSource, EnvVar,
    EnvVarSource, KeySelector, KeyToPath, Pod, PodPhase, PodSpec, Secret, SecretVolumeSource,
    Volume, VolumeMount,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_node::testing::util::wait_for_log;
use orchestra_node::{
    ContainerId, ContainerStatus, ProcessRuntime, ProcessRuntimeConfig, RuntimeDriver,
};
use orchestra_store::MemStore;
use tokio::time::sleep;

const NODE: &str = "node-1";

fn secret(name: &str, entries: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta::namespaced("shop", name),
        data: entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString::from(*v)))
            .collect(),
        ..Secret::default()
    }
}

fn settings() -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "settings"),
        data: BTreeMap::from([
            ("LOG_LEVEL".into(), "debug".into()),
            ("1ST".into(), "skipped: not a variable name".into()),
        ]),
        ..ConfigMap::default()
    }
}

fn secret_key(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(KeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// A pod whose container reads `settings` (envFrom), secret `db` (a key and a volume with
/// the password at `pw` with mode 0400).
fn pod(name: &str, command: Vec<String>) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("shop", name),
        spec: PodSpec {
            node_name: NODE.into(),
            enable_service_links: Some(false),
            volumes: vec![Volume {
                name: "creds".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: "db".into(),
                    items: vec![KeyToPath {
                        key: "password".into(),
                        path: "pw".into(),
                        mode: Some(0o400),
                    }],
                    default_mode: None,
                    optional: None,
                }),
                ..Volume::default()
            }],
            containers: vec![Container {
                name: "main".into(),
                image: "app:1".into(),
                command,
                env_from: vec![EnvFromSource {
                    prefix: String::new(),
                    config_map_ref: Some(EnvFromRef {
                        name: "settings".into(),
                        optional: None,
                    }),
                    secret_ref: None,
                }],
                env: vec![
                    secret_key("PASSWORD", "db", "password"),
                    EnvVar::new("DSN", "user:$(PASSWORD)@db"),
                ],
                volume_mounts: vec![VolumeMount {
                    name: "creds".into(),
                    mount_path: "/etc/creds".into(),
                    read_only: false,
                    sub_path: String::new(),
                    ..VolumeMount::default()
                }],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// The agent's runtime configuration of `pod`'s container, once it exists.
async fn container_of<R: RuntimeDriver>(runtime: &R, pod: &Pod) -> ContainerStatus {
    for _ in 0..200 {
        let state = runtime.list().await.unwrap();
        let sandbox = state
            .sandboxes
            .iter()
            .find(|s| s.config.name == pod.metadata.name);
        if let Some(sandbox) = sandbox
            && let Some(container) = state.containers.iter().find(|c| c.sandbox == sandbox.id)
        {
            return container.clone();
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("no container for {}", pod.metadata.name);
}

fn value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn agent_config(volumes: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(NODE);
    config.volumes_dir = volumes.to_owned();
    config
}

#[tokio::test(start_paused = true)]
async fn containers_get_config_map_and_secret_values_as_env_and_files() {
    let client = LocalClient::new(MemStore::new());
    client.create(&settings()).await.unwrap();
    client
        .create(&secret("db", &[("password", "s3cret"), ("user", "admin")]))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::new(client.clone(), runtime.clone(), agent_config(tmp.path())).run(async {
            let _ = stopped.await;
        }),
    );

    let web = client
        .create(&pod("web", vec!["serve".into(), "--dsn=$(DSN)".into()]))
        .await
        .unwrap();
    let container = container_of(&runtime, &web).await;
    let config = &container.config;
    assert_eq!(value(&config.env, "LOG_LEVEL"), Some("debug"));
    assert_eq!(value(&config.env, "PASSWORD"), Some("s3cret"));
    assert_eq!(value(&config.env, "DSN"), Some("user:s3cret@db"));
    assert_eq!(value(&config.env, "1ST"), None, "invalid names are skipped");
    assert_eq!(config.command, ["serve", "--dsn=user:s3cret@db"]);

    let [mount] = config.mounts.as_slice() else {
        panic!("one mount: {:?}", config.mounts);
    };
    assert_eq!(mount.container_path, Path::new("/etc/creds"));
    assert!(mount.read_only, "secret volumes are read-only");
    assert!(
        mount
            .host_path
            .starts_with(tmp.path().join(&web.metadata.uid))
    );
    let file = mount.host_path.join("pw");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "s3cret");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    assert!(
        !mount.host_path.join("user").exists(),
        "only the listed item"
    );

    // Deleting the pod removes its volume directory.
    client
        .delete::<Pod>("shop", "web", &DeleteOptions::default())
        .await
        .unwrap();
    let pod_dir = tmp.path().join(&web.metadata.uid);
    for _ in 0..100 {
        if !pod_dir.exists() {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(!pod_dir.exists(), "the pod's volumes are removed with it");

    let _ = stop.send(());
    agent.await.unwrap();
}

/// The waiting state of `name`'s first container, once the agent has written one.
async fn waiting_of(client: &LocalClient, name: &str) -> ContainerStateWaiting {
    for _ in 0..200 {
        let pod: Pod = client.get("shop", name).await.unwrap();
        let waiting = pod
            .status
            .and_then(|s| s.container_statuses.into_iter().next())
            .and_then(|c| c.state)
            .and_then(|s| s.waiting);
        if let Some(waiting) = waiting.filter(|w| w.reason != "ContainerCreating") {
            return waiting;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never showed a waiting reason");
}

async fn wait_running(client: &LocalClient, name: &str) {
    for _ in 0..600 {
        let pod: Pod = client.get("shop", name).await.unwrap();
        if pod.status.and_then(|s| s.phase) == Some(PodPhase::Running) {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never ran");
}

#[tokio::test(start_paused = true)]
async fn a_missing_secret_holds_the_container_until_it_is_created() {
    let client = LocalClient::new(MemStore::new());
    client.create(&settings()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::new(client.clone(), runtime.clone(), agent_config(tmp.path())).run(async {
            let _ = stopped.await;
        }),
    );

    client
        .create(&pod("web", vec!["serve".into()]))
        .await
        .unwrap();
    let waiting = waiting_of(&client, "web").await;
    assert_eq!(waiting.reason, "CreateContainerConfigError");
    assert_eq!(waiting.message, "secret \"db\" not found");
    assert!(runtime.list().await.unwrap().containers.is_empty());

    // A Secret without the key: still waiting, now naming the key.
    client
        .create(&secret("db", &[("user", "admin")]))
        .await
        .unwrap();
    let mut message = String::new();
    for _ in 0..300 {
        message = waiting_of(&client, "web").await.message;
        if message.contains("couldn't find key") {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(message, "couldn't find key password in Secret shop/db");

    let mut db: Secret = client.get("shop", "db").await.unwrap();
    db.data
        .insert("password".into(), ByteString::from("s3cret"));
    client.update(&db).await.unwrap();
    wait_running(&client, "web").await;
    let web: Pod = client.get("shop", "web").await.unwrap();
    let container = container_of(&runtime, &web).await;
    assert_eq!(value(&container.config.env, "PASSWORD"), Some("s3cret"));

    let _ = stop.send(());
    agent.await.unwrap();
}

/// A process has no mounts: it reads the volume through its root view (`ORCHESTRA_ROOT`,
/// also its working directory) and the secret through its environment.
#[tokio::test]
async fn a_process_reads_its_secret_from_env_and_from_the_mounted_file() {
    let client = LocalClient::new(MemStore::new());
    client.create(&settings()).await.unwrap();
    client
        .create(&secret("db", &[("password", "s3cret")]))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut runtime_config = ProcessRuntimeConfig::new(tmp.path().join("runtime"));
    runtime_config.cgroup_root = None;
    let runtime = std::sync::Arc::new(ProcessRuntime::new(runtime_config).await.unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::with_shared_runtime(
            client.clone(),
            runtime.clone(),
            agent_config(&tmp.path().join("volumes")),
        )
        .run(async {
            let _ = stopped.await;
        }),
    );
    let script = r#"echo "env=$PASSWORD"; echo "file=$(cat "$ORCHESTRA_ROOT/etc/creds/pw")"; echo "relative=$(cat etc/creds/pw)"; echo done; exec sleep 600"#;
    let web = client
        .create(&pod(
            "web",
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        ))
        .await
        .unwrap();
    let container = container_of(runtime.as_ref(), &web).await;
    let id: ContainerId = container.id;
    let log = wait_for_log(runtime.as_ref(), &id, "done", Duration::from_secs(20)).await;
    assert!(log.contains("env=s3cret"), "{log}");
    assert!(log.contains("file=s3cret"), "{log}");
    assert!(log.contains("relative=s3cret"), "{log}");

    client
        .delete::<Pod>("shop", "web", &DeleteOptions::default())
        .await
        .unwrap();
    for _ in 0..200 {
        if runtime.list().await.unwrap().containers.is_empty() {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    agent.await.unwrap();
}
