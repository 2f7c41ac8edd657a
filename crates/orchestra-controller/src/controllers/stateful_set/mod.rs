//! The StatefulSet controller: pods with stable names (`NAME-0`, `NAME-1`, ...) and DNS
//! identities, created and deleted in ordinal order (`OrderedReady`) or all at once
//! (`Parallel`), replaced from the highest ordinal down to the partition when the template
//! changes (`RollingUpdate`) or only when deleted (`OnDelete`), with the counts and revisions
//! in `status`.
//!
//! Each sync first claims the set's pods and ControllerRevisions as Kubernetes'
//! `ControllerRefManager` does (see `owned`): an orphan of its namespace that matches the
//! selector (a pod also only if it is named `NAME-ORDINAL`) is adopted, unless the set is being
//! deleted; an owned one that stopped matching is released; one controlled by anything else is
//! never touched. So a set deleted with `--cascade=orphan` and created again takes its running
//! pods back without restarting them (their revision label names the same revision).
//!
//! Decisions are [`plan::plan`]'s (pure); this module carries them out (deletions first, then
//! creations, then the status) and waits until the pod cache shows its writes before deciding
//! again. Each sync first records the template in the set's history of ControllerRevisions
//! ([`super::history`], as the DaemonSet controller does); the update revision is the current
//! template's, and the current revision (`status.currentRevision`) is the one pods below the
//! partition are made from, read back from its ControllerRevision. Each pod created or
//! deleted, and each failure, is an event on the set.
//!
//! [`rollout::rollout_status`] is `orchestra ctl rollout status statefulset/NAME`'s verdict.
//!
//! A pod of the set lacking its identity labels (the pod-name and pod-index labels), or with
//! wrong values, as an adopted orphan may be, has them repaired by an update of its labels
//! conditional on its resourceVersion (Kubernetes' `updateIdentity`): the pod is neither
//! deleted nor restarted. Its `hostname` and `subdomain` are immutable fields of a pod and stay
//! as they are (see [`plan`]).
//!
//! Not supported: `volumeClaimTemplates` (orchestra has no PersistentVolumeClaims; validation
//! refuses them), `ordinals.start`, and hash collisions between templates
//! (`status.collisionCount` is read, never raised).

pub mod plan;
pub mod rollout;

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::resources::{ControllerRevision, Pod, PodTemplateSpec, StatefulSet};
use orchestra_api::{ApiError, Client, Selector, SelectorError};

use crate::controller::Controller;
use crate::controllers::clock::Clock;
use crate::controllers::events::{self, PodEvents, STATEFUL_SET_CONTROLLER};
use crate::controllers::expectations::Expectations;
use crate::controllers::history::{self, current_hash, revision_name};
use crate::controllers::owned;
use crate::controllers::pod_writes::{
    WriteError, Written, create_each, delete_each, expect_own_writes, wait_for_own_writes,
};
use crate::controllers::revision_writes;
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// Why a StatefulSet sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum StatefulSetError {
    /// The update settings are invalid.
    #[error("stateful set {name:?}: {source}")]
    Plan {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: plan::PlanError,
    },
    /// The selector does not parse (validation should have refused it).
    #[error("stateful set {name:?} has an invalid selector: {source}")]
    Selector {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
    /// A write failed; the next sync starts over from the cache.
    #[error("stateful set {name:?}: could not {action}: {source}")]
    Api {
        /// `namespace/name`.
        name: String,
        /// What was being done, e.g. `create pods`.
        action: &'static str,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
}

/// The StatefulSet reconciler. Build a ready-to-run controller with
/// [`StatefulSetController::controller`].
pub struct StatefulSetController<C> {
    client: C,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
    expectations: Expectations,
    clock: Clock,
    events: EventSink,
}

impl<C> std::fmt::Debug for StatefulSetController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatefulSetController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> StatefulSetController<C> {
    /// The reconciler, reading pods and revisions from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        let pods = owned::indexed_informer::<Pod, C>(informers);
        let revisions = owned::indexed_informer::<ControllerRevision, C>(informers);
        StatefulSetController {
            client: informers.client().clone(),
            pods,
            revisions,
            expectations: Expectations::default(),
            clock: Clock::new(),
            events: events::sink(informers.client(), STATEFUL_SET_CONTROLLER),
        }
    }

    /// The controller: StatefulSets, the pods and revisions they own, and orphan pods and
    /// revisions (mapped to every set of their namespace that would adopt them).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let sets = informers.store::<StatefulSet>();
        let sets_too = sets.clone();
        Controller::new(Self::new(informers), informers)
            .name("statefulset")
            .owns::<Pod>()
            .owns::<ControllerRevision>()
            .watches::<Pod, _>(move |pod| {
                owned::orphan_owners(
                    &sets,
                    pod,
                    |sts| &sts.spec.selector,
                    |sts, pod| plan::ordinal_of(sts, pod).is_some(),
                )
            })
            .watches::<ControllerRevision, _>(move |revision| {
                owned::orphan_owners(&sets_too, revision, |sts| &sts.spec.selector, |_, _| true)
            })
    }

    async fn sync(&self, sts: &StatefulSet, key: &ObjectKey) -> Result<Action, StatefulSetError> {
        let name = format!("{}/{}", key.namespace, key.name);
        let api = |(action, source): WriteError| StatefulSetError::Api {
            name: name.clone(),
            action,
            source,
        };
        let selector = Selector::try_from(&sts.spec.selector).map_err(|source| {
            StatefulSetError::Selector {
                name: name.clone(),
                source,
            }
        })?;
        let mut written = Written::default();
        let claimed = self.claim(sts, &selector, &mut written).await;
        let (owned, revisions) = match claimed {
            Ok(claimed) => claimed,
            Err(err) => {
                expect_own_writes(&self.expectations, &self.pods, key, written).await;
                return Err(api(err));
            }
        };
        if sts.metadata.deletion_timestamp.is_none() {
            revision_writes::record_history(&self.client, sts, &revisions, &owned)
                .await
                .map_err(api)?;
        }
        let (names, current_template) = current_and_update(sts, &revisions);
        let pods: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
        let plan = plan::plan(sts, &pods, &names, self.clock.now()).map_err(|source| {
            StatefulSetError::Plan {
                name: name.clone(),
                source,
            }
        })?;
        let template_of = |revision: &str| {
            if revision == names.update {
                &sts.spec.template
            } else {
                &current_template
            }
        };
        let result = self
            .execute(sts, &owned, &plan, template_of, &mut written)
            .await;
        expect_own_writes(&self.expectations, &self.pods, key, written).await;
        result.map_err(api)?;
        if sts.status.as_ref() != Some(&plan.status) {
            super::status::write_status(&self.client, sts, |object| {
                object.status = Some(plan.status.clone())
            })
            .await
            .map_err(|source| api(("update the status", source)))?;
        }
        Ok(match plan.recheck_after {
            Some(after) => Action::requeue(after),
            None => Action::AwaitChange,
        })
    }

    /// Adopts and releases the set's pods and revisions (see the module docs); returns the
    /// ones it owns afterwards. Pod writes are noted in `written`.
    async fn claim(
        &self,
        sts: &StatefulSet,
        selector: &Selector,
        written: &mut Written,
    ) -> Result<(Vec<Arc<Pod>>, Vec<Arc<ControllerRevision>>), WriteError> {
        let pods = owned::claim_all(
            &self.client,
            sts,
            owned::owned_and_orphans(&self.pods, sts),
            |pod: &Pod| {
                selector.matches(&pod.metadata.labels) && plan::ordinal_of(sts, pod).is_some()
            },
            ["adopt a pod", "release a pod"],
            written,
        )
        .await?;
        let revisions =
            owned::claim_revisions(&self.client, sts, &self.revisions, selector).await?;
        Ok((pods, revisions))
    }

    async fn execute<'t>(
        &self,
        sts: &StatefulSet,
        owned: &[Arc<Pod>],
        plan: &plan::Plan,
        template_of: impl Fn(&str) -> &'t PodTemplateSpec,
        written: &mut Written,
    ) -> Result<(), WriteError> {
        let events = PodEvents::of(&self.events, sts);
        let namespace = &sts.metadata.namespace;
        self.relabel(owned, &plan.relabel, written).await?;
        delete_each(&self.client, namespace, &plan.delete, written, &events).await?;
        let pods: Vec<Pod> = plan
            .create
            .iter()
            .map(|c| plan::pod_for_ordinal(sts, c.ordinal, &c.revision, template_of(&c.revision)))
            .collect();
        create_each(&self.client, &pods, written, &events).await
    }

    /// Repairs the identity labels of the pods in `relabel` (found in `owned`, as this sync
    /// read or adopted them): each an update conditional on the pod's resourceVersion, so one
    /// changed since fails with a conflict and the sync is retried on a fresher cache. A pod
    /// gone meanwhile needs no repair.
    async fn relabel(
        &self,
        owned: &[Arc<Pod>],
        relabel: &[plan::Relabel],
        written: &mut Written,
    ) -> Result<(), WriteError> {
        for repair in relabel {
            let Some(pod) = owned.iter().find(|p| p.metadata.name == repair.name) else {
                continue;
            };
            let mut repaired = Pod::clone(pod);
            repaired.metadata.labels.extend(repair.labels.clone());
            match self.client.update(&repaired).await {
                Ok(stored) => written.note(&stored.metadata.resource_version),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(("repair the identity labels of a pod", err)),
            }
        }
        Ok(())
    }
}

/// The set's current and update revisions by name, and the current revision's template. The
/// update revision is the current template's; the current one is `status.currentRevision`
/// while its ControllerRevision exists (else the update revision: a new set, or a lost
/// history).
fn current_and_update(
    sts: &StatefulSet,
    revisions: &[Arc<ControllerRevision>],
) -> (plan::Revisions, PodTemplateSpec) {
    let update = revision_name(sts, &current_hash(sts));
    let recorded = sts
        .status
        .as_ref()
        .map(|s| s.current_revision.as_str())
        .filter(|current| *current != update)
        .and_then(|current| revisions.iter().find(|r| r.metadata.name == current))
        .and_then(|r| Some((r.metadata.name.clone(), history::revision_template(r)?)));
    match recorded {
        Some((current, template)) => (plan::Revisions { current, update }, template),
        None => (
            plan::Revisions {
                current: update.clone(),
                update,
            },
            sts.spec.template.clone(),
        ),
    }
}

#[async_trait]
impl<C: Client> Reconciler for StatefulSetController<C> {
    type Object = StatefulSet;
    type Error = StatefulSetError;

    async fn reconcile(&self, sts: Arc<StatefulSet>, ctx: &Context) -> Result<Action, Self::Error> {
        let key = ctx.key();
        if let Some(requeue) = wait_for_own_writes(&self.expectations, &self.pods, key).await {
            return Ok(requeue);
        }
        self.sync(&sts, key).await
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        self.expectations.forget(key);
        Ok(Action::AwaitChange)
    }
}
