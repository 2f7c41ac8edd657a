//! A finalizer helper: run cleanup before an object goes away, exactly as Kubernetes'
//! finalizers intend, in a way that is safe to repeat.
//!
//! [`finalizer`] wraps a reconcile: an object without the finalizer gets it first (an update
//! conditional on its resourceVersion), then [`Event::Apply`] runs; an object marked for
//! deletion that still has the finalizer gets [`Event::Cleanup`], and only when that succeeds
//! is the finalizer removed, which lets the API server delete the object. Every step is
//! idempotent: a repeated call after a crash adds nothing twice and cleans up again at worst.

use std::future::Future;
use std::sync::Arc;

use orchestra_api::{ApiError, Client, Resource};

use crate::reconciler::Action;

/// What the wrapped reconcile is asked to do.
#[derive(Debug)]
pub enum Event<K> {
    /// The object lives (and carries the finalizer): reconcile it.
    Apply(Arc<K>),
    /// The object is being deleted: release what it holds; the finalizer is removed after.
    Cleanup(Arc<K>),
}

/// Why [`finalizer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError<E: std::error::Error + 'static> {
    /// Adding the finalizer failed (a conflict means the cache was stale: retry).
    #[error("could not add finalizer {finalizer:?} to {kind} {name:?}: {source}")]
    Add {
        /// The finalizer.
        finalizer: String,
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
    /// Removing the finalizer after cleanup failed (cleanup will run again: it must be
    /// idempotent).
    #[error("could not remove finalizer {finalizer:?} from {kind} {name:?}: {source}")]
    Remove {
        /// The finalizer.
        finalizer: String,
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
    /// The wrapped apply or cleanup failed.
    #[error(transparent)]
    Reconcile(E),
}

/// Runs `reconcile` under the finalizer `name` (see the [module docs](self)). Returns the
/// wrapped action; [`Action::AwaitChange`] for an object being deleted that no longer carries
/// the finalizer.
pub async fn finalizer<K, C, E, F, Fut>(
    client: &C,
    name: &str,
    object: Arc<K>,
    reconcile: F,
) -> Result<Action, FinalizerError<E>>
where
    K: Resource,
    C: Client,
    E: std::error::Error + 'static,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
{
    let meta = object.meta();
    let has_finalizer = meta.finalizers.iter().any(|f| f == name);
    match (meta.deletion_timestamp.is_some(), has_finalizer) {
        (false, true) => reconcile(Event::Apply(object))
            .await
            .map_err(FinalizerError::Reconcile),
        (false, false) => {
            let mut updated = (*object).clone();
            updated.meta_mut().finalizers.push(name.to_owned());
            let updated = client
                .update(&updated)
                .await
                .map_err(|source| FinalizerError::Add {
                    finalizer: name.to_owned(),
                    kind: K::KIND,
                    name: object.meta().name.clone(),
                    source,
                })?;
            reconcile(Event::Apply(Arc::new(updated)))
                .await
                .map_err(FinalizerError::Reconcile)
        }
        (true, true) => {
            let action = reconcile(Event::Cleanup(Arc::clone(&object)))
                .await
                .map_err(FinalizerError::Reconcile)?;
            let mut updated = (*object).clone();
            updated.meta_mut().finalizers.retain(|f| f != name);
            match client.update(&updated).await {
                Ok(_) => Ok(action),
                // Gone already: what the removal was for.
                Err(err) if err.is_not_found() => Ok(action),
                Err(source) => Err(FinalizerError::Remove {
                    finalizer: name.to_owned(),
                    kind: K::KIND,
                    name: object.meta().name.clone(),
                    source,
                }),
            }
        }
        (true, false) => Ok(Action::AwaitChange),
    }
}
