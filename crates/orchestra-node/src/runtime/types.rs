//! The identifiers, configurations and statuses that cross the [`RuntimeDriver`](super::RuntimeDriver)
//! boundary. They mirror CRI's messages, trimmed to what orchestra's pods use.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;

use super::RuntimeError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }
    };
}

id_type!(
    /// A pod sandbox's id, chosen by the runtime.
    SandboxId
);
id_type!(
    /// A container's id, chosen by the runtime.
    ContainerId
);

/// What a sandbox is created from: the pod's identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's uid: the key under which an agent finds its sandbox again after a restart.
    pub uid: String,
    /// How many sandboxes this pod had before (0 for the first).
    pub attempt: u32,
    /// The pod's hostname.
    pub hostname: String,
    /// Labels the runtime stores with the sandbox and returns in [`RuntimeDriver::list`](super::RuntimeDriver::list).
    pub labels: BTreeMap<String, String>,
    /// Annotations stored likewise.
    pub annotations: BTreeMap<String, String>,
    /// Where the sandbox's container logs go (`<dir>/<container>/<attempt>.log`), if the
    /// runtime writes log files.
    pub log_directory: Option<PathBuf>,
    /// The pod's resolver settings (CRI's DNSConfig); `None` keeps the host's. A container
    /// runtime writes them into the sandbox's resolv.conf; ProcessRuntime cannot (its
    /// processes share the host's resolver) and ignores them.
    pub dns: Option<PodDns>,
}

/// A pod's resolver settings (CRI's DNSConfig shape), as the agent resolves them from the
/// pod's `dnsPolicy` and `dnsConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodDns {
    /// Name servers: `IP`, or `IP:PORT` for a server off port 53 (which resolv.conf cannot
    /// express: a container runtime refuses it).
    pub servers: Vec<String>,
    /// Search domains.
    pub searches: Vec<String>,
    /// Options, as in resolv.conf (`ndots:5`).
    pub options: Vec<String>,
}

/// Whether a sandbox is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SandboxState {
    /// Running: containers can be created in it.
    Ready,
    /// Stopped (or failed).
    NotReady,
}

/// A sandbox as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxStatus {
    /// Its id.
    pub id: SandboxId,
    /// The configuration it was created with.
    pub config: SandboxConfig,
    /// Up or not.
    pub state: SandboxState,
    /// When it was created.
    pub created_at: SystemTime,
    /// The pod's IP, once it has one.
    pub ip: Option<IpAddr>,
}

/// CPU and memory limits for a container, as integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerResources {
    /// CPU limit in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// CPU request in millicores (a share, where the runtime supports shares).
    pub cpu_request_millis: Option<u64>,
}

/// A host path made visible in a container (CRI's `Mount`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// Where it appears in the container (absolute).
    pub container_path: PathBuf,
    /// The file or directory on the node.
    pub host_path: PathBuf,
    /// Whether the container may only read it.
    pub read_only: bool,
}

/// What a container is created from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The container's name in its pod.
    pub name: String,
    /// How many times this container was started before (its restart count).
    pub attempt: u32,
    /// The image reference (ignored by runtimes without images).
    pub image: String,
    /// The entrypoint (Kubernetes' `command`); empty means the image's.
    pub command: Vec<String>,
    /// Its arguments (Kubernetes' `args`).
    pub args: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The working directory, if not the image's.
    pub working_dir: Option<PathBuf>,
    /// The volumes mounted into the container (see each runtime for what a mount means).
    pub mounts: Vec<Mount>,
    /// Limits and requests.
    pub resources: ContainerResources,
    /// The signal `stop_container` sends first (`TERM` when `None`).
    pub stop_signal: Option<String>,
    /// Labels stored with the container and returned by `list`.
    pub labels: BTreeMap<String, String>,
    /// Annotations stored likewise.
    pub annotations: BTreeMap<String, String>,
    /// The user it runs as and its capabilities (the container's `securityContext`). A
    /// runtime that runs processes applies them or refuses the container, never ignores
    /// them (the fake runtime, which runs none, records them).
    pub security: ContainerSecurity,
}

/// A container's security settings, as the node agent hands them to the runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSecurity {
    /// The uid the process runs as; `None`: the image's user (the process runtime: the
    /// agent's own). As the API has it (validated to 0..=2147483647 there); a runtime
    /// refuses a value it cannot use.
    pub run_as_user: Option<i64>,
    /// Capabilities added to the runtime's default set, named without `CAP_` in capitals
    /// (`NET_ADMIN`), or `ALL`.
    pub add_capabilities: Vec<String>,
    /// Capabilities dropped from it, named likewise.
    pub drop_capabilities: Vec<String>,
}

/// A container's lifecycle state, as CRI names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Started and not yet exited.
    Running,
    /// Exited (on its own, stopped, or failed to start).
    Exited,
    /// The runtime lost track of it.
    Unknown,
}

/// A container as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Its id.
    pub id: ContainerId,
    /// The sandbox it lives in.
    pub sandbox: SandboxId,
    /// The configuration it was created with.
    pub config: ContainerConfig,
    /// Its state.
    pub state: ContainerState,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it started running.
    pub started_at: Option<SystemTime>,
    /// When it exited.
    pub finished_at: Option<SystemTime>,
    /// Its exit code, once exited (128 + signal for a signalled process, as shells report).
    pub exit_code: Option<i32>,
    /// A short reason for the state (`Completed`, `Error`, `OOMKilled`, `StartError`).
    pub reason: String,
    /// A human-readable message with the details.
    pub message: String,
    /// Where its log file is, when the runtime writes one.
    pub log_path: Option<PathBuf>,
}

/// Everything the runtime holds: what an agent re-adopts after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeState {
    /// Every sandbox, ready or not.
    pub sandboxes: Vec<SandboxStatus>,
    /// Every container, in any state.
    pub containers: Vec<ContainerStatus>,
}

/// A sandbox as a relist sees it (CRI's `PodSandbox` list entry): its pod and state, no
/// configuration or IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSummary {
    /// Its id.
    pub id: SandboxId,
    /// The uid of the pod it was created for ([`SandboxConfig::uid`]).
    pub pod_uid: String,
    /// Up or not.
    pub state: SandboxState,
}

/// A container as a relist sees it (CRI's `Container` list entry): its sandbox and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Its id.
    pub id: ContainerId,
    /// The sandbox it lives in.
    pub sandbox: SandboxId,
    /// Its state.
    pub state: ContainerState,
}

/// Every sandbox and container with its state only: what the agent's periodic relist compares
/// (see [`RuntimeDriver::list_summary`](super::RuntimeDriver::list_summary)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeSummary {
    /// Every sandbox, ready or not.
    pub sandboxes: Vec<SandboxSummary>,
    /// Every container, in any state.
    pub containers: Vec<ContainerSummary>,
}

impl From<&SandboxStatus> for SandboxSummary {
    fn from(status: &SandboxStatus) -> Self {
        SandboxSummary {
            id: status.id.clone(),
            pod_uid: status.config.uid.clone(),
            state: status.state,
        }
    }
}

impl From<&ContainerStatus> for ContainerSummary {
    fn from(status: &ContainerStatus) -> Self {
        ContainerSummary {
            id: status.id.clone(),
            sandbox: status.sandbox.clone(),
            state: status.state,
        }
    }
}

impl From<&RuntimeState> for RuntimeSummary {
    fn from(state: &RuntimeState) -> Self {
        RuntimeSummary {
            sandboxes: state.sandboxes.iter().map(SandboxSummary::from).collect(),
            containers: state
                .containers
                .iter()
                .map(ContainerSummary::from)
                .collect(),
        }
    }
}

/// The outcome of [`RuntimeDriver::exec_sync`](super::RuntimeDriver::exec_sync).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// The command's exit code.
    pub exit_code: i32,
    /// What it wrote on stdout.
    pub stdout: Vec<u8>,
    /// What it wrote on stderr.
    pub stderr: Vec<u8>,
}

/// Which part of a container's log to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and deliver new output as it is written.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// At most this many bytes (from the start of what is selected).
    pub limit_bytes: Option<usize>,
    /// Only the lines written at or after this time (kubelet's `sinceTime`/`sinceSeconds`).
    pub since: Option<jiff::Timestamp>,
    /// Start each line with the RFC 3339 time it was written at and a space.
    pub timestamps: bool,
}

impl LogOptions {
    /// Whether these options need the time of each line (which only logs in the CRI format
    /// have).
    pub fn needs_times(&self) -> bool {
        self.since.is_some() || self.timestamps
    }
}

/// A container's log output, in chunks.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, RuntimeError>> + Send>>;
