//! Pod start and teardown through the real agent: an in-process API (LocalClient over
//! MemStore), an [`Agent`] registering one node over the runtime under test, and a watch on
//! pods that notes when each pod first shows Running with Ready=True and when it is gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use orchestra::api::registry::DeleteOptions;
use orchestra::api::resources::Pod;
use orchestra::api::watcher::{self, Event, WatcherConfig};
use orchestra::api::{Client, LocalClient};
use orchestra::node::{Agent, AgentConfig, RuntimeDriver};
use orchestra::store::MemStore;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::bench::BenchError;
use crate::bench::node::{NODE, PodShape, bench_pod, node_error};
use crate::bench::report::{latency_histogram, record};

/// How long a batch may take to become ready or to go away before the run fails.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// What the watch saw happen to a pod.
enum Seen {
    /// The watch is established (its first list arrived).
    Listed,
    /// The pod showed Running and Ready=True.
    Ready(String),
    /// The pod object is gone.
    Gone(String),
}

/// An API, an agent and a watch, running until dropped.
pub struct Harness {
    client: LocalClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    stop_agent: Option<oneshot::Sender<()>>,
    agent: Option<JoinHandle<()>>,
    watch: JoinHandle<()>,
    shape: PodShape,
}

/// Start and teardown latencies of pods through the agent.
pub struct AgentTimes {
    /// From the create call to the watch seeing Running and Ready, per pod.
    pub start: Histogram<u64>,
    /// From the delete call to the watch seeing the object gone, per pod.
    pub teardown: Histogram<u64>,
}

impl Harness {
    /// Starts the API, the watch and an agent over `runtime` with `sync_interval`.
    pub async fn start<R: RuntimeDriver + 'static>(
        runtime: Arc<R>,
        shape: PodShape,
        sync_interval: Duration,
    ) -> Result<Self, BenchError> {
        let client = LocalClient::new(MemStore::new());
        let (tx, mut seen) = mpsc::unbounded_channel();
        let mut events = watcher::watcher::<Pod, _>(client.clone(), WatcherConfig::default());
        let watch = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                let sent = match event {
                    Event::Restarted(pods) => {
                        let mut ok = tx.send(Seen::Listed).is_ok();
                        for pod in pods.iter().filter(|p| p.is_running_and_ready()) {
                            ok &= tx.send(Seen::Ready(pod.metadata.name.clone())).is_ok();
                        }
                        ok
                    }
                    Event::Applied(pod) if pod.is_running_and_ready() => {
                        tx.send(Seen::Ready(pod.metadata.name.clone())).is_ok()
                    }
                    Event::Applied(_) => true,
                    Event::Deleted(pod) => tx.send(Seen::Gone(pod.metadata.name.clone())).is_ok(),
                };
                if !sent {
                    return;
                }
            }
        });
        // The first list: pods created from now on are seen by the watch.
        match tokio::time::timeout(BATCH_TIMEOUT, seen.recv()).await {
            Ok(Some(Seen::Listed)) => {}
            _ => {
                return Err(BenchError::NodeTimeout(
                    "the pod watch did not start".to_string(),
                ));
            }
        }
        let mut config = AgentConfig::new(NODE);
        config.sync_interval = sync_interval;
        let agent = Agent::with_shared_runtime(client.clone(), runtime, config);
        let (stop_agent, stopped) = oneshot::channel::<()>();
        let agent = tokio::spawn(agent.run(async {
            let _ = stopped.await;
        }));
        Ok(Harness {
            client,
            seen,
            stop_agent: Some(stop_agent),
            agent: Some(agent),
            watch,
            shape,
        })
    }

    /// Runs `rounds` batches of `batch` pods: all created, all ready, all deleted, all gone.
    pub async fn measure(&mut self, batch: u32, rounds: u32) -> Result<AgentTimes, BenchError> {
        let mut times = AgentTimes {
            start: latency_histogram()?,
            teardown: latency_histogram()?,
        };
        for round in 0..rounds {
            let names: Vec<String> = (0..batch)
                .map(|i| format!("agent-{batch}-{round}-{i}"))
                .collect();
            let mut pending = HashMap::with_capacity(names.len());
            for name in &names {
                let pod = bench_pod(name, &self.shape, false);
                pending.insert(name.clone(), Instant::now());
                self.client
                    .create(&pod)
                    .await
                    .map_err(node_error("creating a pod"))?;
            }
            self.wait(&mut pending, &mut times.start, true).await?;
            for name in &names {
                pending.insert(name.clone(), Instant::now());
                self.client
                    .delete::<Pod>("default", name, &DeleteOptions::default())
                    .await
                    .map_err(node_error("deleting a pod"))?;
            }
            self.wait(&mut pending, &mut times.teardown, false).await?;
        }
        Ok(times)
    }

    /// Waits until every pending pod is ready (`ready`) or gone (`!ready`), recording each.
    async fn wait(
        &mut self,
        pending: &mut HashMap<String, Instant>,
        hist: &mut Histogram<u64>,
        ready: bool,
    ) -> Result<(), BenchError> {
        let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
        while !pending.is_empty() {
            let seen = match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(seen)) => seen,
                Ok(None) | Err(_) => {
                    return Err(BenchError::NodeTimeout(format!(
                        "{} {} pods did not become {} within {} s",
                        pending.len(),
                        self.shape.runtime,
                        if ready { "ready" } else { "gone" },
                        BATCH_TIMEOUT.as_secs()
                    )));
                }
            };
            let name = match (seen, ready) {
                (Seen::Ready(name), true) | (Seen::Gone(name), false) => name,
                _ => continue,
            };
            if let Some(since) = pending.remove(&name) {
                record(hist, since.elapsed());
            }
        }
        Ok(())
    }

    /// Stops the agent and the watch.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop_agent.take() {
            let _ = stop.send(());
        }
        if let Some(agent) = self.agent.take() {
            let _ = agent.await;
        }
        self.watch.abort();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(agent) = &self.agent {
            agent.abort();
        }
        self.watch.abort();
    }
}
