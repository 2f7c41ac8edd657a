//! [`StatefulSet`] (`apps/v1`): pods with a stable identity, `NAME-0` to `NAME-(replicas-1)`,
//! created, scaled and updated in ordinal order.
//!
//! orchestra has no PersistentVolumeClaims: `spec.volumeClaimTemplates` is decoded so that a
//! manifest with it gets a clear validation error instead of an unknown-field one, and must be
//! empty.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{IntOrString, LabelSelector, ObjectMeta, Time};
use crate::resource::Resource;
use crate::resources::common::ConditionStatus;
use crate::resources::pod::PodTemplateSpec;
use crate::validation::{self, ErrorList};

/// The label with a stateful pod's own name (`NAME-ORDINAL`), so that a Service can select
/// exactly one of them.
pub const STATEFUL_SET_POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a stateful pod's ordinal.
pub const STATEFUL_SET_POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// A stateful set (`apps/v1`, `StatefulSet`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSet {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: StatefulSetSpec,
    /// The observed state, written by the stateful set controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatefulSetStatus>,
}

impl Resource for StatefulSet {
    const API_VERSION: &'static str = "apps/v1";
    const KIND: &'static str = "StatefulSet";
    const PLURAL: &'static str = "statefulsets";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_stateful_set(self);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_stateful_set(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_stateful_set_update(self, old)
    }
}

/// The desired state of a stateful set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetSpec {
    /// How many pods; 1 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Which pods belong to it; must match the template's labels; immutable.
    pub selector: LabelSelector,
    /// The pod every ordinal runs; `restartPolicy` must be `Always`.
    pub template: PodTemplateSpec,
    /// Not supported (orchestra has no PersistentVolumeClaims): must be empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_claim_templates: Vec<Value>,
    /// The headless Service that gives the pods their DNS names (`POD.SERVICE`): each pod's
    /// `spec.subdomain`; immutable.
    pub service_name: String,
    /// `OrderedReady` (the default: one pod at a time, in order) or `Parallel`; immutable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<PodManagementPolicyType>,
    /// How pods are replaced when the template changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    /// Old revisions kept for rollback; 10 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Seconds a new pod must be ready before it counts as available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
}

/// How a stateful set creates and deletes its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodManagementPolicyType {
    /// Create in ordinal order, each once all before it are running and ready; delete in
    /// reverse order, each once the one after it is gone.
    OrderedReady,
    /// Create and delete all at once.
    Parallel,
}

/// How a stateful set replaces its pods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetUpdateStrategy {
    /// `RollingUpdate` (the default) or `OnDelete`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<StatefulSetUpdateStrategyType>,
    /// The rolling update's settings (only with `RollingUpdate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateStatefulSetStrategy>,
}

/// The kinds of stateful set update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StatefulSetUpdateStrategyType {
    /// Replace pods from the highest ordinal down to the partition.
    RollingUpdate,
    /// Replace a pod only when it is deleted.
    OnDelete,
}

/// The settings of a stateful set's rolling update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdateStatefulSetStrategy {
    /// Pods with an ordinal below it keep the current revision; 0 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Pods that may be unavailable during the update: a number or a percentage of replicas;
    /// 1 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// The observed state of a stateful set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetStatus {
    /// The generation the status reflects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods the stateful set has.
    pub replicas: i32,
    /// Pods running and ready.
    #[serde(skip_serializing_if = "is_zero")]
    pub ready_replicas: i32,
    /// Pods of `currentRevision`.
    #[serde(skip_serializing_if = "is_zero")]
    pub current_replicas: i32,
    /// Pods of `updateRevision`.
    #[serde(skip_serializing_if = "is_zero")]
    pub updated_replicas: i32,
    /// Pods ready for at least `minReadySeconds`.
    #[serde(skip_serializing_if = "is_zero")]
    pub available_replicas: i32,
    /// The revision (a ControllerRevision's name) of the pods below the partition.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    /// The revision of the current template.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
    /// Hash collisions of revision names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StatefulSetCondition>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// One condition of a stateful set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSetCondition {
    /// The condition's type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}
