//! The agent's relist (PLEG) in paused time, over a FakeRuntime that counts calls: a container
//! that exits wakes its worker within one relist period, and an idle pod costs no per-pod
//! runtime call between the long resyncs, only the node's one list per period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::resources::{Container, Pod, PodPhase, PodSpec, RestartPolicy};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_node::{
    ContainerConfig, ContainerId, ContainerStatus, ExecResult, LogOptions, LogStream,
    RuntimeDriver, RuntimeError, RuntimeState, RuntimeSummary, SandboxConfig, SandboxId,
    SandboxStatus,
};
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

const NODE: &str = "node-1";

/// Per-call counters of [`Counting`].
#[derive(Default)]
struct Calls {
    /// `sandbox_status` and `container_status`: what a worker's resync costs.
    per_pod_reads: AtomicU64,
    /// `list_summary`: the relist.
    relists: AtomicU64,
}

impl Calls {
    fn reads(&self) -> u64 {
        self.per_pod_reads.load(Ordering::SeqCst)
    }

    fn relists(&self) -> u64 {
        self.relists.load(Ordering::SeqCst)
    }
}

/// A FakeRuntime that counts the reads of the runtime's state.
struct Counting {
    inner: FakeRuntime,
    calls: Arc<Calls>,
}

#[async_trait]
impl RuntimeDriver for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        self.inner.run_pod_sandbox(config).await
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.inner.stop_pod_sandbox(id).await
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.inner.remove_pod_sandbox(id).await
    }

    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus, RuntimeError> {
        self.calls.per_pod_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.sandbox_status(id).await
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        self.inner.create_container(sandbox, config).await
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.inner.start_container(id).await
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        self.inner.stop_container(id, grace).await
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.inner.remove_container(id).await
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.calls.per_pod_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.container_status(id).await
    }

    async fn list(&self) -> Result<RuntimeState, RuntimeError> {
        self.inner.list().await
    }

    async fn list_summary(&self) -> Result<RuntimeSummary, RuntimeError> {
        self.calls.relists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_summary().await
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        self.inner.exec_sync(id, command, timeout).await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.inner.logs(id, options).await
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.inner.pull_image(image).await
    }
}

/// An agent over a counting FakeRuntime; stops when the sender is dropped or used.
fn start_agent(client: &LocalClient, config: AgentConfig) -> (Arc<Calls>, oneshot::Sender<()>) {
    let calls = Arc::new(Calls::default());
    let runtime = Counting {
        inner: FakeRuntime::new(),
        calls: calls.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = Agent::new(client.clone(), runtime, config);
    tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    (calls, stop)
}

fn pod(name: &str, image: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            node_name: NODE.into(),
            restart_policy: Some(RestartPolicy::Never),
            containers: vec![Container {
                name: "main".into(),
                image: image.into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

fn phase(pod: &Pod) -> Option<PodPhase> {
    pod.status.as_ref().and_then(|s| s.phase)
}

/// Polls (in paused time) until the pod is in `want`, at most `limit`; the time it took.
async fn wait_phase(client: &LocalClient, name: &str, want: PodPhase, limit: Duration) -> Duration {
    let began = Instant::now();
    loop {
        let pod: Pod = client.get("default", name).await.unwrap();
        if phase(&pod) == Some(want) {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < limit,
            "pod {name} not {want:?} within {limit:?}: {:?}",
            pod.status
        );
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_container_exit_wakes_its_worker_within_one_relist_period() {
    let client = LocalClient::new(MemStore::new());
    let mut config = AgentConfig::new(NODE);
    config.sync_interval = Duration::from_secs(1);
    config.resync_interval = Duration::from_secs(600);
    let (_calls, _stop) = start_agent(&client, config);
    client
        .create(&pod("job", "fake/exit:0?after=5s"))
        .await
        .unwrap();
    wait_phase(&client, "job", PodPhase::Running, Duration::from_secs(2)).await;
    // The container exits 5 s after it started: nothing but the relist can notice (the
    // resync is 10 minutes away), so Succeeded shows up at most one period after the exit.
    let after_running =
        wait_phase(&client, "job", PodPhase::Succeeded, Duration::from_secs(30)).await;
    assert!(
        after_running <= Duration::from_secs(6) + Duration::from_millis(50),
        "the exit at 5 s was reported after {after_running:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_pod_costs_no_per_pod_runtime_calls_until_the_resync() {
    let client = LocalClient::new(MemStore::new());
    let mut config = AgentConfig::new(NODE);
    config.sync_interval = Duration::from_secs(1);
    config.resync_interval = Duration::from_secs(60);
    let (calls, _stop) = start_agent(&client, config);
    client.create(&pod("idle", "fake/run")).await.unwrap();
    wait_phase(&client, "idle", PodPhase::Running, Duration::from_secs(2)).await;
    // Let the relist that first sees the container wake the worker once, then count.
    sleep(Duration::from_secs(2)).await;
    let (reads, relists) = (calls.reads(), calls.relists());
    sleep(Duration::from_secs(30)).await;
    assert_eq!(
        calls.reads(),
        reads,
        "an idle pod read the runtime between resyncs"
    );
    let relisted = calls.relists() - relists;
    assert!(
        (29..=31).contains(&relisted),
        "one relist per second expected, got {relisted} in 30 s"
    );
    // The safety-net resync still reads the pod, once a minute.
    sleep(Duration::from_secs(30)).await;
    assert!(calls.reads() > reads, "the periodic resync never ran");
}
