//! [`FakeRuntime`]: a [`RuntimeDriver`] without processes, for tests and for simulating many
//! nodes and pods on one machine (as kwok does for Kubernetes).
//!
//! A fake container is a small record. Its stages (start latency, running, exiting on its own,
//! readiness and health as exec probes see them) follow from its [`FakeBehaviour`] and from
//! tokio's clock, computed when someone asks: no task, timer or process per container, so paused
//! time drives it deterministically and a machine holds hundreds of thousands of them.
//!
//! The behaviour is chosen per container by, in order: a closure registered with
//! [`FakeRuntime::with_chooser`], the container's `FAKE_BEHAVIOUR` environment variable, its
//! image when it starts with `fake/` (`fake/exit:3?after=5s`, see [`FakeBehaviour::parse`]),
//! and otherwise the default (runs until stopped). [`FakeRuntime::set_exec_exit_code`]
//! overrides exec answers of one container, for probes driven step by step from a test.
//!
//! ```
//! use std::time::Duration;
//! use orchestra_node::fake::FakeRuntime;
//! use orchestra_node::{ContainerConfig, ContainerState, RuntimeDriver, SandboxConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let runtime = FakeRuntime::new();
//! let sandbox = runtime.run_pod_sandbox(&SandboxConfig { uid: "u1".into(), ..Default::default() }).await?;
//! let config = ContainerConfig { name: "job".into(), image: "fake/exit:3?after=5s".into(), ..Default::default() };
//! let id = runtime.create_container(&sandbox, &config).await?;
//! runtime.start_container(&id).await?;
//! assert_eq!(runtime.container_status(&id).await?.state, ContainerState::Running);
//! tokio::time::sleep(Duration::from_secs(5)).await;
//! let status = runtime.container_status(&id).await?;
//! assert_eq!((status.state, status.exit_code), (ContainerState::Exited, Some(3)));
//! # Ok::<(), orchestra_node::RuntimeError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`behaviour`]: [`FakeBehaviour`] and its image-name syntax.

pub mod behaviour;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

pub use behaviour::{BEHAVIOUR_ENV, BehaviourError, FakeBehaviour};

use crate::pod::clock;
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerState, ContainerStatus, ContainerSummary, ExecResult,
    LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeState, RuntimeSummary,
    SandboxConfig, SandboxId, SandboxState, SandboxStatus, SandboxSummary,
};

/// Chooses a container's behaviour from its sandbox and configuration; `None` falls back to
/// the environment variable and image name.
pub type Chooser =
    dyn Fn(&SandboxConfig, &ContainerConfig) -> Option<FakeBehaviour> + Send + Sync + 'static;

/// Exit code of a container killed at the end of its grace period (128 + KILL).
const KILLED: i32 = 137;
/// Exit code of a container that exited on its stop signal (128 + TERM).
const TERMINATED: i32 = 143;

struct FakeSandbox {
    config: SandboxConfig,
    created_at: SystemTime,
    ready: bool,
    ip: Ipv4Addr,
    containers: Vec<ContainerId>,
}

struct FakeContainer {
    sandbox: SandboxId,
    config: ContainerConfig,
    behaviour: FakeBehaviour,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    /// An exit forced from outside (stop, kill, failed start): time, code, reason, message.
    forced_exit: Option<(SystemTime, i32, &'static str, String)>,
    exec_override: Option<i32>,
}

/// What a container is doing at a given time.
enum Stage {
    Created,
    Running(SystemTime),
    Exited {
        started: Option<SystemTime>,
        finished: SystemTime,
        code: i32,
        reason: &'static str,
        message: String,
    },
}

impl FakeContainer {
    fn stage(&self, now: SystemTime) -> Stage {
        if let Some((finished, code, reason, message)) = &self.forced_exit {
            // An exit on its own before the forced one wins: it happened first.
            if let Some(natural) = self.natural_exit()
                && natural <= *finished
            {
                return self.exited_naturally(natural);
            }
            return Stage::Exited {
                started: self.started_at,
                finished: *finished,
                code: *code,
                reason,
                message: message.clone(),
            };
        }
        match (self.started_at, self.natural_exit()) {
            (None, _) => Stage::Created,
            (Some(_), Some(exit)) if exit <= now => self.exited_naturally(exit),
            (Some(started), _) => Stage::Running(started),
        }
    }

    fn natural_exit(&self) -> Option<SystemTime> {
        Some(self.started_at? + self.behaviour.run_for?)
    }

    fn exited_naturally(&self, finished: SystemTime) -> Stage {
        let code = self.behaviour.exit_code;
        Stage::Exited {
            started: self.started_at,
            finished,
            code,
            reason: if code == 0 { "Completed" } else { "Error" },
            message: String::new(),
        }
    }

    fn status(&self, id: &ContainerId, now: SystemTime) -> ContainerStatus {
        let mut status = ContainerStatus {
            id: id.clone(),
            sandbox: self.sandbox.clone(),
            config: self.config.clone(),
            state: ContainerState::Created,
            created_at: self.created_at,
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
            log_path: None,
        };
        match self.stage(now) {
            Stage::Created => {}
            Stage::Running(started) => {
                status.state = ContainerState::Running;
                status.started_at = Some(started);
            }
            Stage::Exited {
                started,
                finished,
                code,
                reason,
                message,
            } => {
                status.state = ContainerState::Exited;
                status.started_at = started;
                status.finished_at = Some(finished);
                status.exit_code = Some(code);
                status.reason = reason.to_owned();
                status.message = message;
            }
        }
        status
    }
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<SandboxId, FakeSandbox>,
    containers: HashMap<ContainerId, FakeContainer>,
}

/// The fake runtime (see the [module docs](self)). Cheap to clone: clones share their state.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    next_id: Arc<AtomicU64>,
    chooser: Option<Arc<Chooser>>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeRuntime")
            .field("sandboxes", &state.sandboxes.len())
            .field("containers", &state.containers.len())
            .finish()
    }
}

impl FakeRuntime {
    /// An empty fake runtime.
    pub fn new() -> Self {
        FakeRuntime::default()
    }

    /// This runtime with a closure that chooses behaviours before the image name is looked at.
    pub fn with_chooser(
        mut self,
        chooser: impl Fn(&SandboxConfig, &ContainerConfig) -> Option<FakeBehaviour>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.chooser = Some(Arc::new(chooser));
        self
    }

    /// Makes exec in container `id` answer `code` (`None`: back to its behaviour's answer).
    pub fn set_exec_exit_code(
        &self,
        id: &ContainerId,
        code: Option<i32>,
    ) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("container", id.as_str()))?;
        container.exec_override = code;
        Ok(())
    }

    /// How many sandboxes and containers the runtime holds.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.sandboxes.len(), state.containers.len())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is a
        // single insert, remove or field write), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn exited_at(&self, id: &ContainerId) -> Result<bool, RuntimeError> {
        let state = self.lock();
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id.as_str()))?;
        Ok(matches!(
            container.stage(clock::now()),
            Stage::Exited { .. }
        ))
    }
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

/// The n-th sandbox's IP, in 10.64.0.0/10 (room for four million sandboxes).
fn sandbox_ip(n: u64) -> Ipv4Addr {
    let n = (n & 0x3f_ffff) as u32;
    Ipv4Addr::from(0x0a40_0000 | n)
}

#[async_trait]
impl RuntimeDriver for FakeRuntime {
    fn name(&self) -> &str {
        "fake"
    }

    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        let n = self.next();
        let id = SandboxId(format!("s{n:x}"));
        let sandbox = FakeSandbox {
            config: config.clone(),
            created_at: clock::now(),
            ready: true,
            ip: sandbox_ip(n),
            containers: Vec::new(),
        };
        self.lock().sandboxes.insert(id.clone(), sandbox);
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let now = clock::now();
        let mut state = self.lock();
        let State {
            sandboxes,
            containers,
        } = &mut *state;
        let Some(sandbox) = sandboxes.get_mut(id) else {
            return Ok(());
        };
        sandbox.ready = false;
        for cid in &sandbox.containers {
            if let Some(container) = containers.get_mut(cid)
                && !matches!(container.stage(now), Stage::Exited { .. })
            {
                container.forced_exit = Some((now, KILLED, "Error", "sandbox stopped".into()));
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        if let Some(sandbox) = state.sandboxes.remove(id) {
            for cid in &sandbox.containers {
                state.containers.remove(cid);
            }
        }
        Ok(())
    }

    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus, RuntimeError> {
        let state = self.lock();
        let sandbox = state
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("sandbox", id.as_str()))?;
        Ok(sandbox_status(id, sandbox))
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let sandbox_config = {
            let state = self.lock();
            let owner = state
                .sandboxes
                .get(sandbox)
                .ok_or_else(|| not_found("sandbox", sandbox.as_str()))?;
            if !owner.ready {
                return Err(RuntimeError::InvalidState {
                    id: sandbox.to_string(),
                    message: "the sandbox is stopped".into(),
                });
            }
            self.chooser.as_ref().map(|_| owner.config.clone())
        };
        let chosen = match (&self.chooser, &sandbox_config) {
            (Some(chooser), Some(sandbox_config)) => chooser(sandbox_config, config),
            _ => None,
        };
        let behaviour = match chosen {
            Some(behaviour) => behaviour,
            None => {
                FakeBehaviour::for_container(config).map_err(|e| RuntimeError::InvalidConfig {
                    what: format!("fake behaviour of container {:?}", config.name),
                    message: e.to_string(),
                })?
            }
        };
        if let Some(message) = &behaviour.missing_image {
            return Err(RuntimeError::Image {
                image: config.image.clone(),
                message: message.clone(),
            });
        }
        let id = ContainerId(format!("c{:x}", self.next()));
        let container = FakeContainer {
            sandbox: sandbox.clone(),
            config: config.clone(),
            behaviour,
            created_at: clock::now(),
            started_at: None,
            forced_exit: None,
            exec_override: None,
        };
        let mut state = self.lock();
        let Some(owner) = state.sandboxes.get_mut(sandbox) else {
            return Err(not_found("sandbox", sandbox.as_str()));
        };
        owner.containers.push(id.clone());
        state.containers.insert(id.clone(), container);
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let latency = {
            let state = self.lock();
            let container = state
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id.as_str()))?;
            if container.started_at.is_some() || container.forced_exit.is_some() {
                return Err(RuntimeError::InvalidState {
                    id: id.to_string(),
                    message: "the container was started already".into(),
                });
            }
            container.behaviour.start_latency
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let now = clock::now();
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("container", id.as_str()))?;
        if let Some(message) = container.behaviour.fail_start.clone() {
            container.forced_exit = Some((now, 128, "StartError", message.clone()));
            return Err(RuntimeError::StartFailed {
                id: id.to_string(),
                message,
            });
        }
        container.started_at = Some(now);
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let now = clock::now();
        let ignore_term = {
            let mut state = self.lock();
            let Some(container) = state.containers.get_mut(id) else {
                return Ok(());
            };
            match container.stage(now) {
                Stage::Exited { .. } => return Ok(()),
                Stage::Created => {
                    container.forced_exit = Some((now, KILLED, "Error", String::new()));
                    return Ok(());
                }
                Stage::Running(_) if !container.behaviour.ignore_term || grace.is_zero() => {
                    let code = if grace.is_zero() { KILLED } else { TERMINATED };
                    container.forced_exit = Some((now, code, "Error", String::new()));
                    return Ok(());
                }
                Stage::Running(_) => true,
            }
        };
        debug_assert!(ignore_term);
        tokio::time::sleep(grace).await;
        let now = clock::now();
        let mut state = self.lock();
        if let Some(container) = state.containers.get_mut(id)
            && container.forced_exit.is_none()
        {
            container.forced_exit = Some((
                now,
                KILLED,
                "Error",
                format!("killed after the grace period of {grace:?}"),
            ));
        }
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        if let Some(container) = state.containers.remove(id)
            && let Some(sandbox) = state.sandboxes.get_mut(&container.sandbox)
        {
            sandbox.containers.retain(|c| c != id);
        }
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        let state = self.lock();
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id.as_str()))?;
        Ok(container.status(id, clock::now()))
    }

    async fn list(&self) -> Result<RuntimeState, RuntimeError> {
        let now = clock::now();
        let state = self.lock();
        Ok(RuntimeState {
            sandboxes: state
                .sandboxes
                .iter()
                .map(|(id, sandbox)| sandbox_status(id, sandbox))
                .collect(),
            containers: state
                .containers
                .iter()
                .map(|(id, container)| container.status(id, now))
                .collect(),
        })
    }

    async fn list_summary(&self) -> Result<RuntimeSummary, RuntimeError> {
        // No configuration is cloned: this runs once a second on every simulated node.
        let now = clock::now();
        let state = self.lock();
        Ok(RuntimeSummary {
            sandboxes: state
                .sandboxes
                .iter()
                .map(|(id, sandbox)| SandboxSummary {
                    id: id.clone(),
                    pod_uid: sandbox.config.uid.clone(),
                    state: if sandbox.ready {
                        SandboxState::Ready
                    } else {
                        SandboxState::NotReady
                    },
                })
                .collect(),
            containers: state
                .containers
                .iter()
                .map(|(id, container)| ContainerSummary {
                    id: id.clone(),
                    sandbox: container.sandbox.clone(),
                    state: match container.stage(now) {
                        Stage::Created => ContainerState::Created,
                        Stage::Running(_) => ContainerState::Running,
                        Stage::Exited { .. } => ContainerState::Exited,
                    },
                })
                .collect(),
        })
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        _command: &[String],
        _timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        let now = clock::now();
        let state = self.lock();
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id.as_str()))?;
        let Stage::Running(started) = container.stage(now) else {
            return Err(RuntimeError::InvalidState {
                id: id.to_string(),
                message: "the container is not running".into(),
            });
        };
        let ran = now.duration_since(started).unwrap_or_default();
        let behaviour = &container.behaviour;
        let code = container.exec_override.unwrap_or_else(|| {
            let unready = ran < behaviour.ready_after;
            let unhealthy = behaviour.healthy_for.is_some_and(|h| ran >= h);
            i32::from(unready || unhealthy)
        });
        Ok(ExecResult {
            exit_code: code,
            ..ExecResult::default()
        })
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogStream, RuntimeError> {
        let (line, written) = {
            let state = self.lock();
            let container = state
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id.as_str()))?;
            let line = format!(
                "fake container {} (image {}) has no output\n",
                container.config.name, container.config.image
            );
            // The one line counts as written when the container started (or was created).
            (line, container.started_at.unwrap_or(container.created_at))
        };
        let written = jiff::Timestamp::try_from(written).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut text = Vec::new();
        let selected =
            options.since.is_none_or(|since| written >= since) && options.tail_lines != Some(0);
        if selected {
            if options.timestamps {
                text.extend_from_slice(format!("{written} ").as_bytes());
            }
            text.extend_from_slice(line.as_bytes());
        }
        if let Some(limit) = options.limit_bytes {
            text.truncate(limit);
        }
        let chunk = (!text.is_empty()).then(|| Ok(Bytes::from(text)));
        Ok(Box::pin(futures::stream::iter(chunk)))
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        if image.starts_with("fake/missing") {
            return Err(RuntimeError::Image {
                image: image.to_owned(),
                message: format!("pull access denied: image {image:?} not found"),
            });
        }
        Ok(())
    }
}

impl FakeRuntime {
    /// Waits (on tokio's clock) until container `id` has exited, polling every 10 ms: for tests.
    pub async fn wait_exited(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        while !self.exited_at(id)? {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

fn sandbox_status(id: &SandboxId, sandbox: &FakeSandbox) -> SandboxStatus {
    SandboxStatus {
        id: id.clone(),
        config: sandbox.config.clone(),
        state: if sandbox.ready {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        },
        created_at: sandbox.created_at,
        ip: Some(IpAddr::V4(sandbox.ip)),
    }
}

#[cfg(test)]
mod tests;
