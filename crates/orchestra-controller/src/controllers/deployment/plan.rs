//! The Deployment controller's decisions, as pure functions: a deployment and the replica sets
//! it controls in, the exact writes out.
//!
//! One call decides one step, as Kubernetes' controller does: create the replica set of the
//! current template (named `{deployment}-{pod-template-hash}`), then scale it up within
//! `maxSurge`, or scale old ones down within `maxUnavailable` (RollingUpdate); or scale every
//! old one to zero, wait until their pods are gone, then scale the new one up (Recreate). The
//! next step comes with the replica sets' next status change.

use std::sync::Arc;

use orchestra_api::resources::{
    ConditionStatus, Deployment, DeploymentCondition, DeploymentStatus, DeploymentStrategyType,
    PodTemplateSpec, ReplicaSet,
};
use orchestra_api::{IntOrString, LabelSelector, ObjectMeta, OwnerReference, Resource};

use super::progress;

/// The label (on replica sets, their selectors and their pods) that tells templates apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The annotation holding a replica set's (and its deployment's) revision number.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// What went wrong deciding (the deployment is invalid in a way validation lets through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// maxSurge or maxUnavailable is neither a number nor a percentage.
    #[error("spec.strategy.rollingUpdate.{field}: {value:?} is neither a number nor a percentage")]
    BadIntOrPercent {
        /// `maxSurge` or `maxUnavailable`.
        field: &'static str,
        /// The value given.
        value: String,
    },
}

/// What one sync of a deployment must do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// A replica set to create for the current template.
    pub create: Option<ReplicaSet>,
    /// Replica sets to scale: name and new `spec.replicas`.
    pub scale: Vec<(String, i32)>,
    /// Replica sets whose revision annotation must change (a rollback makes an old template
    /// current again): name and revision.
    pub set_revision: Vec<(String, String)>,
    /// Old replica sets beyond `revisionHistoryLimit`, empty and idle: delete them.
    pub delete: Vec<String>,
    /// The deployment's revision annotation, when it must change.
    pub deployment_revision: Option<String>,
    /// The status the deployment should report.
    pub status: DeploymentStatus,
    /// Sync again after this long (the progress deadline passes then).
    pub recheck_after: Option<std::time::Duration>,
}

/// The pod-template hash of `template` (FNV-1a over its JSON, with the collision count when
/// there is one), spelled with consonants and digits so that it never forms words and is a
/// valid label value.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let json = serde_json::to_string(template).unwrap_or_default();
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(json.as_bytes());
    if let Some(count) = collision_count {
        feed(&count.to_le_bytes());
    }
    let base = ALPHABET.len() as u32;
    let mut out = Vec::new();
    loop {
        out.push(ALPHABET[(hash % base) as usize]);
        hash /= base;
        if hash == 0 {
            break;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `template` without the pod-template-hash label, to compare templates.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    template.metadata.labels.remove(POD_TEMPLATE_HASH);
    template
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

/// Pods of `rs` that count as available: its reported available replicas, but never more than
/// it is asked for (a replica set scaled down still reports the pods it is deleting).
fn available(rs: &ReplicaSet) -> i32 {
    let reported = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    reported.min(replicas(rs))
}

/// Whether the replica set controller has seen the replica set's latest spec.
fn observed(rs: &ReplicaSet) -> bool {
    rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation
}

/// The controller reference a deployment puts on its replica sets.
pub fn controller_ref(deployment: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: Deployment::API_VERSION.into(),
        kind: Deployment::KIND.into(),
        name: deployment.metadata.name.clone(),
        uid: deployment.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The replica set for the deployment's current template, with `replicas` and `revision`.
pub fn new_replica_set(deployment: &Deployment, replicas: i32, revision: i64) -> ReplicaSet {
    let collisions = deployment.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&deployment.spec.template, collisions);
    let mut template = deployment.spec.template.clone();
    template
        .metadata
        .labels
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut selector: LabelSelector = deployment.spec.selector.clone();
    selector
        .match_labels
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            labels: template.metadata.labels.clone(),
            owner_references: vec![controller_ref(deployment)],
            ..ObjectMeta::namespaced(
                &deployment.metadata.namespace,
                format!("{}-{hash}", deployment.metadata.name),
            )
        },
        ..ReplicaSet::default()
    };
    rs.metadata
        .annotations
        .insert(REVISION_ANNOTATION.into(), revision.to_string());
    rs.spec.replicas = Some(replicas);
    rs.spec.min_ready_seconds = deployment.spec.min_ready_seconds;
    rs.spec.selector = selector;
    rs.spec.template = template;
    rs
}

/// maxSurge and maxUnavailable as counts of `desired` (surge rounded up, unavailable down;
/// both zero would block every rollout, so unavailable becomes 1 then, as Kubernetes does).
pub fn surge_and_unavailable(
    deployment: &Deployment,
    desired: i32,
) -> Result<(i32, i32), PlanError> {
    let rolling = deployment
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let resolve = |value: Option<&IntOrString>, field, round_up| {
        let default = IntOrString::from("25%");
        let value = value.unwrap_or(&default);
        value
            .scaled_value(desired, round_up)
            .map(|v| v.max(0))
            .map_err(|_| PlanError::BadIntOrPercent {
                field,
                value: format!("{value:?}"),
            })
    };
    let surge = resolve(rolling.and_then(|r| r.max_surge.as_ref()), "maxSurge", true)?;
    let unavailable = resolve(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        "maxUnavailable",
        false,
    )?;
    Ok(if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    })
}

/// [`plan`], with the `Progressing` condition decided at `now` (see [`super::progress`]).
pub fn plan_at(
    deployment: &Deployment,
    owned: &[Arc<ReplicaSet>],
    now: jiff::Timestamp,
) -> Result<Plan, PlanError> {
    let mut plan = plan(deployment, owned)?;
    let collisions = deployment.status.as_ref().and_then(|s| s.collision_count);
    let new_rs = format!(
        "{}-{}",
        deployment.metadata.name,
        template_hash(&deployment.spec.template, collisions)
    );
    let progress = progress::progress(
        deployment,
        &plan.status,
        &new_rs,
        plan.create.is_some(),
        now,
    );
    let conditions = &mut plan.status.conditions;
    conditions.retain(|c| c.type_ != progress::PROGRESSING);
    conditions.push(progress.condition);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    plan.recheck_after = progress.recheck_after;
    Ok(plan)
}

/// Decides one sync of `deployment` given the replica sets it controls (see the module docs),
/// leaving the `Progressing` condition as it was.
pub fn plan(deployment: &Deployment, owned: &[Arc<ReplicaSet>]) -> Result<Plan, PlanError> {
    let desired = deployment.spec.replicas.unwrap_or(1).max(0);
    let (max_surge, max_unavailable) = surge_and_unavailable(deployment, desired)?;
    let current = without_hash(&deployment.spec.template);
    let (new, mut old): (Vec<&ReplicaSet>, Vec<&ReplicaSet>) = owned
        .iter()
        .map(Arc::as_ref)
        .partition(|rs| without_hash(&rs.spec.template) == current);
    // Several replica sets with the current template cannot come from this controller; use the
    // oldest, as Kubernetes does, and treat the rest as old.
    let mut new = new;
    new.sort_by_key(|rs| (rs.metadata.creation_timestamp, rs.metadata.name.clone()));
    let new_rs = new.first().copied();
    old.extend(new.iter().skip(1));
    old.sort_by_key(|rs| (revision_of(rs), rs.metadata.creation_timestamp));

    let mut plan = Plan::default();
    let max_old_revision = old.iter().map(|rs| revision_of(rs)).max().unwrap_or(0);
    let revision = match new_rs {
        Some(rs) if revision_of(rs) > max_old_revision => revision_of(rs),
        Some(rs) => {
            let revision = max_old_revision + 1;
            plan.set_revision
                .push((rs.metadata.name.clone(), revision.to_string()));
            revision
        }
        None => max_old_revision + 1,
    };
    if deployment.metadata.annotations.get(REVISION_ANNOTATION) != Some(&revision.to_string()) {
        plan.deployment_revision = Some(revision.to_string());
    }

    plan.status = status(deployment, new_rs, &old, desired, max_unavailable);
    // Decide nothing from replica sets whose status lags their spec: their counts are stale.
    let settled = owned.iter().all(|rs| observed(rs));
    if deployment.spec.paused || !settled || deployment.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }

    let recreate = deployment.spec.strategy.as_ref().and_then(|s| s.type_)
        == Some(DeploymentStrategyType::Recreate);
    if recreate {
        let running_old: Vec<&&ReplicaSet> = old.iter().filter(|rs| replicas(rs) > 0).collect();
        if !running_old.is_empty() {
            plan.scale = running_old
                .iter()
                .map(|rs| (rs.metadata.name.clone(), 0))
                .collect();
            return Ok(plan);
        }
        let old_pods: i32 = old
            .iter()
            .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
            .sum();
        if old_pods > 0 {
            return Ok(plan); // wait for the old pods to go
        }
        match new_rs {
            None => plan.create = Some(new_replica_set(deployment, desired, revision)),
            Some(rs) if replicas(rs) != desired => {
                plan.scale.push((rs.metadata.name.clone(), desired));
            }
            Some(_) => {}
        }
        plan.delete = history_to_delete(deployment, &old);
        return Ok(plan);
    }

    // RollingUpdate. Step 1: the new replica set, scaled up within maxSurge.
    let total: i32 = owned.iter().map(|rs| replicas(rs)).sum();
    let new_replicas = new_rs.map_or(0, replicas);
    let scale_up_to = if new_replicas > desired {
        desired
    } else {
        let room = (desired + max_surge - total).max(0);
        new_replicas + room.min(desired - new_replicas)
    };
    let Some(new_rs) = new_rs else {
        plan.create = Some(new_replica_set(deployment, scale_up_to, revision));
        return Ok(plan);
    };
    if scale_up_to != new_replicas {
        plan.scale.push((new_rs.metadata.name.clone(), scale_up_to));
        return Ok(plan);
    }

    // Step 2: old replica sets, scaled down as far as availability allows.
    let min_available = desired - max_unavailable;
    let new_unavailable = replicas(new_rs) - available(new_rs);
    let mut budget = total - min_available - new_unavailable;
    let mut scaled: Vec<(String, i32)> = Vec::new();
    if budget <= 0 {
        plan.delete = history_to_delete(deployment, &old);
        return Ok(plan);
    }
    // Unavailable old pods go first: removing them costs no availability.
    for rs in &old {
        if budget <= 0 {
            break;
        }
        let unhealthy = replicas(rs) - available(rs);
        let cut = unhealthy.min(budget);
        if cut > 0 {
            scaled.push((rs.metadata.name.clone(), replicas(rs) - cut));
            budget -= cut;
        }
    }
    let after_cleanup = |rs: &ReplicaSet| {
        scaled
            .iter()
            .find(|(name, _)| *name == rs.metadata.name)
            .map_or(replicas(rs), |(_, r)| *r)
    };
    let available_total: i32 = owned.iter().map(|rs| available(rs)).sum();
    let mut available_budget = available_total - min_available;
    let mut more = Vec::new();
    for rs in &old {
        if available_budget <= 0 {
            break;
        }
        let now = after_cleanup(rs);
        let cut = now.min(available_budget);
        if cut > 0 {
            more.push((rs.metadata.name.clone(), now - cut));
            available_budget -= cut;
        }
    }
    for (name, replicas) in more {
        match scaled.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = replicas,
            None => scaled.push((name, replicas)),
        }
    }
    plan.scale = scaled;
    if plan.scale.is_empty() {
        plan.delete = history_to_delete(deployment, &old);
    }
    Ok(plan)
}

/// Old replica sets beyond `revisionHistoryLimit` (oldest first) that are scaled to zero and
/// have no pods left.
fn history_to_delete(deployment: &Deployment, old: &[&ReplicaSet]) -> Vec<String> {
    let limit =
        usize::try_from(deployment.spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(0);
    let idle: Vec<&&ReplicaSet> = old
        .iter()
        .filter(|rs| replicas(rs) == 0 && rs.status.as_ref().is_none_or(|s| s.replicas == 0))
        .collect();
    let excess = idle.len().saturating_sub(limit);
    idle.iter()
        .take(excess)
        .map(|rs| rs.metadata.name.clone())
        .collect()
}

fn status(
    deployment: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[&ReplicaSet],
    desired: i32,
    max_unavailable: i32,
) -> DeploymentStatus {
    let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(old.iter().copied()).collect();
    let sum = |f: fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let reported = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let ready = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    };
    let available_now = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    };
    let available_total = sum(available_now);
    let previous = deployment.status.clone().unwrap_or_default();
    let is_available = available_total >= desired - max_unavailable;
    let mut conditions: Vec<DeploymentCondition> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != "Available")
        .cloned()
        .collect();
    let available_condition = DeploymentCondition {
        type_: "Available".into(),
        status: if is_available {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: if is_available {
            "MinimumReplicasAvailable".into()
        } else {
            "MinimumReplicasUnavailable".into()
        },
        message: if is_available {
            "Deployment has minimum availability.".into()
        } else {
            "Deployment does not have minimum availability.".into()
        },
        ..DeploymentCondition::default()
    };
    // Keep the old condition (and its times) when nothing about it changed.
    match previous.conditions.iter().find(|c| c.type_ == "Available") {
        Some(old) if old.status == available_condition.status => conditions.push(old.clone()),
        _ => conditions.push(available_condition),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(sum(reported)),
        updated_replicas: Some(new_rs.map_or(0, reported)),
        ready_replicas: Some(sum(ready)),
        available_replicas: Some(available_total),
        unavailable_replicas: Some((desired - available_total).max(0)),
        conditions,
        collision_count: previous.collision_count,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orchestra_api::resources::{
        Container, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };

    use super::*;

    fn deployment(replicas: i32, image: &str) -> Deployment {
        let mut d = Deployment {
            metadata: ObjectMeta::namespaced("ns", "web"),
            ..Deployment::default()
        };
        d.metadata.uid = "d-uid".into();
        d.metadata.generation = Some(1);
        d.spec.replicas = Some(replicas);
        d.spec.selector = LabelSelector::match_labels([("app", "web")]);
        d.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        d.spec.template.spec.containers = vec![Container {
            name: "web".into(),
            image: image.into(),
            ..Container::default()
        }];
        d
    }

    /// A replica set of `d`'s template with `image`, settled at `replicas` with `available`.
    fn rs(
        d: &Deployment,
        image: &str,
        replicas: i32,
        available: i32,
        revision: i64,
    ) -> Arc<ReplicaSet> {
        let mut template_of = d.clone();
        template_of.spec.template.spec.containers[0].image = image.into();
        let mut rs = new_replica_set(&template_of, replicas, revision);
        rs.metadata.generation = Some(2);
        rs.status = Some(ReplicaSetStatus {
            replicas: replicas.max(available),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            observed_generation: Some(2),
            ..ReplicaSetStatus::default()
        });
        Arc::new(rs)
    }

    fn name(d: &Deployment, image: &str) -> String {
        let mut template_of = d.clone();
        template_of.spec.template.spec.containers[0].image = image.into();
        new_replica_set(&template_of, 0, 0).metadata.name
    }

    #[test]
    fn a_new_deployment_creates_its_replica_set_at_full_size() {
        let d = deployment(4, "v1");
        let plan = plan(&d, &[]).unwrap();
        let rs = plan.create.expect("a replica set");
        let hash = template_hash(&d.spec.template, None);
        assert_eq!(rs.metadata.name, format!("web-{hash}"));
        assert_eq!(rs.spec.replicas, Some(4));
        assert_eq!(rs.spec.selector.match_labels[POD_TEMPLATE_HASH], hash);
        assert_eq!(rs.spec.template.metadata.labels[POD_TEMPLATE_HASH], hash);
        assert_eq!(rs.metadata.annotations[REVISION_ANNOTATION], "1");
        assert_eq!(rs.metadata.controller_ref().unwrap().uid, "d-uid");
        assert_eq!(plan.deployment_revision.as_deref(), Some("1"));
    }

    #[test]
    fn a_rolling_update_surges_then_trades_old_for_new_within_the_limits() {
        // 4 replicas: maxSurge 25% -> 1, maxUnavailable 25% -> 1.
        let d = deployment(4, "v2");
        let old = rs(&d, "v1", 4, 4, 1);
        let step = plan(&d, std::slice::from_ref(&old)).unwrap();
        let created = step.create.expect("new replica set");
        assert_eq!(created.spec.replicas, Some(1), "surge of 1");
        assert_eq!(created.metadata.annotations[REVISION_ANNOTATION], "2");

        let new = rs(&d, "v2", 1, 0, 2);
        let step = plan(&d, &[old, new.clone()]).unwrap();
        assert_eq!(step.scale, [(name(&d, "v1"), 3)], "one old pod may go");
        assert!(step.create.is_none());

        let old = rs(&d, "v1", 3, 3, 1);
        let step = plan(&d, &[old.clone(), new]).unwrap();
        assert_eq!(
            step.scale,
            [(name(&d, "v2"), 2)],
            "room for one more new pod"
        );

        // Old scaled to 2 while no new pod is available: the surge still allows a new pod...
        let new = rs(&d, "v2", 2, 0, 2);
        let old = rs(&d, "v1", 2, 2, 1);
        let step = plan(&d, &[old.clone(), new]).unwrap();
        assert_eq!(step.scale, [(name(&d, "v2"), 3)]);
        // ...but no old pod may go until new ones are available (2 available < 3 minimum).
        let new = rs(&d, "v2", 3, 0, 2);
        let step = plan(&d, &[old, new]).unwrap();
        assert!(step.scale.is_empty() && step.create.is_none(), "{step:?}");
    }

    #[test]
    fn unavailable_old_pods_are_removed_first() {
        let d = deployment(4, "v2");
        let old = rs(&d, "v1", 4, 2, 1);
        let new = rs(&d, "v2", 1, 0, 2);
        let step = plan(&d, &[old, new]).unwrap();
        assert_eq!(step.scale, [(name(&d, "v1"), 3)]);
    }

    #[test]
    fn nothing_is_decided_from_replica_sets_that_lag_their_spec() {
        let d = deployment(4, "v2");
        let old = rs(&d, "v1", 4, 4, 1);
        let mut lagging = (*rs(&d, "v2", 1, 0, 2)).clone();
        lagging.metadata.generation = Some(3);
        let step = plan(&d, &[old, Arc::new(lagging)]).unwrap();
        assert_eq!((step.create, step.scale.len()), (None, 0));
        assert_eq!(step.status.replicas, Some(5));
    }

    #[test]
    fn recreate_scales_old_to_zero_waits_for_their_pods_then_creates() {
        let mut d = deployment(3, "v2");
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::Recreate),
            rolling_update: None,
        });
        let step = plan(&d, &[rs(&d, "v1", 3, 3, 1)]).unwrap();
        assert_eq!(step.scale, [(name(&d, "v1"), 0)]);
        assert!(step.create.is_none());
        let draining = rs(&d, "v1", 0, 2, 1);
        let step = plan(&d, &[draining]).unwrap();
        assert!(
            step.scale.is_empty() && step.create.is_none(),
            "waits for pods"
        );
        let step = plan(&d, &[rs(&d, "v1", 0, 0, 1)]).unwrap();
        assert_eq!(step.create.expect("new").spec.replicas, Some(3));
    }

    #[test]
    fn old_replica_sets_beyond_the_history_limit_are_deleted_oldest_first() {
        let mut d = deployment(2, "v4");
        d.spec.revision_history_limit = Some(1);
        let sets = vec![
            rs(&d, "v1", 0, 0, 1),
            rs(&d, "v2", 0, 0, 2),
            rs(&d, "v3", 0, 0, 3),
            rs(&d, "v4", 2, 2, 4),
        ];
        let step = plan(&d, &sets).unwrap();
        assert_eq!(step.delete, [name(&d, "v1"), name(&d, "v2")]);
        assert!(step.scale.is_empty());
        assert_eq!(step.status.available_replicas, Some(2));
        assert_eq!(step.status.conditions[0].status, ConditionStatus::True);
    }

    #[test]
    fn going_back_to_an_old_template_gives_its_replica_set_the_next_revision() {
        let d = deployment(2, "v1");
        let step = plan(&d, &[rs(&d, "v1", 0, 0, 1), rs(&d, "v2", 2, 2, 2)]).unwrap();
        assert_eq!(step.set_revision, [(name(&d, "v1"), "3".to_owned())]);
        assert_eq!(step.deployment_revision.as_deref(), Some("3"));
        assert_eq!(
            step.scale,
            [(name(&d, "v1"), 1)],
            "surge of 1 (25% of 2, up)"
        );
    }

    #[test]
    fn surge_and_unavailable_resolve_like_kubernetes() {
        let mut d = deployment(10, "v1");
        assert_eq!(surge_and_unavailable(&d, 10).unwrap(), (3, 2));
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::from("0%")),
            }),
        });
        assert_eq!(
            surge_and_unavailable(&d, 10).unwrap(),
            (0, 1),
            "never both zero"
        );
        d.spec
            .strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .max_surge = Some(IntOrString::from("lots"));
        assert!(matches!(
            surge_and_unavailable(&d, 10),
            Err(PlanError::BadIntOrPercent {
                field: "maxSurge",
                ..
            })
        ));
    }

    #[test]
    fn template_hashes_are_stable_label_safe_and_distinct() {
        let a = deployment(1, "v1").spec.template;
        let b = deployment(1, "v2").spec.template;
        assert_eq!(template_hash(&a, None), template_hash(&a, None));
        assert_ne!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(
            template_hash(&a, None)
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
