//! The admission stage of every write, and the transactions that create and delete an
//! object's [`Claim`]s together with the object.

use orchestra_store::{Compare, CompareOp, LeaseId, Op, OpResponse, PutRequest, StoreError, Txn};

use super::{ApiError, Registry};
use crate::admission::{Admission, AdmissionRequest, Claim, Operation};
use crate::resource::Resource;
use crate::scheme::erase;

/// What a guarded write did.
pub(crate) enum Written {
    /// Written at this revision.
    At(i64),
    /// The object's own guard failed (it exists, or changed since it was read).
    Guard,
    /// A claim another object holds: admit again (it will pick another value, or refuse).
    ClaimTaken,
    /// The lease the object was to be attached to is gone: write again with a new one.
    LeaseGone,
}

impl Registry {
    /// This registry with `admission` run on every write (see [`crate::admission`]).
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// The admission chain.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Runs the admission plug-ins' start-up work (e.g. creating the system namespaces).
    /// The API server calls it before it serves.
    pub async fn initialize(&self) -> Result<(), ApiError> {
        self.admission.initialize(self).await
    }

    /// Admits a create or update of `object` (the stored `old` on update); returns the
    /// object as the plug-ins left it, and the keys it holds.
    pub(crate) async fn admit<R: Resource>(
        &self,
        operation: Operation,
        subresource: &'static str,
        object: R,
        old: Option<&R>,
    ) -> Result<(R, Vec<Claim>), ApiError> {
        if self.admission.is_empty() {
            return Ok((object, Vec::new()));
        }
        let mut boxed = erase(object);
        let old = old.map(|old| erase(old.clone()));
        let (namespace, name) = (boxed.meta().namespace.clone(), boxed.meta().name.clone());
        let mut request = AdmissionRequest {
            operation,
            subresource,
            info: R::type_info(),
            namespace: &namespace,
            name: &name,
            object: Some(boxed.as_mut()),
            old: old.as_deref(),
            registry: self,
        };
        self.admission.admit(&mut request).await?;
        let claims = self.admission.claims(boxed.as_ref());
        let object = boxed.downcast::<R>().map_err(|other| {
            ApiError::BadRequest(format!(
                "admission turned a {} into a {}",
                R::KIND,
                other.type_info().kind
            ))
        })?;
        Ok((*object, claims))
    }

    /// Admits the deletion of the stored `object`.
    pub(crate) async fn admit_delete<R: Resource>(&self, object: &R) -> Result<(), ApiError> {
        if self.admission.is_empty() {
            return Ok(());
        }
        let old = erase(object.clone());
        let meta = object.meta();
        let request = AdmissionRequest {
            operation: Operation::Delete,
            subresource: "",
            info: R::type_info(),
            namespace: &meta.namespace,
            name: &meta.name,
            object: None,
            old: Some(old.as_ref()),
            registry: self,
        };
        self.admission.admit(&mut { request }).await
    }

    /// The put of an object of kind `R` (`key`, `value`): attached to its kind's shared
    /// lease when the kind expires (see `ttl`). Returns the lease too (0: none).
    pub(crate) async fn put_op<R: Resource>(
        &self,
        key: String,
        value: bytes::Bytes,
    ) -> Result<(Op, LeaseId), ApiError> {
        let lease = self
            .expiry
            .lease_for(self.store.as_ref(), R::PLURAL)
            .await?;
        let put = Op::Put(PutRequest {
            key: key.into(),
            value,
            lease,
            prev_kv: false,
        });
        Ok((put, lease))
    }

    /// Forgets a lease the store no longer has, so that the next write of `R` gets a new one.
    pub(crate) async fn lease_gone<R: Resource>(&self, lease: LeaseId) {
        self.expiry.forget(R::PLURAL, lease).await;
    }

    /// The keys a stored object holds.
    pub(crate) fn claims_of<R: Resource>(&self, object: &R) -> Vec<Claim> {
        if self.admission.is_empty() {
            return Vec::new();
        }
        self.admission.claims(erase(object.clone()).as_ref())
    }

    /// Runs `op` on `key` if `guard` holds and no other object holds a key of `hold` that
    /// `held` (the object's keys before) does not have; creates those keys and deletes the
    /// keys of `held` that `hold` lacks, all in one transaction.
    pub(crate) async fn write_guarded(
        &self,
        key: String,
        guard: Compare,
        op: Op,
        hold: &[Claim],
        held: &[Claim],
    ) -> Result<Written, ApiError> {
        let mut compares = vec![guard.clone()];
        let mut ops = vec![op];
        for claim in hold {
            if !held.iter().any(|c| c.key == claim.key) {
                compares.push(Compare::create_revision(
                    claim.key.clone(),
                    CompareOp::Equal,
                    0,
                ));
                ops.push(Op::put(claim.key.clone(), claim.owner.clone()));
            }
        }
        for claim in held {
            if !hold.iter().any(|c| c.key == claim.key) {
                ops.push(Op::delete(claim.key.clone()));
            }
        }
        let response = match self
            .store
            .txn(
                Txn::new()
                    .when(compares)
                    .and_then(ops)
                    .or_else([Op::get(key)]),
            )
            .await
        {
            Err(StoreError::LeaseNotFound(_)) => return Ok(Written::LeaseGone),
            result => result?,
        };
        if response.succeeded {
            return Ok(Written::At(response.header_revision));
        }
        let current = match response.responses.into_iter().next() {
            Some(OpResponse::Range(range)) => range.kvs.into_iter().next(),
            _ => None,
        };
        Ok(if guard.holds(current.as_ref()) {
            Written::ClaimTaken
        } else {
            Written::Guard
        })
    }
}
