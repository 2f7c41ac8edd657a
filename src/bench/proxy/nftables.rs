//! `orchestra bench proxy --mode nftables`: how long `NftablesProxy` takes to program N
//! services of E endpoints (the full first sync, which takes the table over), and then a
//! change to one of them (one endpoint removed), in a network namespace the benchmark creates
//! and deletes (`ip netns`), so the host's ruleset is never touched.
//!
//! Needs root, `ip` and `nft`; without them one line says why it was skipped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use orchestra::mesh::nftables::{NftablesProxy, NftablesProxyConfig};
use orchestra::mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};
use serde::Serialize;

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
    /// A one-service change afterwards, ms (the whole `sync`: diff, script, nft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_ms: Option<f64>,
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
            change_commands: None,
            change_bytes: None,
        }
    }
}

/// Why the benchmark cannot run here, if it cannot.
fn ready() -> Result<(), String> {
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
struct Netns(String);

impl Netns {
    fn new() -> Result<Self, BenchError> {
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
        let key = ServiceKey::new("bench", format!("s{}", services / 2), "");
        if let Some(mut entry) = table.get(&key).cloned() {
            entry.endpoints.pop();
            table.insert(key, entry);
        }
        let started = Instant::now();
        let change = proxy
            .sync(&table)
            .await
            .map_err(failed("the one-service change"))?;
        let change_time = started.elapsed();
        print(&SyncResult {
            skipped: None,
            services: Some(services),
            endpoints: Some(endpoints),
            full_ms: Some(ms(full_time)),
            full_commands: Some(full.commands),
            change_ms: Some(ms(change_time)),
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

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
