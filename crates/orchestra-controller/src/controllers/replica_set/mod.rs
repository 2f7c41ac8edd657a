//! The ReplicaSet controller: keeps `spec.replicas` active pods from the template, adopting
//! matching orphans and releasing pods that stopped matching, and reports the counts in
//! `status`.
//!
//! Decisions are [`plan::plan`]'s (pure); this module carries them out: adoption and release
//! as updates conditional on the pod's resourceVersion, creations in slow-start batches (1, 2,
//! 4, ...; a failing batch stops the rest), deletions at once, then the status (only by a sync
//! that wrote no pod: after pod writes, the next sync, which their events bring, counts them). Before it
//! decides, it waits until the pod cache shows its previous writes ([`Expectations`]).
//! Each pod created or deleted, and each failure, is an event on the replica set
//! (`SuccessfulCreate`, `SuccessfulDelete`, `FailedCreate`, `FailedDelete`).

pub mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::reflector::{ObjectKey, index};
use orchestra_api::resources::{Pod, ReplicaSet};
use orchestra_api::{ApiError, Client, SelectorError};

use crate::controller::Controller;
use crate::controllers::events::{self, PodEvents, REPLICA_SET_CONTROLLER};
use crate::controllers::expectations::Expectations;
use crate::controllers::owned;
use crate::controllers::pod_writes::{
    WriteError, Written, create_from_template, delete_each, expect_own_writes, wait_for_own_writes,
};
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// The index of pods by namespace that the controllers share.
pub(crate) const NAMESPACE_INDEX: &str = "namespace";

/// Why a ReplicaSet sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    /// The selector or template labels do not parse (validation should have refused them).
    #[error("replica set {name:?} has an invalid selector: {source}")]
    Selector {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
    /// A write failed; the next sync starts over from the cache.
    #[error("replica set {name:?}: could not {action}: {source}")]
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

/// The ReplicaSet reconciler. Build a ready-to-run controller with
/// [`ReplicaSetController::controller`].
pub struct ReplicaSetController<C> {
    client: C,
    pods: Informer<Pod>,
    expectations: Expectations,
    events: EventSink,
}

impl<C> std::fmt::Debug for ReplicaSetController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSetController")
            .finish_non_exhaustive()
    }
}

/// Registers the pod-by-namespace index (shared: a second registration is not an error).
pub(crate) fn pods_by_namespace(pods: &Informer<Pod>) {
    let _ = pods
        .store()
        .add_index(NAMESPACE_INDEX, index::by_namespace::<Pod>);
}

impl<C: Client> ReplicaSetController<C> {
    /// The reconciler, reading pods from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        let pods = owned::indexed_informer::<Pod, C>(informers);
        ReplicaSetController {
            client: informers.client().clone(),
            pods,
            expectations: Expectations::default(),
            events: events::sink(informers.client(), REPLICA_SET_CONTROLLER),
        }
    }

    /// The controller: ReplicaSets, the pods they own, and orphan pods (mapped to every
    /// replica set of their namespace whose selector matches, for adoption).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let replica_sets = informers.store::<ReplicaSet>();
        Controller::new(Self::new(informers), informers)
            .name("replicaset")
            .owns::<Pod>()
            .watches::<Pod, _>(move |pod| {
                owned::orphan_owners(&replica_sets, pod, |rs| &rs.spec.selector, |_, _| true)
            })
    }

    async fn sync(&self, rs: &ReplicaSet, key: &ObjectKey) -> Result<Action, ReplicaSetError> {
        let name = format!("{}/{}", key.namespace, key.name);
        let api = |action: &'static str| {
            let name = name.clone();
            move |source| ReplicaSetError::Api {
                name,
                action,
                source,
            }
        };
        // Only the pods it controls and the orphans of its namespace concern a replica set:
        // looking at these, not the whole namespace, keeps a sync cheap in a big namespace.
        let pods = owned::owned_and_orphans(&self.pods, rs);
        let plan = plan::plan(rs, &pods, jiff::Timestamp::now()).map_err(|source| {
            ReplicaSetError::Selector {
                name: name.clone(),
                source,
            }
        })?;
        let mut written = Written::default();
        let result = self.execute(rs, &key.namespace, &plan, &mut written).await;
        let wrote_pods = written.any();
        expect_own_writes(&self.expectations, &self.pods, key, written).await;
        result.map_err(|(action, err)| api(action)(err))?;
        // The status was counted from the pods before this sync's writes, so it is stale
        // already; the pod events of those writes bring the key back, and that sync counts
        // from a cache that shows them (and writes the status once, not twice: in a bulk
        // load a status write costs as much as a few pod creations).
        if !wrote_pods && rs.status.as_ref() != Some(&plan.status) {
            super::status::write_status(&self.client, rs, |object| {
                object.status = Some(plan.status.clone())
            })
            .await
            .map_err(api("update the status"))?;
        }
        Ok(match plan.recheck_after {
            Some(after) => Action::requeue(after),
            None => Action::AwaitChange,
        })
    }

    async fn execute(
        &self,
        rs: &ReplicaSet,
        namespace: &str,
        plan: &plan::Plan,
        written: &mut Written,
    ) -> Result<(), WriteError> {
        let store = self.pods.store();
        if !plan.adopt.is_empty()
            && owned::can_adopt(&self.client, rs)
                .await
                .map_err(|e| ("check that it may adopt pods", e))?
        {
            for name in &plan.adopt {
                let Some(pod) = store.get(namespace, name) else {
                    continue;
                };
                if let Some(pod) =
                    owned::adopt(&self.client, pod.as_ref(), plan::controller_ref(rs))
                        .await
                        .map_err(|e| ("adopt a pod", e))?
                {
                    written.note(&pod.metadata.resource_version);
                }
            }
        }
        for name in &plan.release {
            let Some(pod) = store.get(namespace, name) else {
                continue;
            };
            if let Some(pod) = owned::release(&self.client, pod.as_ref(), &rs.metadata.uid)
                .await
                .map_err(|e| ("release a pod", e))?
            {
                written.note(&pod.metadata.resource_version);
            }
        }
        let template = plan::pod_from_template(rs);
        let events = PodEvents::of(&self.events, rs);
        create_from_template(&self.client, &template, plan.create, written, &events).await?;
        delete_each(&self.client, namespace, &plan.delete, written, &events).await
    }
}

#[async_trait]
impl<C: Client> Reconciler for ReplicaSetController<C> {
    type Object = ReplicaSet;
    type Error = ReplicaSetError;

    async fn reconcile(&self, rs: Arc<ReplicaSet>, ctx: &Context) -> Result<Action, Self::Error> {
        let key = ctx.key();
        if let Some(requeue) = wait_for_own_writes(&self.expectations, &self.pods, key).await {
            return Ok(requeue);
        }
        self.sync(&rs, key).await
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        // Its pods go with the garbage collector (their ownerReferences); nothing to wait for.
        self.expectations.forget(key);
        Ok(Action::AwaitChange)
    }
}
