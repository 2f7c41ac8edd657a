//! `orchestra bench proxy --mode nftables`: how long `NftablesProxy` takes to program N
//! services of E endpoints (the full first sync, which takes the table over), and then
//! changes to one of them (one endpoint removed, then put back; the median of several), in a
//! network namespace the benchmark creates and deletes (`ip netns`), so the host's ruleset is
//! never touched. Then [`data_path`]: TCP throughput and latency through namespaces directly,
//! through NftablesProxy and through TcpProxy.
//!
//! Needs root, `ip` and `nft`; without them each line says why it was skipped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use orchestra::mesh::nftables::{NftablesProxy, NftablesProxyConfig};
use orchestra::mesh::{
    Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable, TcpProxy,
    TcpProxyConfig,
};
use serde::Serialize;

use super::{Plan, ProxyResult, VsDirect, echo, io_error, measure, print, skipped};
use crate::bench::BenchError;

/// One result line of the sync benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct SyncResult {
    /// Always `"proxy"`.
    pub bench: &'static str,
    /// Always `"nftables"`.
    pub mode: &'static str,
    /// Always `"sync"`.
    pub test: &'static str,
    /// Why it was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Services (one port each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<u32>,
    /// Endpoints per service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<u32>,
    /// The full first sync, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_ms: Option<f64>,
    /// nft commands of the full sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_commands: Option<usize>,
    /// A one-service change afterwards, ms (the whole `sync`: validation, diff, nft; the
    /// median of `change_samples`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_ms: Option<f64>,
    /// Of which nft (sending the batch to nft's answer), ms, median.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_nft_ms: Option<f64>,
    /// How many one-service changes were measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_samples: Option<usize>,
    /// nft commands of that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_commands: Option<usize>,
    /// Bytes of nft script sent for that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_bytes: Option<usize>,
}

impl SyncResult {
    fn skipped(reason: String) -> Self {
        SyncResult {
            bench: "proxy",
            mode: "nftables",
            test: "sync",
            skipped: Some(reason),
            services: None,
            endpoints: None,
            full_ms: None,
            full_commands: None,
            change_ms: None,
            change_nft_ms: None,
            change_samples: None,
            change_commands: None,
            change_bytes: None,
        }
    }
}

/// Why the benchmark cannot run here, if it cannot.
pub(super) fn ready() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (a network namespace and nftables)".into());
    }
    for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
        match Command::new(tool).arg(arg).output() {
            Ok(out) if out.status.success() => {}
            _ => {
                return Err(format!(
                    "`{tool}` is missing (apt-get install iproute2 nftables)"
                ));
            }
        }
    }
    Ok(())
}

/// A network namespace, deleted on drop.
pub(super) struct Netns(pub(super) String);

impl Netns {
    pub(super) fn new() -> Result<Self, BenchError> {
        let name = format!("orchestra-bench-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status();
        match status {
            Ok(s) if s.success() => Ok(Netns(name)),
            other => Err(BenchError::Proxy {
                what: format!("creating network namespace {name}"),
                source: format!("{other:?}").into(),
            }),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `services` services of `endpoints` endpoints: ClusterIPs from 10.96.0.0/12, endpoints
/// from 10.128.0.0/9 (addresses only: nothing answers, the rules are what is measured).
pub fn table(services: u32, endpoints: u32) -> ServiceTable {
    let mut next_endpoint: u32 = 0;
    (0..services)
        .map(|i| {
            let cluster = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 1)) + i);
            let eps = (0..endpoints)
                .map(|_| {
                    next_endpoint += 1;
                    let ip =
                        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + next_endpoint);
                    SocketAddr::new(IpAddr::V4(ip), 8080)
                })
                .collect();
            (
                ServiceKey::new("bench", format!("s{i}"), ""),
                ServiceEntry {
                    cluster: SocketAddr::new(IpAddr::V4(cluster), 80),
                    node_port: None,
                    protocol: Protocol::Tcp,
                    affinity: Affinity::None,
                    endpoints: eps,
                },
            )
        })
        .collect()
}

/// Runs the sync benchmark for each size, printing one line per size.
pub async fn run(
    sizes: &[u32],
    endpoints: u32,
    print: impl Fn(&SyncResult) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    if let Err(reason) = ready() {
        tracing::warn!(%reason, "nftables benchmark skipped");
        return print(&SyncResult::skipped(reason));
    }
    let netns = Netns::new()?;
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: orchestra::mesh::nftables::NftError| BenchError::Proxy {
            what,
            source: Box::new(e),
        }
    };
    for &services in sizes {
        let proxy = NftablesProxy::new(NftablesProxyConfig::in_netns(&netns.0));
        let mut table = table(services, endpoints);
        tracing::info!(services, endpoints, "nftables full sync");
        let started = Instant::now();
        let full = proxy.sync(&table).await.map_err(failed("the full sync"))?;
        let full_time = started.elapsed();
        // One endpoint of one service removed, then put back, and so on: each change is
        // the same size, and the median says what a change costs.
        let key = ServiceKey::new("bench", format!("s{}", services / 2), "");
        let Some(original) = table.get(&key).cloned() else {
            continue;
        };
        let mut shorter = original.clone();
        shorter.endpoints.pop();
        let (mut totals, mut nft_times) = (Vec::new(), Vec::new());
        let mut change = None;
        for i in 0..CHANGES {
            let entry = if i % 2 == 0 { &shorter } else { &original };
            table.insert(key.clone(), entry.clone());
            let started = Instant::now();
            let report = proxy
                .sync(&table)
                .await
                .map_err(failed("the one-service change"))?;
            totals.push(started.elapsed());
            nft_times.push(report.nft_time);
            change.get_or_insert(report);
        }
        let change = change.unwrap_or_default();
        print(&SyncResult {
            skipped: None,
            services: Some(services),
            endpoints: Some(endpoints),
            full_ms: Some(ms(full_time)),
            full_commands: Some(full.commands),
            change_ms: Some(ms(median(&mut totals))),
            change_nft_ms: Some(ms(median(&mut nft_times))),
            change_samples: Some(CHANGES),
            change_commands: Some(change.commands),
            change_bytes: Some(change.payload_bytes),
            ..SyncResult::skipped(String::new())
        })?;
        proxy
            .delete_table()
            .await
            .map_err(failed("deleting the table"))?;
    }
    Ok(())
}

/// One-service changes measured per size.
const CHANGES: usize = 7;

/// The median of `samples` (zero for none).
pub(super) fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Where the data-path benchmark's namespaces are joined: the client's and the endpoint's
/// links to the node.
const NODE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const NODE_TO_ENDPOINT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
/// The ClusterIP NftablesProxy serves.
const CLUSTER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)), 80);
/// The node address and port TcpProxy serves (its ClusterIP must be local to bind it).
const TCP_PROXY: SocketAddr = SocketAddr::new(IpAddr::V4(NODE), 9080);

/// The data-path benchmark's namespaces, deleted on drop:
/// `client (10.0.0.2) --veth-- node (10.0.0.1; 10.1.0.1) --veth-- endpoint (10.1.0.2)`.
struct Topology {
    client: String,
    node: String,
    endpoint: String,
}

/// Runs `ip ARGS`, saying what failed.
fn ip(args: &[&str]) -> Result<(), BenchError> {
    let out = Command::new("ip").args(args).output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        other => Err(BenchError::Proxy {
            what: format!("running ip {}", args.join(" ")),
            source: match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .to_owned()
                    .into(),
                Err(e) => Box::new(e),
            },
        }),
    }
}

impl Topology {
    fn new() -> Result<Self, BenchError> {
        let id = format!("orchestra-bench-{}", std::process::id());
        let topo = Topology {
            client: format!("{id}-client"),
            node: format!("{id}-node"),
            endpoint: format!("{id}-ep"),
        };
        let (client, node, endpoint) = (&topo.client, &topo.node, &topo.endpoint);
        for ns in [client, node, endpoint] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let (node_ip, client_ip) = (format!("{NODE}/24"), format!("{CLIENT}/24"));
        let (node_ep, endpoint_ip) = (format!("{NODE_TO_ENDPOINT}/24"), format!("{ENDPOINT}/24"));
        let (to_node, to_node_ep) = (NODE.to_string(), NODE_TO_ENDPOINT.to_string());
        for (peer, dev, node_addr, addr, gateway) in [
            (client, "c0", &node_ip, &client_ip, &to_node),
            (endpoint, "e0", &node_ep, &endpoint_ip, &to_node_ep),
        ] {
            ip(&[
                "-n", node, "link", "add", dev, "type", "veth", "peer", "name", "n0", "netns", peer,
            ])?;
            ip(&["-n", node, "addr", "add", node_addr, "dev", dev])?;
            ip(&["-n", node, "link", "set", dev, "up"])?;
            ip(&["-n", peer, "addr", "add", addr, "dev", "n0"])?;
            ip(&["-n", peer, "link", "set", "n0", "up"])?;
            ip(&["-n", peer, "route", "add", "default", "via", gateway])?;
        }
        ip(&[
            "netns",
            "exec",
            node,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        Ok(topo)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.node, &self.endpoint] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `task` on a new thread inside network namespace `ns` (as `ip netns` names it), on a
/// runtime of its own, so that every socket it makes belongs to that namespace while this
/// process stays where it is.
fn in_netns<T, F>(
    ns: &str,
    task: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<Result<T, BenchError>>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, BenchError>>,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| BenchError::Proxy {
            what: format!("opening {path}"),
            source: Box::new(e),
        })?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| BenchError::Proxy {
            what: format!("entering {path}"),
            source: Box::new(e),
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_error("starting a runtime in a namespace"))?;
        runtime.block_on(task())
    })
}

/// Waits for a namespace thread's result.
async fn join<T: Send + 'static>(
    thread: std::thread::JoinHandle<Result<T, BenchError>>,
) -> Result<T, BenchError> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(BenchError::Task)?
        .map_err(|_| BenchError::Proxy {
            what: "a thread in a namespace".to_owned(),
            source: "it panicked".into(),
        })?
}

/// A server running in a namespace until it is stopped.
struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), BenchError>>,
}

impl Server {
    /// Runs `start` in `ns`, then keeps its runtime going, and the first half of what it
    /// returned alive (a proxy stops listening when dropped), until [`Server::stop`].
    /// Returns once `start` has finished, with the second half.
    async fn start<K, T, F>(
        ns: &str,
        start: impl FnOnce() -> F + Send + 'static,
    ) -> Result<(Server, T), BenchError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<(K, T), BenchError>>,
    {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = in_netns(ns, move || async move {
            match start().await {
                Ok((keep, value)) => {
                    let _ = ready_tx.send(Ok(value));
                    let _ = stopped.await;
                    drop(keep);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
            Ok(())
        });
        match ready_rx.await {
            Ok(Ok(value)) => Ok((Server { stop, thread }, value)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(join(thread).await.err().unwrap_or(BenchError::Proxy {
                what: "starting a server in a namespace".to_owned(),
                source: "its thread ended early".into(),
            })),
        }
    }

    /// Stops the server and waits for its thread.
    async fn stop(self) -> Result<(), BenchError> {
        let _ = self.stop.send(());
        join(self.thread).await
    }
}

/// `--mode nftables`, second part: the echo backend in an endpoint namespace, reached from a
/// client namespace through a node namespace three ways, measured one after the other:
/// `direct` (the endpoint's address, routed by the node), `nftables` (a ClusterIP DNATed by
/// NftablesProxy in the node) and `tcp-proxy` (TcpProxy running in the node). Prints the
/// same lines as the userspace mode, with ratios to direct.
pub(super) async fn data_path(plan: &Plan) -> Result<(), BenchError> {
    if let Err(reason) = ready() {
        for test in ["bulk", "latency", "max"] {
            for path in ["direct", "nftables", "tcp-proxy"] {
                print(&skipped(path, test, &reason))?;
            }
        }
        return Ok(());
    }
    let topo = Topology::new()?;
    let (backend_server, backend) = Server::start(&topo.endpoint, || async {
        Ok(((), echo::start_on(IpAddr::V4(ENDPOINT)).await?))
    })
    .await?;
    let nft = NftablesProxy::new(NftablesProxyConfig::in_netns(&topo.node));
    let service = |cluster: SocketAddr| -> ServiceTable {
        [(
            ServiceKey::new("bench", "echo", ""),
            ServiceEntry {
                cluster,
                node_port: None,
                protocol: Protocol::Tcp,
                affinity: Affinity::None,
                endpoints: vec![backend],
            },
        )]
        .into_iter()
        .collect()
    };
    nft.sync(&service(CLUSTER))
        .await
        .map_err(|e| BenchError::Proxy {
            what: "programming NftablesProxy".to_owned(),
            source: Box::new(e),
        })?;
    let tcp_table = service(TCP_PROXY);
    let (proxy_server, ()) = Server::start(&topo.node, move || async move {
        let proxy = TcpProxy::new(TcpProxyConfig::default());
        proxy
            .apply(&tcp_table)
            .await
            .map_err(|e| BenchError::Proxy {
                what: "applying TcpProxy's service table".to_owned(),
                source: Box::new(e),
            })?;
        Ok((proxy, ()))
    })
    .await?;
    let paths = [
        ("direct", backend),
        ("nftables", CLUSTER),
        ("tcp-proxy", TCP_PROXY),
    ];
    let mut outcome = Ok(());
    'tests: for test in ["bulk", "latency", "max"] {
        let mut direct: Option<ProxyResult> = None;
        for (path, addr) in paths {
            tracing::info!(path, test, "measuring in namespaces");
            let plan = plan.clone();
            let measured = join(in_netns(&topo.client, move || async move {
                measure(path, test, addr, &plan).await
            }))
            .await;
            let mut result = match measured {
                Ok(result) => result,
                Err(e) => {
                    outcome = Err(e);
                    break 'tests;
                }
            };
            match &direct {
                None => direct = Some(result.clone()),
                Some(base) => result.vs = Some(VsDirect::of(base, &result)),
            }
            print(&result)?;
        }
    }
    proxy_server.stop().await?;
    backend_server.stop().await?;
    nft.delete_table().await.map_err(|e| BenchError::Proxy {
        what: "deleting NftablesProxy's table".to_owned(),
        source: Box::new(e),
    })?;
    outcome
}
