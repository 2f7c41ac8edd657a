//! [`DaemonSet`] (`apps/v1`): one pod on every (selected) node.

use serde::{Deserialize, Serialize};

use crate::meta::{IntOrString, LabelSelector, ObjectMeta, Time};
use crate::resource::Resource;
use crate::resources::common::ConditionStatus;
use crate::resources::pod::PodTemplateSpec;
use crate::validation::{self, ErrorList};

/// A daemon set (`apps/v1`, `DaemonSet`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSet {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: DaemonSetSpec,
    /// The observed state, written by the daemon set controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DaemonSetStatus>,
}

impl Resource for DaemonSet {
    const API_VERSION: &'static str = "apps/v1";
    const KIND: &'static str = "DaemonSet";
    const PLURAL: &'static str = "daemonsets";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_daemon_set(self);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_daemon_set(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_selector_unchanged(&self.spec.selector, &old.spec.selector)
    }
}

/// The desired state of a daemon set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetSpec {
    /// Which pods belong to it; must match the template's labels; immutable.
    pub selector: LabelSelector,
    /// The pod each node runs; `restartPolicy` must be `Always`.
    pub template: PodTemplateSpec,
    /// How pods are replaced when the template changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
    /// Seconds a new pod must be ready before it counts as available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Old revisions kept for rollback; 10 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
}

/// How a daemon set replaces its pods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` (the default) or `OnDelete`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<DaemonSetUpdateStrategyType>,
    /// The rolling update's limits (only with `RollingUpdate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDaemonSet>,
}

/// The kinds of daemon set update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DaemonSetUpdateStrategyType {
    /// Replace pods node by node, at most `maxUnavailable` at a time.
    RollingUpdate,
    /// Replace a pod only when it is deleted.
    OnDelete,
}

/// The limits of a daemon set's rolling update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdateDaemonSet {
    /// Nodes whose pod may be unavailable during the update: a number or a percentage; 1 by
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Nodes that may run an old and a new pod at once; 0 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

/// The observed state of a daemon set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetStatus {
    /// Nodes that run a daemon pod and should.
    pub current_number_scheduled: i32,
    /// Nodes that run a daemon pod and should not.
    pub number_misscheduled: i32,
    /// Nodes that should run a daemon pod.
    pub desired_number_scheduled: i32,
    /// Nodes whose daemon pod is ready.
    pub number_ready: i32,
    /// The generation the status reflects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Nodes running the current template's pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_number_scheduled: Option<i32>,
    /// Nodes whose daemon pod is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_available: Option<i32>,
    /// Nodes whose daemon pod is not available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_unavailable: Option<i32>,
    /// Hash collisions of revision names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DaemonSetCondition>,
}

/// One condition of a daemon set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSetCondition {
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
