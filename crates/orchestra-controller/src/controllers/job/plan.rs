//! The Job controller's decisions, as pure functions: a job, the pods it controls, its failure
//! record and the time in, the exact writes out.
//!
//! Kubernetes' rules for a non-indexed job: with `completions` set, the job is complete when
//! that many pods succeeded, and runs `min(parallelism, completions - succeeded)` pods until
//! then; without it (a work queue), the job is complete once a pod succeeded and none is still
//! running, and no new pod starts after the first success. The job fails when more than
//! `backoffLimit` pods failed (with `restartPolicy: OnFailure`, when the restarts of its
//! running pods reach the limit), or when it has been active longer than
//! `activeDeadlineSeconds`; a failed or complete job's running pods are deleted. After pod
//! failures, new pods wait 10 s, doubling per failure since the last success, at most 6 min.
//!
//! An `Indexed` job (`completionMode: Indexed`) needs each index of `0..completions` to
//! succeed once: each pod is made for one index (named `{job}-{index}-...`, carrying it in the
//! [`COMPLETION_INDEX_ANNOTATION`] annotation and label and the [`COMPLETION_INDEX_ENV`]
//! variable), the lowest indexes neither done nor running start first, a pod whose index is
//! done, invalid or already running elsewhere is deleted, and `status.completedIndexes` lists
//! the done ones as ranges.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::resources::{
    CompletionMode, ConditionStatus, EnvVar, Job, JobCondition, JobStatus, Pod, PodPhase,
    RestartPolicy,
};
use orchestra_api::{OwnerReference, Resource, Time};

use crate::controllers::clock;
use crate::controllers::pods;

/// Failed pods a job tolerates when `spec.backoffLimit` is unset.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;
/// The wait before the pod that follows the first failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest wait between failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// At most this many pods are created or deleted in one sync.
pub const BURST_PODS: usize = 500;

/// A job's recent failures, as the controller observed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Pods that failed since the last pod succeeded.
    pub failures_after_last_success: u32,
    /// When the controller saw the latest of them fail.
    pub last_failure: Option<jiff::Timestamp>,
}

/// The wait after `failures` consecutive pod failures: none, then 10 s, 20 s, 40 s, ... at
/// most 6 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// The annotation (and label) with an Indexed job's pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable with the completion index, in each container of the pod.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// What one sync of a job must do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// How many pods to create from the template.
    pub create: usize,
    /// Indexed jobs: the indexes to create a pod for ([`pod_for_index`]), lowest first.
    pub create_indexes: Vec<i32>,
    /// Pods to delete, the most deletable first.
    pub delete: Vec<String>,
    /// The status the job should report.
    pub status: JobStatus,
    /// Sync again after this long (a backoff or the deadline runs out).
    pub recheck_after: Option<Duration>,
}

/// The controller reference a job puts on its pods.
pub fn controller_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: Job::API_VERSION.into(),
        kind: Job::KIND.into(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod from the job's template: named `{job}-` plus a random suffix, controlled by the job.
pub fn pod_from_template(job: &Job) -> Pod {
    let template = &job.spec.template;
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Pod::default()
    };
    let meta = &mut pod.metadata;
    meta.generate_name = format!("{}-", job.metadata.name);
    meta.namespace.clone_from(&job.metadata.namespace);
    meta.labels.clone_from(&template.metadata.labels);
    meta.annotations.clone_from(&template.metadata.annotations);
    meta.owner_references = vec![controller_ref(job)];
    pod
}

/// Whether `job` counts completions by index (`completionMode: Indexed`, with `completions`).
pub fn is_indexed(job: &Job) -> bool {
    job.spec.completion_mode == Some(CompletionMode::Indexed) && job.spec.completions.is_some()
}

/// The pod for `index` of an Indexed job: the template's, named `{job}-{index}-...`, with the
/// index as annotation, label and environment variable. The variable holds the value itself
/// rather than a `fieldRef` to the annotation: the index never changes in a pod's life, so it
/// is the same, and needs nothing of the node agent.
pub fn pod_for_index(job: &Job, index: i32) -> Pod {
    let mut pod = pod_from_template(job);
    let value = index.to_string();
    pod.metadata.generate_name = format!("{}-{index}-", job.metadata.name);
    pod.metadata
        .annotations
        .insert(COMPLETION_INDEX_ANNOTATION.into(), value.clone());
    pod.metadata
        .labels
        .insert(COMPLETION_INDEX_ANNOTATION.into(), value.clone());
    for container in pod
        .spec
        .init_containers
        .iter_mut()
        .chain(pod.spec.containers.iter_mut())
    {
        container.env.retain(|e| e.name != COMPLETION_INDEX_ENV);
        container.env.push(EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value: Some(value.clone()),
            ..EnvVar::default()
        });
    }
    pod
}

/// The completion index a pod carries, if it is a valid one below `completions`.
pub fn pod_index(pod: &Pod, completions: i32) -> Option<i32> {
    pod.metadata
        .annotations
        .get(COMPLETION_INDEX_ANNOTATION)?
        .parse::<i32>()
        .ok()
        .filter(|i| (0..completions).contains(i))
}

/// Parses `completedIndexes` (`1,3-5`), keeping the indexes below `completions` (a part that
/// does not parse is skipped: the pods that succeeded are counted again anyway).
pub fn parse_indexes(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((a, b)) => a.parse::<i32>().ok().zip(b.parse::<i32>().ok()),
            None => part.parse::<i32>().ok().map(|i| (i, i)),
        };
        if let Some((first, last)) = range {
            out.extend((first.max(0)..=last.min(completions - 1)).filter(|_| first <= last));
        }
    }
    out
}

/// Formats indexes as Kubernetes' `completedIndexes`: ascending, runs as `first-last`.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    parts.join(",")
}

/// Whether the job has finished: a `Complete` or `Failed` condition holds.
pub fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            (c.type_ == "Complete" || c.type_ == "Failed") && c.status == ConditionStatus::True
        })
    })
}

fn phase(pod: &Pod) -> Option<PodPhase> {
    pod.status.as_ref().and_then(|s| s.phase)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The restarts of a pod's containers (init containers included).
fn restarts(pod: &Pod) -> i64 {
    pod.status.as_ref().map_or(0, |s| {
        s.container_statuses
            .iter()
            .chain(&s.init_container_statuses)
            .map(|c| i64::from(c.restart_count))
            .sum()
    })
}

fn condition(type_: &str, reason: &str, message: &str, now: Time) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: ConditionStatus::True,
        last_probe_time: Some(now),
        last_transition_time: Some(now),
        reason: reason.into(),
        message: message.into(),
    }
}

/// Decides one sync of `job` from the pods it controls, its [`BackoffRecord`] and `now` (see
/// the module docs).
pub fn plan(job: &Job, owned: &[Arc<Pod>], backoff: &BackoffRecord, now: jiff::Timestamp) -> Plan {
    let previous = job.status.clone().unwrap_or_default();
    let now_time = Time::new(now);
    let mut active: Vec<&Pod> = owned
        .iter()
        .map(Arc::as_ref)
        .filter(|p| pods::is_active(p))
        .collect();
    let counted = |wanted: PodPhase| owned.iter().filter(|p| phase(p) == Some(wanted)).count();
    // Pods only ever move into Succeeded or Failed, so a count lower than the last one means
    // finished pods were deleted: keep the higher.
    let mut succeeded = count(counted(PodPhase::Succeeded)).max(previous.succeeded.unwrap_or(0));
    let failed = count(counted(PodPhase::Failed)).max(previous.failed.unwrap_or(0));
    let suspended = job.spec.suspend == Some(true);
    // Indexed: the indexes done, from the status and the pods that succeeded.
    let indexed = is_indexed(job).then(|| {
        let completions = job.spec.completions.unwrap_or(0);
        let mut done = parse_indexes(
            previous.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        done.extend(
            owned
                .iter()
                .filter(|p| phase(p) == Some(PodPhase::Succeeded))
                .filter_map(|p| pod_index(p, completions)),
        );
        (completions, done)
    });
    if let Some((_, done)) = &indexed {
        succeeded = count(done.len());
    }
    let mut status = JobStatus {
        active: Some(count(active.len())),
        succeeded: Some(succeeded),
        failed: Some(failed),
        start_time: previous.start_time.or((!suspended).then_some(now_time)),
        completed_indexes: indexed
            .as_ref()
            .map(|(_, done)| format_indexes(done))
            .filter(|text| !text.is_empty()),
        ..previous.clone()
    };
    let mut plan = Plan::default();
    let delete_all = |plan: &mut Plan, active: &mut Vec<&Pod>| {
        active.sort_by(|a, b| pods::deletion_order(a, b));
        plan.delete = active
            .iter()
            .map(|p| p.metadata.name.clone())
            .take(BURST_PODS)
            .collect();
    };

    if is_finished(job) || job.metadata.deletion_timestamp.is_some() {
        // Finished: only stragglers of the last sync's deletions remain to go.
        if is_finished(job) {
            delete_all(&mut plan, &mut active);
        }
        plan.status = status;
        return plan;
    }

    let backoff_limit = job
        .spec
        .backoff_limit
        .unwrap_or(DEFAULT_BACKOFF_LIMIT)
        .max(0);
    let on_failure = job.spec.template.spec.restart_policy == Some(RestartPolicy::OnFailure);
    let restarted: i64 = active.iter().map(|p| restarts(p)).sum();
    let past_restart_limit = on_failure
        && if backoff_limit == 0 {
            restarted > 0
        } else {
            restarted >= i64::from(backoff_limit)
        };
    let deadline = job
        .spec
        .active_deadline_seconds
        .filter(|_| !suspended)
        .zip(status.start_time)
        .map(|(secs, start)| {
            clock::add(
                start.timestamp(),
                Duration::from_secs(secs.max(0).unsigned_abs()),
            )
        });
    let failure = if failed > backoff_limit || past_restart_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if deadline.is_some_and(|d| now >= d) {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        delete_all(&mut plan, &mut active);
        status.active = Some(0);
        status
            .conditions
            .push(condition("Failed", reason, message, now_time));
        plan.status = status;
        return plan;
    }

    let parallelism = job.spec.parallelism.unwrap_or(1).max(0);
    let (complete, want_active) = match job.spec.completions {
        Some(completions) => {
            let complete = succeeded >= completions.max(0);
            (complete, parallelism.min(completions - succeeded).max(0))
        }
        // A work queue: the first success means the work is done; running pods finish.
        None if succeeded > 0 => (active.is_empty(), count(active.len())),
        None => (false, parallelism),
    };
    if complete {
        delete_all(&mut plan, &mut active);
        status.active = Some(0);
        status.completion_time = Some(now_time);
        status
            .conditions
            .push(condition("Complete", "", "", now_time));
        plan.status = status;
        return plan;
    }
    // Indexed: a pod whose index is invalid, done, or running in an older pod already is
    // surplus, whatever the counts say.
    let mut surplus: Vec<String> = Vec::new();
    let mut pending: Vec<i32> = Vec::new();
    if let Some((completions, done)) = &indexed {
        active.sort_by_key(|p| (p.metadata.creation_timestamp, p.metadata.name.clone()));
        let mut running = BTreeSet::new();
        active.retain(|p| {
            let keep =
                pod_index(p, *completions).is_some_and(|i| !done.contains(&i) && running.insert(i));
            if !keep {
                surplus.push(p.metadata.name.clone());
            }
            keep
        });
        pending = (0..*completions)
            .filter(|i| !done.contains(i) && !running.contains(i))
            .collect();
    }
    let want = usize::try_from(if suspended { 0 } else { want_active }).unwrap_or(0);
    if active.len() < want {
        let ready_at = backoff
            .last_failure
            .map(|at| clock::add(at, backoff_delay(backoff.failures_after_last_success)));
        match ready_at {
            Some(at) if now < at => plan.recheck_after = Some(clock::until(now, at)),
            _ => plan.create = (want - active.len()).min(BURST_PODS),
        }
    } else if active.len() > want {
        active.sort_by(|a, b| pods::deletion_order(a, b));
        plan.delete = active
            .iter()
            .take((active.len() - want).min(BURST_PODS))
            .map(|p| p.metadata.name.clone())
            .collect();
    }
    if let Some(deadline) = deadline {
        let left = clock::until(now, deadline);
        plan.recheck_after = Some(plan.recheck_after.map_or(left, |r| r.min(left)));
    }
    if indexed.is_some() {
        plan.create_indexes = pending.into_iter().take(plan.create).collect();
        plan.create = 0;
    }
    let creating = plan.create + plan.create_indexes.len();
    status.active = Some(count(active.len() + creating - plan.delete.len()));
    let room = BURST_PODS.saturating_sub(plan.delete.len());
    plan.delete.extend(surplus.into_iter().take(room));
    plan.status = status;
    plan
}

/// Updates a job's [`BackoffRecord`] with what its pods show at `now`: failures not seen
/// before (listed in `seen_failed`, which it extends) count and move `last_failure` to now; a
/// success count above `seen_succeeded` resets the record.
pub fn observe(
    record: &BackoffRecord,
    owned: &[Arc<Pod>],
    seen_failed: &mut std::collections::HashSet<String>,
    seen_succeeded: &mut usize,
    now: jiff::Timestamp,
) -> BackoffRecord {
    let mut record = record.clone();
    let succeeded = owned
        .iter()
        .filter(|p| phase(p) == Some(PodPhase::Succeeded))
        .count();
    if succeeded > *seen_succeeded {
        record = BackoffRecord::default();
    }
    *seen_succeeded = (*seen_succeeded).max(succeeded);
    for pod in owned {
        if phase(pod) == Some(PodPhase::Failed) && seen_failed.insert(pod.metadata.uid.clone()) {
            record.failures_after_last_success += 1;
            record.last_failure = Some(now);
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use orchestra_api::ObjectMeta;
    use orchestra_api::resources::{ContainerStatus, PodStatus};

    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";

    fn at(secs: i64) -> jiff::Timestamp {
        T0.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(secs)
    }

    fn job(completions: Option<i32>, parallelism: i32) -> Job {
        let mut job = Job {
            metadata: ObjectMeta::namespaced("ns", "batch"),
            ..Job::default()
        };
        job.metadata.uid = "job-uid".into();
        job.spec.completions = completions;
        job.spec.parallelism = Some(parallelism);
        job.spec.template.spec.restart_policy = Some(RestartPolicy::Never);
        job
    }

    fn pod(name: &str, phase: PodPhase) -> Arc<Pod> {
        let mut pod = Pod {
            metadata: ObjectMeta::namespaced("ns", name),
            ..Pod::default()
        };
        pod.metadata.uid = format!("{name}-uid");
        pod.metadata.creation_timestamp = Some(Time::new(at(0)));
        pod.status = Some(PodStatus {
            phase: Some(phase),
            ..PodStatus::default()
        });
        Arc::new(pod)
    }

    fn started(mut job: Job, secs: i64) -> Job {
        job.status = Some(JobStatus {
            start_time: Some(Time::new(at(secs))),
            ..JobStatus::default()
        });
        job
    }

    #[test]
    fn runs_parallelism_pods_but_no_more_than_completions_left() {
        let p = plan(&job(Some(5), 2), &[], &BackoffRecord::default(), at(0));
        assert_eq!(p.create, 2);
        assert_eq!(p.status.active, Some(2));
        assert_eq!(p.status.start_time, Some(Time::new(at(0))));

        let pods = vec![
            pod("a", PodPhase::Succeeded),
            pod("b", PodPhase::Succeeded),
            pod("c", PodPhase::Succeeded),
            pod("d", PodPhase::Succeeded),
            pod("e", PodPhase::Running),
        ];
        let p = plan(
            &started(job(Some(5), 2), 0),
            &pods,
            &BackoffRecord::default(),
            at(5),
        );
        assert_eq!((p.create, p.delete.len()), (0, 0), "one left, one running");
        assert_eq!(p.status.succeeded, Some(4));
        assert_eq!(p.status.active, Some(1));
    }

    #[test]
    fn completes_when_enough_pods_succeeded_and_deletes_the_rest() {
        let pods = vec![
            pod("a", PodPhase::Succeeded),
            pod("b", PodPhase::Succeeded),
            pod("c", PodPhase::Running),
        ];
        let p = plan(
            &started(job(Some(2), 3), 0),
            &pods,
            &BackoffRecord::default(),
            at(9),
        );
        assert_eq!(p.delete, ["c"]);
        assert_eq!(p.create, 0);
        let status = p.status;
        assert_eq!(status.active, Some(0));
        assert_eq!(status.completion_time, Some(Time::new(at(9))));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].type_, "Complete");
        assert_eq!(status.conditions[0].status, ConditionStatus::True);
    }

    #[test]
    fn a_work_queue_completes_after_a_success_once_nothing_runs() {
        let running = vec![pod("a", PodPhase::Succeeded), pod("b", PodPhase::Running)];
        let plan1 = plan(
            &started(job(None, 3), 0),
            &running,
            &BackoffRecord::default(),
            at(1),
        );
        assert_eq!(
            (plan1.create, plan1.delete.len()),
            (0, 0),
            "no new pod after a success"
        );
        assert!(plan1.status.conditions.is_empty());
        let done = vec![pod("a", PodPhase::Succeeded), pod("b", PodPhase::Succeeded)];
        let plan2 = plan(
            &started(job(None, 3), 0),
            &done,
            &BackoffRecord::default(),
            at(2),
        );
        assert_eq!(plan2.status.conditions[0].type_, "Complete");
        assert_eq!(plan2.status.succeeded, Some(2));
    }

    #[test]
    fn failures_delay_new_pods_with_doubling_backoff() {
        assert_eq!(backoff_delay(0), Duration::ZERO);
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(2), Duration::from_secs(20));
        assert_eq!(backoff_delay(3), Duration::from_secs(40));
        assert_eq!(backoff_delay(6), Duration::from_secs(320));
        assert_eq!(backoff_delay(7), BACKOFF_MAX);
        assert_eq!(backoff_delay(1000), BACKOFF_MAX);

        let pods = vec![pod("a", PodPhase::Failed), pod("b", PodPhase::Failed)];
        let record = BackoffRecord {
            failures_after_last_success: 2,
            last_failure: Some(at(100)),
        };
        let waiting = plan(&started(job(Some(1), 1), 0), &pods, &record, at(105));
        assert_eq!(waiting.create, 0);
        assert_eq!(waiting.recheck_after, Some(Duration::from_secs(15)));
        assert_eq!(waiting.status.failed, Some(2));
        let ready = plan(&started(job(Some(1), 1), 0), &pods, &record, at(120));
        assert_eq!(ready.create, 1);
        assert_eq!(ready.recheck_after, None);
    }

    #[test]
    fn more_failures_than_the_backoff_limit_fail_the_job() {
        let mut j = started(job(Some(3), 2), 0);
        j.spec.backoff_limit = Some(1);
        let pods = vec![
            pod("a", PodPhase::Failed),
            pod("b", PodPhase::Failed),
            pod("c", PodPhase::Running),
        ];
        let p = plan(&j, &pods, &BackoffRecord::default(), at(50));
        assert_eq!(p.delete, ["c"]);
        assert_eq!(p.create, 0);
        let failed = &p.status.conditions[0];
        assert_eq!(
            (failed.type_.as_str(), failed.reason.as_str()),
            ("Failed", "BackoffLimitExceeded")
        );
        assert_eq!(p.status.failed, Some(2));
        assert_eq!(p.status.active, Some(0));
        // Exactly the limit is still tolerated.
        let tolerated = vec![pod("a", PodPhase::Failed)];
        let p = plan(&j, &tolerated, &BackoffRecord::default(), at(50));
        assert!(p.status.conditions.is_empty());
        assert_eq!(p.create, 2);
    }

    #[test]
    fn on_failure_counts_the_restarts_of_running_pods() {
        let mut j = started(job(Some(1), 1), 0);
        j.spec.backoff_limit = Some(3);
        j.spec.template.spec.restart_policy = Some(RestartPolicy::OnFailure);
        let mut restarting = (*pod("a", PodPhase::Running)).clone();
        restarting.status.as_mut().unwrap().container_statuses = vec![ContainerStatus {
            restart_count: 2,
            ..ContainerStatus::default()
        }];
        let plan1 = plan(
            &j,
            &[Arc::new(restarting.clone())],
            &BackoffRecord::default(),
            at(1),
        );
        assert!(plan1.status.conditions.is_empty(), "2 restarts < 3");
        restarting.status.as_mut().unwrap().container_statuses[0].restart_count = 3;
        let plan2 = plan(
            &j,
            &[Arc::new(restarting.clone())],
            &BackoffRecord::default(),
            at(2),
        );
        assert_eq!(plan2.status.conditions[0].reason, "BackoffLimitExceeded");
        assert_eq!(plan2.delete, ["a"]);
        // With Never, restarts do not count (the kubelet does not restart such pods).
        j.spec.template.spec.restart_policy = Some(RestartPolicy::Never);
        let plan3 = plan(
            &j,
            &[Arc::new(restarting)],
            &BackoffRecord::default(),
            at(2),
        );
        assert!(plan3.status.conditions.is_empty());
    }

    #[test]
    fn the_active_deadline_fails_the_job_and_is_rechecked_before() {
        let mut j = started(job(Some(1), 1), 0);
        j.spec.active_deadline_seconds = Some(30);
        let pods = vec![pod("a", PodPhase::Running)];
        let early = plan(&j, &pods, &BackoffRecord::default(), at(10));
        assert_eq!(early.recheck_after, Some(Duration::from_secs(20)));
        assert!(early.status.conditions.is_empty());
        let late = plan(&j, &pods, &BackoffRecord::default(), at(30));
        assert_eq!(late.status.conditions[0].reason, "DeadlineExceeded");
        assert_eq!(late.delete, ["a"]);
    }

    #[test]
    fn a_finished_job_creates_nothing_and_clears_stragglers() {
        let mut j = started(job(Some(1), 1), 0);
        j.status.as_mut().unwrap().conditions = vec![condition(
            "Failed",
            "DeadlineExceeded",
            "",
            Time::new(at(1)),
        )];
        let pods = vec![pod("a", PodPhase::Running), pod("b", PodPhase::Failed)];
        let p = plan(&j, &pods, &BackoffRecord::default(), at(100));
        assert_eq!((p.create, p.delete.clone()), (0, vec!["a".to_owned()]));
        assert_eq!(p.status.conditions.len(), 1, "no second condition");
    }

    #[test]
    fn a_suspended_job_runs_nothing() {
        let mut j = job(Some(2), 2);
        j.spec.suspend = Some(true);
        let p = plan(
            &j,
            &[pod("a", PodPhase::Running)],
            &BackoffRecord::default(),
            at(0),
        );
        assert_eq!((p.create, p.delete.clone()), (0, vec!["a".to_owned()]));
        assert_eq!(p.status.start_time, None);
    }

    #[test]
    fn observation_counts_new_failures_and_resets_on_success() {
        let mut seen = HashSet::new();
        let mut succeeded = 0;
        let pods = vec![pod("a", PodPhase::Failed)];
        let r = observe(
            &BackoffRecord::default(),
            &pods,
            &mut seen,
            &mut succeeded,
            at(5),
        );
        assert_eq!(
            (r.failures_after_last_success, r.last_failure),
            (1, Some(at(5)))
        );
        let again = observe(&r, &pods, &mut seen, &mut succeeded, at(9));
        assert_eq!(again, r, "the same failure counts once");
        let pods = vec![pod("a", PodPhase::Failed), pod("b", PodPhase::Failed)];
        let r = observe(&r, &pods, &mut seen, &mut succeeded, at(20));
        assert_eq!(
            (r.failures_after_last_success, r.last_failure),
            (2, Some(at(20)))
        );
        let pods = vec![
            pod("a", PodPhase::Failed),
            pod("b", PodPhase::Failed),
            pod("c", PodPhase::Succeeded),
        ];
        let r = observe(&r, &pods, &mut seen, &mut succeeded, at(30));
        assert_eq!(r, BackoffRecord::default());
    }

    #[test]
    fn template_pods_are_controlled_by_the_job() {
        let mut j = job(Some(1), 1);
        j.spec
            .template
            .metadata
            .labels
            .insert("batch.kubernetes.io/job-name".into(), "batch".into());
        let pod = pod_from_template(&j);
        assert_eq!(pod.metadata.generate_name, "batch-");
        assert_eq!(pod.metadata.labels["batch.kubernetes.io/job-name"], "batch");
        assert_eq!(pod.metadata.controller_ref().unwrap().uid, "job-uid");
        assert_eq!(pod.spec.restart_policy, Some(RestartPolicy::Never));
    }

    fn indexed(completions: i32, parallelism: i32) -> Job {
        let mut job = job(Some(completions), parallelism);
        job.spec.completion_mode = Some(CompletionMode::Indexed);
        job.spec
            .template
            .spec
            .containers
            .push(orchestra_api::resources::Container::default());
        job
    }

    /// A pod of `job` for `index`, in `phase`.
    fn index_pod(job: &Job, name: &str, index: i32, phase: PodPhase) -> Arc<Pod> {
        let mut pod = pod_for_index(job, index);
        pod.metadata.name = name.into();
        pod.metadata.uid = format!("{name}-uid");
        pod.metadata.creation_timestamp = Some(Time::new(at(0)));
        pod.status = Some(PodStatus {
            phase: Some(phase),
            ..PodStatus::default()
        });
        Arc::new(pod)
    }

    #[test]
    fn completed_indexes_parse_and_format_as_ranges() {
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(format_indexes(&set(&[0, 1, 2, 4, 6, 7])), "0-2,4,6-7");
        assert_eq!(format_indexes(&set(&[])), "");
        assert_eq!(parse_indexes("0-2,4,6-7", 10), set(&[0, 1, 2, 4, 6, 7]));
        assert_eq!(
            parse_indexes("1, 3-9, x, 5-2, -1", 5),
            set(&[1, 3, 4]),
            "out of range and malformed parts are dropped"
        );
    }

    #[test]
    fn an_indexed_pod_carries_its_index() {
        let job = indexed(5, 2);
        let pod = pod_for_index(&job, 3);
        assert_eq!(pod.metadata.generate_name, "batch-3-");
        assert_eq!(pod.metadata.annotations[COMPLETION_INDEX_ANNOTATION], "3");
        assert_eq!(pod.metadata.labels[COMPLETION_INDEX_ANNOTATION], "3");
        let env = &pod.spec.containers[0].env;
        assert_eq!(env.len(), 1);
        assert_eq!(
            (env[0].name.as_str(), env[0].value.as_deref()),
            (COMPLETION_INDEX_ENV, Some("3"))
        );
        assert_eq!(pod_index(&pod, 5), Some(3));
        assert_eq!(pod_index(&pod, 3), None, "beyond completions");
    }

    #[test]
    fn an_indexed_job_runs_the_lowest_pending_indexes_and_records_the_done_ones() {
        let job = started(indexed(5, 2), 0);
        let step = plan(&job, &[], &BackoffRecord::default(), at(1));
        assert_eq!(step.create_indexes, [0, 1]);
        assert_eq!(step.create, 0);
        assert_eq!(step.status.active, Some(2));
        assert_eq!(step.status.completed_indexes, None);

        // 0 and 2 done, 1 running, 3 failed: 3 runs again (lowest pending) within parallelism.
        let pods = vec![
            index_pod(&job, "p0", 0, PodPhase::Succeeded),
            index_pod(&job, "p1", 1, PodPhase::Running),
            index_pod(&job, "p2", 2, PodPhase::Succeeded),
            index_pod(&job, "p3", 3, PodPhase::Failed),
        ];
        let step = plan(&job, &pods, &BackoffRecord::default(), at(2));
        assert_eq!(step.create_indexes, [3]);
        assert!(step.delete.is_empty());
        assert_eq!(step.status.completed_indexes.as_deref(), Some("0,2"));
        assert_eq!(step.status.succeeded, Some(2));

        // A duplicate of a running index, and a pod of a done index, go.
        let pods = vec![
            index_pod(&job, "p0", 0, PodPhase::Succeeded),
            index_pod(&job, "p0-again", 0, PodPhase::Running),
            index_pod(&job, "p1", 1, PodPhase::Running),
            index_pod(&job, "p1-twin", 1, PodPhase::Running),
        ];
        let step = plan(&job, &pods, &BackoffRecord::default(), at(3));
        let mut delete = step.delete.clone();
        delete.sort();
        assert_eq!(delete, ["p0-again", "p1-twin"]);
        assert_eq!(step.create_indexes, [2]);
    }

    #[test]
    fn an_indexed_job_completes_when_every_index_succeeded_once() {
        let mut job = started(indexed(3, 3), 0);
        if let Some(status) = job.status.as_mut() {
            // Index 0's pod is gone, but the status remembers it.
            status.completed_indexes = Some("0".into());
        }
        let pods = vec![
            index_pod(&job, "p1", 1, PodPhase::Succeeded),
            index_pod(&job, "p2", 2, PodPhase::Succeeded),
            index_pod(&job, "p2-retry", 2, PodPhase::Succeeded),
        ];
        let plan = plan(&job, &pods, &BackoffRecord::default(), at(5));
        assert_eq!(plan.status.completed_indexes.as_deref(), Some("0-2"));
        assert_eq!(plan.status.succeeded, Some(3));
        assert!(plan.status.conditions.iter().any(|c| c.type_ == "Complete"));
        assert!(plan.create_indexes.is_empty());
    }
}
