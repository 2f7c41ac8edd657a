//! The garbage collector: deletes objects whose owners are all gone (background cascading
//! deletion, as Kubernetes' default `propagationPolicy: Background`).
//!
//! One controller per dependent kind ([`DEPENDENT_KINDS`]): an object is looked at when it
//! changes and when one of its owners (any of [`OWNER_KINDS`]) disappears. Each owner
//! reference is checked by uid: against the shared cache first, then, when the cache does not
//! show it, with a live read (the cache may not have caught up with a fresh owner yet; deleting
//! on a stale cache would lose data). The object is deleted, conditional on the
//! resourceVersion it was judged at, only when every owner is positively gone ([`collectable`]).
//!
//! The `Orphan` and `Foreground` propagation policies, which the registry records as the
//! `orphan` and `foregroundDeletion` finalizers on the owner, are carried out by
//! [`OwnerFinalizers`], one controller per owner kind: `orphan` removes the owner's references
//! from its dependents, then the finalizer; `foregroundDeletion` deletes the dependents (in the
//! foreground too, so a chain is deleted from the bottom up), waits until the cache shows none
//! left, then removes the finalizer.
//!
//! Not done: `blockOwnerDeletion` (foreground waits for every dependent, not only the
//! blocking ones), removing dangling references from objects that still have a live owner, and
//! owners of kinds outside [`OWNER_KINDS`] (custom kinds: such a reference counts as alive, so
//! nothing is deleted on a guess).

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::reflector::{ObjectKey, Store, index};
use orchestra_api::registry::{DeleteOptions, PropagationPolicy};
use orchestra_api::resources::{
    ControllerRevision, DaemonSet, Deployment, Endpoints, Job, Lease, Namespace, Node, Pod,
    ReplicaSet, Service, StatefulSet,
};
use orchestra_api::{ApiError, Client, OwnerReference, Resource};

use crate::controller::Controller;
use crate::informer::SharedInformers;
use crate::reconciler::{Action, Context, Reconciler};
use crate::set::ControllerSet;

/// The index of dependents by the uid of each owner.
const OWNER_INDEX: &str = "owner-uid";

/// The kinds whose objects are collected when their owners are gone.
pub const DEPENDENT_KINDS: &[&str] = &[
    "Pod",
    "ReplicaSet",
    "Deployment",
    "Service",
    "Endpoints",
    "Lease",
    "ControllerRevision",
    "StatefulSet",
];

/// The kinds of owners the collector checks.
pub const OWNER_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "Pod",
    "Service",
    "Endpoints",
    "Lease",
    "Node",
    "Namespace",
    "Job",
    "DaemonSet",
    "StatefulSet",
    "ControllerRevision",
];

/// Runs `$body` with `$kind` bound to each owner kind.
macro_rules! for_owner_kinds {
    ($kind:ident => $body:expr) => {{
        {
            type $kind = Deployment;
            $body
        }
        {
            type $kind = ReplicaSet;
            $body
        }
        {
            type $kind = Pod;
            $body
        }
        {
            type $kind = Service;
            $body
        }
        {
            type $kind = Endpoints;
            $body
        }
        {
            type $kind = Lease;
            $body
        }
        {
            type $kind = Node;
            $body
        }
        {
            type $kind = Namespace;
            $body
        }
        {
            type $kind = Job;
            $body
        }
        {
            type $kind = DaemonSet;
            $body
        }
        {
            type $kind = StatefulSet;
            $body
        }
        {
            // It owns nothing, but a foreground deletion of its owner marks it
            // `foregroundDeletion` too, and only an owner's finalizer controller removes that.
            type $kind = ControllerRevision;
            $body
        }
    }};
}

/// Runs `$body` with `$kind` bound to each dependent kind.
macro_rules! for_dependent_kinds {
    ($kind:ident => $body:expr) => {{
        {
            type $kind = Pod;
            $body
        }
        {
            type $kind = ReplicaSet;
            $body
        }
        {
            type $kind = Deployment;
            $body
        }
        {
            type $kind = Service;
            $body
        }
        {
            type $kind = Endpoints;
            $body
        }
        {
            type $kind = Lease;
            $body
        }
        {
            type $kind = ControllerRevision;
            $body
        }
        {
            type $kind = StatefulSet;
            $body
        }
    }};
}

/// Whether an object may be collected, given for each owner reference whether the owner
/// exists (`Some(true)`), is gone (`Some(false)`) or cannot be checked (`None`, an unknown
/// kind): only when it has owners and every one is gone.
pub fn collectable(owners: &[Option<bool>]) -> bool {
    !owners.is_empty() && owners.iter().all(|o| *o == Some(false))
}

/// The garbage collector of one dependent kind `K`.
pub struct GarbageCollector<K, C> {
    informers: SharedInformers<C>,
    kind: PhantomData<fn() -> K>,
}

impl<K, C> std::fmt::Debug for GarbageCollector<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarbageCollector").finish_non_exhaustive()
    }
}

/// Why a collection failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum GarbageCollectorError {
    /// Reading an owner or deleting the dependent failed.
    #[error("garbage collection of {kind} {name:?} failed: {source}")]
    Api {
        /// The dependent's kind.
        kind: &'static str,
        /// `namespace/name`.
        name: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
}

impl<K: Resource, C: Client> GarbageCollector<K, C> {
    /// The collector of kind `K`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        GarbageCollector {
            informers: informers.clone(),
            kind: PhantomData,
        }
    }

    /// Its controller: objects of kind `K`, and owners of every [`OWNER_KINDS`] kind (an owner
    /// that is no longer in its cache maps to its dependents).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let dependents = informers.store::<K>();
        // Shared with other controllers: an existing index is the same function.
        let _ = dependents.add_index(OWNER_INDEX, index::by_owner_uid::<K>);
        let mut controller = Controller::new(Self::new(informers), informers)
            .name(format!("garbagecollector-{}", K::PLURAL));
        for_owner_kinds!(O => {
            let owners = informers.store::<O>();
            controller = controller.watches::<O, _>(dependents_of_gone::<O, K>(owners, dependents.clone()));
        });
        controller
    }

    /// Whether `owner`, referenced by an object in `namespace`, exists (`None`: a kind the
    /// collector does not know).
    async fn owner_exists(
        &self,
        namespace: &str,
        owner: &OwnerReference,
    ) -> Result<Option<bool>, ApiError> {
        for_owner_kinds!(O => {
            if owner.kind == O::KIND && owner.api_version == O::API_VERSION {
                return exists::<O, C>(&self.informers, namespace, owner).await.map(Some);
            }
        });
        Ok(None)
    }
}

/// Maps a change of an owner of kind `O` to its dependents of kind `K`, once it is no longer
/// in its cache (deleted): changes of living owners concern no collection.
fn dependents_of_gone<O: Resource, K: Resource>(
    owners: Store<O>,
    dependents: Store<K>,
) -> impl Fn(&O) -> Vec<ObjectKey> + Send + Sync + 'static {
    move |owner| {
        let meta = owner.meta();
        if owners
            .get(&meta.namespace, &meta.name)
            .is_some_and(|cached| cached.meta().uid == meta.uid)
        {
            return Vec::new();
        }
        dependents
            .by_index(OWNER_INDEX, &meta.uid)
            .unwrap_or_default()
            .iter()
            .map(|d| ObjectKey::of(d.as_ref()))
            .collect()
    }
}

/// Whether the owner exists with the referenced uid: the cache first, then a live read.
async fn exists<O: Resource, C: Client>(
    informers: &SharedInformers<C>,
    namespace: &str,
    owner: &OwnerReference,
) -> Result<bool, ApiError> {
    let namespace = if O::NAMESPACED { namespace } else { "" };
    if informers
        .store::<O>()
        .get(namespace, &owner.name)
        .is_some_and(|cached| cached.meta().uid == owner.uid)
    {
        return Ok(true);
    }
    match informers.client().get::<O>(namespace, &owner.name).await {
        Ok(live) => Ok(live.meta().uid == owner.uid),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

#[async_trait]
impl<K: Resource, C: Client> Reconciler for GarbageCollector<K, C> {
    type Object = K;
    type Error = GarbageCollectorError;

    async fn reconcile(&self, object: Arc<K>, ctx: &Context) -> Result<Action, Self::Error> {
        let meta = object.meta();
        if meta.owner_references.is_empty() || meta.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let key = ctx.key();
        let api = |source| GarbageCollectorError::Api {
            kind: K::KIND,
            name: format!("{}/{}", key.namespace, key.name),
            source,
        };
        let mut owners = Vec::with_capacity(meta.owner_references.len());
        for owner in &meta.owner_references {
            owners.push(
                self.owner_exists(&meta.namespace, owner)
                    .await
                    .map_err(api)?,
            );
        }
        if !collectable(&owners) {
            return Ok(Action::await_change());
        }
        tracing::info!(kind = K::KIND, namespace = %key.namespace, name = %key.name, "owners gone; deleting");
        let options = DeleteOptions {
            propagation_policy: Some(PropagationPolicy::Background),
            // Judged at this version: a change since (a new owner) makes it think again.
            resource_version: Some(meta.resource_version.clone()),
            ..DeleteOptions::default()
        };
        match self
            .informers
            .client()
            .delete::<K>(&meta.namespace, &meta.name, &options)
            .await
        {
            Ok(_) => Ok(Action::await_change()),
            Err(err) if err.is_not_found() => Ok(Action::await_change()),
            Err(err) => Err(api(err)),
        }
    }
}

/// Adds a garbage collector for every [`DEPENDENT_KINDS`] kind, and the [`OwnerFinalizers`]
/// of every [`OWNER_KINDS`] kind, to `set`.
pub fn add_garbage_collectors<C: Client>(set: &mut ControllerSet, informers: &SharedInformers<C>) {
    for_dependent_kinds!(K => set.add(GarbageCollector::<K, C>::controller(informers)));
    for_owner_kinds!(O => set.add(OwnerFinalizers::<O, C>::controller(informers)));
}

/// The finalizer of the `Orphan` propagation policy.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer of the `Foreground` propagation policy.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Carries out the `Orphan` and `Foreground` propagation policies for owners of kind `O` (see
/// the [module docs](self)).
pub struct OwnerFinalizers<O, C> {
    informers: SharedInformers<C>,
    kind: PhantomData<fn() -> O>,
}

impl<O, C> std::fmt::Debug for OwnerFinalizers<O, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerFinalizers").finish_non_exhaustive()
    }
}

/// The keys of the owners of kind `O` that `dependent` references.
fn owners_of<O: Resource, K: Resource>(dependent: &K) -> Vec<ObjectKey> {
    let meta = dependent.meta();
    meta.owner_references
        .iter()
        .filter(|owner| owner.kind == O::KIND && owner.api_version == O::API_VERSION)
        .map(|owner| ObjectKey {
            namespace: if O::NAMESPACED {
                meta.namespace.clone()
            } else {
                String::new()
            },
            name: owner.name.clone(),
        })
        .collect()
}

impl<O: Resource, C: Client> OwnerFinalizers<O, C> {
    /// Its controller: owners of kind `O`, and every dependent kind (mapped to its owners of
    /// kind `O`, so that a foreground deletion notices its last dependent going).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let mut controller = Controller::new(
            OwnerFinalizers {
                informers: informers.clone(),
                kind: PhantomData,
            },
            informers,
        )
        .name(format!("ownerfinalizers-{}", O::PLURAL));
        for_dependent_kinds!(K => {
            let _ = informers.store::<K>().add_index(OWNER_INDEX, index::by_owner_uid::<K>);
            controller = controller.watches::<K, _>(owners_of::<O, K>);
        });
        controller
    }

    /// Removes the references to `uid` from every dependent; returns how many it changed.
    async fn orphan_dependents(&self, uid: &str) -> Result<usize, ApiError> {
        let client = self.informers.client();
        let mut changed = 0;
        for_dependent_kinds!(K => {
            for dependent in self.informers.store::<K>().by_index(OWNER_INDEX, uid).unwrap_or_default() {
                let mut released = (*dependent).clone();
                released.meta_mut().owner_references.retain(|o| o.uid != uid);
                match client.update(&released).await {
                    Ok(_) => changed += 1,
                    Err(err) if err.is_not_found() => {}
                    Err(err) => return Err(err),
                }
            }
        });
        Ok(changed)
    }

    /// Deletes (in the foreground) every dependent of `uid` not being deleted yet; returns how
    /// many dependents are left in the cache.
    async fn delete_dependents(&self, uid: &str) -> Result<usize, ApiError> {
        let client = self.informers.client();
        let options = DeleteOptions {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteOptions::default()
        };
        let mut left = 0;
        for_dependent_kinds!(K => {
            for dependent in self.informers.store::<K>().by_index(OWNER_INDEX, uid).unwrap_or_default() {
                left += 1;
                let meta = dependent.meta();
                if meta.deletion_timestamp.is_some() {
                    continue;
                }
                match client.delete::<K>(&meta.namespace, &meta.name, &options).await {
                    Ok(_) => {}
                    Err(err) if err.is_not_found() => {}
                    Err(err) => return Err(err),
                }
            }
        });
        Ok(left)
    }
}

#[async_trait]
impl<O: Resource, C: Client> Reconciler for OwnerFinalizers<O, C> {
    type Object = O;
    type Error = GarbageCollectorError;

    async fn reconcile(&self, owner: Arc<O>, ctx: &Context) -> Result<Action, Self::Error> {
        let meta = owner.meta();
        let has = |finalizer: &str| meta.finalizers.iter().any(|f| f == finalizer);
        if meta.deletion_timestamp.is_none()
            || !(has(ORPHAN_FINALIZER) || has(FOREGROUND_FINALIZER))
        {
            return Ok(Action::await_change());
        }
        let key = ctx.key();
        let api = |source| GarbageCollectorError::Api {
            kind: O::KIND,
            name: format!("{}/{}", key.namespace, key.name),
            source,
        };
        let mut done = Vec::new();
        if has(ORPHAN_FINALIZER) {
            self.orphan_dependents(&meta.uid).await.map_err(api)?;
            done.push(ORPHAN_FINALIZER);
        }
        if has(FOREGROUND_FINALIZER) {
            let left = self.delete_dependents(&meta.uid).await.map_err(api)?;
            if left > 0 {
                // Their deletions map back to this owner; look again then.
                return Ok(Action::await_change());
            }
            done.push(FOREGROUND_FINALIZER);
        }
        let mut finished = (*owner).clone();
        finished
            .meta_mut()
            .finalizers
            .retain(|f| !done.contains(&f.as_str()));
        match self.informers.client().update(&finished).await {
            Ok(_) => Ok(Action::await_change()),
            Err(err) if err.is_not_found() => Ok(Action::await_change()),
            Err(err) => Err(api(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_whose_owners_are_all_gone_are_collected() {
        assert!(!collectable(&[]), "no owners: not a dependent");
        assert!(collectable(&[Some(false)]));
        assert!(collectable(&[Some(false), Some(false)]));
        assert!(!collectable(&[Some(false), Some(true)]), "one owner lives");
        assert!(
            !collectable(&[Some(false), None]),
            "one owner cannot be checked"
        );
        assert!(!collectable(&[Some(true)]));
    }

    #[test]
    fn the_kind_lists_match_what_the_collector_handles() {
        let mut kinds = Vec::new();
        for_owner_kinds!(O => kinds.push(O::KIND));
        assert_eq!(kinds, OWNER_KINDS);
    }
}
