//! [`ProcessRuntime`] and its configuration: the [`RuntimeDriver`] over local processes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::follow;
use super::ip::IpRange;
use super::limits::LimitsMode;
use super::logfile;
use super::mounts;
use super::procfs;
use super::reap;
use super::record::{ContainerRecord, RecordDir, SandboxRecord, StoredState};
use super::signal::parse_signal;
use super::stamps;
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerSecurity, ContainerState, ContainerStatus,
    ContainerSummary, ExecResult, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeState,
    RuntimeSummary, SandboxConfig, SandboxId, SandboxState, SandboxStatus, SandboxSummary,
};

/// How long `stop_container` waits for a process to end after SIGKILL before reporting a
/// timeout (a process stuck in the kernel, state D, ignores even KILL for a while).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// `PATH` for containers when the runtime itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a [`ProcessRuntime`] is set up.
#[derive(Clone, Debug)]
pub struct ProcessRuntimeConfig {
    /// Where the sandbox and container records (and, by default, the logs) are kept. A new
    /// runtime on the same directory re-adopts what an earlier one left running.
    pub state_dir: PathBuf,
    /// The loopback range pod IPs come from (default 127.3.0.0/16).
    pub ip_range: IpRange,
    /// A log file larger than this is rotated (default 10 MiB, kubelet's
    /// `containerLogMaxSize`). Rotation copies the file to `<file>.1` and truncates it, since
    /// the process writes into the file directly (so that it survives a runtime restart); a
    /// few bytes written during the copy can be lost.
    pub log_max_bytes: u64,
    /// How many rotated copies are kept (default 5, kubelet's `containerLogMaxFiles`).
    pub log_max_files: usize,
    /// How often log sizes are checked (default 1 s); [`ProcessRuntime::rotate_logs`] checks now.
    pub log_check_interval: Duration,
    /// How often running containers' logs are looked at for new lines to stamp with the time
    /// (default 100 ms): a line's time (`timestamps`, `sinceTime`) is when the runtime first
    /// saw it, at most this long after it was written (reading a log stamps it too).
    pub log_stamp_interval: Duration,
    /// The cgroup v2 directory under which containers get their cgroups (default
    /// `/sys/fs/cgroup/orchestra`); `None` to use rlimits only. See [`LimitsMode`].
    pub cgroup_root: Option<PathBuf>,
}

impl ProcessRuntimeConfig {
    /// The defaults, with state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ProcessRuntimeConfig {
            state_dir: state_dir.into(),
            ip_range: IpRange::default(),
            log_max_bytes: 10 * 1024 * 1024,
            log_max_files: 5,
            log_check_interval: Duration::from_secs(1),
            log_stamp_interval: Duration::from_millis(100),
            cgroup_root: Some(PathBuf::from("/sys/fs/cgroup/orchestra")),
        }
    }
}

/// The [`RuntimeDriver`] that runs containers as local processes (see the [module
/// docs](super) for what that means for IPs, logs, limits and restarts).
///
/// Create it inside a tokio runtime: it spawns tasks that watch the processes and rotate logs,
/// which end when it is dropped (the processes keep running, for the next runtime to adopt).
pub struct ProcessRuntime {
    shared: Arc<Shared>,
}

struct Shared {
    config: ProcessRuntimeConfig,
    limits: LimitsMode,
    records: RecordDir,
    state: Mutex<State>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// How far each log's time index goes (by log path), cached; held while stamping or
    /// rotating a log, so that its index moves with it.
    stamped: Mutex<HashMap<PathBuf, u64>>,
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, SandboxRecord>,
    containers: HashMap<String, Entry>,
}

struct Entry {
    record: ContainerRecord,
    /// Becomes `true` when the process has ended (or the container is removed).
    exited: watch::Sender<bool>,
}

impl ProcessRuntime {
    /// Opens the runtime on `config.state_dir` (creating it), re-adopting the processes that an
    /// earlier runtime left running there and marking those that ended meanwhile as exited.
    pub async fn new(config: ProcessRuntimeConfig) -> Result<Self, RuntimeError> {
        let records = RecordDir::open(&config.state_dir)?;
        let limits = LimitsMode::detect(config.cgroup_root.as_deref());
        let mut state = State::default();
        for sandbox in records.load_sandboxes()? {
            state.sandboxes.insert(sandbox.id.clone(), sandbox);
        }
        let mut adopt = Vec::new();
        for mut record in records.load_containers()? {
            if record.state == StoredState::Running {
                match (record.pid, record.pid_start_ticks) {
                    (Some(pid), Some(ticks)) if procfs::is_same_live_process(pid, ticks) => {
                        adopt.push((record.id.clone(), pid, ticks));
                    }
                    _ => {
                        record.mark_exited(
                            None,
                            "Unknown",
                            "the process ended while no runtime watched it; its exit code is unknown"
                                .to_owned(),
                        );
                        records.save_container(&record)?;
                    }
                }
            }
            let (exited, _) = watch::channel(record.state == StoredState::Exited);
            state
                .containers
                .insert(record.id.clone(), Entry { record, exited });
        }
        tracing::info!(
            state_dir = %config.state_dir.display(),
            limits = limits.name(),
            adopted = adopt.len(),
            "process runtime started"
        );
        let shared = Arc::new(Shared {
            config,
            limits,
            records,
            state: Mutex::new(state),
            tasks: Mutex::new(Vec::new()),
            stamped: Mutex::new(HashMap::new()),
        });
        for (id, pid, ticks) in adopt {
            let watcher = Arc::clone(&shared);
            shared.spawn(async move {
                let ending = reap::wait_adopted(pid, ticks).await;
                watcher.process_ended(&id, pid, ending);
            });
        }
        let rotator = Arc::downgrade(&shared);
        let interval = shared.config.log_check_interval;
        shared.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = rotator.upgrade() else {
                    return;
                };
                if let Err(e) = shared.rotate_logs() {
                    tracing::warn!(error = %e, "log rotation failed");
                }
            }
        });
        let stamper = Arc::downgrade(&shared);
        let interval = shared.config.log_stamp_interval;
        shared.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(shared) = stamper.upgrade() else {
                    return;
                };
                for path in shared.running_logs() {
                    shared.stamp_log(&path, false);
                }
            }
        });
        Ok(ProcessRuntime { shared })
    }

    /// How containers' cpu and memory limits are enforced on this machine.
    pub fn limits_mode(&self) -> &LimitsMode {
        &self.shared.limits
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProcessRuntimeConfig {
        &self.shared.config
    }

    /// Rotates the log files of running containers that have outgrown
    /// [`ProcessRuntimeConfig::log_max_bytes`] now (the runtime also does it every
    /// `log_check_interval`); returns how many it rotated.
    pub fn rotate_logs(&self) -> Result<usize, RuntimeError> {
        self.shared.rotate_logs()
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still consistent enough to use.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Sends `signal` to the process group led by `pid`; a group that is already gone is fine.
fn signal_group(pid: i32, signal: Signal) {
    let Some(pid) = Pid::from_raw(pid) else {
        return;
    };
    if let Err(e) = kill_process_group(pid, signal)
        && e != rustix::io::Errno::SRCH
    {
        tracing::warn!(pid = pid.as_raw_nonzero().get(), ?signal, error = %e, "signalling a process group failed");
    }
}

async fn wait_exited(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the container was removed, so it no longer runs.
    let _ = rx.wait_for(|exited| *exited).await.map(|_| ());
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    /// Records that container `id`'s process `pid` ended, and kills what is left of its group.
    fn process_ended(&self, id: &str, pid: i32, (code, reason, message): reap::Ending) {
        // The leader is reaped by now, so its pid is free again; the group id stays in use while
        // any member lives, and a new process reusing the number would lead a group of that
        // id only if it was also spawned with `process_group(0)` in the instant between: a
        // risk taken, since std and tokio reap on wait and offer no wait-without-reaping.
        signal_group(pid, Signal::KILL);
        let mut state = self.state();
        let Some(entry) = state.containers.get_mut(id) else {
            return;
        };
        if entry.record.state == StoredState::Running {
            entry.record.mark_exited(code, reason, message);
            if let Err(e) = self.records.save_container(&entry.record) {
                tracing::warn!(container = id, error = %e, "recording a container's exit failed");
            }
        }
        let log = entry.record.log_path.clone();
        entry.exited.send_replace(true);
        drop(state);
        // Its last output, a line without a newline included.
        self.stamp_log(&log, true);
    }

    /// The log files of running containers.
    fn running_logs(&self) -> Vec<PathBuf> {
        self.state()
            .containers
            .values()
            .filter(|e| e.record.state == StoredState::Running)
            .map(|e| e.record.log_path.clone())
            .collect()
    }

    /// Stamps the new lines of the log at `path` with the time (see `stamps`); `all` takes a
    /// last line without a newline too. Failures are logged: the lines are stamped later.
    fn stamp_log(&self, path: &std::path::Path, all: bool) {
        let mut stamped = lock(&self.stamped);
        let from = match stamped.get(path) {
            Some(offset) => *offset,
            None => stamps::stamped_up_to(&stamps::index_path(path)).unwrap_or(0),
        };
        match stamps::stamp(path, from, jiff::Timestamp::now(), all) {
            Ok(to) => {
                stamped.insert(path.to_owned(), to);
            }
            Err(e) => {
                tracing::warn!(log = %path.display(), error = %e, "stamping log lines failed");
            }
        }
    }

    fn rotate_logs(&self) -> Result<usize, RuntimeError> {
        let mut rotated = 0;
        for path in self.running_logs() {
            let io = |source| RuntimeError::Io {
                context: format!("rotating {}", path.display()),
                source,
            };
            let big = std::fs::metadata(&path).is_ok_and(|m| m.len() > self.config.log_max_bytes);
            if !big {
                continue;
            }
            // Everything in the file gets its time before the copy; the index moves with it.
            self.stamp_log(&path, true);
            let mut stamped = lock(&self.stamped);
            let keep = self.config.log_max_files;
            let done =
                logfile::rotate_if_needed(&path, self.config.log_max_bytes, keep).map_err(io)?;
            if done {
                stamps::rotate(&path, keep).map_err(io)?;
                stamped.insert(path.clone(), 0);
            }
            rotated += usize::from(done);
        }
        Ok(rotated)
    }

    fn sandbox_log_dir(&self, sandbox: &SandboxRecord) -> PathBuf {
        sandbox
            .log_directory
            .clone()
            .unwrap_or_else(|| self.config.state_dir.join("pods").join(&sandbox.id))
    }

    /// The environment of a container's processes: `PATH`, `HOSTNAME`, `POD_IP`, then its own.
    fn environment(record: &ContainerRecord, sandbox: &SandboxRecord) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
        let mut env = vec![
            ("PATH".to_owned(), path),
            ("HOSTNAME".to_owned(), sandbox.hostname().to_owned()),
            ("POD_IP".to_owned(), sandbox.ip.to_string()),
        ];
        if let Some(root) = &record.root {
            env.push((mounts::ROOT_ENV.to_owned(), root.display().to_string()));
        }
        env.extend(record.env.iter().cloned());
        env
    }

    /// A command for `argv` with the container's environment and working directory, in a
    /// process group of its own.
    fn command(
        record: &ContainerRecord,
        sandbox: &SandboxRecord,
        argv: &[String],
    ) -> Result<Command, String> {
        let (program, args) = argv.split_first().ok_or("the command is empty")?;
        let dir = record
            .working_dir
            .clone()
            .or_else(|| record.root.clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        // Checked here because spawn reports a missing directory as ENOENT, which reads as if
        // the program were missing.
        if !dir.is_dir() {
            return Err(format!(
                "working directory {} does not exist or is not a directory",
                dir.display()
            ));
        }
        let env = Self::environment(record, sandbox);
        // The container's PATH (its own value wins over the default, as it is set later).
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or("", |(_, v)| v);
        let mut cmd = match super::lookup::resolve(program, path) {
            Some(file) => {
                let mut cmd = Command::new(file);
                // The program still sees the name it was given, as with execvp.
                cmd.arg0(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .env_clear()
            .envs(env)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .process_group(0);
        Ok(cmd)
    }

    /// Spawns a created container's process; returns the child, or why it could not start.
    fn spawn_container(
        &self,
        record: &mut ContainerRecord,
        sandbox: &SandboxRecord,
    ) -> Result<tokio::process::Child, String> {
        let argv: Vec<String> = record.command.iter().chain(&record.args).cloned().collect();
        let mut cmd = Self::command(record, sandbox, &argv)?;
        let log = logfile::open_for_append(&record.log_path)
            .map_err(|e| format!("opening the log file {}: {e}", record.log_path.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("duplicating the log file handle: {e}"))?;
        cmd.stdout(log).stderr(log2);
        let resources = record.config().resources;
        let cgroup = self
            .limits
            .create_cgroup(&record.id, &resources)
            .map_err(|e| format!("creating the container's cgroup: {e}"))?;
        record.cgroup = cgroup.clone();
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", argv[0]))?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("the process vanished at once")?;
        if let Err(e) = self.limits.apply(pid, cgroup.as_deref(), &resources) {
            signal_group(pid, Signal::KILL);
            return Err(format!("applying the limits ({}): {e}", self.limits.name()));
        }
        record.pid = Some(pid);
        record.pid_start_ticks = procfs::read_stat(pid).ok().flatten().map(|s| s.start_ticks);
        Ok(child)
    }
}

fn validate_container(config: &ContainerConfig) -> Result<(), RuntimeError> {
    let invalid = |what: &str, message: String| RuntimeError::InvalidConfig {
        what: what.to_owned(),
        message,
    };
    if config.name.is_empty()
        || config.name.contains('/')
        || config.name == "."
        || config.name == ".."
    {
        return Err(invalid(
            "container name",
            format!(
                "{:?} must be non-empty and usable as a file name",
                config.name
            ),
        ));
    }
    match config.command.first() {
        None => {
            return Err(invalid(
                "command",
                format!(
                    "container {:?} has no command: the process runtime has no image to take an entrypoint from",
                    config.name
                ),
            ));
        }
        Some(program) if program.is_empty() => {
            return Err(invalid(
                "command",
                format!("container {:?}: the program name is empty", config.name),
            ));
        }
        Some(_) => {}
    }
    if let Some(dir) = &config.working_dir
        && (!dir.is_absolute() || !dir.is_dir())
    {
        return Err(invalid(
            "workingDir",
            format!(
                "container {:?}: {} is not an absolute path to an existing directory",
                config.name,
                dir.display()
            ),
        ));
    }
    for (name, _) in &config.env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(invalid(
                "env",
                format!(
                    "container {:?}: {name:?} is not a variable name",
                    config.name
                ),
            ));
        }
    }
    if let Some(signal) = &config.stop_signal {
        parse_signal(signal)?;
    }
    if let Some(refusal) = security_refusal(
        &config.name,
        &config.security,
        rustix::process::geteuid().as_raw(),
    ) {
        return Err(invalid("securityContext", refusal));
    }
    Ok(())
}

/// Why a container with `security` cannot run here, when the agent runs as `agent_uid`.
///
/// A container here is a process of the node: in the node's network namespace, with the
/// agent's user and privileges. So, rather than pretend:
/// - added capabilities are refused: they could only be the agent's own, over the whole
///   node (`NET_ADMIN` would rewrite the node's firewall, not a pod's);
/// - a uid other than the agent's is refused: every container runs as the agent's user;
/// - dropped capabilities are accepted from a non-root agent, whose processes hold none to
///   drop (a process that is not root loses its capabilities when it executes a program),
///   and refused from a root one, which would pass them all on.
fn security_refusal(name: &str, security: &ContainerSecurity, agent_uid: u32) -> Option<String> {
    const ELSEWHERE: &str = "run the pod on a node with the CRI runtime";
    if !security.add_capabilities.is_empty() {
        return Some(format!(
            "container {name:?} adds capabilities ({}): the process runtime cannot grant them to one container, since its containers are processes of the node, in the node's own network namespace; {ELSEWHERE}",
            security.add_capabilities.join(", ")
        ));
    }
    if let Some(uid) = security
        .run_as_user
        .filter(|uid| *uid != i64::from(agent_uid))
    {
        return Some(format!(
            "container {name:?} asks to run as uid {uid}: the process runtime runs every container as the agent's own user (uid {agent_uid}); leave runAsUser unset, or {ELSEWHERE}"
        ));
    }
    if agent_uid == 0 && !security.drop_capabilities.is_empty() {
        return Some(format!(
            "container {name:?} drops capabilities ({}): the agent runs as root and the process runtime cannot take capabilities from its processes; {ELSEWHERE}",
            security.drop_capabilities.join(", ")
        ));
    }
    None
}

#[async_trait]
impl RuntimeDriver for ProcessRuntime {
    fn name(&self) -> &str {
        "process"
    }

    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        if config.name.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                what: "sandbox name".into(),
                message: "a sandbox needs the pod's name".into(),
            });
        }
        let shared = &self.shared;
        let mut state = shared.state();
        let used: HashSet<_> = state.sandboxes.values().map(|s| s.ip).collect();
        let ip =
            shared
                .config
                .ip_range
                .allocate(&used)
                .ok_or_else(|| RuntimeError::Unavailable {
                    message: format!("every pod IP in {} is taken", shared.config.ip_range),
                })?;
        let id = SandboxId(new_id());
        let record = SandboxRecord::new(&id, config, ip);
        shared.records.save_sandbox(&record)?;
        state.sandboxes.insert(id.0.clone(), record);
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let running: Vec<ContainerId> = {
            let state = self.shared.state();
            if !state.sandboxes.contains_key(&id.0) {
                return Ok(());
            }
            state
                .containers
                .values()
                .filter(|e| e.record.sandbox == id.0 && e.record.state == StoredState::Running)
                .map(|e| ContainerId(e.record.id.clone()))
                .collect()
        };
        let stops = running
            .iter()
            .map(|c| self.stop_container(c, Duration::ZERO));
        for result in futures::future::join_all(stops).await {
            result?;
        }
        let mut state = self.shared.state();
        if let Some(sandbox) = state.sandboxes.get_mut(&id.0)
            && sandbox.ready
        {
            sandbox.ready = false;
            self.shared.records.save_sandbox(sandbox)?;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.stop_pod_sandbox(id).await?;
        let containers: Vec<ContainerId> = self
            .shared
            .state()
            .containers
            .values()
            .filter(|e| e.record.sandbox == id.0)
            .map(|e| ContainerId(e.record.id.clone()))
            .collect();
        for container in &containers {
            self.remove_container(container).await?;
        }
        let Some(sandbox) = self.shared.state().sandboxes.remove(&id.0) else {
            return Ok(());
        };
        self.shared.records.delete_sandbox(&id.0)?;
        if sandbox.log_directory.is_none() {
            let dir = self.shared.sandbox_log_dir(&sandbox);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RuntimeError::Io {
                        context: format!("removing {}", dir.display()),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus, RuntimeError> {
        let state = self.shared.state();
        let sandbox = state
            .sandboxes
            .get(&id.0)
            .ok_or_else(|| not_found("sandbox", &id.0))?;
        Ok(sandbox.status())
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        validate_container(config)?;
        let shared = &self.shared;
        let mut state = shared.state();
        let sandbox_record = state
            .sandboxes
            .get(&sandbox.0)
            .ok_or_else(|| not_found("sandbox", &sandbox.0))?;
        if !sandbox_record.ready {
            return Err(RuntimeError::InvalidState {
                id: sandbox.0.clone(),
                message: "the sandbox is stopped: no container can be created in it".into(),
            });
        }
        let id = ContainerId(new_id());
        let log_path = shared
            .sandbox_log_dir(sandbox_record)
            .join(&config.name)
            .join(format!("{}.log", config.attempt));
        let mut record = ContainerRecord::new(&id, sandbox, config, log_path);
        if !config.mounts.is_empty() {
            let root = shared.config.state_dir.join("roots").join(&id.0);
            mounts::build_root(&root, &config.mounts).map_err(|message| {
                RuntimeError::InvalidConfig {
                    what: "mounts".to_owned(),
                    message,
                }
            })?;
            record.root = Some(root);
        }
        shared.records.save_container(&record)?;
        let (exited, _) = watch::channel(false);
        state
            .containers
            .insert(id.0.clone(), Entry { record, exited });
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let shared = &self.shared;
        let mut guard = shared.state();
        let state = &mut *guard;
        let entry = state
            .containers
            .get_mut(&id.0)
            .ok_or_else(|| not_found("container", &id.0))?;
        let refuse = |message: &str| {
            Err(RuntimeError::InvalidState {
                id: id.0.clone(),
                message: message.to_owned(),
            })
        };
        match entry.record.state {
            StoredState::Created => {}
            StoredState::Running => return refuse("the container is already running"),
            StoredState::Exited => {
                return refuse("the container has exited; create a new one to run it again");
            }
        }
        let sandbox = state
            .sandboxes
            .get(&entry.record.sandbox)
            .ok_or_else(|| not_found("sandbox", &entry.record.sandbox))?;
        if !sandbox.ready {
            return refuse("its sandbox is stopped");
        }
        match shared.spawn_container(&mut entry.record, sandbox) {
            Ok(child) => {
                entry.record.state = StoredState::Running;
                entry.record.started_at = Some(SystemTime::now());
                let pid = entry.record.pid.unwrap_or_default();
                shared.records.save_container(&entry.record)?;
                let watcher = Arc::clone(shared);
                let container = id.0.clone();
                shared.spawn(async move {
                    let ending = reap::wait_child(child).await;
                    watcher.process_ended(&container, pid, ending);
                });
                Ok(())
            }
            Err(message) => {
                entry
                    .record
                    .mark_exited(Some(128), "StartError", message.clone());
                entry.exited.send_replace(true);
                shared.records.save_container(&entry.record)?;
                Err(RuntimeError::StartFailed {
                    id: id.0.clone(),
                    message,
                })
            }
        }
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let (pid, signal, mut exited) = {
            let state = self.shared.state();
            let Some(entry) = state.containers.get(&id.0) else {
                return Ok(());
            };
            let (StoredState::Running, Some(pid)) = (entry.record.state, entry.record.pid) else {
                return Ok(());
            };
            let signal = match &entry.record.stop_signal {
                Some(name) => parse_signal(name)?,
                None => Signal::TERM,
            };
            (pid, signal, entry.exited.subscribe())
        };
        if !grace.is_zero() {
            signal_group(pid, signal);
            if tokio::time::timeout(grace, wait_exited(&mut exited))
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        signal_group(pid, Signal::KILL);
        tokio::time::timeout(KILL_WAIT, wait_exited(&mut exited))
            .await
            .map_err(|_| RuntimeError::Timeout {
                what: format!("container {id} to exit after SIGKILL"),
                after: KILL_WAIT,
            })
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.stop_container(id, Duration::ZERO).await?;
        let Some(entry) = self.shared.state().containers.remove(&id.0) else {
            return Ok(());
        };
        entry.exited.send_replace(true);
        self.shared.records.delete_container(&id.0)?;
        let keep = self.shared.config.log_max_files;
        let log = &entry.record.log_path;
        lock(&self.shared.stamped).remove(log);
        logfile::remove_all(log, keep)
            .and_then(|()| stamps::remove_all(log, keep))
            .map_err(|source| RuntimeError::Io {
                context: format!("removing the logs {}", log.display()),
                source,
            })?;
        if let Some(cgroup) = &entry.record.cgroup
            && let Err(e) = LimitsMode::remove_cgroup(cgroup)
        {
            tracing::warn!(cgroup = %cgroup.display(), error = %e, "removing a container's cgroup failed");
        }
        if let Some(root) = &entry.record.root
            && let Err(e) = mounts::remove_root(root)
        {
            tracing::warn!(root = %root.display(), error = %e, "removing a container's root view failed");
        }
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        let state = self.shared.state();
        let entry = state
            .containers
            .get(&id.0)
            .ok_or_else(|| not_found("container", &id.0))?;
        Ok(entry.record.status())
    }

    async fn list(&self) -> Result<RuntimeState, RuntimeError> {
        let state = self.shared.state();
        Ok(RuntimeState {
            sandboxes: state
                .sandboxes
                .values()
                .map(SandboxRecord::status)
                .collect(),
            containers: state
                .containers
                .values()
                .map(|e| e.record.status())
                .collect(),
        })
    }

    async fn list_summary(&self) -> Result<RuntimeSummary, RuntimeError> {
        let state = self.shared.state();
        Ok(RuntimeSummary {
            sandboxes: state
                .sandboxes
                .values()
                .map(|s| SandboxSummary {
                    id: SandboxId(s.id.clone()),
                    pod_uid: s.uid.clone(),
                    state: if s.ready {
                        SandboxState::Ready
                    } else {
                        SandboxState::NotReady
                    },
                })
                .collect(),
            containers: state
                .containers
                .values()
                .map(|e| ContainerSummary {
                    id: ContainerId(e.record.id.clone()),
                    sandbox: SandboxId(e.record.sandbox.clone()),
                    state: match e.record.state {
                        StoredState::Created => ContainerState::Created,
                        StoredState::Running => ContainerState::Running,
                        StoredState::Exited => ContainerState::Exited,
                    },
                })
                .collect(),
        })
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        if command.first().is_none_or(|p| p.is_empty()) {
            return Err(RuntimeError::InvalidConfig {
                what: "exec command".into(),
                message: format!("exec in container {id}: the command is empty"),
            });
        }
        let (mut cmd, cgroup) = {
            let state = self.shared.state();
            let entry = state
                .containers
                .get(&id.0)
                .ok_or_else(|| not_found("container", &id.0))?;
            if entry.record.state != StoredState::Running {
                return Err(RuntimeError::InvalidState {
                    id: id.0.clone(),
                    message: format!(
                        "exec needs a running container; it is {:?}",
                        entry.record.state
                    ),
                });
            }
            let sandbox = state
                .sandboxes
                .get(&entry.record.sandbox)
                .ok_or_else(|| not_found("sandbox", &entry.record.sandbox))?;
            let cmd = Shared::command(&entry.record, sandbox, command).map_err(|message| {
                RuntimeError::StartFailed {
                    id: id.0.clone(),
                    message,
                }
            })?;
            (cmd, entry.record.cgroup.clone())
        };
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| RuntimeError::StartFailed {
            id: id.0.clone(),
            message: format!("exec {}: {e}", command[0]),
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        if let (Some(pid), Some(cgroup)) = (pid, &cgroup) {
            // Only the cgroup is shared (an exec counts against the container's limits).
            if let Err(e) = self
                .shared
                .limits
                .apply(pid, Some(cgroup), &Default::default())
            {
                tracing::warn!(container = %id, error = %e, "moving an exec into the container's cgroup failed");
            }
        }
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => Ok(ExecResult {
                exit_code: procfs::exit_code(output.status).unwrap_or(-1),
                stdout: output.stdout,
                stderr: output.stderr,
            }),
            Ok(Err(source)) => Err(RuntimeError::Io {
                context: format!("exec in container {id}"),
                source,
            }),
            Err(_) => {
                if let Some(pid) = pid {
                    signal_group(pid, Signal::KILL);
                }
                Err(RuntimeError::Timeout {
                    what: format!("exec {:?} in container {id}", command),
                    after: timeout,
                })
            }
        }
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogStream, RuntimeError> {
        let path = {
            let state = self.shared.state();
            let entry = state
                .containers
                .get(&id.0)
                .ok_or_else(|| not_found("container", &id.0))?;
            entry.record.log_path.clone()
        };
        let keep = self.shared.config.log_max_files;
        let io_err = |source| RuntimeError::Io {
            context: format!("reading the log {}", path.display()),
            source,
        };
        let times = options.needs_times();
        if times {
            // What is in the file now gets its time before it is read.
            self.shared.stamp_log(&path, false);
        }
        // The current file is read once: its length is where a follower continues.
        let current = logfile::read_if_present(&path).map_err(io_err)?;
        let offset = current.len() as u64;
        let mut selected = if times {
            let now = jiff::Timestamp::now();
            let index = stamps::index_path(&path);
            let mut lines = Vec::new();
            let mut files = Vec::new();
            for n in (1..=keep).rev() {
                let rotated =
                    logfile::read_if_present(&logfile::rotated_path(&path, n)).map_err(io_err)?;
                let entries =
                    stamps::read_index(&logfile::rotated_path(&index, n)).map_err(io_err)?;
                files.push((rotated, entries));
            }
            let rotated_copies = files.len();
            files.push((current, stamps::read_index(&index).map_err(io_err)?));
            for (n, (content, entries)) in files.iter().enumerate() {
                // A rotated copy's last entry was written just before the copy was taken:
                // what follows it was written then, not at the time of this read.
                let unstamped = match entries.last() {
                    Some((_, time)) if n < rotated_copies => *time,
                    _ => now,
                };
                lines.extend(stamps::timed_lines(content, entries, unstamped));
            }
            stamps::select(&lines, &options)
        } else {
            let mut all = logfile::read_rotated(&path, keep).map_err(io_err)?;
            all.extend(current);
            logfile::tail(&all, options.tail_lines).to_vec()
        };
        let mut remaining = options.limit_bytes;
        if let Some(limit) = remaining {
            selected.truncate(limit);
            remaining = Some(limit - selected.len());
        }
        if !options.follow || remaining == Some(0) {
            let chunks = (!selected.is_empty()).then(|| Ok(Bytes::from(selected)));
            return Ok(Box::pin(futures::stream::iter(chunks)));
        }
        let shared = Arc::clone(&self.shared);
        let container = id.0.clone();
        let ended = move || {
            shared
                .state()
                .containers
                .get(&container)
                .is_none_or(|e| e.record.state == StoredState::Exited)
        };
        let stamper = times.then(|| stamps::LineStamper::new(&options));
        Ok(follow::follow(
            path, offset, selected, remaining, stamper, ended,
        ))
    }

    /// Images do not apply to local processes: always succeeds, does nothing.
    async fn pull_image(&self, _image: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(uid: Option<i64>, add: &[&str], drop: &[&str]) -> ContainerSecurity {
        let names = |list: &[&str]| list.iter().map(|c| (*c).to_owned()).collect();
        ContainerSecurity {
            run_as_user: uid,
            add_capabilities: names(add),
            drop_capabilities: names(drop),
        }
    }

    #[test]
    fn what_a_process_of_the_node_cannot_be_is_refused_with_the_reason() {
        // Nothing asked, or the agent's own uid: fine, as root or not.
        for agent in [0, 1000] {
            assert_eq!(
                security_refusal("app", &security(None, &[], &[]), agent),
                None
            );
            let own = security(Some(i64::from(agent)), &[], &[]);
            assert_eq!(security_refusal("app", &own, agent), None);
        }
        // The mesh's init container: NET_ADMIN would be the node's.
        let init = security(Some(0), &["NET_ADMIN"], &["ALL"]);
        for agent in [0, 1000] {
            let refusal = security_refusal("mesh-init", &init, agent).unwrap();
            assert!(
                refusal.contains("\"mesh-init\" adds capabilities (NET_ADMIN)")
                    && refusal.contains("node's own network namespace")
                    && refusal.contains("CRI runtime"),
                "{refusal}"
            );
        }
        // The mesh proxy's uid, which is not the agent's.
        let proxy = security(Some(2102), &[], &[]);
        let refusal = security_refusal("mesh-proxy", &proxy, 1000).unwrap();
        assert!(
            refusal.contains("asks to run as uid 2102")
                && refusal.contains("agent's own user (uid 1000)"),
            "{refusal}"
        );
        assert!(security_refusal("mesh-proxy", &proxy, 0).is_some());
        // Drops: nothing to drop from a process that is not root; a root agent's
        // processes would keep them all.
        let drops = security(None, &[], &["ALL"]);
        assert_eq!(security_refusal("app", &drops, 1000), None);
        let refusal = security_refusal("app", &drops, 0).unwrap();
        assert!(refusal.contains("drops capabilities (ALL)"), "{refusal}");
    }
}
