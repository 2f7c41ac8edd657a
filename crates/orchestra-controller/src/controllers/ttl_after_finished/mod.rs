//! The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished` seconds
//! after it finished, with foreground propagation, so that its pods go first (the garbage
//! collector deletes them, then the job).
//!
//! The decision is [`plan::decide`]'s (pure); this module waits out the TTL with a requeue
//! (time from a [`Clock`] that follows tokio's, so tests run in paused time) and deletes the
//! job on the condition that it is still the version decided on: a job changed in the
//! meantime (its TTL raised, say) comes back through its change instead.

pub mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::registry::{DeleteOptions, PropagationPolicy};
use orchestra_api::resources::Job;
use orchestra_api::{ApiError, Client};

use crate::controller::Controller;
use crate::controllers::clock::Clock;
use crate::informer::SharedInformers;
use crate::reconciler::{Action, Context, Reconciler};

/// Why deleting an expired job failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
#[error("job {name:?}: could not delete it after its ttlSecondsAfterFinished: {source}")]
pub struct TtlAfterFinishedError {
    /// `namespace/name`.
    pub name: String,
    /// The API's answer.
    #[source]
    pub source: ApiError,
}

/// The TTL-after-finished reconciler. Build a ready-to-run controller with
/// [`TtlAfterFinishedController::controller`].
pub struct TtlAfterFinishedController<C> {
    client: C,
    clock: Clock,
}

impl<C> std::fmt::Debug for TtlAfterFinishedController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlAfterFinishedController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> TtlAfterFinishedController<C> {
    /// The reconciler, deleting through `informers`' client.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        TtlAfterFinishedController {
            client: informers.client().clone(),
            clock: Clock::new(),
        }
    }

    /// The controller: Jobs only.
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        Controller::new(Self::new(informers), informers).name("ttl-after-finished")
    }
}

#[async_trait]
impl<C: Client> Reconciler for TtlAfterFinishedController<C> {
    type Object = Job;
    type Error = TtlAfterFinishedError;

    async fn reconcile(&self, job: Arc<Job>, _ctx: &Context) -> Result<Action, Self::Error> {
        match plan::decide(&job, self.clock.now()) {
            plan::Decision::Keep => Ok(Action::AwaitChange),
            plan::Decision::WaitFor(wait) => Ok(Action::requeue(wait)),
            plan::Decision::Delete => {
                let meta = &job.metadata;
                let options = DeleteOptions {
                    propagation_policy: Some(PropagationPolicy::Foreground),
                    resource_version: Some(meta.resource_version.clone()),
                    ..DeleteOptions::default()
                };
                match self
                    .client
                    .delete::<Job>(&meta.namespace, &meta.name, &options)
                    .await
                {
                    Ok(_) => Ok(Action::AwaitChange),
                    Err(err) if err.is_not_found() => Ok(Action::AwaitChange),
                    // Changed since the cache showed it: the change brings it back here.
                    Err(ApiError::Conflict(_)) => Ok(Action::AwaitChange),
                    Err(source) => Err(TtlAfterFinishedError {
                        name: format!("{}/{}", meta.namespace, meta.name),
                        source,
                    }),
                }
            }
        }
    }
}
