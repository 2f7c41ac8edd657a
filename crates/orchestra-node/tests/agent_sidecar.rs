//! Sidecars (init containers with `restartPolicy: Always`) run by the node agent over
//! LocalClient and FakeRuntime, in paused time: a sidecar starts before the app, which does
//! not wait for it to exit; a Job-style pod with a sidecar succeeds and the sidecar is
//! stopped; a crashing sidecar is restarted with backoff though the pod never restarts;
//! deletion stops the app before the sidecar.

use std::time::Duration;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    Container, ContainerStatus as ApiStatus, Pod, PodPhase, PodSpec, RestartPolicy,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::fake::FakeRuntime;
use orchestra_node::{ContainerState, RuntimeDriver};
use orchestra_store::MemStore;
use tokio::time::{Instant, sleep};

mod fake_agent;

use fake_agent::{NODE, get, phase, start_agent, wait_pod};

/// A pod with the sidecar `mesh` (image `sidecar`) and the app `job` (image `app`).
fn pod(name: &str, sidecar: &str, app: &str, policy: RestartPolicy) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: PodSpec {
            node_name: NODE.into(),
            restart_policy: Some(policy),
            init_containers: vec![Container {
                name: "mesh".into(),
                image: sidecar.into(),
                restart_policy: Some(RestartPolicy::Always),
                ..Container::default()
            }],
            containers: vec![Container {
                name: "job".into(),
                image: app.into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// The sidecar's status (empty before the agent wrote one).
fn mesh(pod: &Pod) -> ApiStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.first().cloned())
        .unwrap_or_default()
}

/// The app's status (empty before the agent wrote one).
fn job(pod: &Pod) -> ApiStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.first().cloned())
        .unwrap_or_default()
}

/// The runtime's containers of that name, by state.
async fn states(runtime: &FakeRuntime, name: &str) -> Vec<ContainerState> {
    let mut found: Vec<_> = runtime
        .list()
        .await
        .unwrap()
        .containers
        .into_iter()
        .filter(|c| c.config.name == name)
        .collect();
    found.sort_by_key(|c| c.config.attempt);
    found.into_iter().map(|c| c.state).collect()
}

#[tokio::test(start_paused = true)]
async fn a_job_with_a_sidecar_succeeds_and_the_sidecar_is_stopped() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    client
        .create(&pod(
            "job",
            "fake/run",
            "fake/exit:0?after=10s",
            RestartPolicy::Never,
        ))
        .await
        .unwrap();
    let t0 = Instant::now();

    // The app runs alongside the sidecar: it did not wait for the sidecar to exit.
    let running = wait_pod(&client, "job", Duration::from_secs(5), |p| {
        job(p).state.is_some_and(|s| s.running.is_some())
    })
    .await;
    let sidecar = mesh(&running);
    assert_eq!((sidecar.started, sidecar.ready), (Some(true), true));
    let sidecar_started = sidecar.state.unwrap().running.unwrap().started_at.unwrap();
    let app_started = job(&running).state.unwrap().running.unwrap().started_at;
    assert!(sidecar_started <= app_started.unwrap());
    assert!(Pod::is_running_and_ready(&running));

    let done = wait_pod(&client, "job", Duration::from_secs(20), |p| {
        phase(p) == Some(PodPhase::Succeeded)
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(10));
    let app = job(&done).state.unwrap().terminated.unwrap();
    assert_eq!((app.exit_code, app.reason.as_str()), (0, "Completed"));
    // The sidecar was stopped (TERM: 143), after the app, and not restarted.
    let sidecar = mesh(&done);
    let stopped = sidecar.state.unwrap().terminated.unwrap();
    assert_eq!(stopped.exit_code, 143);
    assert!(stopped.finished_at >= app.finished_at);
    assert_eq!(sidecar.restart_count, 0);
    assert!(
        runtime
            .list()
            .await
            .unwrap()
            .containers
            .iter()
            .all(|c| c.state != ContainerState::Running),
        "a container still runs"
    );
    // It stays so.
    sleep(Duration::from_secs(30)).await;
    let later = get(&client, "job").await.unwrap();
    assert_eq!(phase(&later), Some(PodPhase::Succeeded));
    assert_eq!(mesh(&later).restart_count, 0);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crashing_sidecar_is_restarted_with_backoff_though_the_pod_never_restarts() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    client
        .create(&pod(
            "crashy",
            "fake/crash?after=1s",
            "fake/run",
            RestartPolicy::Never,
        ))
        .await
        .unwrap();
    let t0 = Instant::now();
    // Exits at 1 s, restarted at once; exits at 2 s, restarted after 10 s; exits at 13 s,
    // restarted after 20 s (at 33 s).
    let backing_off = wait_pod(&client, "crashy", Duration::from_secs(20), |p| {
        mesh(p).restart_count >= 2
            && mesh(p)
                .state
                .and_then(|s| s.waiting)
                .is_some_and(|w| w.reason == "CrashLoopBackOff")
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(13));
    let waiting = mesh(&backing_off).state.unwrap().waiting.unwrap();
    assert!(
        waiting
            .message
            .starts_with("back-off 20s restarting failed container=mesh"),
        "{}",
        waiting.message
    );
    // The app runs on, never restarted; the pod stays Running.
    assert_eq!(phase(&backing_off), Some(PodPhase::Running));
    assert_eq!(job(&backing_off).restart_count, 0);
    assert!(job(&backing_off).state.unwrap().running.is_some());

    let third = wait_pod(&client, "crashy", Duration::from_secs(30), |p| {
        mesh(p).restart_count >= 3
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(33));
    assert_eq!(phase(&third), Some(PodPhase::Running));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deletion_stops_the_app_before_the_sidecar() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    let mut p = pod(
        "web",
        "fake/run",
        "fake/run?ignore-term=true",
        RestartPolicy::Always,
    );
    p.spec.termination_grace_period_seconds = Some(10);
    client.create(&p).await.unwrap();
    wait_pod(
        &client,
        "web",
        Duration::from_secs(5),
        Pod::is_running_and_ready,
    )
    .await;
    let t0 = Instant::now();
    client
        .delete::<Pod>("default", "web", &DeleteOptions::default())
        .await
        .unwrap();
    // The app ignores TERM and holds out its 10 s: the sidecar keeps running meanwhile.
    sleep(Duration::from_secs(8)).await;
    assert_eq!(states(&runtime, "job").await, vec![ContainerState::Running]);
    assert_eq!(
        states(&runtime, "mesh").await,
        vec![ContainerState::Running]
    );
    // Then the app is killed, the sidecar stopped, and the pod goes.
    while get(&client, "web").await.is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the pod was not removed"
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert!(t0.elapsed() >= Duration::from_secs(10));
    assert_eq!(runtime.counts(), (0, 0));
    agent.stop().await;
}
