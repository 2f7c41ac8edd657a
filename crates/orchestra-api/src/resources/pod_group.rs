//! [`PodGroup`] (`scheduling.x-k8s.io/v1alpha1`): a gang, pods the scheduler places all
//! together or not at all (the shape of sig-scheduling's coscheduling PodGroup).
//!
//! A pod joins the group `NAME` of its namespace with the label
//! `scheduling.x-k8s.io/pod-group: NAME` ([`POD_GROUP_LABEL`]). The scheduler holds placed
//! members at Permit until `spec.minMember` of them are placed, for at most
//! `spec.scheduleTimeoutSeconds`, and writes `status`.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::Resource;
use crate::validation::{self, ErrorList};

/// The label naming the PodGroup a pod belongs to (in the pod's namespace).
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

/// A gang of pods (`scheduling.x-k8s.io/v1alpha1`, `PodGroup`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodGroup {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What the group needs.
    pub spec: PodGroupSpec,
    /// What the scheduler observed (written through the status subresource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PodGroupStatus>,
}

/// What a gang needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodGroupSpec {
    /// How many members must be placed before any is bound (at least 1).
    pub min_member: i32,
    /// How long a placed member waits for the rest at Permit, in seconds (at least 1); unset:
    /// the Coscheduling plugin's `permitWaitingTimeSeconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
}

/// Where a gang is, as the scheduler sees its members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodGroupPhase {
    /// Fewer than `minMember` members are placed and none waits at Permit.
    #[default]
    Pending,
    /// Some members are placed or waiting at Permit, fewer than `minMember` bound.
    Scheduling,
    /// At least `minMember` members are bound to nodes.
    Scheduled,
    /// At least `minMember` members are running (or have succeeded).
    Running,
    /// A member failed.
    Failed,
}

/// What the scheduler observed of a gang.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodGroupStatus {
    /// The gang's phase.
    pub phase: PodGroupPhase,
    /// Members bound to a node (not being deleted).
    pub scheduled: i32,
    /// Members running or succeeded.
    pub running: i32,
    /// Members failed.
    pub failed: i32,
}

impl Resource for PodGroup {
    const API_VERSION: &'static str = "scheduling.x-k8s.io/v1alpha1";
    const KIND: &'static str = "PodGroup";
    const PLURAL: &'static str = "podgroups";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_pod_group(self)
    }
}
