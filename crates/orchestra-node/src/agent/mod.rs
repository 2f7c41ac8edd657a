//! The node agent (kubelet's job): registers its [`Node`](orchestra_api::resources::Node),
//! renews its Lease, and runs the pods bound to it through a [`RuntimeDriver`].
//!
//! [`Agent::run`] watches the pods whose `spec.nodeName` is the node and runs one worker task
//! per pod. A worker puts the agent's [finalizer](FINALIZER) on its pod (so that a delete only
//! marks it, with a deletionTimestamp), then loops: read the runtime's state of the pod's
//! sandbox and containers, ask the [state machine](crate::pod::plan) for actions, carry them
//! out, run the containers' [probes](crate::probe), and write the pod's status when it changed.
//! A worker waits between rounds until its pod changes, a probe reports, the
//! [relist](pleg) sees its containers change, a timer of the plan (a back-off) ends, or the
//! long resync interval passes: idle pods cost no runtime calls.
//! On deletion it stops the containers with the pod's grace period, writes the final status,
//! and removes the finalizer (which lets the registry delete the pod); a pod that vanishes from
//! the API is killed and removed from the runtime. On start the agent lists the runtime and
//! hands each pod's sandbox and containers (found by the pod-uid label) back to its worker, so
//! an agent restart restarts nothing that was healthy; sandboxes of pods the API no longer has
//! are removed.
//!
//! ```
//! use std::time::Duration;
//! use orchestra_api::resources::{PodPhase, Pod};
//! use orchestra_api::{Client, LocalClient, testing};
//! use orchestra_node::agent::{Agent, AgentConfig};
//! use orchestra_node::fake::FakeRuntime;
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! let mut web = testing::pod("default", "web", "web");
//! web.spec.node_name = "node-1".into();
//! client.create(&web).await?;
//! let agent = Agent::new(client.clone(), FakeRuntime::new(), AgentConfig::new("node-1"));
//! // Run for two (paused) seconds; a real agent runs until SIGTERM.
//! agent.run(tokio::time::sleep(Duration::from_secs(2))).await;
//! let web: Pod = client.get("default", "web").await?;
//! assert_eq!(web.status.unwrap().phase, Some(PodPhase::Running));
//! # Ok::<(), orchestra_api::ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`node`]: the Node object, its status and lease.
//! - [`env`]: the variables added to every container (services, DNS settings).
//! - [`events`]: the events the agent records (`Pulled`, `Started`, `BackOff`, `Unhealthy`...).
//! - [`resolve`]: a container's environment from the pod, ConfigMaps and Secrets (pure), with
//!   [`expand`] for `$(VAR)` references.
//! - [`volumes`]: the pod's volumes on disk and the containers' mounts.
//! - [`objects`]: the watched ConfigMaps and Secrets of the pods' volumes.
//! - [`pleg`]: the periodic relist of the runtime that wakes the workers of changed pods.
//! - [`prepare`]: fetches what a container refers to and builds its runtime configuration.
//! - [`refresh`]: the refresh of running pods' ConfigMap, Secret and downward API volumes
//!   (on a watched object's change, and periodically for the downward API and tokens).
//! - [`tokens`]: service account tokens for projected volumes, issued by the API server and
//!   renewed at 80% of their lifetime.
//! - `worker`: the per-pod worker.

pub mod env;
pub mod events;
pub mod expand;
pub mod node;
pub mod objects;
pub mod pleg;
pub mod prepare;
pub mod refresh;
pub mod resolve;
pub mod tokens;
pub mod volumes;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::resources::{Pod, Service};
use orchestra_api::watcher::{self, Event, WatcherConfig};
use orchestra_api::{Client, FieldSelector, Quantity, reflector};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use worker::{Adopted, FINALIZER, container_config, sandbox_config};

use crate::runtime::{RuntimeDriver, RuntimeState, SandboxState};

/// How an agent describes and runs its node.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The node's name (a DNS subdomain).
    pub node_name: String,
    /// CPU capacity.
    pub cpu: Quantity,
    /// Memory capacity.
    pub memory: Quantity,
    /// How many pods the node runs at most.
    pub pods: u32,
    /// The node's InternalIP (also each pod's hostIP).
    pub address: String,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// The lease's duration (`leaseDurationSeconds`), 40 s.
    pub lease_duration: Duration,
    /// How often the lease is renewed, 10 s.
    pub lease_renew_interval: Duration,
    /// How often the node status is posted, 5 minutes.
    pub status_report_interval: Duration,
    /// How often the agent relists the runtime to notice container changes (the [`pleg`]
    /// period), 1 s: a pod whose containers changed state has its worker woken within it.
    pub sync_interval: Duration,
    /// How often a pod worker re-reads its pod from the runtime when nothing woke it (a
    /// safety net behind the relist, as kubelet's periodic resync), 1 minute.
    pub resync_interval: Duration,
    /// The cluster DNS that `dnsPolicy: ClusterFirst` pods are pointed at (none by default:
    /// pods keep the host's resolver).
    pub cluster_dns: Option<env::ClusterDnsSettings>,
    /// The port of the agent's endpoint (container logs), published in the node status as
    /// `daemonEndpoints.kubeletEndpoint.Port` (none by default: no endpoint runs).
    pub endpoint_port: Option<u16>,
    /// Where pods' volumes are written, one directory per pod uid (`orchestra-agent/<node>/pods`
    /// under the system's temporary directory by default; set it to a directory of the node's
    /// state).
    pub volumes_dir: PathBuf,
    /// How often a running pod's ConfigMap, Secret and downward API volumes are
    /// [refreshed](refresh) when nothing changed, 1 minute (kubelet's sync period): a watched
    /// ConfigMap or Secret that changes is written at once, and this period serves the
    /// downward API and the tokens; it reads the objects from the cache, not the API.
    pub volume_refresh_interval: Duration,
    /// The watched ConfigMaps and Secrets of the pods' volumes (shared by clones of the
    /// configuration: one cache per agent).
    pub objects: objects::ObjectCache,
    /// The service account tokens of the pods' projected volumes (shared by clones of the
    /// configuration: one cache per agent).
    pub service_account_tokens: tokens::TokenCache,
}

impl AgentConfig {
    /// Defaults for `node_name`: the machine's CPU count, its memory (8 GiB where
    /// `/proc/meminfo` cannot be read), 110 pods, address 127.0.0.1.
    pub fn new(node_name: impl Into<String>) -> Self {
        let node_name: String = node_name.into();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        AgentConfig {
            node_name: node_name.clone(),
            cpu: Quantity::from_value(i64::try_from(cpus).unwrap_or(1)),
            memory: Quantity::from_bytes(machine_memory().unwrap_or(8 << 30)),
            pods: 110,
            address: "127.0.0.1".into(),
            labels: BTreeMap::new(),
            lease_duration: Duration::from_secs(40),
            lease_renew_interval: Duration::from_secs(10),
            status_report_interval: Duration::from_secs(300),
            sync_interval: Duration::from_secs(1),
            resync_interval: Duration::from_secs(60),
            cluster_dns: None,
            endpoint_port: None,
            volumes_dir: std::env::temp_dir()
                .join("orchestra-agent")
                .join(&node_name)
                .join("pods"),
            volume_refresh_interval: Duration::from_secs(60),
            service_account_tokens: tokens::TokenCache::default(),
            objects: objects::ObjectCache::default(),
        }
    }
}

/// The machine's memory from `/proc/meminfo`, in bytes.
fn machine_memory() -> Option<i64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The node agent over a [`Client`] and a [`RuntimeDriver`] (see the [module docs](self)).
pub struct Agent<C, R> {
    client: C,
    runtime: Arc<R>,
    config: Arc<AgentConfig>,
    events: events::AgentEvents,
    wakers: Arc<pleg::Wakers>,
}

impl<C: Client, R: RuntimeDriver> Agent<C, R> {
    /// An agent; nothing happens until [`Agent::run`].
    pub fn new(client: C, runtime: R, config: AgentConfig) -> Self {
        Self::with_shared_runtime(client, Arc::new(runtime), config)
    }

    /// An agent over a runtime shared with the caller.
    pub fn with_shared_runtime(client: C, runtime: Arc<R>, config: AgentConfig) -> Self {
        Agent {
            events: events::AgentEvents::new(&client, &config.node_name),
            client,
            runtime,
            config: Arc::new(config),
            wakers: Arc::default(),
        }
    }

    /// Runs until `shutdown` completes. Errors are logged and retried, never fatal. Stopping
    /// leaves the pods running in the runtime: the next agent re-adopts them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut background = JoinSet::new();
        let (client, config, runtime, events) = (
            self.client.clone(),
            self.config.clone(),
            self.runtime.clone(),
            self.events.clone(),
        );
        background.spawn(async move {
            let mut delay = Duration::from_millis(200);
            while let Err(err) = node::register(&client, &config, runtime.name()).await {
                tracing::warn!(node = %config.node_name, %err, ?delay, "registering the node failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(7));
            }
            events.node_started();
            // Both loops live in this task, so stopping the agent stops them.
            tokio::join!(
                node::status_loop(client.clone(), config.clone(), runtime.name().to_owned()),
                node::lease_loop(client, config),
            );
        });
        // The namespace's services become the containers' environment (service links).
        let (services, services_writer) = reflector::store::<Service>();
        let service_events = reflector::reflector(
            services_writer,
            watcher::watcher::<Service, C>(self.client.clone(), WatcherConfig::default()),
        );
        background.spawn(pleg::run(
            self.runtime.clone(),
            self.wakers.clone(),
            self.config.sync_interval,
            self.config.node_name.clone(),
        ));
        let node_name = self.config.node_name.clone();
        background.spawn(async move {
            futures::pin_mut!(service_events);
            while let Some(event) = service_events.next().await {
                if let Err(err) = event {
                    tracing::warn!(node = %node_name, %err, "watching services failed; retrying");
                }
            }
        });
        tokio::select! {
            () = shutdown => {}
            () = self.dispatch(&services) => {}
        }
        background.shutdown().await;
    }

    /// Follows the node's pods and runs their workers. Never returns.
    async fn dispatch(&self, services: &reflector::Store<Service>) {
        let mut adopted = self.adopt().await;
        let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
        let mut tasks = JoinSet::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let selector = FieldSelector::equals("spec.nodeName", self.config.node_name.clone());
        let mut events = watcher::watcher::<Pod, C>(
            self.client.clone(),
            WatcherConfig::default().fields(selector),
        );
        let mut listed_once = false;
        loop {
            let event = tokio::select! {
                Some(uid) = done_rx.recv() => {
                    workers.remove(&uid);
                    self.wakers.remove(&uid);
                    continue;
                }
                event = events.next() => event,
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(err)) => {
                    tracing::warn!(node = %self.config.node_name, %err, "watching pods failed; retrying");
                    continue;
                }
                None => return,
            };
            match event {
                Event::Restarted(pods) => {
                    let present: std::collections::HashSet<String> =
                        pods.iter().map(|p| p.metadata.uid.clone()).collect();
                    for (uid, tx) in &workers {
                        if !present.contains(uid) {
                            let _ = tx.send(None);
                        }
                    }
                    for pod in pods {
                        self.deliver(
                            pod,
                            &mut workers,
                            &mut tasks,
                            &mut adopted,
                            &done_tx,
                            services,
                        );
                    }
                    if !listed_once {
                        listed_once = true;
                        self.remove_orphans(std::mem::take(&mut adopted)).await;
                        self.remove_orphan_volumes(&present);
                    }
                }
                Event::Applied(pod) => {
                    self.deliver(
                        pod,
                        &mut workers,
                        &mut tasks,
                        &mut adopted,
                        &done_tx,
                        services,
                    );
                }
                Event::Deleted(pod) => {
                    if let Some(tx) = workers.get(&pod.metadata.uid) {
                        let _ = tx.send(None);
                    }
                }
            }
        }
    }

    fn deliver(
        &self,
        pod: Arc<Pod>,
        workers: &mut HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
        tasks: &mut JoinSet<()>,
        adopted: &mut HashMap<String, Adopted>,
        done: &mpsc::UnboundedSender<String>,
        services: &reflector::Store<Service>,
    ) {
        let uid = pod.metadata.uid.clone();
        if let Some(tx) = workers.get(&uid) {
            let _ = tx.send(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        let worker = worker::Worker::new(
            self.client.clone(),
            self.runtime.clone(),
            self.config.clone(),
            rx,
            adopted.remove(&uid).unwrap_or_default(),
            services.clone(),
            self.events.clone(),
        );
        self.wakers.insert(uid.clone(), worker.notify.clone());
        let done = done.clone();
        tasks.spawn(async move {
            worker.run().await;
            let _ = done.send(uid);
        });
    }

    /// What the runtime holds, by pod uid (retrying until the runtime answers).
    async fn adopt(&self) -> HashMap<String, Adopted> {
        let mut delay = Duration::from_millis(200);
        let state = loop {
            match self.runtime.list().await {
                Ok(state) => break state,
                Err(err) => {
                    tracing::warn!(%err, ?delay, "listing the runtime failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(7));
                }
            }
        };
        group_by_pod(state)
    }

    /// Removes the volume directories of pods the API does not have (found at start: the
    /// agent may have stopped before their workers cleaned up).
    fn remove_orphan_volumes(&self, present: &std::collections::HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.config.volumes_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if !present.contains(&uid)
                && let Err(err) = volumes::remove_pod_dir(&entry.path())
            {
                tracing::warn!(%uid, %err, "removing the volumes of a gone pod failed");
            }
        }
    }

    /// Removes the sandboxes of pods the API does not have (found at start).
    async fn remove_orphans(&self, orphans: HashMap<String, Adopted>) {
        for (uid, adopted) in orphans {
            if let Some(id) = adopted.sandbox {
                tracing::info!(%uid, sandbox = %id, "removing the sandbox of a pod the API no longer has");
                let stopped = self.runtime.stop_pod_sandbox(&id).await;
                if let Err(err) = stopped.and(self.runtime.remove_pod_sandbox(&id).await) {
                    tracing::warn!(sandbox = %id, %err, "removing an orphaned sandbox failed");
                }
            }
        }
    }
}

/// Groups a runtime listing by pod uid: each pod's newest sandbox (a ready one first) and its
/// containers. Older sandboxes of the same pod are left for the state machine to replace.
pub fn group_by_pod(state: RuntimeState) -> HashMap<String, Adopted> {
    let mut best: HashMap<String, &crate::runtime::SandboxStatus> = HashMap::new();
    for sandbox in &state.sandboxes {
        let key = (
            sandbox.state == SandboxState::Ready,
            sandbox.config.attempt,
            sandbox.created_at,
        );
        let entry = best.entry(sandbox.config.uid.clone()).or_insert(sandbox);
        let current = (
            entry.state == SandboxState::Ready,
            entry.config.attempt,
            entry.created_at,
        );
        if key > current {
            *entry = sandbox;
        }
    }
    best.into_iter()
        .map(|(uid, sandbox)| {
            let containers = state
                .containers
                .iter()
                .filter(|c| c.sandbox == sandbox.id)
                .map(|c| c.id.clone())
                .collect();
            (
                uid,
                Adopted {
                    sandbox: Some(sandbox.id.clone()),
                    containers,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRuntime;
    use crate::runtime::{ContainerConfig, SandboxConfig};

    #[tokio::test(start_paused = true)]
    async fn adoption_groups_by_pod_uid_preferring_the_ready_newest_sandbox() {
        let runtime = FakeRuntime::new();
        let sandbox = |uid: &str, attempt| SandboxConfig {
            uid: uid.into(),
            attempt,
            ..SandboxConfig::default()
        };
        let old = runtime.run_pod_sandbox(&sandbox("a", 0)).await.unwrap();
        runtime.stop_pod_sandbox(&old).await.unwrap();
        let current = runtime.run_pod_sandbox(&sandbox("a", 1)).await.unwrap();
        let other = runtime.run_pod_sandbox(&sandbox("b", 0)).await.unwrap();
        let config = ContainerConfig {
            name: "main".into(),
            ..ContainerConfig::default()
        };
        let in_current = runtime.create_container(&current, &config).await.unwrap();
        runtime.create_container(&old, &config).await.ok();
        let in_other = runtime.create_container(&other, &config).await.unwrap();

        let grouped = group_by_pod(runtime.list().await.unwrap());
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped["a"].sandbox, Some(current));
        assert_eq!(grouped["a"].containers, vec![in_current]);
        assert_eq!(grouped["b"].sandbox, Some(other));
        assert_eq!(grouped["b"].containers, vec![in_other]);
    }
}
