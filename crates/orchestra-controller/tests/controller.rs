//! The controller runtime over LocalClient in paused time: which events reach which keys, no
//! key reconciled twice at once, backoff after errors that a success resets, the deleted hook,
//! graceful shutdown, and the finalizer helper.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Pod, ReplicaSet};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, OwnerReference, testing};
use orchestra_controller::finalizer::{self, FinalizerError};
use orchestra_controller::{Action, Context, Controller, Reconciler, SharedInformers};
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("planned failure")]
struct Planned;

/// A reconciler shared with the test that inspects it.
struct Shared<T>(Arc<T>);

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Records every reconcile; fails a key as often as planned; can take time.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, Instant, u32)>>,
    deleted: Mutex<Vec<String>>,
    in_flight: Mutex<HashSet<String>>,
    overlaps: Mutex<u32>,
    failures_left: Mutex<BTreeMap<String, u32>>,
    work: Duration,
}

#[async_trait]
impl Reconciler for Shared<Recorder> {
    type Object = Pod;
    type Error = Planned;

    async fn reconcile(&self, pod: Arc<Pod>, ctx: &Context) -> Result<Action, Planned> {
        let name = pod.metadata.name.clone();
        if !self.in_flight.lock().unwrap().insert(name.clone()) {
            *self.overlaps.lock().unwrap() += 1;
        }
        self.calls
            .lock()
            .unwrap()
            .push((name.clone(), Instant::now(), ctx.retries()));
        tokio::time::sleep(self.work).await;
        self.in_flight.lock().unwrap().remove(&name);
        let mut failures = self.failures_left.lock().unwrap();
        match failures.get_mut(&name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(Planned)
            }
            _ => Ok(Action::AwaitChange),
        }
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Planned> {
        self.deleted.lock().unwrap().push(key.name.clone());
        Ok(Action::AwaitChange)
    }
}

impl Recorder {
    fn calls_of(&self, name: &str) -> Vec<(Instant, u32)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, at, retries)| (*at, *retries))
            .collect()
    }
}

/// Waits (in paused time) until `cond` holds, failing after a minute of virtual time.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start<R: Reconciler>(controller: Controller<R, LocalClient>) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("controller task");
    }
}

#[tokio::test(start_paused = true)]
async fn every_object_is_reconciled_at_start_and_after_each_change_and_deletion() {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&testing::pod("ns", "a", "web"))
        .await
        .unwrap();
    client
        .create(&testing::pod("ns", "b", "web"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let recorder = Arc::new(Recorder::default());
    let running = start(Controller::new(Shared(Arc::clone(&recorder)), &informers));
    eventually("both pods reconciled", || {
        recorder.calls_of("a").len() == 1 && recorder.calls_of("b").len() == 1
    })
    .await;

    let mut a: Pod = client.get("ns", "a").await.unwrap();
    a.metadata.labels.insert("v".into(), "2".into());
    client.update(&a).await.unwrap();
    eventually("a reconciled after its change", || {
        recorder.calls_of("a").len() == 2
    })
    .await;
    client
        .delete::<Pod>("ns", "b", &DeleteOptions::default())
        .await
        .unwrap();
    eventually("b's deletion seen", || {
        recorder.deleted.lock().unwrap().as_slice() == ["b"]
    })
    .await;
    assert_eq!(
        recorder.calls_of("b").len(),
        1,
        "a deleted object is not reconciled"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_key_is_never_reconciled_twice_at_once_even_with_many_workers() {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&testing::pod("ns", "hot", "web"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let recorder = Arc::new(Recorder {
        work: Duration::from_millis(50),
        ..Recorder::default()
    });
    let running = start(Controller::new(Shared(Arc::clone(&recorder)), &informers).concurrency(8));
    eventually("first reconcile", || !recorder.calls_of("hot").is_empty()).await;
    for i in 0..20 {
        let mut pod: Pod = client.get("ns", "hot").await.unwrap();
        pod.metadata.labels.insert("i".into(), i.to_string());
        client.update(&pod).await.unwrap();
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    // The last change is reconciled after it was made.
    let last_change = Instant::now();
    eventually("the last change reconciled", || {
        recorder
            .calls_of("hot")
            .last()
            .is_some_and(|(at, _)| *at >= last_change)
    })
    .await;
    assert_eq!(*recorder.overlaps.lock().unwrap(), 0);
    // 20 changes during 50 ms reconciles are deduplicated into far fewer reconciles.
    let calls = recorder.calls_of("hot").len();
    assert!(calls < 10, "{calls} reconciles for 20 quick changes");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn errors_back_off_exponentially_and_success_resets_the_backoff() {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&testing::pod("ns", "flaky", "web"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let recorder = Arc::new(Recorder::default());
    recorder
        .failures_left
        .lock()
        .unwrap()
        .insert("flaky".into(), 4);
    let controller = Controller::new(Shared(Arc::clone(&recorder)), &informers).name("flaky");
    let metrics = controller.metrics();
    let running = start(controller);
    eventually("four failures and a success", || {
        recorder.calls_of("flaky").len() == 5
    })
    .await;
    let calls = recorder.calls_of("flaky");
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(
        gaps,
        [5, 10, 20, 40].map(Duration::from_millis),
        "5 ms doubling"
    );
    let retries: Vec<u32> = calls.iter().map(|(_, r)| *r).collect();
    assert_eq!(retries, [0, 1, 2, 3, 4]);
    let counters = metrics.counters();
    assert_eq!(
        (counters.errors(), counters.retries(), counters.successes()),
        (4, 4, 1)
    );
    assert!(
        metrics
            .render()
            .contains("orchestra_controller_reconcile_errors_total{controller=\"flaky\"} 4")
    );

    // After the success the backoff starts over.
    recorder
        .failures_left
        .lock()
        .unwrap()
        .insert("flaky".into(), 1);
    let mut pod: Pod = client.get("ns", "flaky").await.unwrap();
    pod.metadata.labels.insert("again".into(), "1".into());
    client.update(&pod).await.unwrap();
    eventually("failure then success", || {
        recorder.calls_of("flaky").len() == 7
    })
    .await;
    let calls = recorder.calls_of("flaky");
    assert_eq!(calls[6].0 - calls[5].0, Duration::from_millis(5));
    assert_eq!((calls[5].1, calls[6].1), (0, 1));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_running_reconcile_finish_and_starts_no_new_one() {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&testing::pod("ns", "slow", "web"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let recorder = Arc::new(Recorder {
        work: Duration::from_secs(10),
        ..Recorder::default()
    });
    let running = start(Controller::new(Shared(Arc::clone(&recorder)), &informers));
    eventually("reconcile started", || {
        !recorder.in_flight.lock().unwrap().is_empty()
    })
    .await;
    let started = Instant::now();
    running.stop().await;
    assert!(
        Instant::now() - started >= Duration::from_secs(9),
        "waited for the reconcile"
    );
    assert!(recorder.in_flight.lock().unwrap().is_empty(), "it finished");
    client
        .create(&testing::pod("ns", "late", "web"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(recorder.calls_of("late").is_empty());
}

/// Reconciles ReplicaSets; records which were triggered.
#[derive(Default)]
struct Owners {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Reconciler for Shared<Owners> {
    type Object = ReplicaSet;
    type Error = Planned;

    async fn reconcile(&self, rs: Arc<ReplicaSet>, _ctx: &Context) -> Result<Action, Planned> {
        self.calls.lock().unwrap().push(rs.metadata.name.clone());
        Ok(Action::AwaitChange)
    }
}

fn replica_set(name: &str) -> ReplicaSet {
    let mut rs = ReplicaSet {
        metadata: ObjectMeta::namespaced("ns", name),
        ..ReplicaSet::default()
    };
    rs.spec.selector = LabelSelector::match_labels([("app", name)]);
    rs.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    rs.spec.template.spec = testing::pod("ns", "x", name).spec;
    rs
}

#[tokio::test(start_paused = true)]
async fn owned_objects_map_to_their_controller_and_watched_ones_through_the_mapper() {
    let client = LocalClient::new(MemStore::new());
    let web = client.create(&replica_set("web")).await.unwrap();
    client.create(&replica_set("db")).await.unwrap();
    client.create(&replica_set("cache")).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let owners = Arc::new(Owners::default());
    let controller = Controller::new(Shared(Arc::clone(&owners)), &informers)
        .owns::<Pod>()
        .watches::<Pod, _>(|pod| {
            // Pods labelled `notify=<rs>` poke that replica set.
            pod.metadata
                .labels
                .get("notify")
                .map(|name| ObjectKey {
                    namespace: pod.metadata.namespace.clone(),
                    name: name.clone(),
                })
                .into_iter()
                .collect()
        });
    let running = start(controller);
    eventually("initial reconciles", || {
        owners.calls.lock().unwrap().len() == 3
    })
    .await;
    owners.calls.lock().unwrap().clear();

    let mut owned = testing::pod("ns", "web-1", "web");
    owned.metadata.owner_references = vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web".into(),
        uid: web.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: None,
    }];
    client.create(&owned).await.unwrap();
    eventually("owner reconciled", || {
        owners.calls.lock().unwrap().as_slice() == ["web"]
    })
    .await;
    owners.calls.lock().unwrap().clear();

    let mut poke = testing::pod("ns", "poke", "none");
    poke.metadata.labels.insert("notify".into(), "db".into());
    client.create(&poke).await.unwrap();
    eventually("mapped key reconciled", || {
        owners.calls.lock().unwrap().as_slice() == ["db"]
    })
    .await;
    owners.calls.lock().unwrap().clear();

    // A pod whose owner reference names another kind reaches nobody.
    let mut foreign = testing::pod("ns", "foreign", "x");
    foreign.metadata.owner_references = vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: "cache".into(),
        uid: "u".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }];
    client.create(&foreign).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(owners.calls.lock().unwrap().is_empty());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn controllers_in_one_process_share_one_watch_per_kind() {
    let client =
        orchestra_api::watcher::faults::FaultyClient::new(LocalClient::new(MemStore::new()));
    let informers = SharedInformers::new(client.clone());
    let first = informers.informer::<Pod>();
    let second = informers.informer::<Pod>();
    first.wait_until_ready().await.unwrap();
    second.wait_until_ready().await.unwrap();
    assert_eq!(client.list_calls(), 1, "one list for both");
    assert_eq!(client.watch_versions().len(), 1, "one watch for both");
    client
        .create(&testing::pod("ns", "a", "web"))
        .await
        .unwrap();
    let created: Pod = client.get("ns", "a").await.unwrap();
    let revision: i64 = created.metadata.resource_version.parse().unwrap();
    second.wait_for_revision(revision).await;
    assert!(first.store().get("ns", "a").is_some(), "the same cache");
}

#[derive(Debug, thiserror::Error)]
enum CleanupError {
    #[error("cleanup not possible yet")]
    NotYet,
}

#[tokio::test(start_paused = true)]
async fn finalizer_adds_applies_cleans_up_then_removes_idempotently() {
    const NAME: &str = "example.com/cleanup";
    let client = LocalClient::new(MemStore::new());
    let created = client
        .create(&testing::pod("ns", "db", "db"))
        .await
        .unwrap();
    let log = Mutex::new(Vec::<&str>::new());
    let run = |pod: Pod, cleanup_ok: bool| {
        let client = client.clone();
        let log = &log;
        async move {
            finalizer::finalizer(&client, NAME, Arc::new(pod), |event| async move {
                match event {
                    finalizer::Event::Apply(_) => {
                        log.lock().unwrap().push("apply");
                        Ok(Action::requeue(Duration::from_secs(60)))
                    }
                    finalizer::Event::Cleanup(_) => {
                        log.lock().unwrap().push("cleanup");
                        if cleanup_ok {
                            Ok(Action::AwaitChange)
                        } else {
                            Err(CleanupError::NotYet)
                        }
                    }
                }
            })
            .await
        }
    };

    let action = run(created.clone(), true).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let pod: Pod = client.get("ns", "db").await.unwrap();
    assert_eq!(pod.metadata.finalizers, [NAME]);
    run(pod.clone(), true).await.unwrap();
    let again: Pod = client.get("ns", "db").await.unwrap();
    assert_eq!(again.metadata.finalizers, [NAME], "added once");
    assert_eq!(
        again.metadata.resource_version,
        pod.metadata.resource_version
    );

    // A stale copy cannot add the finalizer over a newer version.
    let stale = run(created, true).await.unwrap_err();
    assert!(matches!(stale, FinalizerError::Add { ref source, .. } if source.is_conflict()));

    client
        .delete::<Pod>("ns", "db", &DeleteOptions::default())
        .await
        .unwrap();
    let marked: Pod = client.get("ns", "db").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "held by the finalizer"
    );
    let failed = run(marked.clone(), false).await.unwrap_err();
    assert!(matches!(
        failed,
        FinalizerError::Reconcile(CleanupError::NotYet)
    ));
    assert!(
        client.get::<Pod>("ns", "db").await.is_ok(),
        "kept while cleanup fails"
    );
    run(marked.clone(), true).await.unwrap();
    let gone = client.get::<Pod>("ns", "db").await.unwrap_err();
    assert!(
        gone.is_not_found(),
        "removing the last finalizer deletes it"
    );
    // Running again with the last state is harmless.
    assert_eq!(run(marked, true).await.unwrap(), Action::AwaitChange);
    assert_eq!(
        log.lock().unwrap().as_slice(),
        ["apply", "apply", "cleanup", "cleanup", "cleanup"]
    );
}

#[tokio::test(start_paused = true)]
async fn debounce_merges_a_burst_of_changes_into_one_reconcile() {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&testing::pod("ns", "busy", "web"))
        .await
        .unwrap();
    let informers = SharedInformers::new(client.clone());
    let recorder = Arc::new(Recorder::default());
    let controller = Controller::new(Shared(Arc::clone(&recorder)), &informers)
        .debounce(Duration::from_millis(100));
    let running = start(controller);
    eventually("initial reconcile", || recorder.calls_of("busy").len() == 1).await;
    // The informer's first list reaches the queue debounced too: let it pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = recorder.calls_of("busy").len();
    let first_change = Instant::now();
    for i in 0..5 {
        let mut pod: Pod = client.get("ns", "busy").await.unwrap();
        pod.metadata.labels.insert("i".into(), i.to_string());
        client.update(&pod).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = recorder.calls_of("busy");
    assert_eq!(calls.len(), before + 1, "one reconcile for the burst");
    assert_eq!(calls[before].0 - first_change, Duration::from_millis(100));
    running.stop().await;
}
