//! The Job controller: runs a job's pods until enough succeed, within `parallelism`, backing
//! off after failures, and fails the job past `backoffLimit` or `activeDeadlineSeconds`.
//!
//! Decisions are [`plan::plan`]'s (pure); this module carries them out (creations in
//! slow-start batches, deletions, then the status) and keeps each job's
//! [`plan::BackoffRecord`] in memory, as Kubernetes does: after a restart, a job's earlier
//! failures no longer delay its next pod. Time comes from a [`Clock`] that follows tokio's, so
//! the backoff and the deadline run in paused time in tests. `Indexed` jobs get one pod per
//! pending index ([`plan::pod_for_index`]); `ttlSecondsAfterFinished` is the
//! [`TtlAfterFinishedController`](crate::controllers::TtlAfterFinishedController)'s.
//!
//! Each sync of an unfinished job first claims its pods as Kubernetes' `ControllerRefManager`
//! does (the rules are `owned`'s, shared with the ReplicaSet, DaemonSet and StatefulSet
//! controllers): an orphan pod of its namespace that matches `spec.selector` is adopted (the
//! job's controller reference added by a write conditional on the pod's resourceVersion),
//! unless the job is being deleted; an owned pod that stopped matching is released; a pod
//! controlled by anything else is never touched. Adopted pods count as the job's own: an
//! orphan that already succeeded counts toward `completions`, a failed one toward
//! `backoffLimit`. An orphan's events reach the unfinished jobs that would adopt it. A finished
//! job claims nothing, as in Kubernetes (whose sync returns before claiming): it would delete
//! an adopted running pod at once. With the generated selector (the job's uid) only pods made
//! for this very job match; adoption matters for `manualSelector` jobs.
//!
//! Not supported: pod failure policies, backoff limits per index.
//!
//! Events on the job: `SuccessfulCreate` ("Created pod: NAME") per pod, `Completed` ("Job
//! completed"), or a Warning `BackoffLimitExceeded` / `DeadlineExceeded` when it fails.

pub mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::resources::{ConditionStatus, Job, JobStatus, Pod};
use orchestra_api::{ApiError, Client, LabelSelector, Selector, SelectorError};

use crate::controller::Controller;
use crate::controllers::clock::Clock;
use crate::controllers::events::{self, COMPLETED, JOB_CONTROLLER, PodEvents};
use crate::controllers::expectations::Expectations;
use crate::controllers::owned;
use crate::controllers::pod_writes::{
    WriteError, Written, create_each, create_from_template, delete_each, expect_own_writes,
    wait_for_own_writes,
};
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// Why a Job sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A write failed; the next sync starts over from the cache.
    #[error("job {name:?}: could not {action}: {source}")]
    Api {
        /// `namespace/name`.
        name: String,
        /// What was being done, e.g. `create pods`.
        action: &'static str,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
    /// The selector does not parse (validation should have refused it).
    #[error("job {name:?} has an invalid selector: {source}")]
    Selector {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
}

/// What a job without a selector is mapped by (the registry generates a selector on create,
/// so only an object stored some other way lacks one): never used to match, see
/// [`JobController::controller`].
static NO_SELECTOR: LabelSelector = LabelSelector {
    match_labels: std::collections::BTreeMap::new(),
    match_expressions: Vec::new(),
};

/// What the controller remembers of one job's pods.
#[derive(Debug, Default)]
struct Memory {
    record: plan::BackoffRecord,
    seen_failed: HashSet<String>,
    seen_succeeded: usize,
}

/// The Job reconciler. Build a ready-to-run controller with [`JobController::controller`].
pub struct JobController<C> {
    client: C,
    pods: Informer<Pod>,
    expectations: Expectations,
    memory: Mutex<HashMap<ObjectKey, Memory>>,
    clock: Clock,
    events: EventSink,
}

impl<C> std::fmt::Debug for JobController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobController").finish_non_exhaustive()
    }
}

impl<C: Client> JobController<C> {
    /// The reconciler, reading pods from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        let pods = owned::indexed_informer::<Pod, C>(informers);
        JobController {
            client: informers.client().clone(),
            pods,
            expectations: Expectations::default(),
            memory: Mutex::default(),
            clock: Clock::new(),
            events: events::sink(informers.client(), JOB_CONTROLLER),
        }
    }

    /// The controller: Jobs, the pods they own, and orphan pods (mapped to every unfinished
    /// job of their namespace whose selector matches them: the jobs that would adopt them).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let jobs = informers.store::<Job>();
        Controller::new(Self::new(informers), informers)
            .name("job")
            .owns::<Pod>()
            .watches::<Pod, _>(move |pod| {
                owned::orphan_owners(
                    &jobs,
                    pod,
                    |job| job.spec.selector.as_ref().unwrap_or(&NO_SELECTOR),
                    // A job without a selector matches nothing (the empty one would match
                    // everything); a finished one claims nothing.
                    |job, _| job.spec.selector.is_some() && !plan::is_finished(job),
                )
            })
    }

    async fn sync(&self, job: &Job, key: &ObjectKey) -> Result<Action, JobError> {
        let name = format!("{}/{}", key.namespace, key.name);
        let api = |action: &'static str| {
            let name = name.clone();
            move |source| JobError::Api {
                name,
                action,
                source,
            }
        };
        let mut written = Written::default();
        let owned = match self.claim(job, &name, &mut written).await {
            Ok(owned) => owned,
            Err(err) => {
                expect_own_writes(&self.expectations, &self.pods, key, written).await;
                return Err(err);
            }
        };
        let now = self.clock.now();
        let record = {
            let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            let memory = memory.entry(key.clone()).or_default();
            memory.record = plan::observe(
                &memory.record,
                &owned,
                &mut memory.seen_failed,
                &mut memory.seen_succeeded,
                now,
            );
            memory.record.clone()
        };
        let plan = plan::plan(job, &owned, &record, now);
        let result = self.execute(job, &plan, &mut written).await;
        expect_own_writes(&self.expectations, &self.pods, key, written).await;
        result.map_err(|(action, err)| api(action)(err))?;
        if job.status.as_ref() != Some(&plan.status) {
            super::status::write_status(&self.client, job, |object| {
                object.status = Some(plan.status.clone())
            })
            .await
            .map_err(api("update the status"))?;
            self.record_finish(job, &plan.status);
        }
        Ok(match plan.recheck_after {
            Some(after) => Action::requeue(after),
            None => Action::AwaitChange,
        })
    }

    /// The pods the job controls after adopting and releasing (see the module docs); the
    /// writes are noted in `written`. A finished job, or one without a selector, claims
    /// nothing: its pods are the ones it controls.
    async fn claim(
        &self,
        job: &Job,
        name: &str,
        written: &mut Written,
    ) -> Result<Vec<Arc<Pod>>, JobError> {
        let selector = match job.spec.selector.as_ref() {
            Some(selector) if !plan::is_finished(job) => selector,
            _ => return Ok(owned::owned_by(&self.pods, &job.metadata.uid)),
        };
        let selector = Selector::try_from(selector).map_err(|source| JobError::Selector {
            name: name.to_owned(),
            source,
        })?;
        owned::claim_all(
            &self.client,
            job,
            owned::owned_and_orphans(&self.pods, job),
            |pod: &Pod| selector.matches(&pod.metadata.labels),
            ["adopt a pod", "release a pod"],
            written,
        )
        .await
        .map_err(|(action, source)| JobError::Api {
            name: name.to_owned(),
            action,
            source,
        })
    }

    async fn execute(
        &self,
        job: &Job,
        plan: &plan::Plan,
        written: &mut Written,
    ) -> Result<(), WriteError> {
        let template = plan::pod_from_template(job);
        let events = PodEvents::of(&self.events, job);
        create_from_template(&self.client, &template, plan.create, written, &events).await?;
        let indexed: Vec<Pod> = plan
            .create_indexes
            .iter()
            .map(|index| plan::pod_for_index(job, *index))
            .collect();
        create_each(&self.client, &indexed, written, &events).await?;
        let namespace = &job.metadata.namespace;
        delete_each(&self.client, namespace, &plan.delete, written, &events).await
    }

    /// The job just finished (its status now has a `Complete` or `Failed` condition it did not
    /// have): `Completed` ("Job completed"), or a Warning with the failure's reason
    /// (`BackoffLimitExceeded`, `DeadlineExceeded`) and message, as Kubernetes records.
    fn record_finish(&self, job: &Job, status: &JobStatus) {
        let finished = |s: &JobStatus| {
            s.conditions
                .iter()
                .find(|c| {
                    (c.type_ == "Complete" || c.type_ == "Failed")
                        && c.status == ConditionStatus::True
                })
                .cloned()
        };
        if job.status.as_ref().and_then(finished).is_some() {
            return;
        }
        match finished(status) {
            Some(c) if c.type_ == "Complete" => {
                self.events.normal(job, COMPLETED, "Job completed");
            }
            Some(c) => self.events.warning(job, &c.reason, c.message),
            None => {}
        }
    }
}

#[async_trait]
impl<C: Client> Reconciler for JobController<C> {
    type Object = Job;
    type Error = JobError;

    async fn reconcile(&self, job: Arc<Job>, ctx: &Context) -> Result<Action, Self::Error> {
        let key = ctx.key();
        if let Some(requeue) = wait_for_own_writes(&self.expectations, &self.pods, key).await {
            return Ok(requeue);
        }
        self.sync(&job, key).await
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        self.expectations.forget(key);
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(Action::AwaitChange)
    }
}
