//! The scheduling loop over an in-process API (LocalClient over MemStore), in paused time:
//! pods are bound to nodes that fit them (each with a Scheduled event), an unschedulable pod
//! gets a FailedScheduling event
//! and is placed once a node that fits is added, a failed binding is retried, no pod is bound
//! twice, and shutdown waits for the loop.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{node, pod};
use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Event, Node, Pod};
use orchestra_api::testing::intercept::{Call, Intercept, Intercepted};
use orchestra_api::{ApiError, Client, LocalClient};
use orchestra_sched::run::SchedulerLoop;
use orchestra_sched::{Profiles, plugins};
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Counts bind calls per pod, and fails the first binding of the pods named in `conflict`.
#[derive(Clone, Default)]
struct Binds {
    binds: Arc<Mutex<HashMap<String, usize>>>,
    conflict: Arc<Mutex<Vec<String>>>,
}

/// A LocalClient whose bindings are counted and can be made to conflict.
type BindSpy = Intercepted<LocalClient, Binds>;

#[async_trait]
impl Intercept<LocalClient> for Binds {
    async fn before(&self, _: &LocalClient, call: Call<'_>) -> Result<(), ApiError> {
        let Call::Bind { pod, .. } = call else {
            return Ok(());
        };
        *self
            .binds
            .lock()
            .unwrap()
            .entry(pod.to_owned())
            .or_default() += 1;
        let planned = {
            let mut conflict = self.conflict.lock().unwrap();
            let at = conflict.iter().position(|p| p == pod);
            at.map(|i| conflict.remove(i))
        };
        match planned {
            Some(_) => Err(ApiError::Conflict(format!("pod {pod}: planned conflict"))),
            None => Ok(()),
        }
    }
}

fn spy() -> BindSpy {
    Intercepted::new(LocalClient::new(MemStore::new()), Binds::default())
}

fn start(client: &BindSpy) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let mut profiles = Profiles::new();
    profiles.insert(plugins::default_profile());
    let scheduler = SchedulerLoop::new(client.clone(), profiles).expect("a profile");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn pods(client: &BindSpy) -> Vec<Pod> {
    client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .expect("list pods")
        .items
}

async fn events(client: &BindSpy) -> Vec<Event> {
    client
        .list::<Event>(Some("default"), &ListOptions::default())
        .await
        .expect("list events")
        .items
}

/// The events with `reason`.
async fn events_for(client: &BindSpy, reason: &str) -> Vec<Event> {
    let mut events = events(client).await;
    events.retain(|e| e.reason == reason);
    events
}

/// Waits (in paused time) until `done` holds, at most `limit` of virtual time.
async fn until<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done().await
}

fn node_of<'a>(pods: &'a [Pod], name: &str) -> &'a str {
    pods.iter()
        .find(|p| p.metadata.name == name)
        .map(|p| p.spec.node_name.as_str())
        .unwrap_or("")
}

#[tokio::test(start_paused = true)]
async fn pods_are_bound_to_nodes_that_fit_and_unschedulable_ones_wait_for_a_node() {
    let client = spy();
    client.create(&node("a", "2")).await.unwrap();
    client.create(&node("b", "1")).await.unwrap();
    for name in ["p1", "p2", "p3"] {
        client.create(&pod(name, "1")).await.unwrap();
    }
    let (stop, task) = start(&client);

    assert!(
        until(Duration::from_secs(5), || async {
            pods(&client)
                .await
                .iter()
                .all(|p| !p.spec.node_name.is_empty())
        })
        .await,
        "the three pods are bound"
    );
    let placed = pods(&client).await;
    let on = |n: &str| placed.iter().filter(|p| p.spec.node_name == n).count();
    assert_eq!((on("a"), on("b")), (2, 1), "each node holds what fits");

    // Each binding is reported on its pod, from the scheduler.
    assert!(
        until(Duration::from_secs(5), || async {
            events(&client)
                .await
                .iter()
                .filter(|e| e.reason == "Scheduled")
                .count()
                == 3
        })
        .await,
        "a Scheduled event per pod: {:?}",
        events(&client).await
    );
    let scheduled = events(&client).await;
    let p1 = scheduled
        .iter()
        .find(|e| e.involved_object.name == "p1")
        .expect("p1's event");
    assert_eq!(p1.type_, "Normal");
    assert_eq!(p1.involved_object.kind, "Pod");
    assert!(!p1.involved_object.uid.is_empty());
    assert_eq!(
        p1.message,
        format!(
            "Successfully assigned default/p1 to {}",
            node_of(&placed, "p1")
        )
    );
    assert_eq!(
        p1.source.as_ref().map(|s| s.component.as_str()),
        Some("default-scheduler")
    );

    // A fourth CPU fits nowhere: a FailedScheduling warning, and no binding.
    client.create(&pod("big", "1")).await.unwrap();
    let failed = || async {
        events(&client)
            .await
            .into_iter()
            .filter(|e| e.reason == "FailedScheduling")
            .collect::<Vec<_>>()
    };
    assert!(
        until(Duration::from_secs(5), || async {
            !failed().await.is_empty()
        })
        .await,
        "an event is recorded"
    );
    let event = &failed().await[0];
    assert_eq!(event.reason, "FailedScheduling");
    assert_eq!(event.type_, "Warning");
    assert_eq!(
        event.message,
        "0/2 nodes are available: 2 Insufficient cpu."
    );
    assert_eq!(
        (
            event.involved_object.kind.as_str(),
            event.involved_object.name.as_str()
        ),
        ("Pod", "big")
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(node_of(&pods(&client).await, "big"), "");

    // A node that fits arrives: the pod goes there, well before the 5-minute flush.
    client.create(&node("c", "1")).await.unwrap();
    assert!(
        until(Duration::from_secs(15), || async {
            node_of(&pods(&client).await, "big") == "c"
        })
        .await,
        "the pod is placed on the new node"
    );

    stop.send(()).unwrap();
    task.await.expect("the loop stops cleanly");
    assert!(client.hook.binds.lock().unwrap().values().all(|&n| n == 1));
}

#[tokio::test(start_paused = true)]
async fn no_pod_is_bound_twice_and_capacity_is_respected() {
    let client = spy();
    for i in 0..5 {
        client.create(&node(&format!("n{i}"), "4")).await.unwrap();
    }
    let (stop, task) = start(&client);
    // Pods arrive while the loop runs: 20 fit (5 nodes x 4 CPUs), 5 do not.
    for i in 0..25 {
        client.create(&pod(&format!("p{i}"), "1")).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert!(
        until(Duration::from_secs(10), || async {
            pods(&client)
                .await
                .iter()
                .filter(|p| !p.spec.node_name.is_empty())
                .count()
                == 20
        })
        .await,
        "20 pods bound"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    let placed = pods(&client).await;
    assert_eq!(
        placed
            .iter()
            .filter(|p| !p.spec.node_name.is_empty())
            .count(),
        20
    );
    for i in 0..5 {
        let n = format!("n{i}");
        assert_eq!(
            placed.iter().filter(|p| p.spec.node_name == n).count(),
            4,
            "{n} is full"
        );
    }
    let binds = client.hook.binds.lock().unwrap().clone();
    assert_eq!(binds.len(), 20);
    assert!(binds.values().all(|&n| n == 1), "{binds:?}");
    // Every unscheduled pod got its event.
    let failed: std::collections::HashSet<String> = events_for(&client, "FailedScheduling")
        .await
        .into_iter()
        .map(|e| e.involved_object.name)
        .collect();
    assert_eq!(failed.len(), 5);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_binding_is_forgotten_and_retried() {
    let client = spy();
    // One node with room for exactly one pod: if the failed assumption were kept, the retry
    // would find the node full.
    client.create(&node("only", "1")).await.unwrap();
    client.hook.conflict.lock().unwrap().push("p".to_owned());
    client.create(&pod("p", "1")).await.unwrap();
    let (stop, task) = start(&client);
    assert!(
        until(Duration::from_secs(15), || async {
            node_of(&pods(&client).await, "p") == "only"
        })
        .await,
        "bound on the retry"
    );
    assert_eq!(client.hook.binds.lock().unwrap()["p"], 2);
    assert!(
        events_for(&client, "FailedScheduling").await.is_empty(),
        "the node never looked full"
    );
    // Only the binding that succeeded is reported.
    assert!(
        until(Duration::from_secs(5), || async {
            !events_for(&client, "Scheduled").await.is_empty()
        })
        .await
    );
    let scheduled = events_for(&client, "Scheduled").await;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].count, Some(1));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pods_of_other_schedulers_are_left_alone() {
    let client = spy();
    client.create(&node("a", "4")).await.unwrap();
    let mut other = pod("other", "1");
    other.spec.scheduler_name = "someone-else".into();
    client.create(&other).await.unwrap();
    client.create(&pod("mine", "1")).await.unwrap();
    let (stop, task) = start(&client);
    assert!(
        until(Duration::from_secs(5), || async {
            node_of(&pods(&client).await, "mine") == "a"
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(node_of(&pods(&client).await, "other"), "");
    assert!(
        events(&client)
            .await
            .iter()
            .all(|e| e.involved_object.name == "mine" && e.reason == "Scheduled")
    );
    // Nodes are cluster-scoped; the loop never wrote one.
    assert_eq!(
        client
            .list::<Node>(None, &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// A Bind plugin that annotates the pod before binding it, and counts what it bound.
struct AnnotatingBinder {
    bound: Arc<Mutex<Vec<String>>>,
}

impl orchestra_sched::Plugin for AnnotatingBinder {
    fn name(&self) -> &'static str {
        "AnnotatingBinder"
    }
    fn extensions(self: Arc<Self>) -> orchestra_sched::framework::Extensions {
        orchestra_sched::framework::Extensions::new().bind(self)
    }
}

#[async_trait]
impl orchestra_sched::framework::BindPlugin for AnnotatingBinder {
    async fn bind(
        &self,
        api: &dyn orchestra_sched::framework::ApiHandle,
        _: &orchestra_sched::CycleState,
        pod: &orchestra_sched::PodInfo,
        node: &str,
    ) -> orchestra_sched::Status {
        let mut object = match api.get_pod(pod.namespace(), pod.name()).await {
            Ok(p) => p,
            Err(e) => return orchestra_sched::Status::error(e.to_string()),
        };
        object
            .metadata
            .annotations
            .insert("example.com/bound-by".into(), "AnnotatingBinder".into());
        if let Err(e) = api.update_pod(&object).await {
            return orchestra_sched::Status::error(e.to_string());
        }
        match api.bind(pod.namespace(), pod.name(), node).await {
            Ok(_) => {
                self.bound.lock().unwrap().push(pod.name().to_owned());
                orchestra_sched::Status::success()
            }
            Err(e) => orchestra_sched::Status::error(e.to_string()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_custom_bind_plugin_replaces_the_default_binder() {
    let client = spy();
    client.create(&node("a", "4")).await.unwrap();
    client.create(&pod("p", "1")).await.unwrap();
    let bound = Arc::new(Mutex::new(Vec::new()));
    let mut registry = plugins::Registry::default();
    let seen = bound.clone();
    registry.register(
        "AnnotatingBinder",
        Arc::new(move |_| {
            Ok(Arc::new(AnnotatingBinder {
                bound: seen.clone(),
            }) as Arc<dyn orchestra_sched::Plugin>)
        }),
    );
    let profiles = orchestra_sched::config::SchedulerConfig::parse(
        "profiles:\n- plugins:\n    bind:\n      disabled: [{name: DefaultBinder}]\n      enabled: [{name: AnnotatingBinder}]\n",
    )
    .unwrap()
    .build(&registry)
    .unwrap();
    let scheduler = SchedulerLoop::new(client.clone(), profiles).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    assert!(
        until(Duration::from_secs(5), || async {
            node_of(&pods(&client).await, "p") == "a"
        })
        .await
    );
    let p = &pods(&client).await[0];
    assert_eq!(
        p.metadata
            .annotations
            .get("example.com/bound-by")
            .map(String::as_str),
        Some("AnnotatingBinder")
    );
    assert_eq!(*bound.lock().unwrap(), ["p"]);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[test]
fn a_profile_without_a_binder_is_refused_at_start() {
    let mut profiles = Profiles::new();
    profiles.insert(orchestra_sched::Profile::new("bare"));
    let err = SchedulerLoop::new(spy(), profiles).unwrap_err();
    assert_eq!(
        err,
        orchestra_sched::run::LoopError::NoBinder("bare".into())
    );
    assert!(err.to_string().contains("enable DefaultBinder"));
}

#[tokio::test(start_paused = true)]
async fn a_high_priority_pod_preempts_a_lower_one_and_takes_its_node() {
    let client = spy();
    client.create(&node("a", "2")).await.unwrap();
    let mut batch = pod("batch", "2");
    batch.spec.priority = Some(1);
    let mut keeper = pod("keeper", "1");
    keeper.spec.priority = Some(1000);
    client.create(&node("b", "1")).await.unwrap();
    client.create(&batch).await.unwrap();
    let (stop, task) = start(&client);
    assert!(
        until(Duration::from_secs(5), || async {
            node_of(&pods(&client).await, "batch") == "a"
        })
        .await
    );
    // b is taken by a pod of higher priority than the preemptor's: not a candidate.
    client.create(&keeper).await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            node_of(&pods(&client).await, "keeper") == "b"
        })
        .await
    );
    let mut vip = pod("vip", "2");
    vip.spec.priority = Some(100);
    client.create(&vip).await.unwrap();
    assert!(
        until(Duration::from_secs(15), || async {
            node_of(&pods(&client).await, "vip") == "a"
        })
        .await,
        "the preemptor is bound where its victim was"
    );
    let now = pods(&client).await;
    assert!(
        now.iter().all(|p| p.metadata.name != "batch"),
        "the victim is deleted"
    );
    assert_eq!(node_of(&now, "keeper"), "b");
    let vip = now.iter().find(|p| p.metadata.name == "vip").unwrap();
    assert_eq!(
        vip.status.as_ref().map(|s| s.nominated_node_name.as_str()),
        Some("a"),
        "the preemptor was nominated"
    );
    let preempted: Vec<Event> = events(&client)
        .await
        .into_iter()
        .filter(|e| e.reason == "Preempted")
        .collect();
    assert_eq!(preempted.len(), 1);
    assert_eq!(preempted[0].involved_object.name, "batch");
    assert_eq!(preempted[0].message, "Preempted by default/vip on node a");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_preemptor_is_retried_when_its_victim_is_gone_without_waiting_out_its_backoff() {
    let client = spy();
    client.create(&node("a", "2")).await.unwrap();
    let mut batch = pod("batch", "2");
    batch.spec.priority = Some(1);
    batch.spec.termination_grace_period_seconds = Some(0);
    client.create(&batch).await.unwrap();
    let (stop, task) = start(&client);
    assert!(
        until(Duration::from_secs(5), || async {
            node_of(&pods(&client).await, "batch") == "a"
        })
        .await
    );
    let mut vip = pod("vip", "2");
    vip.spec.priority = Some(100);
    client.create(&vip).await.unwrap();
    // Its first attempt fails and deletes the victim; the deletion sends it back at once:
    // it is bound well before its 1 s backoff would have ended (virtual time).
    assert!(
        until(Duration::from_millis(600), || async {
            node_of(&pods(&client).await, "vip") == "a"
        })
        .await,
        "the preemptor is bound before its backoff ends"
    );
    assert!(
        pods(&client)
            .await
            .iter()
            .all(|p| p.metadata.name != "batch")
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// The FailedScheduling events recorded on a pod, counting repeats.
async fn failures_of(client: &BindSpy, pod: &str) -> i32 {
    events_for(client, "FailedScheduling")
        .await
        .iter()
        .filter(|e| e.involved_object.name == pod)
        .map(|e| e.count.unwrap_or(1))
        .sum()
}

#[tokio::test(start_paused = true)]
async fn a_node_status_report_retries_no_pod_and_more_allocatable_places_one_at_once() {
    let client = spy();
    client.create(&node("a", "1")).await.unwrap();
    client.create(&pod("big", "2")).await.unwrap();
    let (stop, task) = start(&client);
    assert!(
        until(Duration::from_secs(5), || async {
            failures_of(&client, "big").await >= 1
        })
        .await,
        "the pod fits nowhere"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let failures = failures_of(&client, "big").await;

    // The node reports its status: a new condition, nothing a filter reads. Before queueing
    // hints this moved the pod back (a new attempt, a new failure, within its backoff).
    let mut a: Node = client.get("", "a").await.unwrap();
    let status = a.status.get_or_insert_with(Default::default);
    status
        .conditions
        .push(orchestra_api::resources::NodeCondition {
            type_: "Ready".into(),
            status: orchestra_api::resources::ConditionStatus::True,
            ..Default::default()
        });
    client.update_status(&a).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        failures_of(&client, "big").await,
        failures,
        "no new attempt"
    );

    // Its allocatable CPU grows to 4: the pod is placed well before the 5-minute flush.
    let mut a: Node = client.get("", "a").await.unwrap();
    let status = a.status.get_or_insert_with(Default::default);
    status
        .allocatable
        .insert("cpu".into(), "4".parse().unwrap());
    client.update_status(&a).await.unwrap();
    assert!(
        until(Duration::from_secs(15), || async {
            node_of(&pods(&client).await, "big") == "a"
        })
        .await,
        "placed once the node grew"
    );
    stop.send(()).unwrap();
    task.await.expect("the loop stops cleanly");
}
