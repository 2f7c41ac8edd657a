//! The pod worker: one task per pod, which observes the runtime, asks the
//! [state machine](crate::pod) what to do, does it, and writes the pod's status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orchestra_api::resources::{
    Capabilities, Container, Pod, PodPhase, PodStatus, PullPolicy, Service,
};
use orchestra_api::{ApiError, Client, Quantity, reflector};
use tokio::sync::{Notify, watch};

use super::AgentConfig;
use super::events::AgentEvents;
use super::resolve::{PodContext, Sources, expand_command, resolve_env};
use crate::pod::readiness;
use crate::pod::{
    self, Action, Backoff, LABEL_CONTAINER_NAME, LABEL_POD_UID, Observed, StartFailure, clock,
};
use crate::probe::{ProbeResults, Prober};
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerResources, ContainerSecurity, ContainerState,
    RuntimeDriver, RuntimeError, SandboxConfig, SandboxId,
};

/// The finalizer the agent puts on the pods it runs, so that a deletion waits for their
/// containers to stop (the registry deletes an object without finalizers at once).
pub const FINALIZER: &str = "orchestra.io/node-agent";

/// What an agent found in the runtime for one pod when it started.
#[derive(Clone, Debug, Default)]
pub struct Adopted {
    /// The sandbox to keep using.
    pub sandbox: Option<SandboxId>,
    /// Its containers.
    pub containers: Vec<ContainerId>,
}

/// How many action rounds a worker runs before it waits (a guard against a rule that keeps
/// asking for actions).
const MAX_ROUNDS: usize = 16;

/// The first retry of a refused finalizer write, doubling to [`FINALIZER_RETRY_MAX`]. Short,
/// because the usual refusal is transient: the API server's node authorizer learns of the
/// pod's binding from its own watch, which may be a moment behind the agent's; a 1 s wait here
/// was added to every pod start in secure clusters.
const FINALIZER_RETRY_FIRST: Duration = Duration::from_millis(25);

/// The longest wait between retries of a refused finalizer write.
const FINALIZER_RETRY_MAX: Duration = Duration::from_secs(1);

/// How soon a container whose ConfigMap, Secret or volume was missing is tried again.
const CONFIG_RETRY: Duration = Duration::from_secs(10);

pub(super) struct Worker<C, R: ?Sized> {
    pub client: C,
    pub runtime: Arc<R>,
    pub config: Arc<AgentConfig>,
    pub pod: watch::Receiver<Option<Arc<Pod>>>,
    pub sandbox: Option<SandboxId>,
    pub containers: Vec<ContainerId>,
    pub backoff: BTreeMap<String, Backoff>,
    pub failures: BTreeMap<String, StartFailure>,
    pub probes: ProbeResults,
    pub probers: BTreeMap<String, Prober>,
    pub notify: Arc<Notify>,
    pub last_status: Option<PodStatus>,
    /// The cluster's services (for the containers' service variables).
    pub services: reflector::Store<Service>,
    /// The pod the state machine last planned for, and the API object it was built from:
    /// kept so that a resync of an unchanged pod (a relist wake-up or the periodic resync)
    /// does not clone the pod's spec, metadata and status again. Once the API object carries
    /// the status this worker plans from (the usual case, after its write came back through
    /// the watch), the view is that object itself, not a second copy of every idle pod.
    pub view: Option<(Arc<Pod>, Arc<Pod>)>,
    /// Where the worker records the pod's Events.
    pub events: AgentEvents,
    /// The pod's uid (its volume directory's name).
    pub uid: String,
    /// When the pod's ConfigMap, Secret and downward API volumes are next
    /// [refreshed](super::refresh) (none until the pod is seen to have such volumes).
    pub next_volume_refresh: Option<SystemTime>,
}

impl<C: Client, R: RuntimeDriver> Worker<C, R> {
    pub(super) fn new(
        client: C,
        runtime: Arc<R>,
        config: Arc<AgentConfig>,
        pod: watch::Receiver<Option<Arc<Pod>>>,
        adopted: Adopted,
        services: reflector::Store<Service>,
        events: AgentEvents,
    ) -> Self {
        let uid = pod
            .borrow()
            .as_ref()
            .map(|p| p.metadata.uid.clone())
            .unwrap_or_default();
        Worker {
            uid,
            client,
            runtime,
            config,
            pod,
            sandbox: adopted.sandbox,
            containers: adopted.containers,
            backoff: BTreeMap::new(),
            failures: BTreeMap::new(),
            probes: ProbeResults::default(),
            probers: BTreeMap::new(),
            notify: Arc::new(Notify::new()),
            last_status: None,
            services,
            view: None,
            events,
            next_volume_refresh: None,
        }
    }

    /// Runs until the pod is gone from the API and from the runtime.
    ///
    /// The API and runtime calls are awaited boxed: a future is as large as the largest one
    /// it awaits inline, and this one lives as long as its pod, so inline calls through the
    /// client made every idle pod's task about 12 KB (most of a node agent's memory per pod).
    pub(super) async fn run(mut self) {
        let mut has_finalizer = false;
        let mut finalizer_retry = FINALIZER_RETRY_FIRST;
        loop {
            let Some(api_pod) = self.pod.borrow_and_update().clone() else {
                Box::pin(self.clean_up()).await;
                return;
            };
            if self.last_status.is_none() {
                self.last_status = api_pod.status.clone();
            }
            let deleting = api_pod.metadata.deletion_timestamp.is_some();
            if !has_finalizer {
                has_finalizer = api_pod.metadata.finalizers.iter().any(|f| f == FINALIZER);
            }
            // The newest object this worker knows (a write of its own returns one newer than
            // the watch's): the base of its next write, which is conditional on its
            // resourceVersion, so that the write does not conflict with the worker's own.
            let mut newest = api_pod.clone();
            if !has_finalizer && !deleting {
                // The pod goes behind an Arc at once: a `Pod` held across the awaits below
                // would be part of every idle pod's task.
                let added = Box::pin(self.set_finalizer(&api_pod, true))
                    .await
                    .map(|written| written.map(Arc::new));
                match added {
                    Ok(Some(written)) => {
                        has_finalizer = true;
                        newest = written;
                    }
                    Ok(None) => {
                        // Gone meanwhile: the watch will say so.
                    }
                    Err(err) => {
                        if finalizer_retry < FINALIZER_RETRY_MAX {
                            tracing::debug!(pod = %api_pod.metadata.name, %err, retry_in = ?finalizer_retry, "adding the agent's finalizer failed; retrying");
                        } else {
                            tracing::warn!(pod = %api_pod.metadata.name, %err, "adding the agent's finalizer keeps failing; retrying every second");
                        }
                        self.wait(Some(finalizer_retry)).await;
                        finalizer_retry = (finalizer_retry * 2).min(FINALIZER_RETRY_MAX);
                        continue;
                    }
                }
            }
            let pod = self.view_of(&api_pod);

            let mut plan = None;
            for _ in 0..MAX_ROUNDS {
                let observed = Box::pin(self.observe()).await;
                self.sync_probers(&pod, &observed);
                let probes = self
                    .probes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let next = pod::plan(pod::Input {
                    pod: &pod,
                    observed: &observed,
                    probes: &probes,
                    backoff: &self.backoff,
                    failures: &self.failures,
                    runtime: self.runtime.name(),
                    host_ip: &self.config.address,
                    now: clock::now(),
                });
                if next.actions.is_empty() {
                    plan = Some(next);
                    break;
                }
                if let Err(err) = Box::pin(self.execute(&pod, next.actions)).await {
                    tracing::warn!(pod = %pod.metadata.name, %err, "a runtime call failed; retrying");
                    break;
                }
            }
            let mut wake_at = plan.as_ref().and_then(|p| p.wake_at);
            if let Some(plan) = plan {
                if self.last_status.as_ref() != Some(&plan.status) || api_pod.status.is_none() {
                    self.events
                        .status_changed(&pod, self.last_status.as_ref(), &plan.status);
                    let written = Box::pin(self.write_status(&newest, &plan.status))
                        .await
                        .map(|written| written.map(Arc::new));
                    match written {
                        Ok(written) => {
                            self.last_status = Some(plan.status.clone());
                            if let Some(written) = written {
                                newest = written;
                            }
                        }
                        Err(err) if err.is_not_found() => {}
                        Err(err) => {
                            tracing::warn!(pod = %pod.metadata.name, %err, "writing the pod status failed; retrying");
                        }
                    }
                }
                if plan.terminated {
                    // The runtime first: once the finalizer is gone the pod may vanish with
                    // the agent stopping, and nothing would remove its sandbox.
                    Box::pin(self.clean_up()).await;
                    let removed = Box::pin(self.set_finalizer(&newest, false))
                        .await
                        .map(|_| ());
                    match removed {
                        Ok(_) => return,
                        Err(err) => {
                            tracing::warn!(pod = %pod.metadata.name, %err, "removing the agent's finalizer failed; retrying");
                        }
                    }
                }
            }
            if let Some(refresh_at) = self.refresh_volumes_if_due(&pod).await {
                wake_at = Some(wake_at.map_or(refresh_at, |w| w.min(refresh_at)));
            }
            self.view = Some((api_pod, pod));
            let until = wake_at.and_then(|t| t.duration_since(clock::now()).ok());
            self.wait(until).await;
        }
    }

    /// Refreshes the pod's volumes when their time has come; returns when they are next due
    /// (none for a pod without such volumes, one being deleted, or one whose containers have
    /// all finished for good: nothing would read them).
    async fn refresh_volumes_if_due(&mut self, pod: &Pod) -> Option<SystemTime> {
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase),
            Some(PodPhase::Succeeded | PodPhase::Failed)
        );
        if finished
            || pod.metadata.deletion_timestamp.is_some()
            || !super::refresh::has_refreshed_volumes(pod)
        {
            self.config.objects.forget(&self.uid);
            return None;
        }
        let objects = &self.config.objects;
        objects.track(
            &self.client,
            &self.uid,
            &self.notify,
            super::prepare::volume_object_keys(pod),
        );
        let now = clock::now();
        let changed = objects.take_changed(&self.uid);
        let due = self.next_volume_refresh.is_some_and(|due| due <= now);
        if changed || due {
            let pod_ip = self.pod_ip().unwrap_or_default();
            super::refresh::refresh_volumes(&self.client, &self.config, pod, &pod_ip).await;
        }
        match self.next_volume_refresh {
            Some(due) if due > now => Some(due),
            // First seen (the volumes were just written by the containers' start) or just
            // refreshed.
            _ => {
                let next = now + self.config.volume_refresh_interval;
                self.next_volume_refresh = Some(next);
                Some(next)
            }
        }
    }

    /// The pod to plan for: `api_pod` with the status this worker last wrote (the watch may
    /// not have brought it back yet). The previous one when neither has changed since.
    fn view_of(&mut self, api_pod: &Arc<Pod>) -> Arc<Pod> {
        match self.view.take() {
            Some((from, view))
                if Arc::ptr_eq(&from, api_pod) && self.is_current(&view, api_pod) =>
            {
                view
            }
            _ => {
                let status = self.planned_status(api_pod);
                if api_pod.status == status {
                    api_pod.clone()
                } else {
                    Arc::new(Pod {
                        metadata: api_pod.metadata.clone(),
                        spec: api_pod.spec.clone(),
                        status,
                    })
                }
            }
        }
    }

    /// The status to plan from: the one this worker last wrote, with the conditions others
    /// wrote (readiness gates...) as the API has them now.
    fn planned_status(&self, api_pod: &Pod) -> Option<PodStatus> {
        match (&self.last_status, &api_pod.status) {
            (Some(own), Some(latest)) if readiness::has_foreign_conditions(Some(latest)) => {
                Some(readiness::with_foreign_conditions(own, Some(latest)))
            }
            _ => self.last_status.clone(),
        }
    }

    /// Whether `view` still has the status [`Self::planned_status`] would give (without
    /// cloning it in the common case of no foreign conditions).
    fn is_current(&self, view: &Pod, api_pod: &Pod) -> bool {
        if readiness::has_foreign_conditions(api_pod.status.as_ref()) {
            view.status == self.planned_status(api_pod)
        } else {
            view.status == self.last_status
        }
    }

    /// Waits for a pod change, a wake-up on `notify` (a probe verdict, or the relist seeing the
    /// pod's containers change), `until` (if sooner) or the resync interval.
    async fn wait(&mut self, until: Option<Duration>) {
        let delay = until
            .map_or(self.config.resync_interval, |d| {
                d.min(self.config.resync_interval)
            })
            .max(Duration::from_millis(1));
        tokio::select! {
            changed = self.pod.changed() => {
                if changed.is_err() {
                    // The agent stopped: nothing will send again; the dispatcher aborts us.
                    std::future::pending::<()>().await;
                }
            }
            () = self.notify.notified() => {}
            () = tokio::time::sleep(delay) => {}
        }
    }

    async fn observe(&mut self) -> Observed {
        let mut observed = Observed::default();
        if let Some(id) = &self.sandbox {
            match self.runtime.sandbox_status(id).await {
                Ok(status) => observed.sandbox = Some(status),
                Err(err) if err.is_not_found() => {
                    self.sandbox = None;
                    self.containers.clear();
                }
                Err(err) => tracing::warn!(sandbox = %id, %err, "reading the sandbox failed"),
            }
        }
        let mut kept = Vec::with_capacity(self.containers.len());
        for id in std::mem::take(&mut self.containers) {
            match self.runtime.container_status(&id).await {
                Ok(status) => {
                    observed.containers.push(status);
                    kept.push(id);
                }
                Err(err) if err.is_not_found() => {}
                Err(err) => {
                    tracing::warn!(container = %id, %err, "reading the container failed");
                    kept.push(id);
                }
            }
        }
        self.containers = kept;
        observed
    }

    /// Starts probers for running containers with probes, and drops those of others.
    fn sync_probers(&mut self, pod: &Pod, observed: &Observed) {
        let ip = observed.sandbox.as_ref().and_then(|s| s.ip);
        let running: BTreeMap<&str, &ContainerId> = observed
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| (c.config.name.as_str(), &c.id))
            .collect();
        self.probers
            .retain(|name, prober| running.get(name.as_str()) == Some(&prober.container()));
        // Sidecars (init containers with `restartPolicy: Always`) are probed as app
        // containers are; other init containers have no probes.
        let probed = pod
            .spec
            .init_containers
            .iter()
            .filter(|c| c.is_sidecar())
            .chain(&pod.spec.containers);
        for spec in probed {
            let Some(id) = running.get(spec.name.as_str()) else {
                continue;
            };
            if self.probers.contains_key(&spec.name) {
                continue;
            }
            let runtime: Arc<dyn RuntimeDriver> = self.runtime.clone();
            let (events, probed, name) = (self.events.clone(), pod.clone(), spec.name.clone());
            let report = Arc::new(move |event| events.probe(&probed, &name, event));
            if let Some(prober) = Prober::start_reporting(
                runtime,
                spec,
                (*id).clone(),
                ip,
                self.probes.clone(),
                self.notify.clone(),
                report,
            ) {
                self.probers.insert(spec.name.clone(), prober);
            }
        }
    }

    async fn execute(&mut self, pod: &Pod, actions: Vec<Action>) -> Result<(), RuntimeError> {
        let mut kills = Vec::new();
        for action in actions {
            match action {
                Action::CreateSandbox { attempt } => {
                    let mut config = sandbox_config(pod, attempt);
                    config.dns = super::env::pod_dns(pod, self.config.cluster_dns.as_ref());
                    let id = self.runtime.run_pod_sandbox(&config).await?;
                    self.sandbox = Some(id);
                    self.containers.clear();
                }
                Action::RemoveSandbox(id) => {
                    self.runtime.stop_pod_sandbox(&id).await?;
                    self.runtime.remove_pod_sandbox(&id).await?;
                    if self.sandbox.as_ref() == Some(&id) {
                        self.sandbox = None;
                        self.containers.clear();
                    }
                }
                Action::StopSandbox(id) => self.runtime.stop_pod_sandbox(&id).await?,
                Action::StartContainer {
                    name,
                    init,
                    attempt,
                } => {
                    self.start(pod, &name, init, attempt).await;
                }
                Action::KillContainer {
                    id,
                    name,
                    grace,
                    reason,
                } => {
                    tracing::info!(pod = %pod.metadata.name, container = %name, %reason, ?grace, "stopping container");
                    self.events.killing(pod, &name, &reason);
                    kills.push((id, grace));
                }
                Action::RemoveContainer(id) => {
                    self.runtime.remove_container(&id).await?;
                    self.containers.retain(|c| *c != id);
                }
                Action::RecordBackoff { name, backoff } => {
                    self.backoff.insert(name, backoff);
                }
            }
        }
        if !kills.is_empty() {
            let runtime = &self.runtime;
            let results = futures::future::join_all(
                kills
                    .iter()
                    .map(|(id, grace)| runtime.stop_container(id, *grace)),
            )
            .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        Ok(())
    }

    /// Pulls, creates and starts one container; a failure is recorded for the state machine.
    async fn start(&mut self, pod: &Pod, name: &str, init: bool, attempt: u32) {
        let spec = if init {
            pod.spec.init_containers.iter().find(|c| c.name == name)
        } else {
            pod.spec.containers.iter().find(|c| c.name == name)
        };
        let (Some(spec), Some(sandbox)) = (spec, self.sandbox.clone()) else {
            return;
        };
        let pod_ip = self.pod_ip();
        let base = container_config(pod, spec, attempt, pod_ip.clone());
        // The added variables come first, so that the container's own win.
        let injected = self.injected_env(pod).await;
        let prepared = super::prepare::prepare(
            &self.client,
            &self.config,
            pod,
            spec,
            pod_ip.as_deref().unwrap_or(""),
            injected,
            base,
        )
        .await;
        let config = match prepared {
            Ok(config) => config,
            Err(err) => {
                // The message names the missing object or key, never a value.
                tracing::warn!(pod = %pod.metadata.name, container = %name, reason = err.reason, message = %err.message, "preparing container failed; retrying");
                self.events.config_failed(pod, name, &err.message);
                let failures = self.failures.get(name).map_or(0, |f| f.failures) + 1;
                self.failures.insert(
                    name.to_owned(),
                    StartFailure {
                        reason: err.reason.to_owned(),
                        message: err.message,
                        failures,
                        // Kubelet's pod workers retry a failed sync after about 10 s; the
                        // object may appear at any time, so this does not back off.
                        retry_at: clock::now() + CONFIG_RETRY,
                    },
                );
                return;
            }
        };
        let mut created = None;
        let mut pulled = spec.image_pull_policy == Some(PullPolicy::Never);
        let events = &self.events;
        let outcome = async {
            if !pulled {
                let began = tokio::time::Instant::now();
                events.pulling(pod, name, &spec.image);
                self.runtime.pull_image(&spec.image).await?;
                events.pulled(pod, name, &spec.image, began.elapsed());
                pulled = true;
            }
            let id = self.runtime.create_container(&sandbox, &config).await?;
            created = Some(id.clone());
            events.created(pod, name);
            self.runtime.start_container(&id).await?;
            events.started(pod, name);
            Ok::<_, RuntimeError>(id)
        }
        .await;
        match outcome {
            Ok(id) => {
                self.failures.remove(name);
                self.containers.push(id);
            }
            Err(err) => {
                tracing::warn!(pod = %pod.metadata.name, container = %name, %err, "starting container failed");
                let image = (!pulled).then_some(spec.image.as_str());
                self.events.failed(pod, name, image, &err);
                if let Some(id) = created
                    && let Err(err) = self.runtime.remove_container(&id).await
                {
                    tracing::warn!(container = %id, %err, "removing a container that failed to start failed");
                }
                let failures = self.failures.get(name).map_or(0, |f| f.failures) + 1;
                self.failures.insert(
                    name.to_owned(),
                    StartFailure {
                        reason: err.waiting_reason().to_owned(),
                        message: err.to_string(),
                        failures,
                        retry_at: clock::now() + pod::backoff::start_retry_delay(failures),
                    },
                );
            }
        }
    }

    /// The service variables of the pod's namespace (unless `enableServiceLinks: false`) and
    /// its DNS settings.
    async fn injected_env(&self, pod: &Pod) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if pod.spec.enable_service_links != Some(false) {
            // Kubernetes waits for the first list too: a container started before it would
            // miss services that exist.
            if self.services.wait_until_ready().await.is_ok() {
                let services = self.services.list();
                env = super::env::service_env(
                    &pod.metadata.namespace,
                    services.iter().map(|s| s.as_ref()),
                );
            }
        }
        if let Some(dns) = super::env::pod_dns(pod, self.config.cluster_dns.as_ref()) {
            env.extend(super::env::dns_env(&dns));
        }
        env
    }

    fn pod_ip(&self) -> Option<String> {
        self.last_status
            .as_ref()
            .map(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
    }

    /// Writes `status`, keeping the conditions others wrote: conditional on the resourceVersion
    /// the foreign conditions were taken from, re-read on a conflict, so that a condition
    /// written meanwhile (a readiness gate's) is never overwritten.
    /// Returns the pod as written (none when another pod of the same name replaced it).
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<Option<Pod>, ApiError> {
        let mut base = pod.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            base.status = Some(readiness::with_foreign_conditions(
                status,
                base.status.as_ref(),
            ));
            match self.client.update_status(&base).await {
                Ok(written) => return Ok(Some(written)),
                Err(err) if err.is_conflict() && attempts < 5 => {
                    let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
                    base = self.client.get::<Pod>(ns, name).await?;
                    if base.metadata.uid != pod.metadata.uid {
                        return Ok(None);
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Adds (`true`) or removes the agent's finalizer; returns the pod as it now is (`None`
    /// when it is gone).
    ///
    /// The first write starts from `pod` (the object the watch or the worker's own status
    /// write returned), conditional on its resourceVersion: usually current, so a pod start
    /// and a teardown each cost one write instead of a read and a write. Only a conflict
    /// (someone wrote the pod meanwhile) reads the pod again.
    async fn set_finalizer(&self, pod: &Pod, add: bool) -> Result<Option<Pod>, ApiError> {
        let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
        let mut attempts = 0;
        let mut known = Some(pod);
        loop {
            attempts += 1;
            let mut latest: Pod = match known.take() {
                Some(pod) if !pod.metadata.resource_version.is_empty() => pod.clone(),
                _ => match self.client.get::<Pod>(ns, name).await {
                    Ok(p) if p.metadata.uid == pod.metadata.uid => p,
                    Ok(_) => return Ok(None),
                    Err(err) if err.is_not_found() => return Ok(None),
                    Err(err) => return Err(err),
                },
            };
            let has = latest.metadata.finalizers.iter().any(|f| f == FINALIZER);
            if has == add {
                return Ok(Some(latest));
            }
            if add {
                latest.metadata.finalizers.push(FINALIZER.to_owned());
            } else {
                latest.metadata.finalizers.retain(|f| f != FINALIZER);
            }
            match self.client.update(&latest).await {
                Ok(written) => return Ok(Some(written)),
                Err(err) if err.is_not_found() => return Ok(None),
                // One more than the reads: the first try used the known object.
                Err(err) if err.is_conflict() && attempts < 6 => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Kills and removes everything the pod has in the runtime.
    async fn clean_up(&mut self) {
        self.probers.clear();
        self.config.objects.forget(&self.uid);
        if let Some(id) = self.sandbox.take() {
            if let Err(err) = self.runtime.stop_pod_sandbox(&id).await {
                tracing::warn!(sandbox = %id, %err, "stopping the sandbox of a gone pod failed");
            }
            if let Err(err) = self.runtime.remove_pod_sandbox(&id).await {
                tracing::warn!(sandbox = %id, %err, "removing the sandbox of a gone pod failed");
            }
        }
        self.containers.clear();
        if let Ok(dir) = super::volumes::pod_dir(&self.config.volumes_dir, &self.uid)
            && let Err(err) = super::volumes::remove_pod_dir(&dir)
        {
            tracing::warn!(dir = %dir.display(), %err, "removing the volumes of a gone pod failed");
        }
    }
}

/// The sandbox configuration of a pod.
pub fn sandbox_config(pod: &Pod, attempt: u32) -> SandboxConfig {
    let meta = &pod.metadata;
    SandboxConfig {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        attempt,
        hostname: if pod.spec.hostname.is_empty() {
            meta.name.clone()
        } else {
            pod.spec.hostname.clone()
        },
        labels: BTreeMap::from([(LABEL_POD_UID.to_owned(), meta.uid.clone())]),
        annotations: BTreeMap::new(),
        log_directory: None,
        dns: None,
    }
}

/// The runtime configuration of one of a pod's containers, from the pod alone: literal and
/// field-reference variables (ConfigMap and Secret sources, service links and volumes need
/// the API and are added by the worker), expanded command and args, resources and labels.
pub fn container_config(
    pod: &Pod,
    spec: &Container,
    attempt: u32,
    pod_ip: Option<String>,
) -> ContainerConfig {
    let meta = &pod.metadata;
    let pod_ip = pod_ip.unwrap_or_default();
    let ctx = PodContext {
        pod,
        pod_ip: &pod_ip,
        host_ip: pod.status.as_ref().map_or("", |s| s.host_ip.as_str()),
        node_cpu: Quantity::default(),
        node_memory: Quantity::default(),
    };
    // Without a client there are no ConfigMaps or Secrets: a container that needs one gets
    // no variables here (the agent's worker fills them in through `prepare`).
    let env = resolve_env(&ctx, spec, &Sources::default(), Vec::new()).unwrap_or_default();
    let (command, args) = expand_command(spec, &env);
    let limit = |r: &str| spec.resources.limits.get(r);
    ContainerConfig {
        name: spec.name.clone(),
        attempt,
        image: spec.image.clone(),
        command,
        args,
        env,
        working_dir: (!spec.working_dir.is_empty()).then(|| spec.working_dir.clone().into()),
        mounts: Vec::new(),
        resources: ContainerResources {
            cpu_limit_millis: limit("cpu").and_then(|q| u64::try_from(q.milli_value()).ok()),
            memory_limit_bytes: limit("memory").and_then(|q| u64::try_from(q.value()).ok()),
            cpu_request_millis: spec
                .resources
                .requests
                .get("cpu")
                .and_then(|q| u64::try_from(q.milli_value()).ok()),
        },
        stop_signal: None,
        labels: BTreeMap::from([
            (LABEL_POD_UID.to_owned(), meta.uid.clone()),
            (LABEL_CONTAINER_NAME.to_owned(), spec.name.clone()),
        ]),
        annotations: BTreeMap::new(),
        security: container_security(spec),
    }
}

/// The runtime's view of a container's `securityContext`. Capability names go in the one
/// form runtimes take (`NET_ADMIN`); a name the API's validation would have refused is
/// handed on as it is, for the runtime to refuse, never dropped.
pub fn container_security(spec: &Container) -> ContainerSecurity {
    let Some(context) = &spec.security_context else {
        return ContainerSecurity::default();
    };
    let names = |pick: fn(&Capabilities) -> &Vec<String>| -> Vec<String> {
        context
            .capabilities
            .as_ref()
            .map(pick)
            .into_iter()
            .flatten()
            .map(|name| Capabilities::canonical(name).map_or_else(|| name.clone(), str::to_owned))
            .collect()
    };
    ContainerSecurity {
        run_as_user: context.run_as_user,
        add_capabilities: names(|c| &c.add),
        drop_capabilities: names(|c| &c.drop),
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::LocalClient;
    use orchestra_api::resources::PodPhase;
    use orchestra_store::MemStore;

    use super::*;
    use crate::fake::FakeRuntime;

    fn worker(pod: Pod) -> Worker<LocalClient, FakeRuntime> {
        let client = LocalClient::new(MemStore::new());
        let (_tx, rx) = watch::channel(Some(Arc::new(pod)));
        let (services, _writer) = reflector::store::<Service>();
        let events = AgentEvents::new(&client, "node-1");
        Worker::new(
            client,
            Arc::new(FakeRuntime::new()),
            Arc::new(AgentConfig::new("node-1".to_owned())),
            rx,
            Adopted::default(),
            services,
            events,
        )
    }

    fn pod_with(phase: Option<PodPhase>) -> Pod {
        let mut pod = orchestra_api::testing::pod("default", "web-1", "web");
        pod.metadata.uid = "uid-1".into();
        pod.status = phase.map(|phase| PodStatus {
            phase: Some(phase),
            ..PodStatus::default()
        });
        pod
    }

    #[test]
    fn the_security_context_reaches_the_runtime_in_its_names() {
        use orchestra_api::resources::SecurityContext;
        let mut pod = pod_with(None);
        let plain = container_config(&pod, &pod.spec.containers[0], 0, None);
        assert_eq!(plain.security, ContainerSecurity::default());

        pod.spec.containers[0].security_context = Some(SecurityContext {
            run_as_user: Some(2102),
            capabilities: Some(Capabilities {
                add: vec!["cap_net_admin".into(), "NOT_ONE".into()],
                drop: vec!["all".into()],
            }),
        });
        let config = container_config(&pod, &pod.spec.containers[0], 0, None);
        assert_eq!(
            config.security,
            ContainerSecurity {
                run_as_user: Some(2102),
                // An unknown name is handed on for the runtime to refuse, not dropped.
                add_capabilities: vec!["NET_ADMIN".into(), "NOT_ONE".into()],
                drop_capabilities: vec!["ALL".into()],
            }
        );
    }

    /// The task of every pod lives as long as the pod: its future must not carry the API
    /// client's and runtime's call futures inline (it was about 12 KB with them).
    #[tokio::test]
    async fn a_pods_task_stays_small() {
        let task = worker(pod_with(None)).run();
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "the worker's future is {size} bytes");
    }

    #[tokio::test]
    async fn the_view_is_the_api_object_when_it_has_the_planned_status() {
        let mut worker = worker(pod_with(None));
        worker.last_status = pod_with(Some(PodPhase::Running)).status;
        let current = Arc::new(pod_with(Some(PodPhase::Running)));
        let view = worker.view_of(&current);
        assert!(Arc::ptr_eq(&view, &current), "a copy of an up-to-date pod");

        // The watch has not brought the worker's last write back yet: the view is a copy
        // with the planned status.
        let behind = Arc::new(pod_with(Some(PodPhase::Pending)));
        let view = worker.view_of(&behind);
        assert!(!Arc::ptr_eq(&view, &behind));
        assert_eq!(view.status, worker.last_status);
        assert_eq!(view.spec, behind.spec);
        assert_eq!(view.metadata, behind.metadata);
    }
}
