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
//!
//! # Endpoint identities
//! A follower made [`with_endpoint_identities`](ProxyFollower::with_endpoint_identities)
//! (the mesh sidecar's) also follows Pods, keeping only each pod's uid and ServiceAccount
//! ([`PodAccounts`]), and builds its table with each endpoint's account
//! ([`build_table_with_identities`]): the identity the mesh's outbound proxy then requires
//! of that endpoint. It applies no table before the first list of pods, so that no endpoint
//! is routed to without its identity for want of a pod list. Pods change often (their
//! status) but their accounts never do, so a pod event costs a rebuild only when it brings
//! a pod that an endpoint was waiting for (its Endpoints arrived before it, or name a newer
//! pod than the one known): such endpoints are built without identity, and their services
//! are rebuilt when the pod arrives.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::resources::{Endpoints, Pod, Service};
use orchestra_api::watcher::{self, Event, WatcherConfig};
use orchestra_api::{Client, Resource, reflector};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::proxy::ServiceProxy;
use crate::table::{
    PodAccounts, ServiceKey, ServiceTable, TableWarning, build_table, build_table_with_identities,
};

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
    /// Whether Pods are followed too, for the endpoints' identities.
    identities: bool,
}

impl<C: Client + Clone, P: ServiceProxy> ProxyFollower<C, P> {
    /// A follower of `client`'s Services and Endpoints feeding `proxy`.
    pub fn new(client: C, proxy: Arc<P>, config: FollowerConfig) -> Self {
        ProxyFollower {
            client,
            proxy,
            config,
            applied: watch::Sender::new(Arc::new(ServiceTable::new())),
            identities: false,
        }
    }

    /// Also follows Pods, and gives the table each endpoint's ServiceAccount (see the
    /// module docs): what the mesh sidecar's outbound proxy checks servers against. The
    /// client must be allowed to list and watch pods cluster-wide; until the pods are
    /// listed, no table is applied.
    pub fn with_endpoint_identities(mut self) -> Self {
        self.identities = true;
        self
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
        let table_events = futures::stream::select(
            service_events.map(|event| event.map(|e| Watched::Table(Touched::of(&e)))),
            endpoint_events.map(|event| event.map(|e| Watched::Table(Touched::of(&e)))),
        );
        let pod_events = if self.identities {
            watcher::watcher::<Pod, _>(self.client.clone(), WatcherConfig::default())
                .map(|event| event.map(Watched::Pods))
                .boxed()
        } else {
            futures::stream::pending().boxed()
        };
        let mut changes = futures::stream::select(table_events, pod_events);
        // The follower's table, kept from one apply to the next.
        let mut table = ServiceTable::new();
        let mut dirty = Dirty::default();
        // The pods' accounts (`None`: identities off, or the pods not listed yet).
        let mut pods = Pods::default();
        // The keys changed since the last apply that succeeded: what the proxy is told.
        let mut changed: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut due: Option<Instant> = None;
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(watched)) => {
                        let touched = match watched {
                            Watched::Table(touched) => vec![touched],
                            Watched::Pods(event) => pods.note(&event),
                        };
                        if touched.is_empty() {
                            continue;
                        }
                        for touched in touched {
                            dirty.note(touched);
                        }
                        // The window starts at the first change, so a steady stream of
                        // changes still gets applied every `debounce`.
                        due.get_or_insert_with(|| Instant::now() + self.config.debounce);
                    }
                    Some(Err(error)) => warn!(%error, "watching services, endpoints or pods failed; retrying"),
                    // Watchers never end; if they do, nothing more will change.
                    None => return,
                },
                () = sleep_until_due(due) => {
                    let pods_listed = !self.identities || pods.accounts.is_some();
                    if !(services.is_ready() && endpoints.is_ready() && pods_listed) {
                        // A partial view would close services whose other half is not listed
                        // yet, or route to endpoints without their identities; what changed
                        // waits for the next event (the missing kind's list).
                        due = None;
                        continue;
                    }
                    let edited = rebuild(&mut table, &services, &endpoints, &mut pods, std::mem::take(&mut dirty));
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

/// One event of the watches, as the loop needs it.
enum Watched {
    /// A Service or Endpoints event.
    Table(Touched),
    /// A Pod event (only when following identities).
    Pods(Event<Pod>),
}

/// A namespace and a name.
type Name = (String, String);

/// The pods' accounts, and the services whose endpoints wait for a pod.
#[derive(Debug, Default)]
struct Pods {
    /// `None` until the first list of pods (and always, without identities).
    accounts: Option<PodAccounts>,
    /// Pod -> the services whose endpoints name it but were built without its account
    /// (not known then, or known with another uid).
    awaited: HashMap<Name, BTreeSet<Name>>,
    /// Service -> the pods it waits for, to forget them when it is rebuilt.
    waiting: HashMap<Name, Vec<Name>>,
}

impl Pods {
    /// Applies a pod event; returns the services to rebuild.
    fn note(&mut self, event: &Event<Pod>) -> Vec<Touched> {
        match event {
            Event::Restarted(pods) => {
                self.accounts
                    .get_or_insert_with(PodAccounts::new)
                    .replace_all(pods.iter().map(AsRef::as_ref));
                // Any endpoint's identity may have changed: rebuild everything (which
                // collects the waiting endpoints afresh).
                vec![Touched::All]
            }
            Event::Applied(pod) => {
                // Before the first list, the list will bring this pod as well.
                let Some(accounts) = self.accounts.as_mut() else {
                    return Vec::new();
                };
                if !accounts.insert(pod) {
                    return Vec::new();
                }
                let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
                self.awaited
                    .remove(&key)
                    .into_iter()
                    .flatten()
                    .map(|(namespace, name)| Touched::One(namespace, name))
                    .collect()
            }
            Event::Deleted(pod) => {
                // The Endpoints controller drops the pod's address; should a rebuild come
                // first, the address gets no identity, as one of an unknown pod.
                if let Some(accounts) = self.accounts.as_mut() {
                    accounts.remove(&pod.metadata.namespace, &pod.metadata.name);
                }
                self.awaited
                    .remove(&(pod.metadata.namespace.clone(), pod.metadata.name.clone()));
                Vec::new()
            }
        }
    }

    /// Forgets everything waited for (before a rebuild of every service).
    fn clear_waiting(&mut self) {
        self.awaited.clear();
        self.waiting.clear();
    }

    /// Records what service `service` (just rebuilt from `endpoints`) waits for: the pods
    /// its endpoints name whose account is not known.
    fn rebuilt(&mut self, service: Name, endpoints: Option<&Endpoints>) {
        for pod in self.waiting.remove(&service).into_iter().flatten() {
            if let Some(services) = self.awaited.get_mut(&pod) {
                services.remove(&service);
                if services.is_empty() {
                    self.awaited.remove(&pod);
                }
            }
        }
        let (Some(accounts), Some(endpoints)) = (&self.accounts, endpoints) else {
            return;
        };
        let namespace = &endpoints.metadata.namespace;
        let mut unknown = Vec::new();
        let addresses = endpoints.subsets.iter().flat_map(|s| s.addresses.iter());
        for target in addresses.filter_map(|a| a.target_ref.as_ref()) {
            let is_pod =
                (target.kind.is_empty() || target.kind == "Pod") && !target.name.is_empty();
            if is_pod && accounts.lookup(target, namespace).is_none() {
                let pod_namespace = if target.namespace.is_empty() {
                    namespace
                } else {
                    &target.namespace
                };
                unknown.push((pod_namespace.clone(), target.name.clone()));
            }
        }
        for pod in &unknown {
            self.awaited
                .entry(pod.clone())
                .or_default()
                .insert(service.clone());
        }
        if !unknown.is_empty() {
            self.waiting.insert(service, unknown);
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
/// from the caches (with the pods' accounts when they are followed), and returns the keys
/// whose entries changed.
fn rebuild(
    table: &mut ServiceTable,
    services: &reflector::Store<Service>,
    endpoints: &reflector::Store<Endpoints>,
    pods: &mut Pods,
    dirty: Dirty,
) -> Vec<ServiceKey> {
    if dirty.all {
        let services = services.list();
        let endpoints = endpoints.list();
        let built = build(
            pods.accounts.as_ref(),
            services.iter().map(AsRef::as_ref),
            endpoints.iter().map(AsRef::as_ref),
        );
        pods.clear_waiting();
        for endpoints in &endpoints {
            let meta = &endpoints.metadata;
            let name = (meta.namespace.clone(), meta.name.clone());
            pods.rebuilt(name, Some(endpoints));
        }
        return table.replace_all(built);
    }
    let mut changed = Vec::new();
    for (namespace, name) in dirty.services {
        let service = services.get(&namespace, &name);
        let endpoints = endpoints.get(&namespace, &name);
        let built = build(
            pods.accounts.as_ref(),
            service.as_deref(),
            endpoints.as_deref(),
        );
        changed.extend(table.replace_service(&namespace, &name, built));
        pods.rebuilt((namespace, name), endpoints.as_deref());
    }
    changed
}

/// [`build_table`], or [`build_table_with_identities`] when the pods' accounts are
/// followed; logs the warnings.
fn build<'a>(
    accounts: Option<&PodAccounts>,
    services: impl IntoIterator<Item = &'a Service>,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
) -> ServiceTable {
    let built = match accounts {
        Some(accounts) => build_table_with_identities(services, endpoints, accounts),
        None => build_table(services, endpoints),
    };
    log_warnings(&built.warnings);
    built.table
}

/// Logs what [`build_table`] had to leave out of the services it rebuilt.
fn log_warnings(warnings: &[TableWarning]) {
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
