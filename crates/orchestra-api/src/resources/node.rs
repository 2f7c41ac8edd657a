//! [`Node`] (`v1`, cluster-scoped): a machine that runs pods, with its capacity, taints,
//! conditions and addresses.

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, Time};
use crate::resource::Resource;
use crate::resources::common::{ConditionStatus, ResourceList};
use crate::validation::{self, ErrorList};

/// A node (`v1`, `Node`, cluster-scoped).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Node {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: NodeSpec,
    /// The observed state, written by the node agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
}

impl Resource for Node {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Node";
    const PLURAL: &'static str = "nodes";
    const NAMESPACED: bool = false;
    const SELECTABLE_FIELDS: &'static [&'static str] = &["spec.unschedulable"];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_node(self);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_node(self)
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "spec.unschedulable" => Some(self.spec.unschedulable.to_string()),
            _ => None,
        }
    }
}

/// The desired state of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSpec {
    /// The pod IP range assigned to the node.
    #[serde(rename = "podCIDR", skip_serializing_if = "String::is_empty")]
    pub pod_cidr: String,
    /// The pod IP ranges (one per IP family).
    #[serde(rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    /// The provider's id for the machine.
    #[serde(rename = "providerID", skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    /// Cordoned: no new pods are scheduled onto it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Taints that repel pods without a matching toleration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// A taint on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Taint {
    /// The key, a qualified name such as `node.kubernetes.io/not-ready`.
    pub key: String,
    /// The value, a label value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// What happens to pods that do not tolerate it.
    pub effect: TaintEffect,
    /// When it was added (for `NoExecute`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_added: Option<Time>,
}

/// What a taint does to pods that do not tolerate it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods are not scheduled onto the node.
    #[default]
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods are evicted, and new ones are not scheduled.
    NoExecute,
}

/// The observed state of a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStatus {
    /// The node's total resources.
    #[serde(skip_serializing_if = "ResourceList::is_empty")]
    pub capacity: ResourceList,
    /// The resources available to pods (capacity less reservations); capacity by default.
    #[serde(skip_serializing_if = "ResourceList::is_empty")]
    pub allocatable: ResourceList,
    /// Conditions: `Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`,
    /// `NetworkUnavailable`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<NodeCondition>,
    /// The node's addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// The node agent's endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_endpoints: Option<NodeDaemonEndpoints>,
    /// Facts about the machine and its software.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_info: Option<NodeSystemInfo>,
}

impl Node {
    /// Whether the node reports its `Ready` condition True.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.condition("Ready"))
            .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

impl NodeStatus {
    /// The condition of the given type, if reported.
    pub fn condition(&self, type_: &str) -> Option<&NodeCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// One condition of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeCondition {
    /// The condition: `Ready`, `MemoryPressure`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// When the node agent last reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
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

/// One address of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeAddress {
    /// `Hostname`, `InternalIP`, `ExternalIP`, `InternalDNS` or `ExternalDNS`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The address.
    pub address: String,
}

/// The endpoints of daemons on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeDaemonEndpoints {
    /// The node agent's endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_endpoint: Option<DaemonEndpoint>,
}

/// A daemon's port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonEndpoint {
    /// The port number.
    #[serde(rename = "Port")]
    pub port: i32,
}

/// Facts about a node's machine and software.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSystemInfo {
    /// The machine id (`/etc/machine-id`).
    #[serde(rename = "machineID", skip_serializing_if = "String::is_empty")]
    pub machine_id: String,
    /// The machine's SMBIOS UUID.
    #[serde(rename = "systemUUID", skip_serializing_if = "String::is_empty")]
    pub system_uuid: String,
    /// The boot id; it changes on reboot.
    #[serde(rename = "bootID", skip_serializing_if = "String::is_empty")]
    pub boot_id: String,
    /// The kernel version (`uname -r`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kernel_version: String,
    /// The OS image, e.g. `Debian GNU/Linux 13`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub os_image: String,
    /// The container runtime and its version, e.g. `containerd://1.6.20`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_runtime_version: String,
    /// The node agent's version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubelet_version: String,
    /// The service proxy's version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kube_proxy_version: String,
    /// `linux`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operating_system: String,
    /// `amd64`, `arm64`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub architecture: String,
}
