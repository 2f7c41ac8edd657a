//! A refused finalizer write (in a secure cluster, the node authorizer may not have seen the
//! pod's binding yet: its watch can be a moment behind the agent's) is retried after 25 ms,
//! doubling, not after a second: the refusal must not add a second to the pod's start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::{
    DeleteOptions, DeleteOutcome, ListOptions, ObjectList, WatchEvents, WatchOptions,
};
use orchestra_api::resources::{Container, Pod, PodPhase, PodSpec};
use orchestra_api::{ApiError, Client, LocalClient, ObjectMeta, Resource};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

/// A client that refuses the first `refusals` pod updates as the node authorizer would, and
/// records when each pod update was tried.
#[derive(Clone)]
struct LaggingAuthorizer {
    inner: LocalClient,
    refusals: Arc<Mutex<usize>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

#[async_trait]
impl Client for LaggingAuthorizer {
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        self.inner.get(namespace, name).await
    }
    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        self.inner.list(namespace, options).await
    }
    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.inner.create(object).await
    }
    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        if R::KIND == "Pod" {
            self.attempts.lock().unwrap().push(Instant::now());
            let mut refusals = self.refusals.lock().unwrap();
            if *refusals > 0 {
                *refusals -= 1;
                return Err(ApiError::Forbidden(
                    "a node may only modify pods bound to it".into(),
                ));
            }
        }
        self.inner.update(object).await
    }
    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.inner.update_status(object).await
    }
    async fn patch<R: Resource>(&self, ns: &str, name: &str, patch: &Value) -> Result<R, ApiError> {
        self.inner.patch(ns, name, patch).await
    }
    async fn delete<R: Resource>(
        &self,
        ns: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        self.inner.delete(ns, name, options).await
    }
    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        self.inner.watch(namespace, options).await
    }
    async fn bind(&self, ns: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        self.inner.bind(ns, pod, node).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_finalizer_write_is_retried_within_milliseconds() {
    let client = LaggingAuthorizer {
        inner: LocalClient::new(MemStore::new()),
        refusals: Arc::new(Mutex::new(3)),
        attempts: Arc::default(),
    };
    let (_stop, stopped) = oneshot::channel::<()>();
    let agent = Agent::new(
        client.clone(),
        FakeRuntime::new(),
        AgentConfig::new("node-1"),
    );
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    let pod = Pod {
        metadata: ObjectMeta::namespaced("default", "web"),
        spec: PodSpec {
            node_name: "node-1".into(),
            containers: vec![Container {
                name: "main".into(),
                image: "pause".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    };
    client.inner.create(&pod).await.unwrap();
    let created = Instant::now();
    loop {
        let pod: Pod = client.inner.get("default", "web").await.unwrap();
        if pod.status.and_then(|s| s.phase) == Some(PodPhase::Running) {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(10),
            "the pod never ran"
        );
        sleep(Duration::from_millis(5)).await;
    }
    let offsets: Vec<u128> = client
        .attempts
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - created).as_millis())
        .collect();
    // Three refusals: retried after 25, 50 and 100 ms; the fourth write adds the finalizer.
    assert_eq!(offsets.len(), 4, "pod update attempts (ms): {offsets:?}");
    let gaps: Vec<u128> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [25, 50, 100], "gaps between attempts (ms)");
    assert!(
        created.elapsed() < Duration::from_millis(500),
        "running after {:?}",
        created.elapsed()
    );
    task.abort();
}
