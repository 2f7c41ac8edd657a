//! The API calls a pod's start and teardown cost the agent, through a client that counts them:
//! the finalizer is added and removed by writing the object the agent already holds (the
//! watched pod, then the one its final status write returned), conditional on its
//! resourceVersion, so neither path reads the pod back; a pod written by someone else in
//! between makes the write conflict, and the agent then reads the pod and still gets there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Pod, PodPhase};
use orchestra_api::testing::intercept::{Call, Intercept, Intercepted};
use orchestra_api::{ApiError, Client, LocalClient, Resource, testing};
use orchestra_node::agent::{Agent, AgentConfig, FINALIZER};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

const NODE: &str = "node-1";

/// Counts the agent's pod gets and writes; when `interfere` is set, the next pod update is
/// preceded by another writer's label change.
#[derive(Clone, Default)]
struct PodCalls {
    gets: Arc<AtomicU64>,
    updates: Arc<AtomicU64>,
    interfere: Arc<AtomicBool>,
}

/// A LocalClient counting the agent's pod calls.
type Counting = Intercepted<LocalClient, PodCalls>;

#[async_trait]
impl Intercept<LocalClient> for PodCalls {
    async fn before(&self, inner: &LocalClient, call: Call<'_>) -> Result<(), ApiError> {
        if call.kind() != Pod::KIND {
            return Ok(());
        }
        match call {
            Call::Get { .. } => {
                self.gets.fetch_add(1, Ordering::SeqCst);
            }
            Call::Update { meta, .. } => {
                self.updates.fetch_add(1, Ordering::SeqCst);
                if self.interfere.swap(false, Ordering::SeqCst) {
                    let mut other: Pod = inner.get(&meta.namespace, &meta.name).await?;
                    other.metadata.labels.insert("tier".into(), "front".into());
                    inner.update(&other).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn start_agent(client: &Counting) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = Agent::new(client.clone(), FakeRuntime::new(), AgentConfig::new(NODE));
    tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    stop
}

fn bound_pod(name: &str) -> Pod {
    let mut pod = testing::pod("default", name, "web");
    pod.spec.node_name = NODE.into();
    pod.spec.termination_grace_period_seconds = Some(1);
    pod
}

/// Polls the pod through the inner client (not counted) until `check` holds.
async fn wait_for(client: &LocalClient, name: &str, check: impl Fn(Option<&Pod>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pod = client.get::<Pod>("default", name).await.ok();
        if check(pod.as_ref()) {
            return;
        }
        assert!(Instant::now() < deadline, "pod {name}: {pod:#?}");
        sleep(Duration::from_millis(10)).await;
    }
}

fn running(pod: Option<&Pod>) -> bool {
    pod.is_some_and(|p| p.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running))
}

#[tokio::test(start_paused = true)]
async fn a_pods_start_and_teardown_never_read_the_pod_back() {
    let client = Counting::new(LocalClient::new(MemStore::new()), PodCalls::default());
    let _stop = start_agent(&client);
    client.inner.create(&bound_pod("web")).await.unwrap();
    wait_for(&client.inner, "web", running).await;
    let pod: Pod = client.inner.get("default", "web").await.unwrap();
    assert!(pod.metadata.finalizers.iter().any(|f| f == FINALIZER));
    assert_eq!(
        client.hook.gets.load(Ordering::SeqCst),
        0,
        "pod reads on start"
    );
    assert_eq!(
        client.hook.updates.load(Ordering::SeqCst),
        1,
        "finalizer writes"
    );

    client
        .inner
        .delete::<Pod>("default", "web", &DeleteOptions::default())
        .await
        .unwrap();
    wait_for(&client.inner, "web", |p| p.is_none()).await;
    assert_eq!(
        client.hook.gets.load(Ordering::SeqCst),
        0,
        "pod reads on teardown"
    );
    assert_eq!(
        client.hook.updates.load(Ordering::SeqCst),
        2,
        "finalizer writes: one added, one removed"
    );
}

/// A label written by someone else just before the agent's finalizer write: the write from
/// the watched object conflicts, the agent reads the pod once, keeps the label and adds the
/// finalizer.
#[tokio::test(start_paused = true)]
async fn a_conflicting_finalizer_write_rereads_and_keeps_the_other_change() {
    let calls = PodCalls {
        interfere: Arc::new(AtomicBool::new(true)),
        ..PodCalls::default()
    };
    let client = Counting::new(LocalClient::new(MemStore::new()), calls);
    let _stop = start_agent(&client);
    client.inner.create(&bound_pod("web")).await.unwrap();
    wait_for(&client.inner, "web", running).await;
    let pod: Pod = client.inner.get("default", "web").await.unwrap();
    assert!(pod.metadata.finalizers.iter().any(|f| f == FINALIZER));
    assert_eq!(
        pod.metadata.labels.get("tier").map(String::as_str),
        Some("front")
    );
    assert_eq!(
        client.hook.gets.load(Ordering::SeqCst),
        1,
        "one read after the conflict"
    );
    assert_eq!(
        client.hook.updates.load(Ordering::SeqCst),
        2,
        "the refused write and the retry"
    );
}
