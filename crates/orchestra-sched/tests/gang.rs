//! Coscheduling through Permit in the scheduling loop (LocalClient over MemStore, paused
//! time): a gang is bound whole or not at all, and a gang that cannot complete releases the
//! room its members held when their wait times out.

mod common;

use std::time::Duration;

use common::{node, pod};
use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Event, Pod};
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
