//! [`Endpoints`] (`v1`): the addresses and ports of the pods behind a service, kept by the
//! endpoints controller and read by every node's service proxy.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::Resource;
use crate::resources::common::{ObjectReference, Protocol};
use crate::validation::{self, ErrorList};

/// The endpoints of a service (`v1`, `Endpoints`, namespaced, named after the service).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoints {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Groups of addresses sharing the same ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<EndpointSubset>,
}

impl Resource for Endpoints {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Endpoints";
    const PLURAL: &'static str = "endpoints";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        for port in self.subsets.iter_mut().flat_map(|s| s.ports.iter_mut()) {
            port.protocol.get_or_insert(Protocol::Tcp);
        }
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_endpoints(self)
    }
}

/// Addresses that share a set of ports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSubset {
    /// Ready addresses, to route to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointAddress>,
    /// Addresses whose pods are not ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// The ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// One backend address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointAddress {
    /// The IP address.
    pub ip: String,
    /// The backend's hostname, if it has one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// The node the backend runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The backend object (a Pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// One port of an endpoint subset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    /// The name of the service port it serves.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The port number on the backends.
    pub port: i32,
    /// The protocol; `TCP` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The application protocol.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub app_protocol: String,
}
