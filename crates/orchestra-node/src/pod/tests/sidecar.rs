//! The state machine's sidecar rules (init containers with `restartPolicy: Always`): start
//! order, readiness, restarts whatever the pod's policy, a Job-style pod finishing, and the
//! order of stopping, one test each with exact actions and statuses.

use super::*;
use crate::pod::sidecar::FINISHED_REASON as FINISHED;

/// A pod with a sidecar `mesh`, an ordinary init container `setup` and an app `job`.
fn mesh_pod(policy: RestartPolicy) -> Pod {
    let mut p = pod(&["job"], policy);
    let mut mesh = container("mesh");
    mesh.restart_policy = Some(RestartPolicy::Always);
    p.spec.init_containers = vec![mesh, container("setup")];
    p
}

/// `mesh_pod` with a second sidecar `log` after `setup`.
fn two_sidecars(policy: RestartPolicy) -> Pod {
    let mut p = mesh_pod(policy);
    let mut log = container("log");
    log.restart_policy = Some(RestartPolicy::Always);
    p.spec.init_containers.push(log);
    p
}

fn kill(id: &str, name: &str, grace: u64, reason: &str) -> Action {
    Action::KillContainer {
        id: id.into(),
        name: name.into(),
        grace: Duration::from_secs(grace),
        reason: reason.into(),
    }
}

fn started(status: &PodStatus, i: usize) -> (Option<bool>, bool) {
    let s = &status.init_container_statuses[i];
    (s.started, s.ready)
}

#[test]
fn a_sidecar_starts_first_and_the_next_containers_once_it_has_started() {
    let mut case = Case::new(mesh_pod(RestartPolicy::Never), vec![]);
    let plan = case.plan(0);
    assert_eq!(plan.actions, vec![start("mesh", true, 0)]);
    assert_eq!(plan.status.phase, Some(PodPhase::Pending));
    assert_eq!(started(&plan.status, 0), (Some(false), false));
    assert_eq!(init_waiting_of(&plan.status, 1), "PodInitializing");
    assert_eq!(
        cond(&plan.status, "Initialized").2,
        "containers with incomplete status: [mesh setup]"
    );

    // Running is started (no startup probe): the ordinary init container follows, and the
    // sidecar does not have to finish.
    case.observed.containers = vec![running("c1", "mesh", 0, 1)];
    let plan = case.plan(1);
    assert_eq!(plan.actions, vec![start("setup", true, 0)]);
    assert_eq!(started(&plan.status, 0), (Some(true), true));
    assert_eq!(plan.status.phase, Some(PodPhase::Pending));

    case.observed
        .containers
        .push(exited("c2", "setup", 0, 1, 2, 0));
    let plan = case.plan(2);
    assert_eq!(plan.actions, vec![start("job", false, 0)]);
    assert_eq!(cond(&plan.status, "Initialized").0, ConditionStatus::True);
    // An ordinary init container's status has no `started`.
    assert_eq!(started(&plan.status, 1), (None, false));

    case.observed.containers.push(running("c3", "job", 0, 3));
    let plan = case.plan(3);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
    assert_eq!(cond(&plan.status, "Ready").0, ConditionStatus::True);
}

#[test]
fn a_sidecars_startup_probe_gates_the_next_and_its_readiness_the_pods() {
    let mut p = mesh_pod(RestartPolicy::Always);
    p.spec.init_containers[0].startup_probe = Some(exec_probe());
    p.spec.init_containers[0].readiness_probe = Some(exec_probe());
    let mut case = Case::new(p, vec![running("c1", "mesh", 0, 1)]);
    let plan = case.plan(2);
    assert_eq!(plan.actions, vec![], "setup waits for the startup probe");
    assert_eq!(started(&plan.status, 0), (Some(false), false));

    let verdict = |started, ready| ProbeState {
        container: "c1".into(),
        started,
        ready,
        failed: None,
    };
    case.probes.insert("mesh".into(), verdict(true, false));
    assert_eq!(case.plan(3).actions, vec![start("setup", true, 0)]);

    // The app runs and is ready, the sidecar is not: neither is the pod.
    case.observed.containers.extend([
        exited("c2", "setup", 0, 3, 4, 0),
        running("c3", "job", 0, 4),
    ]);
    let plan = case.plan(5);
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
    assert_eq!(started(&plan.status, 0), (Some(true), false));
    assert_eq!(
        cond(&plan.status, "ContainersReady"),
        (
            ConditionStatus::False,
            "ContainersNotReady".into(),
            "containers with unready status: [mesh]".into()
        )
    );
    case.probes.insert("mesh".into(), verdict(true, true));
    let plan = case.plan(6);
    assert_eq!(started(&plan.status, 0), (Some(true), true));
    assert_eq!(cond(&plan.status, "Ready").0, ConditionStatus::True);
}

#[test]
fn a_crashing_sidecar_restarts_with_backoff_though_the_pod_never_restarts() {
    let mut case = Case::new(
        mesh_pod(RestartPolicy::Never),
        vec![
            exited("c1", "mesh", 0, 0, 10, 1),
            exited("c2", "setup", 0, 1, 2, 0),
            running("c3", "job", 0, 3),
        ],
    );
    let plan = case.plan(10);
    assert_eq!(
        plan.actions,
        vec![
            Action::RecordBackoff {
                name: "mesh".into(),
                backoff: Backoff {
                    delay: Duration::from_secs(10)
                },
            },
            start("mesh", true, 1),
        ]
    );
    // The pod stays initialized and running meanwhile.
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
    assert_eq!(cond(&plan.status, "Initialized").0, ConditionStatus::True);

    // The restarted one exits too (with 0: a sidecar restarts on any exit): back-off.
    case.backoff.insert(
        "mesh".into(),
        Backoff {
            delay: Duration::from_secs(10),
        },
    );
    case.observed.containers[0] = exited("c4", "mesh", 1, 10, 20, 0);
    let plan = case.plan(25);
    assert_eq!(plan.actions, vec![]);
    assert_eq!(plan.wake_at, Some(at(30)));
    assert_eq!(init_waiting_of(&plan.status, 0), "CrashLoopBackOff");
    assert_eq!(plan.status.init_container_statuses[0].restart_count, 1);
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
    assert_eq!(
        cond(&plan.status, "Ready").2,
        "containers with unready status: [mesh]"
    );
    let plan = case.plan(30);
    assert_eq!(plan.actions.last(), Some(&start("mesh", true, 2)));
}

#[test]
fn a_job_with_sidecars_stops_them_last_declared_first_and_succeeds() {
    let mut case = Case::new(
        two_sidecars(RestartPolicy::Never),
        vec![
            running("c1", "mesh", 0, 0),
            exited("c2", "setup", 0, 1, 2, 0),
            running("c3", "log", 0, 2),
            exited("c4", "job", 0, 3, 9, 0),
        ],
    );
    let plan = case.plan(10);
    assert_eq!(plan.actions, vec![kill("c3", "log", 30, FINISHED)]);
    // Running sidecars keep the phase Running (kubelet's getPhase).
    assert_eq!(plan.status.phase, Some(PodPhase::Running));

    case.observed.containers[2] = exited("c3", "log", 0, 2, 10, 143);
    let plan = case.plan(10);
    assert_eq!(
        plan.actions,
        vec![kill("c1", "mesh", 30, FINISHED)],
        "log is not restarted, mesh stops next"
    );

    case.observed.containers[0] = exited("c1", "mesh", 0, 0, 11, 143);
    let plan = case.plan(11);
    // The phase is the regular containers': the sidecars' exit codes do not count.
    assert_eq!(plan.status.phase, Some(PodPhase::Succeeded));
    assert_eq!(plan.actions, vec![Action::StopSandbox("s1".into())]);
    assert_eq!(cond(&plan.status, "Ready").1, "PodCompleted");
    let mesh = plan.status.init_container_statuses[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(mesh.terminated.unwrap().exit_code, 143);

    // A failed job under Never fails the pod, once the sidecars are stopped.
    case.observed.containers[3] = exited("c4", "job", 0, 3, 9, 2);
    assert_eq!(case.plan(12).status.phase, Some(PodPhase::Failed));
    case.observed.containers[0] = running("c1", "mesh", 0, 0);
    let plan = case.plan(12);
    assert_eq!(plan.status.phase, Some(PodPhase::Running));
    assert_eq!(plan.actions, vec![kill("c1", "mesh", 30, FINISHED)]);
}

#[test]
fn under_on_failure_a_failed_job_keeps_its_sidecar_and_restarts() {
    let case = Case::new(
        mesh_pod(RestartPolicy::OnFailure),
        vec![
            running("c1", "mesh", 0, 0),
            exited("c2", "setup", 0, 1, 2, 0),
            exited("c3", "job", 0, 3, 9, 1),
        ],
    );
    let plan = case.plan(10);
    assert_eq!(plan.actions.last(), Some(&start("job", false, 1)));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::KillContainer { .. }))
    );
}

#[test]
fn a_failed_init_container_under_never_stops_the_sidecar_and_fails_the_pod() {
    let mut case = Case::new(
        mesh_pod(RestartPolicy::Never),
        vec![
            running("c1", "mesh", 0, 0),
            exited("c2", "setup", 0, 1, 2, 1),
        ],
    );
    let plan = case.plan(3);
    assert_eq!(plan.status.phase, Some(PodPhase::Failed));
    assert_eq!(plan.actions, vec![kill("c1", "mesh", 30, FINISHED)]);
    case.observed.containers[0] = exited("c1", "mesh", 0, 0, 3, 143);
    let plan = case.plan(3);
    assert_eq!(plan.actions, vec![Action::StopSandbox("s1".into())]);
}

#[test]
fn deletion_stops_the_regular_containers_then_the_sidecars_in_reverse() {
    let mut p = two_sidecars(RestartPolicy::Always);
    p.metadata.deletion_timestamp = Some(to_time(at(10)));
    p.metadata.deletion_grace_period_seconds = Some(30);
    let mut case = Case::new(
        p,
        vec![
            running("c1", "mesh", 0, 0),
            exited("c2", "setup", 0, 1, 2, 0),
            running("c3", "log", 0, 2),
            running("c4", "job", 0, 3),
        ],
    );
    let deleting = "the pod is being deleted";
    let plan = case.plan(10);
    assert_eq!(plan.actions, vec![kill("c4", "job", 30, deleting)]);

    // The app took 12 s of the 30: the sidecars get what is left, one after the other.
    case.observed.containers[3] = exited("c4", "job", 0, 3, 22, 143);
    let plan = case.plan(22);
    assert_eq!(plan.actions, vec![kill("c3", "log", 18, deleting)]);
    assert!(!plan.terminated);
    case.observed.containers[2] = exited("c3", "log", 0, 2, 23, 143);
    let plan = case.plan(23);
    assert_eq!(plan.actions, vec![kill("c1", "mesh", 17, deleting)]);
    case.observed.containers[0] = exited("c1", "mesh", 0, 0, 24, 143);
    let plan = case.plan(24);
    assert_eq!(plan.actions, vec![]);
    assert!(plan.terminated);
}
