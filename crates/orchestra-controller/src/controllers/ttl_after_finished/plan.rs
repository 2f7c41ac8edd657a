//! The TTL-after-finished controller's decision, as a pure function: a job and the time in,
//! whether to delete it now, later, or never.

use std::time::Duration;

use orchestra_api::resources::{ConditionStatus, Job};

use crate::controllers::clock;

/// What to do with one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No TTL, not finished yet, or already being deleted: nothing (a change brings it back).
    Keep,
    /// The TTL has not run out: look again after this long.
    WaitFor(Duration),
    /// The TTL ran out: delete the job (and, through foreground propagation, its pods).
    Delete,
}

/// When `job` finished: its `completionTime`, else the transition time of its `Complete` or
/// `Failed` condition (a failed job has no completion time).
pub fn finished_at(job: &Job) -> Option<jiff::Timestamp> {
    let status = job.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| {
        (c.type_ == "Complete" || c.type_ == "Failed") && c.status == ConditionStatus::True
    })?;
    status
        .completion_time
        .or(condition.last_transition_time)
        .map(|t| t.timestamp())
}

/// Kubernetes' rule: a finished job with `ttlSecondsAfterFinished` set is deleted that many
/// seconds after it finished (0: at once); a negative TTL (validation refuses it) keeps it.
pub fn decide(job: &Job, now: jiff::Timestamp) -> Decision {
    if job.metadata.deletion_timestamp.is_some() {
        return Decision::Keep;
    }
    let Some(ttl) = job
        .spec
        .ttl_seconds_after_finished
        .and_then(|s| u64::try_from(s).ok())
    else {
        return Decision::Keep;
    };
    let Some(finished) = finished_at(job) else {
        return Decision::Keep;
    };
    let expires = clock::add(finished, Duration::from_secs(ttl));
    if now >= expires {
        Decision::Delete
    } else {
        Decision::WaitFor(clock::until(now, expires))
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{JobCondition, JobStatus};
    use orchestra_api::{ObjectMeta, Time};

    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn job(ttl: Option<i32>, finished: Option<(&str, &str)>) -> Job {
        let mut job = Job {
            metadata: ObjectMeta::namespaced("ns", "batch"),
            ..Job::default()
        };
        job.spec.ttl_seconds_after_finished = ttl;
        if let Some((type_, when)) = finished {
            let when = Time::new(at(when));
            job.status = Some(JobStatus {
                completion_time: (type_ == "Complete").then_some(when),
                conditions: vec![JobCondition {
                    type_: type_.into(),
                    status: ConditionStatus::True,
                    last_transition_time: Some(when),
                    ..JobCondition::default()
                }],
                ..JobStatus::default()
            });
        }
        job
    }

    #[test]
    fn a_finished_job_goes_its_ttl_after_it_finished() {
        let now = at("2024-01-01T00:01:00Z");
        let done = Some(("Complete", "2024-01-01T00:00:00Z"));
        assert_eq!(
            decide(&job(Some(100), done), now),
            Decision::WaitFor(Duration::from_secs(40))
        );
        assert_eq!(decide(&job(Some(60), done), now), Decision::Delete);
        assert_eq!(decide(&job(Some(0), done), now), Decision::Delete);
        let failed = Some(("Failed", "2024-01-01T00:00:30Z"));
        assert_eq!(
            decide(&job(Some(60), failed), now),
            Decision::WaitFor(Duration::from_secs(30)),
            "a failed job counts from its Failed condition"
        );
    }

    #[test]
    fn running_jobs_jobs_without_ttl_and_deleted_jobs_stay() {
        let now = at("2024-01-01T01:00:00Z");
        assert_eq!(
            decide(&job(Some(0), None), now),
            Decision::Keep,
            "still running"
        );
        let done = Some(("Complete", "2024-01-01T00:00:00Z"));
        assert_eq!(decide(&job(None, done), now), Decision::Keep, "no TTL");
        assert_eq!(
            decide(&job(Some(-1), done), now),
            Decision::Keep,
            "a negative TTL"
        );
        let mut deleting = job(Some(0), done);
        deleting.metadata.deletion_timestamp = Some(Time::new(now));
        assert_eq!(decide(&deleting, now), Decision::Keep, "already going");
        let mut not_done = job(Some(0), done);
        if let Some(status) = not_done.status.as_mut() {
            status.conditions[0].status = ConditionStatus::False;
        }
        assert_eq!(decide(&not_done, now), Decision::Keep, "a false condition");
    }
}
