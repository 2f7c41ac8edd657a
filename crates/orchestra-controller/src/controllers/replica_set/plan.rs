//! The ReplicaSet controller's decisions, as a pure function: the replica set and the pods of
//! its namespace in, the exact writes out.

use std::sync::Arc;
use std::time::Duration;

use orchestra_api::resources::{Pod, ReplicaSet, ReplicaSetStatus};
use orchestra_api::{OwnerReference, Resource, Selector, SelectorError};

use crate::controllers::owned::{Claim, claim};
use crate::controllers::pods::{self, Availability};

/// At most this many pods are created or deleted in one sync (Kubernetes' `burstReplicas`), so
/// that one huge replica set cannot starve the others.
pub const BURST_REPLICAS: usize = 500;

/// What one sync of a replica set must do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphan pods that match the selector: set the replica set as their controller.
    pub adopt: Vec<String>,
    /// Owned pods that no longer match the selector: remove the replica set's reference.
    pub release: Vec<String>,
    /// How many pods to create from the template.
    pub create: usize,
    /// Owned pods to delete, the most deletable first.
    pub delete: Vec<String>,
    /// The status the replica set should report.
    pub status: ReplicaSetStatus,
    /// When a ready pod will become available (minReadySeconds): sync again then.
    pub recheck_after: Option<Duration>,
}

/// The controller reference a replica set puts on its pods.
pub fn controller_ref(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: ReplicaSet::API_VERSION.into(),
        kind: ReplicaSet::KIND.into(),
        name: rs.metadata.name.clone(),
        uid: rs.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Decides one sync of `rs` given the pods of its namespace, at `now` (for minReadySeconds).
/// Kubernetes' rules ([`claim`]): pods controlled by `rs` that still match its selector are its
/// own; those that do not are released (unless `rs` is being deleted); matching orphans are
/// adopted (unless either side is being deleted); active owned pods (not terminated, not being deleted) are counted against the
/// replicas, and the difference is created, or deleted in [`pods::deletion_order`], at most
/// [`BURST_REPLICAS`] at a time. A replica set being deleted creates and deletes nothing.
pub fn plan(
    rs: &ReplicaSet,
    namespace_pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> Result<Plan, SelectorError> {
    let selector = Selector::try_from(&rs.spec.selector)?;
    let template_labels = Selector::from_labels(&rs.spec.template.metadata.labels)?;
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();
    let mut plan = Plan::default();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in namespace_pods {
        let meta = &pod.metadata;
        let matches = selector.matches(&meta.labels);
        match claim(&rs.metadata.uid, rs_deleting, meta, matches) {
            Claim::Owned => owned.push(pod),
            Claim::Adopt => {
                plan.adopt.push(meta.name.clone());
                owned.push(pod);
            }
            Claim::Release => plan.release.push(meta.name.clone()),
            Claim::Ignore => {}
        }
    }
    let mut active: Vec<&Pod> = owned.into_iter().filter(|p| pods::is_active(p)).collect();

    let min_ready = Duration::from_secs(
        rs.spec
            .min_ready_seconds
            .unwrap_or(0)
            .max(0)
            .unsigned_abs()
            .into(),
    );
    let mut ready = 0;
    let mut available = 0;
    for pod in &active {
        match pods::availability(pod, min_ready, now) {
            Availability::NotReady => {}
            Availability::ReadyFor(wait) => {
                ready += 1;
                plan.recheck_after = Some(plan.recheck_after.map_or(wait, |w| w.min(wait)));
            }
            Availability::Available => {
                ready += 1;
                available += 1;
            }
        }
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let fully_labeled = active
        .iter()
        .filter(|p| template_labels.matches(&p.metadata.labels))
        .count();
    plan.status = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(fully_labeled)),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: rs
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    };

    if rs_deleting {
        return Ok(plan);
    }
    let desired = usize::try_from(rs.spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    if active.len() < desired {
        plan.create = (desired - active.len()).min(BURST_REPLICAS);
    } else if active.len() > desired {
        let excess = (active.len() - desired).min(BURST_REPLICAS);
        active.sort_by(|a, b| pods::deletion_order(a, b));
        plan.delete = active
            .iter()
            .take(excess)
            .map(|p| p.metadata.name.clone())
            .collect();
    }
    Ok(plan)
}

/// The sizes of the batches `total` creations are made in: 1, 2, 4, ... (Kubernetes' slow
/// start), so that a failing template costs one failed call, not hundreds. The next batch runs
/// only if the previous one fully succeeded.
pub fn slow_start_batches(total: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut size = 1;
    let mut left = total;
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size = size.saturating_mul(2);
    }
    batches
}

/// A pod from the replica set's template: named `{rs}-` plus a random suffix by the API server,
/// labelled and annotated as the template says, controlled by the replica set.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = &rs.spec.template;
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Pod::default()
    };
    let meta = &mut pod.metadata;
    meta.generate_name = format!("{}-", rs.metadata.name);
    meta.namespace.clone_from(&rs.metadata.namespace);
    meta.labels.clone_from(&template.metadata.labels);
    meta.annotations.clone_from(&template.metadata.annotations);
    meta.owner_references = vec![controller_ref(rs)];
    pod
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orchestra_api::resources::{ConditionStatus, PodCondition, PodPhase, PodStatus};
    use orchestra_api::{LabelSelector, ObjectMeta, Time};

    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";

    fn now() -> jiff::Timestamp {
        T0.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(60)
    }

    fn rs(replicas: i32) -> ReplicaSet {
        let mut rs = ReplicaSet {
            metadata: ObjectMeta::namespaced("ns", "web"),
            ..ReplicaSet::default()
        };
        rs.metadata.uid = "rs-uid".into();
        rs.metadata.generation = Some(3);
        rs.spec.replicas = Some(replicas);
        rs.spec.selector = LabelSelector::match_labels([("app", "web")]);
        rs.spec.template.metadata.labels = BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]);
        rs
    }

    fn pod(name: &str, app: &str, owner: Option<&str>, ready: bool, created_min: i64) -> Arc<Pod> {
        let mut pod = Pod {
            metadata: ObjectMeta::namespaced("ns", name).with_label("app", app),
            ..Pod::default()
        };
        let created: jiff::Timestamp = T0.parse().unwrap();
        pod.metadata.creation_timestamp = Some(Time::new(
            created + jiff::SignedDuration::from_mins(created_min),
        ));
        if let Some(uid) = owner {
            pod.metadata.owner_references = vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }];
        }
        pod.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                last_transition_time: Some(T0.parse().unwrap()),
                ..PodCondition::default()
            }],
            ..PodStatus::default()
        });
        Arc::new(pod)
    }

    #[test]
    fn creates_the_missing_pods_and_adopts_matching_orphans() {
        let pods = vec![
            pod("mine", "web", Some("rs-uid"), true, 0),
            pod("orphan", "web", None, false, 0),
            pod("other-app", "db", None, true, 0),
            pod("someone-elses", "web", Some("other-uid"), true, 0),
        ];
        let plan = plan(&rs(5), &pods, now()).unwrap();
        assert_eq!(plan.adopt, ["orphan"]);
        assert!(plan.release.is_empty());
        assert_eq!(plan.create, 3);
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.status,
            ReplicaSetStatus {
                replicas: 2,
                fully_labeled_replicas: Some(0),
                ready_replicas: Some(1),
                available_replicas: Some(1),
                observed_generation: Some(3),
                conditions: Vec::new(),
            }
        );
    }

    #[test]
    fn releases_owned_pods_that_stopped_matching_and_does_not_count_them() {
        let pods = vec![
            pod("a", "web", Some("rs-uid"), true, 0),
            pod("relabelled", "debug", Some("rs-uid"), true, 0),
        ];
        let plan = plan(&rs(2), &pods, now()).unwrap();
        assert_eq!(plan.release, ["relabelled"]);
        assert_eq!(plan.create, 1);
        assert_eq!(plan.status.replicas, 1);
    }

    #[test]
    fn deletes_not_ready_then_newest_first() {
        let pods = vec![
            pod("old-ready", "web", Some("rs-uid"), true, 0),
            pod("new-ready", "web", Some("rs-uid"), true, 5),
            pod("mid-ready", "web", Some("rs-uid"), true, 2),
            pod("not-ready", "web", Some("rs-uid"), false, 0),
        ];
        let plan = plan(&rs(1), &pods, now()).unwrap();
        assert_eq!(plan.delete, ["not-ready", "new-ready", "mid-ready"]);
        assert_eq!(plan.create, 0);
    }

    #[test]
    fn terminating_and_finished_pods_do_not_count() {
        let mut terminating = (*pod("terminating", "web", Some("rs-uid"), true, 0)).clone();
        terminating.metadata.deletion_timestamp = Some(T0.parse().unwrap());
        let mut finished = (*pod("finished", "web", Some("rs-uid"), false, 0)).clone();
        finished.status.as_mut().unwrap().phase = Some(PodPhase::Failed);
        let mut orphan_terminating = (*pod("orphan-terminating", "web", None, true, 0)).clone();
        orphan_terminating.metadata.deletion_timestamp = Some(T0.parse().unwrap());
        let pods = vec![
            Arc::new(terminating),
            Arc::new(finished),
            Arc::new(orphan_terminating),
        ];
        let plan = plan(&rs(2), &pods, now()).unwrap();
        assert_eq!(plan.create, 2);
        assert!(plan.adopt.is_empty(), "a terminating orphan is not adopted");
        assert_eq!(plan.status.replicas, 0);
    }

    #[test]
    fn a_replica_set_being_deleted_only_reports() {
        let mut deleting = rs(3);
        deleting.metadata.deletion_timestamp = Some(T0.parse().unwrap());
        let pods = vec![
            pod("orphan", "web", None, true, 0),
            pod("relabelled", "x", Some("rs-uid"), true, 0),
        ];
        let plan = plan(&deleting, &pods, now()).unwrap();
        assert_eq!(
            (plan.adopt.len(), plan.create, plan.delete.len()),
            (0, 0, 0)
        );
        assert!(
            plan.release.is_empty(),
            "its dependents are the garbage collector's"
        );
    }

    #[test]
    fn bursts_are_capped_and_min_ready_seconds_schedules_a_recheck() {
        let plan_big = plan(&rs(2000), &[], now()).unwrap();
        assert_eq!(plan_big.create, BURST_REPLICAS);
        let mut slow = rs(1);
        slow.spec.min_ready_seconds = Some(100);
        let pods = vec![pod("a", "web", Some("rs-uid"), true, 0)];
        let plan = plan(&slow, &pods, now()).unwrap();
        assert_eq!(plan.status.ready_replicas, Some(1));
        assert_eq!(plan.status.available_replicas, Some(0));
        assert_eq!(plan.recheck_after, Some(Duration::from_secs(40)));
    }

    #[test]
    fn slow_start_doubles_batches() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), [1, 2, 4, 8]);
    }

    #[test]
    fn template_pods_carry_labels_and_the_controller_reference() {
        let pod = pod_from_template(&rs(1));
        assert_eq!(pod.metadata.generate_name, "web-");
        assert_eq!(pod.metadata.namespace, "ns");
        assert_eq!(
            pod.metadata.labels.get("tier").map(String::as_str),
            Some("front")
        );
        let owner = pod.metadata.controller_ref().unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "rs-uid")
        );
    }
}
