//! `orchestra bench dns`: the cluster DNS on loopback UDP with many services, queries/s and
//! latency per number of concurrent clients, side by side in the same run with dnsmasq
//! (Debian's `dnsmasq-base`) serving the same names from a hosts file.
//!
//! Every client is a UDP socket with one query outstanding, asking for a random service's A
//! record; each line printed is one (server, clients) run. dnsmasq runs as a child process in
//! the foreground on a free loopback port with its own options only (`--conf-file=/dev/null`,
//! no system configuration read or changed); when it is not installed the benchmark says so
//! and measures the cluster DNS alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use orchestra::api::ObjectMeta;
use orchestra::api::resources::{Service, ServiceSpec};
use orchestra::mesh::dns::{DnsConfig, DnsServer, DnsSnapshot};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::bench::BenchError;
use crate::bench::report::{self, Latency};
use crate::cli::bench::DnsBenchArgs;

/// One result line.
#[derive(Debug, Serialize)]
struct DnsResult {
    bench: &'static str,
    server: &'static str,
    services: u32,
    clients: u32,
    queries: u64,
    qps: f64,
    #[serde(flatten)]
    latency: Latency,
    /// Our queries/s over the peer's, on our lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    qps_vs_dnsmasq: Option<f64>,
    /// Our p99 over the peer's, on our lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_vs_dnsmasq: Option<f64>,
}

fn failed(what: &str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BenchError {
    BenchError::Proxy {
        what: format!("dns: {what}"),
        source: source.into(),
    }
}

/// The name of service `i`.
fn service_name(i: u32) -> String {
    format!("svc-{i}.bench.svc.cluster.local.")
}

/// The ClusterIP of service `i` (127.2.0.0/16, the default service range).
fn cluster_ip(i: u32) -> String {
    format!("127.2.{}.{}", i / 250, i % 250 + 1)
}

/// Runs the benchmark.
pub async fn run(mut args: DnsBenchArgs) -> Result<(), BenchError> {
    if args.smoke {
        args.services = 50;
        args.clients = vec![2];
        args.seconds = Duration::from_millis(300);
    }
    let services: Vec<Service> = (0..args.services)
        .map(|i| Service {
            metadata: ObjectMeta {
                name: format!("svc-{i}"),
                namespace: "bench".into(),
                ..ObjectMeta::default()
            },
            spec: ServiceSpec {
                cluster_ip: cluster_ip(i),
                ..ServiceSpec::default()
            },
            status: None,
        })
        .collect();
    let snapshot = DnsSnapshot::build(&services, [], 1);
    let (_keep, snapshots) = watch::channel(Arc::new(snapshot));
    let config = DnsConfig::new("cluster.local").map_err(|e| failed("config", e))?;
    let ours = DnsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config, snapshots)
        .await
        .map_err(|e| failed("binding the cluster DNS", e))?;

    let dir = tempfile::tempdir().map_err(|e| failed("a temporary directory", e))?;
    let peer = match dnsmasq_binary() {
        Some(binary) => Some(Dnsmasq::start(&binary, dir.path(), args.services).await?),
        None => {
            eprintln!(
                "bench dns: dnsmasq is not installed (apt-get install dnsmasq-base); measuring the cluster DNS alone"
            );
            None
        }
    };

    let queries = Arc::new(encode_queries(args.services)?);
    for &clients in &args.clients {
        let theirs = match &peer {
            Some(peer) => Some(load(peer.addr, &queries, clients, args.seconds).await?),
            None => None,
        };
        let mine = load(ours.local_addr(), &queries, clients, args.seconds).await?;
        if let Some((count, qps, latency)) = theirs {
            print(&DnsResult {
                bench: "dns",
                server: "dnsmasq",
                services: args.services,
                clients,
                queries: count,
                qps,
                latency,
                qps_vs_dnsmasq: None,
                p99_vs_dnsmasq: None,
            })?;
        }
        let (count, qps, latency) = mine;
        print(&DnsResult {
            bench: "dns",
            server: "orchestra",
            services: args.services,
            clients,
            queries: count,
            qps,
            latency,
            qps_vs_dnsmasq: theirs.and_then(|(_, q, _)| report::ratio(qps, q)),
            p99_vs_dnsmasq: theirs.and_then(|(_, _, l)| report::ratio(latency.p99_us, l.p99_us)),
        })?;
    }
    if let Some(peer) = peer {
        peer.stop().await;
    }
    ours.shutdown()
        .await
        .map_err(|e| failed("stopping the cluster DNS", e))?;
    Ok(())
}

fn print(result: &DnsResult) -> Result<(), BenchError> {
    let line = serde_json::to_string(result).map_err(|e| failed("encoding a result", e))?;
    println!("{line}");
    Ok(())
}

/// One A query per service, encoded (the id is patched per send).
fn encode_queries(services: u32) -> Result<Vec<Vec<u8>>, BenchError> {
    (0..services)
        .map(|i| {
            let name = Name::from_ascii(service_name(i)).map_err(|e| failed("a name", e))?;
            let mut message = Message::new(0, MessageType::Query, OpCode::Query);
            message.metadata.recursion_desired = true;
            message.add_query(Query::query(name, RecordType::A));
            message.to_vec().map_err(|e| failed("encoding a query", e))
        })
        .collect()
}

/// `clients` sockets asking `server` for random names for `duration`: (answers, queries/s,
/// latency).
async fn load(
    server: SocketAddr,
    queries: &Arc<Vec<Vec<u8>>>,
    clients: u32,
    duration: Duration,
) -> Result<(u64, f64, Latency), BenchError> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let queries = queries.clone();
        tasks.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| failed("a client socket", e))?;
            socket
                .connect(server)
                .await
                .map_err(|e| failed("connecting a client socket", e))?;
            let mut hist = report::latency_histogram()?;
            let mut buf = vec![0u8; 4096];
            let mut seed = u64::from(client).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut id: u16 = 0;
            while Instant::now() < deadline {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut packet = queries[(seed % queries.len() as u64) as usize].clone();
                id = id.wrapping_add(1);
                packet[..2].copy_from_slice(&id.to_be_bytes());
                let sent = Instant::now();
                socket
                    .send(&packet)
                    .await
                    .map_err(|e| failed("sending a query", e))?;
                // A lost datagram would stall the client: give up on it after a second.
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
                    {
                        Ok(Ok(len)) if len >= 2 && buf[..2] == id.to_be_bytes() => {
                            report::record(&mut hist, sent.elapsed());
                            break;
                        }
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => return Err(failed("receiving an answer", e)),
                        Err(_) => break,
                    }
                }
            }
            Ok::<_, BenchError>(hist)
        }));
    }
    let mut all = report::latency_histogram()?;
    for task in tasks {
        let hist = task.await.map_err(BenchError::Task)??;
        report::merge(&mut all, &hist)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let count = all.len();
    Ok((
        count,
        report::round1(count as f64 / elapsed),
        Latency::of(&all),
    ))
}

/// dnsmasq on PATH or in /usr/sbin (not on a non-root PATH).
fn dnsmasq_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
}

/// dnsmasq in the foreground, serving the services' names from a hosts file.
struct Dnsmasq {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    async fn start(
        binary: &PathBuf,
        dir: &std::path::Path,
        services: u32,
    ) -> Result<Dnsmasq, BenchError> {
        let hosts = dir.join("hosts");
        let text: String = (0..services)
            .map(|i| {
                format!(
                    "{} {}\n",
                    cluster_ip(i),
                    service_name(i).trim_end_matches('.')
                )
            })
            .collect();
        std::fs::write(&hosts, text).map_err(|e| failed("writing dnsmasq's hosts file", e))?;
        // A free port (closed again before dnsmasq binds it; a clash shows as no answer).
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| failed("a free port for dnsmasq", e))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = tokio::process::Command::new(binary)
            .arg("--keep-in-foreground")
            .arg("--conf-file=/dev/null")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg(format!("--port={port}"))
            .arg("--pid-file=")
            .arg("--user=root")
            .arg("--local-ttl=5")
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("starting dnsmasq", e))?;
        let peer = Dnsmasq { child, addr };
        // Ready when it answers.
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| failed("a probe socket", e))?;
        let probe = encode_queries(1)?.remove(0);
        let mut buf = [0u8; 512];
        for _ in 0..50 {
            socket
                .send_to(&probe, addr)
                .await
                .map_err(|e| failed("probing dnsmasq", e))?;
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(100), socket.recv_from(&mut buf)).await
            {
                return Ok(peer);
            }
        }
        Err(failed(
            "dnsmasq did not answer within 5 s",
            format!("on {addr}"),
        ))
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
