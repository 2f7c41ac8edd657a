//! The DaemonSet controller: one pod on every node that should run it, replaced node by node
//! when the template changes (`RollingUpdate`) or when deleted (`OnDelete`), with the counts in
//! `status`.
//!
//! Decisions are [`plan::plan`]'s (pure); this module carries them out (deletions first, then
//! creations, then the status) and waits until the pod cache shows its writes before deciding
//! again. Any node change resyncs every daemon set. A rolling update with `maxSurge` starts a
//! node's new pod next to its old one and deletes the old one once the new one is available.
//! Each pod created or deleted, and each failure, is an event on the daemon set
//! (`SuccessfulCreate`, `SuccessfulDelete`, `FailedCreate`, `FailedDelete`).
//!
//! Each sync first records the template in the daemon set's history of ControllerRevisions
//! ([`super::history`]: create the current one, renumber one that came back, trim beyond
//! `revisionHistoryLimit`), which `orchestra ctl rollout undo daemonset/NAME` rolls back to.
//!
//! Not supported: adoption of orphan pods or revisions, and hash collisions between templates
//! (`status.collisionCount` is read, never raised).

pub mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::resources::{ControllerRevision, DaemonSet, Node, Pod};
use orchestra_api::{ApiError, Client};

use crate::controller::Controller;
use crate::controllers::clock::Clock;
use crate::controllers::events::{self, DAEMON_SET_CONTROLLER, PodEvents};
use crate::controllers::expectations::Expectations;
use crate::controllers::owned;
use crate::controllers::pod_writes::{
    WriteError, Written, create_each, delete_each, expect_own_writes, wait_for_own_writes,
};
use crate::controllers::revision_writes;
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// Why a DaemonSet sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum DaemonSetError {
    /// The update settings are invalid.
    #[error("daemon set {name:?}: {source}")]
    Plan {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: plan::PlanError,
    },
    /// A write failed; the next sync starts over from the cache.
    #[error("daemon set {name:?}: could not {action}: {source}")]
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

/// The DaemonSet reconciler. Build a ready-to-run controller with
/// [`DaemonSetController::controller`].
pub struct DaemonSetController<C> {
    client: C,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    expectations: Expectations,
    clock: Clock,
    events: EventSink,
}

impl<C> std::fmt::Debug for DaemonSetController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonSetController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> DaemonSetController<C> {
    /// The reconciler, reading pods and nodes from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        let pods = owned::indexed_informer::<Pod, C>(informers);
        let revisions = owned::indexed_informer::<ControllerRevision, C>(informers);
        DaemonSetController {
            client: informers.client().clone(),
            pods,
            nodes: informers.informer::<Node>(),
            revisions,
            expectations: Expectations::default(),
            clock: Clock::new(),
            events: events::sink(informers.client(), DAEMON_SET_CONTROLLER),
        }
    }

    /// The controller: DaemonSets, the pods and revisions they own, and nodes (a change of
    /// any node resyncs every daemon set).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let daemon_sets = informers.store::<DaemonSet>();
        Controller::new(Self::new(informers), informers)
            .name("daemonset")
            .owns::<Pod>()
            .owns::<ControllerRevision>()
            .watches::<Node, _>(move |_node| {
                daemon_sets
                    .list()
                    .iter()
                    .map(|ds| ObjectKey::of(ds.as_ref()))
                    .collect()
            })
    }

    async fn sync(&self, ds: &DaemonSet, key: &ObjectKey) -> Result<Action, DaemonSetError> {
        let name = format!("{}/{}", key.namespace, key.name);
        let api = |action: &'static str| {
            let name = name.clone();
            move |source| DaemonSetError::Api {
                name,
                action,
                source,
            }
        };
        let owned = owned::owned_by(&self.pods, &ds.metadata.uid);
        self.record_history(ds, &owned)
            .await
            .map_err(|(action, err)| api(action)(err))?;
        let nodes = self.nodes.store().list();
        let plan = plan::plan(ds, &nodes, &owned, self.clock.now()).map_err(|source| {
            DaemonSetError::Plan {
                name: name.clone(),
                source,
            }
        })?;
        let mut written = Written::default();
        let result = self.execute(ds, &plan, &mut written).await;
        expect_own_writes(&self.expectations, &self.pods, key, written).await;
        result.map_err(|(action, err)| api(action)(err))?;
        if ds.status.as_ref() != Some(&plan.status) {
            super::status::write_status(&self.client, ds, |object| {
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

    /// Brings the daemon set's ControllerRevisions in line with its template (see
    /// [`super::history`]); on a failed write, what was being done and why.
    async fn record_history(&self, ds: &DaemonSet, owned: &[Arc<Pod>]) -> Result<(), WriteError> {
        let revisions = owned::owned_by(&self.revisions, &ds.metadata.uid);
        revision_writes::record_history(&self.client, ds, &revisions, owned).await
    }

    async fn execute(
        &self,
        ds: &DaemonSet,
        plan: &plan::Plan,
        written: &mut Written,
    ) -> Result<(), WriteError> {
        let events = PodEvents::of(&self.events, ds);
        let namespace = &ds.metadata.namespace;
        delete_each(&self.client, namespace, &plan.delete, written, &events).await?;
        let hash = plan::current_hash(ds);
        let pods: Vec<Pod> = plan
            .create
            .iter()
            .map(|node| plan::pod_for_node(ds, node, &hash))
            .collect();
        create_each(&self.client, &pods, written, &events).await
    }
}

#[async_trait]
impl<C: Client> Reconciler for DaemonSetController<C> {
    type Object = DaemonSet;
    type Error = DaemonSetError;

    async fn reconcile(&self, ds: Arc<DaemonSet>, ctx: &Context) -> Result<Action, Self::Error> {
        let key = ctx.key();
        if let Some(requeue) = wait_for_own_writes(&self.expectations, &self.pods, key).await {
            return Ok(requeue);
        }
        self.sync(&ds, key).await
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        self.expectations.forget(key);
        Ok(Action::AwaitChange)
    }
}
