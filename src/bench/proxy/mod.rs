//! `orchestra bench proxy`: the L4 service proxy measured against the direct path and nginx.
//!
//! One in-process echo backend; three paths to it, measured one after the other in the same
//! run: `direct` (the backend's own address), `tcp-proxy` (a [`TcpProxy`] service on a
//! 127.2.255.x ClusterIP) and `nginx` (nginx's `stream` TCP proxy, started by the benchmark
//! as a foreground child with a temporary configuration, killed at the end; reported as
//! `skipped` with the reason when nginx is missing). Per path: `bulk` (MB/s through one
//! connection), `latency` (p50/p99/p99.9 at a fixed open-loop rate) and `max` (requests/s
//! closed-loop over many connections). Every line after the direct one carries its ratios
//! to direct.
//!
//! # Layout
//! - [`echo`]: the echo backend.
//! - [`load`]: the three measurements.
//! - [`nginx`]: finding, configuring, starting and stopping nginx.
//! - [`nftables`]: `--mode nftables`, NftablesProxy's sync time at 1,000 to 30,000 services,
//!   then the same three measurements in network namespaces, directly, through
//!   NftablesProxy and through TcpProxy.
//! - [`nftables_follower`]: `--mode nftables`, an Endpoints update through the API and a
//!   `ProxyFollower` to NftablesProxy's transaction, at the same sizes.

pub mod echo;
pub mod load;
pub mod nftables;
pub mod nftables_follower;
pub mod nginx;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use orchestra::mesh::{
    Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable, TcpProxy,
    TcpProxyConfig,
};
use serde::Serialize;

use crate::bench::BenchError;
use crate::bench::report::{Latency, ratio, round1};
use crate::cli::bench::{ProxyBenchArgs, ProxyBenchMode};

/// The ClusterIP of the benchmark's service (in the default loopback service range).
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(127, 2, 255, 1);

/// One result line of `orchestra bench proxy`.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyResult {
    /// Always `"proxy"`.
    pub bench: &'static str,
    /// `direct`, `tcp-proxy`, `nginx` or (`--mode nftables`) `nftables`.
    pub path: &'static str,
    /// `bulk`, `latency` or `max`.
    pub test: &'static str,
    /// Why this path was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Echo throughput of the bulk test, MB/s (10^6 bytes) in one direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_sec: Option<f64>,
    /// Bytes streamed by the bulk test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Target requests/s of the latency test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Completed requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_per_sec: Option<f64>,
    /// Connections used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Request latency (latency and max tests).
    #[serde(flatten)]
    pub latency: Option<Latency>,
    /// Requests completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// The measured duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// nginx's resident memory after the test, KiB (its one process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
    /// How it compares with the direct path (absent on direct's own lines).
    #[serde(flatten)]
    pub vs: Option<VsDirect>,
}

/// A path against the direct path in the same test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VsDirect {
    /// Always `"direct"`.
    pub vs: &'static str,
    /// MB/s (bulk) or requests/s (latency, max) over direct's (1: as fast).
    pub throughput_ratio: Option<f64>,
    /// p50 latency over direct's.
    pub p50_ratio: Option<f64>,
    /// p99 latency over direct's.
    pub p99_ratio: Option<f64>,
    /// Microseconds the path adds to direct's p50.
    pub p50_added_us: Option<f64>,
}

impl VsDirect {
    /// `result` against `direct`.
    fn of(direct: &ProxyResult, result: &ProxyResult) -> Self {
        let throughput = |r: &ProxyResult| r.mb_per_sec.or(r.req_per_sec).unwrap_or(0.0);
        let (p50, p99) = match (&direct.latency, &result.latency) {
            (Some(d), Some(r)) => (ratio(r.p50_us, d.p50_us), ratio(r.p99_us, d.p99_us)),
            _ => (None, None),
        };
        VsDirect {
            vs: "direct",
            throughput_ratio: ratio(throughput(result), throughput(direct)),
            p50_ratio: p50,
            p99_ratio: p99,
            p50_added_us: match (&direct.latency, &result.latency) {
                (Some(d), Some(r)) => Some(round1(r.p50_us - d.p50_us)),
                _ => None,
            },
        }
    }
}

/// The error of a failed socket operation, saying what the benchmark was doing.
pub fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> BenchError {
    move |source| BenchError::Proxy {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// The sizes of one run, after `--smoke`.
#[derive(Clone)]
struct Plan {
    bulk_bytes: u64,
    rate: u32,
    connections: u32,
    size: usize,
    seconds: Duration,
}

/// Prints one JSON result line to stdout.
fn print_line(line: &impl Serialize) -> Result<(), BenchError> {
    let line = serde_json::to_string(line).map_err(|e| BenchError::Output(e.into()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(BenchError::Output)
}

/// Run the proxy benchmark.
pub async fn run(args: ProxyBenchArgs) -> Result<(), BenchError> {
    let plan = if args.smoke {
        Plan {
            bulk_bytes: u64::from(args.bulk_mib.min(16)) << 20,
            rate: args.rate,
            connections: args.connections.min(8),
            size: args.message_size as usize,
            seconds: args.seconds.min(Duration::from_millis(500)),
        }
    } else {
        Plan {
            bulk_bytes: u64::from(args.bulk_mib) << 20,
            rate: args.rate,
            connections: args.connections,
            size: args.message_size as usize,
            seconds: args.seconds,
        }
    };
    if args.mode == ProxyBenchMode::Nftables {
        let sizes: Vec<u32> = if args.smoke {
            args.services.iter().map(|&n| n.min(100)).collect()
        } else {
            args.services.clone()
        };
        nftables::run(&sizes, args.endpoints, print_line).await?;
        nftables_follower::run(&sizes, args.endpoints, print_line).await?;
        return nftables::data_path(&plan).await;
    }
    let backend = echo::start().await?;
    let proxy = TcpProxy::new(TcpProxyConfig::default());
    let cluster = std::net::TcpListener::bind((CLUSTER_IP, 0))
        .and_then(|l| l.local_addr())
        .map_err(io_error("finding a free port on 127.2.255.1"))?;
    let table: ServiceTable = [(
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
    .collect();
    proxy.apply(&table).await.map_err(|e| BenchError::Proxy {
        what: "applying the service table".to_string(),
        source: Box::new(e),
    })?;
    let nginx = match nginx::find(args.nginx.as_deref()) {
        Ok(binary) => nginx::start(&binary, backend).await,
        Err(reason) => Err(reason),
    };
    if let Err(reason) = &nginx {
        tracing::warn!(%reason, "nginx path skipped");
    }
    let paths: [(&'static str, Result<SocketAddr, String>); 3] = [
        ("direct", Ok(backend)),
        ("tcp-proxy", Ok(cluster)),
        (
            "nginx",
            nginx.as_ref().map(|n| n.addr).map_err(Clone::clone),
        ),
    ];
    for test in ["bulk", "latency", "max"] {
        let mut direct: Option<ProxyResult> = None;
        for (path, addr) in &paths {
            let mut result = match addr {
                Ok(addr) => {
                    tracing::info!(path, test, "measuring");
                    measure(path, test, *addr, &plan).await?
                }
                Err(reason) => skipped(path, test, reason),
            };
            if *path == "nginx" {
                result.rss_kib = nginx.as_ref().ok().and_then(nginx::Nginx::rss_kib);
            }
            match &direct {
                None => direct = Some(result.clone()),
                Some(base) if result.skipped.is_none() => {
                    result.vs = Some(VsDirect::of(base, &result));
                }
                Some(_) => {}
            }
            print(&result)?;
        }
    }
    if let Ok(nginx) = nginx {
        nginx.stop().await?;
    }
    Ok(())
}

/// One test on one path.
async fn measure(
    path: &'static str,
    test: &'static str,
    addr: SocketAddr,
    plan: &Plan,
) -> Result<ProxyResult, BenchError> {
    let mut result = skipped(path, test, "");
    result.skipped = None;
    match test {
        "bulk" => {
            let elapsed = load::bulk(addr, plan.bulk_bytes).await?;
            let seconds = elapsed.as_secs_f64();
            result.mb_per_sec = Some(round1(plan.bulk_bytes as f64 / seconds / 1e6));
            result.bytes = Some(plan.bulk_bytes);
            result.seconds = Some(round3(seconds));
        }
        "latency" => {
            let (hist, requests) =
                load::open_loop(addr, plan.rate, plan.connections, plan.size, plan.seconds).await?;
            result.rate = Some(plan.rate);
            fill(&mut result, &hist, requests, plan);
        }
        _ => {
            let (hist, requests) =
                load::closed_loop(addr, plan.connections, plan.size, plan.seconds).await?;
            fill(&mut result, &hist, requests, plan);
        }
    }
    Ok(result)
}

/// The request figures of a latency or max test.
fn fill(result: &mut ProxyResult, hist: &hdrhistogram::Histogram<u64>, requests: u64, plan: &Plan) {
    let seconds = plan.seconds.as_secs_f64();
    result.req_per_sec = Some(round1(requests as f64 / seconds));
    result.connections = Some(plan.connections);
    result.latency = Some(Latency::of(hist));
    result.requests = Some(requests);
    result.seconds = Some(round3(seconds));
}

/// A line for a path that was not measured.
fn skipped(path: &'static str, test: &'static str, reason: &str) -> ProxyResult {
    ProxyResult {
        bench: "proxy",
        path,
        test,
        skipped: Some(reason.to_string()),
        mb_per_sec: None,
        bytes: None,
        rate: None,
        req_per_sec: None,
        connections: None,
        latency: None,
        requests: None,
        seconds: None,
        rss_kib: None,
        vs: None,
    }
}

/// Round to three decimals.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Prints one result line.
fn print(result: &ProxyResult) -> Result<(), BenchError> {
    let line = serde_json::to_string(result).map_err(|e| BenchError::Output(e.into()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(BenchError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_compare_with_direct() {
        let mut direct = skipped("direct", "bulk", "");
        direct.skipped = None;
        direct.mb_per_sec = Some(1000.0);
        let mut proxied = direct.clone();
        proxied.path = "tcp-proxy";
        proxied.mb_per_sec = Some(950.0);
        proxied.vs = Some(VsDirect::of(&direct, &proxied));
        let line = serde_json::to_string(&proxied).unwrap();
        assert!(
            line.starts_with(
                r#"{"bench":"proxy","path":"tcp-proxy","test":"bulk","mb_per_sec":950.0"#
            ),
            "{line}"
        );
        assert!(
            line.contains(r#""vs":"direct","throughput_ratio":0.95"#),
            "{line}"
        );
        let line =
            serde_json::to_string(&skipped("nginx", "max", "nginx is not installed")).unwrap();
        assert_eq!(
            line,
            r#"{"bench":"proxy","path":"nginx","test":"max","skipped":"nginx is not installed"}"#
        );
    }
}
