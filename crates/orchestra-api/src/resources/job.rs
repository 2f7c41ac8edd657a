//! [`Job`] (`batch/v1`): runs pods until a number of them succeed.

use serde::{Deserialize, Serialize};

use crate::meta::{LabelSelector, ObjectMeta, Time};
use crate::resource::Resource;
use crate::resources::common::ConditionStatus;
use crate::resources::pod::PodTemplateSpec;
use crate::validation::{self, ErrorList};

/// The label (and selector) that ties a Job's pods to it, with the Job's uid.
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label with the Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// A job (`batch/v1`, `Job`, namespaced).
///
/// Unless `spec.manualSelector` is true, the registry generates the selector on create
/// (`batch.kubernetes.io/controller-uid: <uid>`) and puts those labels, and
/// `batch.kubernetes.io/job-name`, on the template, as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: JobSpec,
    /// The observed state, written by the job controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
}

impl Resource for Job {
    const API_VERSION: &'static str = "batch/v1";
    const KIND: &'static str = "Job";
    const PLURAL: &'static str = "jobs";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_job(self);
    }

    fn prepare_for_create(&mut self) {
        crate::defaulting::generate_job_selector(self);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_job(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_job_update(self, old)
    }
}

/// How a job counts completions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompletionMode {
    /// Any `completions` successful pods complete the job (the default).
    #[default]
    NonIndexed,
    /// Each index 0..completions must succeed once: every pod carries its index (the
    /// `batch.kubernetes.io/job-completion-index` annotation and label, the
    /// `JOB_COMPLETION_INDEX` environment variable), and `status.completedIndexes` lists the
    /// indexes done. `completions` is required.
    Indexed,
}

/// The desired state of a job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobSpec {
    /// How many pods run at once, at most; 1 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// How many pods must succeed; 1 by default when `parallelism` is unset too (unset with a
    /// `parallelism`: a work queue, done when one pod succeeds and none runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// Seconds the job may run before it is failed, counted from its start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Failed pods tolerated before the job fails; 6 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// `NonIndexed` (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<CompletionMode>,
    /// Suspends the job: no pods are created while true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Seconds after the job finished before it is deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Whether `selector` is the user's own (else the registry generates it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_selector: Option<bool>,
    /// Which pods belong to the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pods it runs; `restartPolicy` must be `OnFailure` or `Never`.
    pub template: PodTemplateSpec,
}

/// The observed state of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobStatus {
    /// Pods running or pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Pods that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Pods that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// `Complete`, `Failed`, `Suspended`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    /// When the job controller started the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job completed (successfully).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Indexed jobs: the indexes whose pod succeeded, as ranges (`1,3-5,7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_indexes: Option<String>,
}

/// One condition of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobCondition {
    /// `Complete`, `Failed`, `Suspended`, `FailureTarget`, `SuccessCriteriaMet`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// When it was last checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// A CamelCase reason, e.g. `BackoffLimitExceeded`, `DeadlineExceeded`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}
