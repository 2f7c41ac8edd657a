//! [`DnsFollower`]: keeps a [`DnsSnapshot`] in step with the API's Services and Endpoints.
//!
//! The same mechanism as [`ProxyFollower`](crate::ProxyFollower): the shared watcher and
//! reflector caches of both kinds, and after a change (debounced, so that a rollout's burst
//! of endpoint updates becomes one snapshot) a whole new snapshot, published on a
//! `tokio::sync::watch` channel that the server reads for every query. Building is cheap
//! (no I/O, one pass over the objects), so a short debounce keeps answers fresh.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::resources::{Endpoints, Service};
use orchestra_api::watcher::{self, WatcherConfig};
use orchestra_api::{Client, reflector};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::snapshot::DnsSnapshot;

/// How long after a change the snapshot is rebuilt (default 50 ms: well within the second
/// the issue allows between an Endpoints change and the answer that shows it).
pub const DEFAULT_DNS_DEBOUNCE: Duration = Duration::from_millis(50);

/// Follows Services and Endpoints and publishes DNS snapshots.
///
/// ```no_run
/// use orchestra_api::LocalClient;
/// use orchestra_mesh::dns::{DnsConfig, DnsFollower, DnsServer};
/// use orchestra_store::MemStore;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let client = LocalClient::new(MemStore::new());
/// let follower = DnsFollower::new(client);
/// let server = DnsServer::bind("127.0.0.1:0".parse()?, DnsConfig::default(), follower.snapshots()).await?;
/// tokio::spawn(follower.run());
/// println!("cluster DNS on {}", server.local_addr());
/// # Ok(())
/// # }
/// ```
pub struct DnsFollower<C> {
    client: C,
    debounce: Duration,
    snapshots: watch::Sender<Arc<DnsSnapshot>>,
}

impl<C: Client + Clone> DnsFollower<C> {
    /// A follower of `client`'s Services and Endpoints, with the default debounce.
    pub fn new(client: C) -> Self {
        DnsFollower {
            client,
            debounce: DEFAULT_DNS_DEBOUNCE,
            snapshots: watch::Sender::new(Arc::new(DnsSnapshot::default())),
        }
    }

    /// The same follower with another debounce.
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The snapshots, the latest first (give it to [`DnsServer::bind`](super::DnsServer::bind);
    /// tests wait on it for a change to arrive).
    pub fn snapshots(&self) -> watch::Receiver<Arc<DnsSnapshot>> {
        self.snapshots.subscribe()
    }

    /// Follows forever (drop the future, or abort its task, to stop).
    pub async fn run(self) {
        let (services, service_writer) = reflector::store::<Service>();
        let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
        let service_events = reflector::reflector(
            service_writer,
            watcher::watcher::<Service, _>(self.client.clone(), WatcherConfig::default()),
        );
        let endpoint_events = reflector::reflector(
            endpoints_writer,
            watcher::watcher::<Endpoints, _>(self.client.clone(), WatcherConfig::default()),
        );
        let mut changes = futures::stream::select(
            service_events.map(|event| event.map(|_| ())),
            endpoint_events.map(|event| event.map(|_| ())),
        );
        let mut due: Option<Instant> = None;
        let mut serial: u32 = 0;
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(())) => {
                        due.get_or_insert_with(|| Instant::now() + self.debounce);
                    }
                    Some(Err(error)) => warn!(%error, "cluster DNS: watching services or endpoints failed; retrying"),
                    None => return,
                },
                () = sleep_until_due(due) => {
                    due = None;
                    if !(services.is_ready() && endpoints.is_ready()) {
                        // A half-listed view would answer NXDOMAIN for names that exist.
                        continue;
                    }
                    serial = serial.wrapping_add(1);
                    let services = services.list();
                    let endpoints = endpoints.list();
                    let snapshot = DnsSnapshot::build(
                        services.iter().map(|s| s.as_ref()),
                        endpoints.iter().map(|e| e.as_ref()),
                        serial,
                    );
                    debug!(services = snapshot.len(), serial, "cluster DNS snapshot");
                    self.snapshots.send_replace(Arc::new(snapshot));
                }
            }
        }
    }
}

/// Completes at `due`, never when there is nothing due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
