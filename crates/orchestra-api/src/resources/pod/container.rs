//! A pod's containers: [`Container`] with its ports, environment, resources, probes and
//! security settings.

use serde::{Deserialize, Serialize};

use crate::meta::IntOrString;
use crate::quantity::Quantity;
use crate::resources::common::{Protocol, ResourceList};
use crate::resources::pod::RestartPolicy;
use crate::resources::pod::volume::{EnvFromSource, VolumeMount};

/// One container of a pod (Kubernetes' `v1.Container`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// The container's name, a DNS label unique within the pod.
    pub name: String,
    /// The image reference, e.g. `nginx:1.27`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The entrypoint; the image's when empty.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub command: Vec<String>,
    /// The arguments to the entrypoint; the image's when empty.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub args: Vec<String>,
    /// The working directory; the image's when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// The ports the container listens on (informational, and named targets for Services).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub ports: Vec<ContainerPort>,
    /// Environment variables.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub env: Vec<EnvVar>,
    /// Every entry of ConfigMaps and Secrets as variables (before `env`, which wins).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub env_from: Vec<EnvFromSource>,
    /// Where the pod's volumes are mounted in the container.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub volume_mounts: Vec<VolumeMount>,
    /// CPU and memory requests (for scheduling) and limits (enforced).
    #[serde(skip_serializing_if = "ResourceRequirements::is_empty")]
    pub resources: ResourceRequirements,
    /// When to pull the image; defaulted from the tag (`Always` for `:latest` or no tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Restarts the container when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Removes the pod from Service endpoints while it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Holds the other probes back until it succeeds once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    /// On an init container only, and only `Always`: the container is a sidecar. It starts in
    /// init-container order but does not have to finish: the next containers start once it
    /// has started; it runs for the pod's lifetime, restarted whenever it exits, and is
    /// stopped after the app containers (Kubernetes' native sidecar containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// The user the process runs as and its capabilities; the runtime's defaults (the
    /// image's user, the runtime's default capabilities) when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

impl Container {
    /// Whether this is a sidecar: an init container with `restartPolicy: Always` (the field
    /// means nothing on other containers, where validation refuses it).
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy == Some(RestartPolicy::Always)
    }
}

/// A container's security settings (the fields of Kubernetes' `v1.SecurityContext` that
/// orchestra applies; the others are unknown fields). The node agent hands them to its
/// runtime: containerd applies them, the process runtime refuses a container whose settings
/// it cannot apply; neither ignores them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    /// The uid the container's process runs as (0 to 2147483647); the image's user when
    /// unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// Capabilities added to and dropped from the runtime's default set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// Linux capabilities to add to or drop from a container's default set, named as
/// `capabilities(7)` names them without the `CAP_` prefix (`NET_ADMIN`; any case, and the
/// prefix, are accepted: see [`Capabilities::canonical`]), or `ALL`. `ALL` applies before the
/// named ones (as in containerd): `drop: [ALL]` with `add: [NET_ADMIN]` leaves exactly
/// `NET_ADMIN`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    /// Added capabilities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Dropped capabilities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// The Linux capabilities (`capabilities(7)`, up to Linux 6.x), without the `CAP_` prefix.
const CAPABILITY_NAMES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

impl Capabilities {
    /// `name` as the node agent hands it to runtimes (capitals, no `CAP_` prefix:
    /// `cap_net_admin` is `NET_ADMIN`), or `ALL`; `None` when it names no capability.
    pub fn canonical(name: &str) -> Option<&'static str> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if bare == "ALL" {
            return Some("ALL");
        }
        CAPABILITY_NAMES
            .iter()
            .copied()
            .find(|known| *known == bare)
    }
}

/// A port a container exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    /// A name Services can target (an IANA service name, e.g. `http`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The port number in the pod's network namespace (1-65535).
    pub container_port: i32,
    /// A port on the host mapped to it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    /// The host IP to bind the host port to.
    #[serde(rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
    /// The protocol; `TCP` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// An environment variable: a literal `value` or a `valueFrom` source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// A literal value (`$(OTHER)` references are expanded by the node agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from, instead of `value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

impl EnvVar {
    /// A variable with a literal value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }
}

/// The source of an environment variable's value; exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    /// A field of the pod: `metadata.name`, `metadata.namespace`, `metadata.uid`,
    /// `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`, `status.hostIP`, or
    /// `metadata.labels['KEY']` / `metadata.annotations['KEY']`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container's resource request or limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
    /// A key of a ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
    /// A key of a Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
}

impl EnvVarSource {
    /// How many sources are set (valid when exactly one).
    pub fn count(&self) -> usize {
        usize::from(self.field_ref.is_some())
            + usize::from(self.resource_field_ref.is_some())
            + usize::from(self.config_map_key_ref.is_some())
            + usize::from(self.secret_key_ref.is_some())
    }
}

/// Selects a field of the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectFieldSelector {
    /// The schema the path is in; `v1` by default.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The field's path, e.g. `status.podIP`.
    pub field_path: String,
}

/// Selects a container's resource request or limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceFieldSelector {
    /// The container; the one the variable belongs to when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    /// The resource: `limits.cpu`, `requests.memory`, ...
    pub resource: String,
    /// The unit to express it in (`1m`, `1Mi`); `1` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divisor: Option<Quantity>,
}

/// Selects a key of a ConfigMap or Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeySelector {
    /// The ConfigMap's or Secret's name.
    pub name: String,
    /// The key.
    pub key: String,
    /// Whether the variable may be left unset when the object or key is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Compute resources of a container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceRequirements {
    /// The most the container may use.
    #[serde(skip_serializing_if = "ResourceList::is_empty")]
    pub limits: ResourceList,
    /// What the scheduler reserves for the container; the limit when only that is given.
    #[serde(skip_serializing_if = "ResourceList::is_empty")]
    pub requests: ResourceList,
}

impl ResourceRequirements {
    /// Whether neither requests nor limits are set.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.requests.is_empty()
    }
}

/// When the node agent pulls a container's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the image is not present.
    IfNotPresent,
    /// Never pull; fail when the image is not present.
    Never,
}

/// A health check of a container: one handler and its timing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    /// Runs a command in the container; exit status 0 is success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// Sends an HTTP GET; a status from 200 to 399 is success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// Opens a TCP connection; connecting is success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Seconds after the container starts before the first probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds before a probe times out; 1 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Seconds between probes; 10 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// Consecutive successes to count as healthy after a failure; 1 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Consecutive failures to count as failed; 3 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    /// Grace period when a failing liveness or startup probe kills the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

impl Probe {
    /// How many handlers are set (valid when exactly one).
    pub fn handler_count(&self) -> usize {
        usize::from(self.exec.is_some())
            + usize::from(self.http_get.is_some())
            + usize::from(self.tcp_socket.is_some())
    }
}

/// A command to run in the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecAction {
    /// The command and its arguments (not run through a shell).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// An HTTP GET request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpGetAction {
    /// The path; `/` by default.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The port: a number or the name of a container port.
    pub port: IntOrString,
    /// The host to connect to; the pod IP when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// `HTTP` (the default) or `HTTPS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<UriScheme>,
    /// Extra request headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// An HTTP header of a probe request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpHeader {
    /// The header name.
    pub name: String,
    /// The header value.
    pub value: String,
}

/// The scheme of an HTTP probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UriScheme {
    /// Plain HTTP.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS, without verifying the certificate.
    #[serde(rename = "HTTPS")]
    Https,
}

/// A TCP connection attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpSocketAction {
    /// The port: a number or the name of a container port.
    pub port: IntOrString,
    /// The host to connect to; the pod IP when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
}
