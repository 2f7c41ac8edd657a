//! The pod writes the workload controllers (ReplicaSet, Job, DaemonSet) share: creating pods
//! from a template in slow-start batches, creating and deleting pods by the dozen, and the
//! expectations that keep a controller from deciding again before its pod informer has seen its
//! own writes (client-go's `ControllerExpectations`, by resourceVersion). Each creation and
//! deletion, and each failure of one, is an event on the owner ([`PodEvents`]).

use std::time::Duration;

use futures::future::join_all;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::Pod;
use orchestra_api::{ApiError, Client};

use crate::controllers::events::PodEvents;
use crate::controllers::expectations::Expectations;
use crate::controllers::replica_set::plan::slow_start_batches;
use crate::informer::Informer;
use crate::reconciler::Action;

/// How long a sync waits for the pod cache to show its own writes before giving up (the next
/// sync then waits instead).
const CACHE_WAIT: Duration = Duration::from_secs(5);

/// A failed write: what it was (`"create pods"`, ...) and why.
pub(crate) type WriteError = (&'static str, ApiError);

/// The highest resourceVersion one sync has written.
#[derive(Debug, Default)]
pub(crate) struct Written(i64);

impl Written {
    /// Note one written object's resourceVersion.
    pub(crate) fn note(&mut self, resource_version: &str) {
        self.0 = self.0.max(resource_version.parse().unwrap_or(0));
    }

    /// Whether the sync wrote anything (so that the events of its writes will come back).
    pub(crate) fn any(&self) -> bool {
        self.0 > 0
    }

    /// The highest resourceVersion written (0 when nothing was).
    pub(crate) fn highest(&self) -> i64 {
        self.0
    }
}

/// Create `count` pods from `template` in slow-start batches (1, 2, 4, ...): a batch runs only
/// if the previous one fully succeeded, so a failing template costs one failed call.
pub(crate) async fn create_from_template<C: Client>(
    client: &C,
    template: &Pod,
    count: usize,
    written: &mut Written,
    events: &PodEvents<'_>,
) -> Result<(), WriteError> {
    for batch in slow_start_batches(count) {
        let results = join_all((0..batch).map(|_| client.create(template))).await;
        let mut failure = None;
        for result in results {
            match result {
                Ok(pod) => {
                    written.note(&pod.metadata.resource_version);
                    events.created(&pod);
                }
                Err(err) => {
                    events.create_failed(&err);
                    failure = Some(err);
                }
            }
        }
        if let Some(err) = failure {
            return Err(("create pods", err));
        }
    }
    Ok(())
}

/// Create each of `pods` at once.
pub(crate) async fn create_each<C: Client>(
    client: &C,
    pods: &[Pod],
    written: &mut Written,
    events: &PodEvents<'_>,
) -> Result<(), WriteError> {
    let mut failure = None;
    for result in join_all(pods.iter().map(|pod| client.create(pod))).await {
        match result {
            Ok(pod) => {
                written.note(&pod.metadata.resource_version);
                events.created(&pod);
            }
            Err(err) => {
                events.create_failed(&err);
                failure.get_or_insert(err);
            }
        }
    }
    match failure {
        Some(err) => Err(("create pods", err)),
        None => Ok(()),
    }
}

/// Delete the named pods of `namespace` at once; a pod already gone is not an error.
pub(crate) async fn delete_each<C: Client>(
    client: &C,
    namespace: &str,
    names: &[String],
    written: &mut Written,
    events: &PodEvents<'_>,
) -> Result<(), WriteError> {
    let options = DeleteOptions::default();
    let deletions = join_all(
        names
            .iter()
            .map(|name| client.delete::<Pod>(namespace, name, &options)),
    )
    .await;
    let mut failure = None;
    for (name, result) in names.iter().zip(deletions) {
        match result {
            Ok(outcome) => {
                written.note(&outcome.object().metadata.resource_version);
                events.deleted(name);
            }
            Err(err) if err.is_not_found() => {}
            Err(err) => {
                events.delete_failed(&err);
                failure.get_or_insert(err);
            }
        }
    }
    match failure {
        Some(err) => Err(("delete pods", err)),
        None => Ok(()),
    }
}

/// After a sync's writes: expect the pod cache to reach them before `key` is decided again,
/// and wait for it briefly (usually it catches up in moments, and the next sync needs no wait).
pub(crate) async fn expect_own_writes(
    expectations: &Expectations,
    pods: &Informer<Pod>,
    key: &ObjectKey,
    written: Written,
) {
    if written.0 > 0 {
        expectations.expect(key, written.0);
        if tokio::time::timeout(CACHE_WAIT, pods.wait_for_revision(written.0))
            .await
            .is_ok()
        {
            expectations.forget(key);
        }
    }
}

/// Before a sync: `Some(requeue)` while the pod cache has not yet seen an earlier sync's writes
/// of `key` (deciding on an older cache would create or delete pods twice).
pub(crate) async fn wait_for_own_writes(
    expectations: &Expectations,
    pods: &Informer<Pod>,
    key: &ObjectKey,
) -> Option<Action> {
    let revision = expectations.unmet(key, pods.revision())?;
    if tokio::time::timeout(CACHE_WAIT, pods.wait_for_revision(revision))
        .await
        .is_err()
    {
        return Some(Action::requeue(Duration::from_secs(1)));
    }
    expectations.forget(key);
    None
}
