//! Helpers shared by the integration tests: a client whose writes fail on demand, waiting for
//! a condition in paused time, running a controller until told to stop, and pods that no
//! controller under test made (orphans, another controller's).

#![allow(dead_code)] // each test file uses a part

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Event, Pod};
use orchestra_api::testing::intercept::{Call, Intercept, Intercepted};
use orchestra_api::{ApiError, Client, OwnerReference, Resource};
use orchestra_controller::{Controller, Reconciler};
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Plan {
    /// For each coming write (create, update, update_status, patch, delete): fail it with a
    /// conflict when `true`.
    writes: VecDeque<bool>,
    /// Creates succeed this many times, then fail (None: no limit).
    creates_left: Option<usize>,
    /// The time of every create attempt.
    creates: Vec<Instant>,
    /// Every call (reads, writes, watches) fails while set: the API is unreachable.
    down: bool,
}

/// The faults planned for a [`FlakyClient`]; clones share the plan.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
}

/// A client whose writes fail as planned (reads and watches pass through).
pub type FlakyClient<C> = Intercepted<C, Faults>;

/// Wraps `inner`, with no faults planned.
pub fn flaky_client<C: Client>(inner: C) -> FlakyClient<C> {
    Intercepted::new(inner, Faults::default())
}

impl Faults {
    /// The coming writes fail (`true`) or pass (`false`) in this order; later ones pass.
    pub fn plan_writes(&self, outcomes: impl IntoIterator<Item = bool>) {
        self.plan.lock().unwrap().writes.extend(outcomes);
    }

    /// Creates after the next `n` fail.
    pub fn creates_succeed(&self, n: Option<usize>) {
        self.plan.lock().unwrap().creates_left = n;
    }

    pub fn create_attempts(&self) -> Vec<Instant> {
        self.plan.lock().unwrap().creates.clone()
    }

    /// Makes every later call fail (`true`), as if the API server were unreachable, or work
    /// again (`false`).
    pub fn set_down(&self, down: bool) {
        self.plan.lock().unwrap().down = down;
    }

    fn reachable(&self) -> Result<(), ApiError> {
        if self.plan.lock().unwrap().down {
            return Err(ApiError::Internal(orchestra_store::StoreError::Io(
                "injected fault: the API server is unreachable".into(),
            )));
        }
        Ok(())
    }

    /// A planned failure of the create, when one is due (the attempt is recorded).
    fn create(&self) -> Result<(), ApiError> {
        let mut plan = self.plan.lock().unwrap();
        plan.creates.push(Instant::now());
        if let Some(left) = plan.creates_left.as_mut() {
            if *left == 0 {
                return Err(ApiError::BadRequest("planned create failure".into()));
            }
            *left -= 1;
        }
        Ok(())
    }

    fn write(&self, what: &str) -> Result<(), ApiError> {
        if self.plan.lock().unwrap().writes.pop_front() == Some(true) {
            return Err(ApiError::Conflict(format!("planned conflict on {what}")));
        }
        Ok(())
    }
}

#[async_trait]
impl<C: Client> Intercept<C> for Faults {
    async fn before(&self, _: &C, call: Call<'_>) -> Result<(), ApiError> {
        self.reachable()?;
        let what = match call {
            // Events are the recorder's writes, made in the background: they neither count
            // as the controller's creates nor take a planned failure meant for them.
            Call::Create { kind, .. } if kind == Event::KIND => return Ok(()),
            Call::Create { .. } => {
                self.create()?;
                "create"
            }
            Call::Update { .. } => "update",
            Call::UpdateStatus { .. } => "update_status",
            Call::Patch { .. } => "patch",
            Call::Delete { .. } => "delete",
            Call::Get { .. } | Call::List { .. } | Call::Watch { .. } | Call::Bind { .. } => {
                return Ok(());
            }
        };
        self.write(what)
    }
}

/// Waits (in paused time) until `cond` holds, failing after `limit` of virtual time.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`eventually_within`] a minute.
pub async fn eventually<F, Fut>(what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(60), cond).await;
}

/// A controller running in a task until [`Running::stop`].
pub struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub fn start<R: Reconciler, C: Client>(controller: Controller<R, C>) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("controller task");
    }
}

/// The events of `namespace` about the `kind` object `name`, with `reason`.
pub async fn events_about<C: Client>(
    client: &C,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
) -> Vec<orchestra_api::resources::Event> {
    client
        .list::<Event>(Some(namespace), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind == kind && e.involved_object.name == name)
        .filter(|e| e.reason == reason)
        .collect()
}

/// `pod` (a template's, or one a controller would make) as a pod no controller made: named
/// `name` rather than generated, and without owner. A controller whose selector it matches
/// adopts it.
pub fn orphan(mut pod: Pod, name: &str) -> Pod {
    pod.metadata.name = name.into();
    pod.metadata.generate_name.clear();
    pod.metadata.owner_references.clear();
    pod
}

/// [`orphan`], but controlled by [`other_controller`]: a pod no controller under test may
/// touch, even when its selector matches.
pub fn others_pod(pod: Pod, name: &str) -> Pod {
    let mut pod = orphan(pod, name);
    pod.metadata.owner_references = vec![other_controller()];
    pod
}

/// The controller reference of a ReplicaSet `someone-else` (no ReplicaSet controller or
/// garbage collector runs in these tests: it need not exist).
pub fn other_controller() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "someone-else".into(),
        uid: "someone-else-uid".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}
