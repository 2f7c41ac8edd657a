//! The objects a workload controller owns, found through an index of its informer on their
//! controlling owner's uid, so that a sync reads only its own pods (or replica sets, or
//! revisions) rather than scanning its namespace.

use std::sync::Arc;

use orchestra_api::reflector::index;
use orchestra_api::{Client, Resource};

use crate::informer::{Informer, SharedInformers};

/// The index name: the uid of an object's controlling owner.
const CONTROLLER_INDEX: &str = "controller-uid";

/// The shared informer of `R`, indexed by controlling owner (the index is added once; every
/// controller asking for it shares it).
pub(crate) fn indexed_informer<R: Resource, C: Client>(
    informers: &SharedInformers<C>,
) -> Informer<R> {
    let informer = informers.informer::<R>();
    // Err only when another controller added the same index already, which is what we want.
    let _ = informer
        .store()
        .add_index(CONTROLLER_INDEX, index::by_controller_uid::<R>);
    informer
}

/// The objects in `informer` whose controlling owner has `uid`.
pub(crate) fn owned_by<R: Resource>(informer: &Informer<R>, uid: &str) -> Vec<Arc<R>> {
    informer
        .store()
        .by_index(CONTROLLER_INDEX, uid)
        .unwrap_or_default()
}
