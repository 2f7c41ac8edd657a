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
//! Each sync first claims the daemon set's pods and ControllerRevisions as Kubernetes'
//! `ControllerRefManager` does (see `owned`): an orphan of its namespace that matches the
//! selector is adopted, unless the daemon set is being deleted; an owned one that stopped
//! matching is released; one controlled by anything else is never touched. An orphan pod's
//! events reach every daemon set whose selector matches it, so an orphan appearing later is
//! adopted too, and a daemon set deleted with `--cascade=orphan` and created again takes its
//! pods back instead of starting new ones. Then (unless the daemon set is being deleted) it
//! records the template in its history of ControllerRevisions ([`super::history`]: create the
//! current one, renumber one that came back, trim beyond `revisionHistoryLimit`), which
//! `orchestra ctl rollout undo daemonset/NAME` rolls back to.
//!
//! Not supported: hash collisions between templates (`status.collisionCount` is read, never
//! raised).

pub mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::resources::{ControllerRevision, DaemonSet, Node, Pod};
use orchestra_api::{ApiError, Client, Selector, SelectorError};

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
    /// The selector does not parse (validation should have refused it).
    #[error("daemon set {name:?} has an invalid selector: {source}")]
    Selector {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
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

    /// The controller: DaemonSets, the pods and revisions they own, orphan pods and
    /// revisions (mapped to every daemon set of their namespace whose selector matches, for
    /// adoption), and nodes (a change of any node resyncs every daemon set).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let daemon_sets = informers.store::<DaemonSet>();
        let for_pods = daemon_sets.clone();
        let for_revisions = daemon_sets.clone();
        Controller::new(Self::new(informers), informers)
            .name("daemonset")
            .owns::<Pod>()
            .owns::<ControllerRevision>()
            .watches::<Pod, _>(move |pod| {
                owned::orphan_owners(&for_pods, pod, |ds| &ds.spec.selector, |_, _| true)
            })
            .watches::<ControllerRevision, _>(move |revision| {
                owned::orphan_owners(
                    &for_revisions,
                    revision,
                    |ds| &ds.spec.selector,
                    |_, _| true,
                )
            })
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
        let selector =
            Selector::try_from(&ds.spec.selector).map_err(|source| DaemonSetError::Selector {
                name: name.clone(),
                source,
            })?;
        let mut written = Written::default();
        let (owned, revisions) = match self.claim(ds, &selector, &mut written).await {
            Ok(claimed) => claimed,
            Err((action, err)) => {
                expect_own_writes(&self.expectations, &self.pods, key, written).await;
                return Err(api(action)(err));
            }
        };
        // A daemon set being deleted may already have lost revisions to the garbage
        // collector: recording its history now would make them again.
        if ds.metadata.deletion_timestamp.is_none() {
            revision_writes::record_history(&self.client, ds, &revisions, &owned)
                .await
                .map_err(|(action, err)| api(action)(err))?;
        }
        let nodes = self.nodes.store().list();
        let plan = plan::plan(ds, &nodes, &owned, self.clock.now()).map_err(|source| {
            DaemonSetError::Plan {
                name: name.clone(),
                source,
            }
        })?;
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

    /// Adopts and releases the daemon set's pods and revisions (see the module docs);
    /// returns the ones it owns afterwards. Pod writes are noted in `written`.
    async fn claim(
        &self,
        ds: &DaemonSet,
        selector: &Selector,
        written: &mut Written,
    ) -> Result<(Vec<Arc<Pod>>, Vec<Arc<ControllerRevision>>), WriteError> {
        let pods = owned::claim_all(
            &self.client,
            ds,
            owned::owned_and_orphans(&self.pods, ds),
            |pod: &Pod| selector.matches(&pod.metadata.labels),
            ["adopt a pod", "release a pod"],
            written,
        )
        .await?;
        let revisions = owned::claim_revisions(&self.client, ds, &self.revisions, selector).await?;
        Ok((pods, revisions))
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
