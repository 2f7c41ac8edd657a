//! [`TrafficSplit`] (`mesh.orchestra.dev/v1alpha1`): the requests for a service (the apex)
//! divided between backend services by weight, for canaries and blue-green rollouts, with the
//! fields of SMI's `split.smi-spec.io` TrafficSplit (`spec.service`, `spec.backends`). The
//! mesh's sidecars follow these objects (`orchestra_mesh::l7::SplitFollower`).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::Resource;
use crate::validation::{self, ErrorList};

/// A traffic split (`mesh.orchestra.dev/v1alpha1`, `TrafficSplit`, namespaced).
///
/// ```yaml
/// apiVersion: mesh.orchestra.dev/v1alpha1
/// kind: TrafficSplit
/// metadata: {name: web-canary, namespace: shop}
/// spec:
///   service: web
///   backends:
///   - {service: web-v1, weight: 90}
///   - {service: web-v2, weight: 10}
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficSplit {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The apex service and its backends.
    pub spec: TrafficSplitSpec,
}

/// What a [`TrafficSplit`] divides, and how.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficSplitSpec {
    /// The apex service: the name clients address (in the split's namespace).
    pub service: String,
    /// The services that answer the apex's requests, each with its share.
    pub backends: Vec<TrafficSplitBackend>,
}

/// One backend of a [`TrafficSplit`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficSplitBackend {
    /// The backend service, in the split's namespace. Its ports are matched to the apex's
    /// by name.
    pub service: String,
    /// Its share of the requests relative to the other backends' (0: none).
    pub weight: i32,
}

impl Resource for TrafficSplit {
    const API_VERSION: &'static str = "mesh.orchestra.dev/v1alpha1";
    const KIND: &'static str = "TrafficSplit";
    const PLURAL: &'static str = "trafficsplits";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_traffic_split(self)
    }
}
