//! The agent follows the ConfigMaps its pods' volumes project with one watch per object
//! (kubelet's `Watch` strategy), through a client that counts the ConfigMap calls: an edit
//! reaches the volume without waiting for a refresh period, the periods read nothing from the
//! API, the watch ends with the last pod using the object, and an immutable object is read
//! once and never watched. FakeRuntime, paused time. The last test runs the agent as its
//! node's identity under node restriction: a named list+watch of what its pods reference is
//! allowed, of anything else Forbidden.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::auth::client::AuthorizedClient;
use orchestra_api::auth::node::NodeAuthorizer;
use orchestra_api::auth::{GROUP_AUTHENTICATED, GROUP_NODES, UserInfo};
use orchestra_api::registry::{DeleteOptions, ListOptions, WatchOptions};
use orchestra_api::resources::{
    ConfigMap, ConfigMapVolumeSource, Container, Pod, PodSpec, Secret, SecretVolumeSource, Volume,
    VolumeMount,
};
use orchestra_api::testing::intercept::{Call, Intercept, Intercepted};
use orchestra_api::{ApiError, Client, FieldSelector, LocalClient, ObjectMeta, Resource};
use orchestra_node::RuntimeDriver;
use orchestra_node::agent::objects::{Kind, ObjectCache};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

const NODE: &str = "node-1";

/// The ConfigMap calls the agent made, by kind of call (`get`, `list`, `watch`).
#[derive(Clone, Default)]
struct ConfigMapCalls(Arc<Mutex<BTreeMap<&'static str, u32>>>);

impl ConfigMapCalls {
    fn count(&self, call: &str) -> u32 {
        self.0.lock().unwrap().get(call).copied().unwrap_or(0)
    }

    /// The reads: gets and lists.
    fn reads(&self) -> u32 {
        self.count("get") + self.count("list")
    }
}

#[async_trait]
impl Intercept<LocalClient> for ConfigMapCalls {
    async fn before(&self, _: &LocalClient, call: Call<'_>) -> Result<(), ApiError> {
        if call.kind() == ConfigMap::KIND {
            let name = match call {
                Call::Get { .. } => "get",
                Call::List { .. } => "list",
                Call::Watch { .. } => "watch",
                _ => "write",
            };
            *self.0.lock().unwrap().entry(name).or_default() += 1;
        }
        Ok(())
    }
}

/// An agent over a counting client.
struct Setup {
    /// The uncounted client (the test's own calls).
    client: LocalClient,
    calls: ConfigMapCalls,
    runtime: FakeRuntime,
    objects: ObjectCache,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _volumes: tempfile::TempDir,
}

/// Starts an agent whose periodic refresh is `refresh`.
fn start(refresh: Duration) -> Setup {
    let client = LocalClient::new(MemStore::new());
    let calls = ConfigMapCalls::default();
    let counted = Intercepted::new(client.clone(), calls.clone());
    let volumes = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(NODE);
    config.volumes_dir = volumes.path().to_owned();
    config.volume_refresh_interval = refresh;
    let objects = config.objects.clone();
    let runtime = FakeRuntime::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(Agent::new(counted, runtime.clone(), config).run(async {
        let _ = stopped.await;
    }));
    Setup {
        client,
        calls,
        runtime,
        objects,
        stop,
        task,
        _volumes: volumes,
    }
}

impl Setup {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn app_config(content: &str, immutable: bool) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "app"),
        data: BTreeMap::from([("app.conf".into(), content.into())]),
        immutable: immutable.then_some(true),
        ..ConfigMap::default()
    }
}

/// A pod mounting ConfigMap `app` at `/etc/app`.
fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("shop", name),
        spec: PodSpec {
            node_name: NODE.into(),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(1),
            volumes: vec![Volume {
                name: "conf".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "app".into(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }],
            containers: vec![Container {
                name: "main".into(),
                image: "app:1".into(),
                volume_mounts: vec![VolumeMount {
                    name: "conf".into(),
                    mount_path: "/etc/app".into(),
                    ..VolumeMount::default()
                }],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// Polls (every 100 ms of paused time) until `check` holds, for at most `limit`.
async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Where pod `name`'s volume `conf` is on the host, once its container exists.
async fn conf_dir(setup: &Setup, name: &str) -> PathBuf {
    let uid = setup
        .client
        .get::<Pod>("shop", name)
        .await
        .unwrap()
        .metadata
        .uid;
    let mut found = None;
    wait_until(
        &format!("the container of {name}"),
        Duration::from_secs(30),
        async || {
            let containers = setup.runtime.list().await.unwrap().containers;
            found = containers
                .into_iter()
                .find(|c| c.config.labels.values().any(|v| *v == uid))
                .and_then(|c| c.config.mounts.first().map(|m| m.host_path.clone()));
            found.is_some()
        },
    )
    .await;
    found.unwrap()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn edit(client: &LocalClient, content: &str) {
    let mut app: ConfigMap = client.get("shop", "app").await.unwrap();
    app.data.insert("app.conf".into(), content.into());
    client.update(&app).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_edit_reaches_the_volume_at_once_and_periods_read_nothing() {
    let hour = Duration::from_secs(3600);
    let setup = start(hour);
    setup.client.create(&app_config("v1", false)).await.unwrap();
    setup.client.create(&pod("web")).await.unwrap();
    let conf = conf_dir(&setup, "web").await.join("app.conf");
    assert_eq!(read(&conf), "v1");
    wait_until("the watch", Duration::from_secs(5), async || {
        setup.calls.count("watch") > 0
    })
    .await;

    // The refresh period is an hour: the edit arrives through the watch, within a second.
    edit(&setup.client, "v2").await;
    wait_until("v2 in the volume", Duration::from_secs(1), async || {
        fs::read_to_string(&conf).is_ok_and(|c| c == "v2")
    })
    .await;
    let reads = setup.calls.reads();

    // Many refresh periods later (and another edit), the API was not read again: the cache
    // serves the periodic refresh, and the watch brings the change.
    sleep(hour * 10).await;
    edit(&setup.client, "v3").await;
    wait_until("v3 in the volume", Duration::from_secs(1), async || {
        fs::read_to_string(&conf).is_ok_and(|c| c == "v3")
    })
    .await;
    assert_eq!(setup.calls.reads(), reads, "reads grew with the periods");
    setup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_watch_ends_with_the_last_pod_using_the_object() {
    let setup = start(Duration::from_secs(60));
    setup.client.create(&app_config("v1", false)).await.unwrap();
    for name in ["web", "api"] {
        setup.client.create(&pod(name)).await.unwrap();
        conf_dir(&setup, name).await;
    }
    let watching = || setup.objects.is_watching(Kind::ConfigMap, "shop", "app");
    assert!(watching(), "the object is watched while pods use it");
    assert!(setup.calls.count("list") <= 2, "one watch for both pods");

    let delete = async |name: &str| {
        setup
            .client
            .delete::<Pod>("shop", name, &DeleteOptions::default())
            .await
            .unwrap();
        wait_until(
            &format!("{name} gone"),
            Duration::from_secs(30),
            async || setup.client.get::<Pod>("shop", name).await.is_err(),
        )
        .await;
    };
    delete("web").await;
    assert!(watching(), "another pod still uses the object");
    // The other pod still follows it.
    edit(&setup.client, "v2").await;
    let conf = conf_dir(&setup, "api").await.join("app.conf");
    wait_until("v2 in api's volume", Duration::from_secs(1), async || {
        fs::read_to_string(&conf).is_ok_and(|c| c == "v2")
    })
    .await;

    delete("api").await;
    assert!(!watching(), "the watch ended with the last pod");
    assert!(!setup.objects.contains(Kind::ConfigMap, "shop", "app"));
    setup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_immutable_object_is_read_once_and_not_watched() {
    let setup = start(Duration::from_secs(30));
    setup.client.create(&app_config("v1", true)).await.unwrap();
    setup.client.create(&pod("web")).await.unwrap();
    let conf = conf_dir(&setup, "web").await.join("app.conf");
    wait_until("the object cached", Duration::from_secs(5), async || {
        setup.objects.contains(Kind::ConfigMap, "shop", "app") && setup.calls.count("list") > 0
    })
    .await;
    let reads = setup.calls.reads();
    sleep(Duration::from_secs(600)).await;
    assert_eq!(read(&conf), "v1");
    assert_eq!(
        setup.calls.count("watch"),
        0,
        "an immutable object is not watched"
    );
    assert!(!setup.objects.is_watching(Kind::ConfigMap, "shop", "app"));
    assert_eq!(setup.calls.reads(), reads, "nor read again");
    setup.stop().await;
}

/// A Secret `name` in `shop`.
fn secret(name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta::namespaced("shop", name),
        string_data: BTreeMap::from([("password".into(), "hunter2".into())]),
        ..Secret::default()
    }
}

/// The agent as the node's own identity (`system:node:node-1`, node restriction, as
/// `orchestra cluster` runs it): its named list+watch of the ConfigMap its pod mounts is
/// allowed, and so the edit arrives; the same identity's list or watch of another node's
/// pod's Secret by name, or of all Secrets, is Forbidden.
#[tokio::test(start_paused = true)]
async fn a_node_may_list_and_watch_by_name_only_what_its_pods_reference() {
    let client = LocalClient::new(MemStore::new());
    let authorizer = NodeAuthorizer::new();
    let graph = tokio::spawn({
        let authorizer = authorizer.clone();
        let client = client.clone();
        async move { authorizer.run(client).await }
    });
    let node = AuthorizedClient::new(
        client.clone(),
        UserInfo::new(
            format!("system:node:{NODE}"),
            [GROUP_NODES, GROUP_AUTHENTICATED],
        ),
        Arc::new(authorizer),
        None,
    );
    client.create(&app_config("v1", false)).await.unwrap();
    client.create(&secret("theirs")).await.unwrap();
    let mut theirs = pod("other");
    theirs.spec.node_name = "node-2".into();
    theirs.spec.volumes[0].config_map = None;
    theirs.spec.volumes[0].secret = Some(SecretVolumeSource {
        secret_name: "theirs".into(),
        ..SecretVolumeSource::default()
    });
    client.create(&theirs).await.unwrap();

    let volumes = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(NODE);
    config.volumes_dir = volumes.path().to_owned();
    config.volume_refresh_interval = Duration::from_secs(3600);
    let runtime = FakeRuntime::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::new(node.clone(), runtime.clone(), config).run(async {
            let _ = stopped.await;
        }),
    );
    client.create(&pod("web")).await.unwrap();
    let mut conf = None;
    wait_until("web's volume", Duration::from_secs(30), async || {
        let containers = runtime.list().await.unwrap().containers;
        conf = containers.first().and_then(|c| {
            c.config
                .mounts
                .first()
                .map(|m| m.host_path.join("app.conf"))
        });
        conf.is_some()
    })
    .await;
    let conf = conf.unwrap();
    assert_eq!(read(&conf), "v1");
    // Through the watch the node was allowed (the refresh period is an hour).
    sleep(Duration::from_secs(2)).await;
    edit(&client, "v2").await;
    wait_until("v2 in the volume", Duration::from_secs(1), async || {
        fs::read_to_string(&conf).is_ok_and(|c| c == "v2")
    })
    .await;

    let by_name = |name: &str| FieldSelector::equals("metadata.name", name);
    let listed = node
        .list::<ConfigMap>(Some("shop"), &ListOptions::fields(by_name("app")))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let forbidden = |result: Result<(), ApiError>, what: &str| match result {
        Err(ApiError::Forbidden(_)) => {}
        other => panic!("{what}: {other:?}, not Forbidden"),
    };
    let list_theirs = node
        .list::<Secret>(Some("shop"), &ListOptions::fields(by_name("theirs")))
        .await;
    forbidden(
        list_theirs.map(drop),
        "a list of another node's pod's secret",
    );
    let watch_theirs = WatchOptions {
        field_selector: by_name("theirs"),
        ..WatchOptions::default()
    };
    let watch_theirs = node.watch::<Secret>(Some("shop"), &watch_theirs).await;
    forbidden(
        watch_theirs.map(drop),
        "a watch of another node's pod's secret",
    );
    let list_all = node
        .list::<Secret>(Some("shop"), &ListOptions::default())
        .await;
    forbidden(list_all.map(drop), "a list of all secrets");

    let _ = stop.send(());
    agent.await.unwrap();
    graph.abort();
}
