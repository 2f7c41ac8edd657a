//! [`ProxyFollower`]: keeps a [`ServiceProxy`] in step with the API's Services and Endpoints.
//!
//! It watches both kinds through any `orchestra_api::Client` with the shared watcher and
//! reflector caches, and after a change (debounced: a burst of endpoint updates during a
//! rollout becomes one apply) applies the [`ServiceTable`] to the proxy.
//!
//! # A change costs what changed
//! The follower keeps its table from one apply to the next and rebuilds only the services
//! that events named since ([`build_table`] over that service and its Endpoints, replacing
//! its ports with [`ServiceTable::replace_service`]); a relist of either kind (the watch's
//! first list, or one after it lost its place) rebuilds the whole table. Unchanged entries
//! keep their allocations, and the proxy is handed the keys that changed since the last
//! apply that succeeded ([`ServiceProxy::apply_changed`]), so a proxy that uses them (the
//! nftables one) never looks at the other 29,999 services of a one-service change.
//!
//! A failed apply is retried after a delay, with the changed keys of every apply since the
//! last one that succeeded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::resources::{Endpoints, Service};
use orchestra_api::watcher::{self, Event, WatcherConfig};
use orchestra_api::{Client, Resource, reflector};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::proxy::ServiceProxy;
use crate::table::{ServiceKey, ServiceTable, build_table};

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

    /// The table applied last (successfully or not), updated after every apply (for
    /// readiness and tests). It shares its entries with the follower's own table and follows
    /// it by the keys each apply changed; a receiver that keeps a clone of the `Arc` makes
    /// the next update copy the table first.
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
            service_events.map(|event| event.map(|e| Touched::of(&e))),
            endpoint_events.map(|event| event.map(|e| Touched::of(&e))),
        );
        // The follower's table, kept from one apply to the next.
        let mut table = ServiceTable::new();
        let mut dirty = Dirty::default();
        // The keys changed since the last apply that succeeded: what the proxy is told.
        let mut changed: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut due: Option<Instant> = None;
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(touched)) => {
                        dirty.note(touched);
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
                        // A partial view would close services whose other half is not listed
                        // yet; what changed waits for the next event (the other kind's list).
                        due = None;
                        continue;
                    }
                    let edited = rebuild(&mut table, &services, &endpoints, std::mem::take(&mut dirty));
                    changed.extend(edited.iter().cloned());
                    debug!(ports = table.len(), changed = changed.len(), "applying service table");
                    due = match self.proxy.apply_changed(&table, &changed).await {
                        Ok(()) => {
                            changed.clear();
                            None
                        }
                        Err(error) => {
                            warn!(%error, retry_in = ?self.config.retry, "applying the service table failed");
                            Some(Instant::now() + self.config.retry)
                        }
                    };
                    self.applied.send_modify(|applied| {
                        // No copy unless a receiver still holds the previous table.
                        Arc::make_mut(applied).copy_entries(&table, &edited);
                    });
                }
            }
        }
    }
}

/// What one watch event touched.
#[derive(Debug)]
enum Touched {
    /// Every object of its kind (a relist).
    All,
    /// The object (namespace, name): a Service and its Endpoints share the name.
    One(String, String),
}

impl Touched {
    fn of<R: Resource>(event: &Event<R>) -> Self {
        match event {
            Event::Restarted(_) => Touched::All,
            Event::Applied(object) | Event::Deleted(object) => {
                let meta = object.meta();
                Touched::One(meta.namespace.clone(), meta.name.clone())
            }
        }
    }
}

/// The services whose ports must be rebuilt before the next apply.
#[derive(Debug, Default)]
struct Dirty {
    /// Every service (after a relist).
    all: bool,
    /// These services, as (namespace, name).
    services: BTreeSet<(String, String)>,
}

impl Dirty {
    fn note(&mut self, touched: Touched) {
        match touched {
            Touched::All => self.all = true,
            Touched::One(namespace, name) => {
                if !self.all {
                    self.services.insert((namespace, name));
                }
            }
        }
    }
}

/// Rebuilds the ports of the `dirty` services in `table` (every service after a relist)
/// from the caches, and returns the keys whose entries changed.
fn rebuild(
    table: &mut ServiceTable,
    services: &reflector::Store<Service>,
    endpoints: &reflector::Store<Endpoints>,
    dirty: Dirty,
) -> Vec<ServiceKey> {
    if dirty.all {
        let services = services.list();
        let endpoints = endpoints.list();
        let built = build_table(
            services.iter().map(|s| s.as_ref()),
            endpoints.iter().map(|e| e.as_ref()),
        );
        log_warnings(&built.warnings);
        return table.replace_all(built.table);
    }
    let mut changed = Vec::new();
    for (namespace, name) in &dirty.services {
        let service = services.get(namespace, name);
        let endpoints = endpoints.get(namespace, name);
        let built = build_table(service.as_deref(), endpoints.as_deref());
        log_warnings(&built.warnings);
        changed.extend(table.replace_service(namespace, name, built.table));
    }
    changed
}

/// Logs what [`build_table`] had to leave out of the services it rebuilt.
fn log_warnings(warnings: &[crate::table::TableWarning]) {
    for warning in warnings {
        warn!(%warning, "service table");
    }
}

/// Completes at `due`, never when there is nothing due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
