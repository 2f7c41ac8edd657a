//! `orchestra bench proxy --mode nftables`, test `follower`: the agent's path from an API
//! change to the nft transaction. N Services of E endpoints are written through a
//! `LocalClient` over a `MemStore`; a `ProxyFollower` (debounce zero, so that the wait it
//! adds on purpose is not measured) feeds an `NftablesProxy` in a network namespace the
//! benchmark creates. Once the whole table is applied, one Endpoints object is updated at
//! a time (one address removed, then put back) and the time from the update call to the
//! follower's notification that the table with the change was applied is measured: the
//! API write, the watch, the follower's rebuild and the proxy's sync together.
//!
//! Needs root, `ip` and `nft`, like the rest of `--mode nftables`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestra::api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use orchestra::api::{Client, IntOrString, LocalClient, ObjectMeta};
use orchestra::mesh::nftables::{NftablesProxy, NftablesProxyConfig};
use orchestra::mesh::{
    FollowerConfig, ProxyError, ProxyFollower, ServiceKey, ServiceProxy, ServiceTable,
};
use orchestra::store::MemStore;
use serde::Serialize;
use tokio::sync::watch;

use super::nftables::{Netns, median, ms, ready};
use crate::bench::BenchError;

/// One result line of the follower test.
#[derive(Clone, Debug, Serialize)]
pub struct FollowerResult {
    /// Always `"proxy"`.
    pub bench: &'static str,
    /// Always `"nftables"`.
    pub mode: &'static str,
    /// Always `"follower"`.
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
    /// From the follower's start to the first apply of the whole table, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_ms: Option<f64>,
    /// One Endpoints update, from the API call to the applied notification, ms (median).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_ms: Option<f64>,
    /// The slowest of those, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_max_ms: Option<f64>,
    /// Of which inside the proxy's apply (diff, plan, nft), ms (median).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_proxy_ms: Option<f64>,
    /// How many updates were measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_samples: Option<usize>,
}

impl FollowerResult {
    fn skipped(reason: String) -> Self {
        FollowerResult {
            bench: "proxy",
            mode: "nftables",
            test: "follower",
            skipped: Some(reason),
            services: None,
            endpoints: None,
            first_ms: None,
            change_ms: None,
            change_max_ms: None,
            change_proxy_ms: None,
            change_samples: None,
        }
    }
}

/// Endpoints updates measured per size.
const CHANGES: usize = 9;

/// How long any one wait for the follower may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// An NftablesProxy that remembers how long its last apply took.
struct Timed {
    proxy: NftablesProxy,
    last: Mutex<Duration>,
}

impl Timed {
    fn last(&self) -> Duration {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, started: Instant) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = started.elapsed();
    }
}

#[async_trait]
impl ServiceProxy for Timed {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        let started = Instant::now();
        let result = self.proxy.apply(table).await;
        self.record(started);
        result
    }

    async fn apply_changed(
        &self,
        table: &ServiceTable,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<(), ProxyError> {
        let started = Instant::now();
        let result = self.proxy.apply_changed(table, changed).await;
        self.record(started);
        result
    }
}

fn failed(what: impl Into<String>) -> impl FnOnce(orchestra::api::ApiError) -> BenchError {
    let what = what.into();
    move |e| BenchError::Proxy {
        what,
        source: Box::new(e),
    }
}

/// Service `i` (in namespace `default`, ClusterIP from 127.2.0.0/16, the default range).
fn service(i: u32) -> Service {
    Service {
        metadata: ObjectMeta {
            name: format!("s{i}"),
            namespace: "default".into(),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            cluster_ip: format!("127.2.{}.{}", i / 250, i % 250 + 1),
            ports: vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        status: None,
    }
}

/// The Endpoints of service `i`: `count` addresses from 10.128.0.0/9.
fn endpoints(i: u32, count: u32) -> Endpoints {
    let base = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0)) + i * count;
    Endpoints {
        metadata: ObjectMeta {
            name: format!("s{i}"),
            namespace: "default".into(),
            ..ObjectMeta::default()
        },
        subsets: vec![EndpointSubset {
            addresses: (1..=count)
                .map(|n| EndpointAddress {
                    ip: std::net::Ipv4Addr::from(base + n).to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                port: 8080,
                ..EndpointPort::default()
            }],
        }],
    }
}

/// Waits until the applied table satisfies `done`.
async fn until(
    applied: &mut watch::Receiver<Arc<ServiceTable>>,
    done: impl Fn(&ServiceTable) -> bool,
) -> Result<(), BenchError> {
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            if applied.changed().await.is_err() {
                return false;
            }
            if done(&applied.borrow_and_update()) {
                return true;
            }
        }
    })
    .await;
    match waited {
        Ok(true) => Ok(()),
        Ok(false) => Err(BenchError::Proxy {
            what: "following the API".into(),
            source: "the follower stopped".into(),
        }),
        Err(_) => Err(BenchError::Proxy {
            what: "following the API".into(),
            source: format!("the change was not applied within {PATIENCE:?}").into(),
        }),
    }
}

/// Runs the follower test for each size, printing one line per size.
pub async fn run(
    sizes: &[u32],
    count: u32,
    print: impl Fn(&FollowerResult) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    if let Err(reason) = ready() {
        return print(&FollowerResult::skipped(reason));
    }
    let netns = Netns::new()?;
    for &services in sizes {
        let client = LocalClient::new(MemStore::new());
        tracing::info!(services, "creating services and endpoints");
        let mut changing = None;
        for i in 0..services {
            client
                .create(&service(i))
                .await
                .map_err(failed("a service"))?;
            let created = client
                .create(&endpoints(i, count))
                .await
                .map_err(failed("an endpoints object"))?;
            if i == services / 2 {
                changing = Some(created);
            }
        }
        let Some(mut changing) = changing else {
            continue;
        };
        let key = ServiceKey::new("default", changing.metadata.name.clone(), "");
        let proxy = Arc::new(Timed {
            proxy: NftablesProxy::new(NftablesProxyConfig::in_netns(&netns.0)),
            last: Mutex::new(Duration::ZERO),
        });
        let follower = ProxyFollower::new(
            client.clone(),
            Arc::clone(&proxy),
            FollowerConfig {
                debounce: Duration::ZERO,
                ..FollowerConfig::default()
            },
        );
        let mut applied = follower.applied();
        let started = Instant::now();
        let task = tokio::spawn(follower.run());
        let full = services as usize;
        let has = |table: &ServiceTable, key: &ServiceKey, n: usize| {
            table.get(key).is_some_and(|e| e.endpoints.len() == n)
        };
        until(&mut applied, |t| {
            t.len() == full && has(t, &key, count as usize)
        })
        .await?;
        let first = started.elapsed();
        let original = changing.subsets[0].addresses.clone();
        let (mut totals, mut proxy_times) = (Vec::new(), Vec::new());
        for n in 0..CHANGES {
            let mut addresses = original.clone();
            if n % 2 == 0 {
                addresses.pop();
            }
            let expect = addresses.len();
            changing.subsets[0].addresses = addresses;
            let started = Instant::now();
            changing = client
                .update(&changing)
                .await
                .map_err(failed("updating the endpoints"))?;
            until(&mut applied, |t| has(t, &key, expect)).await?;
            totals.push(started.elapsed());
            proxy_times.push(proxy.last());
        }
        task.abort();
        let _ = task.await;
        let max = totals.iter().max().copied().unwrap_or_default();
        print(&FollowerResult {
            skipped: None,
            services: Some(services),
            endpoints: Some(count),
            first_ms: Some(ms(first)),
            change_ms: Some(ms(median(&mut totals))),
            change_max_ms: Some(ms(max)),
            change_proxy_ms: Some(ms(median(&mut proxy_times))),
            change_samples: Some(CHANGES),
            ..FollowerResult::skipped(String::new())
        })?;
        proxy
            .proxy
            .delete_table()
            .await
            .map_err(|e| BenchError::Proxy {
                what: "deleting the table".into(),
                source: Box::new(e),
            })?;
    }
    Ok(())
}
