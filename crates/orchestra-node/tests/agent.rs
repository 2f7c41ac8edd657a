//! The node agent over LocalClient and FakeRuntime, in paused time: pods run and report,
//! crash loops back off on schedule, liveness failures restart, deletion honours the grace
//! period, a restarted agent re-adopts, and bad input ends up in the status.

use std::time::Duration;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    ConditionStatus, Container, ExecAction, Lease, Node, Pod, PodPhase, PodSpec, Probe,
    TcpSocketAction,
};
use orchestra_api::{Client, IntOrString, LocalClient, ObjectMeta};
use orchestra_node::agent::FINALIZER;
use orchestra_node::fake::FakeRuntime;
use orchestra_node::{RuntimeDriver, SandboxConfig};
use orchestra_store::MemStore;

use tokio::time::{Instant, sleep};

mod fake_agent;

use fake_agent::{NODE, get, start_agent, wait_pod};

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

fn exec_probe(period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["healthy".into()],
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.first())
        .map_or(-1, |c| c.restart_count)
}

fn waiting(pod: &Pod) -> Option<(String, String)> {
    let w = pod
        .status
        .as_ref()?
        .container_statuses
        .first()?
        .state
        .as_ref()?
        .waiting
        .clone()?;
    Some((w.reason, w.message))
}

#[tokio::test(start_paused = true)]
async fn a_pod_runs_and_reports_running_and_ready_and_the_node_registers() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    client.create(&pod("web", "nginx:1.27")).await.unwrap();
    let pod = wait_pod(
        &client,
        "web",
        Duration::from_secs(5),
        Pod::is_running_and_ready,
    )
    .await;
    let status = pod.status.clone().unwrap();
    assert!(status.pod_ip.starts_with("10."), "{}", status.pod_ip);
    assert_eq!(status.host_ip, "127.0.0.1");
    assert!(status.start_time.is_some());
    let main = &status.container_statuses[0];
    assert!(main.ready && main.state.as_ref().unwrap().running.is_some());
    assert!(main.container_id.starts_with("fake://"));
    assert!(pod.metadata.finalizers.iter().any(|f| f == FINALIZER));
    for type_ in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        assert_eq!(c.status, ConditionStatus::True, "{type_}");
    }

    let node: Node = client.get("", NODE).await.unwrap();
    assert_eq!(node.metadata.labels["kubernetes.io/hostname"], NODE);
    assert!(node.metadata.labels.contains_key("kubernetes.io/os"));
    assert!(node.metadata.labels.contains_key("kubernetes.io/arch"));
    let node_status = node.status.unwrap();
    assert_eq!(node_status.capacity["pods"].value(), 110);
    assert_eq!(node_status.allocatable, node_status.capacity);
    assert_eq!(
        node_status.condition("Ready").unwrap().status,
        ConditionStatus::True
    );
    let types: Vec<_> = node_status
        .addresses
        .iter()
        .map(|a| a.type_.as_str())
        .collect();
    assert_eq!(types, ["InternalIP", "Hostname"]);

    let lease: Lease = client.get("kube-node-lease", NODE).await.unwrap();
    let first = lease.spec.renew_time.unwrap();
    sleep(Duration::from_secs(11)).await;
    let lease: Lease = client.get("kube-node-lease", NODE).await.unwrap();
    assert!(lease.spec.renew_time.unwrap() > first);
    assert_eq!(lease.spec.holder_identity.as_deref(), Some(NODE));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crashing_container_backs_off_on_schedule() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    let t0 = Instant::now();
    client.create(&pod("crash", "fake/crash")).await.unwrap();
    // Started at ~0 s, restarted at once, then after 10, 20 and 40 s of backoff.
    let mut seen = vec![];
    for (at, expected) in [(5, 1), (9, 1), (11, 2), (29, 2), (31, 3), (69, 3), (71, 4)] {
        sleep((t0 + Duration::from_secs(at)).saturating_duration_since(Instant::now())).await;
        let pod = get(&client, "crash").await.unwrap();
        seen.push((at, restarts(&pod)));
        assert_eq!(restarts(&pod), expected, "at {at} s: {seen:?}");
    }
    let pod = get(&client, "crash").await.unwrap();
    let (reason, message) = waiting(&pod).unwrap();
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(
        message.starts_with("back-off 1m20s restarting failed container=main pod=crash_default("),
        "{message}"
    );
    let status = pod.status.unwrap();
    assert_eq!(status.phase, Some(PodPhase::Running));
    let last = status.container_statuses[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (1, "Error"));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    let mut p = pod("live", "fake/run?healthy-for=25s");
    p.spec.containers[0].liveness_probe = Some(exec_probe(10, 3));
    let t0 = Instant::now();
    client.create(&p).await.unwrap();
    // Probes at 0, 10, 20 s pass; 30, 40, 50 s fail: killed and restarted at 50 s.
    sleep(Duration::from_secs(49)).await;
    assert_eq!(restarts(&get(&client, "live").await.unwrap()), 0);
    let pod = wait_pod(&client, "live", Duration::from_secs(3), |p| {
        restarts(p) == 1
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(50));
    let status = pod.status.unwrap();
    let last = status.container_statuses[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 143);
    assert!(
        status.container_statuses[0]
            .state
            .as_ref()
            .unwrap()
            .running
            .is_some()
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deletion_honours_the_grace_period_then_removes_the_pod() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    let mut p = pod("stubborn", "fake/run?ignore-term=true");
    p.spec.termination_grace_period_seconds = Some(20);
    client.create(&p).await.unwrap();
    wait_pod(
        &client,
        "stubborn",
        Duration::from_secs(5),
        Pod::is_running_and_ready,
    )
    .await;
    let t0 = Instant::now();
    let outcome = client
        .delete::<Pod>("default", "stubborn", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!outcome.is_deleted(), "the agent's finalizer holds the pod");
    sleep(Duration::from_secs(19)).await;
    assert!(
        get(&client, "stubborn").await.is_some(),
        "gone before the grace period ended"
    );
    assert_eq!(runtime.counts(), (1, 1));
    let deadline = t0 + Duration::from_secs(23);
    while get(&client, "stubborn").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "not removed after the grace period"
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert!(t0.elapsed() >= Duration::from_secs(20));
    assert_eq!(runtime.counts(), (0, 0));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_re_adopts_without_restarting_and_drops_orphans() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    client.create(&pod("web", "nginx:1.27")).await.unwrap();
    let before = wait_pod(
        &client,
        "web",
        Duration::from_secs(5),
        Pod::is_running_and_ready,
    )
    .await;
    let id = before.status.unwrap().container_statuses[0]
        .container_id
        .clone();
    agent.stop().await;

    // A sandbox of a pod the API never had: the next agent removes it.
    runtime
        .run_pod_sandbox(&SandboxConfig {
            uid: "no-such-pod".into(),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
    assert_eq!(runtime.counts(), (2, 1));
    let agent = start_agent(&client, &runtime);
    sleep(Duration::from_secs(30)).await;
    let after = get(&client, "web").await.unwrap();
    assert!(after.is_running_and_ready());
    let main = &after.status.unwrap().container_statuses[0];
    assert_eq!(main.container_id, id);
    assert_eq!(main.restart_count, 0);
    assert_eq!(runtime.counts(), (1, 1));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_gone_from_the_api_is_cleaned_from_the_runtime() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    client.create(&pod("web", "nginx:1.27")).await.unwrap();
    let mut running = wait_pod(
        &client,
        "web",
        Duration::from_secs(5),
        Pod::is_running_and_ready,
    )
    .await;
    // Force-remove: drop the finalizer, then delete.
    running.metadata.finalizers.clear();
    client.update(&running).await.unwrap();
    client
        .delete::<Pod>("default", "web", &DeleteOptions::default())
        .await
        .unwrap();
    sleep(Duration::from_secs(2)).await;
    assert_eq!(runtime.counts(), (0, 0));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn bad_input_ends_up_in_the_status_not_in_a_crash() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    client
        .create(&pod("missing", "fake/missing"))
        .await
        .unwrap();
    client
        .create(&pod("nocmd", "fake/fail-start"))
        .await
        .unwrap();
    client.create(&pod("badspec", "fake/exit:x")).await.unwrap();
    let mut probe = pod("badprobe", "nginx:1.27");
    probe.spec.containers[0].liveness_probe = Some(Probe {
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::String("nope".into()),
            host: String::new(),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Probe::default()
    });
    client.create(&probe).await.unwrap();

    let reason_of = |p: &Pod| waiting(p).map(|w| w.0);
    let p = wait_pod(&client, "missing", Duration::from_secs(5), |p| {
        reason_of(p).as_deref() == Some("ErrImagePull")
    })
    .await;
    assert!(
        waiting(&p).unwrap().1.contains("not found"),
        "{:?}",
        waiting(&p)
    );
    assert_eq!(p.status.unwrap().phase, Some(PodPhase::Pending));
    let p = wait_pod(&client, "nocmd", Duration::from_secs(5), |p| {
        reason_of(p).as_deref() == Some("RunContainerError")
    })
    .await;
    assert!(waiting(&p).unwrap().1.contains("executable file not found"));
    let p = wait_pod(&client, "badspec", Duration::from_secs(5), |p| {
        reason_of(p).as_deref() == Some("CreateContainerConfigError")
    })
    .await;
    assert!(waiting(&p).unwrap().1.contains("not an integer"));
    let p = wait_pod(&client, "badprobe", Duration::from_secs(30), |p| {
        reason_of(p).as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    assert!(restarts(&p) >= 1);

    // The agent still works.
    client.create(&pod("fine", "nginx:1.27")).await.unwrap();
    wait_pod(
        &client,
        "fine",
        Duration::from_secs(5),
        Pod::is_running_and_ready,
    )
    .await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_and_a_job_succeeds() {
    use orchestra_api::resources::RestartPolicy;
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = start_agent(&client, &runtime);
    let mut job = pod("job", "fake/exit:0?after=10s");
    job.spec.restart_policy = Some(RestartPolicy::OnFailure);
    job.spec.init_containers = vec![
        Container {
            name: "first".into(),
            image: "fake/exit:0?after=3s".into(),
            ..Container::default()
        },
        Container {
            name: "second".into(),
            image: "fake/exit:0?after=3s".into(),
            ..Container::default()
        },
    ];
    client.create(&job).await.unwrap();
    let t0 = Instant::now();
    sleep(Duration::from_secs(4)).await;
    let p = get(&client, "job").await.unwrap();
    let status = p.status.clone().unwrap();
    assert_eq!(status.phase, Some(PodPhase::Pending));
    let init = &status.init_container_statuses;
    assert!(init[0].state.as_ref().unwrap().terminated.is_some());
    assert!(init[1].state.as_ref().unwrap().running.is_some());
    assert_eq!(waiting(&p).unwrap().0, "PodInitializing");

    let done = wait_pod(&client, "job", Duration::from_secs(15), |p| {
        p.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Succeeded)
    })
    .await;
    // 3 s + 3 s of init containers, then 10 s of the job.
    assert!(t0.elapsed() >= Duration::from_secs(16));
    let status = done.status.unwrap();
    let t = status.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));
    assert_eq!(status.container_statuses[0].restart_count, 0);
    agent.stop().await;
}
