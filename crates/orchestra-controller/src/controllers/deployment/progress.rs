//! The `Progressing` condition of a deployment, as a pure function (Kubernetes' rules).
//!
//! A rollout makes progress when a new replica set is created, or when the new replica set's
//! pods are updated, ready or available in greater number, or old pods fewer, than the last
//! status said; each time, `Progressing` is `True` with a fresh `lastUpdateTime`. A rollout
//! that is not complete and has made no progress for `progressDeadlineSeconds` (600 by
//! default) turns `Progressing` `False` with reason `ProgressDeadlineExceeded`, until progress
//! resumes. A complete rollout is `True`/`NewReplicaSetAvailable` and is not timed out. A
//! paused deployment is `Unknown`/`DeploymentPaused` and its deadline does not run; resuming
//! it (`Unknown`/`DeploymentResumed`) starts the deadline afresh.

use std::time::Duration;

use orchestra_api::Time;
use orchestra_api::resources::{
    ConditionStatus, Deployment, DeploymentCondition, DeploymentStatus,
};

use crate::controllers::clock;

/// The condition's type.
pub const PROGRESSING: &str = "Progressing";
/// The reason of a rollout that stalled past its deadline.
pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// The reason of a complete rollout.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// The reason of a paused deployment.
pub const PAUSED: &str = "DeploymentPaused";
/// The reason of a deployment just resumed.
pub const RESUMED: &str = "DeploymentResumed";
/// `progressDeadlineSeconds` when unset.
pub const DEFAULT_DEADLINE_SECONDS: i32 = 600;

/// The decision: the `Progressing` condition to report, and when to look again for a deadline.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The condition.
    pub condition: DeploymentCondition,
    /// Sync again after this long: the deadline passes then unless progress comes first.
    pub recheck_after: Option<Duration>,
}

fn old_replicas(status: &DeploymentStatus) -> i32 {
    status.replicas.unwrap_or(0) - status.updated_replicas.unwrap_or(0)
}

/// Whether `now` shows progress over `before` (more updated, ready or available pods, or
/// fewer old ones).
pub fn progressed(before: &DeploymentStatus, now: &DeploymentStatus) -> bool {
    let more =
        |f: fn(&DeploymentStatus) -> Option<i32>| f(now).unwrap_or(0) > f(before).unwrap_or(0);
    more(|s| s.updated_replicas)
        || more(|s| s.ready_replicas)
        || more(|s| s.available_replicas)
        || old_replicas(now) < old_replicas(before)
}

/// Whether the rollout is complete: every desired pod updated and available, no old pod left.
pub fn complete(desired: i32, status: &DeploymentStatus) -> bool {
    status.updated_replicas == Some(desired)
        && status.replicas == Some(desired)
        && status.available_replicas == Some(desired)
}

/// Decides the `Progressing` condition of `deployment`, whose next status is `status` (the
/// controller's view after this sync), with `new_rs` the name of the current template's
/// replica set, `created_new_rs` when this sync creates it, at `now`.
pub fn progress(
    deployment: &Deployment,
    status: &DeploymentStatus,
    new_rs: &str,
    created_new_rs: bool,
    now: jiff::Timestamp,
) -> Progress {
    let before = deployment.status.clone().unwrap_or_default();
    let previous = before.conditions.iter().find(|c| c.type_ == PROGRESSING);
    let at = Time::new(now);
    let make = |status: ConditionStatus, reason: &str, message: String| {
        // The transition time moves only when the status does.
        let transition = previous
            .filter(|p| p.status == status)
            .and_then(|p| p.last_transition_time)
            .unwrap_or(at);
        DeploymentCondition {
            type_: PROGRESSING.into(),
            status,
            last_update_time: Some(at),
            last_transition_time: Some(transition),
            reason: reason.into(),
            message,
        }
    };
    let unchanged = |recheck_after| Progress {
        condition: previous.cloned().unwrap_or_else(|| {
            make(
                ConditionStatus::True,
                "ReplicaSetUpdated",
                format!("ReplicaSet {new_rs:?} is progressing."),
            )
        }),
        recheck_after,
    };
    let name = &deployment.metadata.name;
    if deployment.spec.paused {
        if previous.is_some_and(|p| p.reason == PAUSED) {
            return unchanged(None);
        }
        let message = format!("Deployment {name:?} is paused");
        return Progress {
            condition: make(ConditionStatus::Unknown, PAUSED, message),
            recheck_after: None,
        };
    }
    let deadline = Duration::from_secs(
        deployment
            .spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_DEADLINE_SECONDS)
            .max(0)
            .unsigned_abs()
            .into(),
    );
    let desired = deployment.spec.replicas.unwrap_or(1).max(0);
    if previous.is_some_and(|p| p.reason == PAUSED) {
        let message = format!("Deployment {name:?} is resumed");
        return Progress {
            condition: make(ConditionStatus::Unknown, RESUMED, message),
            recheck_after: Some(deadline),
        };
    }
    if complete(desired, status) {
        if previous.is_some_and(|p| p.reason == NEW_RS_AVAILABLE) {
            return unchanged(None);
        }
        let message = format!("ReplicaSet {new_rs:?} has successfully progressed.");
        return Progress {
            condition: make(ConditionStatus::True, NEW_RS_AVAILABLE, message),
            recheck_after: None,
        };
    }
    if created_new_rs {
        let message = format!("Created new replica set {new_rs:?}");
        return Progress {
            condition: make(ConditionStatus::True, "NewReplicaSetCreated", message),
            recheck_after: Some(deadline),
        };
    }
    if progressed(&before, status) || previous.is_none() {
        let message = format!("ReplicaSet {new_rs:?} is progressing.");
        return Progress {
            condition: make(ConditionStatus::True, "ReplicaSetUpdated", message),
            recheck_after: Some(deadline),
        };
    }
    let Some(previous) = previous else {
        return unchanged(Some(deadline));
    };
    if previous.reason == DEADLINE_EXCEEDED || previous.reason == NEW_RS_AVAILABLE {
        // Timed out already, or complete before (pods lost later are not a stalled rollout).
        return unchanged(None);
    }
    let since = previous.last_update_time.map_or(now, |t| t.timestamp());
    let due = clock::add(since, deadline);
    if now > due {
        let message = format!("ReplicaSet {new_rs:?} has timed out progressing.");
        return Progress {
            condition: make(ConditionStatus::False, DEADLINE_EXCEEDED, message),
            recheck_after: None,
        };
    }
    // Look again just after the deadline (timestamps are stored to the second).
    unchanged(Some(clock::until(now, due) + Duration::from_secs(1)))
}

/// Where a rollout stands, as `kubectl rollout status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Still rolling out; the message says what it waits for.
    Waiting(String),
    /// Done.
    Done(String),
    /// The progress deadline passed.
    Failed(String),
}

/// The rollout status of `deployment` (kubectl's messages).
pub fn rollout_status(deployment: &Deployment) -> RolloutStatus {
    let name = &deployment.metadata.name;
    let status = deployment.status.clone().unwrap_or_default();
    if status.observed_generation < deployment.metadata.generation {
        return RolloutStatus::Waiting(
            "Waiting for deployment spec update to be observed...".into(),
        );
    }
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == PROGRESSING && c.reason == DEADLINE_EXCEEDED)
    {
        return RolloutStatus::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let desired = deployment.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let waiting = |what: String| {
        RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {what}..."
        ))
    };
    if updated < desired {
        return waiting(format!(
            "{updated} out of {desired} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    RolloutStatus::Done(format!("deployment {name:?} successfully rolled out"))
}

#[cfg(test)]
mod tests {
    use orchestra_api::ObjectMeta;

    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";

    fn at(secs: i64) -> jiff::Timestamp {
        T0.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(secs)
    }

    fn status(replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    fn deployment(before: DeploymentStatus, previous: Option<DeploymentCondition>) -> Deployment {
        let mut d = Deployment {
            metadata: ObjectMeta::namespaced("ns", "web"),
            ..Deployment::default()
        };
        d.spec.replicas = Some(3);
        d.spec.progress_deadline_seconds = Some(60);
        d.status = Some(DeploymentStatus {
            conditions: previous.into_iter().collect(),
            ..before
        });
        d
    }

    #[test]
    fn creation_and_progress_refresh_the_condition() {
        let d = deployment(status(3, 0, 3), None);
        let p = progress(&d, &status(3, 0, 3), "web-abc", true, at(0));
        assert_eq!(p.condition.reason, "NewReplicaSetCreated");
        assert_eq!(p.condition.status, ConditionStatus::True);
        assert_eq!(p.recheck_after, Some(Duration::from_secs(60)));

        let d = deployment(status(4, 1, 3), Some(p.condition.clone()));
        let p = progress(&d, &status(4, 1, 4), "web-abc", false, at(30));
        assert_eq!(p.condition.reason, "ReplicaSetUpdated");
        assert_eq!(p.condition.last_update_time, Some(Time::new(at(30))));
        assert_eq!(p.condition.last_transition_time, Some(Time::new(at(0))));
    }

    #[test]
    fn a_stalled_rollout_exceeds_its_deadline_and_recovers_with_progress() {
        let created = progress(
            &deployment(status(3, 0, 3), None),
            &status(3, 0, 3),
            "web-abc",
            true,
            at(0),
        )
        .condition;
        let stalled = deployment(status(4, 1, 3), Some(created));
        let waiting = progress(&stalled, &status(4, 1, 3), "web-abc", false, at(40));
        assert_eq!(
            waiting.condition.reason, "NewReplicaSetCreated",
            "unchanged"
        );
        assert_eq!(waiting.recheck_after, Some(Duration::from_secs(21)));
        let timed_out = progress(&stalled, &status(4, 1, 3), "web-abc", false, at(61));
        assert_eq!(timed_out.condition.status, ConditionStatus::False);
        assert_eq!(timed_out.condition.reason, DEADLINE_EXCEEDED);
        assert_eq!(timed_out.recheck_after, None);

        let failed = deployment(status(4, 1, 3), Some(timed_out.condition.clone()));
        let still = progress(&failed, &status(4, 1, 3), "web-abc", false, at(500));
        assert_eq!(
            still.condition, timed_out.condition,
            "stays failed without progress"
        );
        let recovered = progress(&failed, &status(4, 2, 3), "web-abc", false, at(501));
        assert_eq!(
            (
                recovered.condition.status,
                recovered.condition.reason.as_str()
            ),
            (ConditionStatus::True, "ReplicaSetUpdated")
        );
        assert_eq!(
            recovered.condition.last_transition_time,
            Some(Time::new(at(501)))
        );
    }

    #[test]
    fn complete_rollouts_are_not_timed_out() {
        let d = deployment(status(4, 3, 3), None);
        let done = progress(&d, &status(3, 3, 3), "web-abc", false, at(10));
        assert_eq!(done.condition.reason, NEW_RS_AVAILABLE);
        let later = deployment(status(3, 3, 3), Some(done.condition.clone()));
        let degraded = progress(&later, &status(3, 3, 1), "web-abc", false, at(9999));
        assert_eq!(degraded.condition, done.condition);
    }

    #[test]
    fn rollout_status_reads_like_kubectl() {
        let mut d = deployment(status(4, 1, 3), None);
        d.metadata.generation = Some(2);
        d.status.as_mut().unwrap().observed_generation = Some(2);
        assert_eq!(
            rollout_status(&d),
            RolloutStatus::Waiting(
                "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...".into()
            )
        );
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            ..status(4, 3, 3)
        });
        assert!(
            matches!(rollout_status(&d), RolloutStatus::Waiting(m) if m.contains("1 old replicas are pending termination"))
        );
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            ..status(3, 3, 2)
        });
        assert!(
            matches!(rollout_status(&d), RolloutStatus::Waiting(m) if m.contains("2 of 3 updated replicas are available"))
        );
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            ..status(3, 3, 3)
        });
        assert_eq!(
            rollout_status(&d),
            RolloutStatus::Done("deployment \"web\" successfully rolled out".into())
        );
        d.metadata.generation = Some(3);
        assert!(
            matches!(rollout_status(&d), RolloutStatus::Waiting(m) if m.contains("spec update"))
        );
    }

    #[test]
    fn pausing_stops_the_clock_and_resuming_restarts_it() {
        let mut d = deployment(status(4, 1, 3), None);
        d.spec.paused = true;
        let paused = progress(&d, &status(4, 1, 3), "web-abc", false, at(0));
        assert_eq!(
            (paused.condition.status, paused.condition.reason.as_str()),
            (ConditionStatus::Unknown, PAUSED)
        );
        let mut d = deployment(status(4, 1, 3), Some(paused.condition.clone()));
        d.spec.paused = true;
        assert_eq!(
            progress(&d, &status(4, 1, 3), "web-abc", false, at(9999)).condition,
            paused.condition
        );
        d.spec.paused = false;
        let resumed = progress(&d, &status(4, 1, 3), "web-abc", false, at(10_000));
        assert_eq!(resumed.condition.reason, RESUMED);
        assert_eq!(
            resumed.condition.last_update_time,
            Some(Time::new(at(10_000)))
        );
        assert_eq!(resumed.recheck_after, Some(Duration::from_secs(60)));
    }
}
