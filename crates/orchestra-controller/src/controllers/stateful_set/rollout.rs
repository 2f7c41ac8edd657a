//! Where a stateful set's rollout stands, with `kubectl rollout status`'s rules and messages
//! (a pure function of the set; `orchestra ctl rollout status statefulset/NAME` prints it).

use orchestra_api::resources::{StatefulSet, StatefulSetUpdateStrategyType};

use crate::controllers::deployment::progress::RolloutStatus;

/// The rollout status of `sts`: waiting for the controller to see the latest spec, for pods to
/// be ready, for the pods from the partition up to be updated, or for the update revision to
/// become current. Only `RollingUpdate` sets have one (an error otherwise).
pub fn rollout_status(sts: &StatefulSet) -> RolloutStatus {
    let strategy = sts.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_) == Some(StatefulSetUpdateStrategyType::OnDelete) {
        return RolloutStatus::Failed(
            "rollout status is only available for RollingUpdate strategy type".into(),
        );
    }
    let status = sts.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || sts.metadata.generation.unwrap_or(0) > observed {
        return RolloutStatus::Waiting(
            "Waiting for statefulset spec update to be observed...".into(),
        );
    }
    let replicas = sts.spec.replicas.unwrap_or(1);
    if status.ready_replicas < replicas {
        return RolloutStatus::Waiting(format!(
            "Waiting for {} pods to be ready...",
            replicas - status.ready_replicas
        ));
    }
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if partition > 0 {
        let wanted = (replicas - partition).max(0);
        return if status.updated_replicas < wanted {
            RolloutStatus::Waiting(format!(
                "Waiting for partitioned roll out to finish: {} out of {wanted} new pods have been updated...",
                status.updated_replicas
            ))
        } else {
            RolloutStatus::Done(format!(
                "partitioned roll out complete: {} new pods have been updated...",
                status.updated_replicas
            ))
        };
    }
    if status.update_revision != status.current_revision {
        return RolloutStatus::Waiting(format!(
            "waiting for statefulset rolling update to complete {} pods at revision {}...",
            status.updated_replicas, status.update_revision
        ));
    }
    RolloutStatus::Done(format!(
        "statefulset rolling update complete {} pods at revision {}...",
        status.current_replicas, status.current_revision
    ))
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{
        RollingUpdateStatefulSetStrategy, StatefulSetStatus, StatefulSetUpdateStrategy,
    };

    use super::*;

    fn sts(status: StatefulSetStatus, partition: i32) -> StatefulSet {
        let mut sts = StatefulSet::default();
        sts.metadata.generation = Some(2);
        sts.spec.replicas = Some(3);
        sts.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some(StatefulSetUpdateStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(partition),
                max_unavailable: None,
            }),
        });
        sts.status = Some(status);
        sts
    }

    fn observed(ready: i32, updated: i32, current: &str, update: &str) -> StatefulSetStatus {
        StatefulSetStatus {
            observed_generation: Some(2),
            replicas: 3,
            ready_replicas: ready,
            updated_replicas: updated,
            current_replicas: 3 - updated,
            current_revision: current.into(),
            update_revision: update.into(),
            ..StatefulSetStatus::default()
        }
    }

    #[test]
    fn each_stage_of_a_rollout_as_kubectl_says_it() {
        let mut unseen = sts(observed(3, 3, "a", "a"), 0);
        unseen.metadata.generation = Some(3);
        assert_eq!(
            rollout_status(&unseen),
            RolloutStatus::Waiting("Waiting for statefulset spec update to be observed...".into())
        );
        assert_eq!(
            rollout_status(&sts(observed(1, 1, "a", "b"), 0)),
            RolloutStatus::Waiting("Waiting for 2 pods to be ready...".into())
        );
        assert_eq!(
            rollout_status(&sts(observed(3, 1, "a", "b"), 0)),
            RolloutStatus::Waiting(
                "waiting for statefulset rolling update to complete 1 pods at revision b...".into()
            )
        );
        let mut done = observed(3, 3, "b", "b");
        done.current_replicas = 3;
        assert_eq!(
            rollout_status(&sts(done, 0)),
            RolloutStatus::Done(
                "statefulset rolling update complete 3 pods at revision b...".into()
            )
        );
    }

    #[test]
    fn a_partitioned_rollout_is_done_once_the_pods_above_the_partition_are_updated() {
        assert_eq!(
            rollout_status(&sts(observed(3, 1, "a", "b"), 1)),
            RolloutStatus::Waiting(
                "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
                    .into()
            )
        );
        assert_eq!(
            rollout_status(&sts(observed(3, 2, "a", "b"), 1)),
            RolloutStatus::Done(
                "partitioned roll out complete: 2 new pods have been updated...".into()
            )
        );
    }

    #[test]
    fn on_delete_has_no_rollout_status() {
        let mut on_delete = sts(observed(3, 3, "a", "a"), 0);
        on_delete.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some(StatefulSetUpdateStrategyType::OnDelete),
            rolling_update: None,
        });
        assert!(matches!(
            rollout_status(&on_delete),
            RolloutStatus::Failed(_)
        ));
    }
}
