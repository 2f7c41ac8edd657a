use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::*;

fn cfg(image: &str) -> ContainerConfig {
    ContainerConfig {
        name: "c".into(),
        image: image.into(),
        ..ContainerConfig::default()
    }
}

async fn container(runtime: &FakeRuntime, image: &str) -> ContainerId {
    let sandbox = runtime
        .run_pod_sandbox(&SandboxConfig {
            uid: "u".into(),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
    runtime
        .create_container(&sandbox, &cfg(image))
        .await
        .unwrap()
}

async fn exec(runtime: &FakeRuntime, id: &ContainerId) -> i32 {
    runtime
        .exec_sync(id, &["check".into()], Duration::from_secs(1))
        .await
        .unwrap()
        .exit_code
}

#[tokio::test(start_paused = true)]
async fn start_latency_then_exit_with_code_after_run_time() {
    let runtime = FakeRuntime::new();
    let id = container(&runtime, "fake/exit:3?after=5s&latency=200ms").await;
    assert_eq!(
        runtime.container_status(&id).await.unwrap().state,
        ContainerState::Created
    );
    let t0 = Instant::now();
    runtime.start_container(&id).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    sleep(Duration::from_millis(4999)).await;
    assert_eq!(
        runtime.container_status(&id).await.unwrap().state,
        ContainerState::Running
    );
    sleep(Duration::from_millis(1)).await;
    let status = runtime.container_status(&id).await.unwrap();
    assert_eq!(status.state, ContainerState::Exited);
    assert_eq!(status.exit_code, Some(3));
    assert_eq!(status.reason, "Error");
    let ran = status
        .finished_at
        .unwrap()
        .duration_since(status.started_at.unwrap())
        .unwrap();
    assert_eq!(ran, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn failing_start_and_missing_image_are_errors_kubelet_can_report() {
    let runtime = FakeRuntime::new();
    let id = container(&runtime, "fake/fail-start").await;
    let err = runtime.start_container(&id).await.unwrap_err();
    assert_eq!(err.waiting_reason(), "RunContainerError");
    assert!(
        err.to_string().contains("executable file not found"),
        "{err}"
    );
    let status = runtime.container_status(&id).await.unwrap();
    assert_eq!(
        (status.state, status.reason.as_str()),
        (ContainerState::Exited, "StartError")
    );

    let err = runtime.pull_image("fake/missing").await.unwrap_err();
    assert_eq!(err.waiting_reason(), "ErrImagePull");
    let sandbox = runtime
        .run_pod_sandbox(&SandboxConfig::default())
        .await
        .unwrap();
    let err = runtime
        .create_container(&sandbox, &cfg("fake/exit:nope"))
        .await
        .unwrap_err();
    assert_eq!(err.waiting_reason(), "CreateContainerConfigError");
}

#[tokio::test(start_paused = true)]
async fn stop_terminates_at_once_or_kills_at_the_end_of_grace() {
    let runtime = FakeRuntime::new();
    let polite = container(&runtime, "fake/run").await;
    runtime.start_container(&polite).await.unwrap();
    let t0 = Instant::now();
    runtime
        .stop_container(&polite, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(
        runtime.container_status(&polite).await.unwrap().exit_code,
        Some(143)
    );

    let stubborn = container(&runtime, "fake/run?ignore-term=true").await;
    runtime.start_container(&stubborn).await.unwrap();
    let t0 = Instant::now();
    runtime
        .stop_container(&stubborn, Duration::from_secs(7))
        .await
        .unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(7));
    let status = runtime.container_status(&stubborn).await.unwrap();
    assert_eq!(
        (status.state, status.exit_code),
        (ContainerState::Exited, Some(137))
    );
    // Idempotent: stopping again, and removing twice, succeed.
    runtime
        .stop_container(&stubborn, Duration::from_secs(7))
        .await
        .unwrap();
    runtime.remove_container(&stubborn).await.unwrap();
    runtime.remove_container(&stubborn).await.unwrap();
    assert!(
        runtime
            .container_status(&stubborn)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test(start_paused = true)]
async fn exec_answers_follow_readiness_health_and_overrides() {
    let runtime = FakeRuntime::new();
    let id = container(&runtime, "fake/run?ready-after=3s&healthy-for=10s").await;
    runtime.start_container(&id).await.unwrap();
    assert_eq!(exec(&runtime, &id).await, 1);
    sleep(Duration::from_secs(3)).await;
    assert_eq!(exec(&runtime, &id).await, 0);
    runtime.set_exec_exit_code(&id, Some(2)).unwrap();
    assert_eq!(exec(&runtime, &id).await, 2);
    runtime.set_exec_exit_code(&id, None).unwrap();
    sleep(Duration::from_secs(7)).await;
    assert_eq!(exec(&runtime, &id).await, 1);
}

#[tokio::test(start_paused = true)]
async fn sandbox_stop_kills_its_containers_and_remove_drops_them() {
    let runtime = FakeRuntime::new();
    let sandbox = runtime
        .run_pod_sandbox(&SandboxConfig::default())
        .await
        .unwrap();
    let id = runtime
        .create_container(&sandbox, &cfg("fake/run"))
        .await
        .unwrap();
    runtime.start_container(&id).await.unwrap();
    let status = runtime.sandbox_status(&sandbox).await.unwrap();
    assert_eq!(status.state, SandboxState::Ready);
    assert!(status.ip.is_some());
    runtime.stop_pod_sandbox(&sandbox).await.unwrap();
    assert_eq!(
        runtime.container_status(&id).await.unwrap().exit_code,
        Some(137)
    );
    let listed = runtime.list().await.unwrap();
    assert_eq!((listed.sandboxes.len(), listed.containers.len()), (1, 1));
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    runtime.remove_pod_sandbox(&sandbox).await.unwrap();
    assert_eq!(runtime.counts(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_chooser_decides_before_the_image() {
    let runtime = FakeRuntime::new().with_chooser(|sandbox, _| {
        (sandbox.name == "special").then(|| FakeBehaviour {
            run_for: Some(Duration::ZERO),
            exit_code: 9,
            ..FakeBehaviour::default()
        })
    });
    let sandbox = runtime
        .run_pod_sandbox(&SandboxConfig {
            name: "special".into(),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
    let id = runtime
        .create_container(&sandbox, &cfg("nginx"))
        .await
        .unwrap();
    runtime.start_container(&id).await.unwrap();
    assert_eq!(
        runtime.container_status(&id).await.unwrap().exit_code,
        Some(9)
    );
}

#[tokio::test(start_paused = true)]
async fn the_log_line_is_dated_at_the_start_for_since_and_timestamps() {
    use crate::testing::util::read_logs;
    let runtime = FakeRuntime::new();
    let id = container(&runtime, "web:1").await;
    runtime.start_container(&id).await.unwrap();
    let started = runtime
        .container_status(&id)
        .await
        .unwrap()
        .started_at
        .unwrap();
    let started = jiff::Timestamp::try_from(started).unwrap();
    let line = "fake container c (image web:1) has no output\n";
    let read = |options| read_logs(&runtime, &id, options);
    assert_eq!(read(LogOptions::default()).await.unwrap(), line);
    let since = |at: jiff::Timestamp| LogOptions {
        since: Some(at),
        ..LogOptions::default()
    };
    assert_eq!(read(since(started)).await.unwrap(), line);
    let later = started + jiff::SignedDuration::from_nanos(1);
    assert_eq!(
        read(since(later)).await.unwrap(),
        "",
        "written before since"
    );
    let stamped = LogOptions {
        timestamps: true,
        ..LogOptions::default()
    };
    assert_eq!(read(stamped).await.unwrap(), format!("{started} {line}"));
}
