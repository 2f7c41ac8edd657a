//! The events the node agent records, over LocalClient and FakeRuntime in paused time: a
//! container's `Pulling`, `Pulled`, `Created` and `Started`, the node's `Starting` and
//! `NodeReady`, a crash loop's `BackOff`, a failing liveness probe's `Unhealthy` and `Killing`,
//! and a failed pull's `Failed`; each from `kubelet` on the node, about the container.

use std::time::Duration;

use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{Container, Event, ExecAction, Pod, PodSpec, Probe};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;

use tokio::time::{Instant, sleep};

mod fake_agent;

use fake_agent::{NODE, start_agent};

fn pod(name: &str, image: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            node_name: NODE.into(),
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

/// The events about the object `kind`/`name` with `reason`.
async fn events(client: &LocalClient, kind: &str, name: &str, reason: &str) -> Vec<Event> {
    client
        .list::<Event>(Some("default"), &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind == kind && e.involved_object.name == name)
        .filter(|e| e.reason == reason)
        .collect()
}

/// Waits (in paused time, at most `limit`) for an event with `reason` about the pod `name`
/// for which `check` holds, and returns it.
async fn wait_event(
    client: &LocalClient,
    kind: &str,
    name: &str,
    reason: &str,
    limit: Duration,
    check: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(event) = events(client, kind, name, reason)
            .await
            .into_iter()
            .find(&check)
        {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event about {kind} {name} in {limit:?}: {:#?}",
            events(client, kind, name, reason).await
        );
        sleep(Duration::from_millis(100)).await;
    }
}

fn from_the_agent(event: &Event) {
    let source = event.source.clone().unwrap();
    assert_eq!(
        (source.component.as_str(), source.host.as_str()),
        ("kubelet", NODE)
    );
}

#[tokio::test(start_paused = true)]
async fn starting_a_container_and_the_node_are_reported() {
    let client = LocalClient::new(MemStore::new());
    let agent = start_agent(&client, &FakeRuntime::new());
    let created = client.create(&pod("web", "nginx:1.27")).await.unwrap();
    let limit = Duration::from_secs(5);
    let expected = [
        ("Pulling", "Pulling image \"nginx:1.27\""),
        ("Created", "Created container main"),
        ("Started", "Started container main"),
    ];
    for (reason, message) in expected {
        let event = wait_event(&client, "Pod", "web", reason, limit, |_| true).await;
        assert_eq!(event.message, message);
        assert_eq!(event.type_, "Normal");
        assert_eq!(event.involved_object.field_path, "spec.containers{main}");
        assert_eq!(event.involved_object.uid, created.metadata.uid);
        from_the_agent(&event);
    }
    let pulled = wait_event(&client, "Pod", "web", "Pulled", limit, |_| true).await;
    assert!(
        pulled
            .message
            .starts_with("Successfully pulled image \"nginx:1.27\" in "),
        "{}",
        pulled.message
    );

    let starting = wait_event(&client, "Node", NODE, "Starting", limit, |_| true).await;
    assert_eq!(starting.message, "Starting kubelet.");
    from_the_agent(&starting);
    let ready = wait_event(&client, "Node", NODE, "NodeReady", limit, |_| true).await;
    assert_eq!(ready.message, "Node node-1 status is now: NodeReady");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_is_reported_as_back_off_counted_on_one_event() {
    let client = LocalClient::new(MemStore::new());
    let agent = start_agent(&client, &FakeRuntime::new());
    let created = client.create(&pod("crash", "fake/crash")).await.unwrap();
    // Restarts at once, then after 10 and 20 s of backoff: the same event counted again.
    let event = wait_event(
        &client,
        "Pod",
        "crash",
        "BackOff",
        Duration::from_secs(60),
        |e| e.count.unwrap_or(1) >= 2,
    )
    .await;
    assert_eq!(event.type_, "Warning");
    assert_eq!(
        event.message,
        format!(
            "Back-off restarting failed container main in pod crash_default({})",
            created.metadata.uid
        )
    );
    assert_eq!(events(&client, "Pod", "crash", "BackOff").await.len(), 1);
    from_the_agent(&event);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_is_unhealthy_then_killing() {
    let client = LocalClient::new(MemStore::new());
    let agent = start_agent(&client, &FakeRuntime::new());
    let mut p = pod("live", "fake/run?healthy-for=25s");
    p.spec.containers[0].liveness_probe = Some(Probe {
        exec: Some(ExecAction {
            command: vec!["healthy".into()],
        }),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    });
    client.create(&p).await.unwrap();
    // Probes at 30, 40 and 50 s fail (one event, counted), then the container is killed.
    let unhealthy = wait_event(
        &client,
        "Pod",
        "live",
        "Unhealthy",
        Duration::from_secs(60),
        |e| e.count.unwrap_or(1) >= 3,
    )
    .await;
    assert_eq!(unhealthy.type_, "Warning");
    assert!(
        unhealthy.message.starts_with("Liveness probe failed: "),
        "{}",
        unhealthy.message
    );
    assert_eq!(
        unhealthy.involved_object.field_path,
        "spec.containers{main}"
    );
    let killing = wait_event(
        &client,
        "Pod",
        "live",
        "Killing",
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(
        killing.message,
        "Container main failed liveness probe, will be restarted"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_pull_is_reported_with_its_reason() {
    let client = LocalClient::new(MemStore::new());
    let agent = start_agent(&client, &FakeRuntime::new());
    client
        .create(&pod("missing", "fake/missing"))
        .await
        .unwrap();
    let failed = wait_event(
        &client,
        "Pod",
        "missing",
        "Failed",
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(failed.type_, "Warning");
    assert!(
        failed
            .message
            .starts_with("Failed to pull image \"fake/missing\": ")
            && failed.message.contains("not found"),
        "{}",
        failed.message
    );
    agent.stop().await;
}
