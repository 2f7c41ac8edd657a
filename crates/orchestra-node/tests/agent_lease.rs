//! The node lease: renewals that fail are retried after 200 ms, doubling (to 7 s at most),
//! then renewed every 10 s again; the loop never gives up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::{
    DeleteOptions, DeleteOutcome, ListOptions, ObjectList, WatchEvents, WatchOptions,
};
use orchestra_api::resources::{Lease, Pod};
use orchestra_api::{ApiError, Client, LocalClient, Resource};
use orchestra_node::agent::AgentConfig;
use orchestra_node::agent::node::{LEASE_NAMESPACE, lease_loop};
use orchestra_store::{MemStore, StoreError};
use serde_json::Value;
use tokio::time::{Instant, sleep};

/// A client whose Lease writes fail while `failing` is above zero, recording when each Lease
/// write was tried.
#[derive(Clone)]
struct FlakyLeases {
    inner: LocalClient,
    failing: Arc<Mutex<usize>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl FlakyLeases {
    fn write<R: Resource>(&self) -> Result<(), ApiError> {
        if R::KIND != "Lease" {
            return Ok(());
        }
        self.attempts.lock().unwrap().push(Instant::now());
        let mut failing = self.failing.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(ApiError::Internal(StoreError::Io(
                "the disk went away".into(),
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Client for FlakyLeases {
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
        self.write::<R>()?;
        self.inner.create(object).await
    }
    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.write::<R>()?;
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
async fn failed_renewals_back_off_from_200ms_and_never_stop_the_loop() {
    let client = FlakyLeases {
        inner: LocalClient::new(MemStore::new()),
        failing: Arc::new(Mutex::new(7)),
        attempts: Arc::default(),
    };
    let t0 = Instant::now();
    let task = tokio::spawn(lease_loop(client.clone(), Arc::new(AgentConfig::new("n1"))));
    sleep(Duration::from_secs(30)).await;
    let offsets: Vec<u128> = client
        .attempts
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - t0).as_millis())
        .collect();
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
