//! A running pod's ConfigMap, downward API and projected volumes follow their sources: the
//! agent rewrites them when a watched object changes or every `volume_refresh_interval`,
//! without restarting the container, while a `subPath` mount keeps what it had at the
//! container's start. Projected volumes gather several sources in one directory; a
//! `subPathExpr` is expanded from the container's variables. The FakeRuntime tests run in
//! paused time; the ProcessRuntime test runs a real shell that waits for the new content, with
//! bounded waits on observable state.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    ByteString, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container,
    ContainerStateWaiting, DownwardApiProjection, DownwardApiVolumeFile, DownwardApiVolumeSource,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector, Pod, PodSpec,
    ProjectedVolumeSource, Secret, SecretProjection, Volume, VolumeMount, VolumeProjection,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_node::testing::util::wait_for_log;
use orchestra_node::{ContainerStatus, ProcessRuntime, ProcessRuntimeConfig, RuntimeDriver};
use orchestra_store::MemStore;
use tokio::time::sleep;

const NODE: &str = "node-1";

fn app_config(content: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "app"),
        data: BTreeMap::from([("app.conf".into(), content.into())]),
        ..ConfigMap::default()
    }
}

fn mount(name: &str, path: &str, sub_path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: false,
        sub_path: sub_path.into(),
        ..VolumeMount::default()
    }
}

/// A pod mounting ConfigMap `app` whole at `/etc/app` and its `app.conf` alone (subPath) at
/// `/etc/app.conf`, and its own labels (downward API) at `/etc/info`.
fn pod(command: Vec<String>) -> Pod {
    let mut metadata = ObjectMeta::namespaced("shop", "web");
    metadata.labels = BTreeMap::from([("tier".into(), "1".into())]);
    Pod {
        metadata,
        spec: PodSpec {
            node_name: NODE.into(),
            enable_service_links: Some(false),
            volumes: vec![
                Volume {
                    name: "conf".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "app".into(),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "info".into(),
                    downward_api: Some(DownwardApiVolumeSource {
                        items: vec![DownwardApiVolumeFile {
                            path: "labels".into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.labels".into(),
                                ..ObjectFieldSelector::default()
                            }),
                            ..DownwardApiVolumeFile::default()
                        }],
                        default_mode: None,
                    }),
                    ..Volume::default()
                },
            ],
            containers: vec![Container {
                name: "main".into(),
                image: "app:1".into(),
                command,
                volume_mounts: vec![
                    mount("conf", "/etc/app", ""),
                    mount("conf", "/etc/app.conf", "app.conf"),
                    mount("info", "/etc/info", ""),
                ],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

fn agent_config(volumes: &Path, refresh: Duration) -> AgentConfig {
    let mut config = AgentConfig::new(NODE);
    config.volumes_dir = volumes.to_owned();
    config.volume_refresh_interval = refresh;
    config
}

/// The pod's container once the runtime has it.
async fn container_of<R: RuntimeDriver + ?Sized>(runtime: &R) -> ContainerStatus {
    for _ in 0..300 {
        if let Some(container) = runtime.list().await.unwrap().containers.into_iter().next() {
            return container;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("the pod's container never appeared");
}

fn host_path(container: &ContainerStatus, container_path: &str) -> PathBuf {
    container
        .config
        .mounts
        .iter()
        .find(|m| m.container_path == Path::new(container_path))
        .unwrap_or_else(|| panic!("no mount at {container_path}"))
        .host_path
        .clone()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Polls (one second at a time) until `path` reads `want`, for at most `limit`.
async fn wait_content(path: &Path, want: &str, limit: Duration) {
    let polls = limit.as_secs().max(1);
    for _ in 0..polls {
        if fs::read_to_string(path).is_ok_and(|c| c == want) {
            return;
        }
        sleep(Duration::from_secs(1)).await;
    }
    panic!(
        "{} never read {want:?} (it reads {:?})",
        path.display(),
        fs::read_to_string(path)
    );
}

#[tokio::test(start_paused = true)]
async fn config_map_and_downward_api_volumes_follow_their_sources_but_sub_paths_do_not() {
    let client = LocalClient::new(MemStore::new());
    client.create(&app_config("v1")).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let refresh = Duration::from_secs(30);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::new(
            client.clone(),
            runtime.clone(),
            agent_config(tmp.path(), refresh),
        )
        .run(async {
            let _ = stopped.await;
        }),
    );
    client.create(&pod(vec!["serve".into()])).await.unwrap();
    let container = container_of(&runtime).await;
    let (conf, sub, info) = (
        host_path(&container, "/etc/app"),
        host_path(&container, "/etc/app.conf"),
        host_path(&container, "/etc/info"),
    );
    assert_eq!(read(&conf.join("app.conf")), "v1");
    assert_eq!(read(&sub), "v1");
    assert_eq!(read(&info.join("labels")), "tier=\"1\"");
    let generation = fs::read_link(conf.join("..data")).unwrap();

    // The ConfigMap changes and gains a key; the pod's labels change.
    let mut app: ConfigMap = client.get("shop", "app").await.unwrap();
    app.data.insert("app.conf".into(), "v2".into());
    app.data.insert("extra".into(), "more".into());
    client.update(&app).await.unwrap();
    let mut web: Pod = client.get("shop", "web").await.unwrap();
    web.metadata.labels.insert("tier".into(), "2".into());
    client.update(&web).await.unwrap();

    // Within two refresh periods (paused time) both volumes have the new content.
    wait_content(&conf.join("app.conf"), "v2", refresh * 2).await;
    wait_content(&info.join("labels"), "tier=\"2\"", refresh * 2).await;
    assert_eq!(read(&conf.join("extra")), "more", "a new key appears");
    let link = fs::symlink_metadata(conf.join("extra")).unwrap();
    assert!(link.file_type().is_symlink(), "entries link through ..data");
    let swapped = fs::read_link(conf.join("..data")).unwrap();
    assert_ne!(swapped, generation, "a new generation");
    assert!(
        !conf.join(&generation).exists(),
        "the old generation is gone"
    );

    // The subPath mount keeps what the container started with; nothing restarted.
    assert_eq!(read(&sub), "v1");
    let now = container_of(&runtime).await;
    assert_eq!(now.id, container.id);
    assert_eq!(runtime.list().await.unwrap().containers.len(), 1);

    // A required ConfigMap that goes away leaves the files as they were.
    client
        .delete::<ConfigMap>("shop", "app", &DeleteOptions::default())
        .await
        .unwrap();
    sleep(refresh * 3).await;
    assert_eq!(read(&conf.join("app.conf")), "v2");

    let _ = stop.send(());
    agent.await.unwrap();
}

/// A process reads the volume through its root view: it sees the new content of the whole
/// volume, and the old content at the subPath.
#[tokio::test]
async fn a_process_sees_the_updated_config_map_but_not_at_its_sub_path() {
    let client = LocalClient::new(MemStore::new());
    client.create(&app_config("v1")).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut runtime_config = ProcessRuntimeConfig::new(tmp.path().join("runtime"));
    runtime_config.cgroup_root = None;
    let runtime = Arc::new(ProcessRuntime::new(runtime_config).await.unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::with_shared_runtime(
            client.clone(),
            runtime.clone(),
            agent_config(&tmp.path().join("volumes"), Duration::from_millis(200)),
        )
        .run(async {
            let _ = stopped.await;
        }),
    );
    let script = r#"echo "start=$(cat etc/app/app.conf)"; while [ "$(cat etc/app/app.conf)" = v1 ]; do sleep 0.1; done; echo "seen=$(cat etc/app/app.conf) sub=$(cat etc/app.conf)"; exec sleep 600"#;
    client
        .create(&pod(vec!["/bin/sh".into(), "-c".into(), script.into()]))
        .await
        .unwrap();
    let id = container_of(runtime.as_ref()).await.id;
    let log = wait_for_log(runtime.as_ref(), &id, "start=", Duration::from_secs(20)).await;
    assert!(log.contains("start=v1"), "{log}");

    let mut app: ConfigMap = client.get("shop", "app").await.unwrap();
    app.data.insert("app.conf".into(), "v2".into());
    client.update(&app).await.unwrap();
    let log = wait_for_log(runtime.as_ref(), &id, "seen=", Duration::from_secs(30)).await;
    assert!(log.contains("seen=v2 sub=v1"), "{log}");
    let status = runtime.container_status(&id).await.unwrap();
    assert_eq!(status.state, orchestra_node::ContainerState::Running);

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

fn labels_file() -> DownwardApiVolumeFile {
    DownwardApiVolumeFile {
        path: "labels".into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: "metadata.labels".into(),
            ..ObjectFieldSelector::default()
        }),
        ..DownwardApiVolumeFile::default()
    }
}

/// A pod with a projected volume (ConfigMap `app`'s `app.conf` as `conf/app.conf` mode 0600,
/// Secret `db` whole, its labels) at `/etc/all`, and an emptyDir mounted at `/logs` with
/// `subPathExpr: pods/$(POD_NAME)`, `POD_NAME` from `metadata.name` (or undefined).
fn projected_pod(name: &str, define_pod_name: bool) -> Pod {
    let mut pod = pod(vec!["serve".into()]);
    pod.metadata.name = name.into();
    pod.spec.volumes = vec![
        Volume {
            name: "all".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o440),
                sources: vec![
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "app".into(),
                            items: vec![KeyToPath {
                                key: "app.conf".into(),
                                path: "conf/app.conf".into(),
                                mode: Some(0o600),
                            }],
                            optional: None,
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: "db".into(),
                            ..SecretProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardApiProjection {
                            items: vec![labels_file()],
                        }),
                        ..VolumeProjection::default()
                    },
                ],
            }),
            ..Volume::default()
        },
        Volume {
            name: "logs".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let container = &mut pod.spec.containers[0];
    container.volume_mounts = vec![
        mount("all", "/etc/all", ""),
        VolumeMount {
            sub_path_expr: "pods/$(POD_NAME)".into(),
            ..mount("logs", "/logs", "")
        },
    ];
    if define_pod_name {
        container.env = vec![EnvVar {
            name: "POD_NAME".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
        }];
    }
    pod
}

/// The waiting state of pod `name`'s container once it is not `ContainerCreating`.
async fn waiting_of(client: &LocalClient, name: &str) -> ContainerStateWaiting {
    for _ in 0..300 {
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

#[tokio::test(start_paused = true)]
async fn projected_volumes_gather_sources_and_sub_path_expr_expands_the_environment() {
    use std::os::unix::fs::PermissionsExt;
    let client = LocalClient::new(MemStore::new());
    client.create(&app_config("v1")).await.unwrap();
    let db = Secret {
        metadata: ObjectMeta::namespaced("shop", "db"),
        data: BTreeMap::from([("password".into(), ByteString::from("s3cret"))]),
        ..Secret::default()
    };
    client.create(&db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let refresh = Duration::from_secs(30);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::new(
            client.clone(),
            runtime.clone(),
            agent_config(tmp.path(), refresh),
        )
        .run(async {
            let _ = stopped.await;
        }),
    );

    // Without POD_NAME the subPathExpr cannot be expanded: the container waits, told why.
    client.create(&projected_pod("bad", false)).await.unwrap();
    let waiting = waiting_of(&client, "bad").await;
    assert_eq!(waiting.reason, "CreateContainerConfigError");
    assert_eq!(
        waiting.message,
        "subPathExpr \"pods/$(POD_NAME)\" of volumeMount \"logs\" of container \"main\": missing value for POD_NAME"
    );
    client
        .delete::<Pod>("shop", "bad", &DeleteOptions::default())
        .await
        .unwrap();
    for _ in 0..300 {
        if runtime.list().await.unwrap().sandboxes.is_empty() {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }

    client.create(&projected_pod("web", true)).await.unwrap();
    let container = container_of(&runtime).await;
    let all = host_path(&container, "/etc/all");
    assert_eq!(read(&all.join("conf/app.conf")), "v1");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&all.join("conf/app.conf")), 0o600);
    assert_eq!(read(&all.join("password")), "s3cret");
    assert_eq!(mode(&all.join("password")), 0o440);
    assert_eq!(read(&all.join("labels")), "tier=\"1\"");
    let logs = host_path(&container, "/logs");
    assert!(logs.ends_with("logs/pods/web"), "{}", logs.display());
    assert!(
        logs.is_dir(),
        "the expanded subPath of an emptyDir is created"
    );

    // The projected volume is refreshed like the others.
    let mut db: Secret = client.get("shop", "db").await.unwrap();
    db.data
        .insert("password".into(), ByteString::from("rotated"));
    client.update(&db).await.unwrap();
    wait_content(&all.join("password"), "rotated", refresh * 2).await;

    let _ = stop.send(());
    agent.await.unwrap();
}
