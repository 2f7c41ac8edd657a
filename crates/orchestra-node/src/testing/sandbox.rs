//! Sandbox checks: run, status, stop and remove (idempotent), and what stopping a sandbox does
//! to its containers.

use super::Harness;
use super::util::{sandbox_config, wait_for_container, wait_for_log};
use super::workload::Workload;
use crate::runtime::{ContainerState, RuntimeDriver, SandboxId, SandboxState};

/// Run a sandbox: it is Ready with its configuration (and an IP where the runtime gives one);
/// stop makes it NotReady and is idempotent; remove makes it NotFound and is idempotent.
pub async fn sandbox_lifecycle<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let config = sandbox_config("sandbox-lifecycle");
    let id = rt.run_pod_sandbox(&config).await.expect("run_pod_sandbox");
    let status = rt.sandbox_status(&id).await.expect("sandbox_status");
    assert_eq!(status.id, id);
    assert_eq!(status.state, SandboxState::Ready);
    assert_eq!(status.config.name, config.name);
    assert_eq!(status.config.uid, config.uid);
    assert_eq!(status.config.labels, config.labels);
    if harness.sandbox_has_ip() {
        assert!(status.ip.is_some(), "a ready sandbox has an IP: {status:?}");
    }

    rt.stop_pod_sandbox(&id).await.expect("stop_pod_sandbox");
    let stopped = rt
        .sandbox_status(&id)
        .await
        .expect("sandbox_status after stop");
    assert_eq!(stopped.state, SandboxState::NotReady);
    rt.stop_pod_sandbox(&id)
        .await
        .expect("stopping a stopped sandbox succeeds");

    rt.remove_pod_sandbox(&id)
        .await
        .expect("remove_pod_sandbox");
    let gone = rt
        .sandbox_status(&id)
        .await
        .expect_err("a removed sandbox is not found");
    assert!(gone.is_not_found(), "expected NotFound, got {gone:?}");
    rt.remove_pod_sandbox(&id)
        .await
        .expect("removing a removed sandbox succeeds");
    rt.stop_pod_sandbox(&id)
        .await
        .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
        .expect("stopping a removed sandbox succeeds or says NotFound");
    let unknown = SandboxId::from("no-such-sandbox");
    let err = rt
        .sandbox_status(&unknown)
        .await
        .expect_err("unknown sandbox");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
}

/// Two sandboxes of one runtime have distinct ids (and distinct IPs where IPs are given).
pub async fn sandboxes_are_distinct<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let a = rt
        .run_pod_sandbox(&sandbox_config("distinct-a"))
        .await
        .expect("run a");
    let b = rt
        .run_pod_sandbox(&sandbox_config("distinct-b"))
        .await
        .expect("run b");
    assert_ne!(a, b);
    if harness.sandbox_has_ip() {
        let ip_a = rt.sandbox_status(&a).await.expect("status a").ip;
        let ip_b = rt.sandbox_status(&b).await.expect("status b").ip;
        assert_ne!(ip_a, ip_b, "two sandboxes share an IP");
    }
    rt.remove_pod_sandbox(&a).await.expect("remove a");
    rt.remove_pod_sandbox(&b).await.expect("remove b");
}

/// Stopping a sandbox stops its running containers; removing it removes them.
pub async fn sandbox_stop_stops_containers<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("sandbox-stop"))
        .await
        .expect("run");
    let config = harness.container_config("forever", &Workload::run_forever());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", limit).await;

    rt.stop_pod_sandbox(&sandbox)
        .await
        .expect("stop_pod_sandbox");
    let status = wait_for_container(&rt, &id, limit, "exit after sandbox stop", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    assert!(status.finished_at.is_some(), "{status:?}");

    rt.remove_pod_sandbox(&sandbox)
        .await
        .expect("remove_pod_sandbox");
    let err = rt
        .container_status(&id)
        .await
        .expect_err("container removed with its sandbox");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    // Nothing the runtime lists belongs to the removed sandbox.
    let state = rt.list().await.expect("list");
    assert!(state.sandboxes.iter().all(|s| s.id != sandbox));
    assert!(state.containers.iter().all(|c| c.sandbox != sandbox));
}
