//! The state machine's rules, one test each, asserting exact actions and statuses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use orchestra_api::resources::{
    ConditionStatus, Container, ExecAction, Pod, PodCondition, PodPhase, PodReadinessGate, PodSpec,
    PodStatus, Probe, RestartPolicy,
};
use orchestra_api::{ObjectMeta, Time};

use super::*;
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerState, ContainerStatus, SandboxConfig, SandboxId,
    SandboxState, SandboxStatus,
};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: format!("img/{name}"),
        ..Container::default()
    }
}

fn pod(containers: &[&str], policy: RestartPolicy) -> Pod {
    Pod {
        metadata: ObjectMeta {
            uid: "uid-1".into(),
            ..ObjectMeta::namespaced("default", "web")
        },
        spec: PodSpec {
            containers: containers.iter().map(|n| container(n)).collect(),
            restart_policy: Some(policy),
            termination_grace_period_seconds: Some(30),
            node_name: "n1".into(),
            ..PodSpec::default()
        },
        status: None,
    }
}

fn sandbox(state: SandboxState) -> SandboxStatus {
    SandboxStatus {
        id: SandboxId::from("s1"),
        config: SandboxConfig::default(),
        state,
        created_at: at(0),
        ip: Some(IpAddr::V4(Ipv4Addr::new(10, 64, 0, 1))),
    }
}

fn running(id: &str, name: &str, attempt: u32, started: u64) -> ContainerStatus {
    ContainerStatus {
        id: ContainerId::from(id),
        sandbox: SandboxId::from("s1"),
        config: ContainerConfig {
            name: name.into(),
            attempt,
            ..ContainerConfig::default()
        },
        state: ContainerState::Running,
        created_at: at(started),
        started_at: Some(at(started)),
        finished_at: None,
        exit_code: None,
        reason: String::new(),
        message: String::new(),
        log_path: None,
    }
}

fn exited(
    id: &str,
    name: &str,
    attempt: u32,
    started: u64,
    finished: u64,
    code: i32,
) -> ContainerStatus {
    ContainerStatus {
        state: ContainerState::Exited,
        finished_at: Some(at(finished)),
        exit_code: Some(code),
        ..running(id, name, attempt, started)
    }
}

struct Case {
    pod: Pod,
    observed: Observed,
    probes: BTreeMap<String, ProbeState>,
    backoff: BTreeMap<String, Backoff>,
    failures: BTreeMap<String, StartFailure>,
}

impl Case {
    fn new(pod: Pod, containers: Vec<ContainerStatus>) -> Self {
        Case {
            pod,
            observed: Observed {
                sandbox: Some(sandbox(SandboxState::Ready)),
                containers,
            },
            probes: BTreeMap::new(),
            backoff: BTreeMap::new(),
            failures: BTreeMap::new(),
        }
    }

    fn plan(&self, now: u64) -> Plan {
        plan(Input {
            pod: &self.pod,
            observed: &self.observed,
            probes: &self.probes,
            backoff: &self.backoff,
            failures: &self.failures,
            runtime: "fake",
            host_ip: "192.168.1.10",
            now: at(now),
        })
    }
}

fn start(name: &str, init: bool, attempt: u32) -> Action {
    Action::StartContainer {
        name: name.into(),
        init,
        attempt,
    }
}

fn cond(status: &PodStatus, type_: &str) -> (ConditionStatus, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status, c.reason.clone(), c.message.clone())
}

fn waiting_of(status: &PodStatus, i: usize) -> (String, String) {
    let w = status.container_statuses[i]
        .state
        .as_ref()
        .and_then(|s| s.waiting.clone())
        .expect("waiting");
    (w.reason, w.message)
}

fn init_waiting_of(status: &PodStatus, i: usize) -> String {
    status.init_container_statuses[i]
        .state
        .as_ref()
        .and_then(|s| s.waiting.clone())
        .expect("waiting")
        .reason
}

fn exec_probe() -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["check".into()],
        }),
        ..Probe::default()
    }
}

#[test]
fn a_new_pod_gets_a_sandbox_first_and_is_pending() {
    let mut case = Case::new(pod(&["web"], RestartPolicy::Always), vec![]);
    case.observed.sandbox = None;
    let plan = case.plan(0);
    assert_eq!(plan.actions, vec![Action::CreateSandbox { attempt: 0 }]);
    let status = &plan.status;
    assert_eq!(status.phase, Some(PodPhase::Pending));
    assert_eq!(
        waiting_of(status, 0),
        ("ContainerCreating".into(), String::new())
    );
    assert_eq!(cond(status, "PodScheduled").0, ConditionStatus::True);
    assert_eq!(cond(status, "Initialized").0, ConditionStatus::True);
    assert_eq!(
        cond(status, "ContainersReady"),
        (
            ConditionStatus::False,
            "ContainersNotReady".into(),
            "containers with unready status: [web]".into()
        )
    );
    assert_eq!(cond(status, "Ready").0, ConditionStatus::False);
    assert_eq!(status.start_time, Some(to_time(at(0))));
    assert_eq!(status.pod_ip, "");
    assert_eq!(status.host_ip, "192.168.1.10");
    assert_eq!(status.qos_class, "BestEffort");
    assert!(!plan.terminated);
}

#[test]
fn with_a_sandbox_every_app_container_is_started() {
    let case = Case::new(pod(&["web", "log"], RestartPolicy::Always), vec![]);
    let plan = case.plan(0);
    assert_eq!(
        plan.actions,
        vec![start("web", false, 0), start("log", false, 0)]
    );
    assert_eq!(plan.status.pod_ip, "10.64.0.1");
    assert_eq!(plan.status.pod_ips.len(), 1);
}

#[test]
fn running_containers_make_a_running_ready_pod() {
    let case = Case::new(
        pod(&["web"], RestartPolicy::Always),
        vec![running("c1", "web", 0, 5)],
    );
    let plan = case.plan(6);
    assert_eq!(plan.actions, vec![]);
    let status = &plan.status;
    assert_eq!(status.phase, Some(PodPhase::Running));
    assert_eq!(
        cond(status, "Ready"),
        (ConditionStatus::True, String::new(), String::new())
    );
    assert_eq!(cond(status, "ContainersReady").0, ConditionStatus::True);
    let web = &status.container_statuses[0];
    assert!(web.ready);
    assert_eq!(web.started, Some(true));
    assert_eq!(web.restart_count, 0);
    assert_eq!(web.container_id, "fake://c1");
    assert_eq!(
        web.state
            .as_ref()
            .and_then(|s| s.running.clone())
            .and_then(|r| r.started_at),
        Some(to_time(at(5)))
    );
}

#[test]
fn readiness_gates_hold_ready_back_but_not_containers_ready() {
    let mut p = pod(&["web"], RestartPolicy::Always);
    p.spec.readiness_gates = vec![PodReadinessGate {
        condition_type: "example.com/lb".into(),
    }];
    let mut case = Case::new(p, vec![running("c1", "web", 0, 5)]);
    let plan = case.plan(6);
    assert_eq!(
        cond(&plan.status, "ContainersReady").0,
        ConditionStatus::True
    );
    assert_eq!(
        cond(&plan.status, "Ready"),
        (
            ConditionStatus::False,
            "ReadinessGatesNotReady".into(),
            "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
                .into()
        )
    );
    // The controller sets its condition False, then True; the agent's status never carries
    // it (it is merged in when written).
    let gate = |status| PodCondition {
        type_: "example.com/lb".into(),
        status,
        ..PodCondition::default()
    };
    case.pod.status = Some(PodStatus {
        conditions: vec![gate(ConditionStatus::False)],
        ..plan.status.clone()
    });
    let plan = case.plan(7);
    assert_eq!(
        cond(&plan.status, "Ready").2,
        "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False"
    );
    assert!(
        plan.status
            .conditions
            .iter()
            .all(|c| c.type_ != "example.com/lb")
    );
    case.pod.status = Some(PodStatus {
        conditions: vec![gate(ConditionStatus::True)],
        ..plan.status.clone()
    });
    let plan = case.plan(8);
    assert_eq!(
        cond(&plan.status, "Ready"),
        (ConditionStatus::True, String::new(), String::new())
    );
    // Unready containers say so first, whatever the gates.
    case.observed.containers.clear();
    let plan = case.plan(9);
    assert_eq!(cond(&plan.status, "Ready").1, "ContainersNotReady");
}

#[test]
fn one_running_and_one_waiting_container_is_pending() {
    let case = Case::new(
        pod(&["web", "log"], RestartPolicy::Always),
        vec![running("c1", "web", 0, 5)],
    );
    let plan = case.plan(6);
    assert_eq!(plan.actions, vec![start("log", false, 0)]);
    assert_eq!(plan.status.phase, Some(PodPhase::Pending));
}

#[test]
fn readiness_probe_verdicts_drive_ready_and_stale_ones_are_ignored() {
    let mut p = pod(&["web"], RestartPolicy::Always);
    p.spec.containers[0].readiness_probe = Some(exec_probe());
    let mut case = Case::new(p, vec![running("c2", "web", 1, 5)]);
    let plan = case.plan(6);
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
    assert_eq!(
        cond(&plan.status, "Ready"),
        (
            ConditionStatus::False,
            "ContainersNotReady".into(),
            "containers with unready status: [web]".into()
        )
    );
    // A verdict about an earlier attempt does not count.
    case.probes.insert(
        "web".into(),
        ProbeState {
            container: "c1".into(),
            started: true,
            ready: true,
            failed: None,
        },
    );
    assert!(!case.plan(6).status.container_statuses[0].ready);
    case.probes.get_mut("web").unwrap().container = "c2".into();
    let plan = case.plan(6);
    assert!(plan.status.container_statuses[0].ready);
    assert_eq!(cond(&plan.status, "Ready").0, ConditionStatus::True);
}

#[test]
fn a_startup_probe_holds_started_and_ready_back() {
    let mut p = pod(&["web"], RestartPolicy::Always);
    p.spec.containers[0].startup_probe = Some(exec_probe());
    let mut case = Case::new(p, vec![running("c1", "web", 0, 5)]);
    let web = &case.plan(6).status.container_statuses[0];
    assert_eq!((web.started, web.ready), (Some(false), false));
    case.probes.insert(
        "web".into(),
        ProbeState {
            container: "c1".into(),
            started: true,
            ready: true,
            failed: None,
        },
    );
    let web = &case.plan(6).status.container_statuses[0];
    assert_eq!((web.started, web.ready), (Some(true), true));
}

fn with_inits(inits: &[&str], policy: RestartPolicy) -> Pod {
    let mut p = pod(&["web"], policy);
    p.spec.init_containers = inits.iter().map(|n| container(n)).collect();
    p
}

#[test]
fn init_containers_run_one_at_a_time_before_the_app() {
    let case = Case::new(with_inits(&["a", "b"], RestartPolicy::Always), vec![]);
    let plan = case.plan(0);
    assert_eq!(plan.actions, vec![start("a", true, 0)]);
    let status = &plan.status;
    assert_eq!(status.phase, Some(PodPhase::Pending));
    assert_eq!(init_waiting_of(status, 0), "PodInitializing");
    assert_eq!(init_waiting_of(status, 1), "PodInitializing");
    assert_eq!(waiting_of(status, 0).0, "PodInitializing");
    assert_eq!(
        cond(status, "Initialized"),
        (
            ConditionStatus::False,
            "ContainersNotInitialized".into(),
            "containers with incomplete status: [a b]".into()
        )
    );

    let case = Case::new(
        with_inits(&["a", "b"], RestartPolicy::Always),
        vec![exited("c1", "a", 0, 0, 1, 0), running("c2", "b", 0, 1)],
    );
    let plan = case.plan(2);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(
        cond(&plan.status, "Initialized").2,
        "containers with incomplete status: [b]"
    );
    let a = plan.status.init_container_statuses[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(a.terminated.unwrap().reason, "Completed");

    let case = Case::new(
        with_inits(&["a", "b"], RestartPolicy::Always),
        vec![exited("c1", "a", 0, 0, 1, 0), exited("c2", "b", 0, 1, 2, 0)],
    );
    let plan = case.plan(3);
    assert_eq!(plan.actions, vec![start("web", false, 0)]);
    assert_eq!(cond(&plan.status, "Initialized").0, ConditionStatus::True);
}

#[test]
fn a_failed_init_container_restarts_or_fails_the_pod() {
    let case = Case::new(
        with_inits(&["a"], RestartPolicy::Always),
        vec![exited("c1", "a", 0, 0, 1, 2)],
    );
    let plan = case.plan(1);
    assert_eq!(
        plan.actions,
        vec![
            Action::RecordBackoff {
                name: "a".into(),
                backoff: Backoff {
                    delay: backoff::INITIAL
                }
            },
            start("a", true, 1)
        ]
    );
    assert_eq!(plan.status.phase, Some(PodPhase::Pending));

    let case = Case::new(
        with_inits(&["a"], RestartPolicy::Never),
        vec![exited("c1", "a", 0, 0, 1, 2)],
    );
    let plan = case.plan(1);
    assert_eq!(plan.actions, vec![Action::StopSandbox("s1".into())]);
    assert_eq!(plan.status.phase, Some(PodPhase::Failed));
    let a = plan.status.init_container_statuses[0]
        .state
        .clone()
        .unwrap();
    let t = a.terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (2, "Error"));
}

#[test]
fn crash_loop_backoff_waits_with_kubelets_message() {
    let mut case = Case::new(
        pod(&["web"], RestartPolicy::Always),
        vec![exited("c1", "web", 0, 0, 1, 1)],
    );
    // First exit: restart at once.
    let plan = case.plan(1);
    assert_eq!(
        plan.actions,
        vec![
            Action::RecordBackoff {
                name: "web".into(),
                backoff: Backoff {
                    delay: backoff::INITIAL
                }
            },
            start("web", false, 1)
        ]
    );
    // Second exit: 10 s of CrashLoopBackOff after it.
    case.observed.containers = vec![
        exited("c1", "web", 0, 0, 1, 1),
        exited("c2", "web", 1, 1, 2, 1),
    ];
    case.backoff.insert(
        "web".into(),
        Backoff {
            delay: Duration::from_secs(10),
        },
    );
    let plan = case.plan(5);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(plan.wake_at, Some(at(12)));
    let status = &plan.status;
    assert_eq!(status.phase, Some(PodPhase::Running));
    assert_eq!(
        waiting_of(status, 0),
        (
            "CrashLoopBackOff".into(),
            "back-off 10s restarting failed container=web pod=web_default(uid-1)".into()
        )
    );
    let web = &status.container_statuses[0];
    assert_eq!(web.restart_count, 1);
    let last = web.last_state.clone().unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (1, "Error"));
    assert_eq!(last.finished_at, Some(to_time(at(2))));
    assert!(!web.ready);
    // When the backoff ends: restart, doubling the next delay.
    let plan = case.plan(12);
    assert_eq!(
        plan.actions,
        vec![
            Action::RecordBackoff {
                name: "web".into(),
                backoff: Backoff {
                    delay: Duration::from_secs(20)
                }
            },
            start("web", false, 2)
        ]
    );
}

#[test]
fn old_attempts_beyond_the_last_two_are_removed() {
    let mut case = Case::new(
        pod(&["web"], RestartPolicy::Always),
        vec![
            exited("c1", "web", 0, 0, 1, 1),
            exited("c2", "web", 1, 1, 2, 1),
            running("c3", "web", 2, 12),
        ],
    );
    case.backoff.insert(
        "web".into(),
        Backoff {
            delay: Duration::from_secs(20),
        },
    );
    let plan = case.plan(13);
    assert_eq!(plan.actions, vec![Action::RemoveContainer("c1".into())]);
    let web = &plan.status.container_statuses[0];
    assert_eq!(web.restart_count, 2);
    assert_eq!(
        web.last_state
            .clone()
            .unwrap()
            .terminated
            .unwrap()
            .container_id,
        "fake://c2"
    );
}

#[test]
fn on_failure_restarts_failures_only_and_succeeds() {
    let case = Case::new(
        pod(&["job"], RestartPolicy::OnFailure),
        vec![exited("c1", "job", 0, 0, 3, 0)],
    );
    let plan = case.plan(4);
    assert_eq!(plan.actions, vec![Action::StopSandbox("s1".into())]);
    assert_eq!(plan.status.phase, Some(PodPhase::Succeeded));
    assert_eq!(
        cond(&plan.status, "Ready"),
        (
            ConditionStatus::False,
            "PodCompleted".into(),
            "containers with unready status: [job]".into()
        )
    );
    let t = plan.status.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"));

    let case = Case::new(
        pod(&["job"], RestartPolicy::OnFailure),
        vec![exited("c1", "job", 0, 0, 3, 1)],
    );
    let plan = case.plan(4);
    assert_eq!(plan.actions.last(), Some(&start("job", false, 1)));
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
}

#[test]
fn never_does_not_restart_and_fails_on_error() {
    let case = Case::new(
        pod(&["job"], RestartPolicy::Never),
        vec![exited("c1", "job", 0, 0, 3, 7)],
    );
    let plan = case.plan(4);
    assert_eq!(plan.actions, vec![Action::StopSandbox("s1".into())]);
    assert_eq!(plan.status.phase, Some(PodPhase::Failed));
    let t = plan.status.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_str()), (7, "Error"));
    // Two containers, one done, one running: Running.
    let case = Case::new(
        pod(&["a", "b"], RestartPolicy::Never),
        vec![exited("c1", "a", 0, 0, 3, 0), running("c2", "b", 0, 0)],
    );
    assert_eq!(case.plan(4).status.phase, Some(PodPhase::Running));
}

#[test]
fn a_terminal_pod_stays_terminal_and_starts_nothing() {
    let mut p = pod(&["web"], RestartPolicy::Always);
    p.status = Some(PodStatus {
        phase: Some(PodPhase::Succeeded),
        ..PodStatus::default()
    });
    let mut case = Case::new(p, vec![]);
    case.observed.sandbox = Some(sandbox(SandboxState::NotReady));
    let plan = case.plan(0);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(plan.status.phase, Some(PodPhase::Succeeded));
}

#[test]
fn a_failed_liveness_probe_kills_with_the_grace_period_then_restarts() {
    let mut p = pod(&["web"], RestartPolicy::Always);
    p.spec.containers[0].liveness_probe = Some(exec_probe());
    let mut case = Case::new(p, vec![running("c1", "web", 0, 0)]);
    case.probes.insert(
        "web".into(),
        ProbeState {
            container: "c1".into(),
            started: true,
            ready: true,
            failed: Some("Liveness probe failed: exit code 1".into()),
        },
    );
    let plan = case.plan(30);
    assert_eq!(
        plan.actions,
        vec![Action::KillContainer {
            id: "c1".into(),
            name: "web".into(),
            grace: Duration::from_secs(30),
            reason: "Liveness probe failed: exit code 1".into()
        }]
    );
    case.observed.containers = vec![exited("c1", "web", 0, 0, 30, 143)];
    assert_eq!(case.plan(30).actions.last(), Some(&start("web", false, 1)));
}

#[test]
fn deletion_stops_everything_with_the_grace_period_and_then_is_terminated() {
    let mut p = pod(&["web", "log"], RestartPolicy::Always);
    p.metadata.deletion_timestamp = Some(Time::now());
    p.metadata.deletion_grace_period_seconds = Some(5);
    let mut case = Case::new(p, vec![running("c1", "web", 0, 0)]);
    let plan = case.plan(10);
    // Nothing starts ("log" never ran), the running one is stopped with 5 s.
    assert_eq!(
        plan.actions,
        vec![Action::KillContainer {
            id: "c1".into(),
            name: "web".into(),
            grace: Duration::from_secs(5),
            reason: "the pod is being deleted".into()
        }]
    );
    assert!(!plan.terminated);
    case.observed.containers = vec![exited("c1", "web", 0, 0, 12, 143)];
    case.pod.spec.containers.pop();
    let plan = case.plan(12);
    assert_eq!(plan.actions, vec![]);
    assert!(plan.terminated);
    assert_eq!(plan.status.phase, Some(PodPhase::Failed));

    // Without a grace period on the deletion, the spec's applies.
    case.pod.metadata.deletion_grace_period_seconds = Some(0);
    case.observed.containers = vec![running("c1", "web", 0, 0)];
    let Action::KillContainer { grace, .. } = &case.plan(12).actions[0] else {
        panic!("no kill")
    };
    assert_eq!(*grace, Duration::from_secs(30));
}

#[test]
fn a_failed_start_waits_with_the_runtimes_reason_then_retries() {
    let mut case = Case::new(pod(&["web"], RestartPolicy::Always), vec![]);
    case.failures.insert(
        "web".into(),
        StartFailure {
            reason: "ErrImagePull".into(),
            message: "image \"nope\": not found".into(),
            failures: 1,
            retry_at: at(10),
        },
    );
    let plan = case.plan(5);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(plan.wake_at, Some(at(10)));
    assert_eq!(plan.status.phase, Some(PodPhase::Pending));
    assert_eq!(
        waiting_of(&plan.status, 0),
        ("ErrImagePull".into(), "image \"nope\": not found".into())
    );
    assert_eq!(case.plan(10).actions, vec![start("web", false, 0)]);
}

#[test]
fn a_stopped_sandbox_is_replaced_and_leftovers_removed() {
    let mut case = Case::new(pod(&["web"], RestartPolicy::Always), vec![]);
    case.observed.sandbox = Some(sandbox(SandboxState::NotReady));
    assert_eq!(
        case.plan(0).actions,
        vec![
            Action::RemoveSandbox("s1".into()),
            Action::CreateSandbox { attempt: 1 }
        ]
    );
    let mut created = running("c1", "web", 0, 0);
    created.state = ContainerState::Created;
    created.started_at = None;
    let case = Case::new(pod(&["web"], RestartPolicy::Always), vec![created]);
    let plan = case.plan(0);
    assert_eq!(plan.actions, vec![Action::RemoveContainer("c1".into())]);
    assert_eq!(waiting_of(&plan.status, 0).0, "ContainerCreating");
}

#[test]
fn transition_times_change_only_with_the_condition() {
    let mut case = Case::new(
        pod(&["web"], RestartPolicy::Always),
        vec![running("c1", "web", 0, 0)],
    );
    let first = case.plan(1).status;
    case.pod.status = Some(first.clone());
    let later = case.plan(100).status;
    assert_eq!(first.conditions, later.conditions);
    assert_eq!(later.start_time, Some(to_time(at(1))));
    case.observed.containers = vec![exited("c1", "web", 0, 0, 100, 1)];
    case.backoff.insert(
        "web".into(),
        Backoff {
            delay: Duration::from_secs(10),
        },
    );
    let broken = case.plan(101).status;
    let ready = broken
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.last_transition_time, Some(to_time(at(101))));
    let scheduled = broken
        .conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(scheduled.last_transition_time, Some(to_time(at(1))));
}

#[test]
fn a_pod_that_just_finished_keeps_its_stopped_sandbox() {
    // Regression: the sandbox stopped for a pod that turned Succeeded in the previous plan,
    // before that status was written, must not be recreated (which reran the pod).
    let mut case = Case::new(
        pod(&["job"], RestartPolicy::OnFailure),
        vec![exited("c1", "job", 0, 0, 3, 0)],
    );
    case.observed.sandbox = Some(sandbox(SandboxState::NotReady));
    let plan = case.plan(4);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(plan.status.phase, Some(PodPhase::Succeeded));
    // With Always, the same stopped sandbox is replaced: the pod must run again.
    case.pod.spec.restart_policy = Some(RestartPolicy::Always);
    assert_eq!(
        case.plan(4).actions,
        vec![
            Action::RemoveSandbox("s1".into()),
            Action::CreateSandbox { attempt: 1 }
        ]
    );
}

mod sidecar;
