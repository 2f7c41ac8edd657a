//! The StatefulSet controller's decisions, as pure functions: a stateful set, the pods it
//! controls and its two revisions in, the exact writes out.
//!
//! Kubernetes' rules: the set's pods are `NAME-0` to `NAME-(replicas-1)`; each keeps its name
//! (and its hostname under the set's Service) for life, and a missing or failed one is
//! recreated with the same name. With `OrderedReady` (the default) one thing happens at a
//! time: ordinal `i` is created only once `0..i` are running and available; a failed pod is
//! deleted and nothing else happens in that sync; pods beyond `replicas` are deleted from the
//! highest ordinal down, each only once the one above it is gone and every other pod is
//! healthy. With `Parallel` all missing pods are created and all extra ones deleted at once.
//!
//! A template change is a new *update revision*. `RollingUpdate` deletes pods of older
//! revisions from the highest ordinal down to `partition`, at most `maxUnavailable` (1 by
//! default) pods of the set being unavailable at a time, counting the ones deleted; each
//! comes back (by the rules above) at the update revision. Pods below the partition are
//! (re)created at the *current revision*, which becomes the update revision once every pod
//! runs it and is ready. `OnDelete` replaces nothing: a pod deleted by someone comes back at
//! the update revision. A set being deleted is left alone (the garbage collector removes its
//! pods).
//!
//! A pod of the set (ordinal below `replicas`, neither being deleted, finished nor about to be
//! deleted) whose identity labels ([`identity_labels`]: the pod-name and pod-index labels
//! the set puts on the pods it creates) are missing or wrong, typically an adopted orphan, has
//! them repaired ([`Relabel`], Kubernetes' `identityMatches` / `updateIdentity`): an update of
//! its labels, not a replacement, so the pod keeps running. Unlike Kubernetes, repairs do not
//! wait their turn in `OrderedReady`: a label update disturbs nothing. Only labels are
//! repaired: `spec.hostname` and `spec.subdomain`, which Kubernetes sets only when it
//! creates a pod, are immutable in orchestra's pod update validation, as in Kubernetes, so an
//! adopted pod keeps the ones it has.

use std::collections::BTreeMap;
use std::time::Duration;

use orchestra_api::resources::{Pod, PodTemplateSpec};
use orchestra_api::resources::{
    PodManagementPolicyType, PodPhase, STATEFUL_SET_POD_INDEX_LABEL, STATEFUL_SET_POD_NAME_LABEL,
    StatefulSet, StatefulSetStatus, StatefulSetUpdateStrategyType,
};

use crate::controllers::history::{REVISION_HASH_LABEL, controller_ref};
use crate::controllers::pods::{self, Availability};

/// What went wrong deciding (the stateful set is invalid in a way validation lets through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// maxUnavailable is neither a number nor a percentage.
    #[error(
        "spec.updateStrategy.rollingUpdate.maxUnavailable: {value:?} is neither a number nor a percentage"
    )]
    BadMaxUnavailable {
        /// The value given.
        value: String,
    },
}

/// The two revisions a sync works with, by ControllerRevision name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revisions {
    /// The revision pods below the partition run (`status.currentRevision`).
    pub current: String,
    /// The revision of the current template (`status.updateRevision`).
    pub update: String,
}

/// A pod to create: its ordinal and the revision it is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// The ordinal: the pod is `NAME-ORDINAL`.
    pub ordinal: i32,
    /// The revision's name (one of [`Revisions`]).
    pub revision: String,
}

/// A pod whose identity labels must be repaired: set `labels` on it (an update of the pod,
/// conditional on its resourceVersion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relabel {
    /// The pod's name.
    pub name: String,
    /// The identity labels it lacks or has wrong, with the values they must have.
    pub labels: BTreeMap<String, String>,
}

/// What one sync of a stateful set must do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create.
    pub create: Vec<Create>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Pods whose identity labels to repair, in ordinal order.
    pub relabel: Vec<Relabel>,
    /// The status the stateful set should report.
    pub status: StatefulSetStatus,
    /// When a ready pod will become available (minReadySeconds): sync again then.
    pub recheck_after: Option<Duration>,
}

/// The name of the pod with `ordinal` of `sts`.
pub fn pod_name(sts: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", sts.metadata.name)
}

/// The ordinal of a pod of `sts`, when its name is `NAME-ORDINAL` (exactly as [`pod_name`]
/// spells it).
pub fn ordinal_of(sts: &StatefulSet, pod: &Pod) -> Option<i32> {
    let rest = pod
        .metadata
        .name
        .strip_prefix(sts.metadata.name.as_str())?
        .strip_prefix('-')?;
    let ordinal: i32 = rest.parse().ok()?;
    (ordinal >= 0 && ordinal.to_string() == rest).then_some(ordinal)
}

/// The identity labels of the pod with `ordinal` of `sts`: the pod-name label
/// ([`STATEFUL_SET_POD_NAME_LABEL`], its name) and the pod-index label
/// ([`STATEFUL_SET_POD_INDEX_LABEL`], its ordinal). Every pod the set creates carries them;
/// an adopted pod is repaired to carry them.
pub fn identity_labels(sts: &StatefulSet, ordinal: i32) -> [(&'static str, String); 2] {
    [
        (STATEFUL_SET_POD_NAME_LABEL, pod_name(sts, ordinal)),
        (STATEFUL_SET_POD_INDEX_LABEL, ordinal.to_string()),
    ]
}

/// The revision a pod runs (its [`REVISION_HASH_LABEL`], a ControllerRevision's name).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// The pod with `ordinal` of `sts`, made from `template` (revision `revision`'s): its stable
/// name, the identity labels, hostname = name and subdomain = `serviceName`.
pub fn pod_for_ordinal(
    sts: &StatefulSet,
    ordinal: i32,
    revision: &str,
    template: &PodTemplateSpec,
) -> Pod {
    let name = pod_name(sts, ordinal);
    let mut pod = Pod {
        spec: template.spec.clone(),
        ..Pod::default()
    };
    let meta = &mut pod.metadata;
    meta.name.clone_from(&name);
    meta.namespace.clone_from(&sts.metadata.namespace);
    meta.labels.clone_from(&template.metadata.labels);
    for (key, value) in identity_labels(sts, ordinal) {
        meta.labels.insert(key.into(), value);
    }
    meta.labels
        .insert(REVISION_HASH_LABEL.into(), revision.to_owned());
    meta.annotations.clone_from(&template.metadata.annotations);
    meta.owner_references = vec![controller_ref(sts)];
    pod.spec.hostname = name;
    pod.spec.subdomain.clone_from(&sts.spec.service_name);
    pod
}

/// Whether the pod is being deleted.
fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether the pod ended (a stateful pod never should: it is replaced).
fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Failed | PodPhase::Succeeded)
    )
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running)
}

/// The facts one sync decides on, computed once.
struct View<'a> {
    sts: &'a StatefulSet,
    /// The pod of each ordinal below `replicas`.
    slots: Vec<Option<&'a Pod>>,
    /// The pods at or beyond `replicas`, highest ordinal first.
    condemned: Vec<&'a Pod>,
    min_ready: Duration,
    now: jiff::Timestamp,
}

impl View<'_> {
    /// Running and available (ready for minReadySeconds), not being deleted.
    fn healthy(&self, pod: &Pod) -> bool {
        running(pod) && !terminating(pod) && self.availability(pod) == Availability::Available
    }

    fn availability(&self, pod: &Pod) -> Availability {
        pods::availability(pod, self.min_ready, self.now)
    }
}

/// Decides one sync of `sts` given the pods it controls and its revisions, at `now` (see the
/// module docs).
pub fn plan(
    sts: &StatefulSet,
    owned: &[&Pod],
    revisions: &Revisions,
    now: jiff::Timestamp,
) -> Result<Plan, PlanError> {
    let replicas = sts.spec.replicas.unwrap_or(1).max(0);
    let mut slots = vec![None; usize::try_from(replicas).unwrap_or(0)];
    let mut condemned = Vec::new();
    for pod in owned {
        // A pod whose name is not NAME-ORDINAL is not one of the set's identities: left alone.
        match ordinal_of(sts, pod) {
            Some(ordinal) if ordinal < replicas => {
                slots[usize::try_from(ordinal).unwrap_or(0)] = Some(*pod);
            }
            Some(ordinal) => condemned.push((ordinal, *pod)),
            None => {}
        }
    }
    condemned.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));
    let view = View {
        sts,
        slots,
        condemned: condemned.into_iter().map(|(_, pod)| pod).collect(),
        min_ready: Duration::from_secs(
            u64::try_from(sts.spec.min_ready_seconds.unwrap_or(0)).unwrap_or(0),
        ),
        now,
    };
    let mut plan = Plan {
        status: status(sts, owned, revisions, &view),
        recheck_after: owned
            .iter()
            .filter_map(|pod| match view.availability(pod) {
                Availability::ReadyFor(wait) => Some(wait),
                _ => None,
            })
            .min(),
        ..Plan::default()
    };
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }
    let ordered = sts.spec.pod_management_policy != Some(PodManagementPolicyType::Parallel);
    if scale(&view, revisions, ordered, &mut plan) {
        rolling_update(&view, &mut plan)?;
    }
    plan.relabel = identity_repairs(&view, &plan.delete);
    Ok(plan)
}

/// The pods of the set's ordinals whose identity labels are missing or wrong, but not those
/// on their way out (being deleted, finished, or in `deleting`): their replacements get the
/// labels when created.
fn identity_repairs(view: &View<'_>, deleting: &[String]) -> Vec<Relabel> {
    (0..)
        .zip(&view.slots)
        .filter_map(|(ordinal, slot)| Some((ordinal, (*slot)?)))
        .filter(|(_, pod)| {
            !terminating(pod) && !finished(pod) && !deleting.contains(&pod.metadata.name)
        })
        .filter_map(|(ordinal, pod)| {
            let labels: BTreeMap<String, String> = identity_labels(view.sts, ordinal)
                .into_iter()
                .filter(|(key, value)| pod.metadata.labels.get(*key) != Some(value))
                .map(|(key, value)| (key.to_owned(), value))
                .collect();
            (!labels.is_empty()).then(|| Relabel {
                name: pod.metadata.name.clone(),
                labels,
            })
        })
        .collect()
}

/// The revision a new pod of `ordinal` is made from: below the partition the current one,
/// else the update one.
fn revision_for(sts: &StatefulSet, revisions: &Revisions, ordinal: i32) -> String {
    let strategy = sts.spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.type_) != Some(StatefulSetUpdateStrategyType::OnDelete);
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if rolling && ordinal < partition {
        revisions.current.clone()
    } else {
        revisions.update.clone()
    }
}

/// Creates missing pods, replaces failed ones and deletes those beyond `replicas`, in order
/// when `ordered`. Returns whether the sync may go on to the rolling update (nothing to wait
/// for in ordered mode).
fn scale(view: &View<'_>, revisions: &Revisions, ordered: bool, plan: &mut Plan) -> bool {
    for (ordinal, slot) in (0..).zip(&view.slots) {
        match slot {
            None => {
                plan.create.push(Create {
                    ordinal,
                    revision: revision_for(view.sts, revisions, ordinal),
                });
                if ordered {
                    return false;
                }
            }
            Some(pod) if terminating(pod) => {
                // Recreated under the same name once it is gone.
                if ordered {
                    return false;
                }
            }
            Some(pod) if finished(pod) => {
                plan.delete.push(pod.metadata.name.clone());
                if ordered {
                    return false;
                }
            }
            Some(pod) if ordered && !view.healthy(pod) => return false,
            Some(_) => {}
        }
    }
    // The first unhealthy extra pod, highest ordinal first: in ordered mode only it may go.
    let first_unhealthy = view.condemned.iter().find(|pod| !view.healthy(pod));
    for pod in &view.condemned {
        if terminating(pod) {
            if ordered {
                return false;
            }
            continue;
        }
        if ordered && first_unhealthy.is_some_and(|u| u.metadata.name != pod.metadata.name) {
            return false;
        }
        plan.delete.push(pod.metadata.name.clone());
        if ordered {
            return false;
        }
    }
    true
}

/// `RollingUpdate`: deletes pods of older revisions from the highest ordinal down to the
/// partition, while fewer than `maxUnavailable` pods of the set are unavailable.
fn rolling_update(view: &View<'_>, plan: &mut Plan) -> Result<(), PlanError> {
    let Some(strategy) = view.sts.spec.update_strategy.as_ref() else {
        return Ok(());
    };
    if strategy.type_ == Some(StatefulSetUpdateStrategyType::OnDelete) {
        return Ok(());
    }
    let rolling = strategy.rolling_update.as_ref();
    let replicas = i32::try_from(view.slots.len()).unwrap_or(i32::MAX);
    let max_unavailable = match rolling.and_then(|r| r.max_unavailable.as_ref()) {
        Some(value) => value
            .scaled_value(replicas, true)
            .map_err(|_| PlanError::BadMaxUnavailable {
                value: value.to_string(),
            })?
            .max(1),
        None => 1,
    };
    let partition = rolling.and_then(|r| r.partition).unwrap_or(0).max(0);
    let deleted = |pod: &Pod| plan.delete.contains(&pod.metadata.name);
    let unavailable = view
        .slots
        .iter()
        .filter(|slot| slot.is_none_or(|pod| deleted(pod) || !view.healthy(pod)))
        .count();
    let budget = usize::try_from(max_unavailable)
        .unwrap_or(1)
        .saturating_sub(unavailable);
    let outdated: Vec<String> = (0..replicas)
        .zip(&view.slots)
        .rev()
        .filter(|(ordinal, _)| *ordinal >= partition)
        .filter_map(|(_, slot)| *slot)
        .filter(|pod| !terminating(pod) && !deleted(pod))
        .filter(|pod| pod_revision(pod) != Some(plan.status.update_revision.as_str()))
        .map(|pod| pod.metadata.name.clone())
        .take(budget)
        .collect();
    plan.delete.extend(outdated);
    Ok(())
}

/// The status of `sts` from the pods it controls (before this sync's writes).
fn status(
    sts: &StatefulSet,
    owned: &[&Pod],
    revisions: &Revisions,
    view: &View<'_>,
) -> StatefulSetStatus {
    let count = |keep: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned.iter().filter(|pod| keep(pod)).count()).unwrap_or(i32::MAX)
    };
    let live = |pod: &Pod| !terminating(pod);
    let mut status = StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas: count(&|_| true),
        ready_replicas: count(&|pod| live(pod) && running(pod) && pods::is_ready(pod)),
        available_replicas: count(&|pod| live(pod) && view.healthy(pod)),
        current_replicas: count(&|pod| {
            live(pod) && pod_revision(pod) == Some(revisions.current.as_str())
        }),
        updated_replicas: count(&|pod| {
            live(pod) && pod_revision(pod) == Some(revisions.update.as_str())
        }),
        current_revision: revisions.current.clone(),
        update_revision: revisions.update.clone(),
        collision_count: sts.status.as_ref().and_then(|s| s.collision_count),
        conditions: sts
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    };
    // A rolling update is complete once every pod runs the update revision and is ready: it
    // becomes the current revision.
    let rolling = sts.spec.update_strategy.as_ref().and_then(|s| s.type_)
        != Some(StatefulSetUpdateStrategyType::OnDelete);
    if rolling
        && status.updated_replicas == status.replicas
        && status.ready_replicas == status.replicas
        && status.replicas == sts.spec.replicas.unwrap_or(1).max(0)
    {
        status.current_revision = status.update_revision.clone();
        status.current_replicas = status.updated_replicas;
    }
    status
}

#[cfg(test)]
mod tests;
