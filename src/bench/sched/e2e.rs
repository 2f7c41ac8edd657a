//! `orchestra bench sched --mode e2e`: the scheduler end to end through the API. An in-process
//! API (LocalClient over MemStore) holds the workload's nodes (and, for preemption, the
//! low-priority pods bound to them); the scheduling loop ([`SchedulerLoop`], default profile)
//! watches pods and nodes and binds through the binding subresource, as `orchestra scheduler`
//! does.
//!
//! Once the loop has bound a probe pod (it has listed the cluster and works), the timed phase
//! creates `--pods` pods through the API (64 creations in flight) and ends when the
//! benchmark's own pod watch has seen every one bound. Pods per second is `--pods` over that
//! time; the latency of a pod runs from just before its creation until the watch shows it
//! bound. Preemption's victims are deleted by the loop (pods without finalizers go at once,
//! as no kubelet holds them), and each preemptor is bound once it is retried after its backoff.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use orchestra::api::meta::ObjectMeta;
use orchestra::api::resources::{Container, Namespace, Pod, PodSpec};
use orchestra::api::watcher::{self, Event, WatcherConfig};
use orchestra::api::{Client, LocalClient};
use orchestra::sched::run::SchedulerLoop;
use orchestra::sched::{Profiles, plugins};
use orchestra::store::MemStore;
use tokio::sync::oneshot;

use super::{SchedResult, workload};
use crate::bench::BenchError;
use crate::bench::report::{Latency, latency_histogram, record, round1};
use crate::cli::bench::{SchedMode, SchedWorkload};

/// API calls in flight at once while the benchmark creates objects.
const CONCURRENCY: usize = 64;
/// How often the benchmark looks at what its watch has seen.
const POLL: Duration = Duration::from_millis(2);
/// The probe pod's name (not one of the workload's `pod-<i>`).
const PROBE: &str = "probe";

/// What the benchmark's pod watch has seen.
struct Tracker {
    /// When pod `i` was about to be created.
    created: Vec<Option<Instant>>,
    /// Whether pod `i` was seen bound.
    bound: Vec<bool>,
    /// Pods seen bound.
    count: usize,
    /// When the last of them was seen bound.
    last: Option<Instant>,
    /// Creation to bound, per pod.
    latency: Histogram<u64>,
    probe_bound: bool,
}

impl Tracker {
    fn new(pods: usize) -> Result<Self, BenchError> {
        Ok(Tracker {
            created: vec![None; pods],
            bound: vec![false; pods],
            count: 0,
            last: None,
            latency: latency_histogram()?,
            probe_bound: false,
        })
    }

    /// A pod as the watch shows it at `now`.
    fn observe(&mut self, pod: &Pod, now: Instant) {
        let meta = &pod.metadata;
        if meta.namespace != workload::NAMESPACE || pod.spec.node_name.is_empty() {
            return;
        }
        if meta.name == PROBE {
            self.probe_bound = true;
            return;
        }
        let Some(i) = workload::pod_index(&meta.name).filter(|&i| i < self.bound.len()) else {
            return;
        };
        if std::mem::replace(&mut self.bound[i], true) {
            return;
        }
        self.count += 1;
        self.last = Some(now);
        if let Some(created) = self.created[i] {
            record(&mut self.latency, now.saturating_duration_since(created));
        }
    }
}

type Shared = Arc<Mutex<Tracker>>;

fn lock(tracker: &Shared) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(PoisonError::into_inner)
}

fn api_error(what: &'static str) -> impl Fn(orchestra::api::ApiError) -> BenchError {
    move |e| BenchError::Sched(format!("{what}: {e}"))
}

/// Creates every object of `objects` through the API, [`CONCURRENCY`] at a time.
async fn create_all<R: orchestra::api::Resource>(
    client: &LocalClient,
    objects: impl Iterator<Item = R>,
    what: &'static str,
) -> Result<(), BenchError> {
    let results: Vec<_> = futures::stream::iter(objects)
        .map(|object| {
            let client = client.clone();
            async move { client.create(&object).await.map(drop) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results
        .into_iter()
        .collect::<Result<(), _>>()
        .map_err(api_error(what))
}

/// Waits until `done` holds of the tracker, or fails after `timeout` saying `what`.
async fn wait_for(
    tracker: &Shared,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Tracker) -> bool,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let t = lock(tracker);
            if done(&t) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Sched(format!(
                    "{what}: not done after {timeout:?} ({} of {} pods bound)",
                    t.count,
                    t.bound.len()
                )));
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One workload end to end; see the [module docs](self).
pub async fn run_one(
    workload: SchedWorkload,
    nodes: u32,
    pods: u32,
    seed: u64,
    timeout: Duration,
) -> Result<SchedResult, BenchError> {
    let client = LocalClient::new(MemStore::new());
    let namespace = Namespace {
        metadata: ObjectMeta::named(workload::NAMESPACE),
        ..Namespace::default()
    };
    client
        .create(&namespace)
        .await
        .map_err(api_error("creating the namespace"))?;
    create_all(
        &client,
        (0..nodes as usize).map(workload::node),
        "creating a node",
    )
    .await?;
    if workload == SchedWorkload::Preemption {
        let low = (0..nodes as usize).flat_map(|i| {
            (0..workload::LOW_PRIORITY_PER_NODE).map(move |j| workload::low_priority_pod(i, j))
        });
        create_all(&client, low, "creating a low-priority pod").await?;
    }

    let tracker: Shared = Arc::new(Mutex::new(Tracker::new(pods as usize)?));
    let watch = {
        let mut events = watcher::watcher::<Pod, _>(client.clone(), WatcherConfig::default());
        let tracker = tracker.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let now = Instant::now();
                match event {
                    Ok(Event::Restarted(pods)) => {
                        let mut t = lock(&tracker);
                        pods.iter().for_each(|p| t.observe(p, now));
                    }
                    Ok(Event::Applied(pod)) => lock(&tracker).observe(&pod, now),
                    Ok(Event::Deleted(_)) | Err(_) => {}
                }
            }
        })
    };

    let mut profiles = Profiles::new();
    let mut profile = plugins::default_profile();
    profile.seed = seed;
    profiles.insert(profile);
    let scheduler = SchedulerLoop::new(client.clone(), profiles)
        .map_err(|e| BenchError::Sched(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));

    // The loop has listed the cluster and binds: the timed phase measures scheduling only.
    client
        .create(&probe_pod())
        .await
        .map_err(api_error("creating the probe pod"))?;
    wait_for(&tracker, "binding the probe pod", timeout, |t| {
        t.probe_bound
    })
    .await?;

    tracing::info!(
        mode = SchedMode::E2e.as_str(),
        workload = workload.as_str(),
        nodes,
        pods,
        "scheduling"
    );
    let started = Instant::now();
    let creations: Vec<_> = futures::stream::iter(0..pods as usize)
        .map(|i| {
            let client = client.clone();
            let tracker = tracker.clone();
            async move {
                let pod = workload::pod(workload, i, pods as usize);
                lock(&tracker).created[i] = Some(Instant::now());
                client.create(&pod).await.map(drop)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    creations
        .into_iter()
        .collect::<Result<(), _>>()
        .map_err(api_error("creating a pod"))?;
    let created = started.elapsed();
    let all = pods as usize;
    wait_for(&tracker, "binding every pod", timeout, |t| t.count >= all).await?;

    let _ = stop.send(());
    running
        .await
        .map_err(|e| BenchError::Sched(format!("the scheduling loop: {e}")))?;
    watch.abort();
    let t = lock(&tracker);
    let seconds = t
        .last
        .map_or(started.elapsed(), |at| {
            at.saturating_duration_since(started)
        })
        .as_secs_f64();
    Ok(SchedResult {
        bench: "sched",
        workload,
        nodes,
        pods,
        pods_per_sec: round1(f64::from(pods) / seconds),
        mode: SchedMode::E2e,
        scheduled: t.count as u64,
        unschedulable: (all - t.count) as u64,
        seconds: (seconds * 1000.0).round() / 1000.0,
        create_seconds: Some((created.as_secs_f64() * 1000.0).round() / 1000.0),
        latency: Latency::of(&t.latency),
        seed,
    })
}

/// A pod requesting nothing: it fits every workload's nodes, even the full ones.
fn probe_pod() -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced(workload::NAMESPACE, PROBE),
        spec: PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: "registry.example/probe:1".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        status: None,
    }
}
