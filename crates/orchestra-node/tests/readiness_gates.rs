//! Readiness gates through the node agent, over LocalClient and FakeRuntime in paused time: a
//! gated pod's containers become ready but the pod is not `Ready` until another writer (here
//! the test, as a controller would through the status subresource) sets the gate's condition
//! `True`; the agent's later status writes keep that condition, and turning it `False` makes the
//! pod unready again.

use std::time::Duration;

use orchestra_api::resources::{
    ConditionStatus, Container, Pod, PodCondition, PodReadinessGate, PodSpec,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

const NODE: &str = "node-1";
const GATE: &str = "example.com/load-balancer";

fn gated_pod() -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", "web"),
        spec: PodSpec {
            node_name: NODE.into(),
            containers: vec![Container {
                name: "main".into(),
                // Runs, then exits after a while: the restart gives the agent status writes to
                // make after the gate's condition is set.
                image: "fake/exit:1?after=30s".into(),
                ..Container::default()
            }],
            readiness_gates: vec![PodReadinessGate {
                condition_type: GATE.into(),
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// The pod's condition `type_`: (status, reason, message); `None` when absent.
fn condition(pod: &Pod, type_: &str) -> Option<(ConditionStatus, String, String)> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason.clone(), c.message.clone()))
}

/// Waits (in paused time, at most a minute) until `check` holds for the pod; returns it.
async fn wait_for(client: &LocalClient, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pod: Pod = client.get("default", "web").await.unwrap();
        if check(&pod) {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached; status {:#?}",
            pod.status
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Sets the gate's condition as a controller would: read, change, update the status with the
/// resourceVersion read, again on a conflict.
async fn set_gate(client: &LocalClient, status: ConditionStatus) {
    loop {
        let mut pod: Pod = client.get("default", "web").await.unwrap();
        let conditions = &mut pod.status.get_or_insert_default().conditions;
        conditions.retain(|c| c.type_ != GATE);
        conditions.push(PodCondition {
            type_: GATE.into(),
            status,
            reason: "Configured".into(),
            ..PodCondition::default()
        });
        match client.update_status(&pod).await {
            Ok(_) => return,
            Err(err) if err.is_conflict() => continue,
            Err(err) => panic!("setting the gate: {err}"),
        }
    }
}

fn ready(pod: &Pod) -> Option<ConditionStatus> {
    condition(pod, "Ready").map(|c| c.0)
}

#[tokio::test(start_paused = true)]
async fn ready_waits_for_the_gate_and_the_gates_condition_survives_the_agents_writes() {
    let client = LocalClient::new(MemStore::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = Agent::new(client.clone(), FakeRuntime::new(), AgentConfig::new(NODE));
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    client.create(&gated_pod()).await.unwrap();

    let pod = wait_for(&client, "containers ready", |p| {
        condition(p, "ContainersReady").is_some_and(|c| c.0 == ConditionStatus::True)
    })
    .await;
    assert_eq!(
        condition(&pod, "Ready"),
        Some((
            ConditionStatus::False,
            "ReadinessGatesNotReady".into(),
            format!("corresponding condition of pod readiness gate {GATE:?} does not exist.")
        ))
    );

    set_gate(&client, ConditionStatus::True).await;
    let pod = wait_for(&client, "ready", |p| {
        ready(p) == Some(ConditionStatus::True)
    })
    .await;
    assert_eq!(
        condition(&pod, GATE),
        Some((ConditionStatus::True, "Configured".into(), String::new()))
    );

    // The container exits and restarts: the agent writes its status several times, and the
    // gate's condition stays as its writer left it.
    let pod = wait_for(&client, "a restart", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.container_statuses.iter().any(|c| c.restart_count >= 1))
            && ready(p) == Some(ConditionStatus::True)
    })
    .await;
    assert_eq!(
        condition(&pod, GATE),
        Some((ConditionStatus::True, "Configured".into(), String::new()))
    );

    set_gate(&client, ConditionStatus::False).await;
    let pod = wait_for(&client, "unready again", |p| {
        ready(p) == Some(ConditionStatus::False)
    })
    .await;
    assert_eq!(
        condition(&pod, "Ready").map(|c| (c.1, c.2)),
        Some((
            "ReadinessGatesNotReady".into(),
            format!("the status of pod readiness gate {GATE:?} is not \"True\", but False")
        ))
    );
    assert_eq!(
        condition(&pod, "ContainersReady").map(|c| c.0),
        Some(ConditionStatus::True)
    );

    let _ = stop.send(());
    task.await.unwrap();
}
