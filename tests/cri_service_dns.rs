//! Service discovery over CriRuntime against a real containerd: one pod reaches another through
//! its Service's name.
//!
//! Composed from the real pieces in one process: the API (LocalClient over MemStore), the node
//! agent over CriRuntime with the cluster DNS in its configuration, the Endpoints controller,
//! and the cluster DNS server listening on port 53 of the CNI bridge's gateway address (where
//! the pods reach the host). A server pod runs busybox `httpd`; a headless Service selects it;
//! the Endpoints controller publishes the pod once its readiness probe passes; the DNS answers
//! the Service's name with the pod's address. Then a client pod, whose resolv.conf containerd
//! wrote from the CRI DNSConfig the agent gave it (dnsPolicy ClusterFirst), looks up the short
//! name `web` (the search list makes it `web.default.svc.cluster.local`) and the full name,
//! and fetches the page from the address it got.
//!
//! The client resolves with busybox `nslookup` (its own DNS client, which reads resolv.conf and
//! applies the search list) and sends its HTTP request with `nc` to the address it got: the
//! image is Debian's static busybox, linked with glibc, whose name lookups need the NSS
//! libraries the image does not have (busybox `wget` crashes in such an image, even given an
//! address).
//!
//! Every wait is on a condition with a bound: the pod's status, the Endpoints, the DNS answer
//! queried from the host, the client pod's end.
//!
//! Needs root, containerd, runc, the CNI plugins and a static busybox (the same harness as
//! orchestra-node's CRI tests); skipped with the reason printed when one is missing, unless
//! `ORCHESTRA_SYSTEM_TESTS=1`.

#[path = "../crates/orchestra-node/tests/cri_harness/mod.rs"]
mod cri_harness;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use orchestra_api::resources::{
    ConditionStatus, Container, ContainerPort, Endpoints, HttpGetAction, Pod, PodPhase, PodSpec,
    Probe, RestartPolicy, Service, ServicePort, ServiceSpec,
};
use orchestra_api::{Client, IntOrString, LocalClient, ObjectMeta};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::EndpointsController;
use orchestra_mesh::dns::{ClusterDns, DnsConfig};
use orchestra_node::agent::env::ClusterDnsSettings;
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::testing::util::read_logs;
use orchestra_node::{ContainerState, LogOptions, RuntimeDriver};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use cri_harness::{Containerd, IMAGE};

/// The bound of every wait.
const LIMIT: Duration = Duration::from_secs(30);
const NODE: &str = "cri-dns-node";
/// The CNI bridge's gateway address (host-local gives the bridge the subnet's first address):
/// the host as the pods see it, where the cluster DNS listens.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 231, 17, 1);
const PAGE: &str = "hello from web";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_reaches_another_through_its_service_name() {
    cri_harness::run_with_containerd(
        "a_pod_reaches_another_through_its_service_name",
        service_discovery,
    )
    .await;
}

/// A task that runs until told to stop.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn spawn<F: Future<Output = ()> + Send + 'static>(
        run: impl FnOnce(oneshot::Receiver<()>) -> F,
    ) -> Running {
        let (stop, stopped) = oneshot::channel();
        Running {
            stop,
            task: tokio::spawn(run(stopped)),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn service_discovery(containerd: &Containerd) {
    let client = LocalClient::new(orchestra_store::MemStore::new());
    let runtime = Arc::new(containerd.runtime().await);
    let dns_addr = SocketAddr::new(IpAddr::V4(GATEWAY), 53);

    let mut config = AgentConfig::new(NODE);
    config.sync_interval = Duration::from_millis(100);
    config.cluster_dns = Some(ClusterDnsSettings {
        server: dns_addr,
        domain: "cluster.local".into(),
    });
    let agent = Agent::with_shared_runtime(client.clone(), Arc::clone(&runtime), config);
    let agent = Running::spawn(|stopped| {
        agent.run(async {
            let _ = stopped.await;
        })
    });
    let informers = SharedInformers::new(client.clone());
    let endpoints = EndpointsController::controller(&informers);
    let endpoints = Running::spawn(|stopped| {
        endpoints.run(async {
            let _ = stopped.await;
        })
    });

    // The server pod; its sandbox also brings up the bridge and its gateway address.
    client
        .create(&server_pod())
        .await
        .expect("create the web pod");
    let t = Instant::now();
    let web = wait_for_pod(&client, "web", |p| {
        phase(p) == Some(PodPhase::Running) && ready(p)
    })
    .await;
    let web_ip: IpAddr = web
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.parse().ok())
        .expect("the web pod reports its IP");
    println!(
        "web pod Running and Ready at {web_ip} after {:?}",
        t.elapsed()
    );

    let dns = ClusterDns::start(
        client.clone(),
        dns_addr,
        DnsConfig::new("cluster.local").expect("cluster domain"),
    )
    .await
    .unwrap_or_else(|e| panic!("the cluster DNS cannot listen on {dns_addr}: {e}"));

    client
        .create(&headless_service())
        .await
        .expect("create the service");
    wait_until("the Endpoints list the web pod as ready", || async {
        client
            .get::<Endpoints>("default", "web")
            .await
            .is_ok_and(|e| {
                e.subsets
                    .iter()
                    .flat_map(|s| &s.addresses)
                    .any(|a| a.ip == web_ip.to_string())
            })
    })
    .await;
    let full_name = "web.default.svc.cluster.local.";
    wait_until(
        "the cluster DNS answers the service with the pod IP",
        || async { lookup(dns_addr, full_name).await == vec![web_ip] },
    )
    .await;

    // The client pod resolves the names through its resolv.conf and fetches the page.
    client
        .create(&client_pod())
        .await
        .expect("create the client pod");
    let t = Instant::now();
    let done = wait_for_pod(&client, "client", |p| {
        matches!(phase(p), Some(PodPhase::Succeeded | PodPhase::Failed))
    })
    .await;
    println!("client pod ended after {:?}", t.elapsed());
    let logs = client_logs(runtime.as_ref()).await;
    println!("client pod's output:\n{logs}");
    assert_eq!(
        phase(&done),
        Some(PodPhase::Succeeded),
        "the client pod failed; its output:\n{logs}\nits status: {:#?}",
        done.status
    );
    // containerd wrote the CRI DNSConfig the agent gave: ClusterFirst.
    for line in [
        format!("nameserver {GATEWAY}"),
        "search default.svc.cluster.local svc.cluster.local cluster.local".to_owned(),
        "options ndots:5".to_owned(),
    ] {
        assert!(
            logs.lines().any(|l| l.trim() == line),
            "resolv.conf lacks {line:?}:\n{logs}"
        );
    }
    assert!(
        logs.contains(&format!("web resolves to {web_ip}\n")),
        "the short name did not resolve to the web pod ({web_ip}):\n{logs}"
    );
    assert!(
        logs.contains(&format!(
            "web.default.svc.cluster.local resolves to {web_ip}\n"
        )),
        "the full name did not resolve to the web pod ({web_ip}):\n{logs}"
    );
    assert!(
        logs.contains(&format!("fetched: {PAGE}\n")),
        "the page was not fetched from the resolved address:\n{logs}"
    );

    agent.stop().await;
    endpoints.stop().await;
    dns.shutdown().await.expect("stop the cluster DNS");
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn server_pod() -> Pod {
    let script = format!(
        "mkdir -p /tmp/www && echo '{PAGE}' > /tmp/www/index.html \
         && httpd -f -p 8080 -h /tmp/www & trap 'exit 0' TERM; wait"
    );
    Pod {
        metadata: ObjectMeta {
            labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            ..ObjectMeta::namespaced("default", "web")
        },
        spec: PodSpec {
            node_name: NODE.into(),
            termination_grace_period_seconds: Some(5),
            containers: vec![Container {
                name: "httpd".into(),
                image: IMAGE.into(),
                command: sh(&script),
                ports: vec![ContainerPort {
                    name: "http".into(),
                    container_port: 8080,
                    ..ContainerPort::default()
                }],
                readiness_probe: Some(Probe {
                    http_get: Some(HttpGetAction {
                        path: "/index.html".into(),
                        port: IntOrString::Int(8080),
                        ..HttpGetAction::default()
                    }),
                    period_seconds: Some(1),
                    ..Probe::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// `web`, headless (`clusterIP: None`): its name resolves to the ready pods' addresses.
fn headless_service() -> Service {
    Service {
        metadata: ObjectMeta::namespaced("default", "web"),
        spec: ServiceSpec {
            cluster_ip: "None".into(),
            selector: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            ports: vec![ServicePort {
                name: "http".into(),
                port: 8080,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        ..Service::default()
    }
}

/// Prints its resolv.conf, resolves `web` and its full name with nslookup (the first answer
/// after the `Name:` line), and fetches the page from the first address (HTTP/1.0 over `nc`).
fn client_pod() -> Pod {
    let script = r#"set -e
cat /etc/resolv.conf
first() { nslookup -type=a "$1" | awk '/^Name:/ { found = 1 } found && /^Address/ { print $2; exit }'; }
# Exits 1 when any name of the search list is NXDOMAIN, even when one answered.
nslookup -type=a web || true
short=$(first web)
echo "web resolves to $short"
full=$(first web.default.svc.cluster.local)
echo "web.default.svc.cluster.local resolves to $full"
test -n "$short"
page=$(printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 5 "$short" 8080 | tail -n 1)
echo "fetched: $page"
"#;
    Pod {
        metadata: ObjectMeta::namespaced("default", "client"),
        spec: PodSpec {
            node_name: NODE.into(),
            restart_policy: Some(RestartPolicy::Never),
            containers: vec![Container {
                name: "client".into(),
                image: IMAGE.into(),
                command: sh(script),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

fn phase(pod: &Pod) -> Option<PodPhase> {
    pod.status.as_ref().and_then(|s| s.phase)
}

fn ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

/// Polls pod `name` until `check` holds, for at most [`LIMIT`].
async fn wait_for_pod(client: &LocalClient, name: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let mut last = None;
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            match client.get::<Pod>("default", name).await {
                Ok(p) if check(&p) => return p,
                Ok(p) => last = Some(format!("{:#?}", p.status)),
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!("pod {name} did not get where expected within {LIMIT:?}; last status: {last:?}")
    })
}

/// Polls `condition` until it holds, for at most [`LIMIT`].
async fn wait_until<F: Future<Output = bool>>(what: &str, condition: impl Fn() -> F) {
    let done = tokio::time::timeout(LIMIT, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "{what}: not within {LIMIT:?}");
}

/// The A records `server` answers for `name` over UDP (empty on no answer within a second).
async fn lookup(server: SocketAddr, name: &str) -> Vec<IpAddr> {
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0").await else {
        return Vec::new();
    };
    let mut query = Message::new(0x5ead, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii(name).expect("a name"),
        RecordType::A,
    ));
    let packet = query.to_vec().expect("encode a query");
    if socket.send_to(&packet, server).await.is_err() {
        return Vec::new();
    }
    let mut buf = vec![0u8; 4096];
    let Ok(Ok((len, _))) =
        tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await
    else {
        return Vec::new();
    };
    let Ok(answer) = Message::from_vec(&buf[..len]) else {
        return Vec::new();
    };
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// The output of the client pod's container, read through the runtime.
async fn client_logs<R: RuntimeDriver>(runtime: &R) -> String {
    let state = runtime.list().await.expect("list the runtime's containers");
    let Some(container) = state
        .containers
        .iter()
        .find(|c| c.config.name == "client" && c.state == ContainerState::Exited)
    else {
        return format!("(no exited client container: {:#?})", state.containers);
    };
    read_logs(runtime, &container.id, LogOptions::default())
        .await
        .unwrap_or_else(|e| format!("(reading the client's log failed: {e})"))
}
