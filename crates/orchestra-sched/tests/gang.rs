//! Coscheduling through Permit in the scheduling loop (LocalClient over MemStore, paused
//! time): a gang is bound whole or not at all, and a gang that cannot complete releases the
//! room its members held when their wait times out. Gangs declared by a PodGroup object: its
//! minMember and scheduleTimeoutSeconds rule, members wait for a PodGroup that does not
//! exist yet, and the loop writes the PodGroup's status as its members go.

mod common;

use std::time::Duration;

use common::{node, pod};
use orchestra_api::meta::ObjectMeta;
use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{
    Event, Pod, PodGroup, PodGroupPhase, PodGroupSpec, PodGroupStatus, PodPhase, PodStatus,
};
use orchestra_api::{Client, LocalClient};
use orchestra_sched::config::SchedulerConfig;
use orchestra_sched::plugins::coscheduling::{MIN_AVAILABLE_ANNOTATION, POD_GROUP_LABEL};
use orchestra_sched::plugins::{self, Registry};
use orchestra_sched::run::SchedulerLoop;
use orchestra_sched::{Profiles, Scheduler as _};
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn member(name: &str, group: &str, min: u32) -> Pod {
    let mut p = pod(name, "1");
    p.metadata
        .labels
        .insert(POD_GROUP_LABEL.into(), group.into());
    p.metadata
        .annotations
        .insert(MIN_AVAILABLE_ANNOTATION.into(), min.to_string());
    p
}

/// A member of `group` without the min-available annotation (its PodGroup rules).
fn plain_member(name: &str, group: &str) -> Pod {
    let mut p = pod(name, "1");
    p.metadata
        .labels
        .insert(POD_GROUP_LABEL.into(), group.into());
    p
}

fn pod_group(name: &str, min_member: i32, timeout: Option<i32>) -> PodGroup {
    PodGroup {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodGroupSpec {
            min_member,
            schedule_timeout_seconds: timeout,
        },
        status: None,
    }
}

async fn group_status(client: &LocalClient, name: &str) -> Option<PodGroupStatus> {
    client
        .get::<PodGroup>("default", name)
        .await
        .expect("the PodGroup")
        .status
}

async fn event_messages(client: &LocalClient) -> Vec<String> {
    client
        .list::<Event>(Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn start(client: &LocalClient, profiles: Profiles) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let scheduler = SchedulerLoop::new(client.clone(), profiles).expect("a profile");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

fn default_profiles() -> Profiles {
    let mut profiles = Profiles::new();
    profiles.insert(plugins::default_profile());
    profiles
}

async fn pods(client: &LocalClient) -> Vec<Pod> {
    client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .expect("list pods")
        .items
}

async fn bound(client: &LocalClient) -> Vec<String> {
    let mut names: Vec<String> = pods(client)
        .await
        .into_iter()
        .filter(|p| !p.spec.node_name.is_empty())
        .map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

/// Advances paused time in small steps (letting the loop run) until `done` holds or `limit`.
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

#[tokio::test(start_paused = true)]
async fn a_gang_with_room_for_all_is_bound_whole() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "3")).await.unwrap();
    let (stop, task) = start(&client, default_profiles());
    for i in 0..3 {
        client
            .create(&member(&format!("g{i}"), "g", 3))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    assert!(
        until(Duration::from_secs(10), || async {
            bound(&client).await.len() == 3
        })
        .await,
        "the three members are bound: {:?}",
        bound(&client).await
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_gang_with_room_for_two_of_three_is_not_bound_at_all() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "2")).await.unwrap();
    for i in 0..3 {
        client
            .create(&member(&format!("g{i}"), "g", 3))
            .await
            .unwrap();
    }
    let (stop, task) = start(&client, default_profiles());
    // Several timeouts (60 s each) and retries later, still nothing bound.
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(bound(&client).await, Vec::<String>::new());
    let events = client
        .list::<Event>(Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .items;
    assert!(
        events.iter().any(|e| e
            .message
            .contains("timed out waiting at Permit (Coscheduling)")),
        "the timeout is reported: {:?}",
        events.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_gang_releases_its_room_for_other_pods() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "2")).await.unwrap();
    // The wait is configurable: 10 s here.
    let profiles = SchedulerConfig::parse(
        "profiles:\n- pluginConfig:\n  - name: Coscheduling\n    args: {permitWaitingTimeSeconds: 10}\n",
    )
    .unwrap()
    .build(&Registry::default())
    .unwrap();
    let (stop, task) = start(&client, profiles);
    // Two members hold the node's 2 CPUs while they wait; "other", then the third member,
    // do not fit.
    for i in 0..2 {
        client
            .create(&member(&format!("g{i}"), "g", 3))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.create(&pod("other", "2")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.create(&member("g2", "g", 3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(bound(&client).await, Vec::<String>::new());
    // After the 10 s wait the members are rejected, their room freed: "other" gets it.
    assert!(
        until(Duration::from_secs(20), || async {
            bound(&client).await == ["other"]
        })
        .await,
        "other is bound: {:?}",
        bound(&client).await
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(bound(&client).await, ["other"], "no member is bound alone");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pod_group_sets_the_minimum_and_its_status_follows_the_members() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "4")).await.unwrap();
    // The annotation on the members says 2; the PodGroup's minMember (3) rules.
    client.create(&pod_group("train", 3, None)).await.unwrap();
    let (stop, task) = start(&client, default_profiles());
    for i in 0..2 {
        client
            .create(&member(&format!("t{i}"), "train", 2))
            .await
            .unwrap();
    }
    // Two placed, waiting at Permit for a third: none bound, the group Scheduling.
    assert!(
        until(Duration::from_secs(10), || async {
            group_status(&client, "train")
                .await
                .is_some_and(|s| s.phase == PodGroupPhase::Scheduling)
        })
        .await,
        "the group is Scheduling: {:?}",
        group_status(&client, "train").await
    );
    assert_eq!(bound(&client).await, Vec::<String>::new());
    // The third member completes the gang: all bound, the group Scheduled with 3.
    client.create(&plain_member("t2", "train")).await.unwrap();
    assert!(
        until(Duration::from_secs(10), || async {
            group_status(&client, "train").await
                == Some(PodGroupStatus {
                    phase: PodGroupPhase::Scheduled,
                    scheduled: 3,
                    running: 0,
                    failed: 0,
                })
        })
        .await,
        "the group is Scheduled: {:?}",
        group_status(&client, "train").await
    );
    assert_eq!(bound(&client).await, ["t0", "t1", "t2"]);
    // The members run (as a node agent reports): Running; one fails: Failed.
    let report = |name: &'static str, phase: PodPhase| {
        let client = client.clone();
        async move {
            let mut p: Pod = client.get("default", name).await.unwrap();
            p.status = Some(PodStatus {
                phase: Some(phase),
                ..PodStatus::default()
            });
            client.update_status(&p).await.unwrap();
        }
    };
    for name in ["t0", "t1", "t2"] {
        report(name, PodPhase::Running).await;
    }
    assert!(
        until(Duration::from_secs(10), || async {
            group_status(&client, "train")
                .await
                .is_some_and(|s| s.phase == PodGroupPhase::Running && s.running == 3)
        })
        .await,
        "the group is Running: {:?}",
        group_status(&client, "train").await
    );
    report("t1", PodPhase::Failed).await;
    assert!(
        until(Duration::from_secs(10), || async {
            group_status(&client, "train").await.is_some_and(|s| {
                s.phase == PodGroupPhase::Failed && s.failed == 1 && s.running == 2
            })
        })
        .await,
        "the group is Failed: {:?}",
        group_status(&client, "train").await
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn members_without_a_rule_wait_for_their_pod_group() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "4")).await.unwrap();
    let (stop, task) = start(&client, default_profiles());
    for i in 0..2 {
        client
            .create(&plain_member(&format!("w{i}"), "late"))
            .await
            .unwrap();
    }
    // No PodGroup and no annotation: refused, saying so.
    assert!(
        until(Duration::from_secs(10), || async {
            event_messages(&client)
                .await
                .iter()
                .any(|m| m.contains("there is no PodGroup \"late\""))
        })
        .await,
        "the missing PodGroup is reported: {:?}",
        event_messages(&client).await
    );
    assert_eq!(bound(&client).await, Vec::<String>::new());
    // The PodGroup appears: both members are retried and bound together, well before the
    // 5-minute flush.
    client.create(&pod_group("late", 2, None)).await.unwrap();
    assert!(
        until(Duration::from_secs(30), || async {
            bound(&client).await.len() == 2
        })
        .await,
        "both are bound: {:?}",
        bound(&client).await
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pod_group_timeout_replaces_the_plugins_wait() {
    let client = LocalClient::new(MemStore::new());
    client.create(&node("a", "4")).await.unwrap();
    // The plugin waits 60 s; the PodGroup says 5 s.
    client
        .create(&pod_group("short", 3, Some(5)))
        .await
        .unwrap();
    let (stop, task) = start(&client, default_profiles());
    for i in 0..2 {
        client
            .create(&plain_member(&format!("s{i}"), "short"))
            .await
            .unwrap();
    }
    let timed_out = || async {
        event_messages(&client)
            .await
            .iter()
            .any(|m| m.contains("timed out waiting at Permit (Coscheduling)"))
    };
    // Within 20 s (far less than 60 s) the members time out.
    assert!(
        until(Duration::from_secs(20), timed_out).await,
        "the 5 s timeout applies: {:?}",
        event_messages(&client).await
    );
    assert_eq!(bound(&client).await, Vec::<String>::new());
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[test]
fn the_framework_alone_allows_pods_outside_gangs() {
    // Coscheduling is in the default profile, and a pod without a group schedules as before.
    let names = plugins::default_profile().plugin_names();
    assert!(names.contains(&("permit", vec!["Coscheduling"])));
    let cluster = orchestra_sched::ClusterSnapshot::from_objects([node("a", "1")], []).unwrap();
    let placed = plugins::default_profile();
    let framework = orchestra_sched::Framework::new(placed);
    assert_eq!(
        &*framework.schedule(&pod("p", "1"), &cluster).unwrap().node,
        "a"
    );
}
