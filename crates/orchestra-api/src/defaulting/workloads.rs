//! Defaults of Jobs, DaemonSets and Secrets.

use super::pod::default_pod_spec;
use crate::meta::{IntOrString, LabelSelector};
use crate::resources::{
    ByteString, CompletionMode, DaemonSet, DaemonSetUpdateStrategy, DaemonSetUpdateStrategyType,
    JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, Job, RollingUpdateDaemonSet, SECRET_TYPE_OPAQUE,
    Secret,
};

/// Fills a Job's defaults: `parallelism: 1`, `completions: 1` when neither is given,
/// `backoffLimit: 6`, `completionMode: NonIndexed`, `suspend: false`, `manualSelector:
/// false`, and the template's pod defaults (a template without `restartPolicy` gets `Always`,
/// which validation refuses for Jobs, as Kubernetes does).
pub fn default_job(job: &mut Job) {
    let spec = &mut job.spec;
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert(CompletionMode::NonIndexed);
    spec.suspend.get_or_insert(false);
    default_pod_spec(&mut spec.template.spec);
}

/// On create, unless `manualSelector` is true: the selector
/// `batch.kubernetes.io/controller-uid: <uid>`, and that label with
/// `batch.kubernetes.io/job-name` on the template.
pub fn generate_job_selector(job: &mut Job) {
    if job.spec.manual_selector == Some(true) {
        return;
    }
    let uid = job.metadata.uid.clone();
    let labels = &mut job.spec.template.metadata.labels;
    labels.insert(JOB_CONTROLLER_UID_LABEL.to_owned(), uid.clone());
    labels.insert(JOB_NAME_LABEL.to_owned(), job.metadata.name.clone());
    let mut selector = LabelSelector::default();
    selector
        .match_labels
        .insert(JOB_CONTROLLER_UID_LABEL.to_owned(), uid);
    job.spec.selector = Some(selector);
    job.spec.manual_selector = Some(false);
}

/// Fills a DaemonSet's defaults: `updateStrategy: RollingUpdate` with `maxUnavailable: 1`
/// and `maxSurge: 0`, `revisionHistoryLimit: 10`, and the template's pod defaults.
pub fn default_daemon_set(ds: &mut DaemonSet) {
    let spec = &mut ds.spec;
    let strategy = spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    let type_ = *strategy
        .type_
        .get_or_insert(DaemonSetUpdateStrategyType::RollingUpdate);
    if type_ == DaemonSetUpdateStrategyType::RollingUpdate {
        let rolling = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
        rolling.max_surge.get_or_insert(IntOrString::Int(0));
    }
    spec.revision_history_limit.get_or_insert(10);
    default_pod_spec(&mut spec.template.spec);
}

/// Fills a Secret's defaults: `type: Opaque`, and `stringData` merged into `data` (its
/// entries win) and emptied, so it is never stored.
pub fn default_secret(secret: &mut Secret) {
    if secret.type_.is_empty() {
        secret.type_ = SECRET_TYPE_OPAQUE.to_owned();
    }
    for (key, value) in std::mem::take(&mut secret.string_data) {
        secret.data.insert(key, ByteString(value.into_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_defaults() {
        let mut job = Job::default();
        default_job(&mut job);
        assert_eq!(
            (
                job.spec.parallelism,
                job.spec.completions,
                job.spec.backoff_limit
            ),
            (Some(1), Some(1), Some(6))
        );
        assert_eq!(job.spec.completion_mode, Some(CompletionMode::NonIndexed));
        let mut queue = Job::default();
        queue.spec.parallelism = Some(3);
        default_job(&mut queue);
        assert_eq!(
            (queue.spec.parallelism, queue.spec.completions),
            (Some(3), None)
        );
    }

    #[test]
    fn daemon_set_defaults_to_one_unavailable() {
        let mut ds = DaemonSet::default();
        default_daemon_set(&mut ds);
        let strategy = ds.spec.update_strategy.unwrap();
        assert_eq!(
            strategy.type_,
            Some(DaemonSetUpdateStrategyType::RollingUpdate)
        );
        assert_eq!(
            strategy.rolling_update.unwrap().max_unavailable,
            Some(IntOrString::Int(1))
        );
    }

    #[test]
    fn string_data_is_merged_into_data() {
        let mut secret = Secret::default();
        secret.data.insert("a".into(), ByteString::from("old"));
        secret.string_data.insert("a".into(), "new".into());
        secret.string_data.insert("b".into(), "two".into());
        default_secret(&mut secret);
        assert_eq!(secret.type_, "Opaque");
        assert!(secret.string_data.is_empty());
        assert_eq!(secret.data["a"], ByteString::from("new"));
        assert_eq!(secret.data["b"], ByteString::from("two"));
    }
}
