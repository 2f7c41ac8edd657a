//! Container logs end to end in one process: a ProcessRuntime pod run by the agent, its log
//! read through `LocalClient::pod_logs`, which finds the node's published endpoint and reads
//! the agent's `/containerLogs` over HTTP, and over mutual TLS with the cluster's
//! certificates (where only the API server's identity is let in). Waits are on observable
//! output with generous timeouts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::logs::{HttpNodeConnector, LogStream, PodLogOptions};
use orchestra_api::resources::{Container, Node, Pod, PodPhase, PodSpec};
use orchestra_api::tls::ClusterPki;
use orchestra_api::{ApiError, Client, LocalClient, ObjectMeta};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::endpoint::{AgentEndpoint, EndpointTls, RunningEndpoint};
use orchestra_node::process::{ProcessRuntime, ProcessRuntimeConfig};
use orchestra_store::MemStore;
use tokio::sync::oneshot;

const NODE: &str = "node-1";
const LIMIT: Duration = Duration::from_secs(60);

struct Setup {
    client: LocalClient,
    _endpoint: RunningEndpoint,
    stop: Option<oneshot::Sender<()>>,
    agent: Option<tokio::task::JoinHandle<()>>,
    runtime: Arc<ProcessRuntime>,
    dir: tempfile::TempDir,
}

impl Setup {
    /// An agent over a ProcessRuntime with its endpoint, plain or TLS; the client reads logs
    /// through `connector`.
    async fn start(tls: Option<(EndpointTls, HttpNodeConnector)>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut runtime_config = ProcessRuntimeConfig::new(dir.path().join("state"));
        runtime_config.cgroup_root = None;
        let runtime = Arc::new(ProcessRuntime::new(runtime_config).await.unwrap());
        let (endpoint, connector) = match tls {
            None => (
                AgentEndpoint::new(runtime.clone()),
                HttpNodeConnector::plain(),
            ),
            Some((tls, connector)) => {
                (AgentEndpoint::new(runtime.clone()).with_tls(tls), connector)
            }
        };
        let endpoint = endpoint
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let client = LocalClient::new(MemStore::new()).with_node_connector(Arc::new(connector));
        let mut config = AgentConfig::new(NODE);
        config.endpoint_port = Some(endpoint.local_addr().port());
        config.sync_interval = Duration::from_millis(100);
        let (stop, stopped) = oneshot::channel::<()>();
        let agent = Agent::with_shared_runtime(client.clone(), runtime.clone(), config);
        let agent = tokio::spawn(agent.run(async {
            let _ = stopped.await;
        }));
        Setup {
            client,
            _endpoint: endpoint,
            stop: Some(stop),
            agent: Some(agent),
            runtime,
            dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(agent) = self.agent.take() {
            agent.await.unwrap();
        }
        // The pods' processes go with the sandboxes.
        use orchestra_node::RuntimeDriver;
        for sandbox in self.runtime.list().await.unwrap().sandboxes {
            let _ = self.runtime.stop_pod_sandbox(&sandbox.id).await;
            let _ = self.runtime.remove_pod_sandbox(&sandbox.id).await;
        }
    }
}

fn container(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: "busybox".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Container::default()
    }
}

fn pod(name: &str, node: &str, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            node_name: node.into(),
            containers,
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// A script printing `one` and `two`, then `three` once `marker` exists, then sleeping.
fn talker(marker: &Path) -> String {
    format!(
        "echo one; echo two; while [ ! -e {} ]; do sleep 0.05; done; echo three; sleep 1000",
        marker.display()
    )
}

async fn wait_running(client: &LocalClient, name: &str) {
    tokio::time::timeout(LIMIT, async {
        loop {
            let pod: Pod = client.get("default", name).await.unwrap();
            if pod.status.and_then(|s| s.phase) == Some(PodPhase::Running) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("pod {name} not Running within {LIMIT:?}"));
}

/// Reads `stream` until its text contains `needle` (or it ends), within [`LIMIT`].
async fn read_until(stream: &mut LogStream, text: &mut String, needle: &str) {
    tokio::time::timeout(LIMIT, async {
        while !text.contains(needle) {
            match stream.next().await {
                Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{needle:?} not seen within {LIMIT:?}; got {text:?}"));
}

async fn read_all(mut stream: LogStream) -> String {
    let mut text = String::new();
    read_until(&mut stream, &mut text, "\u{0}never").await;
    text
}

/// The whole log, once it shows `needle` (a container's first output may lag its start).
async fn log_once(
    client: &LocalClient,
    name: &str,
    options: &PodLogOptions,
    needle: &str,
) -> String {
    tokio::time::timeout(LIMIT, async {
        loop {
            let stream = client.pod_logs("default", name, options).await.unwrap();
            let text = read_all(stream).await;
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the log of {name} never showed {needle:?}"))
}

fn options() -> PodLogOptions {
    PodLogOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_and_follow_through_the_agent_endpoint() {
    let setup = Setup::start(None).await;
    let marker = setup.dir.path().join("go");
    let client = setup.client.clone();
    client
        .create(&pod(
            "talker",
            NODE,
            vec![container("app", &talker(&marker))],
        ))
        .await
        .unwrap();
    wait_running(&client, "talker").await;

    let all = log_once(&client, "talker", &options(), "two\n").await;
    assert_eq!(all, "one\ntwo\n");
    // Reading with times stamps what is there: both lines were written before `mid`.
    let timed = PodLogOptions {
        timestamps: true,
        ..options()
    };
    let stamped = log_once(&client, "talker", &timed, "two\n").await;
    let mid = jiff::Timestamp::now();
    let lines: Vec<(&str, &str)> = stamped
        .lines()
        .map(|l| l.split_once(' ').expect("a time and a space"))
        .collect();
    assert_eq!(lines.len(), 2, "{stamped:?}");
    assert_eq!((lines[0].1, lines[1].1), ("one", "two"));
    for (time, _) in &lines {
        let time: jiff::Timestamp = time.parse().expect("an RFC 3339 time");
        assert!(time <= mid, "{time} after {mid}");
    }
    let tail = PodLogOptions {
        tail_lines: Some(1),
        ..options()
    };
    assert_eq!(log_once(&client, "talker", &tail, "two").await, "two\n");
    let named = PodLogOptions {
        container: Some("app".into()),
        limit_bytes: Some(4),
        ..options()
    };
    assert_eq!(log_once(&client, "talker", &named, "one").await, "one\n");

    // Follow: the stream stays open and delivers a line written after the request.
    let follow = PodLogOptions {
        follow: true,
        ..options()
    };
    let mut stream = client.pod_logs("default", "talker", &follow).await.unwrap();
    let mut text = String::new();
    read_until(&mut stream, &mut text, "two\n").await;
    std::fs::write(&marker, b"").unwrap();
    read_until(&mut stream, &mut text, "three\n").await;
    assert_eq!(text, "one\ntwo\nthree\n");
    drop(stream);
    // `three` was written after `mid` (the marker came after it): --since-time keeps it alone.
    let since = PodLogOptions {
        since_time: Some(mid),
        ..options()
    };
    assert_eq!(
        log_once(&client, "talker", &since, "three").await,
        "three\n"
    );
    // A followed log with --timestamps stamps lines as they come.
    let followed = PodLogOptions {
        follow: true,
        timestamps: true,
        since_time: Some(mid),
        ..options()
    };
    let mut stream = client
        .pod_logs("default", "talker", &followed)
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut stream, &mut text, "three\n").await;
    let (time, line) = text.split_once(' ').expect("a time and a space");
    assert!(time.parse::<jiff::Timestamp>().unwrap() > mid, "{text:?}");
    assert_eq!(line, "three\n");
    drop(stream);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_pod_the_containers_and_the_node() {
    let setup = Setup::start(None).await;
    let client = setup.client.clone();
    let code = |result: Result<LogStream, ApiError>| match result {
        Ok(_) => panic!("expected an error"),
        Err(err) => (err.code(), err.to_string()),
    };

    let (status, message) = code(client.pod_logs("default", "nope", &options()).await);
    assert_eq!(status, 404, "{message}");

    client
        .create(&pod("pending", "", vec![container("app", "sleep 1000")]))
        .await
        .unwrap();
    let (status, message) = code(client.pod_logs("default", "pending", &options()).await);
    assert_eq!(status, 400);
    assert!(
        message.contains("does not have a host assigned"),
        "{message}"
    );

    client
        .create(&pod(
            "pair",
            NODE,
            vec![
                container("a", "echo a; sleep 1000"),
                container("b", "echo b; sleep 1000"),
            ],
        ))
        .await
        .unwrap();
    wait_running(&client, "pair").await;
    let (_, message) = code(client.pod_logs("default", "pair", &options()).await);
    assert_eq!(
        message,
        "a container name must be specified for pod pair, choose one of: [a b]"
    );
    let unknown = PodLogOptions {
        container: Some("c".into()),
        ..options()
    };
    let (_, message) = code(client.pod_logs("default", "pair", &unknown).await);
    assert!(
        message.contains("container c is not valid for pod pair"),
        "{message}"
    );
    let b = PodLogOptions {
        container: Some("b".into()),
        ..options()
    };
    assert_eq!(log_once(&client, "pair", &b, "b\n").await, "b\n");
    // The process runtime keeps per-line times: --timestamps starts each line with one.
    let timed = PodLogOptions {
        timestamps: true,
        since_seconds: Some(3600),
        ..b.clone()
    };
    let stamped = log_once(&client, "pair", &timed, "b\n").await;
    let (time, line) = stamped.split_once(' ').expect("a time and a space");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{stamped:?}");
    assert_eq!(line, "b\n");

    // A pod bound to a node whose agent does not answer (nothing listens on its port): the
    // pod never starts, so its container is waiting; the node is unreachable once it ran.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut ghost = orchestra_node::agent::node::node_object(
        &{
            let mut config = AgentConfig::new("ghost");
            config.endpoint_port = Some(port);
            config
        },
        "process",
    );
    ghost.metadata.resource_version.clear();
    client.create::<Node>(&ghost).await.unwrap();
    client
        .create(&pod(
            "stranded",
            "ghost",
            vec![container("app", "sleep 1000")],
        ))
        .await
        .unwrap();
    let (status, message) = code(client.pod_logs("default", "stranded", &options()).await);
    assert_eq!(status, 400);
    assert!(
        message.contains("is waiting to start: ContainerCreating"),
        "{message}"
    );
    let mut stranded: Pod = client.get("default", "stranded").await.unwrap();
    let mut status = stranded.status.take().unwrap_or_default();
    status.container_statuses = vec![orchestra_api::resources::ContainerStatus {
        name: "app".into(),
        state: Some(orchestra_api::resources::ContainerState {
            running: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    stranded.status = Some(status);
    client.update_status(&stranded).await.unwrap();
    let (status, message) = code(client.pod_logs("default", "stranded", &options()).await);
    assert_eq!(status, 500);
    assert!(
        message.contains("the agent of node \"ghost\" at 127.0.0.1:")
            && message.contains("unreachable"),
        "{message}"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_only_the_api_servers_identity_reads_logs() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(pki_dir.path(), &[]).unwrap();
    let node = pki.issue_node(NODE).unwrap();
    let tls = EndpointTls::new(&node.cert_pem, &node.key_pem, pki.ca_pem()).unwrap();
    let apiserver = pki.apiserver_client();
    let connector =
        HttpNodeConnector::mutual_tls(pki.ca_pem(), &apiserver.cert_pem, &apiserver.key_pem)
            .unwrap();
    let setup = Setup::start(Some((tls, connector))).await;
    let marker = setup.dir.path().join("go");
    let client = setup.client.clone();
    client
        .create(&pod(
            "talker",
            NODE,
            vec![container("app", &talker(&marker))],
        ))
        .await
        .unwrap();
    wait_running(&client, "talker").await;
    assert_eq!(
        log_once(&client, "talker", &options(), "two\n").await,
        "one\ntwo\n"
    );

    // The administrator's certificate is the cluster CA's, but it is not the API server's.
    let admin = pki.admin();
    let as_admin = client.clone().with_node_connector(Arc::new(
        HttpNodeConnector::mutual_tls(pki.ca_pem(), &admin.cert_pem, &admin.key_pem).unwrap(),
    ));
    let err = match as_admin.pod_logs("default", "talker", &options()).await {
        Ok(_) => panic!("the admin's certificate was let in"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("user \"admin\" may not read container logs"),
        "{err}"
    );
    // Without a client certificate the handshake itself fails.
    let anonymous_dir = tempfile::tempdir().unwrap();
    let other = ClusterPki::load_or_create(anonymous_dir.path(), &[]).unwrap();
    let stranger = client.clone().with_node_connector(Arc::new(
        HttpNodeConnector::mutual_tls(
            pki.ca_pem(),
            &other.apiserver_client().cert_pem,
            &other.apiserver_client().key_pem,
        )
        .unwrap(),
    ));
    let err = match stranger.pod_logs("default", "talker", &options()).await {
        Ok(_) => panic!("a certificate of another CA was let in"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("unreachable") || err.contains("failed"),
        "{err}"
    );
    setup.stop().await;
}
