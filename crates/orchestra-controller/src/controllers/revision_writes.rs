//! The ControllerRevision writes of the controllers that keep a history (DaemonSet,
//! StatefulSet): carrying out a [`history::plan_history`] decision.

use std::sync::Arc;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{ControllerRevision, Pod};
use orchestra_api::{ApiError, Client};

use crate::controllers::history::{self, Revisioned};
use crate::controllers::pod_writes::WriteError;

/// Brings `owner`'s ControllerRevisions (`revisions`, those it owns) in line with its template
/// (see [`history`]), given the pods it controls; on a failed write, what was being done and
/// why.
pub(crate) async fn record_history<C: Client, K: Revisioned>(
    client: &C,
    owner: &K,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> Result<(), WriteError> {
    let plan = history::plan_history(owner, revisions, pods);
    if let Some(revision) = &plan.create {
        match client.create(revision).await {
            Ok(_) => {}
            // The cache has not shown our own earlier create yet: the next sync sees it.
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(err) => return Err(("create a controller revision", err)),
        }
    }
    if let Some((name, number)) = &plan.renumber
        && let Some(stored) = revisions.iter().find(|r| &r.metadata.name == name)
    {
        let mut raised = ControllerRevision::clone(stored);
        raised.revision = *number;
        client
            .update(&raised)
            .await
            .map_err(|err| ("renumber a controller revision", err))?;
    }
    for name in &plan.delete {
        match client
            .delete::<ControllerRevision>(&owner.meta().namespace, name, &DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(("delete an old controller revision", err)),
        }
    }
    Ok(())
}
