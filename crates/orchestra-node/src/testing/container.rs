//! Container checks: the lifecycle (created, running, exited with its code), graceful and
//! forced stops, idempotent stop and remove, and `list` for re-adoption.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Harness;
use super::util::{cleanup, sandbox_config, wait_for_container, wait_for_log};
use super::workload::Workload;
use crate::runtime::{ContainerId, ContainerState, RuntimeDriver, SandboxState};

/// Create gives Created; start gives Running; a container that exits on its own is Exited with
/// its exit code, start and finish times; remove makes it NotFound; stop and remove are
/// idempotent.
pub async fn container_lifecycle<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("lifecycle"))
        .await
        .expect("run");
    // Exits only after a while, so that Running can be observed before it exits.
    let workload = Workload::new(vec![
        super::Step::Print("started".into()),
        super::Step::Sleep(Duration::from_millis(500)),
        super::Step::Exit(3),
    ]);
    let mut config = harness.container_config("exits", &workload);
    config.labels.insert("role".into(), "test".into());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create_container");

    let created = rt.container_status(&id).await.expect("status after create");
    assert_eq!(created.state, ContainerState::Created);
    assert_eq!(created.id, id);
    assert_eq!(created.sandbox, sandbox);
    assert_eq!(created.config.name, "exits");
    assert_eq!(created.config.labels, config.labels);
    assert!(created.started_at.is_none() && created.finished_at.is_none());
    assert_eq!(created.exit_code, None);

    rt.start_container(&id).await.expect("start_container");
    let running = rt.container_status(&id).await.expect("status after start");
    assert_eq!(running.state, ContainerState::Running, "{running:?}");
    assert!(running.started_at.is_some());

    let exited = wait_for_container(&rt, &id, limit, "exit on its own", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    assert_eq!(exited.exit_code, Some(3), "{exited:?}");
    let (Some(started), Some(finished)) = (exited.started_at, exited.finished_at) else {
        panic!("an exited container has start and finish times: {exited:?}");
    };
    assert!(finished >= started);
    assert!(
        !exited.reason.is_empty(),
        "an exited container has a reason: {exited:?}"
    );

    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stopping an exited container succeeds");
    rt.remove_container(&id).await.expect("remove_container");
    let err = rt.container_status(&id).await.expect_err("removed");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    rt.remove_container(&id)
        .await
        .expect("removing a removed container succeeds");

    let unknown = ContainerId::from("no-such-container");
    let err = rt
        .container_status(&unknown)
        .await
        .expect_err("unknown container");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    rt.remove_container(&unknown)
        .await
        .expect("removing an unknown container succeeds");
    let err = rt
        .start_container(&unknown)
        .await
        .expect_err("starting an unknown container");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    cleanup(&rt, &sandbox).await;
}

/// A container exiting 0 is `Completed`-like: Exited with code 0.
pub async fn container_exit_zero<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("exit-zero"))
        .await
        .expect("run");
    let config = harness.container_config("ok", &Workload::print_and_exit(&["done"], 0));
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let exited = wait_for_container(&rt, &id, harness.wait_limit(), "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    assert_eq!(exited.exit_code, Some(0), "{exited:?}");
    cleanup(&rt, &sandbox).await;
}

/// Stopping a running container (which honours TERM) returns once it has exited, well before a
/// long grace period would end; stopping it again succeeds.
pub async fn container_stop_graceful<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("stop-graceful"))
        .await
        .expect("run");
    let config = harness.container_config("forever", &Workload::run_forever());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", limit).await;

    // The grace period is longer than the wait limit: stop must return because the container
    // exited on TERM, not because the grace period ran out.
    let grace = limit * 3;
    tokio::time::timeout(limit, rt.stop_container(&id, grace))
        .await
        .expect("stop_container returns once the container exited on TERM")
        .expect("stop_container");
    let status = rt.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Exited, "{status:?}");
    assert!(status.finished_at.is_some());
    rt.stop_container(&id, grace)
        .await
        .expect("stopping twice succeeds");
    cleanup(&rt, &sandbox).await;
}

/// A container that ignores TERM is killed once the grace period has passed (and not before):
/// stop returns with it Exited, exit code 137 (128 + KILL).
pub async fn container_stop_kills_after_grace<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("stop-kill"))
        .await
        .expect("run");
    let config = harness.container_config("stubborn", &Workload::ignore_term());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", limit).await;

    let grace = Duration::from_millis(300);
    let before = tokio::time::Instant::now();
    tokio::time::timeout(limit, rt.stop_container(&id, grace))
        .await
        .expect("stop_container returns after the grace period")
        .expect("stop_container");
    // A lower bound only: the container ignored TERM, so nothing could end it before KILL.
    assert!(
        before.elapsed() >= grace,
        "killed before the grace period ended"
    );
    let status = rt.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Exited, "{status:?}");
    assert_eq!(status.exit_code, Some(137), "{status:?}");
    cleanup(&rt, &sandbox).await;
}

/// `list` returns every sandbox and container with its configuration: what an agent re-adopts;
/// `list_summary` the same ids and states: what the agent relists every period.
pub async fn list_for_readoption<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("listed"))
        .await
        .expect("run");
    let mut running = harness.container_config("running", &Workload::run_forever());
    running.labels = BTreeMap::from([("which".to_owned(), "running".to_owned())]);
    running.attempt = 2;
    let running_id = rt
        .create_container(&sandbox, &running)
        .await
        .expect("create");
    rt.start_container(&running_id).await.expect("start");
    let created = harness.container_config("created", &Workload::print_and_exit(&["x"], 0));
    let created_id = rt
        .create_container(&sandbox, &created)
        .await
        .expect("create");
    wait_for_log(&rt, &running_id, "ready", limit).await;

    let state = rt.list().await.expect("list");
    let s = state
        .sandboxes
        .iter()
        .find(|s| s.id == sandbox)
        .expect("sandbox listed");
    assert_eq!(s.config.uid, "uid-listed");
    let r = state
        .containers
        .iter()
        .find(|c| c.id == running_id)
        .expect("running listed");
    assert_eq!(r.state, ContainerState::Running);
    assert_eq!(r.sandbox, sandbox);
    assert_eq!(r.config.labels, running.labels);
    assert_eq!(r.config.attempt, 2);
    let c = state
        .containers
        .iter()
        .find(|c| c.id == created_id)
        .expect("created listed");
    assert_eq!(c.state, ContainerState::Created);
    assert_eq!(c.config.name, "created");

    // The relist's summary names the same sandbox, pod and states.
    let summary = rt.list_summary().await.expect("list_summary");
    let listed = summary.sandboxes.iter().find(|s| s.id == sandbox);
    assert_eq!(
        listed.map(|s| (s.pod_uid.as_str(), s.state)),
        Some(("uid-listed", SandboxState::Ready)),
        "{summary:?}"
    );
    let state_of = |id: &ContainerId| {
        summary
            .containers
            .iter()
            .find(|c| &c.id == id)
            .map(|c| (c.sandbox.clone(), c.state))
    };
    assert_eq!(
        state_of(&running_id),
        Some((sandbox.clone(), ContainerState::Running))
    );
    assert_eq!(
        state_of(&created_id),
        Some((sandbox.clone(), ContainerState::Created))
    );
    cleanup(&rt, &sandbox).await;
}
