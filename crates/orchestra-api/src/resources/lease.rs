//! [`Lease`] (`coordination.k8s.io/v1`): a lock with a holder and a time to live, used for
//! node heartbeats and leader election.

use serde::{Deserialize, Serialize};

use crate::meta::{MicroTime, ObjectMeta};
use crate::resource::Resource;
use crate::validation::{self, ErrorList};

/// A lease (`coordination.k8s.io/v1`, `Lease`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lease {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The lease's holder and timing.
    pub spec: LeaseSpec,
}

impl Resource for Lease {
    const API_VERSION: &'static str = "coordination.k8s.io/v1";
    const KIND: &'static str = "Lease";
    const PLURAL: &'static str = "leases";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_lease(self)
    }
}

/// The state of a lease.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaseSpec {
    /// Who holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long the holder's claim lasts after `renewTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    /// When the current holder acquired it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<MicroTime>,
    /// When the holder last renewed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,
    /// How often it changed hands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i32>,
}
