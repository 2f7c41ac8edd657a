//! delete: at once, or — when the object has finalizers — by marking it with a
//! deletionTimestamp and keeping it until an update empties its finalizers.

use orchestra_store::{Compare, CompareOp, Op, StoreExt};

use super::admit::Written;
use super::write::Check;
use super::{
    ApiError, DeleteOptions, PROPAGATION_POLICY_ANNOTATION, Registry, decode_kv, display_name,
    object_key, parse_resource_version,
};
use crate::meta::Time;
use crate::resource::Resource;

/// What a delete did.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteOutcome<R> {
    /// The object is gone; this was its last state, at the resourceVersion of the deletion.
    Deleted(R),
    /// The object has finalizers: it is marked for deletion (deletionTimestamp set) and stays
    /// until they are removed. This is its new state.
    Pending(R),
}

impl<R> DeleteOutcome<R> {
    /// The object, deleted or pending.
    pub fn object(&self) -> &R {
        match self {
            DeleteOutcome::Deleted(object) | DeleteOutcome::Pending(object) => object,
        }
    }

    /// Whether the object is gone.
    pub fn is_deleted(&self) -> bool {
        matches!(self, DeleteOutcome::Deleted(_))
    }
}

impl Registry {
    /// Deletes an object. One with finalizers (counting the finalizer of a `Foreground` or
    /// `Orphan` propagation policy) is marked instead: deletionTimestamp set, the grace period
    /// recorded in deletionGracePeriodSeconds, the policy in the
    /// [`PROPAGATION_POLICY_ANNOTATION`], generation bumped. Deleting an object marked already
    /// returns it unchanged.
    pub async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        let grace = options.grace_period_seconds.unwrap_or(0);
        if grace < 0 {
            return Err(ApiError::BadRequest(format!(
                "gracePeriodSeconds must not be negative (it is {grace})"
            )));
        }
        let precondition = options
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty())
            .map(parse_resource_version)
            .transpose()?;
        let key = object_key::<R>(namespace, name);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let not_found = || ApiError::NotFound {
                kind: R::KIND,
                name: display_name::<R>(namespace, name),
            };
            let kv = self.store.get(key.clone()).await?.ok_or_else(not_found)?;
            let current: R = decode_kv(&kv)?;
            self.admit_delete(&current).await?;
            let policy_finalizer = options.propagation_policy.and_then(|p| p.finalizer());
            let meta = current.meta();
            if meta.finalizers.is_empty() && policy_finalizer.is_none() && !current.holds_deletion()
            {
                if precondition.is_some_and(|rv| rv != kv.mod_revision) {
                    return Err(stale::<R>(namespace, name));
                }
                let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision);
                let held = self.claims_of(&current);
                let op = Op::delete(key.clone());
                match self
                    .write_guarded(key.clone(), guard, op, &[], &held)
                    .await?
                {
                    Written::At(revision) => {
                        let mut last = current;
                        last.meta_mut().resource_version = revision.to_string();
                        return Ok(DeleteOutcome::Deleted(last));
                    }
                    _ if precondition.is_none() && attempts < 5 => continue,
                    _ => return Err(stale::<R>(namespace, name)),
                }
            }
            if meta.deletion_timestamp.is_some() {
                return Ok(DeleteOutcome::Pending(current));
            }
            let policy = options.propagation_policy;
            let marked = self
                .guarded_update(
                    namespace,
                    name,
                    Some(precondition.unwrap_or(kv.mod_revision)),
                    Check::Update,
                    None,
                    move |mut object: R| {
                        object.prepare_for_delete();
                        let meta = object.meta_mut();
                        meta.deletion_timestamp = Some(Time::now());
                        meta.deletion_grace_period_seconds = Some(grace);
                        meta.generation = Some(meta.generation.unwrap_or(1) + 1);
                        if let Some(policy) = policy {
                            meta.annotations.insert(
                                PROPAGATION_POLICY_ANNOTATION.to_owned(),
                                policy.as_str().to_owned(),
                            );
                            if let Some(finalizer) = policy.finalizer()
                                && !meta.finalizers.iter().any(|f| f == finalizer)
                            {
                                meta.finalizers.push(finalizer.to_owned());
                            }
                        }
                        Ok(object)
                    },
                )
                .await;
            match marked {
                Err(err) if err.is_conflict() && precondition.is_none() && attempts < 5 => continue,
                Err(err) => return Err(err),
                Ok(object) => return Ok(DeleteOutcome::Pending(object)),
            }
        }
    }
}

fn stale<R: Resource>(namespace: &str, name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "Operation cannot be fulfilled on {} {:?}: the object has been modified since the given resourceVersion; read it again and retry",
        R::PLURAL,
        display_name::<R>(namespace, name)
    ))
}
