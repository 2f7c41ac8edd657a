//! `orchestra bench controller`: the workload controllers alone, on an in-process API
//! (`LocalClient` over `MemStore`), with no scheduler and no nodes.
//!
//! Two phases, one JSON line each:
//! 1. **replicasets**: `--replica-sets` ReplicaSets of `--replicas` replicas created at once,
//!    only the ReplicaSet controller running (pods are never scheduled nor run): pods created
//!    per second, from the first ReplicaSet's creation until the pod cache holds every pod, and
//!    the time until every ReplicaSet's status reports its replicas. The issue's target is at
//!    least 20,000 pod creations/s.
//! 2. **rolling-update**: a Deployment of `--deployment-replicas` replicas (maxSurge
//!    `--max-surge`%, maxUnavailable `--max-unavailable`%), the Deployment and ReplicaSet
//!    controllers running, and a fake kubelet that marks every new pod Running and Ready as
//!    soon as it appears. Once the Deployment is available (and the fake kubelet's watch has
//!    seen every pod Ready), its template changes; the time until every replica is updated
//!    and available is the result, with the most pods that existed at once and the fewest
//!    ready ones during the rollout (which the surge and unavailability bounds limit).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use orchestra::api::resources::{
    ConditionStatus, Deployment, Pod, PodCondition, PodPhase, PodStatus, ReplicaSet,
};
use orchestra::api::watcher::{self, Event, WatcherConfig};
use orchestra::api::{Client, LocalClient};
use orchestra::controller::SharedInformers;
use orchestra::controller::controllers::{DeploymentController, ReplicaSetController};
use orchestra::controller::{Controller, Reconciler};
use orchestra::store::MemStore;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::bench::BenchError;

/// The namespace of the benchmark's objects.
const NAMESPACE: &str = "default";
/// ReplicaSet creations in flight at once.
const CONCURRENCY: usize = 64;
/// How often the benchmark looks at the caches and statuses it waits on.
const POLL: Duration = Duration::from_millis(5);

/// `orchestra bench controller`: the ReplicaSet controller creating pods in bulk, and a
/// Deployment's rolling update, on an in-process API without nodes.
#[derive(Clone, Debug, Args)]
pub struct ControllerBenchArgs {
    /// ReplicaSets of the bulk phase (0: skip it).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub replica_sets: u32,

    /// Replicas of each ReplicaSet.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub replicas: u32,

    /// Replicas of the rolling-update phase's Deployment (0: skip it).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub deployment_replicas: u32,

    /// The Deployment's maxSurge, percent of its replicas.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_surge: u32,

    /// The Deployment's maxUnavailable, percent of its replicas.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_unavailable: u32,

    /// Workers of the ReplicaSet controller (the controller manager runs 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: u32,

    /// How long each phase may take before the run fails, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_seconds: u64,

    /// Cap everything for CI: 200 ReplicaSets, a Deployment of 100 replicas.
    #[arg(long)]
    pub smoke: bool,
}

/// One result line of `orchestra bench controller`.
#[derive(Debug, Default, Serialize)]
struct ControllerResult {
    bench: &'static str,
    /// `replicasets` or `rolling-update`.
    phase: &'static str,
    /// Workers of the ReplicaSet controller.
    workers: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    replica_sets: Option<u32>,
    /// Replicas per ReplicaSet, or of the Deployment.
    replicas: u32,
    /// Pods created in the phase.
    pods: u64,
    /// Seconds to create the ReplicaSet objects themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    create_seconds: Option<f64>,
    /// Seconds from the first ReplicaSet's creation until the pod cache held every pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pods_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pods_per_second: Option<f64>,
    /// Seconds until every status reported the replicas (bulk), or until the rollout completed.
    seconds: f64,
    /// Rolling update: the bounds, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_surge_percent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_unavailable_percent: Option<u32>,
    /// Rolling update: the most pods that existed at once, and the fewest Ready ones, as the
    /// fake kubelet's watch saw them.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pods: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_ready: Option<usize>,
    /// Relists of the fake kubelet's watch during the whole phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch_restarts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meets_target: Option<bool>,
}

impl ControllerResult {
    fn print(&self) -> Result<(), BenchError> {
        let line = serde_json::to_string(self).map_err(failed("serialising a result"))?;
        println!("{line}");
        Ok(())
    }
}

fn failed<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl Fn(E) -> BenchError {
    move |source| BenchError::Controller {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// Poll `done` every [`POLL`] until it holds, or fail after `timeout` saying `what`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut done: F) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BenchError>>,
{
    let deadline = Instant::now() + timeout;
    while !done().await? {
        if Instant::now() > deadline {
            return Err(BenchError::ControllerTimeout(format!(
                "{what}: not done after {timeout:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// A controller running in a task until [`Running::stop`].
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start<R: Reconciler, C: Client>(controller: Controller<R, C>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller.run(async move {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    async fn stop(self) -> Result<(), BenchError> {
        let _ = self.stop.send(());
        self.task.await.map_err(BenchError::Task)
    }
}

/// A ReplicaSet of `replicas` pods that never run.
fn replica_set(index: u32, replicas: u32) -> Result<ReplicaSet, BenchError> {
    let name = format!("bulk-{index}");
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"set": name}},
            "template": {
                "metadata": {"labels": {"set": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": "pause"}],
                },
            },
        },
    }))
    .map_err(failed("building a ReplicaSet"))
}

/// The rolling-update phase's Deployment.
fn deployment(
    replicas: u32,
    max_surge: u32,
    max_unavailable: u32,
) -> Result<Deployment, BenchError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "rolling", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "rolling"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": format!("{max_surge}%"),
                    "maxUnavailable": format!("{max_unavailable}%"),
                },
            },
            "template": {
                "metadata": {"labels": {"app": "rolling"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": "pause:1"}],
                },
            },
        },
    }))
    .map_err(failed("building a Deployment"))
}

/// Run `orchestra bench controller`.
pub async fn run(args: ControllerBenchArgs) -> Result<(), BenchError> {
    let (sets, deployment_replicas) = if args.smoke {
        (
            args.replica_sets.min(200),
            args.deployment_replicas.min(100),
        )
    } else {
        (args.replica_sets, args.deployment_replicas)
    };
    let timeout = Duration::from_secs(args.timeout_seconds);
    if sets > 0 {
        bulk_phase(sets, args.replicas, args.workers, timeout).await?;
    }
    if deployment_replicas > 0 {
        rolling_update_phase(&args, deployment_replicas, timeout).await?;
    }
    Ok(())
}

fn seconds(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}

async fn bulk_phase(
    sets: u32,
    replicas: u32,
    workers: u32,
    timeout: Duration,
) -> Result<(), BenchError> {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let pods = informers.store::<Pod>();
    let replica_sets = informers.store::<ReplicaSet>();
    let controller =
        Running::start(ReplicaSetController::controller(&informers).concurrency(workers as usize));
    let total = u64::from(sets) * u64::from(replicas);

    let started = Instant::now();
    let creations: Vec<_> = futures::stream::iter(0..sets)
        .map(|index| {
            let client = client.clone();
            async move {
                client
                    .create(&replica_set(index, replicas)?)
                    .await
                    .map_err(failed("creating a ReplicaSet"))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for created in creations {
        created?;
    }
    let created = started.elapsed();
    wait_until("every pod created", timeout, || {
        let done = pods.len() as u64 >= total;
        async move { Ok(done) }
    })
    .await?;
    let pods_done = started.elapsed();
    let want = i32::try_from(replicas).unwrap_or(i32::MAX);
    wait_until("every ReplicaSet's status", timeout, || {
        let done = replica_sets.len() as u64 == u64::from(sets)
            && replica_sets
                .list()
                .iter()
                .all(|rs| rs.status.as_ref().is_some_and(|s| s.replicas == want));
        async move { Ok(done) }
    })
    .await?;
    let converged = started.elapsed();
    let created_pods = pods.len() as u64;
    controller.stop().await?;
    informers.shut_down();
    if created_pods != total {
        return Err(BenchError::ControllerTimeout(format!(
            "the ReplicaSets converged with {created_pods} pods instead of {total}"
        )));
    }
    let rate = (total as f64 / pods_done.as_secs_f64()).round();
    ControllerResult {
        bench: "controller",
        phase: "replicasets",
        workers,
        replica_sets: Some(sets),
        replicas,
        pods: total,
        create_seconds: Some(seconds(created)),
        pods_seconds: Some(seconds(pods_done)),
        pods_per_second: Some(rate),
        seconds: seconds(converged),
        target: Some(">= 20000 pod creations/s"),
        meets_target: Some(rate >= 20_000.0),
        ..ControllerResult::default()
    }
    .print()
}

/// What the fake kubelet's watch has seen: the pods that exist and the Ready ones, with the
/// extremes since the last [`Kubelet::reset`].
#[derive(Debug, Default)]
struct Seen {
    live: HashSet<String>,
    ready: HashSet<String>,
    max_live: usize,
    min_ready: usize,
    /// Relists of the watch (after it fell behind and was dropped): the counts between the
    /// drop and the relist are not seen.
    restarts: u64,
}

impl Seen {
    /// A relist: `pods` are every pod now (one consistent snapshot).
    fn restart(&mut self, pods: &[Arc<Pod>]) {
        self.restarts += 1;
        self.live.clear();
        self.ready.clear();
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            self.live.insert(pod.metadata.name.clone());
            if pod.is_running_and_ready() {
                self.ready.insert(pod.metadata.name.clone());
            }
        }
        self.max_live = self.max_live.max(self.live.len());
        self.min_ready = self.min_ready.min(self.ready.len());
    }

    /// Whether the watch shows a settled rollout: exactly `replicas` pods, all Ready. The
    /// Deployment's status can say so before this watch has seen it (the watch lags the API
    /// under load); measuring from such a lagging view counted pods not yet seen Ready as a
    /// dip below maxUnavailable.
    fn settled_at(&self, replicas: usize) -> bool {
        self.live.len() == replicas && self.ready.len() == replicas
    }

    fn observe(&mut self, pod: &Pod, gone: bool) {
        let name = &pod.metadata.name;
        if gone || pod.metadata.deletion_timestamp.is_some() {
            self.live.remove(name);
            self.ready.remove(name);
        } else {
            self.live.insert(name.clone());
            if pod.is_running_and_ready() {
                self.ready.insert(name.clone());
            } else {
                self.ready.remove(name);
            }
        }
        self.max_live = self.max_live.max(self.live.len());
        self.min_ready = self.min_ready.min(self.ready.len());
    }
}

/// A fake kubelet: marks every pod Running and Ready as soon as a watch sees it.
struct Kubelet {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    fn start(client: LocalClient) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut events = watcher::watcher::<Pod, _>(client.clone(), WatcherConfig::default());
        let shared = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let (pods, gone, relisted) = match event {
                    Ok(Event::Restarted(pods)) => {
                        shared
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .restart(&pods);
                        (pods, false, true)
                    }
                    Ok(Event::Applied(pod)) => (vec![pod], false, false),
                    Ok(Event::Deleted(pod)) => (vec![pod], true, false),
                    Err(_) => continue,
                };
                for pod in pods {
                    if !relisted {
                        shared
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .observe(&pod, gone);
                    }
                    if gone
                        || pod.metadata.deletion_timestamp.is_some()
                        || pod.is_running_and_ready()
                    {
                        continue;
                    }
                    let client = client.clone();
                    // A conflict or a pod already gone is fine: a newer version of the pod
                    // comes through the watch and is marked then (or was deleted).
                    tokio::spawn(async move {
                        let _ = client
                            .update_status(&running_and_ready(Arc::unwrap_or_clone(pod)))
                            .await;
                    });
                }
            }
        });
        Kubelet { seen, task }
    }

    /// Whether the watch has caught up with a settled rollout (see [`Seen::settled_at`]).
    fn caught_up(&self, replicas: usize) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .settled_at(replicas)
    }

    /// Starts measuring the extremes afresh.
    fn reset(&self) -> (usize, usize) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.max_live = seen.live.len();
        seen.min_ready = seen.ready.len();
        (seen.max_live, seen.min_ready)
    }

    /// The most pods, the fewest Ready ones, and the relists since the start.
    fn extremes(&self) -> (usize, usize, u64) {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        (seen.max_live, seen.min_ready, seen.restarts)
    }
}

fn running_and_ready(mut pod: Pod) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        conditions: vec![PodCondition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            ..PodCondition::default()
        }],
        ..PodStatus::default()
    });
    pod
}

/// Whether the Deployment has rolled out generation `generation` completely.
async fn rolled_out(
    client: &LocalClient,
    replicas: i32,
    generation: i64,
) -> Result<bool, BenchError> {
    let deployment: Deployment = client
        .get(NAMESPACE, "rolling")
        .await
        .map_err(failed("reading the Deployment"))?;
    Ok(deployment.status.as_ref().is_some_and(|s| {
        s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && s.replicas == Some(replicas)
    }))
}

async fn rolling_update_phase(
    args: &ControllerBenchArgs,
    replicas: u32,
    timeout: Duration,
) -> Result<(), BenchError> {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let kubelet = Kubelet::start(client.clone());
    let workers = args.workers as usize;
    let replica_sets =
        Running::start(ReplicaSetController::controller(&informers).concurrency(workers));
    let deployments =
        Running::start(DeploymentController::controller(&informers).concurrency(workers));
    let want = i32::try_from(replicas).unwrap_or(i32::MAX);

    let created = client
        .create(&deployment(replicas, args.max_surge, args.max_unavailable)?)
        .await
        .map_err(failed("creating the Deployment"))?;
    let generation = created.metadata.generation.unwrap_or(1);
    wait_until("the Deployment available", timeout, || {
        rolled_out(&client, want, generation)
    })
    .await?;
    let settled = usize::try_from(replicas).unwrap_or(usize::MAX);
    wait_until(
        "the fake kubelet's watch to see every pod Ready",
        timeout,
        || {
            let done = kubelet.caught_up(settled);
            async move { Ok(done) }
        },
    )
    .await?;

    kubelet.reset();
    let started = Instant::now();
    let mut current: Deployment = client
        .get(NAMESPACE, "rolling")
        .await
        .map_err(failed("reading the Deployment"))?;
    for container in &mut current.spec.template.spec.containers {
        container.image = "pause:2".into();
    }
    let updated = client
        .update(&current)
        .await
        .map_err(failed("updating the Deployment's template"))?;
    let generation = updated.metadata.generation.unwrap_or(generation + 1);
    wait_until("the rolling update", timeout, || {
        rolled_out(&client, want, generation)
    })
    .await?;
    let elapsed = started.elapsed();
    let (max_pods, min_ready, restarts) = kubelet.extremes();

    deployments.stop().await?;
    replica_sets.stop().await?;
    kubelet.task.abort();
    informers.shut_down();
    ControllerResult {
        bench: "controller",
        phase: "rolling-update",
        workers: args.workers,
        replicas,
        pods: u64::from(replicas),
        seconds: seconds(elapsed),
        max_surge_percent: Some(args.max_surge),
        max_unavailable_percent: Some(args.max_unavailable),
        max_pods: Some(max_pods),
        min_ready: Some(min_ready),
        watch_restarts: Some(restarts),
        ..ControllerResult::default()
    }
    .print()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::bench::{BenchCommand, BenchTarget};
    use crate::cli::{Cli, Command};

    fn args(line: &[&str]) -> Result<ControllerBenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["orchestra", "bench", "controller"].iter().chain(line))?;
        #[allow(unreachable_patterns)]
        match cli.command {
            Command::Bench(BenchCommand {
                target: BenchTarget::Controller(args),
            }) => Ok(args),
            other => panic!("`bench controller` parsed as {other:?}"),
        }
    }

    #[test]
    fn has_the_issues_defaults_and_rejects_bad_values() {
        let defaults = args(&[]).unwrap();
        assert_eq!(
            (
                defaults.replica_sets,
                defaults.replicas,
                defaults.deployment_replicas
            ),
            (10_000, 10, 1_000)
        );
        assert_eq!((defaults.max_surge, defaults.max_unavailable), (25, 25));
        for bad in [
            &["--replicas", "0"][..],
            &["--max-surge", "101"],
            &["--workers", "0"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_kubelet_tracks_live_and_ready_extremes() {
        let mut seen = Seen::default();
        let pod = |name: &str| {
            let mut pod = Pod::default();
            pod.metadata.name = name.into();
            pod
        };
        seen.observe(&pod("a"), false);
        seen.observe(&running_and_ready(pod("b")), false);
        assert!(!seen.settled_at(2), "a is not seen Ready yet");
        seen.observe(&running_and_ready(pod("a")), false);
        assert!(seen.settled_at(2));
        seen.min_ready = seen.ready.len();
        seen.observe(&pod("a"), true);
        assert_eq!((seen.max_live, seen.min_ready), (2, 1));
        assert_eq!(seen.live.len(), 1);
    }
}
