//! Writes the agent retries, through a client that refuses them for a while:
//! - the node lease: renewals that fail are retried after 200 ms, doubling (to 7 s at most),
//!   then renewed every 10 s again; the loop never gives up;
//! - the pod's finalizer: a refused write (in a secure cluster, the node authorizer may not
//!   have seen the pod's binding yet: its watch can be a moment behind the agent's) is retried
//!   after 25 ms, doubling, not after a second, so that it does not delay the pod's start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::resources::{Container, Lease, Pod, PodPhase, PodSpec};
use orchestra_api::testing::intercept::{Call, Intercept, Intercepted};
use orchestra_api::{ApiError, Client, LocalClient, ObjectMeta};
use orchestra_node::agent::node::{LEASE_NAMESPACE, lease_loop};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::{MemStore, StoreError};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

/// Refuses creates and updates of `kind` with `refusal()` while `failing` is above zero,
/// recording when each of them was tried.
#[derive(Clone)]
struct Refusals {
    kind: &'static str,
    refusal: fn() -> ApiError,
    failing: Arc<Mutex<usize>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

/// A LocalClient whose writes of one kind are refused for a while.
type FlakyWrites = Intercepted<LocalClient, Refusals>;

fn flaky_writes(kind: &'static str, refusal: fn() -> ApiError, failing: usize) -> FlakyWrites {
    let refusals = Refusals {
        kind,
        refusal,
        failing: Arc::new(Mutex::new(failing)),
        attempts: Arc::default(),
    };
    Intercepted::new(LocalClient::new(MemStore::new()), refusals)
}

#[async_trait]
impl Intercept<LocalClient> for Refusals {
    async fn before(&self, _: &LocalClient, call: Call<'_>) -> Result<(), ApiError> {
        let write = matches!(call, Call::Create { .. } | Call::Update { .. });
        if !write || call.kind() != self.kind {
            return Ok(());
        }
        self.attempts.lock().unwrap().push(Instant::now());
        let mut failing = self.failing.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err((self.refusal)());
        }
        Ok(())
    }
}

impl Refusals {
    /// The attempts' times, in ms after `start`.
    fn attempts_since(&self, start: Instant) -> Vec<u128> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .map(|t| (*t - start).as_millis())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn failed_renewals_back_off_from_200ms_and_never_stop_the_loop() {
    let client = flaky_writes(
        "Lease",
        || ApiError::Internal(StoreError::Io("the disk went away".into())),
        7,
    );
    let t0 = Instant::now();
    let task = tokio::spawn(lease_loop(client.clone(), Arc::new(AgentConfig::new("n1"))));
    sleep(Duration::from_secs(30)).await;
    let offsets = client.hook.attempts_since(t0);
    // 7 failures: retried after 200, 400, 800, 1600, 3200, 6400 and 7000 ms; then the 8th
    // attempt creates the lease and renewals follow every 10 s.
    assert_eq!(
        offsets,
        [0, 200, 600, 1400, 3000, 6200, 12600, 19600, 29600],
        "lease write attempts (ms)"
    );
    let lease: Lease = client.inner.get(LEASE_NAMESPACE, "n1").await.unwrap();
    assert_eq!(lease.spec.holder_identity.as_deref(), Some("n1"));
    assert_eq!(lease.spec.lease_duration_seconds, Some(40));
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_refused_finalizer_write_is_retried_within_milliseconds() {
    let client = flaky_writes(
        "Pod",
        || ApiError::Forbidden("a node may only modify pods bound to it".into()),
        3,
    );
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
    let offsets = client.hook.attempts_since(created);
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
