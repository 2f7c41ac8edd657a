//! [`plan`]: the pure decision function of the pod state machine (see the [module docs](super)).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use orchestra_api::Time;
use orchestra_api::resources::{
    ConditionStatus, Container, ContainerState as ApiState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus as ApiStatus, Pod,
    PodCondition, PodIp, PodPhase, PodStatus, RestartPolicy,
};

use super::backoff::{self, Backoff, RestartDecision};
use super::sidecar;
use crate::runtime::{
    ContainerId, ContainerState, ContainerStatus, SandboxId, SandboxState, SandboxStatus,
};

/// The label every sandbox and container carries with its pod's uid.
pub const LABEL_POD_UID: &str = "orchestra.io/pod-uid";
/// The label every container carries with its name in the pod.
pub const LABEL_CONTAINER_NAME: &str = "orchestra.io/container-name";

/// What the runtime holds for one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The pod's current sandbox, if any.
    pub sandbox: Option<SandboxStatus>,
    /// The containers in that sandbox, every attempt.
    pub containers: Vec<ContainerStatus>,
}

/// The probes' verdicts on one running container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    /// The container the verdicts are about (stale verdicts of an earlier attempt are ignored).
    pub container: ContainerId,
    /// The startup probe has succeeded (or there is none).
    pub started: bool,
    /// The readiness probe succeeds (or there is none and the container started).
    pub ready: bool,
    /// The liveness or startup probe failed past its threshold: why (the container is killed).
    pub failed: Option<String>,
}

/// A container start that failed, and when to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartFailure {
    /// Kubelet's reason (`ErrImagePull`, `RunContainerError`, `CreateContainerConfigError`...).
    pub reason: String,
    /// The runtime's message.
    pub message: String,
    /// How many starts failed in a row.
    pub failures: u32,
    /// When to try again.
    pub retry_at: SystemTime,
}

/// Everything [`plan`] decides from.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The pod as the API has it.
    pub pod: &'a Pod,
    /// What the runtime holds for it.
    pub observed: &'a Observed,
    /// Probe verdicts by container name.
    pub probes: &'a BTreeMap<String, ProbeState>,
    /// Restart backoff records by container name.
    pub backoff: &'a BTreeMap<String, Backoff>,
    /// Failed starts by container name.
    pub failures: &'a BTreeMap<String, StartFailure>,
    /// The runtime's name, for `containerID` (`fake://c1`).
    pub runtime: &'a str,
    /// The node's IP, for `hostIP`.
    pub host_ip: &'a str,
    /// The current time.
    pub now: SystemTime,
}

/// One thing to do to the runtime (or to the worker's records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create and start the pod's sandbox.
    CreateSandbox {
        /// How many sandboxes the pod had before.
        attempt: u32,
    },
    /// Stop and remove a sandbox with everything in it.
    RemoveSandbox(SandboxId),
    /// Stop a sandbox (its containers are killed), keeping it for its status.
    StopSandbox(SandboxId),
    /// Pull the image, create the container and start it.
    StartContainer {
        /// The container's name.
        name: String,
        /// Whether it is an init container.
        init: bool,
        /// Its attempt (restart count).
        attempt: u32,
    },
    /// Stop a running container with a grace period.
    KillContainer {
        /// The container.
        id: ContainerId,
        /// Its name.
        name: String,
        /// Between TERM and KILL.
        grace: Duration,
        /// Why (for the log).
        reason: String,
    },
    /// Remove an old exited container.
    RemoveContainer(ContainerId),
    /// Remember a container's backoff (done with its restart).
    RecordBackoff {
        /// The container's name.
        name: String,
        /// The backoff for its next exit.
        backoff: Backoff,
    },
}

/// What [`plan`] decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// What to do now, in order.
    pub actions: Vec<Action>,
    /// The status to report once the actions are done and nothing changes.
    pub status: PodStatus,
    /// When to plan again at the latest (a backoff or retry ends).
    pub wake_at: Option<SystemTime>,
    /// The pod is being deleted and nothing of it runs any more.
    pub terminated: bool,
}

/// A wall-clock time as the API writes it.
pub fn to_time(t: SystemTime) -> Time {
    Time::new(jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// The pod's grace period for stopping containers: the deletion's when one was given, else the
/// spec's, else 30 s.
pub fn pod_grace(pod: &Pod) -> Duration {
    let spec = pod.spec.termination_grace_period_seconds.unwrap_or(30);
    let seconds = match pod.metadata.deletion_grace_period_seconds {
        // The registry records 0 when the delete named no grace period: the spec's applies.
        Some(g) if g > 0 => g,
        _ => spec,
    };
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// What one container is, for the pod's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Waiting,
    Running,
    /// Exited (or waiting to restart after an exit), with this exit code.
    Stopped(i32),
}

/// What part a container plays in its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// An init container that runs to completion.
    Init,
    /// An init container with `restartPolicy: Always` ([`sidecar`]).
    Sidecar,
    /// An app (regular) container.
    App,
}

struct Planner<'a> {
    input: Input<'a>,
    actions: Vec<Action>,
    wake_at: Option<SystemTime>,
    /// Starting anything is allowed (not deleting, not terminal).
    may_start: bool,
    /// Starting (and restarting) sidecars is allowed: as `may_start`, and the regular
    /// containers are not done for good.
    sidecars_may_start: bool,
}

/// Decides the actions and status for one pod (see the [module docs](super)).
pub fn plan(input: Input<'_>) -> Plan {
    let pod = input.pod;
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let was_terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Succeeded | PodPhase::Failed)
    );
    let mut planner = Planner {
        input,
        actions: Vec::new(),
        wake_at: None,
        may_start: !deleting && !was_terminal,
        sidecars_may_start: false,
    };
    planner.run(deleting, was_terminal)
}

impl<'a> Planner<'a> {
    fn run(&mut self, deleting: bool, was_terminal: bool) -> Plan {
        let input = self.input;
        let pod = input.pod;
        let sandbox = input
            .observed
            .sandbox
            .as_ref()
            .filter(|s| s.state == SandboxState::Ready);
        let has_sandbox = sandbox.is_some();
        let is_sidecar = |name: &str| {
            pod.spec
                .init_containers
                .iter()
                .any(|c| c.name == name && c.is_sidecar())
        };
        // Non-sidecar containers that run (sidecars wait for them to stop).
        let others_running = input
            .observed
            .containers
            .iter()
            .any(|c| c.state == ContainerState::Running && !is_sidecar(&c.config.name));
        if deleting {
            // The regular containers first, then the sidecars one by one.
            for c in &input.observed.containers {
                if c.state == ContainerState::Running && !is_sidecar(&c.config.name) {
                    self.actions.push(Action::KillContainer {
                        id: c.id.clone(),
                        name: c.config.name.clone(),
                        grace: pod_grace(pod),
                        reason: "the pod is being deleted".into(),
                    });
                }
            }
            if !others_running {
                self.stop_next_sidecar(
                    sidecar::remaining_grace(pod, pod_grace(pod), input.now),
                    "the pod is being deleted",
                );
            }
        }

        // Init containers, one at a time; a sidecar lets the next one start once it started.
        let mut init_statuses = Vec::new();
        let mut initialized = true;
        let mut init_failed = false;
        let mut incomplete = Vec::new();
        let mut sidecars_running = 0;
        let mut unready = Vec::new();
        let app_started = pod
            .spec
            .containers
            .iter()
            .any(|c| !self.attempts(&c.name).is_empty());
        // Nothing but sidecars will run again: they are stopped, not restarted.
        let latest = |name: &str| self.attempts(name).last().copied();
        let wind_down = !deleting
            && (was_terminal
                || sidecar::regular_containers_done(pod, self.policy(), latest)
                || sidecar::init_failed(pod, self.policy(), latest));
        self.sidecars_may_start = self.may_start && !wind_down;
        let inits = &pod.spec.init_containers;
        for (i, container) in inits.iter().enumerate() {
            if container.is_sidecar() {
                // A later container ran: this sidecar was started once and, if it exited
                // since, restarts without holding anything back.
                let passed = app_started
                    || inits[i + 1..]
                        .iter()
                        .any(|c| !self.attempts(&c.name).is_empty());
                if !initialized && !passed {
                    init_statuses.push(waiting_status(container, "PodInitializing", ""));
                    incomplete.push(container.name.clone());
                    unready.push(container.name.clone());
                    continue;
                }
                let (status, kind) =
                    self.container_status(container, Role::Sidecar, true, has_sandbox);
                if kind == Kind::Running {
                    sidecars_running += 1;
                }
                if status.started != Some(true) && !passed {
                    initialized = false;
                    incomplete.push(container.name.clone());
                }
                if !status.ready {
                    unready.push(container.name.clone());
                }
                init_statuses.push(status);
                continue;
            }
            if !initialized || app_started {
                // Earlier ones are not done (or the app containers run already: never rerun).
                let status = if app_started {
                    self.container_status(container, Role::Init, false, has_sandbox)
                        .0
                } else {
                    waiting_status(container, "PodInitializing", "")
                };
                if !app_started {
                    incomplete.push(container.name.clone());
                }
                init_statuses.push(status);
                continue;
            }
            let (status, kind) = self.container_status(container, Role::Init, true, has_sandbox);
            match kind {
                Kind::Stopped(0) => {}
                Kind::Stopped(_) if self.policy() == RestartPolicy::Never => {
                    initialized = false;
                    init_failed = true;
                    incomplete.push(container.name.clone());
                }
                _ => {
                    initialized = false;
                    incomplete.push(container.name.clone());
                }
            }
            init_statuses.push(status);
        }
        let initialized = initialized || app_started;

        // App containers.
        let mut statuses = Vec::new();
        let mut kinds = Vec::new();
        for container in &pod.spec.containers {
            let (status, kind) = if initialized {
                self.container_status(container, Role::App, true, has_sandbox)
            } else {
                (
                    waiting_status(container, "PodInitializing", ""),
                    Kind::Waiting,
                )
            };
            if !status.ready {
                unready.push(container.name.clone());
            }
            kinds.push(kind);
            statuses.push(status);
        }

        // Running sidecars count as running for the phase (kubelet's getPhase); exited ones
        // do not: a pod whose regular containers are done is Succeeded or Failed by them.
        let running = kinds.iter().filter(|k| **k == Kind::Running).count() + sidecars_running;
        let mut phase_kinds = kinds.clone();
        phase_kinds.extend(std::iter::repeat_n(Kind::Running, sidecars_running));
        let mut phase = if init_failed {
            PodPhase::Failed
        } else if !initialized {
            PodPhase::Pending
        } else {
            phase_of(&phase_kinds, self.effective_policy(deleting))
        };
        if was_terminal {
            phase = pod.status.as_ref().and_then(|s| s.phase).unwrap_or(phase);
        }
        let terminal = matches!(phase, PodPhase::Succeeded | PodPhase::Failed);
        // Nothing but sidecars is left to run: they stop, the last declared first.
        if wind_down && !others_running {
            self.stop_next_sidecar(pod_grace(pod), sidecar::FINISHED_REASON);
        }
        if terminal
            && !deleting
            && running == 0
            && let Some(sandbox) = sandbox
        {
            self.actions.push(Action::StopSandbox(sandbox.id.clone()));
        }
        let terminated = deleting && running == 0;
        // A new sandbox only for a pod that still has something to run: a terminal pod's
        // stopped sandbox stays stopped (decided after the phase, which may just have turned
        // terminal in this very plan).
        if sandbox.is_none() && self.may_start && !terminal {
            let mut front = Vec::new();
            if let Some(old) = &input.observed.sandbox {
                front.push(Action::RemoveSandbox(old.id.clone()));
            }
            let attempt = input
                .observed
                .sandbox
                .as_ref()
                .map_or(0, |s| s.config.attempt + 1);
            front.push(Action::CreateSandbox { attempt });
            self.actions.splice(0..0, front);
        }

        let previous = pod.status.as_ref();
        let now = to_time(input.now);
        let all_ready = unready.is_empty() && initialized;
        let ready_reason = if terminal {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let unready_message = format!("containers with unready status: [{}]", unready.join(" "));
        let conditions = vec![
            condition(previous, "PodScheduled", true, "", "", now),
            condition(
                previous,
                "Initialized",
                initialized,
                "ContainersNotInitialized",
                &format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                ),
                now,
            ),
            condition(
                previous,
                "ContainersReady",
                all_ready && !terminal,
                ready_reason,
                &unready_message,
                now,
            ),
            ready_condition(
                pod,
                previous,
                all_ready && !terminal,
                ready_reason,
                &unready_message,
                now,
            ),
        ];
        let ip = input
            .observed
            .sandbox
            .as_ref()
            .and_then(|s| s.ip)
            .map(|ip| ip.to_string())
            .or_else(|| {
                previous
                    .map(|s| s.pod_ip.clone())
                    .filter(|ip| !ip.is_empty())
            })
            .unwrap_or_default();
        let status = PodStatus {
            phase: Some(phase),
            conditions,
            host_ip: input.host_ip.to_owned(),
            host_ips: if input.host_ip.is_empty() {
                vec![]
            } else {
                vec![PodIp {
                    ip: input.host_ip.to_owned(),
                }]
            },
            pod_ips: if ip.is_empty() {
                vec![]
            } else {
                vec![PodIp { ip: ip.clone() }]
            },
            pod_ip: ip,
            start_time: previous.and_then(|s| s.start_time).or(Some(now)),
            init_container_statuses: init_statuses,
            container_statuses: statuses,
            qos_class: qos_class(pod).to_owned(),
            ..PodStatus::default()
        };
        Plan {
            actions: std::mem::take(&mut self.actions),
            status,
            wake_at: self.wake_at,
            terminated,
        }
    }

    fn policy(&self) -> RestartPolicy {
        self.input
            .pod
            .spec
            .restart_policy
            .unwrap_or(RestartPolicy::Always)
    }

    /// The policy the phase is computed with: a pod being deleted will not restart anything.
    fn effective_policy(&self, deleting: bool) -> RestartPolicy {
        if deleting {
            RestartPolicy::Never
        } else {
            self.policy()
        }
    }

    /// This container's runtime records, oldest attempt first.
    fn attempts(&self, name: &str) -> Vec<&'a ContainerStatus> {
        let mut found: Vec<_> = self
            .input
            .observed
            .containers
            .iter()
            .filter(|c| c.config.name == name)
            .collect();
        found.sort_by_key(|c| (c.config.attempt, c.created_at));
        found
    }

    /// Stops the last declared sidecar that still runs, if any (one per plan: the next one
    /// stops once this one has).
    fn stop_next_sidecar(&mut self, grace: Duration, reason: &str) {
        let input = self.input;
        let running = |name: &str| {
            input
                .observed
                .containers
                .iter()
                .find(|c| c.config.name == name && c.state == ContainerState::Running)
        };
        if let Some((spec, status)) =
            sidecar::next_to_stop(&input.pod.spec.init_containers, running)
        {
            self.actions.push(Action::KillContainer {
                id: status.id.clone(),
                name: spec.name.clone(),
                grace,
                reason: reason.to_owned(),
            });
        }
    }

    /// Whether containers of this role may be started (or restarted) now.
    fn may_start_role(&self, role: Role) -> bool {
        match role {
            Role::Sidecar => self.sidecars_may_start,
            Role::Init | Role::App => self.may_start,
        }
    }

    fn wake(&mut self, at: SystemTime) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// One container's API status and kind; pushes the actions it needs when `act`.
    fn container_status(
        &mut self,
        spec: &Container,
        role: Role,
        act: bool,
        has_sandbox: bool,
    ) -> (ApiStatus, Kind) {
        let input = self.input;
        let init = role != Role::App;
        let may_start = self.may_start_role(role);
        let attempts = self.attempts(&spec.name);
        // Keep the latest two attempts (the current one and the last state).
        if act && attempts.len() > 2 {
            for old in &attempts[..attempts.len() - 2] {
                if old.state != ContainerState::Running {
                    self.actions.push(Action::RemoveContainer(old.id.clone()));
                }
            }
        }
        let latest = attempts.last().copied();
        let previous = attempts
            .len()
            .checked_sub(2)
            .and_then(|i| attempts.get(i))
            .copied();
        let failure = input.failures.get(&spec.name);
        let next_attempt = latest.map_or(0, |c| c.config.attempt + 1);
        let can_start = act && may_start && has_sandbox;
        let mut status = ApiStatus {
            name: spec.name.clone(),
            image: spec.image.clone(),
            restart_count: latest
                .map_or(0, |c| i32::try_from(c.config.attempt).unwrap_or(i32::MAX)),
            started: (role != Role::Init).then_some(false),
            ..ApiStatus::default()
        };
        let last_state = |c: Option<&ContainerStatus>| {
            c.filter(|c| c.state == ContainerState::Exited)
                .map(|c| terminated_state(c, input.runtime))
        };

        // A failed start waiting for its retry shows the runtime's reason.
        if let Some(failure) = failure
            && latest.is_none_or(|c| c.state != ContainerState::Running)
        {
            if input.now < failure.retry_at {
                self.wake(failure.retry_at);
                status.state = Some(waiting(&failure.reason, &failure.message));
                status.last_state = last_state(latest);
                let kind = match latest {
                    Some(c) if c.state == ContainerState::Exited => {
                        Kind::Stopped(c.exit_code.unwrap_or(0))
                    }
                    _ => Kind::Waiting,
                };
                return (status, kind);
            }
            if can_start {
                self.actions.push(Action::StartContainer {
                    name: spec.name.clone(),
                    init,
                    attempt: next_attempt,
                });
            }
            status.state = Some(waiting(&failure.reason, &failure.message));
            status.last_state = last_state(latest);
            return (status, Kind::Waiting);
        }

        let Some(latest) = latest else {
            if can_start {
                self.actions.push(Action::StartContainer {
                    name: spec.name.clone(),
                    init,
                    attempt: 0,
                });
            }
            let reason = if init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            status.state = Some(waiting(reason, ""));
            return (status, Kind::Waiting);
        };
        status.container_id = format!("{}://{}", input.runtime, latest.id);
        match latest.state {
            ContainerState::Running => {
                status.state = Some(ApiState {
                    running: Some(ContainerStateRunning {
                        started_at: latest.started_at.map(to_time),
                    }),
                    ..ApiState::default()
                });
                status.last_state = last_state(previous);
                let probes = input
                    .probes
                    .get(&spec.name)
                    .filter(|p| p.container == latest.id);
                let started = spec.startup_probe.is_none() || probes.is_some_and(|p| p.started);
                let ready = if spec.readiness_probe.is_some() {
                    started && probes.is_some_and(|p| p.ready)
                } else {
                    started
                };
                if role != Role::Init {
                    status.started = Some(started);
                    status.ready = ready;
                }
                if let Some(why) = probes.and_then(|p| p.failed.as_ref())
                    && act
                    && may_start
                {
                    let probe_grace = spec
                        .liveness_probe
                        .as_ref()
                        .and_then(|p| p.termination_grace_period_seconds)
                        .and_then(|g| u64::try_from(g).ok())
                        .map(Duration::from_secs);
                    self.actions.push(Action::KillContainer {
                        id: latest.id.clone(),
                        name: spec.name.clone(),
                        grace: probe_grace.unwrap_or_else(|| pod_grace(input.pod)),
                        reason: why.clone(),
                    });
                }
                (status, Kind::Running)
            }
            ContainerState::Created | ContainerState::Unknown => {
                // Left behind by an interrupted start: replace it.
                if act && may_start {
                    self.actions
                        .push(Action::RemoveContainer(latest.id.clone()));
                }
                status.state = Some(waiting("ContainerCreating", ""));
                status.last_state = last_state(previous);
                (status, Kind::Waiting)
            }
            ContainerState::Exited => {
                let code = latest.exit_code.unwrap_or(0);
                let restart = match (role, self.policy()) {
                    // A sidecar restarts whenever it exits, whatever the pod's policy.
                    (Role::Sidecar, _) => true,
                    (_, RestartPolicy::Always) => !init || code != 0,
                    (_, RestartPolicy::OnFailure) => code != 0,
                    (_, RestartPolicy::Never) => false,
                };
                let finished = latest.finished_at.unwrap_or(latest.created_at);
                if restart && may_start {
                    match backoff::decide(
                        input.backoff.get(&spec.name).copied(),
                        latest.started_at,
                        finished,
                        input.now,
                    ) {
                        RestartDecision::Now(next) => {
                            if can_start {
                                self.actions.push(Action::RecordBackoff {
                                    name: spec.name.clone(),
                                    backoff: next,
                                });
                                self.actions.push(Action::StartContainer {
                                    name: spec.name.clone(),
                                    init,
                                    attempt: next_attempt,
                                });
                            }
                        }
                        RestartDecision::Wait { until, delay } => {
                            self.wake(until);
                            let pod = &input.pod.metadata;
                            status.state = Some(waiting(
                                "CrashLoopBackOff",
                                &format!(
                                    "back-off {} restarting failed container={} pod={}_{}({})",
                                    backoff::go_duration(delay),
                                    spec.name,
                                    pod.name,
                                    pod.namespace,
                                    pod.uid
                                ),
                            ));
                            status.last_state = last_state(Some(latest));
                            return (status, Kind::Stopped(code));
                        }
                    }
                }
                status.state = last_state(Some(latest));
                status.last_state = last_state(previous);
                (status, Kind::Stopped(code))
            }
        }
    }
}

/// Kubelet's `getPhase` over the app containers.
fn phase_of(kinds: &[Kind], policy: RestartPolicy) -> PodPhase {
    let waiting = kinds.iter().filter(|k| **k == Kind::Waiting).count();
    let running = kinds.iter().filter(|k| **k == Kind::Running).count();
    let stopped = kinds.len() - waiting - running;
    let succeeded = kinds.iter().filter(|k| **k == Kind::Stopped(0)).count();
    if waiting > 0 {
        PodPhase::Pending
    } else if running > 0 {
        PodPhase::Running
    } else if stopped > 0 {
        if policy == RestartPolicy::Always {
            PodPhase::Running
        } else if stopped == succeeded {
            PodPhase::Succeeded
        } else if policy == RestartPolicy::Never {
            PodPhase::Failed
        } else {
            PodPhase::Running
        }
    } else {
        PodPhase::Pending
    }
}

fn waiting(reason: &str, message: &str) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.to_owned(),
            message: message.to_owned(),
        }),
        ..ApiState::default()
    }
}

fn waiting_status(spec: &Container, reason: &str, message: &str) -> ApiStatus {
    ApiStatus {
        name: spec.name.clone(),
        image: spec.image.clone(),
        state: Some(waiting(reason, message)),
        ..ApiStatus::default()
    }
}

fn terminated_state(c: &ContainerStatus, runtime: &str) -> ApiState {
    let code = c.exit_code.unwrap_or(0);
    let reason = if !c.reason.is_empty() && c.reason != "Error" && c.reason != "Completed" {
        c.reason.clone()
    } else if code == 0 {
        "Completed".to_owned()
    } else {
        "Error".to_owned()
    };
    ApiState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            signal: None,
            reason,
            message: c.message.clone(),
            started_at: c.started_at.map(to_time),
            finished_at: c.finished_at.map(to_time),
            container_id: format!("{runtime}://{}", c.id),
        }),
        ..ApiState::default()
    }
}

/// `Ready`: the containers are ready and so is every readiness gate (whose conditions others
/// write into the pod's status; the status planned from holds the latest of them).
fn ready_condition(
    pod: &Pod,
    previous: Option<&PodStatus>,
    containers_ready: bool,
    reason: &str,
    message: &str,
    now: Time,
) -> PodCondition {
    let gates = containers_ready
        .then(|| {
            let conditions = previous.map_or(&[][..], |s| &s.conditions[..]);
            super::readiness::unmet_gates(pod, conditions)
        })
        .flatten();
    match gates {
        Some(why) => condition(
            previous,
            "Ready",
            false,
            super::readiness::READINESS_GATES_NOT_READY,
            &why,
            now,
        ),
        None => condition(previous, "Ready", containers_ready, reason, message, now),
    }
}

fn condition(
    previous: Option<&PodStatus>,
    type_: &str,
    holds: bool,
    reason: &str,
    message: &str,
    now: Time,
) -> PodCondition {
    let status = if holds {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let since = previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time);
    PodCondition {
        type_: type_.to_owned(),
        status,
        last_probe_time: None,
        last_transition_time: since.or(Some(now)),
        reason: if holds {
            String::new()
        } else {
            reason.to_owned()
        },
        message: if holds {
            String::new()
        } else {
            message.to_owned()
        },
    }
}

/// Kubernetes' QoS class from the containers' requests and limits.
fn qos_class(pod: &Pod) -> &'static str {
    let containers = || pod.spec.containers.iter().chain(&pod.spec.init_containers);
    if containers().all(|c| c.resources.is_empty()) {
        return "BestEffort";
    }
    let guaranteed = containers().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = c.resources.limits.get(*r);
            limit.is_some()
                && c.resources
                    .requests
                    .get(*r)
                    .is_none_or(|q| Some(q) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
