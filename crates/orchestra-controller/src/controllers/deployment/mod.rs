//! The Deployment controller: rolls pods from one template to the next through replica sets,
//! RollingUpdate (within `maxSurge` and `maxUnavailable`, 25% each by default) or Recreate,
//! with the `pod-template-hash` label, revision annotations and `revisionHistoryLimit`.
//!
//! Decisions are [`plan::plan_at`]'s (pure); this module carries them out through conditional
//! updates and waits until the replica set cache shows its writes before deciding again. The
//! `Progressing` condition and `progressDeadlineSeconds` are [`progress`]'s; a paused
//! deployment rolls nothing out. Rolling back ([`rollback`]) puts an old revision's template
//! back into the deployment: its replica set becomes the new one again, with the next
//! revision. Not yet: proportional scaling of several replica sets when `replicas` changes
//! mid-rollout, scaling while paused.
//!
//! Each sync first claims the deployment's replica sets as Kubernetes' `ControllerRefManager`
//! does (see `owned`): an orphan replica set of its namespace whose labels match the selector
//! is adopted, unless the deployment is being deleted; an owned one that stopped matching is
//! released; one controlled by anything else is never touched. An orphan replica set's events
//! reach every deployment whose selector matches it, so a deployment deleted with
//! `--cascade=orphan` and created again takes its replica sets (and so their pods) back.
//!
//! Every replica set it creates with pods or scales is a `ScalingReplicaSet` event on the
//! deployment ("Scaled up replica set web-5d8f to 3", "Scaled down replica set web-77aa to 1
//! from 3").

pub mod plan;
pub mod progress;
pub mod rollback;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Deployment, ReplicaSet};
use orchestra_api::{ApiError, Client, Selector, SelectorError};

use crate::controller::Controller;
use crate::controllers::clock::Clock;
use crate::controllers::events::{self, DEPLOYMENT_CONTROLLER, SCALING_REPLICA_SET};
use crate::controllers::expectations::Expectations;
use crate::controllers::owned;
use crate::controllers::pod_writes::Written;
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// How long one reconcile waits for the cache to show its own writes.
const CACHE_WAIT: Duration = Duration::from_secs(5);

/// Why a Deployment sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The selector does not parse (validation should have refused it).
    #[error("deployment {name:?} has an invalid selector: {source}")]
    Selector {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
    /// The rollout settings are invalid.
    #[error("deployment {name:?}: {source}")]
    Plan {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: plan::PlanError,
    },
    /// A write failed; the next sync starts over from the cache.
    #[error("deployment {name:?}: could not {action}: {source}")]
    Api {
        /// `namespace/name`.
        name: String,
        /// What was being done.
        action: &'static str,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
}

/// The Deployment reconciler. Build a ready-to-run controller with
/// [`DeploymentController::controller`].
pub struct DeploymentController<C> {
    client: C,
    replica_sets: Informer<ReplicaSet>,
    expectations: Expectations,
    clock: Clock,
    events: EventSink,
}

impl<C> std::fmt::Debug for DeploymentController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> DeploymentController<C> {
    /// The reconciler, reading replica sets from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        let replica_sets = owned::indexed_informer::<ReplicaSet, C>(informers);
        DeploymentController {
            client: informers.client().clone(),
            replica_sets,
            expectations: Expectations::default(),
            clock: Clock::new(),
            events: events::sink(informers.client(), DEPLOYMENT_CONTROLLER),
        }
    }

    /// The controller: Deployments, the replica sets they own, and orphan replica sets
    /// (mapped to every deployment of their namespace whose selector matches, for adoption).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let deployments = informers.store::<Deployment>();
        Controller::new(Self::new(informers), informers)
            .name("deployment")
            .owns::<ReplicaSet>()
            .watches::<ReplicaSet, _>(move |rs| {
                owned::orphan_owners(&deployments, rs, |d| &d.spec.selector, |_, _| true)
            })
    }

    async fn sync(
        &self,
        deployment: &Deployment,
        name: &str,
    ) -> Result<Option<Duration>, DeploymentError> {
        let api = |action: &'static str| {
            move |source| DeploymentError::Api {
                name: name.to_owned(),
                action,
                source,
            }
        };
        let selector = Selector::try_from(&deployment.spec.selector).map_err(|source| {
            DeploymentError::Selector {
                name: name.to_owned(),
                source,
            }
        })?;
        let mut claimed = Written::default();
        let owned = owned::claim_all(
            &self.client,
            deployment,
            owned::owned_and_orphans(&self.replica_sets, deployment),
            |rs: &ReplicaSet| selector.matches(&rs.metadata.labels),
            ["adopt a replica set", "release a replica set"],
            &mut claimed,
        )
        .await;
        let mut written = claimed.highest();
        let result = match owned {
            Ok(owned) => match plan::plan_at(deployment, &owned, self.clock.now()) {
                Ok(plan) => self
                    .execute(deployment, &plan, &mut written)
                    .await
                    .map(|()| plan)
                    .map_err(|(action, err)| api(action)(err)),
                Err(source) => Err(DeploymentError::Plan {
                    name: name.to_owned(),
                    source,
                }),
            },
            Err((action, err)) => Err(api(action)(err)),
        };
        // Wait for the cache to show this sync's writes (adoptions included), so that the
        // next sync does not decide on replica sets as they were before them.
        if written > 0 {
            let key = orchestra_api::reflector::ObjectKey::of(deployment);
            self.expectations.expect(&key, written);
            if tokio::time::timeout(CACHE_WAIT, self.replica_sets.wait_for_revision(written))
                .await
                .is_ok()
            {
                self.expectations.forget(&key);
            }
        }
        let plan = result?;

        let mut current = deployment.clone();
        if let Some(revision) = &plan.deployment_revision {
            current
                .metadata
                .annotations
                .insert(plan::REVISION_ANNOTATION.into(), revision.clone());
            current = self
                .client
                .update(&current)
                .await
                .map_err(api("annotate the revision"))?;
        }
        if current.status.as_ref() != Some(&plan.status) {
            super::status::write_status(&self.client, &current, |object| {
                object.status = Some(plan.status.clone())
            })
            .await
            .map_err(api("update the status"))?;
        }
        Ok(plan.recheck_after)
    }

    async fn execute(
        &self,
        deployment: &Deployment,
        plan: &plan::Plan,
        written: &mut i64,
    ) -> Result<(), (&'static str, ApiError)> {
        let mut note = |rv: &str| *written = (*written).max(rv.parse().unwrap_or(0));
        let store = self.replica_sets.store();
        let namespace = &deployment.metadata.namespace;
        if let Some(rs) = &plan.create {
            match self.client.create(rs).await {
                Ok(created) => {
                    note(&created.metadata.resource_version);
                    let replicas = created.spec.replicas.unwrap_or(0);
                    if replicas > 0 {
                        let message = format!(
                            "Scaled up replica set {} to {replicas}",
                            created.metadata.name
                        );
                        self.events.normal(deployment, SCALING_REPLICA_SET, message);
                    }
                }
                Err(ApiError::AlreadyExists { .. }) => {
                    // Either the cache is behind (the next event brings it) or another
                    // template hashed to the same name: count a collision so that the next
                    // name differs.
                    let existing: ReplicaSet = self
                        .client
                        .get(namespace, &rs.metadata.name)
                        .await
                        .map_err(|e| ("read a replica set", e))?;
                    let ours = existing
                        .metadata
                        .controller_ref()
                        .is_some_and(|o| o.uid == deployment.metadata.uid);
                    if !ours || existing.spec.template != rs.spec.template {
                        let mut bumped = deployment.clone();
                        let status = bumped.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        self.client
                            .update_status(&bumped)
                            .await
                            .map_err(|e| ("count a hash collision", e))?;
                        return Err((
                            "create the replica set (its name was taken; retrying with another)",
                            ApiError::AlreadyExists {
                                kind: "ReplicaSet",
                                name: rs.metadata.name.clone(),
                            },
                        ));
                    }
                }
                Err(err) => return Err(("create the replica set", err)),
            }
        }
        for (name, revision) in &plan.set_revision {
            let Some(rs) = store.get(namespace, name) else {
                continue;
            };
            let mut rs = (*rs).clone();
            rs.metadata
                .annotations
                .insert(plan::REVISION_ANNOTATION.into(), revision.clone());
            let rs = self
                .client
                .update(&rs)
                .await
                .map_err(|e| ("set a revision", e))?;
            note(&rs.metadata.resource_version);
        }
        for (name, replicas) in &plan.scale {
            // Read again when the revision was just set: the cached copy is stale then.
            let rs = match store.get(namespace, name) {
                Some(rs) if !plan.set_revision.iter().any(|(n, _)| n == name) => (*rs).clone(),
                _ => self
                    .client
                    .get(namespace, name)
                    .await
                    .map_err(|e| ("read a replica set", e))?,
            };
            let mut rs = rs;
            let from = rs.spec.replicas.unwrap_or(1);
            rs.spec.replicas = Some(*replicas);
            let rs = self
                .client
                .update(&rs)
                .await
                .map_err(|e| ("scale a replica set", e))?;
            note(&rs.metadata.resource_version);
            if from != *replicas {
                let message = events::scaling_message(name, from, *replicas);
                self.events.normal(deployment, SCALING_REPLICA_SET, message);
            }
        }
        for name in &plan.delete {
            match self
                .client
                .delete::<ReplicaSet>(namespace, name, &DeleteOptions::default())
                .await
            {
                Ok(outcome) => note(&outcome.object().metadata.resource_version),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(("delete an old replica set", err)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<C: Client> Reconciler for DeploymentController<C> {
    type Object = Deployment;
    type Error = DeploymentError;

    async fn reconcile(
        &self,
        deployment: Arc<Deployment>,
        ctx: &Context,
    ) -> Result<Action, Self::Error> {
        let key = ctx.key();
        if let Some(revision) = self.expectations.unmet(key, self.replica_sets.revision()) {
            let wait = self.replica_sets.wait_for_revision(revision);
            if tokio::time::timeout(CACHE_WAIT, wait).await.is_err() {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            self.expectations.forget(key);
        }
        let name = format!("{}/{}", key.namespace, key.name);
        Ok(match self.sync(&deployment, &name).await? {
            Some(after) => Action::requeue(after),
            None => Action::AwaitChange,
        })
    }
}
