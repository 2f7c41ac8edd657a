//! Types several kinds share: [`ObjectReference`], [`ConditionStatus`], [`Protocol`],
//! [`ResourceList`] and the well-known resource names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

/// Amounts of named resources: `cpu: 500m`, `memory: 128Mi`.
pub type ResourceList = BTreeMap<String, Quantity>;

/// CPU, in cores (`500m` is half a core).
pub const RESOURCE_CPU: &str = "cpu";
/// Memory, in bytes.
pub const RESOURCE_MEMORY: &str = "memory";
/// The number of pods a node runs.
pub const RESOURCE_PODS: &str = "pods";
/// Local ephemeral storage, in bytes.
pub const RESOURCE_EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// A reference to another object (Kubernetes' `v1.ObjectReference`), as in an Event's
/// `involvedObject` or an endpoint address's `targetRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    /// The referent's `apiVersion`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The referent's kind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The referent's namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The referent's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The referent's uid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The referent's resourceVersion when the reference was made.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// A part of the referent, e.g. `spec.containers{web}`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field_path: String,
}

/// The status of a condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known (the default).
    #[default]
    Unknown,
}

/// A network protocol of a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The protocol's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}
