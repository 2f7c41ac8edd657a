//! The Namespace controller: deleting a namespace deletes everything in it, then the namespace.
//!
//! The API gives every namespace the finalizer [`NAMESPACE_FINALIZER`] in `spec.finalizers`
//! (as Kubernetes does), so that a delete only marks it: deletionTimestamp set, phase
//! `Terminating`. The controller then deletes the namespaced objects of every
//! [`NAMESPACED_KINDS`] kind in it (background propagation), waits until none is left (objects
//! with finalizers of their own leave when those are done), and clears that finalizer, which
//! lets the registry delete the namespace. Namespaces stored by an earlier version carried the
//! finalizer in `metadata.finalizers`: it is removed from there too. A namespace that vanished
//! without the finalizer is emptied all the same when the controller sees it disappear.
//!
//! Not done: kinds registered at run time (custom kinds) are not emptied, and new objects are
//! not refused in a terminating namespace (that is admission's job in the API server).

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::registry::{DeleteOptions, ListOptions, PropagationPolicy};
use orchestra_api::resources::{
    ConfigMap, ControllerRevision, DaemonSet, Deployment, Endpoints, Event, Job, Lease, Namespace,
    NamespacePhase, NamespaceStatus, Pod, PodGroup, ReplicaSet, Role, RoleBinding, Secret, Service,
    ServiceAccount, StatefulSet, TrafficSplit,
};
use orchestra_api::{ApiError, Client, Resource};

use crate::controller::Controller;
use crate::finalizer::FinalizerError;
use crate::informer::SharedInformers;
use crate::reconciler::{Action, Context, Reconciler};

/// The finalizer that holds a namespace until it is empty (Kubernetes' name for it).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// The namespaced kinds a terminating namespace is emptied of.
pub const NAMESPACED_KINDS: &[&str] = &[
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "ReplicaSet",
    "ControllerRevision",
    "Pod",
    "PodGroup",
    "TrafficSplit",
    "Service",
    "Endpoints",
    "ConfigMap",
    "Secret",
    "Lease",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Event",
];

/// Why emptying a namespace has not finished (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// Listing or deleting failed.
    #[error("could not empty namespace {namespace:?}: {source}")]
    Api {
        /// The namespace.
        namespace: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
    /// Objects are still there (waiting for their own finalizers); looked at again later.
    #[error("namespace {namespace:?} still has {remaining} objects being deleted")]
    NotEmpty {
        /// The namespace.
        namespace: String,
        /// How many objects are left.
        remaining: usize,
    },
    /// Adding or removing the namespace's finalizer failed.
    #[error(transparent)]
    Finalizer(#[from] FinalizerError<Box<NamespaceError>>),
}

/// The Namespace reconciler. Build a ready-to-run controller with
/// [`NamespaceController::controller`].
pub struct NamespaceController<C> {
    client: C,
}

impl<C> std::fmt::Debug for NamespaceController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> NamespaceController<C> {
    /// The reconciler, writing through `informers`' client.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        NamespaceController {
            client: informers.client().clone(),
        }
    }

    /// The controller of Namespaces.
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        Controller::new(Self::new(informers), informers).name("namespace")
    }

    /// Marks the namespace `Terminating` (once).
    async fn mark_terminating(&self, namespace: &Namespace) -> Result<(), ApiError> {
        if namespace.status.as_ref().and_then(|s| s.phase) == Some(NamespacePhase::Terminating) {
            return Ok(());
        }
        let mut marked = namespace.clone();
        marked.status = Some(NamespaceStatus {
            phase: Some(NamespacePhase::Terminating),
        });
        match self.client.update_status(&marked).await {
            Ok(_) => Ok(()),
            // The namespace changed meanwhile (or is gone): the next reconcile sees it.
            Err(err) if err.is_conflict() || err.is_not_found() => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// Deletes every object of kind `K` in `namespace`; returns how many are still there (marked
/// for deletion and waiting for finalizers).
async fn delete_all<K: Resource, C: Client>(
    client: &C,
    namespace: &str,
) -> Result<usize, ApiError> {
    let objects = client
        .list::<K>(Some(namespace), &ListOptions::default())
        .await?;
    let options = DeleteOptions {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteOptions::default()
    };
    let mut remaining = 0;
    for object in &objects.items {
        match client
            .delete::<K>(namespace, &object.meta().name, &options)
            .await
        {
            Ok(outcome) if !outcome.is_deleted() => remaining += 1,
            Ok(_) => {}
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err),
        }
    }
    Ok(remaining)
}

/// Deletes everything in `namespace`; returns how many objects are still there.
pub async fn empty_namespace<C: Client>(client: &C, namespace: &str) -> Result<usize, ApiError> {
    // Owners before what they own, so that controllers do not recreate what was just deleted.
    // Pods, ConfigMaps and Secrets go before the RBAC rules (and the ServiceAccounts), so that
    // whoever cleans up after them still may; events last, since every deletion may add one.
    Ok(delete_all::<Deployment, C>(client, namespace).await?
        + delete_all::<DaemonSet, C>(client, namespace).await?
        + delete_all::<StatefulSet, C>(client, namespace).await?
        + delete_all::<Job, C>(client, namespace).await?
        + delete_all::<ReplicaSet, C>(client, namespace).await?
        + delete_all::<ControllerRevision, C>(client, namespace).await?
        + delete_all::<Pod, C>(client, namespace).await?
        + delete_all::<PodGroup, C>(client, namespace).await?
        + delete_all::<TrafficSplit, C>(client, namespace).await?
        + delete_all::<Service, C>(client, namespace).await?
        + delete_all::<Endpoints, C>(client, namespace).await?
        + delete_all::<ConfigMap, C>(client, namespace).await?
        + delete_all::<Secret, C>(client, namespace).await?
        + delete_all::<Lease, C>(client, namespace).await?
        + delete_all::<ServiceAccount, C>(client, namespace).await?
        + delete_all::<Role, C>(client, namespace).await?
        + delete_all::<RoleBinding, C>(client, namespace).await?
        + delete_all::<Event, C>(client, namespace).await?)
}

#[async_trait]
impl<C: Client> Reconciler for NamespaceController<C> {
    type Object = Namespace;
    type Error = NamespaceError;

    async fn reconcile(
        &self,
        namespace: Arc<Namespace>,
        _ctx: &Context,
    ) -> Result<Action, Self::Error> {
        if namespace.metadata.deletion_timestamp.is_none() {
            return Ok(Action::await_change());
        }
        let name = namespace.metadata.name.clone();
        let api = |source| NamespaceError::Api {
            namespace: name.clone(),
            source,
        };
        self.mark_terminating(&namespace).await.map_err(api)?;
        let remaining = empty_namespace(&self.client, &name).await.map_err(api)?;
        if remaining > 0 {
            return Err(NamespaceError::NotEmpty {
                namespace: name.clone(),
                remaining,
            });
        }
        tracing::info!(namespace = %name, "namespace empty; removing its finalizer");
        // Re-read: marking it Terminating changed its resourceVersion.
        let mut latest: Namespace = match self.client.get("", &name).await {
            Ok(latest) => latest,
            Err(err) if err.is_not_found() => return Ok(Action::await_change()),
            Err(err) => return Err(api(err)),
        };
        if let Some(spec) = latest.spec.as_mut() {
            spec.finalizers.retain(|f| f != NAMESPACE_FINALIZER);
        }
        latest
            .metadata
            .finalizers
            .retain(|f| f != NAMESPACE_FINALIZER);
        match self.client.update(&latest).await {
            Ok(_) => Ok(Action::await_change()),
            // Changed meanwhile or already gone: the next reconcile looks again.
            Err(err) if err.is_conflict() || err.is_not_found() => {
                Ok(Action::requeue(std::time::Duration::from_millis(100)))
            }
            Err(err) => Err(api(err)),
        }
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        // Gone without our finalizer (deleted before we added it): empty it all the same.
        let remaining = empty_namespace(&self.client, &key.name)
            .await
            .map_err(|source| NamespaceError::Api {
                namespace: key.name.clone(),
                source,
            })?;
        if remaining > 0 {
            return Err(NamespaceError::NotEmpty {
                namespace: key.name.clone(),
                remaining,
            });
        }
        Ok(Action::await_change())
    }
}
