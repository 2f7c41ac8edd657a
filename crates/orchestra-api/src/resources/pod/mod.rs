//! [`Pod`] (`v1`): one or more containers scheduled together onto a node, with the spec the
//! scheduler and node agent act on and the status the node agent reports.

mod container;
mod scheduling;
mod volume;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use container::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HttpGetAction,
    HttpHeader, KeySelector, ObjectFieldSelector, Probe, PullPolicy, ResourceFieldSelector,
    ResourceRequirements, SecurityContext, TcpSocketAction, UriScheme,
};
pub use scheduling::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorOperator, NodeSelectorRequirement,
    NodeSelectorTerm, PodAffinity, PodAffinityTerm, PodAntiAffinity, PreferredSchedulingTerm,
    Toleration, TolerationOperator, TopologySpreadConstraint, UnsatisfiableConstraintAction,
    WeightedPodAffinityTerm,
};
pub use volume::{
    ConfigMapProjection, ConfigMapVolumeSource, DEFAULT_VOLUME_MODE, DownwardApiProjection,
    DownwardApiVolumeFile, DownwardApiVolumeSource, EmptyDirVolumeSource, EnvFromRef,
    EnvFromSource, HostPathType, HostPathVolumeSource, KeyToPath, ProjectedVolumeSource,
    SecretProjection, SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};

use crate::meta::{ObjectMeta, Time};
use crate::resource::Resource;
use crate::resources::common::ConditionStatus;
use crate::validation::{self, ErrorList, FieldPath};

/// A pod (`v1`, `Pod`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: PodSpec,
    /// The observed state, written by the node agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

impl Pod {
    /// Whether the pod is Running with its `Ready` condition True: what kubectl's READY column
    /// and a Service's ready endpoints count.
    pub fn is_running_and_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.phase == Some(PodPhase::Running)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
        })
    }
}

impl Resource for Pod {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Pod";
    const PLURAL: &'static str = "pods";
    const NAMESPACED: bool = true;
    const SELECTABLE_FIELDS: &'static [&'static str] = &[
        "spec.nodeName",
        "spec.schedulerName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_pod_spec(&mut self.spec);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_pod_spec(&self.spec, &FieldPath::new("spec"))
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_pod_update(self, old)
    }

    fn field_value(&self, field: &str) -> Option<String> {
        let status = self.status.as_ref();
        Some(match field {
            "spec.nodeName" => self.spec.node_name.clone(),
            "spec.schedulerName" => self.spec.scheduler_name.clone(),
            "spec.restartPolicy" => self
                .spec
                .restart_policy
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            "spec.serviceAccountName" => self.spec.service_account_name.clone(),
            "status.phase" => status
                .and_then(|s| s.phase)
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            "status.podIP" => status.map(|s| s.pod_ip.clone()).unwrap_or_default(),
            "status.nominatedNodeName" => status
                .map(|s| s.nominated_node_name.clone())
                .unwrap_or_default(),
            _ => return None,
        })
    }
}

/// A pod template: the metadata and spec of the pods a controller creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTemplateSpec {
    /// The pods' metadata (labels, annotations).
    pub metadata: ObjectMeta,
    /// The pods' spec.
    pub spec: PodSpec,
}

/// The desired state of a pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The containers (at least one).
    #[serde(deserialize_with = "crate::resources::exact_vec::deserialize")]
    pub containers: Vec<Container>,
    /// Containers run to completion, in order, before `containers` start.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub init_containers: Vec<Container>,
    /// The volumes the containers can mount.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub volumes: Vec<Volume>,
    /// When containers are restarted; `Always` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Seconds between TERM and KILL on shutdown; 30 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Seconds the pod may run before it is failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// How the pod's DNS is set up; `ClusterFirst` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<DnsPolicy>,
    /// Node labels the node must have.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// The service account the pod runs as; `default` when empty (set on creation by the
    /// ServiceAccount admission plug-in).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Whether the API server mounts the account's token (a `kube-api-access-*` volume) in
    /// every container; wins over the account's own setting; yes when neither says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// The node the pod is bound to; set by the scheduler through the binding subresource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// Use the node's network namespace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// The pod's hostname; the pod's name when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// With `hostname`, the pod's DNS name is `HOSTNAME.SUBDOMAIN.NAMESPACE.svc.DOMAIN` when
    /// a headless Service named `SUBDOMAIN` selects it (a stateful set's pods get their
    /// `serviceName`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subdomain: String,
    /// Affinity and anti-affinity rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Taints the pod tolerates.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub tolerations: Vec<Toleration>,
    /// How the pod spreads with its peers across topology domains.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// The priority; higher is scheduled first and may preempt lower.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The PriorityClass the priority comes from.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// The scheduler that places the pod; `default-scheduler` by default.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scheduler_name: String,
    /// Whether the pod may preempt pods of lower priority to make room for itself;
    /// `PreemptLowerPriority` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<PreemptionPolicy>,
    /// Whether the node agent gives the containers the environment variables of the
    /// namespace's services (`{NAME}_SERVICE_HOST`, ...); true when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    /// DNS settings added to those of `dnsPolicy` (the only ones with `dnsPolicy: None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    /// Conditions, beyond its containers being ready, that the pod's `Ready` condition waits
    /// for: each must be `True` in `status.conditions`, where controllers other than the node
    /// agent set them (through the status subresource).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub readiness_gates: Vec<PodReadinessGate>,
}

/// A readiness gate (`spec.readinessGates[]`): a pod condition type that must be `True` for the
/// pod to be `Ready`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodReadinessGate {
    /// The condition's type, a qualified name such as `example.com/feature-1`.
    pub condition_type: String,
}

/// Whether a pod may preempt others (`spec.preemptionPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreemptionPolicy {
    /// The scheduler may evict pods of lower priority to place it (the default).
    #[default]
    PreemptLowerPriority,
    /// The pod waits for room and never evicts others (it still goes ahead of lower
    /// priorities in the scheduling queue).
    Never,
}

impl PreemptionPolicy {
    /// The policy's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            PreemptionPolicy::PreemptLowerPriority => "PreemptLowerPriority",
            PreemptionPolicy::Never => "Never",
        }
    }
}

/// A pod's own DNS settings (`spec.dnsConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfig {
    /// Name server addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    /// Resolver options (`ndots`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

/// One resolver option of a [`PodDnsConfig`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodDnsConfigOption {
    /// The option's name, e.g. `ndots`.
    pub name: String,
    /// Its value, if it takes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// When a pod's containers are restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Always (the default; the only policy for controllers' templates).
    Always,
    /// When a container exits non-zero.
    OnFailure,
    /// Never.
    Never,
}

impl RestartPolicy {
    /// The policy's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }
}

/// How a pod's DNS resolver is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnsPolicy {
    /// Cluster DNS first, then the node's upstream (the default).
    ClusterFirst,
    /// `ClusterFirst`, even with host networking.
    ClusterFirstWithHostNet,
    /// The node's resolver configuration.
    Default,
    /// None: the pod supplies its own.
    None,
}

/// The observed state of a pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// The lifecycle phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodPhase>,
    /// Conditions: `PodScheduled`, `Initialized`, `ContainersReady`, `Ready`.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub conditions: Vec<PodCondition>,
    /// A human-readable message about the pod's state.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A CamelCase reason for the pod's state, e.g. `Evicted`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The node the scheduler nominated while preempting for the pod.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nominated_node_name: String,
    /// The IP of the pod's node.
    #[serde(rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
    /// The IPs of the pod's node (one per IP family).
    #[serde(
        rename = "hostIPs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub host_ips: Vec<PodIp>,
    /// The pod's IP.
    #[serde(rename = "podIP", skip_serializing_if = "String::is_empty")]
    pub pod_ip: String,
    /// The pod's IPs (one per IP family); the first equals `podIP`.
    #[serde(
        rename = "podIPs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub pod_ips: Vec<PodIp>,
    /// When the node agent accepted the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// The init containers' statuses.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// The containers' statuses.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub container_statuses: Vec<ContainerStatus>,
    /// The QoS class: `Guaranteed`, `Burstable` or `BestEffort`.
    #[serde(rename = "qosClass", skip_serializing_if = "String::is_empty")]
    pub qos_class: String,
}

/// One IP address of a pod or its node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

/// A pod's lifecycle phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, but not all containers run yet.
    Pending,
    /// Bound to a node, and at least one container runs.
    Running,
    /// All containers exited successfully and will not restart.
    Succeeded,
    /// All containers exited, at least one in failure.
    Failed,
    /// The state could not be obtained.
    Unknown,
}

impl PodPhase {
    /// The phase's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }
}

/// One condition of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCondition {
    /// The condition: `PodScheduled`, `Initialized`, `ContainersReady` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// When it was last probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason for the last transition.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message about the last transition.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The status of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// The current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    /// The state the last run ended in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
    /// Whether the readiness probe passes.
    pub ready: bool,
    /// How often the container was restarted.
    pub restart_count: i32,
    /// The image it runs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The resolved image id.
    #[serde(rename = "imageID", skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// The runtime's container id, `<runtime>://<id>`.
    #[serde(rename = "containerID", skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    /// Whether the startup probe has passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
}

/// A container's state: exactly one of the three is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerState {
    /// Not running yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
    /// Running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<ContainerStateRunning>,
    /// Exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<ContainerStateTerminated>,
}

/// A container that is not running yet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStateWaiting {
    /// Why: `ContainerCreating`, `ImagePullBackOff`, `CrashLoopBackOff`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A running container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStateRunning {
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

/// An exited container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStateTerminated {
    /// The exit code.
    pub exit_code: i32,
    /// The signal that killed it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why: `Completed`, `Error`, `OOMKilled`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The runtime's container id.
    #[serde(rename = "containerID", skip_serializing_if = "String::is_empty")]
    pub container_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preemption_policy_is_camel_case_and_omitted_when_unset() {
        let spec: PodSpec =
            serde_json::from_str(r#"{"containers": [], "preemptionPolicy": "Never"}"#).unwrap();
        assert_eq!(spec.preemption_policy, Some(PreemptionPolicy::Never));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["preemptionPolicy"], "Never");
        let unset = serde_json::to_value(PodSpec::default()).unwrap();
        assert!(unset.get("preemptionPolicy").is_none());
        let bad = serde_json::from_str::<PodSpec>(r#"{"preemptionPolicy": "Sometimes"}"#);
        assert!(bad.unwrap_err().to_string().contains("Sometimes"));
    }
}
