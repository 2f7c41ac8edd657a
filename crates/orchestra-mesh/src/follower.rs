//! [`ProxyFollower`]: keeps a [`ServiceProxy`] in step with the API's Services and Endpoints.
//!
//! It watches both kinds through any `orchestra_api::Client` with the shared watcher and
//! reflector caches, and after a change (debounced: a burst of endpoint updates during a
//! rollout becomes one apply) rebuilds the whole [`ServiceTable`] with [`build_table`] and
//! applies it; the proxy applies only the difference. A failed apply is retried after a delay.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::resources::{Endpoints, Service};
use orchestra_api::watcher::{self, WatcherConfig};
use orchestra_api::{Client, reflector};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::proxy::ServiceProxy;
use crate::table::{ServiceTable, build_table};

/// Settings of a [`ProxyFollower`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerConfig {
    /// How long after a change the table is rebuilt, gathering the changes that follow
    /// (default 100 ms).
    pub debounce: Duration,
    /// How long after a failed apply it is tried again (default 5 s).
    pub retry: Duration,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            debounce: Duration::from_millis(100),
            retry: Duration::from_secs(5),
        }
    }
}

/// Follows Services and Endpoints and applies the resulting table to a proxy.
///
/// ```no_run
/// use std::sync::Arc;
/// use orchestra_api::LocalClient;
/// use orchestra_mesh::{FollowerConfig, ProxyFollower, TcpProxy};
/// use orchestra_store::MemStore;
///
/// # async fn example() {
/// let client = LocalClient::new(MemStore::new());
/// let proxy = Arc::new(TcpProxy::default());
/// let follower = ProxyFollower::new(client, proxy, FollowerConfig::default());
/// tokio::spawn(follower.run());
/// # }
/// ```
pub struct ProxyFollower<C, P> {
    /// Where Services and Endpoints come from.
    client: C,
    /// Where the table goes.
    proxy: Arc<P>,
    /// The settings.
    config: FollowerConfig,
    /// The table applied last (successfully or not).
    applied: watch::Sender<Arc<ServiceTable>>,
}

impl<C: Client + Clone, P: ServiceProxy> ProxyFollower<C, P> {
    /// A follower of `client`'s Services and Endpoints feeding `proxy`.
    pub fn new(client: C, proxy: Arc<P>, config: FollowerConfig) -> Self {
        ProxyFollower {
            client,
            proxy,
            config,
            applied: watch::Sender::new(Arc::new(ServiceTable::new())),
        }
    }

    /// The table applied last, updated after every apply (for readiness and tests).
    pub fn applied(&self) -> watch::Receiver<Arc<ServiceTable>> {
        self.applied.subscribe()
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
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(())) => {
                        // The window starts at the first change, so a steady stream of
                        // changes still gets applied every `debounce`.
                        due.get_or_insert_with(|| Instant::now() + self.config.debounce);
                    }
                    Some(Err(error)) => warn!(%error, "watching services or endpoints failed; retrying"),
                    // Watchers never end; if they do, nothing more will change.
                    None => return,
                },
                () = sleep_until_due(due) => {
                    if !(services.is_ready() && endpoints.is_ready()) {
                        // A partial view would close services whose other half is not listed yet.
                        due = None;
                        continue;
                    }
                    let services = services.list();
                    let endpoints = endpoints.list();
                    let built = build_table(
                        services.iter().map(|s| s.as_ref()),
                        endpoints.iter().map(|e| e.as_ref()),
                    );
                    for warning in &built.warnings {
                        warn!(%warning, "service table");
                    }
                    debug!(ports = built.table.len(), "applying service table");
                    due = match self.proxy.apply(&built.table).await {
                        Ok(()) => None,
                        Err(error) => {
                            warn!(%error, retry_in = ?self.config.retry, "applying the service table failed");
                            Some(Instant::now() + self.config.retry)
                        }
                    };
                    self.applied.send_replace(Arc::new(built.table));
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
