//! The objects a workload controller owns, and the ones it may claim, as Kubernetes'
//! `ControllerRefManager` decides: owned objects are found through an index of its informer on
//! their controlling owner's uid (so that a sync reads only its own pods, replica sets or
//! revisions rather than scanning its namespace), candidates for adoption through an index of
//! the objects without a controller by namespace.
//!
//! The rules ([`claim`]): an object controlled by someone else is never touched; one the owner
//! controls stays while it matches and is released (its reference removed) when it stops
//! matching, unless the owner is being deleted; a matching orphan is adopted (the owner's
//! controller reference added) unless either is being deleted. Adoption and release are
//! updates conditional on the object's uid and resourceVersion ([`adopt`], [`release`]), so a
//! write decided on a stale cache fails rather than clobbering a newer object; before its
//! first adoption a sync reads the owner afresh ([`can_adopt`]), so that an owner deleted since
//! the cache saw it adopts nothing.

use std::sync::Arc;

use orchestra_api::reflector::{ObjectKey, Store, index};
use orchestra_api::resources::ControllerRevision;
use orchestra_api::{
    ApiError, Client, LabelSelector, ObjectMeta, OwnerReference, Resource, Selector,
};

use crate::controllers::history::controller_ref;
use crate::controllers::pod_writes::{WriteError, Written};
use crate::informer::{Informer, SharedInformers};

/// The index name: the uid of an object's controlling owner.
const CONTROLLER_INDEX: &str = "controller-uid";
/// The index name: the namespace of objects without a controller (candidates for adoption).
const ORPHAN_INDEX: &str = "orphans-by-namespace";

/// The shared informer of `R`, indexed by controlling owner and, for the orphans, by
/// namespace (the indexes are added once; every controller asking for them shares them).
pub(crate) fn indexed_informer<R: Resource, C: Client>(
    informers: &SharedInformers<C>,
) -> Informer<R> {
    let informer = informers.informer::<R>();
    // Err only when another controller added the same index already, which is what we want.
    let _ = informer
        .store()
        .add_index(CONTROLLER_INDEX, index::by_controller_uid::<R>);
    let _ = informer.store().add_index(ORPHAN_INDEX, |object: &R| {
        if object.meta().controller_ref().is_some() {
            Vec::new()
        } else {
            vec![object.meta().namespace.clone()]
        }
    });
    informer
}

/// The objects in `informer` whose controlling owner has `uid`.
pub(crate) fn owned_by<R: Resource>(informer: &Informer<R>, uid: &str) -> Vec<Arc<R>> {
    informer
        .store()
        .by_index(CONTROLLER_INDEX, uid)
        .unwrap_or_default()
}

/// The objects in `informer` that `owner` controls, then the orphans of its namespace: every
/// object a sync of `owner` may claim.
pub(crate) fn owned_and_orphans<R: Resource, K: Resource>(
    informer: &Informer<R>,
    owner: &K,
) -> Vec<Arc<R>> {
    let mut objects = owned_by(informer, &owner.meta().uid);
    objects.extend(
        informer
            .store()
            .by_index(ORPHAN_INDEX, &owner.meta().namespace)
            .unwrap_or_default(),
    );
    objects
}

/// The owners in `owners` that may adopt `object` when it is an orphan: those of its
/// namespace whose selector (`selector_of`) matches its labels and that `also` accepts. For a
/// controller's `watches` mapper, so that an orphan's events reach the owners that would
/// adopt it; a controlled object maps to nothing (its owner hears of it through `owns`).
pub(crate) fn orphan_owners<K: Resource, R: Resource>(
    owners: &Store<K>,
    object: &R,
    selector_of: impl Fn(&K) -> &LabelSelector,
    also: impl Fn(&K, &R) -> bool,
) -> Vec<ObjectKey> {
    let meta = object.meta();
    if meta.controller_ref().is_some() {
        return Vec::new();
    }
    owners
        .list()
        .iter()
        .filter(|owner| owner.meta().namespace == meta.namespace)
        .filter(|owner| {
            Selector::try_from(selector_of(owner)).is_ok_and(|s| s.matches(&meta.labels))
        })
        .filter(|owner| also(owner, object))
        .map(|owner| ObjectKey::of(owner.as_ref()))
        .collect()
}

/// What a sync of an owner does with one object ([`claim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The owner controls it and it matches: it is the owner's.
    Owned,
    /// A matching orphan: add the owner's controller reference.
    Adopt,
    /// The owner controls it but it no longer matches: remove the owner's reference.
    Release,
    /// Not the owner's business: controlled by someone else, or an orphan it may not adopt.
    Ignore,
}

/// Decides what an owner with `owner_uid` (being deleted when `owner_deleting`) does with an
/// object of its namespace with metadata `object` that matches its selector (and whatever else
/// the owner requires, such as a stateful set's pod names) when `matches`.
pub(crate) fn claim(
    owner_uid: &str,
    owner_deleting: bool,
    object: &ObjectMeta,
    matches: bool,
) -> Claim {
    match object.controller_ref() {
        Some(owner) if owner.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        // A deleted owner's dependents are the garbage collector's to delete or orphan.
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if matches && !owner_deleting && object.deletion_timestamp.is_none() => Claim::Adopt,
        None => Claim::Ignore,
    }
}

/// Whether `owner` may adopt: read afresh from the API (the cache may be behind), it still
/// exists with the same uid and is not being deleted (Kubernetes'
/// `RecheckDeletionTimestamp`).
pub(crate) async fn can_adopt<C: Client, K: Resource>(
    client: &C,
    owner: &K,
) -> Result<bool, ApiError> {
    let meta = owner.meta();
    match client.get::<K>(&meta.namespace, &meta.name).await {
        Ok(fresh) => Ok(fresh.meta().uid == meta.uid && fresh.meta().deletion_timestamp.is_none()),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Adds `reference` (the owner's controller reference) to `object`, conditionally on its uid
/// and resourceVersion (a changed or recreated object is a `Conflict`). `None` when the
/// object is gone.
pub(crate) async fn adopt<C: Client, R: Resource>(
    client: &C,
    object: &R,
    reference: OwnerReference,
) -> Result<Option<R>, ApiError> {
    let mut adopted = object.clone();
    let references = &mut adopted.meta_mut().owner_references;
    // A non-controlling reference to the same owner becomes the controlling one.
    references.retain(|owner| owner.uid != reference.uid);
    references.push(reference);
    match client.update(&adopted).await {
        Ok(stored) => Ok(Some(stored)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// Removes the references to `owner_uid` from `object`, conditionally on its uid and
/// resourceVersion. `None` when the object is gone.
pub(crate) async fn release<C: Client, R: Resource>(
    client: &C,
    object: &R,
    owner_uid: &str,
) -> Result<Option<R>, ApiError> {
    let mut released = object.clone();
    released
        .meta_mut()
        .owner_references
        .retain(|owner| owner.uid != owner_uid);
    match client.update(&released).await {
        Ok(stored) => Ok(Some(stored)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// Claims `candidates` (the objects `owner` controls and the orphans of its namespace) for
/// `owner` by [`claim`], `matches` saying which it wants: adopts and releases them, noting the
/// writes in `written`, and returns the objects it owns afterwards (the adopted ones as
/// stored). `what` names the writes for errors, e.g. `["adopt a pod", "release a pod"]`.
pub(crate) async fn claim_all<C: Client, K: Resource, R: Resource>(
    client: &C,
    owner: &K,
    candidates: Vec<Arc<R>>,
    matches: impl Fn(&R) -> bool,
    what: [&'static str; 2],
    written: &mut Written,
) -> Result<Vec<Arc<R>>, WriteError> {
    let meta = owner.meta();
    let deleting = meta.deletion_timestamp.is_some();
    // Read afresh once, before the first adoption, and only if there is one.
    let mut may_adopt = None;
    let mut owned = Vec::with_capacity(candidates.len());
    for object in candidates {
        match claim(&meta.uid, deleting, object.meta(), matches(object.as_ref())) {
            Claim::Owned => owned.push(object),
            Claim::Ignore => {}
            Claim::Adopt => {
                let allowed = match may_adopt {
                    Some(allowed) => allowed,
                    None => {
                        let allowed = can_adopt(client, owner)
                            .await
                            .map_err(|err| (what[0], err))?;
                        *may_adopt.insert(allowed)
                    }
                };
                if !allowed {
                    continue;
                }
                let adopted = adopt(client, object.as_ref(), controller_ref(owner))
                    .await
                    .map_err(|err| (what[0], err))?;
                if let Some(adopted) = adopted {
                    written.note(&adopted.meta().resource_version);
                    owned.push(Arc::new(adopted));
                }
            }
            Claim::Release => {
                let released = release(client, object.as_ref(), &meta.uid)
                    .await
                    .map_err(|err| (what[1], err))?;
                if let Some(released) = released {
                    written.note(&released.meta().resource_version);
                }
            }
        }
    }
    Ok(owned)
}

/// Claims for `owner` (a DaemonSet or a StatefulSet, which keep their history as
/// ControllerRevisions) the revisions `selector` matches, by [`claim_all`].
///
/// Revision writes are not waited for through the pod cache; a sync that reads a revision
/// cache one write behind fails its conditional write and is retried.
pub(crate) async fn claim_revisions<C: Client, K: Resource>(
    client: &C,
    owner: &K,
    revisions: &Informer<ControllerRevision>,
    selector: &Selector,
) -> Result<Vec<Arc<ControllerRevision>>, WriteError> {
    claim_all(
        client,
        owner,
        owned_and_orphans(revisions, owner),
        |revision: &ControllerRevision| selector.matches(&revision.metadata.labels),
        [
            "adopt a controller revision",
            "release a controller revision",
        ],
        &mut Written::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(controller: Option<&str>, deleting: bool) -> ObjectMeta {
        let mut meta = ObjectMeta::namespaced("ns", "web-0");
        if let Some(uid) = controller {
            meta.owner_references = vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }];
        }
        if deleting {
            meta.deletion_timestamp = Some("2024-01-01T00:00:00Z".parse().unwrap());
        }
        meta
    }

    #[test]
    fn matching_orphans_are_adopted_unless_either_is_being_deleted() {
        let orphan = meta(None, false);
        assert_eq!(claim("me", false, &orphan, true), Claim::Adopt);
        assert_eq!(claim("me", false, &orphan, false), Claim::Ignore);
        assert_eq!(claim("me", true, &orphan, true), Claim::Ignore);
        assert_eq!(claim("me", false, &meta(None, true), true), Claim::Ignore);
    }

    #[test]
    fn owned_objects_are_kept_while_they_match_and_released_after() {
        let mine = meta(Some("me"), false);
        assert_eq!(claim("me", false, &mine, true), Claim::Owned);
        assert_eq!(claim("me", false, &mine, false), Claim::Release);
        assert_eq!(claim("me", true, &mine, true), Claim::Owned);
        assert_eq!(
            claim("me", true, &mine, false),
            Claim::Ignore,
            "a deleted owner's dependents are the garbage collector's"
        );
    }

    #[test]
    fn objects_controlled_by_another_owner_are_never_touched() {
        let theirs = meta(Some("other"), false);
        assert_eq!(claim("me", false, &theirs, true), Claim::Ignore);
        assert_eq!(claim("me", false, &theirs, false), Claim::Ignore);
        // A non-controlling reference to the owner does not make the object its own.
        let mut shared = meta(None, false);
        shared.owner_references = vec![OwnerReference {
            uid: "me".into(),
            controller: None,
            ..OwnerReference::default()
        }];
        assert_eq!(claim("me", false, &shared, true), Claim::Adopt);
    }
}
