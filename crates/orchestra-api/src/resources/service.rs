//! [`Service`] (`v1`): a stable virtual IP and ports in front of the pods a selector picks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{IntOrString, ObjectMeta};
use crate::resource::{NameRule, Resource};
use crate::resources::common::Protocol;
use crate::validation::{self, ErrorList};

/// A service (`v1`, `Service`, namespaced). Its name is a DNS-1035 label (it becomes a DNS
/// name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: ServiceSpec,
    /// The observed state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}

impl Resource for Service {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Service";
    const PLURAL: &'static str = "services";
    const NAMESPACED: bool = true;
    const NAME_RULE: NameRule = NameRule::Dns1035Label;
    const SELECTABLE_FIELDS: &'static [&'static str] = &["spec.clusterIP", "spec.type"];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_service_spec(&mut self.spec);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_service(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_service_update(self, old)
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "spec.clusterIP" => Some(self.spec.cluster_ip.clone()),
            "spec.type" => Some(
                self.spec
                    .type_
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }
}

/// The desired state of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// How the service is exposed; `ClusterIP` by default.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// The virtual IP, allocated by the server when empty; `None` makes a headless service.
    #[serde(rename = "clusterIP", skip_serializing_if = "String::is_empty")]
    pub cluster_ip: String,
    /// The virtual IPs (one per IP family); the first equals `clusterIP`.
    #[serde(rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// The ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// The labels of the pods behind the service; no endpoints are managed when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// `None` (the default) or `ClientIP` (a client keeps its backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Settings of the session affinity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// Publish addresses of pods that are not ready, too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publish_not_ready_addresses: bool,
}

/// How a service is exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    /// A virtual IP inside the cluster (the default).
    ClusterIP,
    /// The cluster IP, plus a port on every node.
    NodePort,
    /// An external load balancer (not supported by orchestra: validation rejects it).
    LoadBalancer,
    /// A DNS alias (not supported by orchestra: validation rejects it).
    ExternalName,
}

impl ServiceType {
    /// The type's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }
}

/// One port of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// The port's name; required when there is more than one port.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The protocol; `TCP` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The application protocol, e.g. `http` (for the mesh).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub app_protocol: String,
    /// The port on the cluster IP (1-65535).
    pub port: i32,
    /// The port on the pods: a number or a container port's name; `port` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// The port on every node, for `NodePort` services; allocated when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// How client sessions stick to backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionAffinity {
    /// No affinity (the default).
    None,
    /// A client IP keeps its backend for a timeout.
    ClientIP,
}

/// Settings of a service's session affinity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionAffinityConfig {
    /// Settings of `ClientIP` affinity.
    #[serde(rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// Settings of `ClientIP` session affinity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientIpConfig {
    /// How long a client keeps its backend, 1-86400 seconds; 10800 (3 hours) by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// The observed state of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceStatus {
    /// The load balancer's state (always empty in orchestra; kept for manifests that carry
    /// it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
}

/// The state of a load balancer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerStatus {
    /// The load balancer's ingress points.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// An ingress point of a load balancer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerIngress {
    /// An IP address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// A hostname.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}
