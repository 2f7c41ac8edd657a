//! `orchestra bench cluster`: the whole control plane in one process with simulated nodes, at
//! Kubernetes' scale limits (5,000 nodes, 150,000 pods by default).
//!
//! A [`Cluster`] starts with `--nodes` agents on the fake runtime (each with its own Lease
//! renewals and status updates through the API, as real agents do), then:
//! 1. **nodes**: time until every Node is Ready.
//! 2. **bulk**: `--pods` pods as ReplicaSets of `--pods-per-set` replicas, created at once;
//!    time until every pod is Running, and each pod's startup latency from the moment a watch
//!    on pods first sees it until the same watch sees it Running.
//! 3. **churn**: `--churn-rate` bare pods a second for `--churn-seconds`, each deleted five
//!    seconds after its creation; startup latency from the create call to the watch seeing it
//!    Running (the SLO of Kubernetes' scalability tests is p99 at most 5 s; the target
//!    here is 1 s).
//!
//! Then one line with the process's peak resident memory and the CPU time it used. Targets
//! from the issue: all 150,000 pods Running within 60 s, churn p99 at most 1 s, peak memory at
//! most 4 GiB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use orchestra::api::registry::{DeleteOptions, ListOptions};
use orchestra::api::resources::{Node, Pod, ReplicaSet};
use orchestra::api::watcher::{self, Event, WatcherConfig};
use orchestra::api::{Client, LocalClient};
use orchestra::cluster::{Cluster, NodeRuntime};
use serde::Serialize;

use crate::bench::BenchError;
use crate::bench::report::{Latency, latency_histogram, record, round1};
use crate::cli::bench::ClusterBenchArgs;

/// The namespace of the benchmark's objects.
const NAMESPACE: &str = "default";
/// How long a churn pod lives before it is deleted.
const CHURN_POD_LIFETIME: Duration = Duration::from_secs(5);
/// ReplicaSets (or churn deletions) in flight at once.
const CONCURRENCY: usize = 32;

/// One result line of `orchestra bench cluster`.
#[derive(Debug, Serialize)]
struct ClusterResult {
    bench: &'static str,
    /// `nodes`, `bulk`, `churn` or `resources`.
    phase: &'static str,
    nodes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pods: Option<u64>,
    /// Wall time of the phase, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    /// Pods that reached Running per second over the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pods_per_second: Option<f64>,
    /// Churn: pods created per second (the target rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<u32>,
    /// Startup latency per pod.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    latency: Option<Latency>,
    /// Churn: pods deleted at the end of their lifetime without ever being seen Running
    /// (their startup latency is not in the figures; any of them misses the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_running: Option<u64>,
    /// The target for this phase, and whether it was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meets_target: Option<bool>,
    /// Peak resident memory of the process, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_bytes: Option<u64>,
    /// CPU time of the process (user + system), seconds, and its average over wall time.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_cores_average: Option<f64>,
}

impl ClusterResult {
    fn new(phase: &'static str, nodes: u32) -> Self {
        ClusterResult {
            bench: "cluster",
            phase,
            nodes,
            pods: None,
            seconds: None,
            pods_per_second: None,
            rate: None,
            latency: None,
            not_running: None,
            target: None,
            meets_target: None,
            peak_rss_bytes: None,
            cpu_seconds: None,
            cpu_cores_average: None,
        }
    }

    fn print(&self) -> Result<(), BenchError> {
        let line = serde_json::to_string(self).map_err(|e| BenchError::Cluster {
            what: "serialising a result".into(),
            source: Box::new(e),
        })?;
        println!("{line}");
        Ok(())
    }
}

/// What the pod watch saw, shared with the phases that wait on it.
struct Tracker {
    /// When a pod was created (churn: the create call) or first seen (bulk: by the watch).
    started: HashMap<String, Instant>,
    /// Pods seen Running, for the phase each belongs to.
    running_bulk: u64,
    running_churn: u64,
    /// Churn pods deleted (at the end of their lifetime) before the watch saw them Running.
    lost_churn: u64,
    bulk: Histogram<u64>,
    churn: Histogram<u64>,
    /// When the last bulk pod was seen Running.
    last_bulk_running: Option<Instant>,
}

impl Tracker {
    fn new() -> Result<Self, BenchError> {
        Ok(Tracker {
            started: HashMap::new(),
            running_bulk: 0,
            running_churn: 0,
            lost_churn: 0,
            bulk: latency_histogram()?,
            churn: latency_histogram()?,
            last_bulk_running: None,
        })
    }

    /// A pod as the watch sees it now.
    fn observe(&mut self, pod: &Pod, now: Instant) {
        let name = &pod.metadata.name;
        let churn = name.starts_with("churn-");
        if !churn && !self.started.contains_key(name) {
            self.started.insert(name.clone(), now);
        }
        if !pod.is_running_and_ready() {
            return;
        }
        // The entry is removed on the first Running sighting: later updates are not counted.
        let Some(started) = self.started.remove(name) else {
            return;
        };
        let latency = now.saturating_duration_since(started);
        if churn {
            record(&mut self.churn, latency);
            self.running_churn += 1;
        } else {
            record(&mut self.bulk, latency);
            self.running_bulk += 1;
            self.last_bulk_running = Some(now);
        }
    }

    /// After a relist: churn pods older than their lifetime and absent from the list were
    /// deleted while the watch was down, without a Deleted event.
    fn missing_after_restart(&mut self, pods: &[Arc<Pod>], now: Instant) {
        let listed: std::collections::HashSet<&str> =
            pods.iter().map(|p| p.metadata.name.as_str()).collect();
        let before = self.started.len();
        self.started.retain(|name, started| {
            !name.starts_with("churn-")
                || listed.contains(name.as_str())
                || now.saturating_duration_since(*started) <= CHURN_POD_LIFETIME
        });
        self.lost_churn += (before - self.started.len()) as u64;
    }

    /// A pod the watch saw deleted: a churn pod that never ran is counted as lost, so that
    /// the churn phase ends (and says so) instead of waiting for it.
    fn deleted(&mut self, pod: &Pod) {
        let name = &pod.metadata.name;
        if name.starts_with("churn-") && self.started.remove(name).is_some() {
            self.lost_churn += 1;
        }
    }
}

fn cluster_error<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl Fn(E) -> BenchError {
    move |source| BenchError::Cluster {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// Poll `done` every 50 ms until it holds, or fail after `timeout` saying `what`.
async fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return Err(BenchError::ClusterTimeout(format!(
                "{what}: not done after {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A ReplicaSet of `replicas` fake pods.
fn replica_set(index: u64, replicas: u64) -> Result<ReplicaSet, BenchError> {
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
    .map_err(cluster_error("building a ReplicaSet"))
}

/// A bare churn pod.
fn churn_pod(index: u64) -> Result<Pod, BenchError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": format!("churn-{index}"), "namespace": NAMESPACE, "labels": {"app": "churn"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": "pause"}],
        },
    }))
    .map_err(cluster_error("building a churn pod"))
}

/// Run `orchestra bench cluster`.
pub async fn run(args: ClusterBenchArgs) -> Result<(), BenchError> {
    let (nodes, pods, per_set, rate, churn_seconds) = if args.smoke {
        (
            args.nodes.min(20),
            u64::from(args.pods.min(400)),
            u64::from(args.pods_per_set.min(50)),
            args.churn_rate.min(50),
            args.churn_seconds.min(2),
        )
    } else {
        (
            args.nodes,
            u64::from(args.pods),
            u64::from(args.pods_per_set),
            args.churn_rate,
            args.churn_seconds,
        )
    };
    let wall = Instant::now();
    let cpu_before = cpu_seconds();
    let mut builder = Cluster::builder();
    if args.store_history > 0 {
        builder = builder.store_history(args.store_history);
    }
    let cluster = builder
        .nodes(nodes as usize)
        .runtime(NodeRuntime::Fake)
        .proxy(false)
        .node_capacity(64, 256 << 30)
        .start()
        .await
        .map_err(cluster_error("starting the cluster"))?;
    let client = cluster.client().clone();

    let ready_timeout = Duration::from_secs(args.timeout_seconds);
    let started = Instant::now();
    let mut ready = 0;
    while ready < nodes as usize {
        if started.elapsed() > ready_timeout {
            return Err(BenchError::ClusterTimeout(format!(
                "{ready} of {nodes} nodes Ready after {ready_timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let list = client
            .list::<Node>(None, &ListOptions::default())
            .await
            .map_err(cluster_error("listing nodes"))?;
        ready = list.items.iter().filter(|n| n.is_ready()).count();
    }
    let mut line = ClusterResult::new("nodes", nodes);
    line.seconds = Some(round3(started.elapsed()));
    line.print()?;

    let tracker = Arc::new(Mutex::new(Tracker::new()?));
    let watch = spawn_pod_watch(client.clone(), tracker.clone());

    bulk_phase(&client, &tracker, nodes, pods, per_set, ready_timeout).await?;
    if rate > 0 && churn_seconds > 0 {
        churn_phase(&client, &tracker, nodes, rate, churn_seconds, ready_timeout).await?;
    }

    let mut line = ClusterResult::new("resources", nodes);
    line.peak_rss_bytes = peak_rss_bytes();
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
        let used = after - before;
        line.cpu_seconds = Some(round1(used));
        line.cpu_cores_average =
            Some((used / wall.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    }
    line.meets_target = line.peak_rss_bytes.map(|bytes| bytes <= 4 << 30);
    line.target = Some("peak memory <= 4 GiB");
    line.print()?;

    watch.abort();
    cluster.shutdown().await;
    Ok(())
}

fn spawn_pod_watch(
    client: LocalClient,
    tracker: Arc<Mutex<Tracker>>,
) -> tokio::task::JoinHandle<()> {
    let mut events = watcher::watcher::<Pod, _>(client, WatcherConfig::default());
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let Ok(mut tracker) = tracker.lock() else {
                return;
            };
            match event {
                Ok(Event::Restarted(pods)) => {
                    pods.iter().for_each(|p| tracker.observe(p, now));
                    tracker.missing_after_restart(&pods, now);
                }
                Ok(Event::Applied(pod)) => tracker.observe(&pod, now),
                Ok(Event::Deleted(pod)) => tracker.deleted(&pod),
                Err(_) => {}
            }
        }
    })
}

async fn bulk_phase(
    client: &LocalClient,
    tracker: &Arc<Mutex<Tracker>>,
    nodes: u32,
    pods: u64,
    per_set: u64,
    timeout: Duration,
) -> Result<(), BenchError> {
    let per_set = per_set.max(1);
    let sets = pods.div_ceil(per_set);
    let started = Instant::now();
    let creations = futures::stream::iter(0..sets)
        .map(|index| {
            let replicas = per_set.min(pods - index * per_set);
            let client = client.clone();
            async move {
                let set = replica_set(index, replicas)?;
                client
                    .create(&set)
                    .await
                    .map_err(cluster_error("creating a ReplicaSet"))
            }
        })
        .buffer_unordered(CONCURRENCY);
    let results: Vec<_> = creations.collect().await;
    for result in results {
        result?;
    }
    wait_until("every bulk pod Running", timeout, || {
        tracker.lock().is_ok_and(|t| t.running_bulk >= pods)
    })
    .await?;
    let tracker = tracker
        .lock()
        .map_err(|_| BenchError::ClusterTimeout("the pod watch panicked".into()))?;
    let elapsed = tracker.last_bulk_running.map_or(started.elapsed(), |at| {
        at.saturating_duration_since(started)
    });
    let mut line = ClusterResult::new("bulk", nodes);
    line.pods = Some(pods);
    line.seconds = Some(round3(elapsed));
    line.pods_per_second = Some((pods as f64 / elapsed.as_secs_f64()).round());
    line.latency = Some(Latency::of(&tracker.bulk));
    line.target = Some("all pods Running within 60 s");
    line.meets_target = Some(elapsed <= Duration::from_secs(60));
    line.print()
}

async fn churn_phase(
    client: &LocalClient,
    tracker: &Arc<Mutex<Tracker>>,
    nodes: u32,
    rate: u32,
    seconds: u32,
    timeout: Duration,
) -> Result<(), BenchError> {
    let total = u64::from(rate) * u64::from(seconds);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let lifetime_in_pods = u64::from(rate) * CHURN_POD_LIFETIME.as_secs();
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    for index in 0..total {
        ticks.tick().await;
        let pod = churn_pod(index)?;
        if let Ok(mut tracker) = tracker.lock() {
            tracker
                .started
                .insert(pod.metadata.name.clone(), Instant::now());
        }
        let client = client.clone();
        // Each call on its own task, so that a slow one does not hold the rate back.
        calls.spawn(async move {
            client
                .create(&pod)
                .await
                .map_err(cluster_error("creating a churn pod"))?;
            if let Some(old) = index.checked_sub(lifetime_in_pods) {
                client
                    .delete::<Pod>(
                        NAMESPACE,
                        &format!("churn-{old}"),
                        &DeleteOptions::default(),
                    )
                    .await
                    .map_err(cluster_error("deleting a churn pod"))?;
            }
            Ok::<(), BenchError>(())
        });
        while let Some(done) = calls.try_join_next() {
            done.map_err(BenchError::Task)??;
        }
        if calls.len() > CONCURRENCY * 32 {
            return Err(BenchError::ClusterTimeout(format!(
                "the API fell behind the churn rate of {rate} pods/s"
            )));
        }
    }
    while let Some(done) = calls.join_next().await {
        done.map_err(BenchError::Task)??;
    }
    wait_until("every churn pod Running or deleted", timeout, || {
        tracker
            .lock()
            .is_ok_and(|t| t.running_churn + t.lost_churn >= total)
    })
    .await?;
    let tracker = tracker
        .lock()
        .map_err(|_| BenchError::ClusterTimeout("the pod watch panicked".into()))?;
    let latency = Latency::of(&tracker.churn);
    let mut line = ClusterResult::new("churn", nodes);
    line.pods = Some(total);
    line.rate = Some(rate);
    line.seconds = Some(round3(started.elapsed()));
    line.latency = Some(latency);
    line.not_running = Some(tracker.lost_churn);
    line.target = Some("p99 startup <= 1 s");
    line.meets_target = Some(latency.p99_us <= 1_000_000.0 && tracker.lost_churn == 0);
    line.print()
}

fn round3(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The process's peak resident memory (`VmHWM` in `/proc/self/status`), bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's CPU time so far (user + system, from `/proc/self/stat`), seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at state, field 3;
    // utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    Some((utime + stime) / ticks)
}
